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

    func deadLettered(code: String) {
        Counter(label: "minirbt_dead_letters_total", dimensions: [("code", code)], factory: factory).increment()
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
