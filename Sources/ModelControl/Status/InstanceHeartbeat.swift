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
    public var assignedPartitions: [String]
    public var eventsPerSecond: Double
    public var lag: Int64?
    /// How often this instance sends heartbeats; readers call it dead after three silent intervals.
    public var intervalMs: Int
    public var at: Date
    /// Live drift of each serving version against its baseline (nil from instances that predate it).
    public var drift: [VersionDrift]?

    public init(instance: String, deployment: String, active: ModelReference? = nil, candidate: ModelReference? = nil,
                mode: String = "single", canaryPercent: Int? = nil, loading: ModelReference? = nil,
                lastError: String? = nil, failedVersion: ModelReference? = nil, appliedSequence: Int64? = nil,
                failedSequence: Int64? = nil, rejectedRecord: String? = nil, assignedPartitions: [String] = [], eventsPerSecond: Double = 0,
                lag: Int64? = nil, intervalMs: Int, at: Date, drift: [VersionDrift]? = nil) {
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
        self.drift = drift
    }

    enum CodingKeys: String, CodingKey {
        case instance, deployment, active, candidate, mode, loading, lag, at, drift
        case canaryPercent = "canary_percent"
        case lastError = "last_error"
        case failedVersion = "failed_version"
        case appliedSequence = "applied_sequence"
        case failedSequence = "failed_sequence"
        case rejectedRecord = "rejected_record"
        case assignedPartitions = "assigned_partitions"
        case eventsPerSecond = "events_per_second"
        case intervalMs = "interval_ms"
    }

    /// Seen within three heartbeat intervals of `now`.
    public func isLive(at now: Date) -> Bool {
        now.timeIntervalSince(at) <= 3 * Double(max(intervalMs, 1)) / 1000
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
