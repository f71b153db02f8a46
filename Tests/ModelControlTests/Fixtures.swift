import Crypto
import Foundation
import KafkaTestSupport
import ModelControl

/// Shared models (read-only) and scratch registries for the control-plane tests.
enum Fixtures {
    static let sharedModels = SharedData.models

    static func checkpoint(_ version: String) -> URL { SharedData.model(version) }

    /// A fresh registry directory, removed by the caller's `defer`.
    static func temporaryDirectory(_ purpose: String) throws -> URL {
        let url = FileManager.default.temporaryDirectory
            .appendingPathComponent("minirbt-\(purpose)-\(UUID().uuidString.prefix(8))", isDirectory: true)
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    static func reference(_ version: String, name: String = "sentiment") -> ModelReference {
        // Literal, valid test names: a failure here is a bug in the test itself.
        guard let reference = try? ModelReference(name: name, version: version) else {
            preconditionFailure("invalid test reference \(name)/\(version)")
        }
        return reference
    }

    /// A well-formed manifest digest, for messages whose bundles are never loaded.
    static let digest = String(repeating: "ab", count: 32)

    /// `message` signed with `key`, as `minirbt-admin` publishes it: under its own record key, appended
    /// (by default) when it was issued.
    static func record(_ message: ControlMessage, signedBy signingKey: Curve25519.Signing.PrivateKey, recordKey: String? = nil,
                       appendedAt: Date? = nil) throws -> ControlRecord {
        let key = recordKey ?? ControlTopics.recordKey(deployment: message.deployment, sequence: message.sequence)
        return ControlRecord(key: Array(key.utf8), value: try ControlSigner(privateKey: signingKey).signedRecordValue(message),
                             appendedAt: appendedAt ?? message.issuedAt)
    }

    /// A registry with the shared checkpoints published under `sentiment/<version>`.
    static func registry(publishing versions: [String], purpose: String) throws -> (registry: ModelRegistry, root: URL) {
        let root = try temporaryDirectory(purpose)
        let registry = ModelRegistry(root: root)
        for version in versions {
            try registry.publish(reference(version), from: checkpoint(version))
        }
        return (registry, root)
    }
}
