import CoreMetrics
import MiniRBT
import Synchronization

/// The service's metrics, through swift-metrics (the run command bootstraps a Prometheus backend).
/// Counters the service itself reads back (for logs and status heartbeats) are also kept here.
public final class PipelineMetrics: Sendable {
    private let consumedCounter = Counter(label: "minirbt_events_consumed_total")
    private let producedCounter = Counter(label: "minirbt_results_produced_total")
    private let batchSize = Recorder(label: "minirbt_batch_size", aggregate: true)
    private let inferenceTimer = Timer(label: "minirbt_inference_seconds", preferredDisplayUnit: .seconds)
    private let endToEndTimer = Timer(label: "minirbt_end_to_end_seconds", preferredDisplayUnit: .seconds)
    private let bufferedBytesGauge = Gauge(label: "minirbt_buffered_bytes")
    private let retriesCounter = Counter(label: "minirbt_publish_retries_total")
    private let shadowFailuresCounter = Counter(label: "minirbt_shadow_failures_total")
    private let totals = Mutex(Totals())
    private let precisions = Mutex<(current: [Precision: Precision], seen: Set<String>)>(([:], []))

    /// Running totals since start.
    public struct Totals: Sendable {
        public var consumed = 0
        public var produced = 0
        public var deadLettered = 0
    }

    public init() {}

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
        Counter(label: "minirbt_dead_letters_total", dimensions: [("code", code)]).increment()
        totals.withLock { $0.deadLettered += 1 }
    }

    func batch(size: Int, inference: Duration) {
        batchSize.record(size)
        inferenceTimer.recordNanoseconds(inference.nanoseconds)
    }

    func shardQueueDepth(_ shard: Int, _ depth: Int) {
        Gauge(label: "minirbt_shard_queue_depth", dimensions: [("shard", "\(shard)")]).record(depth)
    }

    func lag(topic: String, partition: Int32, _ lag: Int64) {
        Gauge(label: "minirbt_consumer_lag", dimensions: [("topic", topic), ("partition", "\(partition)")]).record(lag)
    }

    /// Drops the lag series of partitions this replica no longer owns, so dashboards do not show a stale
    /// value forever.
    func removeLag(topic: String, partition: Int32) {
        Gauge(label: "minirbt_consumer_lag", dimensions: [("topic", topic), ("partition", "\(partition)")]).destroy()
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
            Gauge(label: "minirbt_precision_info", dimensions: [("requested", "\(session.requested)"), ("served", "\(previous)")])
                .record(0)
        }
        Gauge(label: "minirbt_precision_info", dimensions: [("requested", "\(session.requested)"), ("served", "\(session.served)")])
            .record(1)
        return isNew
    }

    /// `minirbt_model_info{name, version, role} 1` for the serving model(s), 0 for the ones replaced.
    public func model(_ identity: ModelIdentity, role: String, active: Bool) {
        Gauge(label: "minirbt_model_info",
              dimensions: [("name", identity.name), ("version", identity.version), ("role", role)])
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
