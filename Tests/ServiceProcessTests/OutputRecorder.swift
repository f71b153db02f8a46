import Foundation
import Timeouts
import Kafka
import KafkaTestSupport
import Synchronization

/// Reads the service's result and dead-letter topics from the beginning (manual assignment, no group) in
/// the background, decoding each output once, and lets a test await a condition over everything read so far.
final class OutputRecorder: Sendable {
    private let consumer: KafkaConsumer
    private let state: Mutex<State>
    private let reader = Mutex<Task<Void, Never>?>(nil)

    private struct State {
        var outputs: Outputs
        /// Bumped on every record, so a waiter cannot miss one that arrives while it checks.
        var generation = 0
        var failure: String?
        var waiters: [UUID: CheckedContinuation<Void, Never>] = [:]
    }

    /// Starts reading every partition of both topics, and of `otherTopics` (their records are kept as
    /// ``Outputs/undecodable``, e.g. heartbeats of the status topic), from the beginning.
    init(resultTopic: String, deadLetterTopic: String, otherTopics: [String] = [],
         isolation: ConsumerConfiguration.IsolationLevel = .readCommitted,
         kafka: KafkaConfiguration = TestBroker.kafka(client: "e2e-recorder")) async throws {
        state = Mutex(State(outputs: Outputs(resultTopic: resultTopic)))
        let topics = [resultTopic, deadLetterTopic] + otherTopics
        var configuration = ConsumerConfiguration(kafka: kafka)
        configuration.isolationLevel = isolation
        consumer = try KafkaConsumer(configuration: configuration, logger: TestBroker.logger)
        let admin = try KafkaAdmin(configuration: kafka, logger: TestBroker.logger)
        var assignment: [TopicPartition: KafkaOffset] = [:]
        for topic in topics {
            for partition in 0..<Int32(try await admin.describeTopic(topic).partitionCount) {
                assignment[TopicPartition(topic: topic, partition: partition)] = .beginning
            }
        }
        try await consumer.assign(assignment)
        let events = consumer.events
        // Holds `self` until ``close()`` cancels it: the scope that created the recorder always closes it.
        reader.withLock {
            $0 = Task {
                do {
                    for try await event in events {
                        guard case .record(let record) = event else { continue }
                        self.update { $0.outputs.append(record) }
                    }
                } catch is CancellationError {
                } catch {
                    self.update { $0.failure = "\(error)" }
                }
            }
        }
    }

    private func update(_ change: (inout State) -> Void) {
        let waiters = state.withLock { state in
            change(&state)
            state.generation += 1
            defer { state.waiters.removeAll() }
            return Array(state.waiters.values)
        }
        waiters.forEach { $0.resume() }
    }

    /// Everything read so far.
    var outputs: Outputs { state.withLock { $0.outputs } }

    /// Waits until `condition` holds over the outputs read so far and returns them; throws after `timeout`
    /// with `what` and `progress` of the outputs read by then.
    @discardableResult
    func wait(for what: String, timeout: Duration,
              progress: @escaping @Sendable (Outputs) -> String = { "\($0.count) outputs read" },
              until condition: @escaping @Sendable (Outputs) -> Bool) async throws -> Outputs {
        let outcome = try await withTimeout(timeout) {
            while true {
                let (outputs, generation, failure) = self.state.withLock { ($0.outputs, $0.generation, $0.failure) }
                if let failure { throw TestFailure("reading the outputs failed: \(failure)") }
                if condition(outputs) { return outputs }
                await self.change(after: generation)
                try Task.checkCancellation()
            }
        }
        guard let outcome else {
            throw TestFailure("timed out after \(timeout) waiting for \(what); \(progress(outputs))")
        }
        return outcome
    }

    /// Returns once a record arrives after `generation` (at once if one already did), or on cancellation.
    private func change(after generation: Int) async {
        let id = UUID()
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let waiting = state.withLock { state in
                    guard state.generation == generation, state.failure == nil, !Task.isCancelled else { return false }
                    state.waiters[id] = continuation
                    return true
                }
                if !waiting { continuation.resume() }
            }
        } onCancel: {
            state.withLock { $0.waiters.removeValue(forKey: id) }?.resume()
        }
    }

    func close() async {
        reader.withLock { $0 }?.cancel()
        await consumer.close()
    }
}

extension OutputRecorder {
    /// Reads the output topics to their end: one sentinel record is produced into every partition of
    /// `topics` and awaited, so everything written before is read too. Returns the outputs without them.
    func readToEnd(topics: [String: Int32], kafka: KafkaConfiguration = TestBroker.kafka) async throws -> Outputs {
        let producer = try KafkaProducer(configuration: ProducerConfiguration(kafka: kafka), logger: TestBroker.logger)
        let tag = "sentinel-\(UUID().uuidString.prefix(8))"
        var expected = 0
        for (topic, partitions) in topics {
            for partition in 0..<partitions {
                _ = try await producer.send(ProducerRecord(topic: topic, partition: partition, key: Array(tag.utf8),
                                                           value: Array(tag.utf8)))
                expected += 1
            }
        }
        await producer.close()
        let sentinels = expected
        let outputs = try await wait(for: "the sentinels at the end of the output topics", timeout: .seconds(60)) {
            $0.undecodable.filter { $0.keyText == tag }.count >= sentinels
        }
        var clean = Outputs(resultTopic: outputs.resultTopic)
        for output in outputs.all { clean.append(output.record) }
        for record in outputs.undecodable where record.keyText != tag { clean.append(record) }
        return clean
    }

    /// Reads `topics` to their end (``readToEnd(topics:kafka:)``) and keeps the records of committed
    /// transactions: what a Kafka broker serves read_committed readers, which Tansu does not filter.
    func committedToEnd(topics: [String: Int32]) async throws -> CommittedView {
        try CommittedView(try await readToEnd(topics: topics), topics: topics)
    }
}
