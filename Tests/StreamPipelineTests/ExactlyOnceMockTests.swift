import Foundation
import Kafka
import KafkaTestSupport
import Logging
import ServiceLifecycle
import Synchronization
import Testing
@testable import StreamPipeline

/// Exactly-once under injected faults, against librdkafka's mock cluster (in-process brokers whose answers
/// to given requests are replaced by errors). The mock writes no transaction markers and sends no aborted-
/// transaction list, so a reader sees every record that reached the log: the faults are injected where the
/// aborted transaction's records never reach it (AddPartitionsToTxn), which makes "each event exactly once
/// in the log" a valid check of lost = 0 and duplicates = 0.
@Suite(.serialized) struct ExactlyOnceMockTests {
    static let modelDirectory = SharedData.model("v2")
    static var hasModel: Bool { FileManager.default.fileExists(atPath: modelDirectory.path) }

    struct Topics {
        let input: String
        let output: String
        let dlq: String
    }

    static func cluster() throws -> (KafkaMockCluster, Topics) {
        let cluster = try KafkaMockCluster(brokers: 3, logger: TestBroker.logger)
        let topics = Topics(input: TestBroker.uniqueTopic("eos-in"), output: TestBroker.uniqueTopic("eos-out"),
                            dlq: TestBroker.uniqueTopic("eos-dlq"))
        try cluster.createTopic(topics.input, partitions: 4)
        try cluster.createTopic(topics.output, partitions: 2)
        try cluster.createTopic(topics.dlq, partitions: 1)
        return (cluster, topics)
    }

    static func kafka(_ cluster: KafkaMockCluster, client: String) -> KafkaConfiguration {
        KafkaConfiguration(bootstrapServers: [cluster.bootstrapServers], clientID: client)
    }

    static func settings(_ topics: Topics, transactionalID: String) -> StreamSettings {
        var settings = StreamSettings()
        settings.inputTopics = [topics.input]
        settings.outputTopic = topics.output
        settings.deadLetterTopic = topics.dlq
        settings.shards = 2
        settings.shard.maxBatch = 8
        settings.delivery = .exactlyOnce
        settings.transactionalID = transactionalID
        settings.commitInterval = .milliseconds(200)
        return settings
    }

    /// Events `first..<first+count`, every tenth malformed (a dead letter), keyed by their id.
    static func produce(_ range: Range<Int>, to topic: String, on cluster: KafkaMockCluster) async throws -> [String] {
        let producer = try KafkaProducer(configuration: ProducerConfiguration(kafka: kafka(cluster, client: "eos-feed")),
                                         logger: TestBroker.logger)
        let texts = (try? PipelineFixtures.devReviews(limit: 40).map(\.text)) ?? ["房间很干净"]
        var keys: [String] = []
        for index in range {
            let key = "event-\(index)"
            let value = index % 10 == 9 ? Array("{\"id\": \"\(key)\", \"text\": ".utf8)
                : Array(try JSONSerialization.data(withJSONObject: ["id": key, "text": texts[index % texts.count]]))
            _ = try await producer.send(ProducerRecord(topic: topic, key: Array(key.utf8), value: value))
            keys.append(key)
        }
        await producer.close()
        return keys
    }

    /// One exactly-once service in-process, on its own consumer and transactional producer.
    final class Replica: Sendable {
        let service: StreamService
        let group: ServiceGroup
        private let producer: KafkaProducer
        private let run: Mutex<Task<(any Error)?, Never>?> = Mutex(nil)

        init(cluster: KafkaMockCluster, topics: Topics, group: String, transactionalID: String,
             model: LoadedModel, name: String) throws {
            var consumerConfiguration = ConsumerConfiguration(kafka: ExactlyOnceMockTests.kafka(cluster, client: name), groupID: group)
            consumerConfiguration.kafka.properties["partition.assignment.strategy"] = "range"
            consumerConfiguration.revocationTimeout = .seconds(15)
            let consumer = try KafkaConsumer(configuration: consumerConfiguration, logger: TestBroker.logger)
            var producerConfiguration = ProducerConfiguration(kafka: ExactlyOnceMockTests.kafka(cluster, client: name))
            producerConfiguration.transactionalID = transactionalID
            let producer = try KafkaProducer(configuration: producerConfiguration, logger: TestBroker.logger)
            self.producer = producer
            // MINIRBT_TEST_SERVICE_LOG=info shows what the replicas do (default: warnings only).
            var logger = Logger(label: name)
            logger.logLevel = ProcessInfo.processInfo.environment["MINIRBT_TEST_SERVICE_LOG"].flatMap(Logger.Level.init(rawValue:)) ?? .warning
            service = StreamService(settings: ExactlyOnceMockTests.settings(topics, transactionalID: transactionalID), consumer: consumer,
                                    producer: producer, models: ServingModels(primary: model), logger: logger)
            self.group = ServiceGroup(configuration: .init(
                services: [.init(service: service, successTerminationBehavior: .gracefullyShutdownGroup,
                                 failureTerminationBehavior: .gracefullyShutdownGroup)],
                logger: TestBroker.logger))
        }

