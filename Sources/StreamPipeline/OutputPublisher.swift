import Foundation
import Kafka
import Logging
import Synchronization

/// Why a publisher stopped before its shard's outputs were all published.
enum PublishingFailure: Error, CustomStringConvertible {
    /// No record can be published to `topic` (missing, not authorised, the producer failed fatally):
    /// the service must stop.
    case stopped(KafkaError, topic: String)
    /// The shutdown's drain deadline passed while deliveries were still being retried; the events stay
    /// uncommitted for the next owner.
    case abandoned

    var description: String {
        switch self {
        case .stopped(let error, let topic): "cannot publish to topic \(topic): \(error)"
        case .abandoned: "publishing abandoned at the drain deadline"
        }
    }
}

/// One shard's publisher: turns the shard's outputs into exactly one record each, on the output topic or
/// the dead-letter topic, and settles every event (acknowledges its offset) once the broker confirmed it.
///
/// - A result that cannot be published as it is (its JSON cannot be encoded, it is larger than a record
///   may be, or the broker rejects it) becomes a dead letter.
/// - A dead letter always fits: when the whole original value would make it too large, it keeps only the
///   value's first bytes and says so (`value_truncated`, `value_size`, `value_sha256`).
/// - Transient errors (timeouts, transport, leader changes, `_MSG_TIMED_OUT`) are retried without limit,
///   with backoff, and never turn into dead letters; meanwhile `isRetrying` is true (readiness fails).
/// - A permanent error (topic missing, not authorised) throws ``PublishingFailure/stopped(_:topic:)``.
///
/// Each batch of outputs is enqueued at once and settled before the next, so a failed delivery is retried
/// (or replaced) before later events of the shard are published: no permanent commit gap.
final class OutputPublisher: Sendable {
    typealias Send = @Sendable (ProducerRecord, @escaping KafkaProducer.DeliveryHandler) async throws -> Void

    struct Settings: Sendable {
        var outputTopic: String
        var deadLetterTopic: String
        var shadowTopic: String
        var versionHeader: String
        /// The largest record (key, value and headers) to produce: the producer's `message.max.bytes` minus
        /// framing.
        var maxRecordBytes: Int
        var retryBackoff = Duration.milliseconds(100)
        var maxRetryBackoff = Duration.seconds(5)
    }

    static let errorHeader = "minirbt-error"
    /// Below this a dead letter is not shrunk further: the record must be refused for another reason.
    static let smallestDeadLetter = 2048

    private let settings: Settings
    private let send: Send
    private let book: OffsetBook
    private let metrics: PipelineMetrics
    private let logger: Logger
    private let release: @Sendable (Int) -> Void
    private let abandoned: @Sendable () -> Bool
    /// Exactly-once: the transactions every batch is published in.
    private let transactions: TransactionCoordinator?
    /// At-least-once: replaces a producer that failed fatally, so its records are sent again, not given up.
    private let producers: ProducerSlot?
    /// Exactly-once: records the broker refused as they were (too large for the topic), by source event, so
    /// that when the aborted transaction's events are redone they go out as their replacement at once.
    private let refused = Mutex<[SourceKey: [KafkaError]]>([:])
    /// When the publisher last made progress (a delivery round finished, even a failed one).
    let lastProgress = Mutex(ContinuousClock.now)
    /// The transient error being retried, if any.
    let retrying = Mutex<KafkaError?>(nil)
    /// Set when the publisher's loop has ended.
    let finished = Atomic<Bool>(false)

    init(settings: Settings, send: @escaping Send, book: OffsetBook, metrics: PipelineMetrics, logger: Logger,
         release: @escaping @Sendable (Int) -> Void = { _ in }, abandoned: @escaping @Sendable () -> Bool = { false },
         transactions: TransactionCoordinator? = nil, producers: ProducerSlot? = nil) {
        self.settings = settings
        self.send = send
        self.book = book
        self.metrics = metrics
        self.logger = logger
        self.release = release
        self.abandoned = abandoned
        self.transactions = transactions
        self.producers = producers
    }

