import Foundation
import Kafka
import KafkaTestSupport
import Testing

/// `--delivery exactly-once` on Tansu across a crash (kill -9, restart with the same transactional id), a
/// rebalance, the crash of one of two replicas, and two replicas misconfigured with one transactional id.
/// Outputs are read as a `read_committed` consumer; since Tansu 0.6 serves aborted transactions' records to
/// it, exactly once is asserted on the records the log's transaction markers place in committed
/// transactions (`CommittedView`), which is what a Kafka broker serves: strictly where one producer wrote
/// them, and with Tansu's deferred offset commits as a known issue where two replicas did.
@Suite struct ExactlyOnceTests {
    @Test("exactly-once: after kill -9 and a restart, a read_committed reader sees every event's output",
          .enabled(if: E2EFixtures.sharedDataPresent, "needs ../shared/models and ../shared/data"),
          .timeLimit(.minutes(6)))
    func killNineThenRestart() async throws {
        try ProductBinaries.require()
        let input = try await TestBroker.createTopic("e2e-eos-in", partitions: 4)
        let output = try await TestBroker.createTopic("e2e-eos-out", partitions: 2)
        let dlq = try await TestBroker.createTopic("e2e-eos-dlq", partitions: 1)
        let group = TestBroker.uniqueTopic("e2e-eos-group")
        let arguments = E2EFixtures.runArguments(
            input: input, output: output, dlq: dlq, group: group,
            extra: ["--model", E2EFixtures.modelDirectory("v2").path, "--delivery", "exactly-once",
                    "--transactional-id", TestBroker.uniqueTopic("e2e-eos-txn"),
                    // The killed member never says goodbye: let the group drop it after 10 s, not 45.
                    "--kafka", "session.timeout.ms=10000"])

        try await withE2EScope { scope in
            let feed = try scope.feed(topic: input, malformedEvery: 25)
            let recorder = try await scope.recorder(results: output, deadLetters: dlq, isolation: .readCommitted)
            // What physically reached the topics, aborted transactions included: shows whether the kill left
            // an aborted transaction's results behind for the broker to hide.
            let everything = try await scope.recorder(results: output, deadLetters: dlq, isolation: .readUncommitted)
            try await feed.send(count: 120)
            let first = try scope.stream("eos-first", arguments)
            try await recorder.wait(for: "the first instance's first committed outputs", timeout: .seconds(120),
                                    progress: { "\($0.count) outputs\n\(first.logTail())" }) { $0.count >= 20 }
            feed.startStreaming(pacing: .milliseconds(60), limit: 320)
            // Aim the kill at an open transaction whose results already reached the broker: more outputs in
            // the log than a read_committed reader sees. Best effort: commits come every 500 ms, and if the
            // moment is missed the kill still lands mid-stream.
            let openTransactionSeen = (try? await everything.wait(for: "results of an open transaction", timeout: .seconds(10)) {
                $0.count > recorder.outputs.count
            }) != nil

            first.kill()
            #expect(try await first.waitForExit(timeout: .seconds(10)) == .signalled(SIGKILL))
            let beforeRestart = (committed: recorder.outputs.count, inLog: everything.outputs.count)
            let committedBeforeKill = Set(recorder.outputs.all.map(\.eventID))

            let second = try scope.stream("eos-second", arguments)
            let sent = try await feed.finishStreaming()
            let outputs = try await recorder.wait(
                for: "a committed output for each of the \(sent.count) events after the restart", timeout: .seconds(180),
                progress: { outputs in
                    let missing = outputs.missing(sent)
                    return "\(missing.count) events without output: \(missing.idList)\n\(second.logTail())"
                }) { $0.coversAll(sent) }

            #expect(outputs.undecodable.isEmpty)
            #expect(outputs.missing(sent).isEmpty)
            let seenTwice = outputs.duplicated(sent)
            // A committed transaction's events are never redone: their offsets were committed with them.
            let redone = seenTwice.filter { committedBeforeKill.contains($0.id) }
            #expect(redone.isEmpty, "events committed before the kill were processed again: \(redone.idList)")
            let physical = try await everything.wait(for: "the uncommitted view of every output", timeout: .seconds(30)) {
                $0.coversAll(sent)
            }
            second.terminate()
            #expect(try await second.waitForExit(timeout: .seconds(40)) == .exited(0), "\(second.logTail())")

            // The killed instance's open transaction was aborted when the restarted producer (same
            // transactional id) fenced it. Kafka hides its results from read_committed readers; Tansu 0.6 hides
            // them only while the transaction is open and serves them once aborted, so the events it held show
            // up twice above. The markers in the log tell them apart: exactly once is asserted on what Kafka serves.
            let view = try await recorder.committedToEnd(topics: [output: 2, dlq: 1])
            view.expectExactlyOnce(sent)
            print("[e2e] exactly-once, kill -9 then restart (Tansu): sent \(sent.count), as Tansu serves read_committed: "
                  + "delivered \(outputs.count), lost \(outputs.missing(sent).count), duplicates \(seenTwice.count) "
                  + "(of which committed before the kill: \(redone.count)); " + view.summary(sent))
            print("[e2e] exactly-once: kill -9 with \(beforeRestart.committed) committed and \(beforeRestart.inLog) outputs in the log "
                  + "(open transaction seen: \(openTransactionSeen)), \(sent.count) events; "
                  + "\(physical.duplicated(sent).count) twice in the log (read_uncommitted)")
        }
    }