        func start() {
            let group = group
            run.withLock {
                $0 = Task {
                    do { try await group.run(); return nil } catch { return error }
                }
            }
        }

        /// Ends it gracefully (SIGTERM) unless it ended on its own; returns the error it stopped with.
        func stop() async -> (any Error)? {
            await group.triggerGracefulShutdown()
            return await ended()
        }

        /// Waits until it ends on its own; returns the error it stopped with. Closes its producer (the
        /// service closes its consumer).
        func ended() async -> (any Error)? {
            let error = await run.withLock({ $0 })?.value ?? nil
            await producer.close(timeout: .seconds(5))
            return error
        }
    }

    /// Reads the output and dead-letter topics from the beginning, counting records per event key.
    final class Reader: Sendable {
        private let consumer: KafkaConsumer
        let counts = Mutex<[String: Int]>([:])

        init(cluster: KafkaMockCluster, topics: Topics) async throws {
            var configuration = ConsumerConfiguration(kafka: ExactlyOnceMockTests.kafka(cluster, client: "eos-reader"))
            configuration.isolationLevel = .readCommitted
            consumer = try KafkaConsumer(configuration: configuration, logger: TestBroker.logger)
            try await consumer.assign([
                TopicPartition(topic: topics.output, partition: 0): .beginning,
                TopicPartition(topic: topics.output, partition: 1): .beginning,
                TopicPartition(topic: topics.dlq, partition: 0): .beginning,
            ])
        }

        /// Reads until `condition` holds over the counts so far (awaiting records, never sleeping).
        func read(until condition: @Sendable ([String: Int]) -> Bool) async throws {
            if condition(counts.withLock { $0 }) { return }
            for try await event in consumer.events {
                guard case .record(let record) = event else { continue }
                let key = record.keyText ?? "<no key>"
                let now = counts.withLock { counts in
                    counts[key, default: 0] += 1
                    return counts
                }
                if condition(now) { return }
            }
        }

        func close() async { await consumer.close() }

        /// Prints and returns (lost, duplicates) over `sent`.
        func report(_ name: String, sent: [String]) -> (lost: Int, duplicates: Int) {
            let counts = counts.withLock { $0 }
            let delivered = counts.values.reduce(0, +)
            let lost = sent.filter { counts[$0] == nil }.count
            let duplicates = counts.values.map { max(0, $0 - 1) }.reduce(0, +)
            print("\(name): sent \(sent.count), delivered \(delivered), lost \(lost), duplicates \(duplicates)")
            return (lost, duplicates)
        }
    }

    @Test("an abort forced mid-stream (AddPartitionsToTxn refused) is rewound and redone: results resume, none lost or doubled",
          .enabled(if: hasModel, "needs ../shared/models"), .timeLimit(.minutes(4)))
    func injectedAbortIsRewoundAndRedone() async throws {
        let model = try LoadedModel.load(directory: Self.modelDirectory)
        let (cluster, topics) = try Self.cluster()
        var sent = try await Self.produce(0..<40, to: topics.input, on: cluster)
        let replica = try Replica(cluster: cluster, topics: topics, group: TestBroker.uniqueTopic("eos-group"),
                                  transactionalID: TestBroker.uniqueTopic("eos-txn"), model: model, name: "replica-a")
        let reader = try await Reader(cluster: cluster, topics: topics)
        replica.start()
        let firstBatch = Set(sent)
        try await withDeadline(.seconds(120), "the first 40 results") {
            try await reader.read { counts in firstBatch.allSatisfy { counts[$0] != nil } }
        }
        let before = await replica.service.transactionCounts()

        // The next transaction's AddPartitionsToTxn fails: an abortable error, before any record of it is
        // written. Then more events: they must be answered after the abort.
        let refused = try #require(KafkaMockCluster.errorCode("TOPIC_AUTHORIZATION_FAILED"))
        cluster.failNext(.addPartitionsToTransaction, with: [refused])
        let afterAbort = try await Self.produce(40..<80, to: topics.input, on: cluster)
        sent += afterAbort
        let all = Set(sent)
        do {
            try await withDeadline(.seconds(120), "results for the events sent after the injected abort") {
                try await reader.read { counts in all.allSatisfy { counts[$0] != nil } }
            }
        } catch {
            // Once seen in a loaded CI run (6 s when run alone): say how far the replica had got.
            let counts = reader.counts.withLock { $0 }
            let stalled = await replica.service.transactionCounts()
            let missing = sent.filter { counts[$0] == nil }.count
            let transactions = stalled.map { "\($0.committed) committed, \($0.aborted) aborted" } ?? "-"
            // A replica that stopped on its own (e.g. a rewind that failed) returns its error here.
            let stopped = await replica.stop().map { "\($0)" } ?? "none"
            let state: String = "\(missing) of \(sent.count) events without a committed result; transactions then: \(transactions); "
                + "the replica's error: \(stopped)"
            Issue.record(Comment(rawValue: "\(error); \(state)"))
            throw error
        }
        let stopError = await replica.stop()
        #expect(stopError == nil, "\(String(describing: stopError))")
        let after = await replica.service.transactionCounts()

        // Everything in the log now, after a clean stop: read up to the high watermarks.
        let total = try await Self.recordsInLog(cluster: cluster, topics: topics)
        try await withDeadline(.seconds(30), "every record in the log") {
            try await reader.read { counts in counts.values.reduce(0, +) >= total }
        }
        await reader.close()
        let (lost, duplicates) = reader.report("exactly-once, injected abort (mock cluster)", sent: sent)
        print("transactions before the fault: \(before.map { "\($0.committed) committed, \($0.aborted) aborted" } ?? "-"); "
              + "at the end: \(after.map { "\($0.committed) committed, \($0.aborted) aborted" } ?? "-")")
        #expect((after?.aborted ?? 0) >= 1, "the injected error must have aborted a transaction")
        #expect(before?.aborted == 0)
        #expect(lost == 0)
        #expect(duplicates == 0)
    }

