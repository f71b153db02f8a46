import Crypto
import Foundation

/// Ed25519 key files: one line of base64 of the raw 32-byte key. The private key file is created with mode
/// 0600 from the start (never world-readable, not even briefly).
public enum SigningKeyFiles {
    public static let privateKeyName = "minirbt-control.key"
    public static let publicKeyName = "minirbt-control.pub"

    /// Why a key file could not be written or read.
    public enum Failure: Error, Sendable, Equatable, CustomStringConvertible {
        case exists(path: String)
        case unreadable(path: String, reason: String)
        case malformed(path: String, expected: String)
        case writeFailed(path: String, reason: String)

        public var description: String {
            switch self {
            case let .exists(path): return "\(path) already exists; refusing to overwrite a key"
            case let .unreadable(path, reason): return "cannot read key file \(path): \(reason)"
            case let .malformed(path, expected): return "key file \(path) is malformed: expected \(expected)"
            case let .writeFailed(path, reason): return "cannot write key file \(path): \(reason)"
            }
        }
    }

    /// Generates a key pair into `directory` (created if needed). Existing files are never overwritten.
    @discardableResult
    public static func generate(in directory: URL) throws -> (privateKey: URL, publicKey: URL, keyID: String) {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let key = Curve25519.Signing.PrivateKey()
        let privateURL = directory.appendingPathComponent(privateKeyName)
        let publicURL = directory.appendingPathComponent(publicKeyName)
        for url in [privateURL, publicURL] where FileManager.default.fileExists(atPath: url.path) {
            throw Failure.exists(path: url.path)
        }
        try writeExclusively(key.rawRepresentation.base64EncodedString() + "\n", to: privateURL, mode: 0o600)
        try writeExclusively(key.publicKey.rawRepresentation.base64EncodedString() + "\n", to: publicURL, mode: 0o644)
        return (privateURL, publicURL, signingKeyID(key.publicKey))
    }

    public static func readPrivateKey(_ url: URL) throws(Failure) -> Curve25519.Signing.PrivateKey {
        let raw = try readRawKey(url)
        do {
            return try Curve25519.Signing.PrivateKey(rawRepresentation: raw)
        } catch {
            throw .malformed(path: url.path, expected: "a 32-byte Ed25519 private key in base64")
        }
    }

    public static func readPublicKey(_ url: URL) throws(Failure) -> Curve25519.Signing.PublicKey {
        let raw = try readRawKey(url)
        do {
            return try Curve25519.Signing.PublicKey(rawRepresentation: raw)
        } catch {
            throw .malformed(path: url.path, expected: "a 32-byte Ed25519 public key in base64")
        }
    }

    private static func readRawKey(_ url: URL) throws(Failure) -> Data {
        let text: String
        do {
            text = try String(contentsOf: url, encoding: .utf8)
        } catch {
            throw .unreadable(path: url.path, reason: "\(error.localizedDescription)")
        }
        guard let raw = Data(base64Encoded: text.trimmingCharacters(in: .whitespacesAndNewlines)), raw.count == 32 else {
            throw .malformed(path: url.path, expected: "one line of base64 encoding 32 bytes")
        }
        return raw
    }

    private static func writeExclusively(_ text: String, to url: URL, mode: mode_t) throws(Failure) {
        let descriptor = open(url.path, O_WRONLY | O_CREAT | O_EXCL, mode)
        guard descriptor >= 0 else {
            throw errno == EEXIST ? .exists(path: url.path) : .writeFailed(path: url.path, reason: String(cString: strerror(errno)))
        }
        defer { close(descriptor) }
        let bytes = Array(text.utf8)
        let written = bytes.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
        guard written == bytes.count else {
            throw .writeFailed(path: url.path, reason: written < 0 ? String(cString: strerror(errno)) : "short write")
        }
    }
}
