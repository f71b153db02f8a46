import Crypto
import Foundation
import Kafka
import KafkaTestSupport
import ModelControl
import Testing
@testable import StreamPipeline

@Suite("Control listener: rejected records at start-up")
struct ControlRejectionMetricsTests {
    @Test("junk, a misfiled replay and a final tombstone are counted by reason and never stall start-up")
    func rejectionsAreCountedAtStartUp() async throws {
        let topic = try await TestBroker.createTopic("control-rejections", partitions: 1, config: ["cleanup.policy": "compact"])
        let key = Curve25519.Signing.PrivateKey()
        let message = ControlMessage(deployment: "sentiment", target: try ModelReference(name: "sentiment", version: "v1"),
                                     mode: .deploy, sequence: 1, issuedBy: "tests", manifestDigest: String(repeating: "ab", count: 32))
        let signed = try ControlSigner(privateKey: key).signedRecordValue(message)
        let producer = try KafkaProducer(configuration: ProducerConfiguration(kafka: TestBroker.kafka), logger: TestBroker.logger)
        for (recordKey, value) in [("sentiment/9", Array("junk".utf8)), ("sentiment", signed), ("other/1", Array("not ours".utf8)),
                                   ("sentiment/1", nil)] as [(String, [UInt8]?)] {
            _ = try await producer.send(ProducerRecord(topic: topic, key: Array(recordKey.utf8), value: value))
        }
        await producer.close()

        let factory = RecordingMetricsFactory()
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("minirbt-empty-registry-\(UUID().uuidString.prefix(8))")
        var configuration = ControlListener.Configuration(
            deployment: "sentiment", registry: ModelRegistry(root: root),
            verifier: ControlVerifier(trustedKeys: [key.publicKey]), kafka: TestBroker.kafka)
        configuration.controlTopic = topic
        configuration.catchUpTimeout = .seconds(30)
        configuration.metricsFactory = factory
        let listener = try ControlListener(configuration: configuration, reporter: nil, logger: TestBroker.logger)
        // Nothing valid and no fallback: a clear error, not a timeout, although the last record is a tombstone.
        await #expect { try await listener.catchUp() } throws: { error in
            guard case ControlListenerError.noModel = error else { return false }
            return true
        }
        #expect(factory.counts("minirbt_control_rejections_total", by: "reason", where: [:])
                == ["unsigned": 1, "misfiled": 1, "tombstone": 1])
        #expect(listener.ledger.rejectionCount == 3 && listener.ledger.latest == nil)
    }
}
