import Foundation
import Kafka
import KafkaTestSupport
import Synchronization
import Testing

/// Sends review events to a topic of a given broker and remembers them, in order.
final class FaultFeed: Sendable {
    private let producer: KafkaProducer
    private let topic: String
    private let sentEvents = Mutex<[SentEvent]>([])

    init(kafka: KafkaConfiguration, topic: String) throws {
        self.topic = topic
        producer = try KafkaProducer(configuration: ProducerConfiguration(kafka: kafka), logger: TestBroker.logger)
    }

    var sent: [SentEvent] { sentEvents.withLock { $0 } }

    /// Events to send before a stall (broker frozen or down, link cut), so that the service still has
    /// fetched events to infer and publish when it begins: only a publish in flight can time out and be
    /// retried. 160 was enough for a debug build on Zen 3 (~0.2 s per event per shard); on a Zen 4 twice as
    /// fast as the one it was tuned on, the service published all 160 before the link was cut and never
    /// logged a retry. Recovery waits allow for the slowest machine to work through the rest.
    static let stallBacklog = 600

    func send(count: Int) async throws {
        let texts = E2EFixtures.reviewTexts
        for _ in 0..<count {
            let sequence = sent.count
            let id = "event-\(sequence)"
            let text = texts.isEmpty ? "这家酒店很好" : texts[sequence % texts.count]
            let value = Array(try JSONSerialization.data(withJSONObject: ["id": id, "text": text]))
            _ = try await producer.send(ProducerRecord(topic: topic, key: Array(id.utf8), value: value))
            sentEvents.withLock { $0.append(SentEvent(sequence: sequence, key: id, id: id, malformed: false)) }
        }
    }

    func close() async { await producer.close() }
}

/// Polls `condition` (an observation of an external process: its HTTP port or its log) until it holds;
/// throws after `timeout` or when `service` ends first.
func waitFor(_ what: String, timeout: Duration, _ service: ServiceProcess?,
             _ condition: () async throws -> Bool) async throws {
    let deadline = ContinuousClock.now + timeout
    while !(try await condition()) {
        if let service, let exit = service.exit { throw TestFailure("\(service.name) ended (\(exit)) before \(what)\n\(service.logTail())") }
        guard ContinuousClock.now < deadline else { throw TestFailure("no \(what) within \(timeout)\n\(service?.logTail() ?? "")") }
        try await Task.sleep(for: .milliseconds(200))
    }
}

extension OutputRecorder {
    /// Awaits an output for every event of `sent`; on timeout names the events still without one.
    func awaitEvery(_ sent: [SentEvent], timeout: Duration, _ service: ServiceProcess) async throws -> Outputs {
        try await wait(for: "an output for each of the \(sent.count) events", timeout: timeout,
                       progress: { "\($0.missing(sent).count) events without output: \($0.missing(sent).idList)\n\(service.logTail())" }
        ) { $0.coversAll(sent) }
    }
}

/// A fault scenario's count of the events it sent against the outputs it read.
struct FaultTally {
    let sent: [SentEvent]
    let outputs: Outputs

    var lost: [SentEvent] { outputs.missing(sent) }
    var duplicates: [SentEvent] { outputs.duplicated(sent) }
    var deadLetters: [Outputs.Output] { outputs.all.filter { $0.deadLetter != nil } }

    /// The counts every fault test prints.
    var summary: String {
        "sent \(sent.count), delivered \(outputs.all.count), lost \(lost.count), duplicates \(duplicates.count), "
            + "dead letters \(deadLetters.count)"
    }

    /// Every event was a good one: none may be missing, dead-lettered or unreadable.
    func expectNoneLostOrDeadLettered(sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(outputs.undecodable.isEmpty, sourceLocation: sourceLocation)
        #expect(lost.isEmpty, "\(lost.count) events lost: \(lost.idList)", sourceLocation: sourceLocation)
        #expect(deadLetters.isEmpty, "good events dead-lettered: \(deadLetters.prefix(5).map { "\($0.eventID): \($0.deadLetter.map { "\($0.error.code) \($0.error.message)" } ?? "")" })",
                sourceLocation: sourceLocation)
    }
}

extension ServiceProcess {
    /// SIGTERM, then expects the process to drain and exit 0 within `timeout`.
    func expectCleanStop(timeout: Duration = .seconds(40), sourceLocation: SourceLocation = #_sourceLocation) async throws {
        terminate()
        let exit = try await waitForExit(timeout: timeout)
        #expect(exit == .exited(0), "\(logTail())", sourceLocation: sourceLocation)
    }
}

/// Polls the service's `/readyz` (through `readyz`) until it answers non-200; returns that answer's code
/// and reason, for the scenario's printed line.
func awaitNotReady(_ what: String, _ service: ServiceProcess, _ readyz: () -> (code: Int, body: String)?,
                   timeout: Duration = .seconds(60)) async throws -> String {
    var reason = ""
    try await waitFor(what, timeout: timeout, service) {
        guard let answer = readyz(), answer.code != 200 else { return false }
        reason = "\(answer.code) \(answer.body)"
        return true
    }
    return reason
}

extension OutputRecorder {
    /// Awaits `more` outputs beyond those read now: the service (or group) serves again after a change.
    func awaitMore(_ more: Int, _ what: String, timeout: Duration = .seconds(120),
                   logs: @escaping @Sendable () -> String) async throws {
        let now = outputs.count
        try await wait(for: "\(more) outputs \(what)", timeout: timeout,
                       progress: { "\($0.count) outputs\n\(logs())" }) { $0.count >= now + more }
    }
}
