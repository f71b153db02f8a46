import Foundation
import Kafka
import Logging
import ServiceLifecycle
import Synchronization

/// Delivery guarantee of the published results.
public enum DeliveryMode: String, Sendable, CaseIterable {
    /// Offsets are committed only up to the last event whose output the broker acknowledged.
    case atLeastOnce = "at-least-once"
    /// Results and consumed offsets are committed in one Kafka transaction.
    case exactlyOnce = "exactly-once"
}

/// Where events come from and where results go, and how the work is split.
public struct StreamSettings: Sendable {
    /// Topics to consume; ignored when `inputPattern` is set.
    public var inputTopics: [String] = []
    /// A regular expression over topic names (librdkafka's `^` subscription).
    public var inputPattern: String?
    public var outputTopic = "minirbt-results"
    public var deadLetterTopic = "minirbt-dead-letters"
    /// Where shadow-mode candidate results go.
    public var shadowTopic = "minirbt-shadow"
    /// Inference shards (threads) in this replica.
    public var shards = 1
    public var shard = ShardSettings()
    public var delivery = DeliveryMode.atLeastOnce
    /// How often acknowledged offsets are committed (or, exactly-once, transactions committed).
    public var commitInterval = Duration.milliseconds(500)
    /// Longest a revocation waits for in-flight events to be acknowledged, and a shutdown for the shards to
    /// drain (queued events left then are redone by the next owner) and again for the producer to flush:
    /// a SIGTERM ends within about twice this.
    public var drainTimeout = Duration.seconds(15)
    /// How often consumer lag and the serving models are sampled for metrics and heartbeats.
    public var observeInterval = Duration.seconds(5)
    /// Header that carries the answering model's version on every result.
    public var versionHeader = "minirbt-model-version"

    public init() {}
}

/// Observable state for health checks and status heartbeats.
public struct StreamStatus: Sendable {
    public var consuming = false
    public var assigned: [TopicPartition] = []
    /// Events behind the high watermark over all assigned partitions, at the last sample.
    public var lag: Int64?
    public var lastError: String?
}

/// The streaming service: consumer loop → router → shards → publishers → offset book → commits.
public final class StreamService: Service, Sendable {
    private let settings: StreamSettings
    private let consumer: KafkaConsumer
    private let producer: KafkaProducer
    private let deployment: ModelDeployment
    public let metrics: PipelineMetrics
    private let logger: Logger
    private let shards: [InferenceShard]
    private let router: PartitionRouter
    private let book = OffsetBook()
    private let transactions: TransactionGate?
    private let statusState = Mutex(StreamStatus())

    public init(settings: StreamSettings, consumer: KafkaConsumer, producer: KafkaProducer,
                deployment: ModelDeployment, metrics: PipelineMetrics = PipelineMetrics(), logger: Logger) {
        self.settings = settings
        self.consumer = consumer
        self.producer = producer
        self.deployment = deployment
        self.metrics = metrics
        self.logger = logger
        let router = PartitionRouter(shardCount: max(1, settings.shards))
        self.router = router
        self.transactions = settings.delivery == .exactlyOnce ? TransactionGate(producer: producer) : nil
        shards = (0..<max(1, settings.shards)).map { index in
            InferenceShard(index: index, settings: settings.shard, deployment: deployment, metrics: metrics,
                           logger: logger) { [consumer, logger] shard in
                let resumed = router.takePaused(shard: shard)
                guard !resumed.isEmpty else { return }
                do { try consumer.resume(resumed) } catch {
                    logger.warning("could not resume partitions", metadata: ["error": "\(error)"])
                }
            }
        }
    }

    public var status: StreamStatus { statusState.withLock { $0 } }

