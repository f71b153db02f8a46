import Foundation
import Kafka
import KafkaTestSupport
import StreamPipeline
import Testing

/// A replica started after a deploy, and a canary rollout with promote.
@Suite struct RolloutTests {
    /// Distinct keys per round: enough that the canary share is measured to about ±3 % (one standard
    /// deviation); the hash is deterministic, so the outcome is the same on every run.
    static let keyCount = 200
    static let canaryPercent = 20
    static let tolerance = 7

    @Test("a late replica starts on the deployed version; canary 20 % answers a stable ~20 % of keys; promote moves all",
          .enabled(if: E2EFixtures.sharedDataPresent, "needs ../shared/models and ../shared/data"),
          .timeLimit(.minutes(8)))
    func lateReplicaCanaryAndPromote() async throws {
        try ProductBinaries.require()
        try await withE2EScope { scope in
            let plane = try await ControlPlane.prepare(in: scope)
            // Deployed while no instance runs: nobody can acknowledge it yet, so no --wait.
            try await plane.rolloutSucceeds(["deploy", plane.deployment, "v2"])

            let input = try await TestBroker.createTopic("e2e-canary-in", partitions: 4)
            let output = try await TestBroker.createTopic("e2e-canary-out", partitions: 2)
            let dlq = try await TestBroker.createTopic("e2e-canary-dlq", partitions: 1)
            let instance = "e2e-canary-\(UUID().uuidString.prefix(6))"
            let feed = try scope.feed(topic: input)
            let recorder = try await scope.recorder(results: output, deadLetters: dlq)
            // The fallback is v1: only the control topic can make it serve v2.
            let service = try scope.stream("canary", E2EFixtures.runArguments(
                input: input, output: output, dlq: dlq, group: TestBroker.uniqueTopic("e2e-canary-group"),
                extra: plane.serviceArguments(instance: instance, fallback: "v1")))

            /// Sends every key once, with ids `key#round`, and returns the answering version per key.
            func round(_ number: Int) async throws -> [String: String] {
                let start = feed.count
                for index in 0..<Self.keyCount {
                    try await feed.send(key: "user-\(index)", id: "user-\(index)#\(number)")
                }
                let sent = Array(feed.sent[start...])
                let outputs = try await recorder.wait(
                    for: "results of round \(number)", timeout: .seconds(150),
                    progress: { "\($0.missing(sent).count) missing\n\(service.logTail())" }) {
                    $0.coversAll(sent)
                }
                #expect(outputs.duplicated(sent).isEmpty, "round \(number): \(outputs.duplicated(sent).idList)")
                return Dictionary(sent.compactMap { event in
                    outputs.byEventID[event.id]?.first?.result.map { (event.key, $0.model.version) }
                }) { first, _ in first }
            }

            // The replica came up after the deploy: it loaded v2 before consuming, so every result is v2.
            let initial = try await round(0)
            #expect(Set(initial.values) == ["v2"], "a replica started after deploying v2 served \(Set(initial.values))")
            let log = service.log
            let ready = log.split(separator: "\n").first { $0.contains("model ready") }
            #expect(ready?.contains("version=v2") == true, "the model ready at start-up should be v2: \(ready ?? "none")")
            #expect((log.range(of: "model ready")?.lowerBound ?? log.endIndex) < (log.range(of: "consuming")?.lowerBound ?? log.startIndex),
                    "the model should be ready before consuming starts\n\(service.logTail())")

            try await plane.rolloutSucceeds(["deploy", plane.deployment, "v1", "--canary", "\(Self.canaryPercent)", "--wait"])
            let first = try await round(1)
            let second = try await round(2)
            let candidates = Set(first.filter { $0.value == "v1" }.keys)
            #expect(Set(first.values).isSubset(of: ["v1", "v2"]))
            #expect(candidates == Set(second.filter { $0.value == "v1" }.keys), "the canary must pick the same keys every time")
            let share = candidates.count * 100 / Self.keyCount
            #expect(abs(share - Self.canaryPercent) <= Self.tolerance,
                    "\(share) % of keys went to the canary, expected \(Self.canaryPercent) ± \(Self.tolerance) %")

            try await plane.rolloutSucceeds(["promote", plane.deployment, "--wait"])
            let promoted = try await round(3)
            #expect(Set(promoted.values) == ["v1"], "after promote every key should get v1, got \(Set(promoted.values))")
            let status = try await plane.status()
            #expect(ControlPlane.activeVersion(of: instance, in: status.output) == "sentiment/v1", "\(status.output)")
            print("[e2e] canary: \(candidates.count) of \(Self.keyCount) keys (\(share) %) on the candidate")

            service.terminate()
            #expect(try await service.waitForExit(timeout: .seconds(40)) == .exited(0), "\(service.logTail())")
        }
    }
}
