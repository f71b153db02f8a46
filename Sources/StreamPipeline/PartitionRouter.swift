import Kafka
import Synchronization

/// Pins every assigned partition to one shard for as long as it stays assigned, spreading partitions
/// evenly; remembers which partitions were paused because their shard was full.
final class PartitionRouter: Sendable {
    private struct State {
        var owner: [TopicPartition: Int] = [:]
        var paused: [Int: Set<TopicPartition>] = [:]
    }

    private let shardCount: Int
    private let state = Mutex(State())

    init(shardCount: Int) {
        self.shardCount = shardCount
    }

    var assigned: [TopicPartition] { state.withLock { $0.owner.keys.sorted() } }

    func assign(_ partitions: [TopicPartition]) {
        state.withLock { state in
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
                for shard in state.paused.keys { state.paused[shard]?.remove(partition) }
            }
        }
    }

    /// Marks every partition of a full shard paused; returns those not already paused.
    func pauseAll(shard: Int) -> [TopicPartition] {
        state.withLock { state in
            let partitions = Set(state.owner.filter { $0.value == shard }.keys)
            let fresh = partitions.subtracting(state.paused[shard] ?? [])
            state.paused[shard, default: []].formUnion(fresh)
            return fresh.sorted()
        }
    }

    /// The partitions paused for a shard that has drained; they are no longer marked paused.
    func takePaused(shard: Int) -> [TopicPartition] {
        state.withLock { state in
            let paused = state.paused[shard] ?? []
            state.paused[shard] = nil
            return paused.sorted()
        }
    }

    private static func leastLoaded(_ owner: [TopicPartition: Int], shardCount: Int) -> Int {
        var load = [Int](repeating: 0, count: shardCount)
        for shard in owner.values { load[shard] += 1 }
        return load.indices.min { load[$0] < load[$1] } ?? 0
    }
}
