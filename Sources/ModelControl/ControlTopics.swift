import Foundation
import Kafka
import Logging

/// The control-plane topics and how to read them.
public enum ControlTopics {
    public static let defaultControlTopic = "minirbt-control"
    public static let defaultStatusTopic = "minirbt-status"

    /// Creates the control or status topic if absent: one partition (a total order of control messages),
    /// compacted (the latest message per deployment or instance is all that must survive).
    public static func ensure(_ topic: String, admin: KafkaAdmin) async throws {
        try await admin.createTopic(TopicSpecification(name: topic, partitions: 1, config: ["cleanup.policy": "compact"]))
    }
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
        consumer = try KafkaConsumer(configuration: configuration, logger: logger)
        admin = try KafkaAdmin(configuration: kafka, logger: logger)
    }

    /// The records from the beginning up to the high watermarks at the time of the call, in offset order per
    /// partition. Leaves the consumer positioned after them, so ``events`` continues from there.
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
        return try await withThrowingTaskGroup(of: [ConsumerRecord]?.self) { group in
            group.addTask {
                var remaining = pending
                var records: [ConsumerRecord] = []
                for try await event in consumer.events {
                    guard case .message(let record) = event else { continue }
                    records.append(record)
                    if let end = remaining[record.topicPartition], record.offset + 1 >= end {
                        remaining[record.topicPartition] = nil
                    }
                    if remaining.isEmpty { return records }
                }
                return records
            }
            group.addTask {
                try await Task.sleep(for: timeout)
                return nil
            }
            defer { group.cancelAll() }
            guard let first = try await group.next(), let records = first else {
                throw TopicReadTimeout(topic: topic, timeout: timeout, remaining: pending)
            }
            return records
        }
    }

    /// Records after those ``readToEnd`` returned. Iterate from one task.
    public var events: ConsumerEvents { consumer.events }

    public func close() async {
        await consumer.close()
    }
}
