import CRdKafka

/// Conversions between Swift collections and `rd_kafka_topic_partition_list_t`.
enum TopicPartitionList {
    /// librdkafka's "no offset" marker (`RD_KAFKA_OFFSET_INVALID`).
    static let invalidOffset: Int64 = -1001

    /// Builds a list (offsets set where given), passes it to `body`, then destroys it.
    static func with<Result>(_ entries: [(TopicPartition, Int64?)],
                             _ body: (UnsafeMutablePointer<rd_kafka_topic_partition_list_t>) throws(KafkaError) -> Result)
        throws(KafkaError) -> Result {
        guard let list = rd_kafka_topic_partition_list_new(Int32(clamping: entries.count)) else {
            throw KafkaError.client("rd_kafka_topic_partition_list_new returned NULL",
                                    operation: "building a partition list")
        }
        defer { rd_kafka_topic_partition_list_destroy(list) }
        for (topicPartition, offset) in entries {
            let element = rd_kafka_topic_partition_list_add(list, topicPartition.topic, topicPartition.partition)
            if let offset { element?.pointee.offset = offset }
        }
        return try body(list)
    }

    /// One entry of a list as librdkafka filled it in.
    struct Entry {
        var topicPartition: TopicPartition
        var offset: Int64
        var error: rd_kafka_resp_err_t
    }

    static func entries(of list: UnsafePointer<rd_kafka_topic_partition_list_t>?) -> [Entry] {
        guard let list, let elements = list.pointee.elems else { return [] }
        return (0..<Int(list.pointee.cnt)).map { index in
            let element = elements[index]
            let topic = element.topic.map { String(cString: $0) } ?? ""
            return Entry(topicPartition: TopicPartition(topic: topic, partition: element.partition),
                         offset: element.offset, error: element.err)
        }
    }

    /// The first per-partition error in `list`, as a `KafkaError` naming the partition.
    static func firstError(in list: UnsafePointer<rd_kafka_topic_partition_list_t>?,
                           operation: String) -> KafkaError? {
        guard let failed = entries(of: list).first(where: { $0.error != RD_KAFKA_RESP_ERR_NO_ERROR }) else {
            return nil
        }
        return KafkaError(code: failed.error, operation: "\(operation) (\(failed.topicPartition))")
    }
}

extension KafkaOffset {
    /// The librdkafka encoding: logical offsets are negative sentinels.
    var rawValue: Int64 {
        switch self {
        case .beginning: return Int64(RD_KAFKA_OFFSET_BEGINNING)
        case .end: return Int64(RD_KAFKA_OFFSET_END)
        case .committed: return Int64(RD_KAFKA_OFFSET_STORED)
        case .offset(let offset): return offset
        }
    }
}

extension ConsumerRecord {
    /// Copies a successfully consumed message out of librdkafka's buffers.
    init(message: UnsafePointer<rd_kafka_message_t>) {
        let topic = message.pointee.rkt.flatMap { rd_kafka_topic_name($0) }.map { String(cString: $0) } ?? ""
        var timestampType = RD_KAFKA_TIMESTAMP_NOT_AVAILABLE
        let timestamp = rd_kafka_message_timestamp(message, &timestampType)
        self.init(topic: topic,
                  partition: message.pointee.partition,
                  offset: message.pointee.offset,
                  timestampMilliseconds: timestampType == RD_KAFKA_TIMESTAMP_NOT_AVAILABLE ? nil : timestamp,
                  key: bytes(message.pointee.key, message.pointee.key_len),
                  value: bytes(message.pointee.payload, message.pointee.len),
                  headers: messageHeaders(of: message))
    }
}

private func bytes(_ pointer: UnsafeMutableRawPointer?, _ count: Int) -> [UInt8]? {
    guard let pointer else { return nil }
    return Array(UnsafeRawBufferPointer(start: pointer, count: count))
}

private func messageHeaders(of message: UnsafePointer<rd_kafka_message_t>) -> [KafkaHeader] {
    var list: OpaquePointer?
    guard rd_kafka_message_headers(message, &list) == RD_KAFKA_RESP_ERR_NO_ERROR, let list else { return [] }
    var result: [KafkaHeader] = []
    var index = 0
    var name: UnsafePointer<CChar>?
    var value: UnsafeRawPointer?
    var size = 0
    while rd_kafka_header_get_all(list, index, &name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR {
        let headerValue = value.map { Array(UnsafeRawBufferPointer(start: $0, count: size)) }
        result.append(KafkaHeader(name: name.map { String(cString: $0) } ?? "", value: headerValue))
        index += 1
    }
    return result
}
