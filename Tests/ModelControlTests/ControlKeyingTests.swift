import Crypto
import Foundation
import Kafka
import KafkaTestSupport
import ModelControl
import Testing

/// The control topic's keying: what a replica serves cannot be changed by anyone without the signing key,
/// whatever they append, and whether or not the broker has compacted the topic.
@Suite("Control topic keying, expiry and history")
struct ControlKeyingTests {
    let operatorKey = Curve25519.Signing.PrivateKey()
    var verifier: ControlVerifier { ControlVerifier(trustedKeys: [operatorKey.publicKey]) }

    func message(_ version: String, sequence: Int64, deployment: String = "sentiment", issuedAt: Date = Date(),
                 validFor: Duration = ControlMessage.defaultValidity) -> ControlMessage {
        ControlMessage(deployment: deployment, target: Fixtures.reference(version), mode: .deploy, sequence: sequence,
                       issuedAt: issuedAt, validFor: validFor, issuedBy: "tests", manifestDigest: Fixtures.digest)
    }

    /// The topic as a compacted copy would look: the last record of each key, in the order of those records.
    static func compacted(_ records: [ControlRecord]) -> [ControlRecord] {
        var last: [[UInt8]?: Int] = [:]
        for (index, record) in records.enumerated() { last[record.key] = index }
        // Tombstones are removed too once the cleaner's delete retention passed.
        return records.enumerated().filter { last[$0.element.key] == $0.offset && $0.element.value != nil }.map(\.element)
    }

    static func fold(_ records: [ControlRecord], verifier: ControlVerifier) -> ControlLedger {
        var ledger = ControlLedger(deployment: "sentiment")
        for record in records { _ = try? ledger.accept(record, verifier: verifier) }
        return ledger
    }

    @Test("replays, foreign messages, tombstones, junk and expired messages change nothing, before or after compaction")
    func attacksCannotMoveTheDecision() throws {
        let deployV1 = try Fixtures.record(message("v1", sequence: 1), signedBy: operatorKey)
        let deployV2 = try Fixtures.record(message("v2", sequence: 2), signedBy: operatorKey)
        let attacks: [(ControlRecord, String?)] = [
            // The old signed envelope again: under its own key, under the deployment key (how records were
            // keyed before), and under the key the next message will use.
            (deployV1, "replayed"),
            (ControlRecord(key: Array("sentiment".utf8), value: deployV1.value), "misfiled"),
            (ControlRecord(key: Array("sentiment/3".utf8), value: deployV1.value), "misfiled"),
            // Another deployment's signed message under this deployment's key, and under its own (ignored).
            (try Fixtures.record(message("v9", sequence: 7, deployment: "other"), signedBy: operatorKey,
                                 recordKey: "sentiment/7"), "foreign_deployment"),
            (try Fixtures.record(message("v9", sequence: 8, deployment: "other"), signedBy: operatorKey), nil),
            // Tombstones and junk.
            (ControlRecord(key: Array("sentiment".utf8), value: nil), "tombstone"),
            (ControlRecord(key: Array("sentiment/4".utf8), value: nil), "tombstone"),
            (ControlRecord(key: Array("sentiment/5".utf8), value: Array("junk".utf8)), "unsigned"),
            (ControlRecord(key: nil, value: [0xFF, 0x00, 0x7B]), "unsigned"),
            // A newer message signed an hour ago, valid for ten minutes, appended only now.
            (try Fixtures.record(message("v1", sequence: 6, issuedAt: Date().addingTimeInterval(-3600)), signedBy: operatorKey,
                                 appendedAt: Date()), "expired"),
            // Signed by a key nobody trusts.
            (try Fixtures.record(message("v1", sequence: 9), signedBy: Curve25519.Signing.PrivateKey()), "unknown_key"),
        ]
        let topic = [deployV1, deployV2] + attacks.map(\.0)

        var ledger = ControlLedger(deployment: "sentiment")
        for record in topic.prefix(2) { try ledger.accept(record, verifier: verifier) }
        for (record, kind) in attacks {
            do {
                let accepted = try ledger.accept(record, verifier: verifier)
                #expect(kind == nil && accepted == nil, "\(record.keyText ?? "(none)") should have been rejected as \(kind ?? "-")")
            } catch {
                #expect(error.kind == kind, "\(record.keyText ?? "(none)"): \(error)")
            }
        }
        #expect(ledger.latest?.version == "v2" && ledger.lastSequence == 2)
        #expect(ledger.rejectionCount == attacks.filter { $0.1 != nil }.count)

        // Compaction keeps the last record per key: with one key per message nothing it drops or keeps
        // changes the fold, here or for the same attacks appended in any other order.
        for records in [topic, Self.compacted(topic), Self.compacted(topic.reversed()), Self.compacted(Array(topic.dropLast(3)))] {
            #expect(Self.fold(records, verifier: verifier).latest?.sequence == 2)
        }
        // A replica that saw v2 never goes back to v1, whatever order it reads.
        #expect(Self.fold([deployV2, deployV1], verifier: verifier).latest?.version == "v2")
    }

    @Test("a message appended within its validity window is served by a replica starting a month later")
    func expiryIsJudgedAtAppendTime() throws {
        let issued = Date().addingTimeInterval(-30 * 24 * 3600)
        let record = try Fixtures.record(message("v2", sequence: 1, issuedAt: issued), signedBy: operatorKey,
                                         appendedAt: issued.addingTimeInterval(2))
        #expect(Self.fold([record], verifier: verifier).latest?.version == "v2")
        let late = try Fixtures.record(message("v2", sequence: 1, issuedAt: issued), signedBy: operatorKey,
                                       appendedAt: issued.addingTimeInterval(601))
        #expect(throws: ControlRejection.self) { try ControlLedger.judge(late, verifier: verifier) }
    }

