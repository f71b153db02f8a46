import Kafka
import KafkaTestSupport
import Synchronization
import Testing

@Suite("Transactions against a real broker")
struct TransactionTests {
    @Test("read_committed sees committed transactions, not open or aborted ones")
    func committedVisibleAbortedHidden() async throws {
        let topic = try await TestBroker.createTopic("txn", partitions: 1)
        var configuration = ProducerConfiguration(kafka: TestBroker.kafka)
        configuration.transactionalID = TestBroker.uniqueTopic("txn-id")
        // A long linger keeps the aborted batch in the local queue until the abort purges it.
        configuration.linger = .seconds(5)
        let producer = try KafkaProducer(configuration: configuration, logger: TestBroker.logger)
        try await producer.initTransactions()

        try producer.beginTransaction()
        for index in 0..<5 {
            try await producer.enqueue(ProducerRecord(topic: topic, key: "k", value: "committed-\(index)")) { _ in }
        }
        try await producer.commitTransaction()

        try producer.beginTransaction()
        let purged = ResultCollector<Result<DeliveryReport, KafkaError>>(expecting: 5)
        for index in 0..<5 {
            try await producer.enqueue(ProducerRecord(topic: topic, key: "k", value: "aborted-\(index)")) {
                purged.add($0)
            }
        }
        try await producer.abortTransaction()
        let abortedOutcomes = await purged.value
        #expect(abortedOutcomes.allSatisfy { if case .failure = $0 { true } else { false } },
                "records of an aborted transaction must report failure to their senders")

        // The marker's transaction is still open while the consumer starts, and commits afterwards.
        try producer.beginTransaction()
        try await producer.enqueue(ProducerRecord(topic: topic, key: "k", value: "marker")) { _ in }
        try await producer.flush(timeout: .seconds(10))
        let consumer = try KafkaConsumer(configuration: ConsumerConfiguration(kafka: TestBroker.kafka),
                                         logger: TestBroker.logger)
        try await consumer.assign([TopicPartition(topic: topic, partition: 0): .beginning])
        let beforeCommit = try await withDeadline(.seconds(30), "the committed records") {
            try await consumer.events.texts(count: 5)
        }
        #expect(beforeCommit == (0..<5).map { "committed-\($0)" })

