import Kafka
import KafkaTestSupport
import Testing

@Suite("Admin against a real broker")
struct AdminTests {
    @Test("creating a topic twice reports that it already existed; describe sees its partitions")
    func createDescribeDelete() async throws {
        let admin = try KafkaAdmin(configuration: TestBroker.kafka, logger: TestBroker.logger)
        let name = TestBroker.uniqueTopic("admin")
        let specification = TopicSpecification(name: name, partitions: 3, config: ["cleanup.policy": "compact"])
        #expect(try await admin.createTopic(specification) == .created)
        #expect(try await admin.createTopic(specification) == .alreadyExisted)
        #expect(try await admin.describeTopic(name) == TopicDescription(name: name, partitionCount: 3))

        try await admin.deleteTopic(name)
        await #expect(throws: KafkaError.self) { try await admin.describeTopic(name) }
    }

    @Test("describing a missing topic is a typed error")
    func describeMissingTopic() async throws {
        let admin = try KafkaAdmin(configuration: TestBroker.kafka, logger: TestBroker.logger)
        do {
            _ = try await admin.describeTopic(TestBroker.uniqueTopic("missing"))
            Issue.record("a missing topic was described")
        } catch {
            #expect(error.name == "UNKNOWN_TOPIC_OR_PART")
        }
    }

    @Test("group lag is the high watermark minus the committed offset")
    func groupLag() async throws {
        let topic = try await TestBroker.createTopic("lag", partitions: 2)
        let producer = try KafkaProducer(configuration: ProducerConfiguration(kafka: TestBroker.kafka),
                                         logger: TestBroker.logger)
        for index in 0..<5 {
            // Awaited one by one so each record is its own batch (see the Tansu note in ProducerConsumerTests).
            _ = try await producer.send(ProducerRecord(topic: topic, partition: 0, key: nil, value: "\(index)"))
        }
        await producer.close()

        // A consumer that never joins the group can still commit for it: no 20-second group join needed.
        let groupID = TestBroker.uniqueTopic("lag-group")
        let consumer = try KafkaConsumer(configuration: ConsumerConfiguration(kafka: TestBroker.kafka, groupID: groupID),
                                         logger: TestBroker.logger)
        let first = TopicPartition(topic: topic, partition: 0)
        try await consumer.commit([first: 3])
        #expect(try await consumer.committed([first]) == [first: 3])
        await consumer.close()

        let admin = try KafkaAdmin(configuration: TestBroker.kafka, logger: TestBroker.logger)
        let lag = try await admin.consumerGroupLag(groupID: groupID, topic: topic)
        #expect(lag == [
            PartitionLag(topicPartition: first, committed: 3, highWatermark: 5, lag: 2),
            PartitionLag(topicPartition: TopicPartition(topic: topic, partition: 1), committed: nil, highWatermark: 0, lag: 0),
        ])
    }
}