    @Test("exactly-once: a second replica joins while transactions are open (range assignor); each event answered once",
          .enabled(if: E2EFixtures.sharedDataPresent, "needs ../shared/models and ../shared/data"),
          .timeLimit(.minutes(6)))
    func secondReplicaJoinsMidStream() async throws {
        try ProductBinaries.require()
        let input = try await TestBroker.createTopic("e2e-eos-rb-in", partitions: 4)
        let output = try await TestBroker.createTopic("e2e-eos-rb-out", partitions: 2)
        let dlq = try await TestBroker.createTopic("e2e-eos-rb-dlq", partitions: 1)
        let group = TestBroker.uniqueTopic("e2e-eos-rb-group")
        func arguments(_ instance: String) -> [String] {
            E2EFixtures.runArguments(
                input: input, output: output, dlq: dlq, group: group,
                extra: ["--model", E2EFixtures.modelDirectory("v2").path, "--delivery", "exactly-once",
                        // The transactional id is derived from the instance id: <group>-<instance>.
                        "--instance-id", instance,
                        // Tansu 0.6 never completes cooperative-sticky's second phase.
                        "--kafka", "partition.assignment.strategy=range"])
        }

        try await withE2EScope { scope in
            let feed = try scope.feed(topic: input, malformedEvery: 25)
            let recorder = try await scope.recorder(results: output, deadLetters: dlq, isolation: .readCommitted)
            try await feed.send(count: 60)
            let first = try scope.stream("eos-rb-a", arguments("replica-a"))
            try await recorder.wait(for: "the first replica's first committed outputs", timeout: .seconds(120),
                                    progress: { "\($0.count) outputs\n\(first.logTail())" }) { $0.count >= 20 }
            feed.startStreaming(pacing: .milliseconds(50), limit: 300, answered: { recorder.outputs.count })
            let second = try scope.stream("eos-rb-b", arguments("replica-b"))
            // The join revokes the first replica's partitions while its transaction is open.
            try await second.waitForLog("partitions assigned", timeout: .seconds(120))
            let sent = try await feed.finishStreaming()
            try await recorder.wait(
                for: "a committed output for each of the \(sent.count) events", timeout: .seconds(180),
                progress: { "\($0.missing(sent).count) events without output\n\(scope.logTails())" }) { $0.coversAll(sent) }
            first.terminate()
            second.terminate()
            #expect(try await first.waitForExit(timeout: .seconds(40)) == .exited(0), "\(first.logTail())")
            #expect(try await second.waitForExit(timeout: .seconds(40)) == .exited(0), "\(second.logTail())")
            let outputs = try await recorder.readToEnd(topics: [output: 2, dlq: 1])

            let aborts = [first, second].map { $0.log.components(separatedBy: "aborting the transaction").count - 1 }.reduce(0, +)
            let revocations = first.log.components(separatedBy: "partitions revoked").count - 1
            // An aborted transaction's records are served by Tansu 0.6 but not by Kafka: assert on Kafka's view.
            let view = try CommittedView(outputs, topics: [output: 2, dlq: 1])
            print("[e2e] exactly-once, second replica joins mid-stream (Tansu, range): sent \(sent.count), as Tansu serves "
                  + "read_committed: delivered \(outputs.all.count), lost \(outputs.missing(sent).count), "
                  + "duplicates \(outputs.duplicated(sent).count); " + view.summary(sent)
                  + "; revocations of the first replica \(revocations), transactions aborted \(aborts)")
            #expect(revocations >= 1, "the join must have revoked partitions of the first replica")
            #expect(outputs.undecodable.isEmpty)
            view.expectExactlyOnce(sent, producers: .several)
        }
    }

