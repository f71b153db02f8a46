import CoreMetrics
import MiniRBT
import Synchronization

/// The service's metrics, through swift-metrics (the run command bootstraps a Prometheus backend).
/// Counters the service itself reads back (for logs and status heartbeats) are also kept here.
public final class PipelineMetrics: Sendable {
    /// Where every metric goes: the process's bootstrapped backend unless a test passes its own.
    private let factory: any MetricsFactory
    private let consumedCounter: Counter
    private let producedCounter: Counter
    private let batchSize: Recorder
    private let inferenceTimer: Timer
    private let endToEndTimer: Timer
    private let bufferedBytesGauge: Gauge
    private let retriesCounter: Counter
    private let shadowFailuresCounter: Counter
    private let totals = Mutex(Totals())
    private let precisions = Mutex<(current: [Precision: Precision], seen: Set<String>)>(([:], []))
    private let shadowTallies = Mutex<[ShadowPair: AgreementTally]>([:])
    private let teacherTallies = Mutex<[String: AgreementTally]>([:])
    /// Live drift per serving version against its baseline (`minirbt_drift_psi`, heartbeats).
    public let drift: DriftMonitor

    /// Running totals since start.
    public struct Totals: Sendable {
        public var consumed = 0
        public var produced = 0
        public var deadLettered = 0
    }