    private struct Publication {
        let output: ShardOutput
        var record: ProducerRecord
        /// Nil for a result; the dead letter (whole, before any truncation) otherwise.
        var letter: DeadLetter?
        var limit: Int
    }

    /// Publishes one batch of outputs; returns once every one is acknowledged.
    func publish(_ outputs: [ShardOutput]) async throws(PublishingFailure) {
        if let transactions {
            try await publishTransactionally(outputs, in: transactions)
            return
        }
        var pending = outputs.map(prepare)
        for output in outputs { await publishShadow(output) }
        var backoff = settings.retryBackoff
        while !pending.isEmpty {
            let producerGeneration = producers?.generation ?? 0
            let reports = await deliver(pending.map(\.record))
            lastProgress.withLock { $0 = .now }
            var again: [Publication] = []
            var transient: KafkaError?
            for (publication, report) in zip(pending, reports) {
                switch report {
                case .success:
                    settle(publication)
                case .failure(let error):
                    switch error.produceFailure {
                    case .transient:
                        transient = error
                        again.append(publication)
                    case .recordRejected:
                        guard let replacement = replacement(for: publication, after: error) else {
                            throw PublishingFailure.stopped(error, topic: publication.record.topic)
                        }
                        again.append(replacement)
                    case .permanent:
                        guard let producers, await producers.renew(after: producerGeneration, error: error) else {
                            throw PublishingFailure.stopped(error, topic: publication.record.topic)
                        }
                        transient = error
                        again.append(publication)
                    }
                }
            }
            pending = again
            guard let transient, !pending.isEmpty else { continue }
            retrying.withLock { $0 = transient }
            metrics.publishRetried()
            logger.warning("publishing failed transiently; retrying (the service reports not ready meanwhile)",
                           metadata: ["records": "\(pending.count)", "retry_in": "\(backoff)", "error": "\(transient)"])
            if abandoned() { throw PublishingFailure.abandoned }
            try? await Task.sleep(for: backoff)
            if abandoned() { throw PublishingFailure.abandoned }
            backoff = min(backoff * 2, settings.maxRetryBackoff)
        }
        retrying.withLock { $0 = nil }
    }

    /// Exactly-once: publishes the batch under one lease of the open transaction. Outputs whose partition was
    /// rewound or given up since their event was consumed are dropped (the event is redone, or belongs to
    /// another member now). A record refused as it is gets its replacement within the same transaction; any
    /// other failure dooms the transaction: the batch is dropped and the coordinator aborts and rewinds.
    private func publishTransactionally(_ outputs: [ShardOutput], in transactions: TransactionCoordinator)
        async throws(PublishingFailure) {
        let lease: TransactionCoordinator.Lease
        do {
            lease = try await transactions.acquire()
        } catch {
            drop(outputs)
            throw PublishingFailure.stopped(error.error, topic: settings.outputTopic)
        }
        let current = outputs.filter { book.isCurrent($0.record.topicPartition, generation: $0.generation) }
        if current.count < outputs.count {
            drop(outputs.filter { !book.isCurrent($0.record.topicPartition, generation: $0.generation) })
        }
        guard !current.isEmpty else {
            await transactions.release(lease, produced: false)
            return
        }
        for output in current { await publishShadow(output) }
        var pending = current.map(preparePreviouslyRefused)
        var failure: KafkaError?
        while !pending.isEmpty, failure == nil {
            let reports = await deliverReporting(pending.map(\.record))
            lastProgress.withLock { $0 = .now }
            var again: [Publication] = []
            for (publication, report) in zip(pending, reports) {
                switch report.result {
                case .success:
                    refused.withLock { _ = $0.removeValue(forKey: SourceKey(publication.output.record)) }
                    settle(publication)
                case .failure where failure != nil:
                    drop([publication.output])
                case .failure(let error):
                    if error.produceFailure == .recordRejected, error.transactionReaction != .fatal,
                       let replacement = replacement(for: publication, after: error) {
                        if report.local {
                            // Refused before it was queued: the transaction is unharmed.
                            again.append(replacement)
                            continue
                        }
                        // The broker refused it: the transaction must abort, and the redo sends the replacement.
                        refused.withLock { $0[SourceKey(publication.output.record), default: []].append(error) }
                    }
                    failure = error
                    drop([publication.output])
                }
            }
            if failure != nil { drop(again.map(\.output)) } else { pending = again }
        }
        await transactions.release(lease, produced: true, failure: failure)
        if let failure, failure.produceFailure == .permanent, failure.transactionReaction != .fatal {
            throw PublishingFailure.stopped(failure, topic: pending.first?.record.topic ?? settings.outputTopic)
        }
    }