    /// The mock cluster's InitProducerId gives a second producer with the same transactional id a new
    /// producer id instead of bumping the epoch, so it cannot show two replicas fencing each other; the
    /// fence itself is injected (PRODUCER_FENCED, a fatal error), which is what such a replica receives.
    @Test("a fenced replica stops with a clear error naming its transactional.id; the next owner redoes its work",
          .enabled(if: hasModel, "needs ../shared/models"), .timeLimit(.minutes(4)))
    func fencedReplicaStopsAndItsWorkIsRedone() async throws {
        let model = try LoadedModel.load(directory: Self.modelDirectory)
        let (cluster, topics) = try Self.cluster()
        var sent = try await Self.produce(0..<40, to: topics.input, on: cluster)
        let committedBeforeFence = Set(sent)
        let group = TestBroker.uniqueTopic("eos-group")
        let fencedID = TestBroker.uniqueTopic("eos-fenced-txn")
        let older = try Replica(cluster: cluster, topics: topics, group: group, transactionalID: fencedID,
                                model: model, name: "replica-old")
        let reader = try await Reader(cluster: cluster, topics: topics)
        older.start()
        let firstBatch = Set(sent)
        try await withDeadline(.seconds(120), "the first 40 results") {
            try await reader.read { counts in firstBatch.allSatisfy { counts[$0] != nil } }
        }
        let fenced = try #require(KafkaMockCluster.errorCode("PRODUCER_FENCED"))
        cluster.failNext(.addPartitionsToTransaction, with: [fenced])
        sent += try await Self.produce(40..<80, to: topics.input, on: cluster)
        let olderError = try await withDeadline(.seconds(120), "the fenced replica to stop") { await older.ended() }
        let message = olderError.map { "\($0)" } ?? "(ended without an error)"
        print("fenced replica stopped with: \(message)")
        #expect(message.contains("fenced"), "\(message)")
        #expect(message.contains(fencedID))

        let newer = try Replica(cluster: cluster, topics: topics, group: group,
                                transactionalID: TestBroker.uniqueTopic("eos-next-txn"), model: model, name: "replica-new")
        newer.start()
        let all = Set(sent)
        try await withDeadline(.seconds(120), "every event's result from the next owner") {
            try await reader.read { counts in all.allSatisfy { counts[$0] != nil } }
        }
        #expect(await newer.stop() == nil)
        let total = try await Self.recordsInLog(cluster: cluster, topics: topics)
        try await withDeadline(.seconds(30), "every record in the log") {
            try await reader.read { counts in counts.values.reduce(0, +) >= total }
        }
        await reader.close()
        let (lost, duplicates) = reader.report("exactly-once, fenced replica then next owner (mock cluster)", sent: sent)
        #expect(lost == 0)
        // The fenced transaction's AddPartitionsToTxn failed, so none of its records reached the log: the
        // events it held are answered once, by the next owner.
        let counts = reader.counts.withLock { $0 }
        let redoneAfterFence = sent.filter { !committedBeforeFence.contains($0) && (counts[$0] ?? 0) > 1 }
        print("duplicates among the events the fenced replica had not committed: \(redoneAfterFence.count)")
        #expect(redoneAfterFence.isEmpty)
        // The mock's TxnOffsetCommit does not store offsets, so the next owner starts from the beginning and
        // answers the events committed before the fence again; on Kafka (and Tansu) it starts after them.
        withKnownIssue("the mock cluster does not store transactional offset commits", isIntermittent: true) {
            #expect(duplicates == 0)
        }
    }

    /// Records now in the output and dead-letter topics (sum of high watermarks; the mock writes no markers).
    static func recordsInLog(cluster: KafkaMockCluster, topics: Topics) async throws -> Int {
        let consumer = try KafkaConsumer(configuration: ConsumerConfiguration(kafka: kafka(cluster, client: "eos-marks")),
                                         logger: TestBroker.logger)
        var total: Int64 = 0
        for partition in [TopicPartition(topic: topics.output, partition: 0), TopicPartition(topic: topics.output, partition: 1),
                          TopicPartition(topic: topics.dlq, partition: 0)] {
            let marks = try await consumer.watermarks(partition)
            total += marks.high - marks.low
        }
        await consumer.close()
        return Int(total)
    }
}
