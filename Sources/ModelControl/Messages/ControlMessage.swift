import Foundation

/// What a control message asks the fleet to do.
public enum RolloutAction: String, Codable, Sendable, CaseIterable {
    /// Serve `name/version` alone.
    case deploy
    /// Serve `name/version` beside the primary for a stable share of keys.
    case canary
    /// Run `name/version` on every event beside the primary; its results go to the shadow topic only.
    case shadow
    /// The candidate becomes the only serving model (the message names it).
    case promote
    /// Serve the previously active version again (the message names it).
    case rollback
}

/// How the serving models split the events during a rollout.
public enum ServingMode: Sendable, Equatable {
    /// Only the primary model answers.
    case single
    /// A stable hash of the record key sends `percent` of keys to the candidate.
    case canary(percent: Int)
    /// The primary answers; the candidate also runs on every event and its results go to the shadow topic.
    case shadow
}

/// The models a deployment should serve once a control message is applied.
public struct DesiredDeployment: Sendable, Equatable {
    /// `nil` when a canary or shadow message arrives for a deployment that never had a deploy: the
    /// instance keeps whatever primary it already serves.
    public var primary: ModelReference?
    public var candidate: ModelReference?
    public var mode: ServingMode
}

/// A signed instruction on the control topic. Every message is self-contained (it carries the primary to
/// keep beside a candidate and the version it replaces), so the latest accepted message alone decides what
/// a replica serves, whatever compaction removed before it.
public struct ControlMessage: Codable, Sendable, Equatable {
    public var deployment: String
    /// The version this message is about: the new primary (deploy, promote, rollback) or the candidate
    /// (canary, shadow).
    public var name: String
    public var version: String
    public var mode: RolloutAction
    /// Share of keys, 1...100, for `canary`.
    public var canaryPercent: Int?
    /// For canary and shadow: the primary that keeps serving beside the candidate.
    public var primary: ModelReference?
    /// The primary before this message took effect; `rollback` returns to it.
    public var previous: ModelReference?
    /// Strictly increasing per deployment (unix milliseconds by default); anything not above the last
    /// accepted value is a replay.
    public var sequence: Int64
    public var issuedAt: Date
    /// The end of the signed validity window: a record the broker appended after it is rejected as
    /// expired. Checked against the record's append time, not the reader's clock, so a replica starting
    /// long after a deploy still serves it; what it stops is a signed message withheld and published later.
    /// Required (a message without one is rejected).
    public var expiresAt: Date?
    public var issuedBy: String
    /// Hex SHA-256 of the target version's `manifest.json` bytes. Covered by the signature, so a replica
    /// that checks it before trusting the manifest's file checksums trusts only bundles the operator
    /// signed for: a registry writer cannot swap a manifest (and the files it lists) under a signed
    /// version. Required: a message without one is rejected.
    public var manifestDigest: String?
    /// The same for `primary` (canary and shadow), which a replica may have to load too; required when
    /// `primary` is set.
    public var primaryManifestDigest: String?
    /// The id of the key that signed, inside the signed payload; must equal the envelope's `key_id`.
    public var keyID: String?

    public init(deployment: String, target: ModelReference, mode: RolloutAction, canaryPercent: Int? = nil,
                primary: ModelReference? = nil, previous: ModelReference? = nil, sequence: Int64,
                issuedAt: Date = Date(), validFor: Duration = ControlMessage.defaultValidity, issuedBy: String,
                manifestDigest: String? = nil, primaryManifestDigest: String? = nil) {
        self.deployment = deployment
        self.name = target.name
        self.version = target.version
        self.mode = mode
        self.canaryPercent = canaryPercent
        self.primary = primary
        self.previous = previous
        self.sequence = sequence
        self.issuedAt = issuedAt
        self.expiresAt = issuedAt.addingTimeInterval(Double(validFor.components.seconds))
        self.issuedBy = issuedBy
        self.manifestDigest = manifestDigest
        self.primaryManifestDigest = primaryManifestDigest
    }

    /// How long after `issuedAt` a message may still be appended to the control topic by default: long
    /// enough for a slow or retried publish, short enough that a withheld message soon becomes useless.
    public static let defaultValidity = Duration.seconds(600)

    /// How far a record's append time may precede `issuedAt` (the admin's and the broker's clocks differ).
    public static let clockSkewAllowance: TimeInterval = 300

    /// The signed manifest digest for `reference`, if this message carries one for it.
    public func manifestDigest(for reference: ModelReference) -> String? {
        if let target = try? target, target == reference { return manifestDigest }
        if primary == reference { return primaryManifestDigest }
        return nil
    }

    enum CodingKeys: String, CodingKey {
        case deployment, name, version, mode, primary, previous, sequence
        case canaryPercent = "canary_percent"
        case issuedAt = "issued_at"
        case expiresAt = "expires_at"
        case issuedBy = "issued_by"
        case manifestDigest = "manifest_digest"
        case primaryManifestDigest = "primary_manifest_digest"
        case keyID = "key_id"
    }

    /// The validated version this message is about.
    public var target: ModelReference {
        get throws(RegistryError) { try ModelReference(name: name, version: version) }
    }

    /// Checks names and the canary share; a message that fails is rejected, never applied in part.
    public func validate() throws(ControlRejection) {
        do {
            try ModelReference.validate(deployment, role: "deployment")
            _ = try target
        } catch {
            throw .invalidMessage(reason: error.description)
        }
        guard manifestDigest != nil else {
            throw .invalidMessage(reason: "no manifest_digest: replicas load only bundles whose manifest the signature names (sign with minirbt-admin --registry)")
        }
        if let primary, primaryManifestDigest == nil {
            throw .invalidMessage(reason: "primary \(primary) is named without primary_manifest_digest")
        }
        guard let expiresAt else {
            throw .invalidMessage(reason: "no expires_at: every control message carries a signed validity window")
        }
        guard expiresAt > issuedAt else {
            throw .invalidMessage(reason: "expires_at \(expiresAt.formatted(.iso8601)) is not after issued_at \(issuedAt.formatted(.iso8601))")
        }
        for (field, digest) in [("manifest_digest", manifestDigest), ("primary_manifest_digest", primaryManifestDigest)] {
            if let digest, !(digest.count == 64 && digest.allSatisfy({ $0.isHexDigit && !$0.isUppercase })) {
                throw .invalidMessage(reason: "\(field) must be 64 lower-case hex digits, got \"\(digest.prefix(80))\"")
            }
        }
        if mode == .canary {
            guard let percent = canaryPercent, (1...100).contains(percent) else {
                throw .invalidMessage(reason: "a canary needs canary_percent in 1...100, got \(canaryPercent.map(String.init) ?? "none")")
            }
        }
    }

    /// What the deployment serves after this message.
    public var desired: DesiredDeployment {
        let target = try? self.target
        switch mode {
        case .deploy, .promote, .rollback:
            return DesiredDeployment(primary: target, candidate: nil, mode: .single)
        case .canary:
            return DesiredDeployment(primary: primary, candidate: target, mode: .canary(percent: canaryPercent ?? 0))
        case .shadow:
            return DesiredDeployment(primary: primary, candidate: target, mode: .shadow)
        }
    }

    /// One line for logs and `history`.
    public var summary: String {
        var text = "#\(sequence) \(mode.rawValue) \(name)/\(version)"
        if let canaryPercent, mode == .canary { text += " \(canaryPercent)%" }
        if let primary, mode == .canary || mode == .shadow { text += " beside \(primary)" }
        return text + " by \(issuedBy) at \(issuedAt.formatted(.iso8601))"
    }
}
