import Foundation
import Timeouts
import Kafka
import KafkaTestSupport
import Synchronization

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
/// what it sent in order. One sender at a time: a burst and a stream must not overlap.
final class EventFeed: Sendable {
    let topic: String
    private let producer: KafkaProducer
    private let sentEvents = Mutex<[SentEvent]>([])
    /// Who waits for the count of sent events to reach a number (see ``waitUntilSent(_:timeout:)``).
    private let countWaiters = Mutex<[UUID: (count: Int, continuation: CheckedContinuation<Void, Never>)]>([:])
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

    /// Sends one event, keyed `key` (default: its id), and waits for the broker's acknowledgement. Its
    /// text is `text`, else the next dev review in file order.
    @discardableResult
    func send(key: String? = nil, id: String? = nil, text: String? = nil) async throws -> SentEvent {
        let sequence = count
        let eventID = id ?? "event-\(sequence)"
        let malformed = malformedEvery.map { sequence % $0 == $0 - 1 } ?? false
        let texts = E2EFixtures.reviewTexts
        let text = text ?? (texts.isEmpty ? "这家酒店很好" : texts[sequence % texts.count])
        let value: [UInt8] = malformed
            ? Array("{\"id\": \"\(eventID)\", \"text\": ".utf8)
            : Array(try JSONSerialization.data(withJSONObject: ["id": eventID, "text": text]))
        let event = SentEvent(sequence: sequence, key: key ?? eventID, id: eventID, malformed: malformed)
        _ = try await producer.send(ProducerRecord(topic: topic, key: Array(event.key.utf8), value: value))
        let count = sentEvents.withLock { $0.append(event); return $0.count }
        let reached = countWaiters.withLock { waiters in
            let reached = waiters.filter { $0.value.count <= count }
            reached.keys.forEach { waiters[$0] = nil }
            return reached.values.map(\.continuation)
        }
        reached.forEach { $0.resume() }
        return event
    }

    /// Waits until `count` events were sent in all (by a stream running meanwhile); throws after `timeout`.
    func waitUntilSent(_ count: Int, timeout: Duration) async throws {
        let reached = try await withTimeout(timeout) {
            let id = UUID()
            await withTaskCancellationHandler {
                await withCheckedContinuation { continuation in
                    let done = self.countWaiters.withLock { waiters in
                        guard self.count < count, !Task.isCancelled else { return true }
                        waiters[id] = (count, continuation)
                        return false
                    }
                    if done { continuation.resume() }
                }
            } onCancel: {
                self.countWaiters.withLock { $0.removeValue(forKey: id) }?.continuation.resume()
            }
            return self.count >= count
        } ?? false
        guard reached else { throw TestFailure("only \(self.count) of \(count) events were sent within \(timeout)") }
    }

    /// Sends `count` events back to back.
    func send(count: Int) async throws {
        for _ in 0..<count { try await send() }
    }

    /// Starts sending one event every `pacing` until ``stopStreaming()`` or `limit` events in all: a
    /// continuous stream for the service to work on while the test restarts or reconfigures it.
    ///
    /// With `answered` (how many events have their output), the stream holds back while more than
    /// `maxAhead` events wait for theirs, so a slow (loaded, debug-built) service is never buried.
    func startStreaming(pacing: Duration, limit: Int = 2_000,
                        answered: (@Sendable () -> Int)? = nil, maxAhead: Int = 40) {
        streaming.withLock { task in
            task = Task {
                while !Task.isCancelled && self.count < limit {
                    if let answered, self.count - answered() > maxAhead {
                        try? await Task.sleep(for: pacing)
                        continue
                    }
                    try await self.send()
                    try? await Task.sleep(for: pacing)
                }
            }
        }
    }

    /// Waits until the stream started by ``startStreaming(pacing:limit:)`` reached its limit and returns
    /// what was sent in all; throws after `timeout`, e.g. when a stream held back by `answered` waits for a
    /// service that stopped answering.
    func finishStreaming(timeout: Duration = .seconds(300)) async throws -> [SentEvent] {
        guard let task = streaming.withLock({ $0 }) else { return sent }
        let finished = try await withTimeout(timeout) {
            // Awaiting a task's value does not pass cancellation on: the timeout has to stop the stream itself.
            try await withTaskCancellationHandler { try await task.value } onCancel: { task.cancel() }
            return true
        } ?? false
        guard finished else { throw TestFailure("the stream had sent only \(count) events after \(timeout)") }
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
