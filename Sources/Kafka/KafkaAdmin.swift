import CRdKafka
import Logging

/// What `createTopic` found.
public enum TopicCreation: Sendable, Equatable {
    case created
    /// A topic with that name existed already; its settings were left as they are.
    case alreadyExisted
}

/// A topic to create.
public struct TopicSpecification: Sendable, Equatable {
    public var name: String
    public var partitions: Int32
    public var replicationFactor: Int32
    /// Topic-level settings, e.g. `["cleanup.policy": "compact", "max.message.bytes": "1048588"]`.
    public var config: [String: String]

    public init(name: String, partitions: Int32, replicationFactor: Int32 = 1, config: [String: String] = [:]) {
        self.name = name
        self.partitions = partitions
        self.replicationFactor = replicationFactor
        self.config = config
    }
}

/// A topic as the cluster describes it.
public struct TopicDescription: Sendable, Equatable {
    public var name: String
    public var partitionCount: Int

    public init(name: String, partitionCount: Int) {
        self.name = name
        self.partitionCount = partitionCount
    }
}

/// A consumer group's progress on one partition.
public struct PartitionLag: Sendable, Equatable {
    public var topicPartition: TopicPartition
    /// Next offset the group will read; `nil` when the group never committed this partition.
    public var committed: Int64?
    public var highWatermark: Int64
    /// Records not yet consumed: high watermark minus committed (or minus the low watermark when nothing
    /// was committed).
    public var lag: Int64

    public init(topicPartition: TopicPartition, committed: Int64?, highWatermark: Int64, lag: Int64) {
        self.topicPartition = topicPartition
        self.committed = committed
        self.highWatermark = highWatermark
        self.lag = lag
    }
}

/// Cluster administration: topics and consumer-group offsets.
public final class KafkaAdmin: Sendable {
    private let client: RdKafkaClient
    private let blockingCalls: BlockingCallQueue

    public init(configuration: KafkaConfiguration, logger: Logger) throws(KafkaError) {
        var properties = configuration.baseProperties
        // The admin client is a producer handle underneath.
        properties.merge(configuration.properties(for: .producer)) { _, passThrough in passThrough }
        client = try RdKafkaClient(type: RD_KAFKA_PRODUCER, properties: properties,
                                   context: ClientContext(logger: logger))
        blockingCalls = BlockingCallQueue(label: "kafka.admin.calls.\(client.name)")
    }

