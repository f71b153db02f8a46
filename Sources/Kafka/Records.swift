/// A partition of a topic.
public struct TopicPartition: Hashable, Sendable, CustomStringConvertible, Comparable {
    public var topic: String
    public var partition: Int32

    public init(topic: String, partition: Int32) {
        self.topic = topic
        self.partition = partition
    }

    public var description: String { "\(topic)[\(partition)]" }

    public static func < (lhs: TopicPartition, rhs: TopicPartition) -> Bool {
        (lhs.topic, lhs.partition) < (rhs.topic, rhs.partition)
    }
}

/// Where to start reading a manually assigned partition.
public enum KafkaOffset: Hashable, Sendable {
    /// The oldest retained record.
    case beginning
    /// Only records produced after the assignment.
    case end
    /// The group's committed offset (falling back to `auto.offset.reset`).
    case committed
    /// This exact offset.
    case offset(Int64)
}

/// A message header. Kafka allows repeated names and null values, so this is a list entry, not a map.
public struct KafkaHeader: Hashable, Sendable {
    public var name: String
    public var value: [UInt8]?

    public init(name: String, value: [UInt8]?) {
        self.name = name
        self.value = value
    }

    public init(name: String, value: String) {
        self.init(name: name, value: Array(value.utf8))
    }
}

/// A record to publish.
public struct ProducerRecord: Sendable {
    public var topic: String
    /// Target partition; `nil` lets the partitioner choose from the key (consistent hashing).
    public var partition: Int32?
    public var key: [UInt8]?
    /// `nil` publishes a tombstone.
    public var value: [UInt8]?
    public var headers: [KafkaHeader]
    /// CreateTime in milliseconds since the epoch; `nil` lets the client stamp the current time.
    public var timestampMilliseconds: Int64?

    public init(topic: String, partition: Int32? = nil, key: [UInt8]?, value: [UInt8]?,
                headers: [KafkaHeader] = [], timestampMilliseconds: Int64? = nil) {
        self.topic = topic
        self.partition = partition
        self.key = key
        self.value = value
        self.headers = headers
        self.timestampMilliseconds = timestampMilliseconds
    }

    /// Bytes the record occupies before framing: key, value, header names and values. Saturates.
    public var payloadSize: Int {
        var total = (key?.count ?? 0).addingReportingOverflow(value?.count ?? 0)
        for header in headers where !total.overflow {
            total = total.partialValue.addingReportingOverflow(header.name.utf8.count &+ (header.value?.count ?? 0))
        }
        return total.overflow ? Int.max : total.partialValue
    }

    /// Convenience for UTF-8 text keys and values.
    public init(topic: String, partition: Int32? = nil, key: String?, value: String,
                headers: [KafkaHeader] = []) {
        self.init(topic: topic, partition: partition, key: key.map { Array($0.utf8) },
                  value: Array(value.utf8), headers: headers)
    }
}

/// A record read from Kafka.
public struct ConsumerRecord: Sendable {
    public var topic: String
    public var partition: Int32
    public var offset: Int64
    /// Milliseconds since the Unix epoch (create or log-append time, per the topic); `nil` when absent.
    public var timestampMilliseconds: Int64?
    public var key: [UInt8]?
    /// `nil` for a tombstone.
    public var value: [UInt8]?
    public var headers: [KafkaHeader]

    public init(topic: String, partition: Int32, offset: Int64, timestampMilliseconds: Int64?,
                key: [UInt8]?, value: [UInt8]?, headers: [KafkaHeader]) {
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.timestampMilliseconds = timestampMilliseconds
        self.key = key
        self.value = value
        self.headers = headers
    }

    public var topicPartition: TopicPartition { TopicPartition(topic: topic, partition: partition) }

    /// Bytes of key, value, header names and values. Saturates.
    public var payloadSize: Int {
        ProducerRecord(topic: topic, key: key, value: value, headers: headers).payloadSize
    }

    /// The first header with this name, if any.
    public func header(_ name: String) -> KafkaHeader? {
        headers.first { $0.name == name }
    }
}

/// The broker's acknowledgement of a produced record.
public struct DeliveryReport: Sendable, Equatable {
    public var topic: String
    public var partition: Int32
    /// Offset assigned by the broker; `nil` when librdkafka could not learn it (e.g. idempotent retries).
    public var offset: Int64?
    public var timestampMilliseconds: Int64?

    public init(topic: String, partition: Int32, offset: Int64?, timestampMilliseconds: Int64?) {
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.timestampMilliseconds = timestampMilliseconds
    }
}

/// A partition's low and high watermark offsets. `high` is the offset the next record will get.
public struct WatermarkOffsets: Sendable, Equatable {
    public var low: Int64
    public var high: Int64

    public init(low: Int64, high: Int64) {
        self.low = low
        self.high = high
    }
}
