import Dispatch
import Foundation
import Synchronization

/// What the consumer reports, in the order it happened.
public enum ConsumerEvent: Sendable {
    /// A record of an assigned partition.
    case record(ConsumerRecord)
    /// Partitions newly assigned to this consumer (incrementally, with cooperative-sticky).
    case assigned([TopicPartition])
    /// Partitions about to be taken away. The consumer keeps them until `acknowledgement.acknowledge()` is
    /// called (or `ConsumerConfiguration.revocationTimeout` passes), so the caller can finish in-flight work
    /// and commit first. Records of these partitions that precede this event were already delivered.
    case revoked([TopicPartition], RevocationAcknowledgement)
    /// Partitions lost without an orderly revocation (e.g. session timeout): another member may already
    /// own them, so committing for them would fail. Drop their in-flight work.
    case lost([TopicPartition])
    /// A `KafkaConsumer.rewind` took effect: the partitions' next records are read again from `offsets`.
    /// Records of these partitions fetched before the seek were discarded, so every record of them after
    /// this event comes from the new position. `failure` is set when the seek failed (for instance because
    /// a partition is no longer assigned); `offsets` still names what was asked.
    case rewound([TopicPartition: Int64], failure: KafkaError?)
    /// The consumer has read everything `partition` holds up to `offset` (the next offset it will fetch);
    /// only with `ConsumerConfiguration.reportsEndOfPartition`. Unlike waiting for the record at the high
    /// watermark minus one, this also ends a read whose last offsets hold no visible record (compacted
    /// away, or a transaction marker).
    case endOfPartition(TopicPartition, offset: Int64)
}

/// The caller's "done with these partitions" signal for a `.revoked` event.
public final class RevocationAcknowledgement: Sendable {
    private let signalled = Atomic<Bool>(false)
    private let semaphore = DispatchSemaphore(value: 0)

    init() {}

    /// Lets the consumer give the partitions up. Idempotent.
    public func acknowledge() {
        if !signalled.exchange(true, ordering: .acquiringAndReleasing) {
            semaphore.signal()
        }
    }

    /// Blocks the poll thread until acknowledged; false when `timeout` passed first.
    func wait(timeout: Duration) -> Bool {
        semaphore.wait(timeout: .now() + .milliseconds(timeout.milliseconds)) == .success
    }
}

/// The consumer's events as an async sequence. Single consumer: iterate it from one task.
public struct ConsumerEvents: AsyncSequence, Sendable {
    public typealias Element = ConsumerEvent

    let buffer: EventBuffer

    public struct AsyncIterator: AsyncIteratorProtocol {
        let buffer: EventBuffer

        /// The next event; `nil` once the consumer is closed and every buffered event was read.
        /// - Throws: `KafkaError` when the consumer failed fatally; `CancellationError` when the task is cancelled.
        public mutating func next() async throws -> ConsumerEvent? {
            try await buffer.next()
        }
    }

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(buffer: buffer)
    }
}

/// What other threads ask the poll thread to do with librdkafka between two of its polls.
enum PollThreadRequest: Sendable {
    /// Move the partitions' fetch positions (`KafkaConsumer.rewind`).
    case seek([TopicPartition: Int64])
    /// Stop fetching the partitions (`KafkaConsumer.pause`).
    case pause([TopicPartition])
    /// Fetch the partitions again (`KafkaConsumer.resume`).
    case resume([TopicPartition])
}

/// Bounded hand-off from the poll thread (which blocks while full, so librdkafka stops fetching) to the
/// async reader (which suspends while empty).
///
/// An `NSCondition` rather than a `Mutex`: the poll thread must sleep on it while the buffer is full.
final class EventBuffer: @unchecked Sendable {
    // @unchecked: every stored property below is only touched with `condition` locked.
    private let condition = NSCondition()
    private var events: [ConsumerEvent] = []
    private var head = 0
    private let capacity: Int
    /// Bytes of buffered records (key, value, headers) above which the poll thread also waits.
    private let capacityBytes: Int
    private var bytes = 0
    private var unbounded = false
    private var finished = false
    private var failure: KafkaError?
    private var waiter: CheckedContinuation<ConsumerEvent?, any Error>?
    /// Requests not yet carried out by the poll thread, in the order they were made.
    private var requests: [PollThreadRequest] = []
    /// Carries out one request on the poll thread (installed by the consumer once its client exists);
    /// returns a seek's failure.
    private var performer: (@Sendable (PollThreadRequest) -> KafkaError?)?
    /// Wakes a poll that is waiting for records, so requests do not wait for its timeout.
    private var wake: (@Sendable () -> Void)?

    init(capacity: Int, capacityBytes: Int = .max) {
        self.capacity = max(1, capacity)
        self.capacityBytes = max(1, capacityBytes)
    }

    private static func size(of event: ConsumerEvent) -> Int {
        if case .record(let record) = event { return record.payloadSize }
        return 0
    }

    private var count: Int { events.count - head }

    func install(performer: @escaping @Sendable (PollThreadRequest) -> KafkaError?, wake: @escaping @Sendable () -> Void) {
        condition.lock()
        self.performer = performer
        self.wake = wake
        condition.unlock()
    }

