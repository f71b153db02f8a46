import Foundation

/// Why a control message was not applied. Rejections are logged and reported in the status heartbeat;
/// they never change what an instance serves.
public enum ControlRejection: Error, Sendable, Equatable, CustomStringConvertible {
    /// The record is not a signed envelope (no signature, not JSON, not base64).
    case unsigned(reason: String)
    /// Signed with a key this instance does not trust.
    case unknownKey(keyID: String)
    /// The signature does not match the payload: forged or altered.
    case badSignature(keyID: String)
    /// The signed payload is not a valid control message.
    case invalidMessage(reason: String)
    /// Not newer than the last accepted message of the deployment.
    case replayed(sequence: Int64, lastAccepted: Int64)
    /// A rollback or promote that cannot be resolved (no previous version, no candidate).
    case notApplicable(reason: String)
    /// A record without a value under one of the deployment's keys: control messages are never deleted.
    case tombstone(key: String)
    /// A signed message for another deployment under one of this deployment's keys.
    case foreignDeployment(deployment: String, key: String)
    /// A signed message under a key other than its own `<deployment>/<sequence>`: a copy placed to
    /// overwrite another record when the topic is compacted.
    case misfiled(key: String, expected: String)
    /// Appended to the topic after its signed validity window ended (or long before it was issued).
    case expired(sequence: Int64, expiresAt: Date, appendedAt: Date)

    public var description: String {
        switch self {
        case let .unsigned(reason):
            return "rejected unsigned control message: \(reason)"
        case let .unknownKey(keyID):
            return "rejected control message signed by unknown key \(keyID)"
        case let .badSignature(keyID):
            return "rejected control message: signature does not verify with key \(keyID) (forged or altered)"
        case let .invalidMessage(reason):
            return "rejected control message: \(reason)"
        case let .replayed(sequence, lastAccepted):
            return "rejected replayed control message: sequence \(sequence) is not above the last accepted \(lastAccepted)"
        case let .notApplicable(reason):
            return "control message not applicable: \(reason)"
        case let .tombstone(key):
            return "rejected tombstone under control key \(key): control messages are never deleted"
        case let .foreignDeployment(deployment, key):
            return "rejected control message for deployment \(deployment) under key \(key)"
        case let .misfiled(key, expected):
            return "rejected control message under key \(key): a message's key must be its own \(expected)"
        case let .expired(sequence, expiresAt, appendedAt):
            return "rejected expired control message #\(sequence): appended at \(appendedAt.formatted(.iso8601)), outside its signed validity window (expires_at \(expiresAt.formatted(.iso8601)))"
        }
    }

    /// A short, stable name of the rejection's kind: the `reason` label of the rejection metric.
    public var kind: String {
        switch self {
        case .unsigned: "unsigned"
        case .unknownKey: "unknown_key"
        case .badSignature: "bad_signature"
        case .invalidMessage: "invalid_message"
        case .replayed: "replayed"
        case .notApplicable: "not_applicable"
        case .tombstone: "tombstone"
        case .foreignDeployment: "foreign_deployment"
        case .misfiled: "misfiled"
        case .expired: "expired"
        }
    }
}
