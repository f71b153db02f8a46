import Foundation
import Kafka
import KafkaTestSupport
import StreamPipeline
import Testing

/// How far a candidate or a teacher agrees with the serving model, measured by the running service and
/// checked against `minirbt-stream infer` on the same texts: the shadow verdict that gates `promote
/// --min-agreement`, and the teacher lane with its soft labels.
@Suite(.enabled(if: E2EFixtures.sharedDataPresent, "needs ../shared/models and ../shared/data"))
struct ModelVerdictTests {
    /// Dev reviews streamed per test: enough for a disagreement or two between v1 and v2, few enough for a
    /// debug build on a shared machine.
    static let eventCount = 120

    /// The value of the sample `name{labels}` in a Prometheus text exposition, if present.
    static func metric(_ name: String, _ labels: String, in exposition: String) -> Double? {
        let prefix = "\(name){\(labels)} "
        return exposition.split(separator: "\n").first { $0.hasPrefix(prefix) }.flatMap { Double($0.dropFirst(prefix.count)) }
    }

    /// Offline answers of v1 and v2 for the ids `event-0` … the feed sends (its texts cycle through the
    /// dev reviews in order), and how many labels agree.
    static func offline(_ count: Int) throws -> (v1: [String: (label: String, logits: [Double])],
                                                  v2: [String: (label: String, logits: [Double])], agreed: Int) {
        let input = try StreamCommand.reviews(count, idPrefix: "event-")
        defer { try? FileManager.default.removeItem(at: input) }
        let v1 = try StreamCommand.inferLogits(version: "v1", input: input)
        let v2 = try StreamCommand.inferLogits(version: "v2", input: input)
        #expect(v1.count == count && v2.count == count, "infer answered \(v1.count) and \(v2.count) of \(count)")
        return (v1, v2, v1.filter { v2[$0.key]?.label == $0.value.label }.count)
    }

