import Foundation
import Kafka
import Logging
import MiniRBT
import Synchronization

/// A consumed record waiting for its shard.
struct WorkItem: Sendable {
    let record: ConsumerRecord
    let receivedAt: ContinuousClock.Instant
    /// The offset book's generation of the record's partition when it was registered.
    var generation: UInt64 = 0
    /// Bytes charged to the byte budget until the event's output is settled.
    var size: Int = 0
}

/// What a shard made of one record, in the record's partition order.
struct ShardOutput: Sendable {
    enum Outcome: Sendable {
        case result(EnrichedResult)
        case deadLetter(DeadLetter)
    }

    let record: ConsumerRecord
    let outcome: Outcome
    /// The candidate's result in shadow mode, published to the shadow topic only.
    let shadow: EnrichedResult?
    var generation: UInt64 = 0
    var size: Int = 0
}

/// Settings every shard shares.
public struct ShardSettings: Sendable {
    /// Most events in one forward pass.
    public var maxBatch = 32
    /// Longest a batch waits to fill once its first event arrived.
    public var maxWait = Duration.milliseconds(10)
    /// Tokens per sequence, `[CLS]`/`[SEP]` included; longer texts are truncated and flagged.
    public var maxLength = 128
    /// oneDNN threads per shard.
    public var threads = 1
    /// The format of the encoder's matrix products (checked against fp32 on each model's first batch).
    public var precision = Precision.default
    /// Queued events at which the shard's partitions are paused at the consumer.
    public var queueCapacity = 256
    /// Copy the input text into every result.
    public var echoText = false
    /// Include raw logits in results.
    public var includeLogits = false
    public var format = EventFormat()

    public init() {}
}

/// An inference worker: one thread with its own scratch buffers over the shared model. Every partition is
/// pinned to one shard, and a shard handles its queue in order, so a partition's results come out in input
/// order.
final class InferenceShard: Sendable {
    let index: Int
    let queue: WorkQueue<WorkItem>
    /// Batches of outputs, in input order, for the shard's publisher.
    let outputs: AsyncStream<[ShardOutput]>
    private let continuation: AsyncStream<[ShardOutput]>.Continuation
    private let settings: ShardSettings
    private let models: ServingModels
    private let metrics: PipelineMetrics
    private let logger: Logger
    /// Where sampled events go for the teacher's answer, if a teacher runs.
    private let teacher: TeacherLane?
    /// Called on the shard's thread after every batch, to re-evaluate whether its partitions stay paused.
    private let onDrained: @Sendable (InferenceShard) -> Void
    /// When the shard last finished a batch (or started), for the liveness probe.
    let lastProgress = Mutex(ContinuousClock.now)
    /// Set when the shard's thread has ended.
    let finished = Atomic<Bool>(false)
    /// Outputs handed to the publisher and not yet published (for the liveness probe).
    let unpublished = Atomic<Int>(0)

    init(index: Int, settings: ShardSettings, models: ServingModels, metrics: PipelineMetrics,
         logger: Logger, teacher: TeacherLane? = nil, onDrained: @escaping @Sendable (InferenceShard) -> Void) {
        self.index = index
        self.teacher = teacher
        self.settings = settings
        self.models = models
        self.metrics = metrics
        self.logger = logger
        self.onDrained = onDrained
        queue = WorkQueue(capacity: settings.queueCapacity)
        (outputs, continuation) = AsyncStream.makeStream(bufferingPolicy: .unbounded)
    }

    /// Starts the shard's thread. Inference is long, blocking CPU work: it must not run on Swift's
    /// cooperative pool.
    func start() {
        let thread = Thread { [self] in run() }
        thread.name = "minirbt-shard-\(index)"
        thread.start()
    }

    private func run() {
        // The teacher lane compares with (and publishes) the student's logits even when results omit them.
        let predictor = Predictor(threads: settings.threads, maxLength: settings.maxLength,
                                  includeLogits: settings.includeLogits || teacher != nil, precision: settings.precision) { [logger, metrics] session in
            // Every shard prepares its own session of the same model: say why once per process, not per shard.
            if metrics.precisionServed(session), let reason = session.fallbackReason {
                logger.warning("\(reason)")
            }
        }
        while let batch = queue.nextBatch(maxItems: settings.maxBatch, maxWait: settings.maxWait) {
            let outputs = process(batch, predictor: predictor)
            unpublished.add(outputs.count, ordering: .relaxed)
            continuation.yield(outputs)
            lastProgress.withLock { $0 = .now }
            metrics.shardQueueDepth(index, queue.depth)
            onDrained(self)
        }
        finished.store(true, ordering: .releasing)
        continuation.finish()
    }

