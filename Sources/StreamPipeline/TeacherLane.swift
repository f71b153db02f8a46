import Foundation
import Kafka
import Logging
import MiniRBT
import ServiceLifecycle
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// One sampled event on its way to the teacher: the text, and what the student that answered it said.
struct TeacherSample: Sendable {
    let id: String
    let event: TextEvent
    let key: [UInt8]?
    let source: SourceCoordinates
    let student: ModelIdentity
    /// The student's prediction, logits included.
    let prediction: Prediction
}

/// What the soft-label topic receives for every sampled event the teacher answered: schema in
/// `schemas/soft-label.schema.json`. Logits are in `labels` order (teacher and student share it).
public struct SoftLabel: Codable, Sendable, Equatable {
    public var id: String
    public var text: String
    public var textPair: String?
    public var labels: [String]
    public var teacherLogits: [Float]
    public var studentLogits: [Float]
    /// The student that answered the event.
    public var model: ModelIdentity
    public var teacher: ModelIdentity
    public var source: SourceCoordinates?

    enum CodingKeys: String, CodingKey {
        case id, text, labels, model, teacher, source
        case textPair = "text_pair"
        case teacherLogits = "teacher_logits"
        case studentLogits = "student_logits"
    }
}

/// The teacher lane: a larger model answering a deterministic sample of the events beside the students,
/// for `minirbt_teacher_agreement_ratio` and, with a soft-label topic, distillation data from live traffic.
///
/// It never delays the students: shards only ``offer(_:)`` samples, which is non-blocking; the lane runs on
/// its own thread (at the lowest scheduling priority) with its own session, and samples beyond its bounded
/// capacity (queued, in inference or being published) are skipped and counted. Soft-label records go through
/// their own producer, outside any transaction: at-least-once at best (a redone event is sampled again), and
/// a sample skipped or a record given up on at shutdown is not sent at all.
public final class TeacherLane: Service, Sendable {
    public struct Settings: Sendable {
        /// Share of events sampled, in (0, 1].
        public var sampleRate = 0.02
        /// Samples held at once (queued, in inference, being published); beyond it samples are skipped.
        public var capacity = 256
        public var maxBatch = 8
        public var maxWait = Duration.milliseconds(50)
        public var maxLength = 128
        public var threads = 1
        public var precision = Precision.default
        /// Where soft-label records go; nil publishes none.
        public var softLabelTopic: String?
        public var maxRecordBytes = 1_000_000 - 2048
        /// First pause between retries of a transient publishing error (doubling up to 5 s).
        public var retryBackoff = Duration.milliseconds(100)

        public init() {}
    }

    /// Sends one record, reporting its delivery (a non-transactional producer of the lane's own).
    public typealias Send = @Sendable (ProducerRecord, @escaping KafkaProducer.DeliveryHandler) async throws -> Void

    public let teacher: LoadedModel
    public let settings: Settings
    private let metrics: PipelineMetrics
    private let logger: Logger
    private let send: Send?
    private let queue: WorkQueue<TeacherSample>
    /// Samples accepted and not yet finished (compared and, with a topic, published or given up on).
    private let held = Atomic<Int>(0)
    private let stopping = AtomicFlag()
    /// Sampled share as parts per million, so the test on each event is integer arithmetic.
    private let threshold: UInt64

    /// - Parameter send: how soft-label records are produced; required when `settings.softLabelTopic` is set.
    public init(teacher: LoadedModel, settings: Settings, metrics: PipelineMetrics, logger: Logger, send: Send? = nil) {
        self.teacher = teacher
        self.settings = settings
        self.metrics = metrics
        self.logger = logger
        self.send = settings.softLabelTopic == nil ? nil : send
        queue = WorkQueue(capacity: max(1, settings.capacity))
        threshold = UInt64((min(1, max(0, settings.sampleRate)) * 1_000_000).rounded())
        // Exported at 0 from the start, so rates and alerts are defined before the first skip.
        metrics.teacherSkipped(0)
        metrics.teacherFailed(0)
        if settings.softLabelTopic != nil { metrics.softLabels(published: 0, failed: 0) }
    }

    /// Whether the event is in the sample: by a stable hash of its key, else of its id, else of its
    /// coordinates, so every replica and every redelivery samples the same events.
    public func isSampled(key: [UInt8]?, id: String?, source: SourceCoordinates) -> Bool {
        Self.isSampled(key: key, id: id, source: source, threshold: threshold)
    }

    static func isSampled(key: [UInt8]?, id: String?, source: SourceCoordinates, threshold: UInt64) -> Bool {
        let hash: UInt64
        if let key {
            hash = StableHash.fnv1a(key)
        } else if let id {
            hash = StableHash.fnv1a(id.utf8)
        } else {
            hash = StableHash.fnv1a("\(source.topic)/\(source.partition)/\(source.offset)".utf8)
        }
        return hash % 1_000_000 < threshold
    }

    /// Whether a student's outputs can be compared with the teacher's (same labels, in the same order).
    func accepts(_ student: LoadedModel) -> Bool {
        student.model.task == .sequenceClassification && student.model.labels == teacher.model.labels
    }

    /// Hands sampled events to the lane without waiting: those it has no room for are skipped and counted.
    func offer(_ samples: [TeacherSample]) {
        var skipped = 0
        for sample in samples {
            guard held.add(1, ordering: .relaxed).newValue <= settings.capacity, queue.offer(sample) else {
                held.subtract(1, ordering: .relaxed)
                skipped += 1
                continue
            }
        }
        if skipped > 0 { metrics.teacherSkipped(skipped) }
    }