    /// The publication of `output`, replaced as often as the broker refused it in aborted transactions.
    private func preparePreviouslyRefused(_ output: ShardOutput) -> Publication {
        var publication = prepare(output)
        let errors = refused.withLock { $0[SourceKey(output.record)] } ?? []
        for error in errors {
            guard let replaced = replacement(for: publication, after: error) else { break }
            publication = replaced
        }
        return publication
    }

    /// Outputs that will not be published: their events stay uncommitted and are redone.
    private func drop(_ outputs: [ShardOutput]) {
        guard !outputs.isEmpty else { return }
        release(outputs.reduce(0) { $0 + $1.size })
    }

    /// Enqueues every record, then waits for all their delivery reports (an enqueue error is the report).
    private func deliver(_ records: [ProducerRecord]) async -> [Result<DeliveryReport, KafkaError>] {
        await deliverReporting(records).map(\.result)
    }

    /// The same, telling which failures happened before the record was queued (`local`).
    private func deliverReporting(_ records: [ProducerRecord]) async -> [(result: Result<DeliveryReport, KafkaError>, local: Bool)] {
        let collector = DeliveryCollector(count: records.count)
        var local = Set<Int>()
        for (index, record) in records.enumerated() {
            do {
                try await send(record) { collector.set(index, $0) }
            } catch let error as KafkaError {
                local.insert(index)
                collector.set(index, .failure(error))
            } catch {
                local.insert(index)
                collector.set(index, .failure(KafkaError(code: 0, name: "_UNKNOWN", message: "\(error)",
                                                         operation: "sending to topic \(record.topic)")))
            }
        }
        return await collector.results().enumerated().map { (result: $0.element, local: local.contains($0.offset)) }
    }

    private func settle(_ publication: Publication) {
        let record = publication.output.record
        if let letter = publication.letter {
            metrics.deadLettered(code: letter.error.code)
        } else {
            let now = Int64(Date().timeIntervalSince1970 * 1000)
            metrics.produced(endToEnd: .sinceRecordTimestamp(record.timestampMilliseconds, nowMilliseconds: now))
        }
        book.acknowledge(record.topicPartition, offset: record.offset, generation: publication.output.generation)
        release(publication.output.size)
    }

    // MARK: Building records

    private func prepare(_ output: ShardOutput) -> Publication {
        let source = output.record
        switch output.outcome {
        case .result(let result):
            let value: [UInt8]
            do {
                value = try JSONEncoder.results.encodedBytes(result)
            } catch {
                return deadLetter(output, code: .unencodableResult,
                                  message: "the result could not be encoded as JSON (\(error)); the event is kept here instead")
            }
            // A producer-supplied error header must not pass into a result.
            var headers = source.headers.filter { $0.name != settings.versionHeader && $0.name != Self.errorHeader }
            headers.append(KafkaHeader(name: settings.versionHeader, value: result.model.version))
            let record = ProducerRecord(topic: settings.outputTopic, key: source.key, value: value, headers: headers)
            guard record.payloadSize <= settings.maxRecordBytes else {
                return deadLetter(output, code: .resultTooLarge,
                                  message: "the result is \(record.payloadSize) bytes with the input's key and headers, more than the \(settings.maxRecordBytes) a record may have (message.max.bytes)")
            }
            return Publication(output: output, record: record, letter: nil, limit: settings.maxRecordBytes)
        case .deadLetter(let letter):
            return Publication(output: output,
                               record: Self.fittingDeadLetter(letter, of: source, topic: settings.deadLetterTopic,
                                                              limit: settings.maxRecordBytes,
                                                              versionHeader: settings.versionHeader),
                               letter: letter, limit: settings.maxRecordBytes)
        }
    }

