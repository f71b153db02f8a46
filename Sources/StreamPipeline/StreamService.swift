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
    /// Bytes of consumed records held at once (shard queues, inference, outputs awaiting acknowledgement)
    /// above which every assigned partition is paused; they resume below half.
    public var maxBufferedBytes = 256 << 20
    /// The largest record to produce (key, value, headers): the producer's `message.max.bytes` less framing.
    public var maxRecordBytes = 1_000_000 - 2048
    /// The liveness probe fails when a shard, a publisher or the consumer loop has work but made no progress
    /// for this long. Keep it above the producer's `message.timeout.ms` (30 s).
    public var stallTimeout = Duration.seconds(120)
    /// First pause between retries of a transient publishing error (doubling up to 5 s).
    public var retryBackoff = Duration.milliseconds(100)
    /// Exactly-once: the producer's `transactional.id`, named in messages about fencing.
    public var transactionalID = ""
    /// Check at start-up that the output and dead-letter topics exist.
    public var checkTopicsAtStart = true

    /// How long a revocation waits for in-flight events before committing: two thirds of `drainTimeout`, so
    /// that the commit is done before the consumer's revocation timeout (set to `drainTimeout`) gives the
    /// partitions up.
    public var revocationDrainTimeout: Duration { drainTimeout * 2 / 3 }

    public init() {}
}

/// The service stopped because it cannot make progress; the message says why.
public struct StreamServiceError: Error, CustomStringConvertible {
    public let description: String
}

/// Observable state for health checks and status heartbeats.
public struct StreamStatus: Sendable {
    public var consuming = false
    public var assigned: [TopicPartition] = []
    /// Events behind the high watermark over all assigned partitions, at the last sample.
    public var lag: Int64?
    public var lastError: String?
    /// Why the cluster is considered unreachable, from the last periodic check.
    public var brokerUnreachable: String?
}

/// The streaming service: consumer loop → router → shards → publishers → offset book → commits.
public final class StreamService: Service, Sendable {
    private let settings: StreamSettings
    private let consumer: KafkaConsumer
    private let producers: ProducerSlot
    private let models: ServingModels
    public let metrics: PipelineMetrics
    private let logger: Logger
    private let shards: [InferenceShard]
    private let publishers: [OutputPublisher]
    private let router: PartitionRouter
    private let book: OffsetBook
    private let budget: ByteBudget
    private let transactions: TransactionCoordinator?
    /// Exactly-once: the fatal transaction error that stopped the service (fenced, unsupported).
    private let transactionFailure: FirstError
    private let statusState = Mutex(StreamStatus())
    /// When the consumer loop last received an event.
    private let consumerProgress = Mutex(ContinuousClock.now)
    /// Set at the drain deadline: publishers stop retrying and leave their events uncommitted.
    private let abandoned: AtomicFlag
    /// The error that made a publisher stop, if any: the service then stops too.
    private let publishFailure = Mutex<PublishingFailure?>(nil)
    private let stopRequest: (stream: AsyncStream<Void>, continuation: AsyncStream<Void>.Continuation)