    /// Runs the lane until graceful shutdown, which drops what is still queued (counted as skipped),
    /// finishes the batch in inference and publishes what was answered.
    public func run() async throws {
        let (answers, continuation) = AsyncStream.makeStream(of: [(TeacherSample, Prediction)].self)
        let thread = Thread { [self] in
            infer(into: continuation)
        }
        thread.name = "minirbt-teacher"
        thread.start()
        await withGracefulShutdownHandler {
            for await batch in answers {
                await publish(batch)
                held.subtract(batch.count, ordering: .relaxed)
            }
        } onGracefulShutdown: { [self] in
            stopping.set()
            let dropped = queue.removeAll { _ in true }
            held.subtract(dropped.count, ordering: .relaxed)
            if !dropped.isEmpty { metrics.teacherSkipped(dropped.count) }
            queue.close()
        }
    }

    /// The lane's thread: teacher forward passes, one micro-batch at a time, at the lowest priority.
    private func infer(into answers: AsyncStream<[(TeacherSample, Prediction)]>.Continuation) {
        #if canImport(Glibc)
        // Linux keeps a nice value per thread, and `who` 0 is the calling thread: nice 19 for this one leaves
        // the shards every core they want.
        _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, 19)
        #endif
        let predictor = Predictor(threads: settings.threads, maxLength: settings.maxLength, includeLogits: true,
                                  precision: settings.precision)
        while let batch = queue.nextBatch(maxItems: settings.maxBatch, maxWait: settings.maxWait) {
            do {
                let predictions = try predictor.predict(batch.map(\.event), with: teacher)
                var byStudent: [String: (students: [Prediction], teachers: [Prediction])] = [:]
                for (sample, prediction) in zip(batch, predictions) {
                    byStudent[sample.student.version, default: ([], [])].students.append(sample.prediction)
                    byStudent[sample.student.version]?.teachers.append(prediction)
                }
                for (version, pair) in byStudent {
                    var tally = PipelineMetrics.AgreementTally()
                    tally.add(pair.students, pair.teachers)
                    metrics.teacherCompared(version: version, tally: tally)
                }
                answers.yield(Array(zip(batch, predictions)))
            } catch {
                // The teacher is an observer: its failure costs only these samples.
                logger.warning("the teacher failed on a batch; its samples are skipped",
                               metadata: ["teacher": "\(teacher.identity.version)", "error": "\(error)"])
                metrics.teacherFailed(batch.count)
                held.subtract(batch.count, ordering: .relaxed)
            }
        }
        answers.finish()
    }

    /// Publishes a batch's soft labels. Transient errors are retried (the lane skips new samples meanwhile)
    /// until they succeed or the lane stops; a record refused as it is, or a permanent error, is counted
    /// and dropped: soft labels are never worth stopping the service for.
    private func publish(_ batch: [(TeacherSample, Prediction)]) async {
        guard let topic = settings.softLabelTopic, let send else { return }
        var pending: [ProducerRecord] = []
        var failed = 0
        for (sample, prediction) in batch {
            let label = SoftLabel(id: sample.id, text: sample.event.text, textPair: sample.event.textPair,
                                  labels: teacher.model.labels, teacherLogits: prediction.logits ?? [],
                                  studentLogits: sample.prediction.logits ?? [], model: sample.student,
                                  teacher: teacher.identity, source: sample.source)
            guard let value = try? JSONEncoder.results.encodedBytes(label) else {
                failed += 1
                continue
            }
            let record = ProducerRecord(topic: topic, key: sample.key, value: value)
            guard record.payloadSize <= settings.maxRecordBytes else {
                failed += 1
                continue
            }
            pending.append(record)
        }
        var published = 0
        var backoff = settings.retryBackoff
        while !pending.isEmpty {
            let collector = DeliveryCollector(count: pending.count)
            for (index, record) in pending.enumerated() {
                do {
                    try await send(record) { collector.set(index, $0) }
                } catch let error as KafkaError {
                    collector.set(index, .failure(error))
                } catch {
                    collector.set(index, .failure(KafkaError(code: 0, name: "_UNKNOWN", message: "\(error)",
                                                             operation: "sending to topic \(topic)")))
                }
            }
            var again: [ProducerRecord] = []
            var transient: KafkaError?
            var refused: (count: Int, error: KafkaError?) = (0, nil)
            for (record, report) in zip(pending, await collector.results()) {
                switch report {
                case .success:
                    published += 1
                case .failure(let error) where error.produceFailure == .transient:
                    transient = error
                    again.append(record)
                case .failure(let error):
                    refused = (refused.count + 1, error)
                }
            }
            if let error = refused.error {
                // One line per batch, not per record: a missing topic refuses every one.
                failed += refused.count
                logger.warning("soft labels refused; dropped", metadata: ["topic": "\(topic)", "records": "\(refused.count)",
                                                                          "error": "\(error)"])
            }
            pending = again
            guard let transient, !pending.isEmpty else { break }
            if stopping.isSet {
                failed += pending.count
                logger.warning("soft labels not published before shutdown", metadata: ["records": "\(pending.count)",
                                                                                      "error": "\(transient)"])
                break
            }
            logger.warning("publishing soft labels failed transiently; retrying",
                           metadata: ["records": "\(pending.count)", "retry_in": "\(backoff)", "error": "\(transient)"])
            try? await Task.sleep(for: backoff)
            backoff = min(backoff * 2, .seconds(5))
        }
        metrics.softLabels(published: published, failed: failed)
    }
}
