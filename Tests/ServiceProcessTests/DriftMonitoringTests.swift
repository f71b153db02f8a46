import Foundation
import KafkaTestSupport
import ModelControl
import Testing

/// Live drift end to end: a version published with a baseline from the train reviews, a replica streaming
/// the dev reviews (in distribution), then only negative reviews, then text that is not Chinese reviews.
@Suite struct DriftMonitoringTests {
    /// Train reviews the baseline is made of, and the replica's window (also the events it needs before
    /// reporting a PSI, so every phase fills it anew). Sampling alone gives a PSI of about
    /// (bins − 1)·(1/window + 1/baseline): 0.036 here, and 0.056 in 99 % of 500-review draws from the dev
    /// set (offline, with `infer`), clear of 0.1; 400 and 300 left a 5 % chance of crossing it. Few enough
    /// for a debug build (about 25 s to publish, 2 minutes in all).
    static let baselineLines = 500
    static let window = 500

    @Test("dev reviews drift < 0.1 from a train baseline; negative-only and junk streams > 0.25, and `drift` says so; the dashboard's and alerts' metrics exist",
          .enabled(if: E2EFixtures.sharedDataPresent, "needs ../shared/models and ../shared/data"),
          .timeLimit(.minutes(10)))
    func driftAgainstTheBaseline() async throws {
        try ProductBinaries.require()
        try await withE2EScope { scope in
            let plane = try await ControlPlane.prepare(in: scope, versions: ["v1"])
            let published = try await AdminProcess.succeed([
                "publish", "--registry", plane.registry.path, "--name", plane.deployment, "--version", "v2",
                "--model-dir", E2EFixtures.modelDirectory("v2").path,
                "--baseline", E2EFixtures.reviewFile("train.jsonl").path, "--baseline-limit", "\(Self.baselineLines)"])
            print("[e2e] \(published.output.split(separator: "\n").filter { $0.contains("baseline") }.joined(separator: "; "))")
            let list = try await AdminProcess.succeed(["list", "--registry", plane.registry.path]).output
            #expect(list.split(separator: "\n").contains { $0.contains("v1") && $0.contains("drift off") }, "\(list)")
            #expect(list.split(separator: "\n").contains { $0.contains("v2") && $0.contains("\(Self.baselineLines) texts of train.jsonl") },
                    "\(list)")
            try await plane.rolloutSucceeds(["deploy", plane.deployment, "v2"])

            let input = try await TestBroker.createTopic("e2e-drift-in", partitions: 4)
            let output = try await TestBroker.createTopic("e2e-drift-out", partitions: 2)
            let dlq = try await TestBroker.createTopic("e2e-drift-dlq", partitions: 1)
            let instance = "e2e-drift-\(UUID().uuidString.prefix(6))"
            let metricsPort = try Loopback.freePort()
            let feed = try scope.feed(topic: input)
            let recorder = try await scope.recorder(results: output, deadLetters: dlq, otherTopics: [plane.statusTopic])
            let service = try scope.stream("drift", E2EFixtures.runArguments(
                input: input, output: output, dlq: dlq, group: TestBroker.uniqueTopic("e2e-drift-group"),
                extra: plane.serviceArguments(instance: instance, fallback: "v1") + [
                    "--drift-window-events", "\(Self.window)", "--drift-min-events", "\(Self.window)",
                    "--metrics-port", "\(metricsPort)", "--metrics-host", "127.0.0.1"]))

            /// Sends `texts`, waits for their results, then for a heartbeat made after the last of them,
            /// with the PSI of every feature; returns v2's drift from it.
            func phase(_ name: String, _ texts: [String]) async throws -> VersionDrift {
                let start = feed.count
                for (index, text) in texts.enumerated() { try await feed.send(id: "\(name)-\(index)", text: text) }
                let sent = Array(feed.sent[start...])
                try await recorder.wait(for: "results of the \(name) phase", timeout: .seconds(300),
                                        progress: { "\($0.missing(sent).count) missing\n\(service.logTail())" }) {
                    $0.coversAll(sent)
                }
                let answered = Date()
                let statusTopic = plane.statusTopic
                @Sendable func drift(_ outputs: Outputs) -> VersionDrift? {
                    Self.heartbeats(outputs, topic: statusTopic, instance: instance)
                        .last { $0.at >= answered }?.drift?.first { $0.version == "v2" }
                }
                let outputs = try await recorder.wait(for: "a heartbeat with the drift of the \(name) phase",
                                                      timeout: .seconds(60), progress: { _ in service.logTail() }) {
                    drift($0).map { $0.windowEvents == Self.window && $0.features.allSatisfy { $0.psi != nil } } ?? false
                }
                let found = try #require(drift(outputs))
                print("[e2e] drift, \(name): " + found.features.map {
                    "\($0.feature.rawValue) \(String(format: "%.3f", $0.psi ?? -1)) (\($0.baseline) → \($0.window))"
                }.joined(separator: "; "))
                return found
            }

            // In distribution: the dev reviews against a baseline of train reviews.
            let dev = try await phase("dev", E2EFixtures.reviewTexts)
            #expect(dev.features.map(\.feature) == [.label, .confidence, .length])
            #expect(dev.baselineSamples == Self.baselineLines)
            for feature in dev.features {
                #expect((feature.psi ?? .infinity) < PopulationStability.moderateThreshold,
                        "dev reviews: \(feature.feature) PSI \(feature.psi ?? -1)")
            }
            let stable = try await plane.drift().output
            #expect(!stable.contains("significant") && !stable.contains("moderate"), "\(stable)")

