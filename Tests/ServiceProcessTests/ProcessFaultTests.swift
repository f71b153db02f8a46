import Foundation
import Kafka
import KafkaTestSupport
import StreamPipeline
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Process-level faults against a real broker, the real binary and the real model: a crash of the service
/// (kill -9) in at-least-once mode, a broker frozen (SIGSTOP) for longer than the producer's
/// `message.timeout.ms`, and the network link between service and broker cut for as long.
@Suite(.serialized) struct ProcessFaultTests {
    // MARK: kill -9, at-least-once

    @Test("at-least-once: kill -9 mid-stream, restart: nothing lost, duplicates only among published-but-uncommitted events",
          .enabled(if: E2EFixtures.sharedDataPresent, "needs ../shared/models and ../shared/data"),
          .timeLimit(.minutes(6)))
    func killNineAtLeastOnce() async throws {
        try ProductBinaries.require()
        let input = try await TestBroker.createTopic("e2e-k9-in", partitions: 4)
        let output = try await TestBroker.createTopic("e2e-k9-out", partitions: 2)
        let dlq = try await TestBroker.createTopic("e2e-k9-dlq", partitions: 1)
        let group = TestBroker.uniqueTopic("e2e-k9-group")
        let arguments = E2EFixtures.runArguments(
            input: input, output: output, dlq: dlq, group: group,
            extra: ["--model", E2EFixtures.modelDirectory("v2").path,
                    // The killed member never leaves the group: let the group drop it after 10 s, not 45.
                    "--kafka", "session.timeout.ms=10000"])

        try await withE2EScope { scope in
            let feed = try scope.feed(topic: input, malformedEvery: 25)
            let recorder = try await scope.recorder(results: output, deadLetters: dlq)
            try await feed.send(count: 60)
            let first = try scope.stream("k9-first", arguments)
            try await recorder.wait(for: "the first instance's first outputs", timeout: .seconds(120),
                                    progress: { "\($0.count) outputs\n\(first.logTail())" }) { $0.count >= 20 }
            feed.startStreaming(pacing: .milliseconds(60), limit: 320, answered: { recorder.outputs.count })
            // Kill while the stream flows: a few more outputs after the stream started.
            let atStream = recorder.outputs.count
            try await recorder.wait(for: "outputs while the stream flows", timeout: .seconds(120),
                                    progress: { "\($0.count) outputs\n\(first.logTail())" }) { $0.count >= atStream + 15 }

            first.kill()
            #expect(try await first.waitForExit(timeout: .seconds(10)) == .signalled(SIGKILL))

            // The in-flight window: what the group had committed when the service died, and every output the
            // killed instance had published by then (read to the end of the output topics with sentinels).
            let admin = try KafkaAdmin(configuration: TestBroker.kafka, logger: TestBroker.logger)
            let committed = Dictionary(uniqueKeysWithValues: try await admin.consumerGroupLag(groupID: group, topic: input)
                .map { ($0.topicPartition.partition, $0.committed) })
            let firstOutputs = try await recorder.readToEnd(topics: [output: 2, dlq: 1])
            // Published by the killed instance but at or after its partition's committed offset: the only events
            // a restart may legitimately redo.
            let uncommittedPublished = Set(firstOutputs.all.compactMap { output -> String? in
                guard let source = output.source else { return nil }
                let mark = committed[source.partition] ?? nil
                return mark.map { source.offset >= $0 } ?? true ? output.eventID : nil
            })

            let second = try scope.stream("k9-second", arguments)
            let restarted = ContinuousClock.now
            let sent = try await feed.finishStreaming()
            let outputs = try await recorder.wait(
                for: "an output for each of the \(sent.count) events after the restart", timeout: .seconds(240),
                progress: { outputs in
                    let missing = outputs.missing(sent)
                    return "\(missing.count) events without output: \(missing.idList)\n\(second.logTail())"
                }) { $0.coversAll(sent) }
            let caughtUp = ContinuousClock.now - restarted

            let lost = outputs.missing(sent)
            let duplicates = outputs.duplicated(sent)
            let deadLetters = outputs.all.filter { $0.deadLetter != nil }.count
            let outsideWindow = duplicates.filter { !uncommittedPublished.contains($0.id) }
            print("[fault] kill -9 (at-least-once): sent \(sent.count), delivered \(outputs.all.count), lost \(lost.count), "
                  + "duplicates \(duplicates.count), dead letters \(deadLetters) (expected \(sent.filter(\.malformed).count)); "
                  + "killed with \(firstOutputs.all.count) outputs published, committed offsets \(committed.sorted { $0.key < $1.key }.map { "p\($0.key)=\($0.value.map(String.init) ?? "none")" }.joined(separator: " ")), "
                  + "in-flight window (published, not committed) \(uncommittedPublished.count); "
                  + "restart → all outputs in \(caughtUp)")

            let undecodable = outputs.undecodable.filter { !($0.keyText ?? "").hasPrefix("sentinel-") }
            #expect(undecodable.isEmpty, "\(undecodable.count) outputs are neither results nor dead letters")
            #expect(lost.isEmpty, "\(lost.count) events lost: \(lost.idList)")
            for event in sent {
                let kinds = (outputs.byEventID[event.id] ?? []).map { $0.deadLetter != nil ? "dead letter" : "result" }
                let expected = event.malformed ? "dead letter" : "result"
                #expect(kinds.allSatisfy { $0 == expected }, "\(event.id) should have a \(expected), got \(kinds)")
            }
            // The bound: a duplicate is an event the killed instance published but whose offset it had not
            // committed; so duplicates ≤ that window, and an event committed before the kill is never redone.
            #expect(outsideWindow.isEmpty,
                    "events redone although committed (or never published) before the kill: \(outsideWindow.idList)")
            #expect(duplicates.count <= uncommittedPublished.count)
            // Nothing is output three times: one kill, one redo at most.
            let thrice = sent.filter { (outputs.byEventID[$0.id]?.count ?? 0) > 2 }
            #expect(thrice.isEmpty, "events output more than twice: \(thrice.idList)")

            second.terminate()
            #expect(try await second.waitForExit(timeout: .seconds(40)) == .exited(0), "\(second.logTail())")
        }
    }

    // MARK: broker frozen past message.timeout.ms

    @Test("at-least-once: broker SIGSTOPped past message.timeout.ms, then SIGCONT: not ready meanwhile, recovers without restart, nothing lost or dead-lettered",
          .enabled(if: E2EFixtures.sharedDataPresent, "needs ../shared/models and ../shared/data"),
          .timeLimit(.minutes(6)), arguments: [true, false])
    func brokerFrozenPastMessageTimeout(idempotence: Bool) async throws {
        try ProductBinaries.require()
        let broker = try TansuProcess(logName: "minirbt-fault-broker")
        defer { broker.stop() }
        let messageTimeout = Duration.milliseconds(5000)
        let input = try await broker.createTopic("e2e-freeze-in", partitions: 4)
        let output = try await broker.createTopic("e2e-freeze-out", partitions: 2)
        let dlq = try await broker.createTopic("e2e-freeze-dlq", partitions: 1)
        let group = TestBroker.uniqueTopic("e2e-freeze-group")
        let metricsPort = try Loopback.freePort()
        let arguments = ["run", "--brokers", broker.bootstrapServers, "--group", group, "--input-topic", input,
                         "--output-topic", output, "--dlq-topic", dlq, "--shards", "2", "--max-batch", "8",
                         "--metrics-port", "\(metricsPort)", "--metrics-host", "127.0.0.1",
                         "--model", E2EFixtures.modelDirectory("v2").path,
                         "--kafka", "message.timeout.ms=\(messageTimeout.components.seconds * 1000)",
                         "--kafka", "enable.idempotence=\(idempotence)"]
        func readyz() -> (code: Int, body: String)? { Loopback.httpStatus(port: metricsPort, path: "/readyz") }

        let feed = try FaultFeed(kafka: broker.kafka(client: "fault-feed"), topic: input)
        let recorder = try await OutputRecorder(resultTopic: output, deadLetterTopic: dlq, kafka: broker.kafka(client: "fault-recorder"))
        try await withE2EScope { scope in
            try await feed.send(count: FaultFeed.stallBacklog)
            let service = try scope.stream("freeze", arguments)
            try await recorder.wait(for: "the first outputs", timeout: .seconds(120),
                                    progress: { "\($0.count) outputs\n\(service.logTail())" }) { $0.count >= 12 }
            try await waitFor("/readyz 200 before the freeze", timeout: .seconds(30), service) { readyz()?.code == 200 }
            let beforeFreeze = recorder.outputs.count
            let logBefore = service.log.count

            broker.freeze()
            let frozen = ContinuousClock.now
            // The stall as the service sees it: a delivery times out (message.timeout.ms), the publisher
            // retries and /readyz turns non-200.
            let stallReason = try await awaitNotReady("/readyz non-200 while the broker is frozen", service, readyz)
            let notReadyAfter = ContinuousClock.now - frozen
            try await waitFor("a publishing retry in the log", timeout: .seconds(60), service) {
                String(service.log.dropFirst(logBefore)).contains("publishing failed transiently")
            }
            let retryLoggedAfter = ContinuousClock.now - frozen
            let frozenFor = ContinuousClock.now - frozen
            #expect(frozenFor > messageTimeout, "the freeze must outlast message.timeout.ms")
            let duringStall = recorder.outputs.count

            broker.thaw()
            let thawed = ContinuousClock.now
            // With the idempotent producer, Tansu 0.6 answers the retried produce requests with
            // PRODUCER_FENCED, a fatal producer error: the service replaces its producer and goes on.
            try await waitFor("/readyz 200 after SIGCONT", timeout: .seconds(120), service) { readyz()?.code == 200 }
            let readyAgain = ContinuousClock.now - thawed
            let tally = FaultTally(sent: feed.sent, outputs: try await recorder.awaitEvery(feed.sent, timeout: .seconds(240), service))
            let allOutputs = ContinuousClock.now - thawed
            let stallLog = String(service.log.dropFirst(logBefore))
            let retryLines = stallLog.components(separatedBy: "publishing failed transiently").count - 1
            print("[fault] idempotence \(idempotence): broker SIGSTOP \(frozenFor) (message.timeout.ms=\(messageTimeout)): \(tally.summary); "
                  + "outputs before freeze \(beforeFreeze), at thaw \(duringStall); "
                  + "/readyz non-200 \(notReadyAfter) after SIGSTOP (\(stallReason)), first retry logged after \(retryLoggedAfter), "
                  + "\(retryLines) retry lines; recovery after SIGCONT: /readyz 200 in \(readyAgain), all outputs in \(allOutputs); "
                  + "producer replaced: \(stallLog.contains("replaced it with a new one") ? "yes" : "no")")

            #expect(service.exit == nil, "the service must ride out the stall without a restart\n\(service.logTail())")
            tally.expectNoneLostOrDeadLettered()
            if !tally.duplicates.isEmpty {
                // A produce request the broker received before it froze may have been appended although its
                // delivery timed out on our side; the retry then writes the result again (no idempotence).
                print("[fault] duplicates after the freeze: \(tally.duplicates.idList)")
            }
            try await service.expectCleanStop()
        }
        await feed.close()
        await recorder.close()
    }

    // MARK: link to the broker cut past message.timeout.ms

    @Test("at-least-once: the link to the broker cut (veth down) past message.timeout.ms, then restored: not ready meanwhile, recovers without restart, nothing lost or dead-lettered",
          .enabled(if: E2EFixtures.sharedDataPresent, "needs ../shared/models and ../shared/data"),
          .enabled(if: NetworkNamespace.isAvailable, "needs root and iproute2's `ip netns` with veth pairs"),
          .timeLimit(.minutes(6)))
    func linkCutPastMessageTimeout() async throws {
        try ProductBinaries.require()
        let namespace = try NetworkNamespace()
        defer { namespace.remove() }
        // A broker of its own, on the host's end of the Kafka link: the only way to it from the namespace.
        let broker = try TansuProcess(logName: "minirbt-linkcut-broker", host: namespace.hostKafkaAddress)
        defer { broker.stop() }
        let messageTimeout = Duration.milliseconds(5000)
        let input = try await broker.createTopic("e2e-linkcut-in", partitions: 4)
        let output = try await broker.createTopic("e2e-linkcut-out", partitions: 2)
        let dlq = try await broker.createTopic("e2e-linkcut-dlq", partitions: 1)
        let group = TestBroker.uniqueTopic("e2e-linkcut-group")
        let metricsPort = try Loopback.freePort()
        // The status server listens on the probe link, which stays up during the cut.
        let arguments = ["run", "--brokers", broker.bootstrapServers, "--group", group, "--input-topic", input,
                         "--output-topic", output, "--dlq-topic", dlq, "--shards", "2", "--max-batch", "8",
                         "--metrics-port", "\(metricsPort)", "--metrics-host", namespace.probeAddress,
                         "--model", E2EFixtures.modelDirectory("v2").path,
                         "--kafka", "message.timeout.ms=\(messageTimeout.components.seconds * 1000)"]
        func readyz() -> (code: Int, body: String)? {
            Loopback.httpStatus(host: namespace.probeAddress, port: metricsPort, path: "/readyz")
        }

        // The feed and the recorder run on the host, which reaches the broker whether the link is up or not.
        let feed = try FaultFeed(kafka: broker.kafka(client: "linkcut-feed"), topic: input)
        let recorder = try await OutputRecorder(resultTopic: output, deadLetterTopic: dlq, kafka: broker.kafka(client: "linkcut-recorder"))
        try await withE2EScope { scope in
            try await feed.send(count: FaultFeed.stallBacklog)
            let service = try scope.stream("linkcut", arguments, namespace: namespace)
            try await recorder.wait(for: "the first outputs", timeout: .seconds(120),
                                    progress: { "\($0.count) outputs\n\(service.logTail())" }) { $0.count >= 12 }
            try await waitFor("/readyz 200 before the cut", timeout: .seconds(30), service) { readyz()?.code == 200 }
            let beforeCut = recorder.outputs.count
            let logBefore = service.log.count

            try namespace.cutKafkaLink()
            let cut = ContinuousClock.now
            // Events keep arriving while the service cannot see them.
            try await feed.send(count: 40)
            let stallReason = try await awaitNotReady("/readyz non-200 while the link is cut", service, readyz)
            let notReadyAfter = ContinuousClock.now - cut
            try await waitFor("a publishing retry in the log", timeout: .seconds(60), service) {
                String(service.log.dropFirst(logBefore)).contains("publishing failed transiently")
            }
            let retryLoggedAfter = ContinuousClock.now - cut
            // Held until a retry has timed out too (a later retry line than the first ones): the cut then
            // outlasts two message timeouts.
            func retryLines() -> Int { String(service.log.dropFirst(logBefore)).components(separatedBy: "publishing failed transiently").count - 1 }
            let firstRetryLines = retryLines()
            try await waitFor("a retry timing out again in the log", timeout: .seconds(60), service) { retryLines() > firstRetryLines }
            let cutFor = ContinuousClock.now - cut
            #expect(cutFor > messageTimeout, "the cut must outlast message.timeout.ms")
            let duringCut = recorder.outputs.count
            #expect(readyz()?.code != 200, "still not ready at the end of the cut")

            try namespace.restoreKafkaLink()
            let restored = ContinuousClock.now
            try await waitFor("/readyz 200 after the link is restored", timeout: .seconds(120), service) { readyz()?.code == 200 }
            let readyAgain = ContinuousClock.now - restored
            let tally = FaultTally(sent: feed.sent, outputs: try await recorder.awaitEvery(feed.sent, timeout: .seconds(240), service))
            let allOutputs = ContinuousClock.now - restored
            let cutLog = String(service.log.dropFirst(logBefore))
            print("[fault] link cut (veth down) \(cutFor) (message.timeout.ms=\(messageTimeout)): \(tally.summary); "
                  + "outputs before the cut \(beforeCut), at the restore \(duringCut); "
                  + "/readyz non-200 \(notReadyAfter) after the cut (\(stallReason)), first retry logged after \(retryLoggedAfter), "
                  + "\(retryLines()) retry lines; recovery after the restore: /readyz 200 in \(readyAgain), all outputs in \(allOutputs); "
                  + "producer replaced: \(cutLog.contains("replaced it with a new one") ? "yes" : "no")")

            #expect(service.exit == nil, "the service must ride out the cut without a restart\n\(service.logTail())")
            tally.expectNoneLostOrDeadLettered()
            if !tally.duplicates.isEmpty {
                // A produce request the broker appended before the cut whose acknowledgement was lost with the
                // link is retried, and written again unless the idempotent producer's sequence catches it.
                print("[fault] duplicates after the cut: \(tally.duplicates.idList)")
            }
            try await service.expectCleanStop()
        }
        await feed.close()
        await recorder.close()
    }
}
