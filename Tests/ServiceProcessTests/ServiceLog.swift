/// Reads what `minirbt-stream run` logs (swift-log's default format: `… info minirbt-stream: key=value
/// [Module] message`) about its partitions and its work.
enum ServiceLog {
    /// The totals of the service's final "stopped" line.
    struct StoppedCounts: Equatable {
        var consumed: Int
        var results: Int
        var deadLetters: Int

        /// Results plus dead letters: every event that got an output.
        var published: Int { results + deadLetters }
    }

    /// `consumed=`, `produced=` and `dead_lettered=` of the last "stopped" line; `nil` if there is none.
    static func stoppedCounts(in log: String) -> StoppedCounts? {
        guard let line = log.split(separator: "\n").last(where: { $0.hasSuffix(" stopped") && $0.contains("consumed=") })
        else { return nil }
        func field(_ name: String) -> Int? {
            line.split(separator: " ").first { $0.hasPrefix(name + "=") }.flatMap { Int($0.dropFirst(name.count + 1)) }
        }
        guard let consumed = field("consumed"), let results = field("produced"), let deadLetters = field("dead_lettered")
        else { return nil }
        return StoppedCounts(consumed: consumed, results: results, deadLetters: deadLetters)
    }

    /// The partition numbers the service held when it began to stop: assignments minus revocations and
    /// losses, in log order.
    static func ownedPartitions(in log: String) -> Set<Int> {
        var owned = Set<Int>()
        for line in log.split(separator: "\n") {
            if line.contains("stopping: draining shards") { break }
            if line.contains("partitions assigned") {
                owned.formUnion(partitionNumbers(in: line))
            } else if line.contains("partitions revoked") || line.contains("partitions lost") {
                owned.subtract(partitionNumbers(in: line))
            }
        }
        return owned
    }

    /// `topic[3]` → 3, for every partition named on the line.
    static func partitionNumbers(in line: Substring) -> [Int] {
        line.split(separator: "[").dropFirst().compactMap { piece in
            piece.split(separator: "]").first.flatMap { Int($0) }
        }
    }
}
