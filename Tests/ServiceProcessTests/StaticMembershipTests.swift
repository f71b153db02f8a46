import Foundation
import Kafka
import KafkaTestSupport
import Testing

/// Static group membership (`--group-instance-id`): a replica restarted under the same id within
/// `session.timeout.ms` takes its partitions back without a rebalance, so the other replicas keep theirs.
/// The same restart with dynamic membership is the control: there the other replica is revoked (twice: at
/// the leave and at the rejoin), which shows that the check on its log can see a rebalance.
@Suite(.serialized) struct StaticMembershipTests {
    @Test("one of two replicas restarted (SIGTERM) within session.timeout.ms: with static membership the other is not revoked and the restarted one gets its partitions back; nothing lost either way",
          .enabled(if: E2EFixtures.sharedDataPresent, "needs ../shared/models and ../shared/data"),
          .timeLimit(.minutes(8)), arguments: [true, false])
    func restartWithinSessionTimeout(staticMembership: Bool) async throws {
        try ProductBinaries.require()
        let input = try await TestBroker.createTopic("e2e-static-in", partitions: 4)
        let output = try await TestBroker.createTopic("e2e-static-out", partitions: 2)
        let dlq = try await TestBroker.createTopic("e2e-static-dlq", partitions: 1)
        let group = TestBroker.uniqueTopic("e2e-static-group")
        func arguments(instance: String) -> [String] {
            E2EFixtures.runArguments(
                input: input, output: output, dlq: dlq, group: group,
                extra: ["--model", E2EFixtures.modelDirectory("v2").path]
                    + (staticMembership ? ["--group-instance-id", instance] : []) + [
                        // Eager: any rebalance revokes all of A's partitions, so one cannot pass unseen in A's log
                        // (and Tansu 0.6 never finishes a cooperative-sticky rebalance; see ChurnTests).
                        "--kafka", "partition.assignment.strategy=range",
                        // Room for a debug build's restart (model load, join) within the session.
                        "--kafka", "session.timeout.ms=60000"])
        }

        try await withE2EScope { scope in
            let feed = try scope.feed(topic: input)
            let recorder = try await scope.recorder(results: output, deadLetters: dlq)
            func awaitProgress(_ what: String, more: Int = 24) async throws {
                try await recorder.awaitMore(more, what, logs: { scope.logTails() })
            }

            let a = try scope.stream("static-a", arguments(instance: "static-a"))
            try await a.waitForLog("[StreamPipeline] partitions assigned", timeout: .seconds(120))
            feed.startStreaming(pacing: .milliseconds(80), limit: 100_000, answered: { recorder.outputs.count }, maxAhead: 60)
            try await awaitProgress("from A alone")

            let b = try scope.stream("static-b", arguments(instance: "static-b"))
            try await b.waitForLog("[StreamPipeline] partitions assigned", timeout: .seconds(120))
            try await waitFor("A left with its share after B joined", timeout: .seconds(120), a) {
                let (ownedA, ownedB) = (ServiceLog.ownedPartitions(in: a.log), ServiceLog.ownedPartitions(in: b.log))
                return !ownedA.isEmpty && !ownedB.isEmpty && ownedA.isDisjoint(with: ownedB) && ownedA.count + ownedB.count == 4
            }
            try await awaitProgress("with A and B")
            let ownedA = ServiceLog.ownedPartitions(in: a.log)
            let ownedB = ServiceLog.ownedPartitions(in: b.log)

            // The rolling restart of B: SIGTERM, then the same instance id (with static membership) again.
            let aLogAtRestart = a.log.count
            b.terminate()
            let stopped = ContinuousClock.now
            #expect(try await b.waitForExit(timeout: .seconds(60)) == .exited(0), "SIGTERM must end B cleanly\n\(b.logTail())")
            let restartedB = try scope.stream("static-b-restarted", arguments(instance: "static-b"))
            try await restartedB.waitForLog("[StreamPipeline] partitions assigned", timeout: .seconds(120))
            let backAfter = ContinuousClock.now - stopped
            try await awaitProgress("after B's restart")

            let sent = try await feed.stopStreaming()
            let outputs = try await recorder.wait(
                for: "an output for each of the \(sent.count) events", timeout: .seconds(180),
                progress: { "\($0.missing(sent).count) events without output: \($0.missing(sent).idList)\n\(scope.logTails())" }
            ) { $0.coversAll(sent) }
            // What A logged about its partitions from B's SIGTERM on: nothing, without a rebalance.
            let aChanges = String(a.log.dropFirst(aLogAtRestart)).split(separator: "\n").filter {
                $0.contains("partitions assigned") || $0.contains("partitions revoked") || $0.contains("partitions lost")
            }
            let ownedAfter = ServiceLog.ownedPartitions(in: restartedB.log)
            let lost = outputs.missing(sent)
            let duplicates = outputs.duplicated(sent)
            let deadLetters = outputs.all.filter { $0.deadLetter != nil }
            print("[static] \(staticMembership ? "static" : "dynamic (control)") membership, 2 replicas (range, 4 partitions, "
                  + "session.timeout.ms 60 s), B restarted: "
                  + "sent \(sent.count), delivered \(outputs.all.count), lost \(lost.count), duplicates \(duplicates.count), "
                  + "dead letters \(deadLetters.count); A owned \(ownedA.sorted()), B \(ownedB.sorted()) before, "
                  + "restarted B \(ownedAfter.sorted()) (assigned \(backAfter) after SIGTERM); "
                  + "A's partition changes during the restart: \(aChanges.count)\(aChanges.isEmpty ? "" : " — " + aChanges.prefix(4).joined(separator: " | "))")

            #expect(outputs.undecodable.filter { !($0.keyText ?? "").hasPrefix("sentinel-") }.isEmpty)
            #expect(lost.isEmpty, "\(lost.count) events lost: \(lost.idList)")
            #expect(deadLetters.isEmpty, "good events dead-lettered: \(deadLetters.prefix(5).map(\.eventID))")
            if staticMembership {
                #expect(aChanges.isEmpty, "A saw a rebalance while B restarted under its instance id: \(aChanges)")
                #expect(ownedAfter == ownedB, "the restarted B should get B's partitions back: \(ownedAfter.sorted()) vs \(ownedB.sorted())")
            } else {
                #expect(!aChanges.isEmpty, "without static membership B's leave and rejoin should rebalance A")
            }

            a.terminate()
            restartedB.terminate()
            #expect(try await a.waitForExit(timeout: .seconds(40)) == .exited(0), "\(a.logTail())")
            #expect(try await restartedB.waitForExit(timeout: .seconds(40)) == .exited(0), "\(restartedB.logTail())")
        }
    }
}
