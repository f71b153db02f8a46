import Foundation
import Kafka
import KafkaTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// At-least-once under faults Tansu cannot produce, against librdkafka's mock cluster: the real binary
/// connects over TCP to three in-process mock brokers whose leaders, coordinators and answers the test
/// controls. Every scenario counts what it sent and what came out, and asserts lost = 0 and no dead letters
/// (every event is a good review) without a restart of the service.
@Suite(.serialized) struct MockClusterFaultTests {
    /// One mock cluster with an input (4 partitions), output (2) and dead-letter (1) topic, and a group id.
    struct Cluster {
        let mock: KafkaMockCluster
        let input = TestBroker.uniqueTopic("mock-in")
        let output = TestBroker.uniqueTopic("mock-out")
        let dlq = TestBroker.uniqueTopic("mock-dlq")
        let group = TestBroker.uniqueTopic("mock-group")
        let partitions: [String: Int32]

        init() throws {
            mock = try KafkaMockCluster(brokers: 3, logger: TestBroker.logger)
            partitions = [input: 4, output: 2, dlq: 1]
            for (topic, count) in partitions { try mock.createTopic(topic, partitions: count) }
        }

        func kafka(client: String) -> KafkaConfiguration {
            KafkaConfiguration(bootstrapServers: [mock.bootstrapServers], clientID: client)
        }

        /// Moves the leadership of every partition of the three topics to `broker`.
        /// Makes `broker` the leader of every partition of `topics` (default: all of the cluster's topics).
        func lead(_ topics: [String]? = nil, with broker: Int32) throws {
            for (topic, count) in partitions where topics?.contains(topic) ?? true {
                for partition in 0..<count { try mock.setLeader(topic: topic, partition: partition, broker: broker) }
            }
        }

        func runArguments(metricsPort: UInt16 = 0, extra: [String] = []) -> [String] {
            E2EFixtures.runArguments(input: input, output: output, dlq: dlq, group: group,
                                     brokers: mock.bootstrapServers,
                                     extra: ["--model", E2EFixtures.modelDirectory("v2").path,
                                             "--metrics-port", "\(metricsPort)", "--metrics-host", "127.0.0.1"] + extra)
        }

        func recorder() async throws -> OutputRecorder {
            try await OutputRecorder(resultTopic: output, deadLetterTopic: dlq, kafka: kafka(client: "mock-recorder"))
        }
    }

    // MARK: leader down, failover, leader back

