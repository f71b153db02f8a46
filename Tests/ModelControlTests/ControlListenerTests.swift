import Crypto
import Foundation
import Kafka
import KafkaTestSupport
import ModelControl
import StreamPipeline
import Testing

@Suite("Control listener against a real broker")
struct ControlListenerTests {
    @Test("catch-up starts on the deployed version; a signed deploy swaps, forged, replayed and broken ones do not")
    func deployForgeReplayFail() async throws {
        let (registry, root) = try Fixtures.registry(publishing: ["v1", "v2"], purpose: "listener")
        defer { try? FileManager.default.removeItem(at: root) }
        let kafka = TestBroker.kafka()
        let logger = TestBroker.logger
        let controlTopic = TestBroker.uniqueTopic("control")
        let statusTopic = TestBroker.uniqueTopic("status")
        let admin = try KafkaAdmin(configuration: kafka, logger: logger)
        try await ControlTopics.ensureControl(controlTopic, admin: admin)
        try await ControlTopics.ensure(statusTopic, admin: admin)

        let operatorKey = Curve25519.Signing.PrivateKey()
        let producer = try KafkaProducer(configuration: ProducerConfiguration(kafka: kafka), logger: logger)
        func send(_ record: ControlRecord) async throws {
            _ = try await producer.send(ProducerRecord(topic: controlTopic, key: record.key, value: record.value))
        }
        func digest(_ version: String) -> String {
            (try? ModelManifest.digest(in: registry.directory(for: Fixtures.reference(version)))) ?? Fixtures.digest
        }
        func deploy(_ version: String, sequence: Int64, signedBy key: Curve25519.Signing.PrivateKey = operatorKey) throws -> ControlRecord {
            try Fixtures.record(ControlMessage(deployment: "sentiment", target: Fixtures.reference(version), mode: .deploy,
                                               sequence: sequence, issuedBy: "tests", manifestDigest: digest(version)),
                                signedBy: key)
        }

        // Before the service starts: v1 is deployed.
        let deployV1 = try deploy("v1", sequence: 1)
        try await send(deployV1)

        let reporter = StatusReporter(producer: producer, topic: statusTopic, instance: "instance-a",
                                      deployment: "sentiment", interval: .seconds(60), logger: logger)
        var configuration = ControlListener.Configuration(
            deployment: "sentiment", registry: registry,
            verifier: ControlVerifier(trustedKeys: [operatorKey.publicKey]), kafka: kafka)
        configuration.controlTopic = controlTopic
        let listener = try ControlListener(configuration: configuration, reporter: reporter, logger: logger)
        let deployment = try await listener.catchUp()
        #expect(deployment.current.primary.identity == ModelIdentity(name: "sentiment", version: "v1"))
        #expect(reporter.control.appliedSequence == 1)

        let statusReader = try TopicFollower(topic: statusTopic, kafka: kafka, logger: logger)
        _ = try await statusReader.readToEnd()
        let listening = Task { try await listener.run() }
        let reporting = Task { try await reporter.run() }
        defer {
            listening.cancel()
            reporting.cancel()
        }

        // A forged deploy (another key) and then a genuine one.
        let intruder = Curve25519.Signing.PrivateKey()
        let forged = try deploy("v2", sequence: 2, signedBy: intruder)
        try await send(forged)
        try await send(try deploy("v2", sequence: 3))
        let applied = try await nextHeartbeat(from: statusReader) { $0.appliedSequence == 3 }
        #expect(applied.active == Fixtures.reference("v2"))
        #expect(deployment.current.primary.identity.version == "v2")
        #expect(listener.ledger.rejections == [.unknownKey(keyID: signingKeyID(intruder.publicKey))])
        // The rejection stays reported, naming the record, for `--wait`.
        #expect(applied.rejectedRecord == forged.digest)
        #expect(applied.rejectedRecords?.last?.kind == "unknown_key" && applied.rejectedCount == 1)

        // Replaying the old signed v1 deploy is rejected and reported; v2 keeps serving.
        try await send(deployV1)
        let replayed = try await nextHeartbeat(from: statusReader) { $0.lastError?.contains("replayed") == true }
        #expect(replayed.active == Fixtures.reference("v2"))
        #expect(deployment.current.primary.identity.version == "v2")

        // A version that is not in the registry fails; the failure names it and v2 keeps serving.
        try await send(try deploy("v9", sequence: 4))
        let failed = try await nextHeartbeat(from: statusReader) { $0.failedSequence == 4 }
        #expect(failed.failedVersion == Fixtures.reference("v9"))
        #expect(failed.lastError?.contains("sentiment/v9") == true)
        #expect(failed.active == Fixtures.reference("v2"))
        #expect(deployment.current.primary.identity.version == "v2")

        // A canary of v1 beside v2 keeps both loaded; the same model object is reused for v2.
        let servingV2 = deployment.current.primary
        var canary = ControlMessage(deployment: "sentiment", target: Fixtures.reference("v1"), mode: .canary,
                                    canaryPercent: 20, primary: Fixtures.reference("v2"), sequence: 5, issuedBy: "tests",
                                    manifestDigest: digest("v1"), primaryManifestDigest: digest("v2"))
        canary.previous = Fixtures.reference("v1")
        try await send(try Fixtures.record(canary, signedBy: operatorKey))
        let canaryBeat = try await nextHeartbeat(from: statusReader) { $0.appliedSequence == 5 }
        #expect(canaryBeat.candidate == Fixtures.reference("v1") && canaryBeat.canaryPercent == 20)
        #expect(deployment.current.primary === servingV2)
        #expect(deployment.current.mode == .canary(percent: 20))

        await statusReader.close()
        await producer.close()
    }

    /// The next heartbeat on the status topic that satisfies `condition`.
    private func nextHeartbeat(from reader: TopicFollower,
                               _ condition: @escaping @Sendable (InstanceHeartbeat) -> Bool) async throws -> InstanceHeartbeat {
        try await withDeadline(.seconds(60), "a heartbeat") {
            for try await event in reader.events {
                guard case .record(let record) = event, let value = record.value,
                      let heartbeat = try? JSONDecoder.control.decode(InstanceHeartbeat.self, from: Data(value)) else { continue }
                if condition(heartbeat) { return heartbeat }
            }
            throw TestFailure("the status topic ended")
        }
    }
}
