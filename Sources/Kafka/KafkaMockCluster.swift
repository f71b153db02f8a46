import CRdKafka
import Logging

/// librdkafka's in-process mock cluster, for fault-injection tests: brokers that speak the Kafka protocol on
/// loopback ports, with consumer groups and transactions, and whose answers to given requests can be
/// replaced by errors. Not for production use.
///
/// Known limits of the mock (librdkafka 2.8): fetch responses carry no aborted-transaction list and the last
/// stable offset is the high watermark, so a `read_committed` reader also sees records of aborted
/// transactions that reached the log.
public final class KafkaMockCluster: @unchecked Sendable {
    // @unchecked: the cluster and its client are thread-safe librdkafka objects, immutable pointers here.
    private let client: RdKafkaClient
    private let cluster: OpaquePointer

    /// `host:port,...` of the mock brokers.
    public let bootstrapServers: String

    /// Kafka API keys whose responses tests replace with errors.
    public enum Request: Int16, Sendable {
        case produce = 0
        case fetch = 1
        case offsetCommit = 8
        case joinGroup = 11
        case heartbeat = 12
        case syncGroup = 14
        case initProducerID = 22
        case addPartitionsToTransaction = 24
        case addOffsetsToTransaction = 25
        case endTransaction = 26
        case transactionOffsetCommit = 28
    }

    /// Starts `brokers` mock brokers.
    public init(brokers: Int32 = 3, logger: Logger) throws(KafkaError) {
        client = try RdKafkaClient(type: RD_KAFKA_PRODUCER, properties: ["log_level": "3"],
                                   context: ClientContext(logger: logger))
        guard let cluster = rd_kafka_mock_cluster_new(client.handle, brokers) else {
            throw KafkaError.client("rd_kafka_mock_cluster_new returned NULL", operation: "starting a mock cluster")
        }
        self.cluster = cluster
        bootstrapServers = rd_kafka_mock_cluster_bootstraps(cluster).map { String(cString: $0) } ?? ""
        // Groups form without the broker-side initial delay (3 s by default).
        rd_kafka_mock_group_initial_rebalance_delay_ms(cluster, 0)
    }

    deinit {
        rd_kafka_mock_cluster_destroy(cluster)
    }

    /// Creates a topic (the mock's replication factor only sets the follower lists).
    public func createTopic(_ name: String, partitions: Int32, replicationFactor: Int32 = 1) throws(KafkaError) {
        try check(rd_kafka_mock_topic_create(cluster, name, partitions, replicationFactor), "creating mock topic \(name)")
    }

    /// The next `errors.count` requests of kind `request`, to any broker, fail with these codes in order
    /// (`rd_kafka_resp_err_t` raw values, e.g. `KafkaMockCluster.errorCode("TOPIC_AUTHORIZATION_FAILED")`).
    public func failNext(_ request: Request, with errors: [Int32]) {
        let codes = errors.map { rd_kafka_resp_err_t(rawValue: $0) }
        codes.withUnsafeBufferPointer { buffer in
            rd_kafka_mock_push_request_errors_array(cluster, request.rawValue, buffer.count, buffer.baseAddress)
        }
    }

    /// Takes broker `id` (1-based) down: its connections close and new ones are refused, as when its host
    /// fails. Its partitions keep their leader until ``setLeader(topic:partition:broker:)`` moves them.
    public func setBrokerDown(_ id: Int32) throws(KafkaError) {
        try check(rd_kafka_mock_broker_set_down(cluster, id), "taking mock broker \(id) down")
    }

    /// Brings broker `id` back up.
    public func setBrokerUp(_ id: Int32) throws(KafkaError) {
        try check(rd_kafka_mock_broker_set_up(cluster, id), "bringing mock broker \(id) up")
    }

    /// Makes broker `broker` the leader of `topic`'s `partition` (a leader change, as after a failover or a
    /// preferred-leader election); clients learn it from their next metadata refresh.
    public func setLeader(topic: String, partition: Int32, broker: Int32) throws(KafkaError) {
        try check(rd_kafka_mock_partition_set_leader(cluster, topic, partition, broker),
                  "moving \(topic)[\(partition)] to mock broker \(broker)")
    }

    /// Makes broker `broker` the coordinator of consumer group `group`.
    public func setGroupCoordinator(_ group: String, broker: Int32) throws(KafkaError) {
        try check(rd_kafka_mock_coordinator_set(cluster, "group", group, broker),
                  "making mock broker \(broker) the coordinator of \(group)")
    }

    private func check(_ result: rd_kafka_resp_err_t, _ operation: String) throws(KafkaError) {
        guard result == RD_KAFKA_RESP_ERR_NO_ERROR else { throw KafkaError(code: result, operation: operation) }
    }

    /// The raw code of a librdkafka error name (`rd_kafka_err2name`), e.g. "TOPIC_AUTHORIZATION_FAILED";
    /// nil when librdkafka knows no such name.
    public static func errorCode(_ name: String) -> Int32? {
        var count = 0
        var descriptions: UnsafePointer<rd_kafka_err_desc>?
        rd_kafka_get_err_descs(&descriptions, &count)
        guard let descriptions else { return nil }
        for index in 0..<count {
            let entry = descriptions[index]
            if let entryName = entry.name, String(cString: entryName) == name { return entry.code.rawValue }
        }
        return nil
    }
}