    private func deadLetter(_ output: ShardOutput, code: DeadLetterCode, message: String) -> Publication {
        let source = output.record
        let letter = DeadLetter(code: code, message: message,
                                source: SourceCoordinates(topic: source.topic, partition: source.partition,
                                                          offset: source.offset, timestamp: source.timestampMilliseconds),
                                originalValue: source.value ?? [])
        return Publication(output: output,
                           record: Self.fittingDeadLetter(letter, of: source, topic: settings.deadLetterTopic,
                                                          limit: settings.maxRecordBytes,
                                                          versionHeader: settings.versionHeader),
                           letter: letter, limit: settings.maxRecordBytes)
    }

    /// What to send instead of a record the broker or client refused as it is: a result becomes a dead
    /// letter, a dead letter a smaller one; nil when even the smallest dead letter was refused.
    private func replacement(for publication: Publication, after error: KafkaError) -> Publication? {
        let source = publication.output.record
        guard let letter = publication.letter else {
            logger.warning("the output topic refused a result; dead-lettering the event",
                           metadata: ["source": "\(source.topicPartition)@\(source.offset)", "error": "\(error)"])
            var replaced = deadLetter(publication.output, code: .publishFailed,
                                      message: "the result could not be published: \(error)")
            if error.isMessageTooLarge, let whole = replaced.letter {
                replaced.limit = min(replaced.limit, max(Self.smallestDeadLetter, publication.record.payloadSize / 2))
                replaced.record = Self.fittingDeadLetter(whole, of: source, topic: settings.deadLetterTopic,
                                                         limit: replaced.limit, versionHeader: settings.versionHeader)
            }
            return replaced
        }
        guard publication.limit > Self.smallestDeadLetter else { return nil }
        let limit = max(Self.smallestDeadLetter, min(publication.limit, publication.record.payloadSize) / 2)
        logger.warning("the dead-letter topic refused a dead letter; sending a smaller one",
                       metadata: ["source": "\(source.topicPartition)@\(source.offset)", "bytes": "\(limit)",
                                  "error": "\(error)"])
        var smaller = publication
        smaller.limit = limit
        smaller.record = Self.fittingDeadLetter(letter, of: source, topic: settings.deadLetterTopic, limit: limit,
                                                versionHeader: settings.versionHeader)
        return smaller
    }