    /// Any thread: asks the poll thread to carry out `request` between two polls (see `KafkaConsumer.rewind`
    /// and `pause`).
    func request(_ request: PollThreadRequest) {
        condition.lock()
        requests.append(request)
        let wake = self.wake
        condition.broadcast()
        condition.unlock()
        wake?()
    }

    /// Poll thread: forgets queued pauses of `partitions` (see `Rebalancer`'s assignment).
    func dropPendingPauses(of partitions: Set<TopicPartition>) {
        condition.lock()
        requests = requests.compactMap { request in
            guard case let .pause(paused) = request else { return request }
            let kept = paused.filter { !partitions.contains($0) }
            return kept.isEmpty ? nil : .pause(kept)
        }
        condition.unlock()
    }

    /// Poll thread, between two polls: carries out the requests.
    func serviceRequests() {
        condition.lock()
        _ = serviceRequestsLocked(holding: nil)
        condition.unlock()
    }

    /// Carries out the requests in order (unlocking around librdkafka). For each seek it drops the buffered
    /// records of the partitions sought and queues a `.rewound` event. Returns whether `holding`, a record
    /// polled before a seek, belongs to a partition sought (and must be dropped too).
    private func serviceRequestsLocked(holding: ConsumerEvent?) -> Bool {
        guard !requests.isEmpty, let performer else { return false }
        let pending = requests
        requests.removeAll()
        condition.unlock()
        let outcomes = pending.map { ($0, performer($0)) }
        condition.lock()
        var sought = Set<TopicPartition>()
        for case let (.seek(offsets), failure) in outcomes {
            sought.formUnion(offsets.keys)
            let kept = events[head...].filter { event in
                if case .record(let record) = event { return !offsets.keys.contains(record.topicPartition) }
                return true
            }
            events = Array(kept)
            head = 0
            bytes = events.reduce(0) { total, event in
                let sum = total.addingReportingOverflow(Self.size(of: event))
                return sum.overflow ? .max : sum.partialValue
            }
            deliverLocked(.rewound(offsets, failure: failure))
        }
        condition.broadcast()
        if case .record(let record) = holding { return sought.contains(record.topicPartition) }
        return false
    }

    /// Hands `event` to a waiting reader or appends it, ignoring the capacity (for markers). Locked.
    private func deliverLocked(_ event: ConsumerEvent) {
        guard !finished else { return }
        if let waiter {
            self.waiter = nil
            // Resuming under the lock is safe: the continuation only schedules the reader.
            waiter.resume(returning: event)
            return
        }
        events.append(event)
    }

    /// Poll thread: appends `event`, blocking while the buffer is full (unless `stopBlocking` was called),
    /// and carrying out requests meanwhile. A record of a partition sought meanwhile is dropped: it was
    /// fetched before the seek.
    func push(_ event: ConsumerEvent) {
        condition.lock()
        while true {
            if serviceRequestsLocked(holding: event) {
                condition.unlock()
                return
            }
            guard (count >= capacity || (count > 0 && bytes >= capacityBytes)) && !unbounded && !finished,
                  requests.isEmpty || performer == nil else { break }
            condition.wait()
        }
        if let waiter {
            self.waiter = nil
            condition.unlock()
            waiter.resume(returning: event)
            return
        }
        if !finished {
            events.append(event)
            let added = bytes.addingReportingOverflow(Self.size(of: event))
            bytes = added.overflow ? .max : added.partialValue
        }
        condition.unlock()
    }

    /// From now on pushes never block: used while closing, when nobody may be reading any more.
    func stopBlocking() {
        condition.lock()
        unbounded = true
        condition.broadcast()
        condition.unlock()
    }

    /// Ends the sequence after the buffered events; with `error`, the reader gets it instead of `nil`.
    func finish(error: KafkaError?) {
        condition.lock()
        finished = true
        failure = error
        let waiter = self.waiter
        self.waiter = nil
        condition.broadcast()
        condition.unlock()
        if let error { waiter?.resume(throwing: error) } else { waiter?.resume(returning: nil) }
    }

    func next() async throws -> ConsumerEvent? {
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                condition.lock()
                if let event = popLocked() {
                    condition.unlock()
                    continuation.resume(returning: event)
                } else if finished {
                    let failure = self.failure
                    condition.unlock()
                    if let failure { continuation.resume(throwing: failure) } else { continuation.resume(returning: nil) }
                } else if Task.isCancelled {
                    condition.unlock()
                    continuation.resume(throwing: CancellationError())
                } else {
                    waiter = continuation
                    condition.unlock()
                }
            }
        } onCancel: {
            condition.lock()
            let waiter = self.waiter
            self.waiter = nil
            condition.unlock()
            waiter?.resume(throwing: CancellationError())
        }
    }

    private func popLocked() -> ConsumerEvent? {
        guard head < events.count else { return nil }
        let event = events[head]
        head += 1
        bytes = max(0, bytes - Self.size(of: event))
        // Compact occasionally so the array does not grow without bound; amortised O(1) per event.
        if head >= 256 && head * 2 >= events.count {
            events.removeFirst(head)
            head = 0
        }
        condition.signal()
        return event
    }
}
