@preconcurrency import Crypto
import Foundation

/// What goes on the control topic: the message's exact bytes, an Ed25519 signature over them, and which key
/// signed. Verifying the bytes as sent (rather than re-encoding the decoded message) means no JSON
/// canonicalisation is needed for the signature to hold.
public struct SignedEnvelope: Codable, Sendable, Equatable {
    /// Base64 of the JSON-encoded ``ControlMessage``.
    public var payload: String
    /// Base64 of the Ed25519 signature of the payload bytes.
    public var signature: String
    public var keyID: String

    public init(payload: String, signature: String, keyID: String) {
        self.payload = payload
        self.signature = signature
        self.keyID = keyID
    }

    enum CodingKeys: String, CodingKey {
        case payload, signature
        case keyID = "key_id"
    }
}

/// Short, stable identifier of a public key: the first 8 bytes of the SHA-256 of its raw form, in hex.
public func signingKeyID(_ key: Curve25519.Signing.PublicKey) -> String {
    FileDigest.hex(SHA256.hash(data: key.rawRepresentation).prefix(8))
}

/// Short identifier of one control record as sent (the first 8 bytes of the SHA-256 of its value, in hex):
/// instances report the record they rejected by it, so `--wait` recognises its own message.
public func controlRecordDigest(_ value: [UInt8]) -> String {
    FileDigest.hex(SHA256.hash(data: value).prefix(8))
}

/// Signs control messages with the operator's private key.
public struct ControlSigner: Sendable {
    // Raw bytes rather than the key type, which swift-crypto 3 does not declare Sendable.
    private let rawKey: Data
    public let keyID: String

    public init(privateKey: Curve25519.Signing.PrivateKey) {
        rawKey = privateKey.rawRepresentation
        keyID = signingKeyID(privateKey.publicKey)
    }

    /// Signs `message` with its `keyID` set to this signer's, so the key id is covered by the signature.
    public func sign(_ message: ControlMessage) throws -> SignedEnvelope {
        var message = message
        message.keyID = keyID
        let bytes = try JSONEncoder.control.encode(message)
        let signature = try Curve25519.Signing.PrivateKey(rawRepresentation: rawKey).signature(for: bytes)
        return SignedEnvelope(payload: bytes.base64EncodedString(), signature: signature.base64EncodedString(),
                              keyID: keyID)
    }

    /// The record value to publish.
    public func signedRecordValue(_ message: ControlMessage) throws -> [UInt8] {
        Array(try JSONEncoder.control.encode(sign(message)))
    }
}

/// Opens control records with the public keys this instance trusts.
public struct ControlVerifier: Sendable {
    /// Key id → raw public key (the key type is not Sendable in swift-crypto 3).
    private let trusted: [String: Data]

    public init(trustedKeys: [Curve25519.Signing.PublicKey]) {
        trusted = Dictionary(trustedKeys.map { (signingKeyID($0), $0.rawRepresentation) }) { first, _ in first }
    }

    public var keyIDs: [String] { trusted.keys.sorted() }

    /// Decodes, authenticates and validates one record value.
    public func open(_ value: [UInt8]?) throws(ControlRejection) -> ControlMessage {
        guard let value, !value.isEmpty else { throw .unsigned(reason: "empty record") }
        let envelope: SignedEnvelope
        do {
            envelope = try JSONDecoder.control.decode(SignedEnvelope.self, from: Data(value))
        } catch {
            throw .unsigned(reason: "expected a JSON envelope {payload, signature, key_id}: \(error)")
        }
        guard !envelope.signature.isEmpty else { throw .unsigned(reason: "the signature is empty") }
        guard let rawKey = trusted[envelope.keyID],
              let key = try? Curve25519.Signing.PublicKey(rawRepresentation: rawKey) else {
            throw .unknownKey(keyID: envelope.keyID)
        }
        guard let payload = Data(base64Encoded: envelope.payload),
              let signature = Data(base64Encoded: envelope.signature) else {
            throw .unsigned(reason: "payload or signature is not base64")
        }
        guard key.isValidSignature(signature, for: payload) else { throw .badSignature(keyID: envelope.keyID) }
        let message: ControlMessage
        do {
            message = try JSONDecoder.control.decode(ControlMessage.self, from: payload)
        } catch {
            throw .invalidMessage(reason: "signed payload is not a control message: \(error)")
        }
        if let signedKeyID = message.keyID, signedKeyID != envelope.keyID {
            throw .invalidMessage(reason: "signed key_id \(signedKeyID) differs from the envelope's \(envelope.keyID)")
        }
        try message.validate()
        return message
    }
}

extension JSONEncoder {
    /// Control-plane JSON: sorted keys, ISO-8601 dates.
    public static let control: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .iso8601
        return encoder
    }()
}

extension JSONDecoder {
    public static let control: JSONDecoder = {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return decoder
    }()
}