            // Label shift: only negative reviews (train reviews the baseline did not use).
            let negatives = E2EFixtures.reviews("train.jsonl").dropFirst(Self.baselineLines)
                .filter { $0.label == "negative" }.prefix(Self.window).map(\.text)
            let negative = try await phase("negative", Array(negatives))
            let labelPSI = try #require(negative.features.first { $0.feature == .label }?.psi)
            #expect(labelPSI > PopulationStability.significantThreshold, "negative-only: label PSI \(labelPSI)")
            let labelShift = try await plane.drift().output
            print("[e2e] minirbt-admin drift after the negative reviews:\n\(labelShift)")
            #expect(Self.row(of: instance, feature: "label", in: labelShift)?.contains("significant") == true, "\(labelShift)")

            // Not Chinese reviews at all: short Latin junk, digits and emoji.
            let junk = try await phase("junk", (0..<Self.window).map(Self.junkText))
            let lengthPSI = try #require(junk.features.first { $0.feature == .length }?.psi)
            #expect(lengthPSI > PopulationStability.significantThreshold, "junk: length PSI \(lengthPSI)")
            #expect((junk.windowUnknownTokenRate ?? 0) > (junk.baselineUnknownTokenRate ?? 1), "junk: more [UNK] than the baseline")
            let junkShift = try await plane.drift().output
            #expect(Self.row(of: instance, feature: "length", in: junkShift)?.contains("significant") == true, "\(junkShift)")
            let json = try await plane.drift(json: true).output
            #expect(json.contains("\"verdict\" : \"significant\""), "\(json)")
            let status = try await plane.status().output
            #expect(status.contains("v2 length") || status.contains("v2 label"), "status shows the worst drift: \(status)")

            // Every metric the chart's dashboard and alerts query is exported by this replica, which has
            // served a baselined version and dead-lettered an event.
            try await scope.feed(topic: input, malformedEvery: 1).send(id: "malformed-0")
            try await recorder.wait(for: "the dead letter", timeout: .seconds(60)) { $0.all.contains { $0.deadLetter != nil } }
            // (Shadow and teacher series: ModelVerdictTests, whose replicas run in those modes.)
            let missing = try ChartMetrics.missing(.serving, port: metricsPort, expected: ["minirbt_drift_psi"])
            #expect(missing.isEmpty, "queried by the dashboard or alerts but not exported: \(missing)")

            service.terminate()
            #expect(try await service.waitForExit(timeout: .seconds(40)) == .exited(0), "\(service.logTail())")
        }
    }

    static func heartbeats(_ outputs: Outputs, topic: String, instance: String) -> [InstanceHeartbeat] {
        outputs.undecodable.filter { $0.topic == topic }.compactMap { record in
            try? JSONDecoder.control.decode(InstanceHeartbeat.self, from: Data(record.value ?? []))
        }.filter { $0.instance == instance }
    }

    /// The `drift` table row of `instance` for `feature`.
    static func row(of instance: String, feature: String, in table: String) -> String? {
        table.split(separator: "\n").map(String.init).first { line in
            let cells = line.split(separator: " ", omittingEmptySubsequences: true)
            return cells.first.map(String.init) == instance && cells.dropFirst(2).first.map(String.init) == feature
        }
    }

    /// Deterministic junk: a few Latin-letter words, digits and an emoji, nothing like a hotel review.
    static func junkText(_ index: Int) -> String {
        let words = ["lorem", "ipsum", "zxqv", "0x3f9a", "qwerty", "asdf", "foo", "bar", "xyzzy", "plugh"]
        let count = 2 + index % 4
        return (0..<count).map { words[(index * 7 + $0 * 3) % words.count] }.joined(separator: " ")
            + " #\(index) 🤖"
    }
}