    /// Creates a topic. An existing topic of that name is reported as `.alreadyExisted`, not as an error,
    /// so start-up code can "ensure" topics idempotently.
    @discardableResult
    public func createTopic(_ specification: TopicSpecification,
                            timeout: Duration = .seconds(30)) async throws(KafkaError) -> TopicCreation {
        let client = client
        return try await blockingCalls.run { () throws(KafkaError) in
            let operation = "creating topic \(specification.name)"
            var errorText = [CChar](repeating: 0, count: 512)
            guard let newTopic = rd_kafka_NewTopic_new(specification.name, specification.partitions,
                                                       specification.replicationFactor, &errorText, errorText.count)
            else {
                throw KafkaError(code: RD_KAFKA_RESP_ERR__INVALID_ARG, operation: operation,
                                 detail: string(fromErrorBuffer: errorText))
            }
            defer { rd_kafka_NewTopic_destroy(newTopic) }
            for (key, value) in specification.config.sorted(by: { $0.key < $1.key }) {
                let result = rd_kafka_NewTopic_set_config(newTopic, key, value)
                if result != RD_KAFKA_RESP_ERR_NO_ERROR {
                    throw KafkaError(code: result, operation: "\(operation): setting \(key)")
                }
            }
            var topics: [OpaquePointer?] = [newTopic]
            let event = try adminRequest(client, RD_KAFKA_ADMIN_OP_CREATETOPICS, timeout: timeout,
                                         operation: operation) { options, queue in
                rd_kafka_CreateTopics(client.handle, &topics, 1, options, queue)
            }
            defer { rd_kafka_event_destroy(event) }
            var count = 0
            guard let results = rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(event), &count),
                  count == 1, let result = results[0]
            else {
                throw KafkaError.client("the broker returned no result for the topic", operation: operation)
            }
            let code = rd_kafka_topic_result_error(result)
            switch code {
            case RD_KAFKA_RESP_ERR_NO_ERROR:
                return .created
            case RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS:
                return .alreadyExisted
            default:
                throw KafkaError(code: code, operation: operation,
                                 detail: rd_kafka_topic_result_error_string(result).map { String(cString: $0) })
            }
        }
    }

    /// Deletes a topic.
    public func deleteTopic(_ name: String, timeout: Duration = .seconds(30)) async throws(KafkaError) {
        let client = client
        try await blockingCalls.run { () throws(KafkaError) in
            let operation = "deleting topic \(name)"
            guard let deleteTopic = rd_kafka_DeleteTopic_new(name) else {
                throw KafkaError.client("rd_kafka_DeleteTopic_new returned NULL", operation: operation)
            }
            defer { rd_kafka_DeleteTopic_destroy(deleteTopic) }
            var topics: [OpaquePointer?] = [deleteTopic]
            let event = try adminRequest(client, RD_KAFKA_ADMIN_OP_DELETETOPICS, timeout: timeout,
                                         operation: operation) { options, queue in
                rd_kafka_DeleteTopics(client.handle, &topics, 1, options, queue)
            }
            defer { rd_kafka_event_destroy(event) }
            var count = 0
            if let results = rd_kafka_DeleteTopics_result_topics(rd_kafka_event_DeleteTopics_result(event), &count),
               count == 1, let result = results[0], rd_kafka_topic_result_error(result) != RD_KAFKA_RESP_ERR_NO_ERROR {
                throw KafkaError(code: rd_kafka_topic_result_error(result), operation: operation,
                                 detail: rd_kafka_topic_result_error_string(result).map { String(cString: $0) })
            }
        }
    }

    /// Describes a topic from cluster metadata.
    /// - Throws: `KafkaError` `UNKNOWN_TOPIC_OR_PART` when the topic does not exist.
    public func describeTopic(_ name: String, timeout: Duration = .seconds(10)) async throws(KafkaError) -> TopicDescription {
        let client = client
        return try await blockingCalls.run { () throws(KafkaError) in
            try describe(client, name, timeout: timeout)
        }
    }

    /// Committed offset, high watermark and lag of `groupID` on every partition of `topic`.
    public func consumerGroupLag(groupID: String, topic: String,
                                 timeout: Duration = .seconds(10)) async throws(KafkaError) -> [PartitionLag] {
        let client = client
        return try await blockingCalls.run { () throws(KafkaError) in
            let operation = "reading offsets of group \(groupID) on \(topic)"
            let description = try describe(client, topic, timeout: timeout)
            let partitions = (0..<Int32(clamping: description.partitionCount)).map {
                TopicPartition(topic: topic, partition: $0)
            }
            let committed: [TopicPartition: Int64] = try TopicPartitionList.with(partitions.map { ($0, nil) }) {
                list throws(KafkaError) in
                guard let request = rd_kafka_ListConsumerGroupOffsets_new(groupID, list) else {
                    throw KafkaError.client("rd_kafka_ListConsumerGroupOffsets_new returned NULL", operation: operation)
                }
                defer { rd_kafka_ListConsumerGroupOffsets_destroy(request) }
                var requests: [OpaquePointer?] = [request]
                let event = try adminRequest(client, RD_KAFKA_ADMIN_OP_LISTCONSUMERGROUPOFFSETS, timeout: timeout,
                                             operation: operation) { options, queue in
                    rd_kafka_ListConsumerGroupOffsets(client.handle, &requests, 1, options, queue)
                }
                defer { rd_kafka_event_destroy(event) }
                var count = 0
                guard let groups = rd_kafka_ListConsumerGroupOffsets_result_groups(
                          rd_kafka_event_ListConsumerGroupOffsets_result(event), &count),
                      count == 1, let group = groups[0]
                else {
                    throw KafkaError.client("the broker returned no result for the group", operation: operation)
                }
                if let error = rd_kafka_group_result_error(group) {
                    let code = rd_kafka_error_code(error)
                    throw KafkaError(code: code, operation: operation,
                                     detail: rd_kafka_error_string(error).map { String(cString: $0) })
                }
                var offsets: [TopicPartition: Int64] = [:]
                for entry in TopicPartitionList.entries(of: rd_kafka_group_result_partitions(group))
                where entry.error == RD_KAFKA_RESP_ERR_NO_ERROR && entry.offset >= 0 {
                    offsets[entry.topicPartition] = entry.offset
                }
                return offsets
            }
            return try partitions.map { partition throws(KafkaError) in
                let watermarks = try queryWatermarks(client.handle, partition, timeout: timeout)
                let position = committed[partition]
                return PartitionLag(topicPartition: partition, committed: position, highWatermark: watermarks.high,
                                    lag: max(0, watermarks.high - (position ?? watermarks.low)))
            }
        }
    }
}

