import Kafka
import KafkaTestSupport
import Synchronization
import Testing

@Suite("Producer and consumer against a real broker")
struct ProducerConsumerTests {
    @Test("10,000 keyed records are read by one group consumer exactly once, in per-partition order")
    func groupConsumerReadsEverythingOnceInOrder() async throws {
        let topic = try await TestBroker.createTopic("exactly-once-read", partitions: 4)
        let total = 10_000

        // Produce without awaiting each record; remember which sequence numbers landed where, in offset order.
        let producer = try KafkaProducer(configuration: ProducerConfiguration(kafka: TestBroker.kafka),
                                         logger: TestBroker.logger)
        let delivered = Mutex<[Int32: [(offset: Int64, sequence: Int)]]>([:])
        let failures = Mutex<[KafkaError]>([])
        for sequence in 0..<total {
            let record = ProducerRecord(topic: topic, key: "key-\(sequence % 97)", value: "\(sequence)",
                                        headers: [KafkaHeader(name: "seq", value: "\(sequence)"),
                                                  KafkaHeader(name: "empty", value: nil)])
            try await producer.enqueue(record) { result in
                switch result {
                case .success(let report):
                    delivered.withLock { $0[report.partition, default: []].append((report.offset ?? -1, sequence)) }
                case .failure(let error):
                    failures.withLock { $0.append(error) }
                }
            }
        }
        try await producer.flush(timeout: .seconds(30))
        await producer.close()
        #expect(failures.withLock { $0.isEmpty })
        let expectedByPartition = delivered.withLock { partitions in
            partitions.mapValues { $0.sorted { $0.offset < $1.offset }.map(\.sequence) }
        }
        #expect(expectedByPartition.keys.sorted() == [0, 1, 2, 3], "the keys should spread over all partitions")
        #expect(expectedByPartition.values.map(\.count).reduce(0, +) == total)

        let groupID = TestBroker.uniqueTopic("group")
        let consumer = try KafkaConsumer(configuration: ConsumerConfiguration(kafka: TestBroker.kafka, groupID: groupID),
                                         logger: TestBroker.logger)
        try await consumer.subscribe(topics: [topic])
        let consumed = try await withDeadline(.seconds(90), "\(total) records") {
            var byPartition: [Int32: [Int]] = [:]
            var count = 0
            var nextOffsets: [TopicPartition: Int64] = [:]
            for try await event in consumer.events {
                guard case .record(let record) = event else { continue }
                let sequence = Int(record.valueText) ?? -1
                #expect(record.keyText == "key-\(sequence % 97)")
                #expect(record.header("seq") == KafkaHeader(name: "seq", value: "\(sequence)"))
                #expect(record.header("empty") == KafkaHeader(name: "empty", value: nil))
                #expect(record.timestampMilliseconds != nil)
                byPartition[record.partition, default: []].append(sequence)
                nextOffsets[record.topicPartition] = record.offset + 1
                count += 1
                if count == total { break }
            }
            try await consumer.commit(nextOffsets)
            return byPartition
        }
        #expect(consumed == expectedByPartition, "every record once, each partition in produce order")

        // The group's committed offsets are the partition lengths. (Lag against the high watermark is
        // checked in AdminTests with one-record batches: Tansu 0.6 reports a partition's high watermark as
        // its last batch's base offset + 1, which is only exact when every batch holds one record.)
        let admin = try KafkaAdmin(configuration: TestBroker.kafka, logger: TestBroker.logger)
        let lag = try await admin.consumerGroupLag(groupID: groupID, topic: topic)
        let committed = Dictionary(uniqueKeysWithValues: lag.map { ($0.topicPartition.partition, $0.committed) })
        #expect(committed == expectedByPartition.mapValues { Int64($0.count) })
        await consumer.closeAcknowledgingRevocations()
    }

    @Test("a paused partition delivers nothing until resumed")
    func pauseAndResume() async throws {
        let topic = try await TestBroker.createTopic("pause", partitions: 2)
        let paused = TopicPartition(topic: topic, partition: 0)
        let running = TopicPartition(topic: topic, partition: 1)
        let consumer = try KafkaConsumer(configuration: ConsumerConfiguration(kafka: TestBroker.kafka),
                                         logger: TestBroker.logger)
        try await consumer.assign([paused: .beginning, running: .beginning])
        consumer.pause([paused])

        let producer = try KafkaProducer(configuration: ProducerConfiguration(kafka: TestBroker.kafka),
                                         logger: TestBroker.logger)
        for index in 0..<10 {
            _ = try await producer.send(ProducerRecord(topic: topic, partition: 0, key: nil, value: "paused-\(index)"))
        }
        for index in 0..<10 {
            _ = try await producer.send(ProducerRecord(topic: topic, partition: 1, key: nil, value: "running-\(index)"))
        }
        // Sent after every record of the paused partition was acknowledged.
        _ = try await producer.send(ProducerRecord(topic: topic, partition: 1, key: nil, value: "marker"))
        await producer.close()

        let beforeResume = try await withDeadline(.seconds(30), "the marker") {
            var values: [String] = []
            for try await event in consumer.events {
                guard case .record(let record) = event else { continue }
                values.append(record.valueText)
                if record.valueText == "marker" { break }
            }
            return values
        }
        #expect(beforeResume == (0..<10).map { "running-\($0)" } + ["marker"])

        consumer.resume([paused])
        let afterResume = try await withDeadline(.seconds(30), "the paused partition's records") {
            var values: [String] = []
            for try await event in consumer.events {
                guard case .record(let record) = event else { continue }
                #expect(record.partition == 0)
                values.append(record.valueText)
                if values.count == 10 { break }
            }
            return values
        }
        #expect(afterResume == (0..<10).map { "paused-\($0)" })
        let positions = try consumer.position([paused, running])
        #expect(positions[paused] == 10)
        #expect(positions[running] == 11)
        let watermarks = try await consumer.watermarks(running)
        #expect(watermarks == WatermarkOffsets(low: 0, high: 11))
        await consumer.closeAcknowledgingRevocations()
    }

