import Kafka
import KafkaTestSupport
import Synchronization
import Testing

@Suite("Consumer groups against a real broker")
struct GroupRebalanceTests {
    @Test("two members split the partitions; the survivor takes over from the committed offsets")
    func takeoverResumesFromCommittedOffsets() async throws {
        let topic = try await TestBroker.createTopic("takeover", partitions: 4)
        let groupID = TestBroker.uniqueTopic("takeover-group")
        try await produce(count: 200, to: topic, from: 0)

        let ledger = GroupLedger()
        let first = try GroupMember(name: "a", groupID: groupID, topic: topic, ledger: ledger)
        let second = try GroupMember(name: "b", groupID: groupID, topic: topic, ledger: ledger)
        try await first.start()
        try await second.start()

        try await ledger.wait(.seconds(90), "both members own partitions and all 200 records are processed") { state in
            state.processed.count == 200 && state.owned["a", default: []].count + state.owned["b", default: []].count == 4
                && !state.owned["a", default: []].isEmpty && !state.owned["b", default: []].isEmpty
        }

        let leaving = ContinuousClock.now
        await second.stop()
        try await produce(count: 200, to: topic, from: 200)
        // Tansu rejoins the survivor only after its next heartbeat and a join round of its own (~25 s idle);
        // the deadline leaves room for a loaded 2-core CI machine running every suite at once.
        try await ledger.wait(.seconds(150), "the survivor owns every partition and all 400 records are processed") { state in
            state.processed.count == 400 && state.owned["a", default: []].count == 4
        }
        print("[group] takeover: the survivor owned all 4 partitions and processed all 400 records \(ContinuousClock.now - leaving) after the other member left")
        await first.stop()

        let processed = ledger.snapshot.processed
        let unique = Set(processed.map { "\($0.partition.partition)@\($0.offset)" })
        #expect(unique.count == processed.count, "a record was processed twice")
        // Every partition's offsets are contiguous from 0: nothing lost across the takeover.
        let byPartition = Dictionary(grouping: processed, by: \.partition.partition)
        for (partition, records) in byPartition {
            #expect(records.map(\.offset).sorted() == Array(0..<Int64(records.count)), "gap in partition \(partition)")
        }
        #expect(Set(processed.map(\.member)) == ["a", "b"], "both members should have processed records")
    }

    private func produce(count: Int, to topic: String, from start: Int) async throws {
        let producer = try KafkaProducer(configuration: ProducerConfiguration(kafka: TestBroker.kafka),
                                         logger: TestBroker.logger)
        for sequence in start..<(start + count) {
            try await producer.enqueue(ProducerRecord(topic: topic, key: "key-\(sequence)", value: "\(sequence)")) { _ in }
        }
        try await producer.flush(timeout: .seconds(30))
        await producer.close()
    }
}

/// What the members of a group did, observable by the test as it changes.
final class GroupLedger: Sendable {
    struct Processed: Sendable {
        var member: String
        var partition: TopicPartition
        var offset: Int64
    }

    struct State: Sendable {
        var processed: [Processed] = []
        var owned: [String: Set<TopicPartition>] = [:]
    }

    private let state = Mutex(State())
    private let changes: AsyncStream<Void>
    private let changed: AsyncStream<Void>.Continuation

    init() {
        (changes, changed) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    var snapshot: State { state.withLock { $0 } }

    func update(_ body: (inout State) -> Void) {
        state.withLock { body(&$0) }
        changed.yield()
    }

    /// Waits, re-checking on every change, until `condition` holds. Call from one task at a time.
    func wait(_ timeout: Duration, _ what: String, until condition: @escaping @Sendable (State) -> Bool) async throws {
        let changes = changes
        _ = try await withDeadline(timeout, what) { [self] in
            if condition(snapshot) { return true }
            for await _ in changes where condition(snapshot) { return true }
            return false
        }
    }
}

/// A group member that commits after every record, as an at-least-once pipeline does after each output.
final class GroupMember: Sendable {
    let name: String
    let topic: String
    let consumer: KafkaConsumer
    let ledger: GroupLedger
    private let reader = Mutex<Task<Void, any Error>?>(nil)

    init(name: String, groupID: String, topic: String, ledger: GroupLedger) throws {
        self.name = name
        self.topic = topic
        self.ledger = ledger
        consumer = try KafkaConsumer(configuration: ConsumerConfiguration(kafka: TestBroker.kafka, groupID: groupID),
                                     logger: TestBroker.logger)
    }

    func start() async throws {
        try await consumer.subscribe(topics: [topic])
        let task = Task { [consumer, ledger, name] in
            for try await event in consumer.events {
                switch event {
                case .record(let record):
                    try await consumer.commit([record.topicPartition: record.offset + 1])
                    ledger.update {
                        $0.processed.append(.init(member: name, partition: record.topicPartition, offset: record.offset))
                    }
                case .assigned(let partitions):
                    ledger.update { $0.owned[name, default: []].formUnion(partitions) }
                case .revoked(let partitions, let acknowledgement):
                    // Every processed record is already committed, so there is nothing left to drain.
                    ledger.update { $0.owned[name, default: []].subtract(partitions) }
                    acknowledgement.acknowledge()
                case .lost(let partitions):
                    ledger.update { $0.owned[name, default: []].subtract(partitions) }
                case .rewound, .endOfPartition:
                    break
                }
            }
        }
        reader.withLock { $0 = task }
    }

    /// Leaves the group; the reader acknowledges the final revocation and ends with the event stream.
    func stop() async {
        await consumer.close()
        _ = await reader.withLock { $0 }?.result
    }
}