        try await producer.commitTransaction()
        let afterCommit = try await withDeadline(.seconds(30), "the marker") {
            try await consumer.events.texts(count: 1)
        }
        #expect(afterCommit == ["marker"])
        await producer.close()
        await consumer.close()
    }

    @Test("records of a transaction aborted after they reached the broker stay hidden")
    func abortedAfterFlushHidden() async throws {
        let topic = try await TestBroker.createTopic("txn-flushed", partitions: 1)
        var configuration = ProducerConfiguration(kafka: TestBroker.kafka)
        configuration.transactionalID = TestBroker.uniqueTopic("txn-id")
        let producer = try KafkaProducer(configuration: configuration, logger: TestBroker.logger)
        try await producer.initTransactions()
        try producer.beginTransaction()
        _ = try await producer.send(ProducerRecord(topic: topic, key: "k", value: "aborted"))
        try await producer.abortTransaction()
        try producer.beginTransaction()
        try await producer.enqueue(ProducerRecord(topic: topic, key: "k", value: "marker")) { _ in }
        try await producer.commitTransaction()
        await producer.close()

        let consumer = try KafkaConsumer(configuration: ConsumerConfiguration(kafka: TestBroker.kafka),
                                         logger: TestBroker.logger)
        try await consumer.assign([TopicPartition(topic: topic, partition: 0): .beginning])
        let first = try await withDeadline(.seconds(30), "a record") { try await consumer.events.texts(count: 1) }
        // Tansu 0.6 does not send the aborted-transaction list in fetch responses, so librdkafka cannot filter
        // aborted records that already reached the log; a Kafka broker does. Not a client-side defect.
        withKnownIssue("Tansu 0.6 does not filter aborted transactions for read_committed", isIntermittent: true) {
            #expect(first == ["marker"])
        }
        await consumer.close()

        // What Tansu does write are the markers, so tests can tell aborted records from committed ones.
        let log = try TransactionLog.read(topics: [topic: 1])
        let outcomes = (0..<3).map { log.outcome(of: RecordPosition(topic: topic, partition: 0, offset: $0)) }
        print("[txn] \(topic): offsets 0-2 \(outcomes.map { $0.map { "\($0)" } ?? "marker" }), commit markers \(log.commits), abort markers \(log.aborts)")
        #expect(log.aborts == 1 && log.commits == 1)
        #expect(outcomes.compactMap { $0 } == [.aborted, .committed], "the aborted record, then the marker record")
    }

    /// Why two replicas' exactly-once tests on Tansu can count committed duplicates (ExactlyOnceTests): a
    /// committed transaction's consumer offsets wait for every earlier transaction on the same partitions.
    @Test("a committed transaction's offsets apply at once, even while another producer's transaction on the same partition is open")
    func offsetsOfACommittedTransactionApplyAtOnce() async throws {
        let output = try await TestBroker.createTopic("txn-overlap-out", partitions: 1)
        let input = try await TestBroker.createTopic("txn-overlap-in", partitions: 1)
        let group = TestBroker.uniqueTopic("txn-overlap-group")
        func transactional(_ purpose: String) async throws -> KafkaProducer {
            var configuration = ProducerConfiguration(kafka: TestBroker.kafka)
            configuration.transactionalID = TestBroker.uniqueTopic(purpose)
            let producer = try KafkaProducer(configuration: configuration, logger: TestBroker.logger)
            try await producer.initTransactions()
            return producer
        }
        // A replica that died mid-transaction: its records are on the output partition, its transaction open.
        let stalled = try await transactional("txn-stalled")
        try stalled.beginTransaction()
        _ = try await stalled.send(ProducerRecord(topic: output, key: "k", value: "open"))

        // Another replica commits a result with its input offset, as exactly-once does.
        let active = try await transactional("txn-active")
        let consumer = try KafkaConsumer(configuration: ConsumerConfiguration(kafka: TestBroker.kafka, groupID: group),
                                         logger: TestBroker.logger)
        try active.beginTransaction()
        _ = try await active.send(ProducerRecord(topic: output, key: "k", value: "committed"))
        try await active.sendOffsetsToTransaction([TopicPartition(topic: input, partition: 0): 10],
                                                  groupMetadata: try consumer.groupMetadata())
        try await active.commitTransaction()
        let admin = try KafkaAdmin(configuration: TestBroker.kafka, logger: TestBroker.logger)
        let whileOpen = try await admin.consumerGroupLag(groupID: group, topic: input).first?.committed

        try await stalled.abortTransaction()
        let afterAbort = try await admin.consumerGroupLag(groupID: group, topic: input).first?.committed
        print("[txn] offset 10 committed in a transaction while another producer's transaction on the same output "
              + "partition was open: the group's committed offset \(whileOpen.map(String.init) ?? "none") while it was open, "
              + "\(afterAbort.map(String.init) ?? "none") after it was aborted")
        withKnownIssue("Tansu 0.6 applies a committed transaction's offsets only once earlier overlapping transactions end",
                       isIntermittent: true) {
            #expect(whileOpen == 10)
        }
        #expect(afterAbort == 10)
        await stalled.close()
        await active.close()
        await consumer.close()
    }

    @Test("a second producer with the same transactional.id fences the first")
    func sameTransactionalIDFencesTheFirst() async throws {
        let topic = try await TestBroker.createTopic("txn-fence", partitions: 1)
        var configuration = ProducerConfiguration(kafka: TestBroker.kafka)
        configuration.transactionalID = TestBroker.uniqueTopic("txn-shared-id")
        let first = try KafkaProducer(configuration: configuration, logger: TestBroker.logger)
        try await first.initTransactions()
        try first.beginTransaction()
        _ = try await first.send(ProducerRecord(topic: topic, key: "k", value: "first-committed"))
        try await first.commitTransaction()

        // The second producer's InitProducerId bumps the id's epoch: the broker must refuse the first
        // producer's next transaction. Tansu 0.6 answers its AddPartitionsToTxn with PRODUCER_FENCED, which
        // librdkafka raises as the fatal _FENCED; the pending record is purged.
        let second = try KafkaProducer(configuration: configuration, logger: TestBroker.logger)
        try await second.initTransactions()
        var refusal: KafkaError?
        do throws(KafkaError) {
            try first.beginTransaction()
            _ = try await first.send(ProducerRecord(topic: topic, key: "k", value: "first-after-fence"))
            try await first.commitTransaction()
        } catch {
            refusal = error
        }
        print("[kafka] same transactional.id: the first producer's transaction after the second's init "
              + (refusal.map { "failed with \($0.name); its fatal error: \(first.fatalError.map { "\($0.name), fenced \($0.isFenced)" } ?? "none")" }
                 ?? "committed: the broker did not fence it"))
        #expect(refusal != nil, "the first producer committed after the second took its transactional.id")
        let fatal = try #require(first.fatalError, "the first producer is not failed after being fenced")
        #expect(fatal.isFenced, "\(fatal)")
        #expect(fatal.transactionReaction == .fatal)

        // The newer producer is the owner.
        try second.beginTransaction()
        _ = try await second.send(ProducerRecord(topic: topic, key: "k", value: "second-committed"))
        try await second.commitTransaction()
        await first.close()
        await second.close()
    }

    @Test("transactional calls without a transactional.id fail with a classified error")
    func transactionsNeedAnID() async throws {
        let producer = try KafkaProducer(configuration: ProducerConfiguration(kafka: TestBroker.kafka),
                                         logger: TestBroker.logger)
        do {
            try producer.beginTransaction()
            Issue.record("beginTransaction succeeded without a transactional.id")
        } catch {
            #expect(error.operation == "beginning a transaction")
            #expect(!error.isRetriable)
        }
        await producer.close()
    }
}

/// Collects a known number of values from callbacks, then hands them to an async waiter.
final class ResultCollector<Value: Sendable>: Sendable {
    private let state: Mutex<(values: [Value], expected: Int, waiter: CheckedContinuation<[Value], Never>?)>

    init(expecting count: Int) {
        state = Mutex(([], count, nil))
    }

    func add(_ value: Value) {
        let ready: (CheckedContinuation<[Value], Never>, [Value])? = state.withLock { state in
            state.values.append(value)
            guard state.values.count == state.expected, let waiter = state.waiter else { return nil }
            state.waiter = nil
            return (waiter, state.values)
        }
        if let (waiter, values) = ready { waiter.resume(returning: values) }
    }

    var value: [Value] {
        get async {
            await withCheckedContinuation { continuation in
                let ready: [Value]? = state.withLock { state in
                    if state.values.count >= state.expected { return state.values }
                    state.waiter = continuation
                    return nil
                }
                if let ready { continuation.resume(returning: ready) }
            }
        }
    }
}

extension ConsumerEvents {
    /// The values of the next `count` records, as text.
    func texts(count: Int) async throws -> [String] {
        var values: [String] = []
        guard count > 0 else { return values }
        for try await event in self {
            guard case .record(let record) = event else { continue }
            values.append(record.valueText)
            if values.count == count { break }
        }
        return values
    }
}