    @Test("exactly-once: kill -9 of one of two replicas; the other takes its partitions over, the killed one restarts; each event answered",
          .enabled(if: E2EFixtures.sharedDataPresent, "needs ../shared/models and ../shared/data"),
          .timeLimit(.minutes(8)))
    func killOneOfTwoReplicas() async throws {
        try ProductBinaries.require()
        let input = try await TestBroker.createTopic("e2e-eos-k2-in", partitions: 4)
        let output = try await TestBroker.createTopic("e2e-eos-k2-out", partitions: 2)
        let dlq = try await TestBroker.createTopic("e2e-eos-k2-dlq", partitions: 1)
        let group = TestBroker.uniqueTopic("e2e-eos-k2-group")
        func arguments(_ instance: String) -> [String] {
            E2EFixtures.runArguments(
                input: input, output: output, dlq: dlq, group: group,
                extra: ["--model", E2EFixtures.modelDirectory("v2").path, "--delivery", "exactly-once",
                        // Each replica's transactional id, <group>-<instance>, is its own and survives its restart.
                        "--instance-id", instance,
                        // Tansu 0.6 never completes cooperative-sticky's second phase.
                        "--kafka", "partition.assignment.strategy=range",
                        // The killed member never leaves the group: let the group drop it after 10 s, not 45.
                        "--kafka", "session.timeout.ms=10000"])
        }

        try await withE2EScope { scope in
            let feed = try scope.feed(topic: input, malformedEvery: 25)
            let recorder = try await scope.recorder(results: output, deadLetters: dlq, isolation: .readCommitted)
            try await feed.send(count: 60)
            let a = try scope.stream("eos-k2-a", arguments("replica-a"))
            try await a.waitForLog("[StreamPipeline] partitions assigned", timeout: .seconds(120))
            let b = try scope.stream("eos-k2-b", arguments("replica-b"))
            try await waitFor("both replicas owning partitions", timeout: .seconds(120), b) {
                !ServiceLog.ownedPartitions(in: a.log).isEmpty && !ServiceLog.ownedPartitions(in: b.log).isEmpty
            }
            // A stream that keeps coming through the takeover and B's return, paced by time alone: while B's
            // transaction is open no output is visible to read_committed, and a feed held back by answers
            // would leave A idle, with nothing to commit when B comes back (see expectExactlyOnce on Tansu).
            feed.startStreaming(pacing: .milliseconds(50), limit: 600)
            try await recorder.awaitMore(20, "committed outputs while both replicas serve", logs: { scope.logTails() })
            let bOwned = ServiceLog.ownedPartitions(in: b.log)

            let killedAt = ContinuousClock.now
            b.kill()
            #expect(try await b.waitForExit(timeout: .seconds(10)) == .signalled(SIGKILL))
            // Tansu hides open transactions from read_committed readers, so what is visible now was committed.
            let committedBeforeKill = Set(recorder.outputs.all.map(\.eventID))
            try await waitFor("A owning all 4 partitions after B's session timed out", timeout: .seconds(120), a) {
                ServiceLog.ownedPartitions(in: a.log).count == 4
            }
            let takeover = ContinuousClock.now - killedAt

            // B's last transaction stays open until its transactional id is used again: its restart (as a
            // StatefulSet restarts a pod under the same name) fences and aborts it, so the outputs partitions'
            // last stable offset moves on and A's committed results become visible.
            let restarted = try scope.stream("eos-k2-b-again", arguments("replica-b"))
            try await restarted.waitForLog("[StreamPipeline] partitions assigned", timeout: .seconds(120))
            let sent = try await feed.finishStreaming()
            let outputs = try await recorder.wait(
                for: "a committed output for each of the \(sent.count) events", timeout: .seconds(180),
                progress: { "\($0.missing(sent).count) events without output: \($0.missing(sent).idList)\n\(scope.logTails())" }) {
                $0.coversAll(sent)
            }
            a.terminate()
            restarted.terminate()
            #expect(try await a.waitForExit(timeout: .seconds(40)) == .exited(0), "\(a.logTail())")
            #expect(try await restarted.waitForExit(timeout: .seconds(40)) == .exited(0), "\(restarted.logTail())")

            let seenTwice = outputs.duplicated(sent)
            // A committed transaction's offsets are honoured by the partitions' next owner.
            let redone = seenTwice.filter { committedBeforeKill.contains($0.id) }
            #expect(outputs.undecodable.isEmpty)
            #expect(outputs.missing(sent).isEmpty)
            #expect(redone.isEmpty, "events committed before the kill were processed again: \(redone.idList)")
            // The killed replica's open transaction is aborted; Kafka hides its records, Tansu 0.6 serves them.
            let view = try await recorder.committedToEnd(topics: [output: 2, dlq: 1])
            view.expectExactlyOnce(sent, producers: .several)
            print("[e2e] exactly-once, kill -9 of one of two replicas (Tansu, range): sent \(sent.count), as Tansu serves "
                  + "read_committed: delivered \(outputs.count), lost \(outputs.missing(sent).count), duplicates \(seenTwice.count) "
                  + "(of which committed before the kill: \(redone.count)); " + view.summary(sent)
                  + "; dead letters \(view.committed.all.filter { $0.deadLetter != nil }.count); "
                  + "B owned \(bOwned.sorted()); A owned all 4 partitions \(takeover) after the kill")
        }
    }