    @Test("a message without a manifest digest or validity window is rejected, naming the field")
    func requiredFields() throws {
        var undigested = message("v2", sequence: 1)
        undigested.manifestDigest = nil
        var unbounded = message("v2", sequence: 2)
        unbounded.expiresAt = nil
        for (unsigned, field) in [(undigested, "manifest_digest"), (unbounded, "expires_at")] {
            let record = try Fixtures.record(unsigned, signedBy: operatorKey)
            #expect { try ControlLedger.judge(record, verifier: verifier) } throws: { error in
                guard case ControlRejection.invalidMessage(let reason) = error else { return false }
                return reason.contains(field)
            }
        }
    }

    @Test("history lists accepted and rejected records with each replica's outcome")
    func history() throws {
        var records = [
            try Fixtures.record(message("v1", sequence: 1), signedBy: operatorKey),
            try Fixtures.record(message("v2", sequence: 2), signedBy: operatorKey),
            try Fixtures.record(message("v9", sequence: 3), signedBy: operatorKey),
        ]
        records.append(ControlRecord(key: Array("sentiment".utf8), value: records[0].value))
        for index in records.indices { records[index].offset = Int64(index) }
        let now = Date()
        func beat(_ instance: String, applied: Int64?, failed: Int64? = nil, error: String? = nil,
                  rejected: [RejectedControlRecord] = [], age: TimeInterval) -> InstanceHeartbeat {
            var heartbeat = InstanceHeartbeat(instance: instance, deployment: "sentiment", lastError: error,
                                              appliedSequence: applied, failedSequence: failed, intervalMs: 1000,
                                              at: now.addingTimeInterval(-age))
            heartbeat.rejectedRecords = rejected
            return heartbeat
        }
        let misfiled = RejectedControlRecord(offset: 3, key: "sentiment", record: records[3].digest, kind: "misfiled",
                                             reason: "rejected control message under key sentiment")
        let heartbeats = [
            beat("a", applied: 1, age: 40), beat("a", applied: 2, age: 30),
            beat("a", applied: 2, failed: 3, error: "loading sentiment/v9 failed", age: 20),
            beat("a", applied: 2, failed: 3, rejected: [misfiled], age: 10),
            // Started after v2: it never reported #1.
            beat("b", applied: 2, rejected: [misfiled], age: 5),
            beat("other-deployment", applied: 99, age: 1),
        ].map { heartbeat in
            var heartbeat = heartbeat
            if heartbeat.instance == "other-deployment" { heartbeat.deployment = "other" }
            return heartbeat
        }
        let entries = ControlHistory.entries(deployment: "sentiment", records: records, heartbeats: heartbeats, verifier: verifier)
        #expect(entries.map(\.accepted) == [true, true, true, false])
        #expect(entries.map { $0.message?.version } == ["v1", "v2", "v9", "v1"])
        #expect(entries[3].reason?.contains("key sentiment") == true)
        func outcomes(_ index: Int) -> [String] {
            entries[index].replicas.map { "\($0.instance):\($0.outcome.rawValue)" }
        }
        #expect(outcomes(0) == ["a:applied", "b:superseded"])
        #expect(outcomes(1) == ["a:applied", "b:applied"])
        #expect(outcomes(2) == ["a:failed", "b:unreported"])
        #expect(entries[2].replicas.first?.reason == "loading sentiment/v9 failed")
        #expect(outcomes(3) == ["a:rejected", "b:rejected"])
        // Machine-readable: the JSON carries the signer and the digest.
        let json = String(decoding: try JSONEncoder.control.encode(entries[1]), as: UTF8.self)
        #expect(json.contains("\"issued_by\":\"tests\"") && json.contains(Fixtures.digest)
                && json.contains("\"key_id\":\"\(signingKeyID(operatorKey.publicKey))\""))
    }

    @Test("reading the control topic to its end finishes when its last offsets hold no visible record")
    func readToEndPastAnInvisibleTail() async throws {
        // A transaction's commit marker takes the last offset and is never delivered, like a tail record
        // that compaction removed: the read must end by position, not by seeing offset high - 1.
        let topic = try await TestBroker.createTopic("control-tail", partitions: 1, config: ["cleanup.policy": "compact"])
        var configuration = ProducerConfiguration(kafka: TestBroker.kafka)
        configuration.transactionalID = TestBroker.uniqueTopic("control-tail-txn")
        let producer = try KafkaProducer(configuration: configuration, logger: TestBroker.logger)
        try await producer.initTransactions()
        let deploy = try Fixtures.record(message("v2", sequence: 1), signedBy: operatorKey)
        try producer.beginTransaction()
        try await producer.enqueue(ProducerRecord(topic: topic, key: deploy.key, value: deploy.value)) { _ in }
        try await producer.commitTransaction()
        await producer.close()

        let follower = try TopicFollower(topic: topic, kafka: TestBroker.kafka, logger: TestBroker.logger)
        let records = try await follower.readToEnd(timeout: .seconds(30))
        let marks = try await follower.consumer.watermarks(TopicPartition(topic: topic, partition: 0))
        await follower.close()
        #expect(marks.high > (records.last?.offset ?? -1) + 1, "the topic should end in offsets without a visible record")
        #expect(records.map(\.value) == [deploy.value])
        #expect(Self.fold(records.map(ControlRecord.init), verifier: verifier).latest?.version == "v2")
    }
}