    @Test("at-least-once: the output partitions' leader goes down past message.timeout.ms while events keep arriving, leadership fails over, the broker returns and leads again: not ready meanwhile, nothing lost or dead-lettered, no restart",
          .enabled(if: E2EFixtures.sharedDataPresent, "needs ../shared/models and ../shared/data"),
          .timeLimit(.minutes(6)))
    func leaderDownFailoverAndBack() async throws {
        try ProductBinaries.require()
        let cluster = try Cluster()
        // The output partitions led by broker 1; the input partitions and the group by broker 2, which stays
        // up. Taking broker 1 down then stops publishing while events keep arriving, so a publish is always in
        // flight to time out (with the input on broker 1 too, a fast service could have published everything
        // it had fetched before the outage and sit idle through it).
        let outputs = [cluster.output, cluster.dlq]
        try cluster.lead(with: 2)
        try cluster.lead(outputs, with: 1)
        try cluster.mock.setGroupCoordinator(cluster.group, broker: 2)
        let messageTimeout = Duration.seconds(3)
        let metricsPort = try Loopback.freePort()
        func readyz() -> (code: Int, body: String)? { Loopback.httpStatus(port: metricsPort, path: "/readyz") }

        let feed = try FaultFeed(kafka: cluster.kafka(client: "mock-feed"), topic: cluster.input)
        let recorder = try await cluster.recorder()
        try await withE2EScope { scope in
            try await feed.send(count: 160)
            let debug = ProcessInfo.processInfo.environment["MINIRBT_TEST_KAFKA_DEBUG"].map { ["--kafka", "debug=\($0)", "--log-level", "debug"] }
            let service = try scope.stream("mock-failover", cluster.runArguments(
                metricsPort: metricsPort, extra: ["--kafka", "message.timeout.ms=\(messageTimeout.components.seconds * 1000)"] + (debug ?? [])))
            try await recorder.wait(for: "the first outputs", timeout: .seconds(120),
                                    progress: { "\($0.count) outputs\n\(service.logTail())" }) { $0.count >= 12 }
            try await waitFor("/readyz 200 before the fault", timeout: .seconds(30), service) { readyz()?.code == 200 }
            let logBefore = service.log.count

            try cluster.mock.setBrokerDown(1)
            let down = ContinuousClock.now
            try await feed.send(count: 40)
            let stallReason = try await awaitNotReady("/readyz non-200 while the leader is down", service, readyz)
            let notReadyAfter = ContinuousClock.now - down
            try await waitFor("a publishing retry in the log", timeout: .seconds(60), service) {
                String(service.log.dropFirst(logBefore)).contains("publishing failed transiently")
            }
            let atFailover = recorder.outputs.count
            let downFor = ContinuousClock.now - down
            #expect(downFor > messageTimeout, "the outage must outlast message.timeout.ms")

            // Failover: broker 3 takes the output partitions while broker 1 is still down.
            try cluster.lead(outputs, with: 3)
            let failedOver = ContinuousClock.now
            try await waitFor("/readyz 200 after the failover", timeout: .seconds(120), service) { readyz()?.code == 200 }
            let readyAfterFailover = ContinuousClock.now - failedOver
            try await recorder.wait(for: "outputs after the failover", timeout: .seconds(120),
                                    progress: { "\($0.count) outputs\n\(service.logTail())" }) { $0.count > atFailover + 8 }

            // Broker 1 returns and leads again (a preferred-leader election) while more events arrive.
            try cluster.mock.setBrokerUp(1)
            try cluster.lead(outputs, with: 1)
            try await feed.send(count: 40)
            let tally = FaultTally(sent: feed.sent, outputs: try await recorder.awaitEvery(feed.sent, timeout: .seconds(240), service))
            let recovered = ContinuousClock.now - failedOver
            print("[mock] leader down \(downFor) (message.timeout.ms=\(messageTimeout)), failover, leader back: \(tally.summary); "
                  + "/readyz non-200 \(notReadyAfter) after the leader went down (\(stallReason)); "
                  + "ready again \(readyAfterFailover) after the failover; every output \(recovered) after it")
            #expect(service.exit == nil, "the service must ride out the outage without a restart\n\(service.logTail())")
            tally.expectNoneLostOrDeadLettered()
            try await service.expectCleanStop()
        }
        await feed.close()
        await recorder.close()
    }

    // MARK: injected request errors

