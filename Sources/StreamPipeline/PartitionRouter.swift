import Kafka
import Synchronization

/// Pins every assigned partition to one shard for as long as it stays assigned, spreading partitions
/// evenly, and decides which partitions are paused at the consumer.
///
/// A partition is paused while its shard's queue is full (from reaching `--queue-capacity` until it drained
/// to half) or while the replica is over its byte budget (from exceeding `--max-buffered-bytes` until back
/// under half). Every change of those conditions recomputes the paused set and applies the difference
/// through `apply` while still holding the lock, and the shard's queue depth is read under the same lock:
/// a pause can never be applied after the resume that should have followed it, whatever the interleaving
/// of the consumer loop and the shard threads (the old race when `--max-batch` ≥ `--queue-capacity` / 2,
/// where a shard emptied its queue before the consumer loop paused it, and nothing resumed it).
final class PartitionRouter: Sendable {
    /// Applies a change of the paused set: (partitions to pause, partitions to resume).
    typealias Apply = @Sendable (_ pause: [TopicPartition], _ resume: [TopicPartition]) -> Void

    private struct State {
        var owner: [TopicPartition: Int] = [:]
        var fullShards: Set<Int> = []
        var overBudget = false
        var paused: Set<TopicPartition> = []
    }

    private let shardCount: Int
    private let state = Mutex(State())
    private let apply: Apply

    init(shardCount: Int, apply: @escaping Apply = { _, _ in }) {
        self.shardCount = shardCount
        self.apply = apply
    }

    var assigned: [TopicPartition] { state.withLock { $0.owner.keys.sorted() } }

    var paused: Set<TopicPartition> { state.withLock { $0.paused } }

    func assign(_ partitions: [TopicPartition]) {
        update { state in
            for partition in partitions.sorted() where state.owner[partition] == nil {
                state.owner[partition] = Self.leastLoaded(state.owner, shardCount: shardCount)
            }
        }
    }

    /// The partition's shard. A record of a partition the router has not seen (assignment events race with
    /// the first records only in manual-assignment setups) is pinned on the spot.
    func shard(for partition: TopicPartition) -> Int {
        state.withLock { state in
            if let shard = state.owner[partition] { return shard }
            let shard = Self.leastLoaded(state.owner, shardCount: shardCount)
            state.owner[partition] = shard
            return shard
        }
    }

    func unassign(_ partitions: Set<TopicPartition>) {
        state.withLock { state in
            for partition in partitions {
                state.owner[partition] = nil
                // Revoked or lost: nothing to resume, the consumer no longer has them (and resumes them
                // itself should they be assigned again).
                state.paused.remove(partition)
            }
        }
    }

    /// Re-evaluates a shard's queue: full at `capacity`, drained again at half. `depth` is read under the
    /// router's lock, so the last caller always decides with the current depth.
    func refresh(shard: Int, depth: () -> Int, capacity: Int) {
        update { state in
            let current = depth()
            if current >= capacity {
                state.fullShards.insert(shard)
            } else if current <= capacity / 2 {
                state.fullShards.remove(shard)
            }
        }
    }

    /// The replica went over (true) or back under half (false) its byte budget.
    func setOverBudget(_ over: Bool) {
        update { $0.overBudget = over }
    }

    private func update(_ change: (inout State) -> Void) {
        state.withLock { state in
            change(&state)
            let wanted = Set(state.owner.filter { state.overBudget || state.fullShards.contains($0.value) }.keys)
            let pause = wanted.subtracting(state.paused).sorted()
            let resume = state.paused.subtracting(wanted).sorted()
            state.paused = wanted
            if !pause.isEmpty || !resume.isEmpty { apply(pause, resume) }
        }
    }

    private static func leastLoaded(_ owner: [TopicPartition: Int], shardCount: Int) -> Int {
        var load = [Int](repeating: 0, count: shardCount)
        for shard in owner.values where load.indices.contains(shard) { load[shard] += 1 }
        return load.indices.min { load[$0] < load[$1] } ?? 0
    }
}

/// Bytes of consumed records the replica holds (queued for a shard, in inference, or awaiting their output's
/// acknowledgement), against `--max-buffered-bytes`.
final class ByteBudget: Sendable {
    let limit: Int
    private let state = Mutex((used: 0, peak: 0, over: false))

    private let waiters = Mutex<[UInt64: CheckedContinuation<Void, Never>]>([:])
    private let nextWaiter = Atomic<UInt64>(0)

    init(limit: Int) {
        self.limit = max(1, limit)
    }

    var isOver: Bool { state.withLock { $0.over } }

    /// Waits while the budget is over its limit (until back under half), or until the task is cancelled.
    func waitWhileOver() async {
        let id = nextWaiter.add(1, ordering: .relaxed).newValue
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let over = state.withLock { $0.over }
                guard over, !Task.isCancelled else { return continuation.resume() }
                waiters.withLock { $0[id] = continuation }
                // Released in between: do not wait for a wake-up that already happened.
                if !state.withLock({ $0.over }) { wake(id) }
            }
        } onCancel: {
            wake(id)
        }
    }

    private func wake(_ id: UInt64) {
        waiters.withLock { $0.removeValue(forKey: id) }?.resume()
    }

    private func wakeAll() {
        let all = waiters.withLock { waiters in
            defer { waiters.removeAll() }
            return Array(waiters.values)
        }
        all.forEach { $0.resume() }
    }

    var used: Int { state.withLock { $0.used } }
    /// The most bytes held at once since start.
    var peak: Int { state.withLock { $0.peak } }

    /// Adds a record's bytes. Returns true when that took the budget over its limit (a transition).
    func add(_ bytes: Int) -> Bool {
        state.withLock { state in
            state.used = state.used.addingReportingOverflow(max(0, bytes)).overflow ? .max : state.used + max(0, bytes)
            state.peak = max(state.peak, state.used)
            guard !state.over, state.used > limit else { return false }
            state.over = true
            return true
        }
    }

    /// Releases a record's bytes. Returns true when that took the budget back under half (a transition).
    func release(_ bytes: Int) -> Bool {
        let transition = state.withLock { state in
            state.used = max(0, state.used - max(0, bytes))
            guard state.over, state.used <= limit / 2 else { return false }
            state.over = false
            return true
        }
        if transition { wakeAll() }
        return transition
    }
}
