import Foundation
import Kafka
import KafkaTestSupport
import Testing

/// Two replicas in one consumer group: each takes a share of the partitions, together they answer every
/// event.
@Suite struct GroupSplitTests {
    @Test("two instances in one group split the partitions and together produce every output",
          .enabled(if: E2EFixtures.sharedDataPresent, "needs ../shared/models and ../shared/data"),
          .timeLimit(.minutes(6)))
    func twoInstancesSplitTheWork() async throws {
        try ProductBinaries.require()
        let input = try await TestBroker.createTopic("e2e-split-in", partitions: 4)
        let output = try await TestBroker.createTopic("e2e-split-out", partitions: 2)
        let dlq = try await TestBroker.createTopic("e2e-split-dlq", partitions: 1)
        let group = TestBroker.uniqueTopic("e2e-split-group")
        let arguments = E2EFixtures.runArguments(input: input, output: output, dlq: dlq, group: group, shards: 1,
                                                 extra: ["--model", E2EFixtures.modelDirectory("v2").path])

        try await withE2EScope { scope in
            let feed = try scope.feed(topic: input, malformedEvery: 30)
            let recorder = try await scope.recorder(results: output, deadLetters: dlq)
            let instances = [try scope.stream("split-a", arguments), try scope.stream("split-b", arguments)]
            // Both members joined: from here on the split is stable unless the broker says otherwise.
            for instance in instances {
                try await instance.waitForLog("[StreamPipeline] partitions assigned", timeout: .seconds(120))
            }
            let logOffsets = instances.map { $0.log.utf8.count }

            try await feed.send(count: 200)
            let sent = feed.sent
            let outputs = try await recorder.wait(
                for: "an output for each of the \(sent.count) events", timeout: .seconds(180),
                progress: { outputs in
                    let missing = outputs.missing(sent)
                    return "\(missing.count) events without output: \(missing.idList)\n\(scope.logTails())"
                }) { $0.coversAll(sent) }
            // Read before stopping: leaving the group revokes partitions too.
            let logsWhileStreaming = instances.map(\.log)

            for instance in instances { instance.terminate() }
            for instance in instances {
                let exit = try await instance.waitForExit(timeout: .seconds(40))
                #expect(exit == .exited(0), "\(instance.logTail())")
            }

            // Each instance owned partitions and answered events: its final log line counts what it published.
            let owned = instances.map { ServiceLog.ownedPartitions(in: $0.log) }
            #expect(owned.allSatisfy { !$0.isEmpty }, "both instances should own partitions: \(owned)")
            #expect(owned[0].isDisjoint(with: owned[1]), "a partition is owned twice: \(owned)")
            #expect(owned[0].union(owned[1]).count == 4, "the four partitions should be split: \(owned)")
            let published = instances.map { ServiceLog.stoppedCounts(in: $0.log)?.published }
            for (instance, count) in zip(instances, published) {
                #expect((count ?? 0) > 0, "\(instance.name) should have published outputs\n\(instance.logTail())")
            }

            #expect(outputs.undecodable.isEmpty)
            // Exactly once, unless the group rebalanced while events were flowing (then at-least-once allows
            // a partition's uncommitted tail to be redone by its new owner).
            let rebalanced = zip(logsWhileStreaming, logOffsets).contains { log, offset in
                let later = String(log.utf8.dropFirst(offset)) ?? ""
                return later.contains("partitions revoked") || later.contains("partitions lost")
                    || later.contains("partitions assigned")
            }
            if !rebalanced {
                // Each input partition had one owner throughout, so its results came out in input order.
                let byInputPartition = Dictionary(grouping: outputs.all.filter { $0.result != nil }) {
                    "\($0.record.partition)/\($0.result?.source?.partition ?? -1)"
                }
                for (partitions, answered) in byInputPartition {
                    let offsets = answered.map { $0.result?.source?.offset ?? -1 }
                    #expect(offsets == offsets.sorted(), "output/input partition \(partitions) out of order: \(offsets)")
                }
                #expect(outputs.duplicated(sent).isEmpty, "duplicates without a rebalance: \(outputs.duplicated(sent).idList)")
                #expect(published.compactMap { $0 }.reduce(0, +) == sent.count, "published counts \(published) ≠ \(sent.count) events")
            }
            print("[e2e] split: partitions \(owned.map { $0.sorted() }), published \(published.map { $0 ?? -1 }), rebalanced mid-stream: \(rebalanced)")
        }
    }
}