    @Test("at-least-once: produce, fetch, offset-commit and heartbeat requests answered with retriable errors mid-stream: nothing lost or dead-lettered, no restart",
          .enabled(if: E2EFixtures.sharedDataPresent, "needs ../shared/models and ../shared/data"),
          .timeLimit(.minutes(5)))
    func injectedRequestErrors() async throws {
        try ProductBinaries.require()
        let cluster = try Cluster()
        let feed = try FaultFeed(kafka: cluster.kafka(client: "mock-feed"), topic: cluster.input)
        let recorder = try await cluster.recorder()
        try await withE2EScope { scope in
            try await feed.send(count: 40)
            let service = try scope.stream("mock-errors", cluster.runArguments())
            try await recorder.wait(for: "the first outputs", timeout: .seconds(120),
                                    progress: { "\($0.count) outputs\n\(service.logTail())" }) { $0.count >= 12 }

            // A backlog first, so that the service is the only producer and group member when the errors
            // are injected: they go to the cluster's stack per request kind, and the next requests of that
            // kind, from any client, fail (the recorder's fetches may take some of the fetch errors).
            try await feed.send(count: 80)
            // The errors a broker answers during leader elections, overload and coordinator moves.
            let injected: [(KafkaMockCluster.Request, [String])] = [
                (.produce, ["NOT_LEADER_FOR_PARTITION", "REQUEST_TIMED_OUT", "NOT_ENOUGH_REPLICAS", "NOT_ENOUGH_REPLICAS"]),
                (.fetch, ["NOT_LEADER_FOR_PARTITION", "UNKNOWN_LEADER_EPOCH"]),
                (.offsetCommit, ["COORDINATOR_NOT_AVAILABLE", "REQUEST_TIMED_OUT"]),
                (.heartbeat, ["COORDINATOR_LOAD_IN_PROGRESS"]),
            ]
            for (request, names) in injected {
                cluster.mock.failNext(request, with: try names.map { name in
                    try #require(KafkaMockCluster.errorCode(name), "librdkafka knows no error \(name)")
                })
            }
            let tally = FaultTally(sent: feed.sent, outputs: try await recorder.awaitEvery(feed.sent, timeout: .seconds(180), service))
            print("[mock] injected errors (\(injected.map { "\($0.0): \($0.1.joined(separator: ", "))" }.joined(separator: "; "))): "
                  + tally.summary)
            #expect(service.exit == nil, "\(service.logTail())")
            tally.expectNoneLostOrDeadLettered()
            #expect(tally.duplicates.isEmpty, "\(tally.duplicates.idList)")
            try await service.expectCleanStop()
        }
        await feed.close()
        await recorder.close()
    }

    // MARK: cooperative-sticky churn