    /// One micro-batch: decode, pick the model once, predict, and lay the outputs out in input order.
    private func process(_ batch: [WorkItem], predictor: Predictor) -> [ShardOutput] {
        let selection = models.current
        // Sessions of models swapped out are dropped; the serving ones stay prepared across batches.
        predictor.retainSessions(for: [selection.primary, selection.candidate].compactMap { $0 })
        let decoded = batch.map { settings.format.decode($0.record.value ?? []) }
        var outcomes = [ShardOutput.Outcome?](repeating: nil, count: batch.count)
        var shadows = [EnrichedResult?](repeating: nil, count: batch.count)

        for (index, result) in decoded.enumerated() {
            if case .failure(let error) = result {
                outcomes[index] = .deadLetter(deadLetter(batch[index].record, code: error.code,
                                                         message: error.message))
            }
        }
        // Canary splits the batch by key; each part runs on its own model.
        var byModel: [ObjectIdentifier: (model: LoadedModel, indices: [Int])] = [:]
        for (index, result) in decoded.enumerated() {
            guard case .success = result else { continue }
            let model = selection.model(forKey: batch[index].record.key)
            byModel[ObjectIdentifier(model), default: (model, [])].indices.append(index)
        }
        let started = ContinuousClock.now
        var answered = [Prediction?](repeating: nil, count: batch.count)
        var samples: [TeacherSample] = []
        for (model, indices) in byModel.values {
            let predictions = run(model, on: indices, of: batch, decoded: decoded, predictor: predictor) { index, result in
                outcomes[index] = result
            }
            for (index, prediction) in zip(indices, predictions) { answered[index] = prediction }
            if let teacher, teacher.accepts(model) {
                samples += sample(predictions, of: model, at: indices, in: batch, decoded: decoded, for: teacher)
            }
        }
        if let shadow = selection.shadow {
            let indices = decoded.indices.filter { if case .success = decoded[$0] { true } else { false } }
            let predictions = run(shadow, on: indices, of: batch, decoded: decoded, predictor: predictor) { index, result in
                if case .result(let value) = result { shadows[index] = value }
            }
            // Only events both models answered are compared (a failed pass yields no predictions).
            let paired = zip(indices, predictions).compactMap { index, candidate in answered[index].map { ($0, candidate) } }
            var tally = PipelineMetrics.AgreementTally()
            tally.add(paired.map(\.0), paired.map(\.1))
            metrics.shadowCompared(primary: selection.primary.identity, candidate: shadow.identity, tally: tally)
        }
        if !samples.isEmpty { teacher?.offer(samples) }
        metrics.batch(size: batch.count, inference: ContinuousClock.now - started)

        return batch.indices.map { index in
            ShardOutput(record: batch[index].record,
                        outcome: outcomes[index] ?? .deadLetter(deadLetter(batch[index].record, code: .internal,
                                                                           message: "no result was produced")),
                        shadow: shadows[index], generation: batch[index].generation, size: batch[index].size)
        }
    }

    /// The sampled events of a student's predictions, for the teacher.
    private func sample(_ predictions: [Prediction], of model: LoadedModel, at indices: [Int], in batch: [WorkItem],
                        decoded: [Result<TextEvent, EventDecodingError>], for teacher: TeacherLane) -> [TeacherSample] {
        zip(indices, predictions).compactMap { index, prediction in
            guard let event = try? decoded[index].get() else { return nil }
            let record = batch[index].record
            let source = SourceCoordinates(topic: record.topic, partition: record.partition, offset: record.offset,
                                           timestamp: record.timestampMilliseconds)
            guard teacher.isSampled(key: record.key, id: event.id, source: source) else { return nil }
            return TeacherSample(id: event.id ?? source.eventID, event: event, key: record.key, source: source,
                                 student: model.identity, prediction: prediction)
        }
    }

    /// Predicts `indices` of the batch with `model` and stores each outcome; returns the predictions, in
    /// `indices` order (none when the forward pass failed and the events were dead-lettered).
    @discardableResult
    private func run(_ model: LoadedModel, on indices: [Int], of batch: [WorkItem],
                     decoded: [Result<TextEvent, EventDecodingError>], predictor: Predictor,
                     store: (Int, ShardOutput.Outcome) -> Void) -> [Prediction] {
        let events = indices.compactMap { try? decoded[$0].get() }
        do {
            let predictions = try predictor.predict(events, with: model)
            // Counted under the version that made them: a shadow candidate's predictions too.
            metrics.predictions(predictions, version: model.identity.version)
            metrics.drift.observe(predictions, of: model)
            let now = ContinuousClock.now
            for ((index, event), var prediction) in zip(zip(indices, events), predictions) {
                if !settings.includeLogits { prediction.logits = nil }
                let item = batch[index]
                let record = item.record
                let source = SourceCoordinates(topic: record.topic, partition: record.partition,
                                               offset: record.offset, timestamp: record.timestampMilliseconds)
                let latency = (now - item.receivedAt).seconds * 1000
                store(index, .result(EnrichedResult(id: event.id ?? source.eventID, source: source,
                                                    model: model.identity, prediction: prediction,
                                                    text: settings.echoText ? event.text : nil,
                                                    latencyMs: (latency * 1000).rounded() / 1000)))
            }
            return predictions
        } catch {
            // A failed forward pass must not take the service down: its events are dead-lettered.
            logger.error("inference failed", metadata: ["shard": "\(index)", "model": "\(model.identity.version)",
                                                        "error": "\(error)"])
            for index in indices {
                store(index, .deadLetter(deadLetter(batch[index].record, code: .inferenceFailed,
                                                    message: "\(error)")))
            }
            return []
        }
    }

    private func deadLetter(_ record: ConsumerRecord, code: DeadLetterCode, message: String) -> DeadLetter {
        DeadLetter(code: code, message: message,
                   source: SourceCoordinates(topic: record.topic, partition: record.partition,
                                             offset: record.offset, timestamp: record.timestampMilliseconds),
                   originalValue: record.value ?? [])
    }

    /// Finishes what is queued, then ends `outputs`.
    func stop() {
        queue.close()
    }

    /// Forgets every queued record (a shutdown past its deadline); returns them.
    func discardQueued() -> [WorkItem] {
        queue.removeAll { _ in true }
    }

    /// Forgets queued records of partitions this replica no longer owns; returns them.
    func drop(_ partitions: Set<TopicPartition>) -> [WorkItem] {
        queue.removeAll { partitions.contains($0.record.topicPartition) }
    }
}
