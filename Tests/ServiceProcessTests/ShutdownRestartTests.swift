import Foundation
import Kafka
import KafkaTestSupport
import Testing

/// SIGTERM in the middle of a stream, then a restart in the same group: nothing is lost.
@Suite struct ShutdownRestartTests {
    @Test("SIGTERM mid-stream drains and exits 0; the restarted service leaves no event without an output",
          .enabled(if: E2EFixtures.sharedDataPresent, "needs ../shared/models and ../shared/data"),
          .timeLimit(.minutes(6)))
    func sigtermThenRestartLosesNothing() async throws {
        try ProductBinaries.require()
        let input = try await TestBroker.createTopic("e2e-term-in", partitions: 4)
        let output = try await TestBroker.createTopic("e2e-term-out", partitions: 2)
        let dlq = try await TestBroker.createTopic("e2e-term-dlq", partitions: 1)
        let group = TestBroker.uniqueTopic("e2e-term-group")
        let arguments = E2EFixtures.runArguments(input: input, output: output, dlq: dlq, group: group,
                                                 extra: ["--model", E2EFixtures.modelDirectory("v2").path])

        try await withE2EScope { scope in
            let feed = try scope.feed(topic: input, malformedEvery: 25)
            let recorder = try await scope.recorder(results: output, deadLetters: dlq)
            // A backlog for the first instance, then a stream that keeps flowing through its shutdown
            // and the restart, so the SIGTERM lands while events are queued and in flight. The backlog is
            // modest because the service drains everything it already took in (a debug build on a loaded
            // machine needs up to ~0.2 s per event).
            try await feed.send(count: 60)
            let first = try scope.stream("term-first", arguments)
            try await recorder.wait(for: "the first instance's first outputs", timeout: .seconds(120),
                                    progress: { "\($0.count) outputs\n\(first.logTail())" }) { $0.count >= 20 }
            feed.startStreaming(pacing: .milliseconds(60), limit: 320)

            let signalled = ContinuousClock.now
            first.terminate()
            let exit = try await first.waitForExit(timeout: .seconds(40))
            let shutdown = ContinuousClock.now - signalled
            #expect(exit == .exited(0), "SIGTERM must end the service cleanly\n\(first.logTail())")
            let firstLog = first.log
            #expect(firstLog.contains("stopping: draining shards"), "the log should say it drained\n\(first.logTail())")
            // Drained: everything it consumed was published (as a result or a dead letter) before it left.
            let counts = ServiceLog.stoppedCounts(in: firstLog)
            #expect(counts != nil && counts?.consumed == counts?.published,
                    "the final log line should show every consumed event published: \(String(describing: counts))\n\(first.logTail())")
            let firstOutputs = recorder.outputs.count

            let second = try scope.stream("term-second", arguments)
            let sent = try await feed.finishStreaming()
            #expect(sent.count == 320)
            let outputs = try await recorder.wait(
                for: "an output for each of the \(sent.count) events after the restart", timeout: .seconds(180),
                progress: { outputs in
                    let missing = outputs.missing(sent)
                    return "\(missing.count) events without output: \(missing.idList)\n\(second.logTail())"
                }) { $0.coversAll(sent) }

            #expect(outputs.undecodable.isEmpty, "\(outputs.undecodable.count) outputs are neither results nor dead letters")
            for event in sent {
                let kinds = (outputs.byEventID[event.id] ?? []).map { $0.deadLetter != nil ? "dead letter" : "result" }
                let expected = event.malformed ? "dead letter" : "result"
                #expect(kinds.allSatisfy { $0 == expected }, "\(event.id) should have a \(expected), got \(kinds)")
            }
            // The first instance committed everything it published before leaving, so the second one redid
            // nothing: a graceful stop is not a crash.
            let duplicated = outputs.duplicated(sent)
            #expect(duplicated.isEmpty, "events output twice after a graceful stop: \(duplicated.idList)")

            print("[e2e] SIGTERM → exit in \(shutdown); \(firstOutputs) of \(sent.count) outputs before the restart")
            second.terminate()
            #expect(try await second.waitForExit(timeout: .seconds(40)) == .exited(0), "\(second.logTail())")
        }
    }
}
