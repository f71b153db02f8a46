/// The accepted control messages of one deployment, in order: the single place where replays are caught.
///
/// Both the service (reading the topic from the beginning) and `minirbt-admin history`/`rollback` fold the
/// topic through a ledger, so they agree on what was accepted.
public struct ControlLedger: Sendable {
    public let deployment: String
    public private(set) var accepted: [ControlMessage] = []
    /// The most recent records that were not accepted, with the reason, in topic order: at most
    /// ``maximumRejections`` (anyone who can write to the topic can add rejections, so they must not
    /// accumulate without bound in a long-running replica).
    public private(set) var rejections: [ControlRejection] = []
    /// Rejections ever recorded, including those no longer kept in ``rejections``.
    public private(set) var rejectionCount = 0
    public static let maximumRejections = 100

    public init(deployment: String) {
        self.deployment = deployment
    }

    public var latest: ControlMessage? { accepted.last }
    public var lastSequence: Int64? { accepted.last?.sequence }

    /// Opens, authenticates and orders one record. Records keyed for other deployments return `nil` and
    /// are not counted as rejections (deployments share the topic); a record with no key or an unreadable
    /// one is judged by every deployment.
    ///
    /// Accepted: a valid signature by a trusted key, for this deployment, under its own key
    /// (``ControlTopics/recordKey(deployment:sequence:)``), appended within its validity window, with a
    /// sequence above every message accepted before. The ledger thus holds the highest valid sequence it
    /// has seen and never moves backwards, whatever order or copies the topic presents.
    /// - Throws: the rejection, after recording it.
    @discardableResult
    public mutating func accept(_ record: ControlRecord, verifier: ControlVerifier) throws(ControlRejection) -> ControlMessage? {
        let key = record.keyText
        if let key, ControlTopics.deployment(ofRecordKey: key) != deployment, record.key.map(Self.isValidUTF8) == true {
            return nil
        }
        do throws(ControlRejection) {
            let message = try Self.judge(record, verifier: verifier)
            guard message.deployment == deployment else {
                throw .foreignDeployment(deployment: message.deployment, key: key ?? "(none)")
            }
            if let last = lastSequence, message.sequence <= last {
                throw ControlRejection.replayed(sequence: message.sequence, lastAccepted: last)
            }
            accepted.append(message)
            if accepted.count > Self.maximumAccepted { accepted.removeFirst(accepted.count - Self.maximumAccepted) }
            return message
        } catch {
            rejectionCount += 1
            if rejections.count >= Self.maximumRejections { rejections.removeFirst(rejections.count - Self.maximumRejections + 1) }
            rejections.append(error)
            throw error
        }
    }

    /// Accepted messages kept in ``accepted`` (a replica needs only the latest; `history` reads the topic).
    public static let maximumAccepted = 1000

    /// Everything about one record that does not depend on what was accepted before: a signed, valid
    /// message under its own key, appended within its validity window.
    public static func judge(_ record: ControlRecord, verifier: ControlVerifier) throws(ControlRejection) -> ControlMessage {
        let key = record.keyText ?? "(none)"
        guard record.value != nil else { throw .tombstone(key: key) }
        let message = try verifier.open(record.value)
        let expected = ControlTopics.recordKey(deployment: message.deployment, sequence: message.sequence)
        // A message for another deployment under our key is reported as such by the caller.
        if key != expected, ControlTopics.deployment(ofRecordKey: key) == message.deployment {
            throw .misfiled(key: key, expected: expected)
        }
        if let appendedAt = record.appendedAt, let expiresAt = message.expiresAt,
           appendedAt > expiresAt || appendedAt < message.issuedAt.addingTimeInterval(-ControlMessage.clockSkewAllowance) {
            throw .expired(sequence: message.sequence, expiresAt: expiresAt, appendedAt: appendedAt)
        }
        return message
    }

    private static func isValidUTF8(_ key: [UInt8]) -> Bool {
        String(validating: key, as: UTF8.self) != nil
    }

    /// What `rollback` deploys: during a canary or shadow, the primary (the trial is abandoned); otherwise
    /// the primary that served before the latest message.
    public func rollbackTarget() throws(ControlRejection) -> ModelReference {
        guard let latest else { throw .notApplicable(reason: "deployment \(deployment) has no accepted control message") }
        if latest.desired.candidate != nil, let primary = latest.desired.primary { return primary }
        guard let previous = latest.previous else {
            throw .notApplicable(reason: "deployment \(deployment) has no previously active version to roll back to")
        }
        return previous
    }

    /// What `promote` makes the primary: the current canary or shadow candidate.
    public func promoteTarget() throws(ControlRejection) -> ModelReference {
        guard let candidate = currentCandidate else {
            throw .notApplicable(reason: "deployment \(deployment) has no canary or shadow candidate to promote")
        }
        return candidate
    }

    /// The primary serving after the latest message (for canary/shadow: the one beside the candidate).
    public var currentPrimary: ModelReference? { latest?.desired.primary }

    /// The candidate under canary or shadow, for `promote`.
    public var currentCandidate: ModelReference? { latest?.desired.candidate }
}
