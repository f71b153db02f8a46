import Foundation
import Kafka
import Logging
import ModelControl

/// The admin side of the control topic: reads a deployment's accepted history, publishes signed messages.
struct ControlClient {
    let kafka: KafkaConfiguration
    let topic: String
    let logger: Logger

    /// Every record of the topic folded through a ledger for `deployment`.
    func ledger(for deployment: String, verifier: ControlVerifier) async throws -> ControlLedger {
        var ledger = ControlLedger(deployment: deployment)
        for record in try await records() {
            _ = try? ledger.accept(record, verifier: verifier)
        }
        return ledger
    }

    /// The topic's records from the beginning to its current end.
    func records() async throws -> [ControlRecord] {
        let admin = try KafkaAdmin(configuration: kafka, logger: logger)
        try await ControlTopics.ensureControl(topic, admin: admin)
        let follower = try TopicFollower(topic: topic, kafka: kafka, logger: logger)
        let records = try await follower.readToEnd()
        await follower.close()
        return records.map(ControlRecord.init)
    }

    /// Publishes `message` under its own key (`ControlTopics.recordKey`) and waits for the broker's acknowledgement; returns
    /// the record's `controlRecordDigest`.
    @discardableResult
    func send(_ message: ControlMessage, signer: ControlSigner) async throws -> String {
        let value = try signer.signedRecordValue(message)
        let key = ControlTopics.recordKey(deployment: message.deployment, sequence: message.sequence)
        let producer = try KafkaProducer(configuration: ProducerConfiguration(kafka: kafka), logger: logger)
        do {
            _ = try await producer.send(ProducerRecord(topic: topic, key: Array(key.utf8), value: value))
        } catch {
            await producer.close()
            throw error
        }
        await producer.close()
        return controlRecordDigest(value)
    }

    /// Above both the clock and the last accepted sequence, so a skewed clock cannot make a message a replay.
    static func nextSequence(after ledger: ControlLedger, now: Date = Date()) -> Int64 {
        max(Int64(now.timeIntervalSince1970 * 1000), (ledger.lastSequence ?? 0) + 1)
    }
}
