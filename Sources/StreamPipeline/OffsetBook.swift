import Kafka
import Timeouts
import Synchronization

/// Every assigned partition's ``OffsetTracker``, shared by the consumer loop (registration), the producer's
/// delivery callbacks (acknowledgement) and the committer.
final class OffsetBook: Sendable {
    private struct State {
        var trackers: [TopicPartition: OffsetTracker] = [:]
        /// The generation of each offset last handed out by `pendingCommits`, for `markCommitted`.
        var commitGenerations: [TopicPartition: UInt64] = [:]
        /// Partitions being read again after an aborted transaction, until the consumer's `.rewound` event:
        /// their records fetched before the seek are skipped, and nothing of them is committed meanwhile.
        var rewinding: Set<TopicPartition> = []
        /// Revocations waiting for a partition's in-flight events to be acknowledged.
        var drainWaiters: [(partitions: Set<TopicPartition>, continuation: CheckedContinuation<Void, Never>)] = []
    }

    private let state = Mutex(State())

    /// - Returns: the generation to acknowledge the event with (see ``OffsetTracker``).
    func register(_ partition: TopicPartition, offset: Int64) -> UInt64 {
        let (generation, ready) = state.withLock { state in
            let before = state.trackers[partition]?.inFlight ?? 0
            let generation = state.trackers[partition, default: OffsetTracker()].register(offset)
            // A restart of the numbering forgets in-flight events, which may let a revocation proceed.
            let ready = (state.trackers[partition]?.inFlight ?? 0) <= before ? Self.takeDrained(&state) : []
            return (generation, ready)
        }
        ready.forEach { $0.resume() }
        return generation
    }

    func acknowledge(_ partition: TopicPartition, offset: Int64, generation: UInt64) {
        let ready: [CheckedContinuation<Void, Never>] = state.withLock { state in
            state.trackers[partition]?.acknowledge(offset, generation: generation)
            return Self.takeDrained(&state)
        }
        ready.forEach { $0.resume() }
    }

    /// Offsets that moved since the last commit, for the given partitions (all when nil).
    func pendingCommits(for partitions: Set<TopicPartition>? = nil) -> [TopicPartition: Int64] {
        state.withLock { state in
            var offsets: [TopicPartition: Int64] = [:]
            for (partition, tracker) in state.trackers where partitions?.contains(partition) ?? true {
                if let offset = tracker.nextCommit {
                    offsets[partition] = offset
                    state.commitGenerations[partition] = tracker.generation
                }
            }
            return offsets
        }
    }

    func markCommitted(_ offsets: [TopicPartition: Int64]) {
        state.withLock { state in
            for (partition, offset) in offsets {
                guard let generation = state.commitGenerations[partition] else { continue }
                state.trackers[partition]?.markCommitted(offset, generation: generation)
            }
        }
    }

    /// Whether an output registered in `generation` may still be published: its partition is still tracked,
    /// not being rewound, and was not rewound since.
    func isCurrent(_ partition: TopicPartition, generation: UInt64) -> Bool {
        state.withLock { state in
            guard let tracker = state.trackers[partition], !state.rewinding.contains(partition) else { return false }
            return tracker.generation == generation
        }
    }

    func isRewinding(_ partition: TopicPartition) -> Bool {
        state.withLock { $0.rewinding.contains(partition) }
    }

    /// After an abort: forgets everything uncommitted of every partition with work since its last commit,
    /// marks them rewinding, and returns where each must be read again.
    func beginRewind() -> [TopicPartition: Int64] {
        let (targets, ready) = state.withLock { state in
            var targets: [TopicPartition: Int64] = [:]
            for (partition, tracker) in state.trackers {
                guard let target = tracker.rewindTarget else { continue }
                state.trackers[partition]?.rewind()
                state.rewinding.insert(partition)
                targets[partition] = target
            }
            return (targets, Self.takeDrained(&state))
        }
        ready.forEach { $0.resume() }
        return targets
    }

    /// The consumer reads `partitions` from their rewind targets now.
    func finishRewind(_ partitions: some Sequence<TopicPartition>) {
        state.withLock { state in
            for partition in partitions { state.rewinding.remove(partition) }
        }
    }

    /// Waits until every event of `partitions` consumed so far has its output acknowledged, or `timeout`.
    /// - Returns: false on timeout.
    func waitUntilDrained(_ partitions: Set<TopicPartition>, timeout: Duration) async -> Bool {
        let drained: Void? = try? await withTimeout(timeout) {
            await withTaskCancellationHandler {
                await withCheckedContinuation { continuation in
                    let resumeNow = self.state.withLock { state in
                        if Self.isDrained(partitions, in: state) || Task.isCancelled { return true }
                        state.drainWaiters.append((partitions, continuation))
                        return false
                    }
                    if resumeNow { continuation.resume() }
                }
            } onCancel: {
                // At the timeout: release the waiter so the wait ends.
                let stale = self.state.withLock { state in
                    let waiting = state.drainWaiters.filter { $0.partitions == partitions }.map(\.continuation)
                    state.drainWaiters.removeAll { $0.partitions == partitions }
                    return waiting
                }
                stale.forEach { $0.resume() }
            }
        }
        return drained != nil
    }

    /// Stops tracking partitions that were revoked (after their final commit) or lost.
    func remove(_ partitions: Set<TopicPartition>) {
        let ready = state.withLock { state in
            for partition in partitions {
                state.trackers[partition] = nil
                state.commitGenerations[partition] = nil
                state.rewinding.remove(partition)
            }
            return Self.takeDrained(&state)
        }
        ready.forEach { $0.resume() }
    }

    private static func isDrained(_ partitions: Set<TopicPartition>, in state: State) -> Bool {
        partitions.allSatisfy { (state.trackers[$0]?.inFlight ?? 0) == 0 }
    }

    private static func takeDrained(_ state: inout State) -> [CheckedContinuation<Void, Never>] {
        guard !state.drainWaiters.isEmpty else { return [] }
        var ready: [CheckedContinuation<Void, Never>] = []
        var waiting: [(partitions: Set<TopicPartition>, continuation: CheckedContinuation<Void, Never>)] = []
        for waiter in state.drainWaiters {
            if isDrained(waiter.partitions, in: state) { ready.append(waiter.continuation) } else { waiting.append(waiter) }
        }
        state.drainWaiters = waiting
        return ready
    }
}
