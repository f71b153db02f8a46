import Foundation
import Kafka
import KafkaTestSupport
import Synchronization

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