    /// - Parameters:
    ///   - makeProducer: at-least-once only: builds a new producer like `producer`, to replace it when
    ///     librdkafka declares it fatally failed (see ``ProducerSlot``); without it such a failure stops the
    ///     service.
    ///   - teacher: the teacher lane the shards offer sampled events to (run it as its own service, before
    ///     this one in the service group, so it outlives the shards' drain).
    public init(settings: StreamSettings, consumer: KafkaConsumer, producer: KafkaProducer,
                makeProducer: (@Sendable () throws(KafkaError) -> KafkaProducer)? = nil,
                models: ServingModels, metrics: PipelineMetrics = PipelineMetrics(), logger: Logger,
                teacher: TeacherLane? = nil) {
        self.settings = settings
        self.consumer = consumer
        let producers = ProducerSlot(producer, makeProducer: settings.delivery == .exactlyOnce ? nil : makeProducer,
                                     metrics: metrics, logger: logger)
        self.producers = producers
        self.models = models
        self.metrics = metrics
        self.logger = logger
        let stopRequest = AsyncStream<Void>.makeStream()
        self.stopRequest = stopRequest
        let book = OffsetBook()
        self.book = book
        let abandoned = AtomicFlag()
        self.abandoned = abandoned
        let router = PartitionRouter(shardCount: max(1, settings.shards)) { [consumer] pause, resume in
            consumer.pause(pause)
            consumer.resume(resume)
        }
        self.router = router
        let budget = ByteBudget(limit: settings.maxBufferedBytes)
        self.budget = budget
        let shards = (0..<max(1, settings.shards)).map { index in
            InferenceShard(index: index, settings: settings.shard, models: models, metrics: metrics,
                           logger: logger, teacher: teacher) { shard in
                router.refresh(shard: index, depth: { shard.queue.depth }, capacity: shard.queue.capacity)
            }
        }
        self.shards = shards
        let transactionFailure = FirstError()
        self.transactionFailure = transactionFailure
        var transactions: TransactionCoordinator?
        if settings.delivery == .exactlyOnce {
            let stop = stopRequest.continuation
            transactions = TransactionCoordinator(
                producer: producer, consumer: consumer, book: book, transactionalID: settings.transactionalID,
                logger: logger,
                dropQueued: { partitions in
                    let dropped = shards.flatMap { $0.drop(partitions) }
                    if budget.release(dropped.reduce(0) { $0 + $1.size }) { router.setOverBudget(false) }
                    metrics.bufferedBytes(budget.used)
                },
                onFatal: { error in
                    transactionFailure.record(error)
                    stop.finish()
                })
        }
        self.transactions = transactions
        let publisherSettings = OutputPublisher.Settings(
            outputTopic: settings.outputTopic, deadLetterTopic: settings.deadLetterTopic,
            shadowTopic: settings.shadowTopic, versionHeader: settings.versionHeader,
            maxRecordBytes: settings.maxRecordBytes, retryBackoff: settings.retryBackoff)
        let send: OutputPublisher.Send = { record, onDelivery in
            try await producers.current.enqueue(record, onDelivery: onDelivery)
        }
        publishers = shards.map { _ in
            OutputPublisher(settings: publisherSettings, send: send, book: book, metrics: metrics, logger: logger,
                            release: { bytes in
                                if budget.release(bytes) { router.setOverBudget(false) }
                                metrics.bufferedBytes(budget.used)
                            },
                            abandoned: { abandoned.isSet }, transactions: transactions, producers: producers)
        }
    }

    public var status: StreamStatus { statusState.withLock { $0 } }

    /// Exactly-once: transactions committed and aborted so far; nil with at-least-once.
    public func transactionCounts() async -> (committed: Int, aborted: Int)? {
        guard let transactions else { return nil }
        return (await transactions.commits, await transactions.aborts)
    }

    /// The most bytes of consumed records held at once since start (see `maxBufferedBytes`).
    public var peakBufferedBytes: Int { budget.peak }

    /// Nil when the service can take traffic, else why not: the consumer is not running, the cluster is
    /// unreachable, or publishing is stalled retrying a transient error.
    public func readiness() -> String? {
        let status = status
        guard status.consuming else { return "the consumer is not running" }
        if let unreachable = status.brokerUnreachable { return "the Kafka cluster is unreachable: \(unreachable)" }
        for (index, publisher) in publishers.enumerated() {
            if let error = publisher.retrying.withLock({ $0 }) {
                return "publisher \(index) is retrying: \(error)"
            }
        }
        return nil
    }

    /// Nil while every part makes progress, else what is stuck: a shard, publisher or the consumer loop that
    /// stopped while the service runs, or that has had work but no progress for `stallTimeout`.
    public func liveness(now: ContinuousClock.Instant = .now) -> String? {
        let status = status
        guard status.consuming else { return nil }
        let stall = settings.stallTimeout
        for (shard, publisher) in zip(shards, publishers) {
            if shard.finished.load(ordering: .acquiring) { return "shard \(shard.index) has stopped" }
            if publisher.finished.load(ordering: .acquiring) { return "the publisher of shard \(shard.index) has stopped" }
            if shard.queue.depth > 0, now - shard.lastProgress.withLock({ $0 }) > stall {
                return "shard \(shard.index) has queued events but finished no batch for \(stall)"
            }
            if shard.unpublished.load(ordering: .relaxed) > 0, now - publisher.lastProgress.withLock({ $0 }) > stall {
                return "the publisher of shard \(shard.index) has outputs but made no progress for \(stall)"
            }
        }
        let assigned = Set(router.assigned)
        if (status.lag ?? 0) > 0, !assigned.subtracting(router.paused).isEmpty,
           now - consumerProgress.withLock({ $0 }) > stall {
            return "the consumer loop received nothing for \(stall) while the assigned partitions lag"
        }
        return nil
    }