    /// Histogram buckets for the value histograms (aggregating recorders) whose values the backend's
    /// defaults (5 … 10000) do not fit, by metric label: a backend that takes per-metric buckets (the
    /// Prometheus factory's `valueHistogramBuckets`) should be given these.
    public static let valueHistogramBuckets: [String: [Double]] = [
        "minirbt_prediction_confidence": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1],
        "minirbt_input_tokens": [8, 16, 32, 64, 96, 128, 192, 256, 384, 512],
    ]

    /// - Parameter factory: the metrics backend; nil for the one `MetricsSystem.bootstrap` installed.
    /// - Parameter drift: the window live drift is measured over.
    public init(factory: (any MetricsFactory)? = nil, drift: DriftSettings = DriftSettings()) {
        let factory = factory ?? MetricsSystem.factory
        self.factory = factory
        self.drift = DriftMonitor(settings: drift, factory: factory)
        consumedCounter = Counter(label: "minirbt_events_consumed_total", factory: factory)
        producedCounter = Counter(label: "minirbt_results_produced_total", factory: factory)
        batchSize = Recorder(label: "minirbt_batch_size", aggregate: true, factory: factory)
        inferenceTimer = Timer(label: "minirbt_inference_seconds", preferredDisplayUnit: .seconds, factory: factory)
        endToEndTimer = Timer(label: "minirbt_end_to_end_seconds", preferredDisplayUnit: .seconds, factory: factory)
        bufferedBytesGauge = Gauge(label: "minirbt_buffered_bytes", factory: factory)
        retriesCounter = Counter(label: "minirbt_publish_retries_total", factory: factory)
        shadowFailuresCounter = Counter(label: "minirbt_shadow_failures_total", factory: factory)
    }

    public var snapshot: Totals { totals.withLock { $0 } }

    func consumed() {
        consumedCounter.increment()
        totals.withLock { $0.consumed += 1 }
    }

    func produced(endToEnd: Duration?) {
        producedCounter.increment()
        if let endToEnd { endToEndTimer.recordNanoseconds(endToEnd.nanoseconds) }
        totals.withLock { $0.produced += 1 }
    }

    func deadLettered(code: DeadLetterCode) {
        Counter(label: "minirbt_dead_letters_total", dimensions: [("code", code.rawValue)], factory: factory).increment()
        totals.withLock { $0.deadLettered += 1 }
    }

    func batch(size: Int, inference: Duration) {
        batchSize.record(size)
        inferenceTimer.recordNanoseconds(inference.nanoseconds)
    }

    /// What one model predicted for a batch of events (primary, canary candidate or shadow candidate alike):
    /// `minirbt_predictions_total{version,label}`, `minirbt_prediction_confidence{version}` (the top score),
    /// `minirbt_truncated_total{version}`. `label` is the model's own label set (empty for models that give
    /// no label: token classification, embeddings), so its cardinality is bounded by the served models.
    func predictions(_ predictions: [Prediction], version: String) {
        guard !predictions.isEmpty else { return }
        var byLabel: [String: Int] = [:]
        var truncated = 0
        for prediction in predictions {
            byLabel[prediction.label ?? "", default: 0] += 1
            if prediction.truncated { truncated += 1 }
        }
        // One counter per (version, label) per batch, not per event: each handle lookup takes the backend's lock.
        for (label, count) in byLabel {
            Counter(label: "minirbt_predictions_total", dimensions: [("version", version), ("label", label)],
                    factory: factory).increment(by: count)
        }
        let scores = predictions.compactMap(\.score)
        if !scores.isEmpty {
            let confidence = Recorder(label: "minirbt_prediction_confidence", dimensions: [("version", version)],
                                      aggregate: true, factory: factory)
            for score in scores { confidence.record(Double(score)) }
        }
        let lengths = Recorder(label: "minirbt_input_tokens", dimensions: [("version", version)], aggregate: true,
                               factory: factory)
        for prediction in predictions { lengths.record(prediction.tokens) }
        Counter(label: "minirbt_tokens_total", dimensions: [("version", version)], factory: factory)
            .increment(by: predictions.reduce(0) { $0 + $1.tokens })
        // Created at 0 like the truncations, so the [UNK] share (unknown / tokens) is always defined.
        Counter(label: "minirbt_unknown_tokens_total", dimensions: [("version", version)], factory: factory)
            .increment(by: predictions.reduce(0) { $0 + $1.unknownTokens })
        let truncatedCounter = Counter(label: "minirbt_truncated_total", dimensions: [("version", version)],
                                       factory: factory)
        // Created (and exported at 0) even when nothing was truncated, so the ratio to predictions is defined.
        if truncated > 0 { truncatedCounter.increment(by: truncated) }
    }

    /// A shadow candidate and the primary it ran beside, by version.
    public struct ShadowPair: Hashable, Sendable {
        public var primary: ModelIdentity
        public var candidate: ModelIdentity
    }

    /// How often two models gave the same label on the same events, and how far apart their top scores were.
    public struct AgreementTally: Sendable, Equatable {
        public var compared = 0
        public var agreed = 0
        /// Sum of |score difference| over the compared events.
        public var scoreDifferenceSum = 0.0

        public var agreement: Double? { compared > 0 ? Double(agreed) / Double(compared) : nil }
        public var meanScoreDifference: Double { compared > 0 ? scoreDifferenceSum / Double(compared) : 0 }

        /// Compares two models' predictions of the same events, pairwise (classification only: predictions
        /// without a label on either side are not compared).
        public mutating func add(_ first: [Prediction], _ second: [Prediction]) {
            for (a, b) in zip(first, second) {
                guard let labelA = a.label, let labelB = b.label else { continue }
                compared += 1
                if labelA == labelB { agreed += 1 }
                scoreDifferenceSum += Double(abs((a.score ?? 0) - (b.score ?? 0)))
            }
        }
    }

    /// The shadow candidate's predictions against the primary's on the same events:
    /// `minirbt_shadow_compared_total{version}`, `minirbt_shadow_agreed_total{version}`,
    /// `minirbt_shadow_agreement_ratio{version}` and `minirbt_shadow_score_difference_mean{version}` (mean
    /// |top score difference|), `version` being the candidate's; the totals also go into heartbeats.
    func shadowCompared(primary: ModelIdentity, candidate: ModelIdentity, tally batch: AgreementTally) {
        guard batch.compared > 0 else { return }
        let total = shadowTallies.withLock { tallies in
            let pair = ShadowPair(primary: primary, candidate: candidate)
            tallies[pair, default: AgreementTally()].compared += batch.compared
            tallies[pair]?.agreed += batch.agreed
            tallies[pair]?.scoreDifferenceSum += batch.scoreDifferenceSum
            // Per candidate version over every primary it shadowed: what the gauges show.
            return tallies.filter { $0.key.candidate.version == candidate.version }.values.reduce(into: AgreementTally()) {
                $0.compared += $1.compared
                $0.agreed += $1.agreed
                $0.scoreDifferenceSum += $1.scoreDifferenceSum
            }
        }
        let version = [("version", candidate.version)]
        Counter(label: "minirbt_shadow_compared_total", dimensions: version, factory: factory).increment(by: batch.compared)
        let agreed = Counter(label: "minirbt_shadow_agreed_total", dimensions: version, factory: factory)
        if batch.agreed > 0 { agreed.increment(by: batch.agreed) }
        Gauge(label: "minirbt_shadow_agreement_ratio", dimensions: version, factory: factory).record(total.agreement ?? 0)
        Gauge(label: "minirbt_shadow_score_difference_mean", dimensions: version, factory: factory)
            .record(total.meanScoreDifference)
    }

    /// What this replica compared of `candidate` shadowing `primary`, since start.
    public func shadowTally(primary: ModelIdentity, candidate: ModelIdentity) -> AgreementTally {
        shadowTallies.withLock { $0[ShadowPair(primary: primary, candidate: candidate)] } ?? AgreementTally()
    }

    /// The teacher's predictions against the student's (`version`, the model that answered the events):
    /// `minirbt_teacher_compared_total{version}`, `minirbt_teacher_agreed_total{version}` and
    /// `minirbt_teacher_agreement_ratio{version}`.
    func teacherCompared(version: String, tally batch: AgreementTally) {
        guard batch.compared > 0 else { return }
        let total = teacherTallies.withLock { tallies in
            tallies[version, default: AgreementTally()].compared += batch.compared
            tallies[version]?.agreed += batch.agreed
            tallies[version]?.scoreDifferenceSum += batch.scoreDifferenceSum
            return tallies[version] ?? AgreementTally()
        }
        let dimensions = [("version", version)]
        Counter(label: "minirbt_teacher_compared_total", dimensions: dimensions, factory: factory).increment(by: batch.compared)
        let agreed = Counter(label: "minirbt_teacher_agreed_total", dimensions: dimensions, factory: factory)
        if batch.agreed > 0 { agreed.increment(by: batch.agreed) }
        Gauge(label: "minirbt_teacher_agreement_ratio", dimensions: dimensions, factory: factory).record(total.agreement ?? 0)
    }

    /// What the teacher compared of the student `version`, since start.
    public func teacherTally(version: String) -> AgreementTally {
        teacherTallies.withLock { $0[version] } ?? AgreementTally()
    }

    /// Sampled events the teacher lane could not take (its queue was full, or it was stopping):
    /// `minirbt_teacher_skipped_total`.
    func teacherSkipped(_ count: Int = 1) {
        Counter(label: "minirbt_teacher_skipped_total", factory: factory).increment(by: count)
    }

    /// Sampled events the teacher failed to answer (its forward pass threw): `minirbt_teacher_failures_total`.
    func teacherFailed(_ count: Int) {
        Counter(label: "minirbt_teacher_failures_total", factory: factory).increment(by: count)
    }

    /// Soft-label records acknowledged (`minirbt_soft_labels_published_total`) or given up on
    /// (`minirbt_soft_labels_failed_total`: a permanent error, or transient ones past the retry limit).
    func softLabels(published: Int, failed: Int) {
        Counter(label: "minirbt_soft_labels_published_total", factory: factory).increment(by: published)
        Counter(label: "minirbt_soft_labels_failed_total", factory: factory).increment(by: failed)
    }

    func shardQueueDepth(_ shard: Int, _ depth: Int) {
        Gauge(label: "minirbt_shard_queue_depth", dimensions: [("shard", "\(shard)")], factory: factory).record(depth)
    }

    func lag(topic: String, partition: Int32, _ lag: Int64) {
        Gauge(label: "minirbt_consumer_lag", dimensions: [("topic", topic), ("partition", "\(partition)")], factory: factory).record(lag)
    }

    /// Drops the lag series of partitions this replica no longer owns, so dashboards do not show a stale
    /// value forever.
    func removeLag(topic: String, partition: Int32) {
        Gauge(label: "minirbt_consumer_lag", dimensions: [("topic", topic), ("partition", "\(partition)")], factory: factory).destroy()
    }

    /// Bytes of consumed records not yet published (queued, in inference, or awaiting acknowledgement).
    func bufferedBytes(_ bytes: Int) {
        bufferedBytesGauge.record(bytes)
    }

    /// A delivery failed with a transient error and is retried.
    func publishRetried() {
        retriesCounter.increment()
    }

    /// A shadow result could not be published (it is only logged and counted; the event is not held up).
    /// The producer failed fatally and was replaced (at-least-once; see `ProducerSlot`).
    func producerReplaced() {
        Counter(label: "minirbt_producer_replacements_total", factory: factory).increment()
    }

    func shadowFailed() {
        shadowFailuresCounter.increment()
    }

    /// `minirbt_precision_info{requested, served} 1` for the precision sessions now run in (0 for one no
    /// longer served): `served` differs from `requested` where the CPU has no fast kernel for it or the
    /// load-time check against fp32 refused it.
    /// - Returns: true the first time this process prepares a session with this outcome (log it then).
    func precisionServed(_ session: SessionPrecision) -> Bool {
        let (isNew, previous) = precisions.withLock { state -> (Bool, Precision?) in
            let previous = state.current[session.requested]
            state.current[session.requested] = session.served
            let key = "\(session.requested)→\(session.served)"
            return (state.seen.insert(key).inserted, previous)
        }
        if let previous, previous != session.served {
            Gauge(label: "minirbt_precision_info", dimensions: [("requested", "\(session.requested)"), ("served", "\(previous)")], factory: factory)
                .record(0)
        }
        Gauge(label: "minirbt_precision_info", dimensions: [("requested", "\(session.requested)"), ("served", "\(session.served)")], factory: factory)
            .record(1)
        return isNew
    }

    /// `minirbt_model_info{name, version, role} 1` for the serving model(s), 0 for the ones replaced.
    public func model(_ identity: ModelIdentity, role: String, active: Bool) {
        Gauge(label: "minirbt_model_info",
              dimensions: [("name", identity.name), ("version", identity.version), ("role", role)], factory: factory)
            .record(active ? 1 : 0)
    }
}

extension Duration {
    /// Whole nanoseconds, saturating at `Int64.min`/`Int64.max` (about ±292 years): durations computed from
    /// record timestamps can be anything.
    var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        let scaled = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        if scaled.overflow { return seconds < 0 ? .min : .max }
        let total = scaled.partialValue.addingReportingOverflow(attoseconds / 1_000_000_000)
        if total.overflow { return seconds < 0 ? .min : .max }
        return total.partialValue
    }

    /// From a record's timestamp (ms since the epoch, producer-chosen, so any value) to `nowMilliseconds`:
    /// nil when there is no timestamp, it is not positive, or it lies in the future; never traps.
    static func sinceRecordTimestamp(_ timestamp: Int64?, nowMilliseconds: Int64) -> Duration? {
        guard let timestamp, timestamp > 0 else { return nil }
        let elapsed = nowMilliseconds.subtractingReportingOverflow(timestamp)
        guard !elapsed.overflow, elapsed.partialValue >= 0 else { return nil }
        return .milliseconds(elapsed.partialValue)
    }
}
