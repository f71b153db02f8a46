import Foundation
import Kafka
import KafkaTestSupport
import StreamPipeline
import Synchronization

/// Shared data and the service's common command line.
enum E2EFixtures {
    /// `../shared` beside the repository.
    static let sharedRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("shared")

    static func modelDirectory(_ version: String) -> URL {
        sharedRoot.appendingPathComponent("models/minirbt-h256-chnsenticorp/\(version)")
    }

    /// Whether the demo models and reviews are present (the tests are skipped without them).
    static var sharedDataPresent: Bool {
        [modelDirectory("v1").appendingPathComponent("model.safetensors"),
         modelDirectory("v2").appendingPathComponent("model.safetensors"),
         sharedRoot.appendingPathComponent("data/chnsenticorp/dev.jsonl")]
            .allSatisfy { FileManager.default.fileExists(atPath: $0.path) }
    }

    /// The texts of the dev reviews, in file order.
    static let reviewTexts: [String] = {
        let url = sharedRoot.appendingPathComponent("data/chnsenticorp/dev.jsonl")
        guard let contents = try? String(contentsOf: url, encoding: .utf8) else { return [] }
        return contents.split(separator: "\n").compactMap { line in
            let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            return object?["text"] as? String
        }
    }()

    /// `minirbt-stream run` arguments every test uses: small batches, no metrics port (instances share
    /// the host), unique topics and group given by the caller.
    static func runArguments(input: String, output: String, dlq: String, group: String,
                             shards: Int = 2, extra: [String] = []) -> [String] {
        ["run", "--brokers", TestBroker.bootstrapServers, "--group", group, "--input-topic", input,
         "--output-topic", output, "--dlq-topic", dlq, "--shards", "\(shards)", "--max-batch", "8",
         "--metrics-port", "0"] + extra
    }
}

/// One event the test produced: its record key, its event id (what the result's `id` says) and the order
/// in which it was sent.
struct SentEvent: Sendable, Hashable {
    let sequence: Int
    let key: String
    let id: String
    /// Malformed on purpose: its output must be a dead letter.
    let malformed: Bool
}

/// Produces review events to the input topic, in bursts or as a paced, continuous stream, and remembers
/// what it sent in order.
final class EventFeed: Sendable {
    let topic: String
    private let producer: KafkaProducer
    private let sentEvents = Mutex<[SentEvent]>([])
    private let streaming = Mutex<Task<Void, any Error>?>(nil)
    /// Every `malformedEvery`-th event is not JSON (nil: none are).
    private let malformedEvery: Int?

    init(topic: String, malformedEvery: Int? = nil) throws {
        self.topic = topic
        self.malformedEvery = malformedEvery
        producer = try KafkaProducer(configuration: ProducerConfiguration(kafka: TestBroker.kafka(client: "e2e-feed")),
                                     logger: TestBroker.logger)
    }

    var sent: [SentEvent] { sentEvents.withLock { $0 } }
    var count: Int { sentEvents.withLock { $0.count } }

    /// Sends one event, keyed `key` (default: its id), and waits for the broker's acknowledgement.
    @discardableResult
    func send(key: String? = nil, id: String? = nil) async throws -> SentEvent {
        let sequence = count
        let eventID = id ?? "event-\(sequence)"
        let malformed = malformedEvery.map { sequence % $0 == $0 - 1 } ?? false
        let texts = E2EFixtures.reviewTexts
        let text = texts.isEmpty ? "这家酒店很好" : texts[sequence % texts.count]
        let value: [UInt8] = malformed
            ? Array("{\"id\": \"\(eventID)\", \"text\": ".utf8)
            : Array(try JSONSerialization.data(withJSONObject: ["id": eventID, "text": text]))
        let event = SentEvent(sequence: sequence, key: key ?? eventID, id: eventID, malformed: malformed)
        _ = try await producer.send(ProducerRecord(topic: topic, key: Array(event.key.utf8), value: value))
        sentEvents.withLock { $0.append(event) }
        return event
    }

    /// Sends `count` events back to back.
    func send(count: Int) async throws {
        for _ in 0..<count { try await send() }
    }

    /// Starts sending one event every `pacing` until ``stopStreaming()``: a continuous stream for the
    /// service to work on while the test restarts or reconfigures it.
    func startStreaming(pacing: Duration, limit: Int = 2_000) {
        streaming.withLock { task in
            task = Task {
                while !Task.isCancelled && self.count < limit {
                    try await self.send()
                    try? await Task.sleep(for: pacing)
                }
            }
        }
    }

    /// Waits until the stream started by ``startStreaming(pacing:limit:)`` reached its limit and returns
    /// what was sent in all.
    func finishStreaming() async throws -> [SentEvent] {
        try await streaming.withLock({ $0 })?.value
        return sent
    }

    /// Stops the stream started by ``startStreaming(pacing:limit:)`` and returns what was sent in all.
    @discardableResult
    func stopStreaming() async throws -> [SentEvent] {
        if let task = streaming.withLock({ $0 }) {
            task.cancel()
            do { try await task.value } catch is CancellationError {}
        }
        return sent
    }

    func close() async {
        _ = try? await stopStreaming()
        await producer.close()
    }
}

/// The service's outputs (results and dead letters), decoded and indexed by event.
struct Outputs: Sendable {
    struct Output: Sendable {
        let record: ConsumerRecord
        let result: EnrichedResult?
        let deadLetter: DeadLetter?
        /// The event id: the result's `id`, or the dead-lettered record's key.
        let eventID: String
    }

    let all: [Output]
    let byEventID: [String: [Output]]
    /// Records that decoded as neither a result nor a dead letter.
    let undecodable: [ConsumerRecord]

    init(_ records: [ConsumerRecord], resultTopic: String) {
        var all: [Output] = []
        var undecodable: [ConsumerRecord] = []
        for record in records {
            let data = Data(record.value ?? [])
            if record.topic == resultTopic, let result = try? JSONDecoder().decode(EnrichedResult.self, from: data) {
                all.append(Output(record: record, result: result, deadLetter: nil, eventID: result.id))
            } else if record.topic != resultTopic, let letter = try? JSONDecoder().decode(DeadLetter.self, from: data) {
                all.append(Output(record: record, result: nil, deadLetter: letter, eventID: record.keyText ?? ""))
            } else {
                undecodable.append(record)
            }
        }
        self.all = all
        self.undecodable = undecodable
        byEventID = Dictionary(grouping: all, by: \.eventID)
    }

    /// Events of `sent` with no output at all.
    func missing(_ sent: [SentEvent]) -> [SentEvent] {
        sent.filter { byEventID[$0.id] == nil }
    }

    /// Events of `sent` with more than one output.
    func duplicated(_ sent: [SentEvent]) -> [SentEvent] {
        sent.filter { (byEventID[$0.id]?.count ?? 0) > 1 }
    }

    /// Whether every event of `sent` has at least one output.
    func coversAll(_ sent: [SentEvent]) -> Bool {
        sent.allSatisfy { byEventID[$0.id] != nil }
    }

    var results: [EnrichedResult] { all.compactMap(\.result) }
}

extension Array where Element == SentEvent {
    /// A short list of ids for failure messages.
    var idList: String {
        let shown = prefix(12).map(\.id).joined(separator: ", ")
        return count > 12 ? "\(shown), … (\(count) in all)" : shown
    }
}