    public func run() async throws {
        shards.forEach { $0.start() }
        try await transactions?.start()
        if let pattern = settings.inputPattern {
            try await consumer.subscribe(topics: [pattern.hasPrefix("^") ? pattern : "^" + pattern])
        } else {
            try await consumer.subscribe(topics: settings.inputTopics)
        }
        statusState.withLock { $0.consuming = true }
        logger.info("consuming", metadata: ["topics": "\(settings.inputPattern ?? settings.inputTopics.joined(separator: ","))",
                                           "shards": "\(shards.count)", "delivery": "\(settings.delivery.rawValue)"])

        var consumerFailure: (any Error)?
        try await withThrowingTaskGroup(of: Void.self) { group in
            for shard in shards {
                group.addTask { try await self.publish(shard) }
            }
            let committer = Task { await self.commitPeriodically() }
            let observer = Task { await self.observePeriodically() }

            // Graceful shutdown (or a fatal consumer error) ends the consumer loop; what was taken in is
            // then drained, published and committed either way.
            do {
                try await cancelWhenGracefulShutdown { try await self.consume() }
            } catch is CancellationError {
                // The shutdown signal.
            } catch {
                consumerFailure = error
                statusState.withLock { $0.lastError = "consumer failed: \(error)" }
                logger.error("consumer failed; draining and stopping", metadata: ["error": "\(error)"])
            }
            statusState.withLock { $0.consuming = false }
            logger.info("stopping: draining shards", metadata: ["deadline": "\(settings.drainTimeout)"])
            shards.forEach { $0.stop() }
            // Bounded: what is still queued at the deadline is dropped uncommitted, for the next owner to redo.
            let deadline = Task { [shards, logger, settings] in
                try await Task.sleep(for: settings.drainTimeout)
                let dropped = shards.reduce(0) { $0 + $1.discardQueued() }
                logger.warning("drain deadline passed; queued events left uncommitted for redelivery",
                               metadata: ["events": "\(dropped)"])
            }
            var publishFailure: (any Error)?
            do { try await group.waitForAll() } catch { publishFailure = error }
            deadline.cancel()
            committer.cancel()
            observer.cancel()
            await committer.value
            if let publishFailure { throw publishFailure }
        }
        do {
            try await producer.flush(timeout: settings.drainTimeout)
        } catch {
            logger.error("flush before shutdown failed", metadata: ["error": "\(error)"])
        }
        await commitPending()
        await closeConsumer()
        logger.info("stopped", metadata: ["consumed": "\(metrics.snapshot.consumed)",
                                          "produced": "\(metrics.snapshot.produced)",
                                          "dead_lettered": "\(metrics.snapshot.deadLettered)"])
        if let consumerFailure { throw consumerFailure }
    }

    /// Leaves the group. Closing revokes what is still assigned; everything was drained and committed
    /// already, so those revocations are acknowledged at once and late records are left to the next owner.
    private func closeConsumer() async {
        let events = consumer.events
        // Unstructured, so a cancelled shutdown still acknowledges and close() does not wait out its timeout.
        let drain = Task {
            do {
                for try await event in events {
                    if case .revoked(_, let acknowledgement) = event { acknowledgement.acknowledge() }
                }
            } catch {}
        }
        await consumer.close()
        await drain.value
    }

    // MARK: Consumer loop

    private func consume() async throws {
        for try await event in consumer.events {
            switch event {
            case .message(let record):
                route(record)
            case .assigned(let partitions):
                router.assign(partitions)
                statusState.withLock { $0.assigned = router.assigned }
                logger.info("partitions assigned", metadata: ["partitions": "\(partitions.sorted())"])
            case .revoked(let partitions, let acknowledgement):
                await release(Set(partitions))
                acknowledgement.acknowledge()
            case .lost(let partitions):
                let lost = Set(partitions)
                logger.warning("partitions lost; dropping their in-flight work", metadata: ["partitions": "\(partitions.sorted())"])
                shards.forEach { $0.drop(lost) }
                book.remove(lost)
                router.unassign(lost)
                statusState.withLock { $0.assigned = router.assigned }
            }
        }
    }

    private func route(_ record: ConsumerRecord) {
        let partition = record.topicPartition
        metrics.consumed()
        book.register(partition, offset: record.offset)
        let shardIndex = router.shard(for: partition)
        let full = shards[shardIndex].queue.push(WorkItem(record: record, receivedAt: .now))
        if full {
            let toPause = router.pauseAll(shard: shardIndex)
            guard !toPause.isEmpty else { return }
            do { try consumer.pause(toPause) } catch {
                logger.warning("could not pause partitions", metadata: ["error": "\(error)"])
            }
        }
    }

    /// Orderly revocation: let the partitions' in-flight events be acknowledged, commit, then let go.
    private func release(_ partitions: Set<TopicPartition>) async {
        logger.info("partitions revoked; draining", metadata: ["partitions": "\(partitions.sorted())"])
        if !(await book.waitUntilDrained(partitions, timeout: settings.drainTimeout)) {
            logger.warning("revocation drain timed out; uncommitted events will be redone by the next owner",
                           metadata: ["partitions": "\(partitions.sorted())"])
        }
        await commitPending(partitions)
        book.remove(partitions)
        router.unassign(partitions)
        statusState.withLock { $0.assigned = router.assigned }
    }

    // MARK: Publishing

    private func publish(_ shard: InferenceShard) async throws {
        for await outputs in shard.outputs {
            for output in outputs {
                try await publish(output)
            }
        }
    }