func describe(_ client: RdKafkaClient, _ name: String, timeout: Duration) throws(KafkaError) -> TopicDescription {
    var metadata: UnsafePointer<rd_kafka_metadata>?
    let result = rd_kafka_metadata(client.handle, 1, nil, &metadata, timeout.timeoutMilliseconds)
    guard result == RD_KAFKA_RESP_ERR_NO_ERROR, let metadata else {
        throw KafkaError(code: result, operation: "reading metadata for topic \(name)")
    }
    defer { rd_kafka_metadata_destroy(metadata) }
    let topics = UnsafeBufferPointer(start: metadata.pointee.topics, count: Int(metadata.pointee.topic_cnt))
    guard let topic = topics.first(where: { $0.topic.map { String(cString: $0) } == name }),
          topic.err == RD_KAFKA_RESP_ERR_NO_ERROR
    else {
        throw KafkaError(code: RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART, operation: "describing topic \(name)")
    }
    return TopicDescription(name: name, partitionCount: Int(topic.partition_cnt))
}

/// Runs one admin request on a private queue and waits (bounded) for its result event.
private func adminRequest(_ client: RdKafkaClient, _ kind: rd_kafka_admin_op_t, timeout: Duration, operation: String,
                          _ start: (OpaquePointer?, OpaquePointer?) -> Void) throws(KafkaError) -> OpaquePointer {
    guard let queue = rd_kafka_queue_new(client.handle),
          let options = rd_kafka_AdminOptions_new(client.handle, kind)
    else {
        throw KafkaError.client("could not allocate an admin request", operation: operation)
    }
    defer {
        rd_kafka_AdminOptions_destroy(options)
        rd_kafka_queue_destroy(queue)
    }
    var errorText = [CChar](repeating: 0, count: 512)
    _ = rd_kafka_AdminOptions_set_request_timeout(options, timeout.timeoutMilliseconds, &errorText, errorText.count)
    start(options, queue)
    // The request timeout bounds the broker round trip; the extra second covers local queueing.
    guard let event = rd_kafka_queue_poll(queue, timeout.timeoutMilliseconds &+ 1000) else {
        throw KafkaError(code: RD_KAFKA_RESP_ERR__TIMED_OUT, operation: operation,
                         detail: "no answer within \(timeout)")
    }
    // Serve the main queue so error callbacks do not pile up on a client that is otherwise never polled.
    rd_kafka_poll(client.handle, 0)
    let code = rd_kafka_event_error(event)
    if code != RD_KAFKA_RESP_ERR_NO_ERROR {
        let detail = rd_kafka_event_error_string(event).map { String(cString: $0) }
        rd_kafka_event_destroy(event)
        throw KafkaError(code: code, operation: operation, detail: detail)
    }
    return event
}