    /// The dead-letter record for `letter`, at most `limit` bytes (key, value and headers): whole when it
    /// fits; otherwise keeping the longest prefix of the original value that fits, then without the input's
    /// headers, then without its key (the source coordinates still identify the event).
    static func fittingDeadLetter(_ letter: DeadLetter, of source: ConsumerRecord, topic: String, limit: Int,
                                  versionHeader: String) -> ProducerRecord {
        var headers = source.headers.filter { $0.name != errorHeader && $0.name != versionHeader }
        let errorHeaderValue = KafkaHeader(name: errorHeader, value: letter.error.code.rawValue)
        var key = source.key
        func record(_ letter: DeadLetter) -> ProducerRecord {
            let value = (try? JSONEncoder.results.encodedBytes(letter)) ?? Array(letter.error.message.utf8)
            return ProducerRecord(topic: topic, key: key, value: value, headers: headers + [errorHeaderValue])
        }
        var letter = letter
        if letter.error.message.utf8.count > 4096 {
            letter.error.message = String(decoding: letter.error.message.utf8.prefix(4096), as: UTF8.self) + "…"
        }
        let whole = record(letter)
        if whole.payloadSize <= limit { return whole }

        let original = source.value ?? []
        var notes: [String] = []
        func shortened(keeping count: Int) -> DeadLetter {
            var copy = letter
            let kept = min(count, original.count)
            var all = ["shortened to fit one record: the value's text form is left out"]
            if kept < original.count {
                all.append("value_base64 holds the first \(kept) of \(original.count) bytes (value_sha256 is of all of them)")
            }
            copy.error.message += " (" + (all + notes).joined(separator: "; ") + ")"
            return copy.truncated(keeping: count, of: original)
        }
        var empty = record(shortened(keeping: 0))
        if empty.payloadSize > limit {
            headers = []
            notes.append("the input's headers are left out")
            empty = record(shortened(keeping: 0))
        }
        if empty.payloadSize > limit {
            key = nil
            notes.append("the input's key is left out")
            empty = record(shortened(keeping: 0))
        }
        // base64 spends 4 characters on 3 bytes.
        var keep = max(0, limit - empty.payloadSize - 8) / 4 * 3
        while true {
            let candidate = record(shortened(keeping: keep))
            if candidate.payloadSize <= limit || keep == 0 { return candidate }
            keep /= 2
        }
    }

    // MARK: Shadow results

    /// The candidate's result in shadow mode: best effort, never holds the event up.
    private func publishShadow(_ output: ShardOutput) async {
        guard let shadow = output.shadow else { return }
        let metrics = metrics
        let logger = logger
        do {
            let record = ProducerRecord(topic: settings.shadowTopic, key: output.record.key,
                                        value: try JSONEncoder.results.encodedBytes(shadow),
                                        headers: [KafkaHeader(name: settings.versionHeader, value: shadow.model.version)])
            guard record.payloadSize <= settings.maxRecordBytes else {
                metrics.shadowFailed()
                return
            }
            try await send(record) { result in
                if case .failure(let error) = result {
                    metrics.shadowFailed()
                    logger.warning("shadow result not published", metadata: ["error": "\(error)"])
                }
            }
        } catch {
            metrics.shadowFailed()
            logger.warning("shadow result not published", metadata: ["error": "\(error)"])
        }
    }
}

/// Collects the delivery reports of one batch, from the producer's poll thread, for one waiting task.
final class DeliveryCollector: Sendable {
    private struct State {
        var results: [Result<DeliveryReport, KafkaError>?]
        var remaining: Int
        var waiter: CheckedContinuation<Void, Never>?
    }

    private let state: Mutex<State>

    init(count: Int) {
        state = Mutex(State(results: Array(repeating: nil, count: count), remaining: count))
    }

    func set(_ index: Int, _ result: Result<DeliveryReport, KafkaError>) {
        let waiter: CheckedContinuation<Void, Never>? = state.withLock { state in
            guard state.results.indices.contains(index) else { return nil }
            if case .some = state.results[index] { return nil }
            state.results[index] = result
            state.remaining -= 1
            guard state.remaining == 0 else { return nil }
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume()
    }

    func results() async -> [Result<DeliveryReport, KafkaError>] {
        await withCheckedContinuation { continuation in
            let done = state.withLock { state in
                if state.remaining == 0 { return true }
                state.waiter = continuation
                return false
            }
            if done { continuation.resume() }
        }
        return state.withLock { state in
            state.results.map { $0 ?? .failure(KafkaError(code: 0, name: "_UNKNOWN", message: "no delivery report",
                                                          operation: "publishing")) }
        }
    }
}

/// An event's source coordinates.
struct SourceKey: Hashable, Sendable {
    let partition: TopicPartition
    let offset: Int64

    init(_ record: ConsumerRecord) {
        partition = record.topicPartition
        offset = record.offset
    }
}

/// A one-way flag shared by reference.
final class AtomicFlag: Sendable {
    private let value = Atomic<Bool>(false)

    var isSet: Bool { value.load(ordering: .acquiring) }

    func set() { value.store(true, ordering: .releasing) }
}