    @Test("shadow v2 beside v1: agreement in /metrics and status equals infer's; the chart's shadow metrics exported; promote --min-agreement refuses without comparisons and below the figure, promotes at it",
          .timeLimit(.minutes(8)))
    func shadowVerdictGatesPromote() async throws {
        try ProductBinaries.require()
        let expected = try Self.offline(Self.eventCount)
        try await withE2EScope { scope in
            let plane = try await ControlPlane.prepare(in: scope)
            try await plane.rolloutSucceeds(["deploy", plane.deployment, "v1"])
            let input = try await TestBroker.createTopic("e2e-shadow-in", partitions: 4)
            let output = try await TestBroker.createTopic("e2e-shadow-out", partitions: 2)
            let dlq = try await TestBroker.createTopic("e2e-shadow-dlq", partitions: 1)
            let shadowTopic = try await TestBroker.createTopic("e2e-shadow-candidate", partitions: 2)
            let instance = "e2e-shadow-\(UUID().uuidString.prefix(6))"
            let metricsPort = try Loopback.freePort()
            let feed = try scope.feed(topic: input)
            let recorder = try await scope.recorder(results: output, deadLetters: dlq)
            var arguments = E2EFixtures.runArguments(
                input: input, output: output, dlq: dlq, group: TestBroker.uniqueTopic("e2e-shadow-group"),
                extra: plane.serviceArguments(instance: instance, fallback: "v1")
                    + ["--shadow-topic", shadowTopic, "--metrics-host", "127.0.0.1"])
            arguments += ["--metrics-port", "\(metricsPort)"]
            let service = try scope.stream("shadow", arguments)

            try await plane.rolloutSucceeds(["deploy", plane.deployment, "v2", "--shadow", "--wait"])
            // Shadowing, but nothing compared yet: there is no figure to check the threshold against.
            let early = try await plane.rollout(["promote", plane.deployment, "--min-agreement", "0.5"])
            #expect(!early.succeeded, "\(early)")
            #expect(early.output.contains("no live instance of \(plane.deployment) has reported comparing it"), "\(early)")

            try await feed.send(count: Self.eventCount)
            let sent = feed.sent
            let outputs = try await recorder.wait(for: "the results of the shadowed events", timeout: .seconds(240),
                                                  progress: { "\($0.missing(sent).count) missing\n\(service.logTail())" }) {
                $0.coversAll(sent)
            }
            #expect(Set(outputs.results.map(\.model.version)) == ["v1"], "the primary answers in shadow mode")

            // /metrics counts every comparison as its batch ends; exact against infer.
            var exposition = ""
            try await waitFor("\(Self.eventCount) shadow comparisons in /metrics", timeout: .seconds(60), service) {
                exposition = Loopback.httpStatus(port: metricsPort, path: "/metrics")?.body ?? ""
                return Self.metric("minirbt_shadow_compared_total", "version=\"v2\"", in: exposition) == Double(Self.eventCount)
            }
            #expect(Self.metric("minirbt_shadow_agreed_total", "version=\"v2\"", in: exposition) == Double(expected.agreed),
                    "infer: v1 and v2 agree on \(expected.agreed) of \(Self.eventCount)")
            let ratio = try #require(Self.metric("minirbt_shadow_agreement_ratio", "version=\"v2\"", in: exposition))
            #expect(abs(ratio - Double(expected.agreed) / Double(Self.eventCount)) < 1e-9)
            let difference = try #require(Self.metric("minirbt_shadow_score_difference_mean", "version=\"v2\"", in: exposition))
            #expect(difference >= 0 && difference < 1)
            // The chart's shadow panels query only series a shadowing replica exports.
            let missing = try ChartMetrics.missing(.shadow, port: metricsPort,
                                                   expected: ["minirbt_shadow_agreement_ratio", "minirbt_shadow_score_difference_mean"])
            #expect(missing.isEmpty, "queried by the dashboard or alerts but not exported in shadow mode: \(missing)")

            // The heartbeat carries it to `status` within an interval or two.
            let cell = String(format: "%.1f%%/%d,", Double(expected.agreed) * 100 / Double(Self.eventCount), Self.eventCount)
            var table = ""
            try await waitFor("status showing \(cell)", timeout: .seconds(60), service) {
                table = try await plane.status().output
                return table.split(separator: "\n").contains { $0.hasPrefix(instance) && $0.contains(cell) }
            }
            print("[e2e] shadow: v2 agrees with v1 on \(expected.agreed) of \(Self.eventCount); status:\n\(table)")

            let measured = Double(expected.agreed) / Double(Self.eventCount)
            if expected.agreed < Self.eventCount {
                let refused = try await plane.rollout(["promote", plane.deployment, "--min-agreement", "\(measured + 0.001)"])
                #expect(!refused.succeeded, "\(refused)")
                #expect(refused.output.contains("agreed with the primary on \(expected.agreed) of \(Self.eventCount) events"), "\(refused)")
                #expect(refused.output.contains("below --min-agreement"), "\(refused)")
            }
            let promoted = try await plane.rolloutSucceeds(["promote", plane.deployment, "--min-agreement", "\(measured)", "--wait"])
            #expect(promoted.output.contains("shadow verdict: sentiment/v2 agreed with the primary on \(expected.agreed) of \(Self.eventCount) events"),
                    "\(promoted)")
            let status = try await plane.status()
            #expect(ControlPlane.activeVersion(of: instance, in: status.output) == "sentiment/v2", "\(status.output)")

