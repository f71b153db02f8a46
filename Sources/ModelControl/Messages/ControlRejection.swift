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
        }
    }
}
