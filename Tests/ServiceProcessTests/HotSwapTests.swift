import Foundation
import Kafka
import KafkaTestSupport
import StreamPipeline
import Testing

/// Rolling model versions into a running service with `minirbt-admin`, while events keep flowing.
@Suite struct HotSwapTests {
    @Test("deploy v1 then v2, rollback, a corrupt v3, a forged deploy: one output per event, each partition switches once per rollout",
          .enabled(if: E2EFixtures.sharedDataPresent, "needs ../shared/models and ../shared/data"),
          .timeLimit(.minutes(8)))
    func rolloutsWhileStreaming() async throws {
        try ProductBinaries.require()
        try await withE2EScope { scope in
            let plane = try await ControlPlane.prepare(in: scope)
            let input = try await TestBroker.createTopic("e2e-swap-in", partitions: 4)
            let output = try await TestBroker.createTopic("e2e-swap-out", partitions: 2)
            let dlq = try await TestBroker.createTopic("e2e-swap-dlq", partitions: 1)
            let instance = "e2e-swap-\(UUID().uuidString.prefix(6))"
            let feed = try scope.feed(topic: input)
            let recorder = try await scope.recorder(results: output, deadLetters: dlq)
            let service = try scope.stream("swap", E2EFixtures.runArguments(
                input: input, output: output, dlq: dlq, group: TestBroker.uniqueTopic("e2e-swap-group"),
                extra: plane.serviceArguments(instance: instance)))

            /// Waits until every event sent so far has its output, and returns how many that is: those were
            /// all answered before whatever the test does next.
            @discardableResult
            func awaitOutputsOfEverythingSent(_ what: String) async throws -> Int {
                let target = feed.sent
                try await recorder.wait(for: "outputs of the \(target.count) events sent \(what)", timeout: .seconds(150),
                                        progress: { "\($0.missing(target).count) still missing\n\(service.logTail())" }) {
                    $0.coversAll(target)
                }
                return target.count
            }

            try await feed.send(count: 10)
            try await awaitOutputsOfEverythingSent("before any rollout (the service joined its group)")
            feed.startStreaming(pacing: .milliseconds(120), answered: { recorder.outputs.count })

            // Deploying the version already serving changes nothing but must be acknowledged.
            try await plane.rolloutSucceeds(["deploy", plane.deployment, "v1", "--wait"])
            let answeredBeforeV2 = try await awaitOutputsOfEverythingSent("before v2 was deployed")
            try await plane.rolloutSucceeds(["deploy", plane.deployment, "v2", "--wait"])
            let afterV2 = feed.count
            // Some events sent after the swap, to be answered by v2 before the rollback is issued.
            try await feed.waitUntilSent(afterV2 + 12, timeout: .seconds(120))
            let status = try await plane.status()
            #expect(ControlPlane.activeVersion(of: instance, in: status.output) == "sentiment/v2",
                    "status should show \(instance) on v2:\n\(status.output)")
            let answeredBeforeRollback = try await awaitOutputsOfEverythingSent("after v2 was deployed")

            try await plane.rolloutSucceeds(["rollback", plane.deployment, "--wait"])
            let afterRollback = feed.count
            try await awaitOutputsOfEverythingSent("after the rollback")

            // A bundle whose weights no longer match its manifest is refused; v1 keeps serving.
            try plane.publishCorruptCopy(of: "v2", as: "v3")
            let corrupt = try await plane.rollout(["deploy", plane.deployment, "v3", "--wait"])
            #expect(!corrupt.succeeded, "deploying a corrupt bundle must fail: \(corrupt)")
            #expect(corrupt.output.contains("model.safetensors") && corrupt.output.contains("sha256 mismatch"),
                    "the failure should name the file and the check: \(corrupt)")
            try await awaitOutputsOfEverythingSent("after the corrupt deploy")

            // A deploy signed with a key the service does not trust is rejected and reported; nothing changes,
            // and `--wait` fails on the instance's report rather than running into its timeout.
            let intruder = try scope.temporaryDirectory("intruder-keys")
            try await AdminProcess.succeed(["keygen", "--out", intruder.path])
            let forged = try await plane.rollout(["deploy", plane.deployment, "v2", "--wait"],
                                                 key: intruder.appendingPathComponent("minirbt-control.key"), waitSeconds: 120)
            #expect(!forged.succeeded, "a deploy signed by an untrusted key must not be applied: \(forged)")
            #expect(forged.output.contains("\(instance) rejected control message") && forged.output.contains("unknown key")
                    && !forged.output.contains("timed out"), "--wait should name the rejection: \(forged)")
            let afterForgery = try await plane.status()
            let row = afterForgery.output.split(separator: "\n").first { $0.hasPrefix(instance) }
            #expect(row?.contains("unknown key") == true, "status should report the rejection:\n\(afterForgery.output)")
            #expect(ControlPlane.activeVersion(of: instance, in: afterForgery.output) == "sentiment/v1", "\(afterForgery.output)")
            try await awaitOutputsOfEverythingSent("after the forged deploy")

            let sent = try await feed.stopStreaming()
            let outputs = try await recorder.wait(for: "outputs of all \(sent.count) events", timeout: .seconds(120),
                                                  progress: { "\($0.count) outputs\n\(service.logTail())" }) {
                $0.coversAll(sent)
            }
            #expect(outputs.undecodable.isEmpty)
            #expect(outputs.duplicated(sent).isEmpty, "events answered twice: \(outputs.duplicated(sent).idList)")
            #expect(outputs.all.allSatisfy { $0.result != nil }, "no event should be dead-lettered")

            // Within each input partition: v1, then v2, then v1 again, each switch happening once.
            let results = outputs.results
            for (partition, answered) in Dictionary(grouping: results, by: { $0.source?.partition ?? -1 }) {
                let versions = answered.sorted { ($0.source?.offset ?? -1) < ($1.source?.offset ?? -1) }.map(\.model.version)
                #expect(Self.runs(versions) == ["v1", "v2", "v1"], "partition \(partition) served \(Self.runs(versions))")
            }
            // What `--wait` promises: an event sent after it returned is answered by the new version (until
            // the next rollout was issued; events answered before that are known from the barriers above).
            let versionByID = Dictionary(results.map { ($0.id, $0.model.version) }) { first, _ in first }
            func versions(_ range: Range<Int>) -> Set<String> {
                Set(sent[range].compactMap { versionByID[$0.id] })
            }
            #expect(versions(0..<answeredBeforeV2) == ["v1"], "answered before v2 was deployed")
            #expect(versions(afterV2..<max(afterV2, answeredBeforeRollback)) == ["v2"], "sent after deploy v2 --wait returned")
            #expect(versions(afterRollback..<sent.count) == ["v1"], "sent after rollback --wait returned, corrupt and forged deploys included")
            #expect(results.allSatisfy { $0.model.name == plane.deployment })
            print("[e2e] hot swap: \(sent.count) events; v2 --wait returned at #\(afterV2), rollback --wait at #\(afterRollback)")

            service.terminate()
            #expect(try await service.waitForExit(timeout: .seconds(40)) == .exited(0), "\(service.logTail())")
        }
    }

    /// `[a, a, b, b, a]` → `[a, b, a]`.
    static func runs(_ values: [String]) -> [String] {
        values.reduce(into: []) { runs, value in
            if runs.last != value { runs.append(value) }
        }
    }
}
