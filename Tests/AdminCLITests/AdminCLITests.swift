@testable import AdminCLI
import ArgumentParser
import Foundation
import ModelControl
import Testing

@Suite("minirbt-admin")
struct AdminCLITests {
    @Test("--help teaches the rollout flow with example commands")
    func helpTeachesRollout() {
        let help = AdminCommand.helpMessage()
        for step in ["keygen", "publish", "deploy", "--canary", "promote", "rollback", "status", "history", "--wait"] {
            #expect(help.contains(step), "help does not mention \(step)")
        }
        #expect(help.contains("minirbt-admin deploy sentiment v2 --canary 20"))
        #expect(help.contains("minirbt-admin promote sentiment --min-agreement 0.97"))
        // The steps come in rollout order.
        let order = ["1. keygen", "2. publish", "3. deploy", "4. status", "5. promote", "6. rollback"]
        let positions = order.compactMap { help.range(of: $0)?.lowerBound }
        #expect(positions.count == order.count && positions == positions.sorted())
    }

    @Test("--help of publish and drift teaches the baseline and the verdicts")
    func driftHelp() throws {
        #expect(AdminCommand.helpMessage().contains("minirbt-admin drift sentiment"))
        #expect(AdminCommand.helpMessage().contains("--baseline"))
        let publish = AdminCommand.helpMessage(for: PublishCommand.self, columns: 200)
        #expect(publish.contains("--baseline <file>") && publish.contains("--baseline-limit <n>"))
        let drift = AdminCommand.helpMessage(for: DriftCommand.self, columns: 200)
        #expect(drift.contains("--json") && drift.contains("0.1") && drift.contains("0.25") && drift.contains("drift off"))
        #expect(throws: (any Error).self) { try PublishCommand.parse(["--registry", "r", "--name", "n", "--version", "v", "--model-dir", "d", "--baseline-limit", "5"]) }
        #expect(throws: (any Error).self) { try PublishCommand.parse(["--registry", "r", "--name", "n", "--version", "v", "--model-dir", "d", "--baseline", "b", "--baseline-limit", "0"]) }
    }

    @Test("drift renders feature, baseline, window, PSI and verdict per instance and version; status the worst")
    func driftTable() throws {
        let now = Date()
        let features = [
            FeatureDrift(feature: .label, psi: 0.42, baseline: "negative 35%, positive 65%", window: "negative 80%, positive 20%"),
            FeatureDrift(feature: .confidence, psi: 0.12, baseline: "mean 0.970", window: "mean 0.930"),
            FeatureDrift(feature: .length, psi: 0.01, baseline: "mean 100.0", window: "mean 99.0"),
        ]
        let drift = [VersionDrift(version: "v2", windowEvents: 1000, baselineSamples: 2000, features: features,
                                  baselineUnknownTokenRate: 0.001, windowUnknownTokenRate: 0.002),
                     VersionDrift(version: "v3", windowEvents: 50, baselineSamples: nil, features: [])]
        let heartbeat = InstanceHeartbeat(instance: "pod-1", deployment: "sentiment",
                                          active: try ModelReference(name: "sentiment", version: "v2"),
                                          intervalMs: 5000, at: now, drift: drift)
        let table = DriftCommand.table([heartbeat])
        let rows = table.split(separator: "\n").map(String.init)
        #expect(rows.first?.contains("FEATURE") == true && rows.first?.contains("VERDICT") == true)
        #expect(rows.contains { $0.contains("label") && $0.contains("0.420") && $0.contains("significant") }, "\(table)")
        #expect(rows.contains { $0.contains("confidence") && $0.contains("0.120") && $0.contains("moderate") }, "\(table)")
        #expect(rows.contains { $0.contains("length") && $0.contains("0.010") && $0.contains("stable") }, "\(table)")
        #expect(rows.contains { $0.contains("v3") && $0.contains("drift off") }, "\(table)")
        let json = try DriftCommand.json([heartbeat])
        #expect(json.contains("\"verdict\" : \"significant\"") && json.contains("\"instance\" : \"pod-1\""), "\(json)")
        let status = StatusCommand.table([heartbeat], now: now)
        #expect(status.contains("v2 label 0.420 significant") && status.contains("v3 off"), "\(status)")
        // A heartbeat from an instance that predates drift decodes, and says so.
        let old = try JSONDecoder.control.decode(InstanceHeartbeat.self, from: Data("""
            {"instance":"pod-0","deployment":"sentiment","mode":"single","assigned_partitions":[],"events_per_second":0,"interval_ms":5000,"at":"2026-01-01T00:00:00Z"}
            """.utf8))
        #expect(old.drift == nil && DriftCommand.table([old]).contains("not reported"))
    }

