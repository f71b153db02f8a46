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

    /// Opens, authenticates and orders one record value. Records of other deployments return `nil` and are
    /// not counted as rejections (deployments share the topic).
    /// - Throws: the rejection, after recording it.
    @discardableResult
    public mutating func accept(recordValue value: [UInt8]?, verifier: ControlVerifier) throws(ControlRejection) -> ControlMessage? {
        do throws(ControlRejection) {
            let message = try verifier.open(value)
            guard message.deployment == deployment else { return nil }
            if let last = lastSequence, message.sequence <= last {
                throw ControlRejection.replayed(sequence: message.sequence, lastAccepted: last)
            }
            accepted.append(message)
            return message
        } catch {
            rejectionCount += 1
            if rejections.count >= Self.maximumRejections { rejections.removeFirst(rejections.count - Self.maximumRejections + 1) }
            rejections.append(error)
            throw error
        }
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