            service.terminate()
            #expect(try await service.waitForExit(timeout: .seconds(40)) == .exited(0), "\(service.logTail())")
        }
    }

    @Test("teacher v2 beside student v1 at 100 %: exported agreement equals infer's count; the chart's teacher metrics exported; one soft label per event with infer's logits",
          .timeLimit(.minutes(8)))
    func teacherAgreementAndSoftLabels() async throws {
        try ProductBinaries.require()
        let expected = try Self.offline(Self.eventCount)
        try await withE2EScope { scope in
            let input = try await TestBroker.createTopic("e2e-teacher-in", partitions: 4)
            let output = try await TestBroker.createTopic("e2e-teacher-out", partitions: 2)
            let dlq = try await TestBroker.createTopic("e2e-teacher-dlq", partitions: 1)
            let softLabels = try await TestBroker.createTopic("e2e-teacher-soft", partitions: 2)
            let metricsPort = try Loopback.freePort()
            let feed = try scope.feed(topic: input)
            let recorder = try await scope.recorder(results: output, deadLetters: dlq)
            // Soft labels are neither results nor dead letters: they land among the undecodable records.
            let softRecorder = try await scope.recorder(results: softLabels, deadLetters: softLabels)
            var arguments = E2EFixtures.runArguments(
                input: input, output: output, dlq: dlq, group: TestBroker.uniqueTopic("e2e-teacher-group"),
                extra: ["--model", E2EFixtures.modelDirectory("v1").path,
                        "--teacher", E2EFixtures.modelDirectory("v2").path, "--teacher-sample", "1",
                        "--soft-label-topic", softLabels, "--metrics-host", "127.0.0.1"])
            arguments += ["--metrics-port", "\(metricsPort)"]
            let service = try scope.stream("teacher", arguments)

            try await feed.send(count: Self.eventCount)
            let sent = feed.sent
            let outputs = try await recorder.wait(for: "the students' results", timeout: .seconds(240),
                                                  progress: { "\($0.missing(sent).count) missing\n\(service.logTail())" }) {
                $0.coversAll(sent)
            }
            #expect(outputs.results.allSatisfy { $0.logits == nil }, "results carry logits only with --logits")
            let labels = try await softRecorder.wait(for: "a soft label per event", timeout: .seconds(240),
                                                     progress: { "\($0.undecodable.count) soft labels\n\(service.logTail())" }) {
                $0.undecodable.count >= Self.eventCount
            }.undecodable.map { try JSONDecoder().decode(SoftLabel.self, from: Data($0.value ?? [])) }

            var exposition = ""
            try await waitFor("\(Self.eventCount) teacher comparisons in /metrics", timeout: .seconds(60), service) {
                exposition = Loopback.httpStatus(port: metricsPort, path: "/metrics")?.body ?? ""
                return Self.metric("minirbt_teacher_compared_total", "version=\"v1\"", in: exposition) == Double(Self.eventCount)
            }
            #expect(Self.metric("minirbt_teacher_agreed_total", "version=\"v1\"", in: exposition) == Double(expected.agreed),
                    "infer: v1 and v2 agree on \(expected.agreed) of \(Self.eventCount)")
            let ratio = try #require(Self.metric("minirbt_teacher_agreement_ratio", "version=\"v1\"", in: exposition))
            #expect(abs(ratio - Double(expected.agreed) / Double(Self.eventCount)) < 1e-9)
            #expect(exposition.contains("minirbt_teacher_skipped_total 0"), "nothing skipped at this rate")
            #expect(exposition.contains("minirbt_soft_labels_published_total \(Self.eventCount)"))
            // The chart's teacher panels and alert query only series a replica with a teacher exports.
            let missing = try ChartMetrics.missing(.teacher, port: metricsPort,
                                                   expected: ["minirbt_teacher_agreement_ratio", "minirbt_teacher_skipped_total",
                                                              "minirbt_teacher_agreed_total", "minirbt_teacher_compared_total"])
            #expect(missing.isEmpty, "queried by the dashboard or alerts but not exported with a teacher: \(missing)")

            // Exactly one per event, each with the logits infer prints (up to float printing).
            #expect(labels.count == Self.eventCount)
            #expect(Set(labels.map(\.id)) == Set(sent.map(\.id)))
            func close(_ a: [Float], _ b: [Double]) -> Bool {
                a.count == b.count && zip(a, b).allSatisfy { abs(Double($0) - $1) <= 1e-5 * max(1, abs($1)) }
            }
            for label in labels {
                let student = try #require(expected.v1[label.id], "no infer answer for \(label.id)")
                let teacher = try #require(expected.v2[label.id])
                #expect(close(label.studentLogits, student.logits), "\(label.id): student \(label.studentLogits) vs infer \(student.logits)")
                #expect(close(label.teacherLogits, teacher.logits), "\(label.id): teacher \(label.teacherLogits) vs infer \(teacher.logits)")
                #expect(label.model.version == "v1" && label.teacher.version == "v2")
                #expect(label.labels == ["negative", "positive"])
            }
            print("[e2e] teacher: v2 agrees with v1 on \(expected.agreed) of \(Self.eventCount); \(labels.count) soft labels")

            service.terminate()
            #expect(try await service.waitForExit(timeout: .seconds(40)) == .exited(0), "\(service.logTail())")
        }
    }
}