    /// Tansu 0.6 never completes the second phase of a cooperative rebalance (see ChurnTests); the mock
    /// cluster does, so the incremental protocol is exercised here. `MINIRBT_TEST_KAFKA_DEBUG=cgrp` logs
    /// librdkafka's group protocol in the replicas' logs.
    @Test("at-least-once with cooperative-sticky: a second replica joins mid-stream and the first leaves (SIGTERM): both served, nothing lost, order per partition kept",
          .enabled(if: E2EFixtures.sharedDataPresent, "needs ../shared/models and ../shared/data"),
          .timeLimit(.minutes(6)))
    func cooperativeStickyChurn() async throws {
        try ProductBinaries.require()
        let cluster = try Cluster()
        let feed = try FaultFeed(kafka: cluster.kafka(client: "mock-feed"), topic: cluster.input)
        let recorder = try await cluster.recorder()
        let debug = ProcessInfo.processInfo.environment["MINIRBT_TEST_KAFKA_DEBUG"].map { ["--kafka", "debug=\($0)", "--log-level", "debug"] }
        let arguments = cluster.runArguments(extra: ["--kafka", "partition.assignment.strategy=cooperative-sticky",
                                                     // The mock holds a join phase open for up to the session timeout (44 s of 45 s seen).
                                                     "--kafka", "session.timeout.ms=10000"] + (debug ?? []))
        try await withE2EScope { scope in
            try await feed.send(count: 40)
            let first = try scope.stream("mock-coop-a", arguments)
            try await recorder.wait(for: "A's first outputs", timeout: .seconds(120),
                                    progress: { "\($0.count) outputs\n\(first.logTail())" }) { $0.count >= 12 }

            let second = try scope.stream("mock-coop-b", arguments)
            try await feed.send(count: 40)
            try await waitFor("B owning partitions", timeout: .seconds(120), second) {
                !ServiceLog.ownedPartitions(in: second.log).isEmpty
            }
            let ownedByA = ServiceLog.ownedPartitions(in: first.log)
            let ownedByB = ServiceLog.ownedPartitions(in: second.log)
            // Incremental: A gives up only what B takes (an eager rebalance revokes all four first).
            let firstRevocation = first.log.split(separator: "\n").first { $0.contains("partitions revoked") }
                .map(ServiceLog.partitionNumbers(in:)) ?? []
            try await feed.send(count: 40)

            try await first.expectCleanStop(timeout: .seconds(60))
            try await waitFor("B owning all 4 partitions", timeout: .seconds(120), second) {
                ServiceLog.ownedPartitions(in: second.log).count == 4
            }
            try await feed.send(count: 40)
            let tally = FaultTally(sent: feed.sent, outputs: try await recorder.awaitEvery(feed.sent, timeout: .seconds(180), second))
            let outputs = tally.outputs
            let disorder = ChurnTests.orderViolations(outputs)
            let publishedByA = ServiceLog.stoppedCounts(in: first.log)?.published ?? 0
            // A left gracefully (drain, then commit before its partitions go): none of A's events is redone.
            // B may redo its own: the mock answers B's OffsetCommit with REBALANCE_IN_PROGRESS while A's leave
            // is pending (Kafka accepts a current-generation commit then), then B's SyncGroup with
            // ILLEGAL_GENERATION, so librdkafka declares B's partitions lost and B redoes what it had not
            // committed. Every duplicate must come from a partition a replica logged as lost.
            // Each loss of a partition lets its uncommitted events be redone once more.
            let losses = [first, second].flatMap { replica in
                replica.log.split(separator: "\n").filter { $0.contains("[Kafka] partitions lost") }
                    .flatMap(ServiceLog.partitionNumbers(in:))
            }
            let lostPartitions = Set(losses)
            let duplicatedPartitions = Set(tally.duplicates.flatMap { event in
                (outputs.byEventID[event.id] ?? []).compactMap { $0.result?.source.map { Int($0.partition) } }
            })
            print("[mock] cooperative-sticky: B joined (A kept \(ownedByA.sorted()), B took \(ownedByB.sorted()); "
                  + "A's first revocation: \(firstRevocation.sorted())), A left: \(tally.summary), "
                  + "per-partition order kept: \(disorder.isEmpty); A published \(publishedByA) before it left; "
                  + "partitions logged as lost \(lostPartitions.sorted()), duplicates on \(duplicatedPartitions.sorted())")
            #expect(!ownedByB.isEmpty && ownedByA.isDisjoint(with: ownedByB), "A \(ownedByA.sorted()), B \(ownedByB.sorted())")
            #expect(publishedByA > 0 && publishedByA < outputs.all.count, "A published \(publishedByA) of \(outputs.all.count)")
            tally.expectNoneLostOrDeadLettered()
            #expect(disorder.isEmpty, "results out of input order: \(disorder.prefix(5))")
            #expect(duplicatedPartitions.isSubset(of: lostPartitions), "redone although never lost: \(tally.duplicates.idList)")
            // The mock can do to A what it does to B: answer an offset commit A sends while B joins with
            // REBALANCE_IN_PROGRESS, then the retry with ILLEGAL_GENERATION, and librdkafka declares all of A's
            // partitions lost. That path is eager by nature and A's uncommitted work is redone, still only on
            // partitions logged as lost (checked above). Seen in 2 of 9 clean-clone CI runs on a loaded machine.
            let aLostItsPartitions = first.log.contains("[Kafka] partitions lost")
            withKnownIssue("the mock cluster failed A's offset commit during the rebalance with ILLEGAL_GENERATION, so A's partitions were lost, not revoked incrementally",
                           isIntermittent: true) {
                #expect((1..<4).contains(firstRevocation.count), "A's first revocation \(firstRevocation.sorted()) is not incremental")
                #expect(duplicatedPartitions.isDisjoint(with: ownedByA), "A's graceful leave left work to redo: \(tally.duplicates.idList)")
            } when: { aLostItsPartitions }
            // At most once plus once per loss of the event's partition (the mock took both replicas' partitions
            // away in one loaded run, and events were then output three times, legitimately).
            let beyondTheLosses = tally.sent.filter { event in
                let results = outputs.byEventID[event.id] ?? []
                let partition = results.compactMap { $0.result?.source.map { Int($0.partition) } }.first
                return results.count > 1 + losses.filter { $0 == partition }.count
            }
            #expect(beyondTheLosses.isEmpty, "events output more often than their partition was lost, plus once: \(beyondTheLosses.idList)")
            try await second.expectCleanStop()
        }
        await feed.close()
        await recorder.close()
    }
}
