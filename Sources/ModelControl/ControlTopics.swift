import Foundation
import Kafka
import Logging
import Timeouts

/// The control-plane topics and how to read them.
public enum ControlTopics {
    public static let defaultControlTopic = "minirbt-control"
    public static let defaultStatusTopic = "minirbt-status"

    /// Creates the status topic if absent: one partition, compacted (only the latest heartbeat per instance
    /// must survive). The control topic: ``ensureControl(_:admin:)``.
    public static func ensure(_ topic: String, admin: KafkaAdmin) async throws {
        try await admin.createTopic(TopicSpecification(name: topic, partitions: 1, config: ["cleanup.policy": "compact"]))
    }

    /// Creates the control topic if absent: one partition (a total order of control messages), compacted
    /// (every message survives, each under its own key: ``recordKey(deployment:sequence:)``), with the broker stamping each
    /// record's timestamp (`message.timestamp.type=LogAppendTime`): the validity window of a message is
    /// checked against it, and a producer-set timestamp could be back-dated by whoever appends. An existing
    /// topic's settings are left as they are (docs/operations.md, section 3).
    public static func ensureControl(_ topic: String, admin: KafkaAdmin) async throws {
        try await admin.createTopic(TopicSpecification(name: topic, partitions: 1, config: [
            "cleanup.policy": "compact", "message.timestamp.type": "LogAppendTime",
        ]))
    }

    /// The key of a control message's record: `<deployment>/<sequence>`, one key per message.
    ///
    /// Compaction keeps the last record per key. With one key per message no later record of a deployment
    /// replaces an earlier one, so compaction cannot turn an old message into the current decision (a
    /// replayed envelope under its own key is identical to the original; under any other key it is
    /// rejected as misfiled), and a tombstone or junk under a new key erases nothing. Replicas check that
    /// each signed message sits under exactly this key.
    public static func recordKey(deployment: String, sequence: Int64) -> String {
        "\(deployment)/\(sequence)"
    }

    /// The deployment a control record key belongs to: the part before the first `/` (the whole key for
    /// records keyed by deployment alone, as earlier versions wrote them).
    public static func deployment(ofRecordKey key: String) -> Substring {
        key.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false).first ?? Substring(key)
    }
}

/// One record of the control topic, as a ``ControlLedger`` judges it.
public struct ControlRecord: Sendable {
    public var key: [UInt8]?
    /// `nil` for a tombstone.
    public var value: [UInt8]?
    /// The record's timestamp: when the broker appended it (with `message.timestamp.type=LogAppendTime`,
    /// otherwise when the producer created it); `nil` when the record has none.
    public var appendedAt: Date?
    public var offset: Int64?

    public init(key: [UInt8]?, value: [UInt8]?, appendedAt: Date? = nil, offset: Int64? = nil) {
        self.key = key
        self.value = value
        self.appendedAt = appendedAt
        self.offset = offset
    }

    public init(_ record: ConsumerRecord) {
        self.init(key: record.key, value: record.value,
                  appendedAt: record.timestampMilliseconds.map { Date(timeIntervalSince1970: Double($0) / 1000) },
                  offset: record.offset)
    }

    /// The key as text; invalid UTF-8 is replaced, so junk keys still print.
    public var keyText: String? { key.map { String(decoding: $0, as: UTF8.self) } }

    /// ``controlRecordDigest(_:)`` of the value; `nil` for a tombstone.
    public var digest: String? { value.map(controlRecordDigest) }
}

/// Why a topic could not be read to its end.
public struct TopicReadTimeout: Error, Sendable, CustomStringConvertible {
    public let topic: String
    public let timeout: Duration
    public let remaining: [TopicPartition: Int64]

    public var description: String {
        "reading \(topic) to its end did not finish within \(timeout) (still expecting offsets up to \(remaining.sorted { $0.key < $1.key }.map { "\($0.key)@\($0.value)" }.joined(separator: ", ")))"
    }
}

/// Reads every partition of one topic from the beginning, without a consumer group: first up to the high
/// watermarks seen at start (``readToEnd``), then, for followers, onward as records arrive (``events``).
public final class TopicFollower: Sendable {
    public let topic: String
    public let consumer: KafkaConsumer
    private let admin: KafkaAdmin

    public init(topic: String, kafka: KafkaConfiguration, logger: Logger) throws {
        self.topic = topic
        var configuration = ConsumerConfiguration(kafka: kafka)
        configuration.autoOffsetReset = .earliest
        configuration.reportsEndOfPartition = true
        consumer = try KafkaConsumer(configuration: configuration, logger: logger)
        admin = try KafkaAdmin(configuration: kafka, logger: logger)
    }

    /// The records from the beginning up to the high watermarks at the time of the call, in offset order per
    /// partition. A partition is read once the consumer's position reaches its watermark (a record there or
    /// the end-of-partition event), so a missing last record cannot stall the read. Leaves the consumer positioned after them, so ``events`` continues from there.
    public func readToEnd(timeout: Duration = .seconds(30)) async throws -> [ConsumerRecord] {
        let topic = topic
        let description = try await admin.describeTopic(topic)
        let partitions = (0..<Int32(description.partitionCount)).map { TopicPartition(topic: topic, partition: $0) }
        var remaining: [TopicPartition: Int64] = [:]
        for partition in partitions {
            let marks = try await consumer.watermarks(partition)
            if marks.high > marks.low { remaining[partition] = marks.high }
        }
        try await consumer.assign(Dictionary(uniqueKeysWithValues: partitions.map { ($0, KafkaOffset.beginning) }))
        guard !remaining.isEmpty else { return [] }
        let pending = remaining
        let consumer = consumer
        let read = try await withTimeout(timeout) {
            var remaining = pending
            var records: [ConsumerRecord] = []
            for try await event in consumer.events {
                // Done with a partition once the consumer's position passed the watermark, whether or
                // not a record sits at the last offset: on a compacted topic it may be gone (a tombstone
                // cleaned away), and a transaction marker is never delivered.
                let position: (TopicPartition, Int64)
                switch event {
                case .record(let record):
                    records.append(record)
                    position = (record.topicPartition, record.offset + 1)
                case .endOfPartition(let partition, let offset):
                    position = (partition, offset)
                default:
                    continue
                }
                if let end = remaining[position.0], position.1 >= end {
                    remaining[position.0] = nil
                }
                if remaining.isEmpty { return records }
            }
            return records
        }
        guard let records = read else {
            throw TopicReadTimeout(topic: topic, timeout: timeout, remaining: pending)
        }
        return records
    }

    /// Records after those ``readToEnd`` returned. Iterate from one task.
    public var events: ConsumerEvents { consumer.events }

    public func close() async {
        await consumer.close()
    }
}
