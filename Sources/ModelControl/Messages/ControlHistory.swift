import Foundation

/// The audit trail of one deployment: every record of the control topic that concerns it, whether it was
/// accepted (folded through a ``ControlLedger``, exactly as replicas fold it) and what each replica did
/// with it, as its status heartbeats tell. What `minirbt-admin history` prints.
public enum ControlHistory {
    /// One control record of the deployment.
    public struct Entry: Codable, Sendable, Equatable {
        public var offset: Int64?
        /// The record's timestamp (see ``ControlRecord/appendedAt``).
        public var appendedAt: Date?
        public var key: String?
        /// ``controlRecordDigest(_:)`` of the value; `nil` for a tombstone.
        public var record: String?
        public var accepted: Bool
        /// Why the ledger rejected it.
        public var reason: String?
        /// The signed message, when the record carries one with a trusted signature (also for records
        /// rejected as replayed, expired, misfiled or foreign).
        public var message: ControlMessage?
        /// Each replica's outcome, by instance id.
        public var replicas: [ReplicaOutcome]

        public init(offset: Int64?, appendedAt: Date?, key: String?, record: String?, accepted: Bool, reason: String?,
                    message: ControlMessage?, replicas: [ReplicaOutcome]) {
            self.offset = offset
            self.appendedAt = appendedAt
            self.key = key
            self.record = record
            self.accepted = accepted
            self.reason = reason
            self.message = message
            self.replicas = replicas
        }

        enum CodingKeys: String, CodingKey {
            case offset, key, record, accepted, reason, message, replicas
            case appendedAt = "appended_at"
        }
    }

    /// What one replica did with one record.
    public struct ReplicaOutcome: Codable, Sendable, Equatable {
        public enum Outcome: String, Codable, Sendable {
            /// It served what the message asks for.
            case applied
            /// It failed to load the version (``reason`` says why) and kept serving what it had.
            case failed
            /// It rejected the record (``reason`` says why).
            case rejected
            /// It went on to a later message without reporting this one (e.g. it started afterwards).
            case superseded
            /// No heartbeat mentions it (yet).
            case unreported
        }

        public var instance: String
        public var outcome: Outcome
        public var reason: String?

        public init(instance: String, outcome: Outcome, reason: String? = nil) {
            self.instance = instance
            self.outcome = outcome
            self.reason = reason
        }
    }

    /// The entries of `deployment`, in topic order.
    /// - Parameters:
    ///   - records: the control topic from the beginning.
    ///   - heartbeats: the status topic from the beginning (every heartbeat still there, in any order).
    public static func entries(deployment: String, records: [ControlRecord], heartbeats: [InstanceHeartbeat],
                               verifier: ControlVerifier) -> [Entry] {
        let replicas = Dictionary(grouping: heartbeats.filter { $0.deployment == deployment }, by: \.instance)
            .mapValues(ReplicaReports.init)
            .sorted { $0.key < $1.key }
        var ledger = ControlLedger(deployment: deployment)
        var entries: [Entry] = []
        for record in records {
            let verdict: Result<ControlMessage, ControlRejection>
            do {
                guard let message = try ledger.accept(record, verifier: verifier) else { continue }
                verdict = .success(message)
            } catch {
                verdict = .failure(error)
            }
            let message: ControlMessage?, rejection: ControlRejection?
            switch verdict {
            case .success(let accepted):
                (message, rejection) = (accepted, nil)
            case .failure(let error):
                (message, rejection) = (try? verifier.open(record.value), error)
            }
            let accepted = rejection == nil
            let outcomes = replicas.map { instance, reports in
                reports.outcome(of: record, message: message, accepted: accepted, instance: instance)
            }
            entries.append(Entry(offset: record.offset, appendedAt: record.appendedAt, key: record.keyText,
                                 record: record.digest, accepted: accepted,
                                 reason: rejection?.description,
                                 message: message, replicas: outcomes))
        }
        return entries
    }

    /// What one instance's heartbeats say about control messages.
    private struct ReplicaReports {
        var applied: Set<Int64> = []
        var failed: [Int64: String?] = [:]
        var rejected: [Int64: String] = [:]
        var rejectedDigests: [String: String] = [:]
        var highestApplied: Int64?

        init(_ heartbeats: [InstanceHeartbeat]) {
            for heartbeat in heartbeats.sorted(by: { $0.at < $1.at }) {
                if let sequence = heartbeat.appliedSequence {
                    applied.insert(sequence)
                    highestApplied = max(highestApplied ?? sequence, sequence)
                }
                if let sequence = heartbeat.failedSequence {
                    // Later heartbeats may have cleared last_error; the first reason stands.
                    failed[sequence] = failed[sequence] ?? heartbeat.lastError
                }
                if let rejections = heartbeat.rejectedRecords {
                    for rejection in rejections {
                        // By offset: a replayed copy has its original's digest but not its offset.
                        if let offset = rejection.offset {
                            rejected[offset] = rejection.reason
                        } else if let digest = rejection.record {
                            rejectedDigests[digest] = rejection.reason
                        }
                    }
                } else if let digest = heartbeat.rejectedRecord {
                    // Instances older than rejected_records name their last rejection only.
                    rejectedDigests[digest] = heartbeat.lastError ?? "no reason reported"
                }
            }
        }

        func outcome(of record: ControlRecord, message: ControlMessage?, accepted: Bool, instance: String) -> ReplicaOutcome {
            if let reason = record.offset.flatMap({ rejected[$0] }) ?? record.digest.flatMap({ rejectedDigests[$0] }) {
                return ReplicaOutcome(instance: instance, outcome: .rejected, reason: reason)
            }
            // Sequences identify only accepted messages: a replayed copy shares its original's sequence.
            guard accepted, let sequence = message?.sequence else {
                return ReplicaOutcome(instance: instance, outcome: .unreported)
            }
            if let reason = failed[sequence] {
                return ReplicaOutcome(instance: instance, outcome: .failed, reason: reason ?? "no reason reported")
            }
            if applied.contains(sequence) { return ReplicaOutcome(instance: instance, outcome: .applied) }
            if let highestApplied, highestApplied > sequence { return ReplicaOutcome(instance: instance, outcome: .superseded) }
            return ReplicaOutcome(instance: instance, outcome: .unreported)
        }
    }
}