    @Test("with reportsEndOfPartition, the end of each partition is an event after its last record")
    func endOfPartition() async throws {
        let topic = try await TestBroker.createTopic("eof", partitions: 2)
        let producer = try KafkaProducer(configuration: ProducerConfiguration(kafka: TestBroker.kafka),
                                         logger: TestBroker.logger)
        for index in 0..<3 {
            _ = try await producer.send(ProducerRecord(topic: topic, partition: 0, key: nil, value: "record-\(index)"))
        }
        await producer.close()
        var configuration = ConsumerConfiguration(kafka: TestBroker.kafka)
        configuration.reportsEndOfPartition = true
        let consumer = try KafkaConsumer(configuration: configuration, logger: TestBroker.logger)
        let full = TopicPartition(topic: topic, partition: 0), empty = TopicPartition(topic: topic, partition: 1)
        try await consumer.assign([full: .beginning, empty: .beginning])

        let seen = try await withDeadline(.seconds(30), "the end of both partitions") {
            var seen: [String] = []
            var ended: Set<TopicPartition> = []
            for try await event in consumer.events {
                switch event {
                case .record(let record): seen.append(record.valueText)
                case .endOfPartition(let partition, let offset):
                    ended.insert(partition)
                    seen.append("end of \(partition.partition) at \(offset)")
                default: continue
                }
                if ended == [full, empty] { break }
            }
            return seen
        }
        #expect(seen.filter { $0.hasPrefix("record") || $0.hasPrefix("end of 0") }
                == ["record-0", "record-1", "record-2", "end of 0 at 3"])
        #expect(seen.contains("end of 1 at 0"))
        try await consumer.closeAcknowledgingRevocations()
    }

    @Test("a record over the producer's message.max.bytes fails with a typed error")
    func oversizedRecordFails() async throws {
        let topic = try await TestBroker.createTopic("oversize", partitions: 1)
        var configuration = ProducerConfiguration(kafka: TestBroker.kafka)
        configuration.kafka.properties["message.max.bytes"] = "10000"
        let producer = try KafkaProducer(configuration: configuration, logger: TestBroker.logger)
        do {
            _ = try await producer.send(ProducerRecord(topic: topic, key: nil, value: [UInt8](repeating: 7, count: 20_000)))
            Issue.record("an oversized record was accepted")
        } catch {
            #expect(error.isMessageTooLarge, "got \(error)")
            #expect(error.operation.contains(topic))
        }
        // The producer stays usable after the rejection.
        let report = try await producer.send(ProducerRecord(topic: topic, key: "k", value: "small"))
        #expect(report.offset == 0)
        await producer.close()
    }

    @Test("a record for a partition the topic lacks fails through its delivery report, within the message timeout")
    func missingPartitionFails() async throws {
        // Tansu auto-creates unknown topics on produce, so a missing partition is this broker's undeliverable case.
        let topic = try await TestBroker.createTopic("no-partition", partitions: 1)
        var configuration = ProducerConfiguration(kafka: TestBroker.kafka)
        configuration.messageTimeout = .seconds(5)
        let producer = try KafkaProducer(configuration: configuration, logger: TestBroker.logger)
        let clock = ContinuousClock()
        let started = clock.now
        do {
            _ = try await producer.send(ProducerRecord(topic: topic, partition: 7, key: nil, value: "lost"))
            Issue.record("a record for partition 7 of a one-partition topic was acknowledged")
        } catch {
            #expect(error.name == "_UNKNOWN_PARTITION" || error.name == "_MSG_TIMED_OUT", "got \(error)")
        }
        // It fails instead of waiting for ever; the bound leaves room for a loaded 2-core machine (18 s seen
        // in CI against the 5 s message timeout), it does not time librdkafka.
        let elapsed = clock.now - started
        #expect(elapsed < .seconds(60), "the delivery report came \(elapsed) after the send, message timeout 5 s")
        await producer.close()
    }
}
