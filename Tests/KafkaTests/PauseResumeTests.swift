import Foundation
import Kafka
import KafkaTestSupport
import Synchronization
import Testing

/// Back-pressure as the pipeline applies it: partitions paused and resumed from threads other than the
/// poll thread, while records flow. librdkafka 2.8 has two races there (`PartitionFlow` explains them): a
/// record fetched again after a pause (a duplicate), and a resume that is ignored (a partition paused for
/// good). On librdkafka's mock cluster, so thousands of pauses take seconds.
@Suite struct PauseResumeTests {
    /// A stop signal the toggling thread polls.
    final class Flag: Sendable {
        private let raised = Atomic<Bool>(false)
        func raise() { raised.store(true, ordering: .releasing) }
        var isRaised: Bool { raised.load(ordering: .acquiring) }
    }

    @Test("pausing and resuming from another thread while consuming: every record once, in order, none held back",
          .timeLimit(.minutes(3)))
    func pausingFromAnotherThreadLosesNothingAndRepeatsNothing() async throws {
        let cluster = try KafkaMockCluster(brokers: 1, logger: TestBroker.logger)
        let topic = TestBroker.uniqueTopic("flow")
        let partitionCount: Int32 = 4, perPartition = 5_000
        try cluster.createTopic(topic, partitions: partitionCount)
        let kafka = KafkaConfiguration(bootstrapServers: [cluster.bootstrapServers], clientID: "flow")

        let producer = try KafkaProducer(configuration: ProducerConfiguration(kafka: kafka), logger: TestBroker.logger)
        let failures = Mutex(0)
        for index in 0..<perPartition {
            for partition in 0..<partitionCount {
                try await producer.enqueue(ProducerRecord(topic: topic, partition: partition, key: nil, value: "\(index)")) { outcome in
                    if case .failure = outcome { failures.withLock { $0 += 1 } }
                }
            }
        }
        try await producer.flush(timeout: .seconds(60))
        await producer.close()
        #expect(failures.withLock { $0 } == 0)

        // Small fetches keep the partitions' fetches in flight while they are paused and resumed.
        var configuration = ConsumerConfiguration(kafka: kafka)
        configuration.kafka.properties["max.partition.fetch.bytes"] = "2048"
        let consumer = try KafkaConsumer(configuration: configuration, logger: TestBroker.logger)
        let partitions = (0..<partitionCount).map { TopicPartition(topic: topic, partition: $0) }
        try await consumer.assign(Dictionary(uniqueKeysWithValues: partitions.map { ($0, KafkaOffset.beginning) }))

        // The shards' role: pause a partition, let a little time pass, resume it; round and round.
        let stop = Flag(), toggles = Atomic<Int>(0), stopped = Flag()
        let toggler = Thread { [partitions] in
            var round = 0
            while !stop.isRaised {
                let partition = partitions[round % partitions.count]
                consumer.pause([partition])
                if round % 3 != 0 { usleep(UInt32(50 + round % 200)) }
                consumer.resume([partition])
                toggles.add(1, ordering: .relaxed)
                round += 1
                usleep(100)
            }
            stopped.raise()
        }
        toggler.start()
        defer { stop.raise() }
        // Busy threads, one more than the cores, as the shards' OpenMP teams are in the service: they get
        // the poll thread preempted in the middle of handing out a record, which is where the pause race
        // lies (a window of nanoseconds on an idle machine).
        for _ in 0...ProcessInfo.processInfo.activeProcessorCount {
            Thread {
                var spins = 0
                while !stopped.isRaised { spins &+= 1 }
            }.start()
        }

        let total = Int(partitionCount) * perPartition
        let began = ContinuousClock.now
        let offsets = try await withDeadline(.seconds(120), "every record through the pauses") {
            var offsets: [Int32: [Int64]] = [:]
            var delivered = 0
            for try await event in consumer.events {
                guard case .record(let record) = event else { continue }
                offsets[record.partition, default: []].append(record.offset)
                delivered += 1
                // The last quarter is read after the toggling stops: a partition left paused would hold it back.
                if delivered == total * 3 / 4 { stop.raise() }
                if delivered >= total { break }
            }
            return offsets
        }
        let delivered = offsets.values.reduce(0) { $0 + $1.count }
        let elapsed = ContinuousClock.now - began
        while !stopped.isRaised { try await Task.sleep(for: .milliseconds(1)) }
        await consumer.closeAcknowledgingRevocations()

        let duplicates = offsets.values.reduce(0) { $0 + $1.count - Set($1).count }
        print("[pause/resume] sent \(total), delivered \(delivered), duplicates \(duplicates), "
              + "pause-resume cycles \(toggles.load(ordering: .relaxed)), in \(elapsed)")
        #expect(toggles.load(ordering: .relaxed) > 100)
        #expect(duplicates == 0)
        for partition in 0..<partitionCount {
            #expect(offsets[partition] == (0..<Int64(perPartition)).map { $0 }, "partition \(partition): every offset once, in order")
        }
    }

    @Test("a partition revoked while paused is fetched again once it is assigned back", .timeLimit(.minutes(2)))
    func aPartitionRevokedWhilePausedIsFetchedAfterItsReassignment() async throws {
        let cluster = try KafkaMockCluster(brokers: 1, logger: TestBroker.logger)
        let first = TestBroker.uniqueTopic("flow-a"), second = TestBroker.uniqueTopic("flow-b")
        try cluster.createTopic(first, partitions: 2)
        try cluster.createTopic(second, partitions: 1)
        let kafka = KafkaConfiguration(bootstrapServers: [cluster.bootstrapServers], clientID: "flow-group")
        var configuration = ConsumerConfiguration(kafka: kafka)
        configuration.groupID = TestBroker.uniqueTopic("flow-group")
        // Eager: a changed subscription revokes every partition and assigns them again.
        configuration.kafka.properties["partition.assignment.strategy"] = "range"
        let consumer = try KafkaConsumer(configuration: configuration, logger: TestBroker.logger)
        let paused = TopicPartition(topic: first, partition: 0)

        @Sendable func awaitEvent(_ what: String, _ matches: @escaping @Sendable (ConsumerEvent) -> Bool) async throws {
            try await withDeadline(.seconds(60), what) {
                for try await event in consumer.events {
                    if case let .revoked(_, acknowledgement) = event { acknowledgement.acknowledge() }
                    if matches(event) { return }
                }
                throw TestFailure("the consumer's events ended")
            }
        }
        @Sendable func isAssignment(_ event: ConsumerEvent) -> Bool {
            if case let .assigned(partitions) = event { return partitions.contains(paused) }
            return false
        }

        try await consumer.subscribe(topics: [first])
        try await awaitEvent("the first assignment", isAssignment)
        consumer.pause([paused])
        try await consumer.subscribe(topics: [first, second])
        try await awaitEvent("the revocation", { if case .revoked = $0 { return true } else { return false } })
        try await awaitEvent("the assignment after the revocation", isAssignment)

        let producer = try KafkaProducer(configuration: ProducerConfiguration(kafka: kafka), logger: TestBroker.logger)
        for index in 0..<5 {
            _ = try await producer.send(ProducerRecord(topic: first, partition: 0, key: nil, value: "after-\(index)"))
        }
        await producer.close()
        let began = ContinuousClock.now
        try await awaitEvent("a record of the partition paused before its revocation") {
            if case let .record(record) = $0 { return record.topicPartition == paused }
            return false
        }
        print("[pause/resume] a partition paused when revoked delivered again \(ContinuousClock.now - began) after its records were sent")
        await consumer.closeAcknowledgingRevocations()
    }
}