    @Test("exactly-once: a second replica started with the same transactional id fences the first, which stops naming it; the second goes on",
          .enabled(if: E2EFixtures.sharedDataPresent, "needs ../shared/models and ../shared/data"),
          .timeLimit(.minutes(6)))
    func sameTransactionalIDFencesTheFirstReplica() async throws {
        try ProductBinaries.require()
        let input = try await TestBroker.createTopic("e2e-eos-fence-in", partitions: 4)
        let output = try await TestBroker.createTopic("e2e-eos-fence-out", partitions: 2)
        let dlq = try await TestBroker.createTopic("e2e-eos-fence-dlq", partitions: 1)
        let group = TestBroker.uniqueTopic("e2e-eos-fence-group")
        // The misconfiguration under test: one --transactional-id given to two replicas of one group.
        let transactionalID = TestBroker.uniqueTopic("e2e-eos-fence-txn")
        func arguments(_ instance: String) -> [String] {
            E2EFixtures.runArguments(
                input: input, output: output, dlq: dlq, group: group,
                extra: ["--model", E2EFixtures.modelDirectory("v2").path, "--delivery", "exactly-once",
                        "--transactional-id", transactionalID, "--instance-id", instance,
                        // Tansu 0.6 never completes cooperative-sticky's second phase.
                        "--kafka", "partition.assignment.strategy=range",
                        // Should the fenced replica not leave the group cleanly, its partitions move after 10 s.
                        "--kafka", "session.timeout.ms=10000"])
        }

        try await withE2EScope { scope in
            let feed = try scope.feed(topic: input, malformedEvery: 25)
            let recorder = try await scope.recorder(results: output, deadLetters: dlq, isolation: .readCommitted)
            try await feed.send(count: 60)
            let first = try scope.stream("eos-fence-a", arguments("replica-a"))
            try await recorder.wait(for: "the first replica's first committed outputs", timeout: .seconds(120),
                                    progress: { "\($0.count) outputs\n\(first.logTail())" }) { $0.count >= 20 }
            feed.startStreaming(pacing: .milliseconds(50), limit: 300, answered: { recorder.outputs.count })
            try await feed.waitUntilSent(90, timeout: .seconds(60))
            // Tansu hides open transactions from read_committed readers (its last stable offset works), so
            // what is visible now was committed by the first replica.
            let committedBeforeSecond = Set(recorder.outputs.all.map(\.eventID))

            // The second replica's InitProducerId bumps the id's epoch: the first one's next transactional
            // request is refused as fenced, and it must stop rather than go on beside it.
            let second = try scope.stream("eos-fence-b", arguments("replica-b"))
            let firstExit = try await first.waitForExit(timeout: .seconds(120))
            #expect(firstExit != .exited(0) && firstExit != .signalled(SIGKILL), "\(firstExit)\n\(first.logTail())")
            #expect(first.log.contains("producer was fenced: another producer started with transactional.id '\(transactionalID)'"),
                    "the first replica's error must name the fence and the id\n\(first.logTail())")

            // The stream holds back while events wait for outputs: stop it rather than wait for its limit.
            let sent = try await feed.stopStreaming()
            // The second replica joined while the fenced one was leaving. Tansu 0.6's group coordinator then
            // stays in the rebalance for good: its broker log answers the survivor's every JoinGroup, Heartbeat
            // and SyncGroup with REBALANCE_IN_PROGRESS (27), so it is never assigned a partition (seen for 40
            // minutes; session.timeout.ms does not end it). A Kafka broker completes the rebalance without the
            // member that left. The takeover is asserted where it happens.
            var takeover: Outputs?
            await withKnownIssue("Tansu 0.6 never completes a rebalance a member left in the middle of", isIntermittent: true) {
                try await second.waitForLog("partitions assigned", timeout: .seconds(90))
                takeover = try await recorder.wait(
                    for: "a committed output for each of the \(sent.count) events from the second replica", timeout: .seconds(180),
                    progress: { "\($0.missing(sent).count) events without output: \($0.missing(sent).idList)\n\(second.logTail())" }) {
                    $0.coversAll(sent)
                }
            }
            #expect(second.exit == nil, "the second replica goes on\n\(second.logTail())")
            let outputs = takeover ?? recorder.outputs
            let seenTwice = outputs.duplicated(sent)
            // Strict on Tansu: offsets committed with the first replica's transactions are honoured, so none of
            // the events it had committed before the second one started is answered again.
            let redone = seenTwice.filter { committedBeforeSecond.contains($0.id) }
            #expect(redone.isEmpty, "events committed before the fence were processed again: \(redone.idList)")
            #expect(outputs.undecodable.isEmpty)
            if takeover != nil { #expect(outputs.missing(sent).isEmpty) }
            second.terminate()
            #expect(try await second.waitForExit(timeout: .seconds(40)) == .exited(0), "\(second.logTail())")

            // The fenced replica's open transaction is aborted when the second producer takes the id. Kafka
            // hides an aborted transaction's records from read_committed readers; Tansu 0.6 serves them once
            // aborted. The markers in the log tell them apart.
            var committedSummary = "not counted: the second replica never took over"
            if takeover != nil {
                let view = try await recorder.committedToEnd(topics: [output: 2, dlq: 1])
                view.expectExactlyOnce(sent, producers: .several)
                committedSummary = view.summary(sent)
            }
            print("[e2e] exactly-once, two replicas with one transactional.id (Tansu, range): sent \(sent.count), "
                  + "as Tansu serves read_committed: delivered \(outputs.count), lost \(outputs.missing(sent).count), "
                  + "duplicates \(seenTwice.count) (of which committed before the second replica started: \(redone.count)); "
                  + committedSummary + "; \(committedBeforeSecond.count) committed before it; first replica: \(firstExit); "
                  + "second replica took over: \(takeover != nil)")
        }
    }
}
