import Foundation

/// What one `minirbt-stream` instance reports on the status topic (key = instance id), every few seconds
/// and on every change.
public struct InstanceHeartbeat: Codable, Sendable, Equatable {
    public var instance: String
    public var deployment: String
    public var active: ModelReference?
    public var candidate: ModelReference?
    /// `single`, `canary` or `shadow`.
    public var mode: String
    public var canaryPercent: Int?
    /// The version being loaded and verified, if any.
    public var loading: ModelReference?
    public var lastError: String?
    /// The version whose load or verification failed last, with `lastError` saying why.
    public var failedVersion: ModelReference?
    /// Sequence of the last control message applied, and of the last one that failed to apply.
    public var appliedSequence: Int64?
    public var failedSequence: Int64?
    /// `controlRecordDigest` of the last control record for this deployment that was rejected (failed
    /// authentication or ordering), with `lastError` saying why; lets `--wait` fail fast on a wrong key.
    public var rejectedRecord: String?
    /// The control records of this deployment the instance rejected, oldest first (at most
    /// ``RejectedControlRecord/maximumReported``), and how many it rejected since it started: `history`
    /// reads each replica's verdict from them. Absent in heartbeats of older instances.
    public var rejectedRecords: [RejectedControlRecord]?
    public var rejectedCount: Int?
    public var assignedPartitions: [String]
    public var eventsPerSecond: Double
    public var lag: Int64?
    /// How often this instance sends heartbeats; readers call it dead after three silent intervals.
    public var intervalMs: Int
    public var at: Date
    /// In shadow mode: how often the candidate agreed with the primary on this instance since it started
    /// shadowing (absent otherwise, and from instances that predate it).
    public var shadow: ShadowComparison?
    /// Live drift of each serving version against its baseline (nil from instances that predate it).
    public var drift: [VersionDrift]?

    public init(instance: String, deployment: String, active: ModelReference? = nil, candidate: ModelReference? = nil,
                mode: String = "single", canaryPercent: Int? = nil, loading: ModelReference? = nil,
                lastError: String? = nil, failedVersion: ModelReference? = nil, appliedSequence: Int64? = nil,
                failedSequence: Int64? = nil, rejectedRecord: String? = nil, assignedPartitions: [String] = [], eventsPerSecond: Double = 0,
                lag: Int64? = nil, intervalMs: Int, at: Date, shadow: ShadowComparison? = nil, drift: [VersionDrift]? = nil) {
        self.instance = instance
        self.deployment = deployment
        self.active = active
        self.candidate = candidate
        self.mode = mode
        self.canaryPercent = canaryPercent
        self.loading = loading
        self.lastError = lastError
        self.failedVersion = failedVersion
        self.appliedSequence = appliedSequence
        self.failedSequence = failedSequence
        self.rejectedRecord = rejectedRecord
        self.assignedPartitions = assignedPartitions
        self.eventsPerSecond = eventsPerSecond
        self.lag = lag
        self.intervalMs = intervalMs
        self.at = at
        self.shadow = shadow
        self.drift = drift
    }

    enum CodingKeys: String, CodingKey {
        case instance, deployment, active, candidate, mode, loading, lag, at, shadow, drift
        case canaryPercent = "canary_percent"
        case lastError = "last_error"
        case failedVersion = "failed_version"
        case appliedSequence = "applied_sequence"
        case failedSequence = "failed_sequence"
        case rejectedRecord = "rejected_record"
        case rejectedRecords = "rejected_records"
        case rejectedCount = "rejected_count"
        case assignedPartitions = "assigned_partitions"
        case eventsPerSecond = "events_per_second"
        case intervalMs = "interval_ms"
    }

    /// Seen within three heartbeat intervals of `now`.
    public func isLive(at now: Date) -> Bool {
        now.timeIntervalSince(at) <= 3 * Double(max(intervalMs, 1)) / 1000
    }
}

/// A control record an instance rejected, as its heartbeat reports it.
public struct RejectedControlRecord: Codable, Sendable, Equatable {
    /// The record's offset in the (single-partition) control topic.
    public var offset: Int64?
    public var key: String?
    /// ``controlRecordDigest(_:)`` of the value; `nil` for a tombstone.
    public var record: String?
    /// ``ControlRejection/kind``.
    public var kind: String
    public var reason: String

    /// How many a heartbeat carries: the newest, enough for `history` to see every rejection of a rollout.
    public static let maximumReported = 20

    public init(offset: Int64?, key: String?, record: String?, kind: String, reason: String) {
        self.offset = offset
        self.key = key
        self.record = record
        self.kind = kind
        self.reason = reason
    }
}

/// A shadow candidate's results compared with the primary's on the same events: the share with the same
/// label and the mean absolute difference of the top scores.
public struct ShadowComparison: Codable, Sendable, Equatable {
    /// The candidate compared (its primary is the heartbeat's `active`).
    public var candidate: ModelReference
    /// Events both models answered.
    public var compared: Int
    /// Of those, events where both gave the same label.
    public var agreed: Int
    /// Mean over the compared events of |candidate's top score − primary's top score|.
    public var meanScoreDifference: Double

    public init(candidate: ModelReference, compared: Int, agreed: Int, meanScoreDifference: Double) {
        self.candidate = candidate
        self.compared = compared
        self.agreed = agreed
        self.meanScoreDifference = meanScoreDifference
    }

    /// `agreed / compared`, nil before any comparison.
    public var agreement: Double? { compared > 0 ? Double(agreed) / Double(compared) : nil }

    enum CodingKeys: String, CodingKey {
        case candidate, compared, agreed
        case meanScoreDifference = "mean_score_difference"
    }

    /// Several replicas' comparisons of `candidate` as one, weighted by their compared events; nil when
    /// none compared any event of it.
    public static func aggregate(_ comparisons: [ShadowComparison], of candidate: ModelReference) -> ShadowComparison? {
        let relevant = comparisons.filter { $0.candidate == candidate && $0.compared > 0 }
        let compared = relevant.reduce(0) { $0 + $1.compared }
        guard compared > 0 else { return nil }
        let difference = relevant.reduce(0.0) { $0 + $1.meanScoreDifference * Double($1.compared) } / Double(compared)
        return ShadowComparison(candidate: candidate, compared: compared, agreed: relevant.reduce(0) { $0 + $1.agreed },
                                meanScoreDifference: difference)
    }
}

/// The latest heartbeat of every instance, as read from the status topic.
public struct FleetStatus: Sendable {
    public private(set) var latest: [String: InstanceHeartbeat] = [:]

    public init() {}

    /// Keeps the newer of the stored and the given heartbeat of its instance.
    public mutating func record(_ heartbeat: InstanceHeartbeat) {
        if let known = latest[heartbeat.instance], known.at > heartbeat.at { return }
        latest[heartbeat.instance] = heartbeat
    }

    /// Live instances of `deployment` (all deployments when `nil`), by instance id.
    public func live(at now: Date, deployment: String? = nil) -> [InstanceHeartbeat] {
        latest.values
            .filter { $0.isLive(at: now) && (deployment == nil || $0.deployment == deployment) }
            .sorted { $0.instance < $1.instance }
    }
}
