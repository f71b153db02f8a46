import Foundation
import Kafka
import Logging
import KafkaTestSupport
import ServiceLifecycle
@testable import StreamPipeline

enum PipelineFixtures {
    static let sharedRoot = SharedData.root

    struct Review {
        var id: String
        var text: String
        var line: String
    }

    static func devReviews(limit: Int) throws -> [Review] {
        let url = SharedData.reviews("dev")
        return try String(contentsOf: url, encoding: .utf8).split(separator: "\n").prefix(limit).map { line in
            let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            return Review(id: object?["id"] as? String ?? "", text: object?["text"] as? String ?? "", line: String(line))
        }
    }
}

/// What the pipeline tests need beyond ``TestBroker``: feeding events, reading outputs, running the service.
enum PipelineBroker {
    static var kafka: KafkaConfiguration { TestBroker.kafka }
    static var logger: Logger { TestBroker.logger }

    static func uniqueName(_ purpose: String) -> String { TestBroker.uniqueTopic(purpose) }

    static func createTopic(_ purpose: String, partitions: Int32, config: [String: String] = [:]) async throws -> String {
        try await TestBroker.createTopic(purpose, partitions: partitions, config: config)
    }

    static func produce(_ records: [(key: String, value: [UInt8])], to topic: String) async throws {
        let producer = try KafkaProducer(configuration: ProducerConfiguration(kafka: kafka), logger: logger)
        for record in records {
            _ = try await producer.send(ProducerRecord(topic: topic, key: Array(record.key.utf8), value: record.value))
        }
        await producer.close()
    }

    /// Produces records as given (timestamps, headers), with `properties` added to the producer's configuration.
    static func produce(_ records: [ProducerRecord], properties: [String: String] = [:]) async throws {
        var kafka = kafka
        kafka.properties.merge(properties) { _, new in new }
        let producer = try KafkaProducer(configuration: ProducerConfiguration(kafka: kafka), logger: logger)
        for record in records { _ = try await producer.send(record) }
        await producer.close()
    }

    /// Reads `count` records from the start of every partition of `topics` (manual assignment).
    static func read(_ topics: [String], count: Int, isolation: ConsumerConfiguration.IsolationLevel = .readCommitted)
        async throws -> [ConsumerRecord] {
        let admin = try KafkaAdmin(configuration: kafka, logger: logger)
        var configuration = ConsumerConfiguration(kafka: kafka)
        configuration.isolationLevel = isolation
        let consumer = try KafkaConsumer(configuration: configuration, logger: logger)
        var assignment: [TopicPartition: KafkaOffset] = [:]
        for topic in topics {
            for partition in 0..<Int32(try await admin.describeTopic(topic).partitionCount) {
                assignment[TopicPartition(topic: topic, partition: partition)] = .beginning
            }
        }
        try await consumer.assign(assignment)
        var records: [ConsumerRecord] = []
        for try await event in consumer.events {
            if case .record(let record) = event { records.append(record) }
            if records.count >= count { break }
        }
        await consumer.close()
        return records
    }

    /// Runs the service until `body` returns, then shuts it down gracefully, failing after `timeout`.
    static func runService<T: Sendable>(settings: StreamSettings, model: LoadedModel, group: String,
                                        timeout: Duration = .seconds(240),
                                        _ body: @escaping @Sendable () async throws -> T) async throws -> T {
        try await runService(settings: settings, models: ServingModels(primary: model), group: group,
                             timeout: timeout, body)
    }

    static func runService<T: Sendable>(settings: StreamSettings, models: ServingModels, group: String,
                                        timeout: Duration = .seconds(240),
                                        _ body: @escaping @Sendable () async throws -> T) async throws -> T {
        try await runService(settings: settings, models: models, group: group, timeout: timeout) { _ in
            try await body()
        }
    }

    /// The same, giving `body` the running service (for its counters and probes); with `teacher`, the lane
    /// runs beside it as `run` places it (before the service, so it outlives the drain).
    static func runService<T: Sendable>(settings: StreamSettings, models: ServingModels, group: String,
                                        timeout: Duration = .seconds(240), metrics: PipelineMetrics = PipelineMetrics(),
                                        teacher: TeacherLane? = nil,
                                        _ body: @escaping @Sendable (StreamService) async throws -> T) async throws -> T {
        let consumer = try KafkaConsumer(configuration: ConsumerConfiguration(kafka: kafka, groupID: group),
                                         logger: logger)
        let producer = try KafkaProducer(configuration: ProducerConfiguration(kafka: kafka), logger: logger)
        let service = StreamService(settings: settings, consumer: consumer, producer: producer,
                                    models: models, metrics: metrics, logger: logger, teacher: teacher)
        let watch: @Sendable () async throws -> T = { try await body(service) }
        let serviceGroup = ServiceGroup(services: (teacher.map { [$0] } ?? []) + [service], logger: logger)
        return try await withThrowingTaskGroup(of: T?.self) { tasks in
            tasks.addTask { try await serviceGroup.run(); return nil }
            let result: T
            do {
                result = try await withDeadline(timeout, "the pipeline's outputs", watch)
            } catch {
                await serviceGroup.triggerGracefulShutdown()
                throw error
            }
            // A graceful stop, as on SIGTERM: the group must drain and return on its own.
            await serviceGroup.triggerGracefulShutdown()
            try await tasks.waitForAll()
            return result
        }
    }
}