    @Test("deploy refuses --canary with --shadow, and shares outside 1...100")
    func deployValidation() {
        #expect(throws: (any Error).self) {
            try AdminCommand.parseAsRoot(["deploy", "sentiment", "v2", "--canary", "20", "--shadow", "--key", "k", "--registry", "r"])
        }
        #expect(throws: (any Error).self) {
            try AdminCommand.parseAsRoot(["deploy", "sentiment", "v2", "--canary", "0", "--key", "k", "--registry", "r"])
        }
        #expect(throws: Never.self) {
            try AdminCommand.parseAsRoot(["deploy", "sentiment", "v2", "--canary", "20", "--wait", "--key", "k", "--registry", "r"])
        }
    }

    @Test("--wait succeeds when every live instance applied the message, fails naming the reason, ignores stale ones")
    func waitEvaluation() throws {
        let now = Date()
        func beat(_ instance: String, applied: Int64?, failed: Int64? = nil, rejected: String? = nil, error: String? = nil,
                  age: TimeInterval = 0) -> InstanceHeartbeat {
            InstanceHeartbeat(instance: instance, deployment: "sentiment", lastError: error, appliedSequence: applied,
                              failedSequence: failed, rejectedRecord: rejected, intervalMs: 1000, at: now.addingTimeInterval(-age))
        }
        var fleet = FleetStatus()
        #expect(try FleetWatcher.evaluate(fleet, deployment: "sentiment", sequence: 5, record: "r5", now: now) == nil)
        fleet.record(beat("a", applied: 5))
        fleet.record(beat("b", applied: 4))
        #expect(try FleetWatcher.evaluate(fleet, deployment: "sentiment", sequence: 5, record: "r5", now: now) == nil)
        fleet.record(beat("c", applied: 1, age: 10))
        fleet.record(beat("b", applied: 5))
        #expect(try FleetWatcher.evaluate(fleet, deployment: "sentiment", sequence: 5, record: "r5", now: now)?.map(\.instance) == ["a", "b"])
        fleet.record(beat("b", applied: 5, failed: 6, error: "loading sentiment/v3 failed: checksum mismatch"))
        #expect { try FleetWatcher.evaluate(fleet, deployment: "sentiment", sequence: 6, record: "r6", now: now) } throws: { error in
            "\(error)".contains("checksum mismatch") && "\(error)".contains("b failed")
        }
        // Signed with a key the instances do not trust: they report the record they rejected. Another
        // record's rejection (say, a forgery claiming the same sequence) does not fail the wait.
        fleet.record(beat("a", applied: 5, rejected: "forged7", error: "rejected control message signed by unknown key 0123abcd"))
        #expect(try FleetWatcher.evaluate(fleet, deployment: "sentiment", sequence: 7, record: "r7", now: now) == nil)
        fleet.record(beat("a", applied: 5, rejected: "r7", error: "rejected control message signed by unknown key 0123abcd"))
        #expect { try FleetWatcher.evaluate(fleet, deployment: "sentiment", sequence: 7, record: "r7", now: now) } throws: { error in
            "\(error)".contains("a rejected control message #7") && "\(error)".contains("unknown key 0123abcd")
        }
    }

    @Test("history prints each record's verdict, signer, digest and every replica's outcome")
    func historyText() throws {
        var message = ControlMessage(deployment: "sentiment", target: try ModelReference(name: "sentiment", version: "v2"),
                                     mode: .deploy, sequence: 7, issuedBy: "alice@ops", manifestDigest: String(repeating: "ab", count: 32))
        message.keyID = "0123abcd"
        let entries = [
            ControlHistory.Entry(offset: 0, appendedAt: Date(), key: "sentiment/7", record: "r0", accepted: true, reason: nil,
                                 message: message, replicas: [.init(instance: "pod-1", outcome: .applied, reason: nil)]),
            ControlHistory.Entry(offset: 1, appendedAt: nil, key: "sentiment", record: "r1", accepted: false,
                                 reason: "rejected tombstone under control key sentiment", message: nil,
                                 replicas: [.init(instance: "pod-1", outcome: .rejected, reason: "rejected tombstone")]),
        ]
        let text = HistoryCommand.text(entries, deployment: "sentiment")
        #expect(text.contains("key sentiment/7: accepted #7 deploy sentiment/v2 by alice@ops") && text.contains("key-id 0123abcd")
                && text.contains("manifest abababababababab"))
        #expect(text.contains("pod-1: applied") && text.contains("key sentiment: REJECTED")
                && text.contains("reason: rejected tombstone under control key sentiment") && text.contains("pod-1: rejected (rejected tombstone)"))
        #expect(HistoryCommand.text([], deployment: "sentiment") == "no control records for sentiment")
    }

    @Test("status renders one row per instance")
    func statusTable() throws {
        let now = Date()
        let heartbeat = InstanceHeartbeat(instance: "pod-1", deployment: "sentiment",
                                          active: try ModelReference(name: "sentiment", version: "v1"),
                                          candidate: try ModelReference(name: "sentiment", version: "v2"),
                                          mode: "canary", canaryPercent: 20, assignedPartitions: ["events[0]", "events[1]"],
                                          eventsPerSecond: 12.5, lag: 3, intervalMs: 5000, at: now)
        let table = StatusCommand.table([heartbeat], now: now)
        #expect(table.contains("pod-1") && table.contains("sentiment/v1") && table.contains("sentiment/v2 (canary 20%)"))
        #expect(table.contains("events[0],events[1]") && table.contains("12.5"))
    }

    @Test("promote --min-agreement: weighted over the instances' comparisons of the candidate; refuses below it and without any")
    func shadowAgreementGate() throws {
        let v2 = try ModelReference(name: "sentiment", version: "v2")
        let v3 = try ModelReference(name: "sentiment", version: "v3")
        func beat(_ instance: String, _ shadow: ShadowComparison?) -> InstanceHeartbeat {
            InstanceHeartbeat(instance: instance, deployment: "sentiment", mode: "shadow", intervalMs: 1000, at: Date(),
                              shadow: shadow)
        }
        let fleet = [beat("a", ShadowComparison(candidate: v2, compared: 300, agreed: 297, meanScoreDifference: 0.01)),
                     beat("b", ShadowComparison(candidate: v2, compared: 100, agreed: 90, meanScoreDifference: 0.05)),
                     // Another candidate's figures never count.
                     beat("c", ShadowComparison(candidate: v3, compared: 1000, agreed: 0, meanScoreDifference: 0.9)),
                     beat("d", nil)]
        // (297 + 90) / 400 = 0.9675, not the mean of the instances' shares (0.945).
        #expect(throws: Never.self) { try PromoteCommand.checkAgreement(of: v2, deployment: "sentiment", in: fleet, minimum: 0.9675) }
        #expect { try PromoteCommand.checkAgreement(of: v2, deployment: "sentiment", in: fleet, minimum: 0.97) } throws: { error in
            "\(error)".contains("387 of 400 events (0.9675)") && "\(error)".contains("below --min-agreement 0.97")
        }
        #expect { try PromoteCommand.checkAgreement(of: v2, deployment: "sentiment", in: [fleet[2], fleet[3]], minimum: 0.5) } throws: { error in
            "\(error)".contains("no live instance of sentiment has reported comparing it")
        }
        let aggregate = try #require(ShadowComparison.aggregate(fleet.compactMap(\.shadow), of: v2))
        #expect(abs(aggregate.meanScoreDifference - 0.02) < 1e-12)
        #expect(StatusCommand.agreement(fleet[0].shadow) == "99.0%/300,Δ0.010")
        #expect(StatusCommand.agreement(nil) == "-")
        #expect(throws: (any Error).self) {
            try AdminCommand.parseAsRoot(["promote", "sentiment", "--min-agreement", "97", "--key", "k"])
        }
    }

    @Test("heartbeats without a shadow comparison (older instances) still decode")
    func heartbeatShadowIsAdditive() throws {
        let old = #"{"instance":"a","deployment":"sentiment","mode":"single","assigned_partitions":[],"events_per_second":0,"interval_ms":5000,"at":"2026-01-01T00:00:00Z"}"#
        let heartbeat = try JSONDecoder.control.decode(InstanceHeartbeat.self, from: Data(old.utf8))
        #expect(heartbeat.shadow == nil)
        var shadowing = heartbeat
        shadowing.shadow = ShadowComparison(candidate: try ModelReference(name: "sentiment", version: "v2"), compared: 4,
                                            agreed: 3, meanScoreDifference: 0.25)
        let encoded = try JSONEncoder.control.encode(shadowing)
        #expect(String(decoding: encoded, as: UTF8.self).contains(#""mean_score_difference":0.25"#))
        #expect(try JSONDecoder.control.decode(InstanceHeartbeat.self, from: encoded) == shadowing)
    }
}