    public func run() async throws {
        if settings.checkTopicsAtStart { try await checkTopics() }
        shards.forEach { $0.start() }
        try await transactions?.start()
        if let pattern = settings.inputPattern {
            try await consumer.subscribe(topics: [pattern.hasPrefix("^") ? pattern : "^" + pattern])
        } else {
            try await consumer.subscribe(topics: settings.inputTopics)
        }
        statusState.withLock { $0.consuming = true }
        consumerProgress.withLock { $0 = .now }
        logger.info("consuming", metadata: ["topics": "\(settings.inputPattern ?? settings.inputTopics.joined(separator: ","))",
                                           "shards": "\(shards.count)", "delivery": "\(settings.delivery.rawValue)"])

        var consumerFailure: (any Error)?
        await withTaskGroup(of: Void.self) { background in
            background.addTask { await self.commitPeriodically() }
            background.addTask { await self.observePeriodically() }
            if let transactions {
                background.addTask { for await _ in transactions.abortRequests { await transactions.commit() } }
            }
            await withTaskGroup(of: Bool.self) { publishing in
                for (shard, publisher) in zip(shards, publishers) {
                    publishing.addTask { await self.publish(shard, with: publisher); return true }
                }
                // Graceful shutdown, a fatal consumer error or a publisher that cannot go on ends the consumer
                // loop; what was taken in is then drained, published and committed either way.
                do {
                    try await cancelWhenGracefulShutdown { try await self.consumeUntilStopped() }
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
                // Bounded: what is still queued at the deadline is dropped uncommitted, for the next owner to
                // redo, and publishers stop retrying.
                publishing.addTask { [self] in
                    guard (try? await Task.sleep(for: settings.drainTimeout)) != nil else { return false }
                    abandoned.set()
                    let dropped = shards.flatMap { $0.discardQueued() }
                    releaseBudget(dropped.reduce(0) { $0 + $1.size })
                    logger.warning("drain deadline passed; queued events left uncommitted for redelivery",
                                   metadata: ["events": "\(dropped.count)"])
                    return false
                }
                var running = publishers.count
                while running > 0, let finished = await publishing.next() {
                    if finished { running -= 1 }
                }
                publishing.cancelAll()
            }
            background.cancelAll()
        }
        do {
            try await producers.current.flush(timeout: settings.drainTimeout)
        } catch {
            logger.error("flush before shutdown failed", metadata: ["error": "\(error)"])
        }
        await commitPending()
        await closeConsumer()
        logger.info("stopped", metadata: ["consumed": "\(metrics.snapshot.consumed)",
                                          "produced": "\(metrics.snapshot.produced)",
                                          "dead_lettered": "\(metrics.snapshot.deadLettered)"])
        if let fatal = transactionFailure.value {
            throw StreamServiceError(description: Self.explainFatal(fatal, transactionalID: settings.transactionalID))
        }
        if let failure = publishFailure.withLock({ $0 }) {
            throw StreamServiceError(description: "stopped: \(failure); what was published is committed, the rest will be redone after the cause is fixed")
        }
        if let consumerFailure { throw consumerFailure }
    }

    /// The message a fatal transaction error stops the service with.
    static func explainFatal(_ error: KafkaError, transactionalID: String) -> String {
        if error.isFenced {
            return "stopped: this replica's producer was fenced: another producer started with transactional.id '\(transactionalID)' "
                + "(two replicas given the same --transactional-id or --instance-id, or a newer instance of this replica). "
                + "Its open transaction is aborted; what it had not committed is redone by the partitions' next owner. (\(error))"
        }
        return "stopped: exactly-once cannot go on with transactional.id '\(transactionalID)': \(error). "
            + "What was committed stays committed; the rest is redone by the partitions' next owner."
    }

    /// The topics the service writes must exist: producing to a missing one fails only after
    /// `topic.metadata.propagation.max.ms`, event by event. Transient metadata errors are retried for up to
    /// `drainTimeout`.
    private func checkTopics() async throws {
        for (role, topic) in [("output", settings.outputTopic), ("dead-letter", settings.deadLetterTopic)] {
            let deadline = ContinuousClock.now + settings.drainTimeout
            while true {
                do {
                    _ = try await producers.current.describeTopic(topic)
                    break
                } catch {
                    if error.produceFailure == .permanent {
                        throw StreamServiceError(description: "the \(role) topic '\(topic)' cannot be used: \(error) (create it first: docs/operations.md, section 3)")
                    }
                    guard ContinuousClock.now < deadline else {
                        throw StreamServiceError(description: "could not check the \(role) topic '\(topic)': \(error)")
                    }
                    logger.warning("checking the \(role) topic failed; retrying", metadata: ["error": "\(error)"])
                    try await Task.sleep(for: .seconds(1))
                }
            }
        }
    }

    /// Leaves the group. Closing revokes what is still assigned; everything was drained and committed
    /// already, so those revocations need no acknowledgement and late records are left to the next owner.
    private func closeConsumer() async {
        await consumer.closeAcknowledgingRevocations()
    }

    // MARK: Consumer loop

    /// The consumer loop, until the events end, the task is cancelled, or a publisher asks to stop.
    private func consumeUntilStopped() async throws {
        let stopRequest = stopRequest.stream
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await self.consume() }
            group.addTask {
                for await _ in stopRequest {}
                // Ended by `requestStop` (not by cancellation): stop consuming.
            }
            _ = try await group.next()
            group.cancelAll()
        }
    }

    private func requestStop() {
        stopRequest.continuation.finish()
    }

    private func consume() async throws {
        for try await event in consumer.events {
            consumerProgress.withLock { $0 = .now }
            switch event {
            case .record(let record):
                route(record)
                // Over the byte budget: the partitions are paused, and what the consumer already fetched
                // waits in its (byte-bounded) buffer until the shards and publishers are back under half.
                if budget.isOver { await budget.waitWhileOver() }
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
                if let transactions {
                    // The open transaction may hold their results: abort it, redo the other partitions.
                    await transactions.abortForLostPartitions(lost)
                } else {
                    let dropped = shards.flatMap { $0.drop(lost) }
                    releaseBudget(dropped.reduce(0) { $0 + $1.size })
                    book.remove(lost)
                }
                forget(lost)
            case .endOfPartition:
                break  // Not enabled for the group consumer.
            case .rewound(let offsets, let failure):
                let assigned = Set(router.assigned)
                let rewound = Set(offsets.keys).intersection(assigned)
                if let failure, !rewound.isEmpty {
                    // Reading on from where the consumer is would skip the aborted events.
                    throw StreamServiceError(description: "could not rewind \(rewound.sorted()) after an aborted transaction: \(failure)")
                }
                book.finishRewind(rewound)
                logger.info("partitions rewound after an aborted transaction; reading them again",
                            metadata: ["partitions": "\(rewound.sorted())"])
            }
        }
    }

    private func route(_ record: ConsumerRecord) {
        let partition = record.topicPartition
        // Fetched before the rewind that follows an aborted transaction: it is read again after the seek.
        if book.isRewinding(partition) { return }
        metrics.consumed()
        let generation = book.register(partition, offset: record.offset)
        let size = record.payloadSize
        if budget.add(size) {
            logger.info("buffered bytes over --max-buffered-bytes; pausing every partition",
                        metadata: ["bytes": "\(budget.used)", "limit": "\(budget.limit)"])
            router.setOverBudget(true)
        }
        metrics.bufferedBytes(budget.used)
        let shardIndex = router.shard(for: partition)
        let shard = shards[shardIndex]
        let full = shard.queue.push(WorkItem(record: record, receivedAt: .now, generation: generation, size: size))
        if full {
            router.refresh(shard: shardIndex, depth: { shard.queue.depth }, capacity: shard.queue.capacity)
        }
    }

    private func releaseBudget(_ bytes: Int) {
        if budget.release(bytes) { router.setOverBudget(false) }
        metrics.bufferedBytes(budget.used)
    }

    /// Orderly revocation: let the partitions' in-flight events be acknowledged, commit, then let go. The
    /// wait is shorter than the consumer's revocation timeout, so the commit lands while the partitions are
    /// still ours.
    private func release(_ partitions: Set<TopicPartition>) async {
        logger.info("partitions revoked; draining", metadata: ["partitions": "\(partitions.sorted())"])
        if !(await book.waitUntilDrained(partitions, timeout: settings.revocationDrainTimeout)) {
            logger.warning("revocation drain timed out; uncommitted events will be redone by the next owner",
                           metadata: ["partitions": "\(partitions.sorted())"])
        }
        if let transactions {
            // Commits every partition's settled results and offsets, then drops the revoked partitions'
            // remaining work inside the same turn: nothing of theirs can enter a later transaction.
            await transactions.commitBeforeRevocation(partitions)
        } else {
            await commitPending(partitions)
            book.remove(partitions)
            // What the drain left queued is the next owner's to redo.
            let dropped = shards.flatMap { $0.drop(partitions) }
            releaseBudget(dropped.reduce(0) { $0 + $1.size })
        }
        forget(partitions)
    }

    /// Stops routing to partitions this replica no longer owns, and drops their lag series.
    private func forget(_ partitions: Set<TopicPartition>) {
        router.unassign(partitions)
        for partition in partitions { metrics.removeLag(topic: partition.topic, partition: partition.partition) }
        statusState.withLock { $0.assigned = router.assigned }
    }

    // MARK: Publishing

    /// Publishes a shard's outputs until the shard ends. A publisher that cannot go on asks the service to
    /// stop, and keeps draining the shard's outputs (unpublished, so uncommitted) so the shard never blocks.
    private func publish(_ shard: InferenceShard, with publisher: OutputPublisher) async {
        var stopped = false
        for await outputs in shard.outputs {
            defer { shard.unpublished.subtract(outputs.count, ordering: .relaxed) }
            guard !stopped else {
                releaseBudget(outputs.reduce(0) { $0 + $1.size })
                continue
            }
            do {
                try await publisher.publish(outputs)
            } catch {
                stopped = true
                if case .stopped = error {
                    logger.critical("publishing cannot go on; stopping the service",
                                    metadata: ["shard": "\(shard.index)", "error": "\(error)"])
                    statusState.withLock { $0.lastError = "\(error)" }
                    publishFailure.withLock { if $0 == nil { $0 = error } }
                    requestStop()
                }
            }
        }
        publisher.finished.store(true, ordering: .releasing)
    }

    // MARK: Observation

    /// Samples lag per partition (high watermark − position), which models serve and whether the cluster
    /// answers, for /metrics, /readyz and heartbeats. Sampling, not the data path: a failed sample is skipped.
    private func observePeriodically() async {
        var reported: [String: ModelIdentity] = ["primary": models.current.primary.identity]
        while !Task.isCancelled {
            guard (try? await Task.sleep(for: settings.observeInterval)) != nil else { return }
            let selection = models.current
            let serving = ["primary": selection.primary.identity, "candidate": selection.candidate?.identity]
            for role in ["primary", "candidate"] where reported[role] != serving[role] {
                if let old = reported[role] { metrics.model(old, role: role, active: false) }
                if let new = serving[role] ?? nil { metrics.model(new, role: role, active: true) }
                reported[role] = serving[role] ?? nil
            }
            // Also evicts the windows by age when traffic stops, so the gauges never show a stale index.
            metrics.drift.retain(versions: Set([selection.primary, selection.candidate].compactMap { $0?.identity.version }))
            _ = metrics.drift.reports()

            do {
                try await producers.current.pingCluster(timeout: .seconds(5))
                statusState.withLock { $0.brokerUnreachable = nil }
            } catch {
                statusState.withLock { $0.brokerUnreachable = "\(error)" }
            }

            let partitions = router.assigned
            guard !partitions.isEmpty, let positions = try? consumer.position(partitions) else { continue }
            var total: Int64 = 0
            for partition in partitions {
                guard let position = positions[partition] ?? nil,
                      let high = try? await consumer.watermarks(partition, timeout: .seconds(2)).high else { continue }
                let difference = high.subtractingReportingOverflow(position)
                let lag = difference.overflow ? Int64.max : max(0, difference.partialValue)
                metrics.lag(topic: partition.topic, partition: partition.partition, lag)
                let sum = total.addingReportingOverflow(lag)
                total = sum.overflow ? .max : sum.partialValue
            }
            statusState.withLock { $0.lag = total }
        }
    }

    // MARK: Commits

    private func commitPeriodically() async {
        while !Task.isCancelled {
            guard (try? await Task.sleep(for: settings.commitInterval)) != nil else { return }
            await commitPending()
        }
    }

    private func commitPending(_ partitions: Set<TopicPartition>? = nil) async {
        if let transactions {
            await transactions.commit()
            return
        }
        do {
            let offsets = book.pendingCommits(for: partitions)
            guard !offsets.isEmpty else { return }
            try await consumer.commit(offsets)
            book.markCommitted(offsets)
        } catch {
            statusState.withLock { $0.lastError = "commit failed: \(error)" }
            logger.warning("commit failed; will retry", metadata: ["error": "\(error)"])
        }
    }
}

/// The first error recorded, shared by reference.
final class FirstError: Sendable {
    private let state = Mutex<KafkaError?>(nil)

    var value: KafkaError? { state.withLock { $0 } }

    func record(_ error: KafkaError) {
        state.withLock { if $0 == nil { $0 = error } }
    }
}

extension JSONEncoder {
    func encodedBytes(_ value: some Encodable) throws -> [UInt8] {
        Array(try encode(value))
    }
}
