import Foundation
import Kafka
import KafkaTestSupport
import ModelControl
import Testing

/// What someone who can write to the control topic but holds no signing key can do to the fleet: nothing
/// that changes what any replica serves, now or after compaction, and nothing that stalls a start-up.
@Suite struct ControlReplayTests {
    @Test("replayed, foreign, tombstone, junk and expired records leave running, late and compacted-topic replicas on v2; history shows every verdict",
          .enabled(if: E2EFixtures.sharedDataPresent, "needs ../shared/models and ../shared/data"),
          .timeLimit(.minutes(10)))
    func hostileRecordsChangeNothing() async throws {
        try ProductBinaries.require()
        try await withE2EScope { scope in
            let plane = try await ControlPlane.prepare(in: scope)
            let input = try await TestBroker.createTopic("e2e-replay-in", partitions: 2)
            let output = try await TestBroker.createTopic("e2e-replay-out", partitions: 1)
            let dlq = try await TestBroker.createTopic("e2e-replay-dlq", partitions: 1)
            let group = TestBroker.uniqueTopic("e2e-replay-group")
            func replica(_ name: String, controlTopic: String? = nil) throws -> (instance: String, process: ServiceProcess) {
                let instance = "e2e-replay-\(name)-\(UUID().uuidString.prefix(6))"
                let process = try scope.stream(name, E2EFixtures.runArguments(
                    input: input, output: output, dlq: dlq, group: group,
                    extra: plane.serviceArguments(instance: instance, fallback: "v1", controlTopic: controlTopic)))
                return (instance, process)
            }

            let running = try replica("running")
            try await plane.rolloutSucceeds(["deploy", plane.deployment, "v1", "--wait"])
            try await plane.rolloutSucceeds(["deploy", plane.deployment, "v2", "--wait"])
            let genuine = try await plane.records()
            guard genuine.count == 2, let deployV1 = genuine.first, let deployV2 = genuine.last,
                  let v2Key = deployV2.keyText, let v1Key = deployV1.keyText,
                  let v2Sequence = v2Key.split(separator: "/").last.flatMap({ Int64($0) }) else {
                throw TestFailure("expected two deploys on the control topic, got \(genuine.map { $0.keyText ?? "-" })")
            }
            #expect(v1Key.hasPrefix("sentiment/") && v2Key.hasPrefix("sentiment/"), "one key per message: \(v1Key), \(v2Key)")

            // Correctly signed messages that must still be refused: for another deployment (under this
            // deployment's next key), and one for v1 that is newer than v2 but was appended an hour after its
            // validity window ended.
            let newer = v2Sequence + 1000
            let foreign = try plane.signedValue(ControlMessage(
                deployment: "other", target: ModelReference(name: plane.deployment, version: "v1"), mode: .deploy,
                sequence: newer, issuedBy: "tests", manifestDigest: plane.manifestDigest("v1")))
            let expired = try plane.signedValue(ControlMessage(
                deployment: plane.deployment, target: ModelReference(name: plane.deployment, version: "v1"), mode: .deploy,
                sequence: newer + 1, issuedAt: Date().addingTimeInterval(-3600), issuedBy: "tests",
                manifestDigest: plane.manifestDigest("v1")))
            let hostile: [(key: String?, value: [UInt8]?, kind: String)] = [
                (v1Key, deployV1.value, "replayed"),                          // the old deploy, as it was
                (plane.deployment, deployV1.value, "misfiled"),               // under the deployment key
                ("sentiment/\(newer + 2)", deployV1.value, "misfiled"),       // under a newer key
                ("sentiment/\(newer)", foreign, "foreign_deployment"),
                ("sentiment/\(newer + 1)", expired, "expired"),
                ("sentiment/\(newer + 3)", Array("not a control message".utf8), "unsigned"),
                (nil, [0xFF, 0xFE, 0x00], "unsigned"),
                (plane.deployment, nil, "tombstone"),
                // Last: a tombstone of v1's key. After compaction v1's record and then the tombstone are gone;
                // v2's own key is untouched.
                (v1Key, nil, "tombstone"),
            ]
            try await plane.append(hostile.map { ($0.key, $0.value) })

            // The running replica rejects each one, counts it and stays on v2.
            let rejected = try await plane.heartbeat(of: running.instance, "\(hostile.count) rejections") {
                ($0.rejectedCount ?? 0) >= hostile.count
            }
            #expect(rejected.rejectedRecords?.map(\.kind) == hostile.map(\.kind), "\(rejected.rejectedRecords ?? [])")
            #expect(rejected.active?.version == "v2" && rejected.appliedSequence == v2Sequence)

            // A replica started now reads all of it (the start-up read ends on a tombstone) and starts on v2.
            let late = try replica("late")
            let lateBeat = try await plane.heartbeat(of: late.instance, "started") { $0.appliedSequence != nil }
            #expect(lateBeat.active?.version == "v2" && lateBeat.appliedSequence == v2Sequence, "\(lateBeat)")
            #expect(lateBeat.rejectedRecords?.map(\.kind) == hostile.map(\.kind), "\(lateBeat.rejectedRecords ?? [])")

            // The same topic as compaction would leave it (the last record per key; tombstones removed once
            // their retention passed), for a replica started after compaction.
            let everything = try await plane.records()
            var lastIndex: [String: Int] = [:]
            for (index, record) in everything.enumerated() { lastIndex[record.keyText ?? ""] = index }
            let kept = everything.enumerated().filter { lastIndex[$0.element.keyText ?? ""] == $0.offset && $0.element.value != nil }
            let compactedTopic = try await TestBroker.createTopic("e2e-replay-compacted", partitions: 1, config: ["cleanup.policy": "compact"])
            try await plane.append(kept.map { ($0.element.keyText, $0.element.value) }, to: compactedTopic)
            #expect(kept.contains { $0.element.keyText == v2Key } && !kept.contains { $0.element.keyText == v1Key })
            let compacted = try replica("compacted", controlTopic: compactedTopic)
            let compactedBeat = try await plane.heartbeat(of: compacted.instance, "started") { $0.appliedSequence != nil }
            #expect(compactedBeat.active?.version == "v2" && compactedBeat.appliedSequence == v2Sequence, "\(compactedBeat)")

            // Events answered now, whichever replica owns their partition, come from v2.
            let feed = try scope.feed(topic: input)
            let recorder = try await scope.recorder(results: output, deadLetters: dlq)
            try await feed.send(count: 12)
            let sent = feed.sent
            let outputs = try await recorder.wait(for: "results of \(sent.count) events", timeout: .seconds(150),
                                                  progress: { "\($0.missing(sent).count) missing\n\(scope.logTails())" }) {
                $0.coversAll(sent)
            }
            #expect(Set(outputs.results.map(\.model.version)) == ["v2"])

            // history: the two deploys accepted, every hostile record rejected with the reason, and each
            // replica's outcome. The foreign record is under this deployment's key, so it is listed too.
            let history = try await AdminProcess.succeed(["history", plane.deployment, "--verify-key", plane.publicKey.path, "--json",
                                                          "--brokers", TestBroker.bootstrapServers, "--control-topic", plane.controlTopic,
                                                          "--status-topic", plane.statusTopic])
            let entries = try history.output.split(separator: "\n").filter { $0.hasPrefix("{") }.map {
                try JSONDecoder.control.decode(ControlHistory.Entry.self, from: Data($0.utf8))
            }
            #expect(entries.count == 2 + hostile.count, "\(history.output)")
            #expect(entries.prefix(2).allSatisfy(\.accepted) && entries.dropFirst(2).allSatisfy { !$0.accepted && $0.reason != nil })
            #expect(entries.prefix(2).map { $0.message?.version } == ["v1", "v2"])
            #expect(entries.prefix(2).allSatisfy { $0.message?.issuedBy != nil && $0.message?.keyID != nil && $0.message?.manifestDigest != nil })
            func outcome(_ entry: ControlHistory.Entry, _ instance: String) -> ControlHistory.ReplicaOutcome.Outcome? {
                entry.replicas.first { $0.instance == instance }?.outcome
            }
            #expect(outcome(entries[0], running.instance) == .applied && outcome(entries[0], late.instance) == .superseded)
            #expect(outcome(entries[1], running.instance) == .applied && outcome(entries[1], late.instance) == .applied)
            for entry in entries.dropFirst(2) {
                #expect(outcome(entry, running.instance) == .rejected && outcome(entry, late.instance) == .rejected,
                        "offset \(entry.offset ?? -1): \(entry.replicas)")
            }

            for replica in [running, late, compacted] { replica.process.terminate() }
            for replica in [running, late, compacted] {
                #expect(try await replica.process.waitForExit(timeout: .seconds(40)) == .exited(0), "\(replica.process.logTail())")
            }
        }
    }
}