    private func publish(_ output: ShardOutput) async throws {
        let record = output.record
        let partition = record.topicPartition
        let offset = record.offset
        let produced: ProducerRecord
        switch output.outcome {
        case .result(let result):
            var headers = record.headers.filter { $0.name != settings.versionHeader }
            headers.append(KafkaHeader(name: settings.versionHeader, value: result.model.version))
            produced = ProducerRecord(topic: settings.outputTopic, key: record.key,
                                      value: try JSONEncoder.results.encodedBytes(result), headers: headers)
        case .deadLetter(let letter):
            produced = deadLetterRecord(letter, of: record)
        }
        let endToEnd = record.timestampMilliseconds.map { Duration.milliseconds(Int64(Date().timeIntervalSince1970 * 1000) - $0) }
        let isResult = if case .result = output.outcome { true } else { false }
        try await send(produced) { [self] result in
            switch result {
            case .success:
                if isResult { metrics.produced(endToEnd: endToEnd) }
                else if case .deadLetter(let letter) = output.outcome { metrics.deadLettered(code: letter.error.code) }
                book.acknowledge(partition, offset: offset)
            case .failure(let error):
                logger.error("publishing failed; the event stays uncommitted",
                             metadata: ["source": "\(partition)@\(offset)", "error": "\(error)"])
                if isResult { Task { try? await self.deadLetterAfterFailure(record, error: error) } }
            }
        }
        if let shadow = output.shadow {
            let shadowRecord = ProducerRecord(topic: settings.shadowTopic, key: record.key,
                                              value: try JSONEncoder.results.encodedBytes(shadow),
                                              headers: [KafkaHeader(name: settings.versionHeader, value: shadow.model.version)])
            try await send(shadowRecord) { [logger] result in
                if case .failure(let error) = result {
                    logger.warning("shadow result not published", metadata: ["error": "\(error)"])
                }
            }
        }
    }

    /// A result the output topic refused (too large, say) still gets a trace: a dead-letter record.
    private func deadLetterAfterFailure(_ record: ConsumerRecord, error: KafkaError) async throws {
        let letter = DeadLetter(code: "publish_failed", message: "the result could not be published: \(error)",
                                source: SourceCoordinates(topic: record.topic, partition: record.partition,
                                                          offset: record.offset, timestamp: record.timestampMilliseconds),
                                originalValue: record.value ?? [])
        try await send(deadLetterRecord(letter, of: record)) { [self] result in
            if case .success = result {
                metrics.deadLettered(code: letter.error.code)
                book.acknowledge(record.topicPartition, offset: record.offset)
            }
        }
    }

    private func deadLetterRecord(_ letter: DeadLetter, of record: ConsumerRecord) -> ProducerRecord {
        var headers = record.headers
        headers.append(KafkaHeader(name: "minirbt-error", value: letter.error.code))
        let value = (try? JSONEncoder.results.encodedBytes(letter)) ?? Array(letter.error.message.utf8)
        return ProducerRecord(topic: settings.deadLetterTopic, key: record.key, value: value, headers: headers)
    }

    private func send(_ record: ProducerRecord,
                      onDelivery: @escaping @Sendable (Result<DeliveryReport, KafkaError>) -> Void) async throws {
        if let transactions {
            try await transactions.send(record, onDelivery: onDelivery)
        } else {
            try await producer.enqueue(record, onDelivery: onDelivery)
        }
    }

    // MARK: Observation

    /// Samples lag per partition (high watermark − position) and which models serve, for /metrics and
    /// heartbeats. Sampling, not the data path: a failed sample is skipped.
    private func observePeriodically() async {
        var reported: [String: ModelIdentity] = ["primary": deployment.current.primary.identity]
        while !Task.isCancelled {
            try? await Task.sleep(for: settings.observeInterval)
            let selection = deployment.current
            let serving = ["primary": selection.primary.identity, "candidate": selection.candidate?.identity]
            for role in ["primary", "candidate"] where reported[role] != serving[role] {
                if let old = reported[role] { metrics.model(old, role: role, active: false) }
                if let new = serving[role] ?? nil { metrics.model(new, role: role, active: true) }
                reported[role] = serving[role] ?? nil
            }

            let partitions = router.assigned
            guard !partitions.isEmpty, let positions = try? consumer.position(partitions) else { continue }
            var total: Int64 = 0
            for partition in partitions {
                guard let position = positions[partition] ?? nil,
                      let high = try? await consumer.watermarks(partition, timeout: .seconds(2)).high else { continue }
                let lag = max(0, high - position)
                metrics.lag(topic: partition.topic, partition: partition.partition, lag)
                total += lag
            }
            statusState.withLock { $0.lag = total }
        }
    }

    // MARK: Commits

    private func commitPeriodically() async {
        while !Task.isCancelled {
            try? await Task.sleep(for: settings.commitInterval)
            await commitPending()
        }
    }

    private func commitPending(_ partitions: Set<TopicPartition>? = nil) async {
        do {
            if let transactions {
                try await transactions.commit(offsets: { self.book.pendingCommits(for: partitions) },
                                              consumer: consumer) { self.book.markCommitted($0) }
            } else {
                let offsets = book.pendingCommits(for: partitions)
                guard !offsets.isEmpty else { return }
                try await consumer.commit(offsets)
                book.markCommitted(offsets)
            }
        } catch {
            statusState.withLock { $0.lastError = "commit failed: \(error)" }
            logger.warning("commit failed; will retry", metadata: ["error": "\(error)"])
        }
    }
}

extension JSONEncoder {
    func encodedBytes(_ value: some Encodable) throws -> [UInt8] {
        Array(try encode(value))
    }
}
