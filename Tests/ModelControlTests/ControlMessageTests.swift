import Crypto
import Foundation
import ModelControl
import Testing

@Suite("Control messages: names, signatures, replays")
struct ControlMessageTests {
    let operatorKey = Curve25519.Signing.PrivateKey()

    func message(_ version: String, sequence: Int64, mode: RolloutAction = .deploy, deployment: String = "sentiment") -> ControlMessage {
        ControlMessage(deployment: deployment, target: Fixtures.reference(version), mode: mode,
                       canaryPercent: mode == .canary ? 20 : nil, sequence: sequence, issuedBy: "tests",
                       manifestDigest: Fixtures.digest)
    }

    /// `message` signed with the operator's key, under its own record key, appended when issued.
    func record(_ message: ControlMessage) throws -> ControlRecord {
        try Fixtures.record(message, signedBy: operatorKey)
    }

    @Test("names and versions that could escape the registry root are rejected", arguments: [
        "", "..", "../etc", "a/b", ".hidden", "a..b", "-leading", "v1 ", "ümlaut", String(repeating: "x", count: 129),
    ])
    func invalidComponents(value: String) {
        #expect(throws: RegistryError.self) { try ModelReference(name: value, version: "v1") }
        #expect(throws: RegistryError.self) { try ModelReference(name: "sentiment", version: value) }
    }

    @Test("plain names are accepted and stay inside the root")
    func validComponents() throws {
        let reference = try ModelReference(name: "sentiment-zh_2", version: "v1.0.3")
        let registry = ModelRegistry(root: URL(fileURLWithPath: "/registry"))
        #expect(registry.directory(for: reference).path == "/registry/sentiment-zh_2/v1.0.3")
    }

    @Test("a signed message opens with the trusted key")
    func roundTrip() throws {
        let sent = message("v2", sequence: 7)
        let value = try ControlSigner(privateKey: operatorKey).signedRecordValue(sent)
        let opened = try ControlVerifier(trustedKeys: [operatorKey.publicKey]).open(value)
        #expect(opened.version == "v2" && opened.sequence == 7 && opened.deployment == "sentiment")
    }

    @Test("an unsigned message is rejected")
    func unsigned() throws {
        let plain = Array(try JSONEncoder.control.encode(message("v2", sequence: 1)))
        #expect { try ControlVerifier(trustedKeys: [operatorKey.publicKey]).open(plain) } throws: { error in
            guard case ControlRejection.unsigned = error else { return false }
            return true
        }
    }

    @Test("a message signed by another key is rejected, also when it claims the trusted key's id")
    func forged() throws {
        let intruder = Curve25519.Signing.PrivateKey()
        let verifier = ControlVerifier(trustedKeys: [operatorKey.publicKey])
        let forged = try ControlSigner(privateKey: intruder).sign(message("v2", sequence: 1))
        #expect(throws: ControlRejection.unknownKey(keyID: signingKeyID(intruder.publicKey))) {
            try verifier.open(Array(JSONEncoder.control.encode(forged)))
        }
        var impersonating = forged
        impersonating.keyID = signingKeyID(operatorKey.publicKey)
        #expect(throws: ControlRejection.badSignature(keyID: impersonating.keyID)) {
            try verifier.open(Array(JSONEncoder.control.encode(impersonating)))
        }
    }

    @Test("an altered payload no longer verifies")
    func tampered() throws {
        let signer = ControlSigner(privateKey: operatorKey)
        var envelope = try signer.sign(message("v1", sequence: 1))
        let altered = try JSONEncoder.control.encode(message("v2", sequence: 1))
        envelope.payload = altered.base64EncodedString()
        #expect(throws: ControlRejection.badSignature(keyID: signer.keyID)) {
            try ControlVerifier(trustedKeys: [operatorKey.publicKey]).open(Array(JSONEncoder.control.encode(envelope)))
        }
    }

    @Test("a signed message naming a path outside the registry is rejected")
    func signedPathEscape() throws {
        var escaping = message("v1", sequence: 1)
        escaping.version = "../../../etc"
        let value = try ControlSigner(privateKey: operatorKey).signedRecordValue(escaping)
        #expect { try ControlVerifier(trustedKeys: [operatorKey.publicKey]).open(value) } throws: { error in
            guard case ControlRejection.invalidMessage(let reason) = error else { return false }
            return reason.contains("\"../../../etc\"")
        }
    }

    @Test("replays (sequence not above the last accepted) are rejected; other deployments are ignored")
    func replay() throws {
        let verifier = ControlVerifier(trustedKeys: [operatorKey.publicKey])
        var ledger = ControlLedger(deployment: "sentiment")
        let first = try record(message("v1", sequence: 10))
        let second = try record(message("v2", sequence: 20))
        #expect(try ledger.accept(first, verifier: verifier)?.version == "v1")
        #expect(try ledger.accept(second, verifier: verifier)?.version == "v2")
        #expect(throws: ControlRejection.replayed(sequence: 10, lastAccepted: 20)) {
            try ledger.accept(first, verifier: verifier)
        }
        #expect(throws: ControlRejection.replayed(sequence: 20, lastAccepted: 20)) {
            try ledger.accept(second, verifier: verifier)
        }
        let other = try record(message("v9", sequence: 5, deployment: "other"))
        #expect(try ledger.accept(other, verifier: verifier) == nil)
        #expect(ledger.accepted.map(\.version) == ["v1", "v2"])
        #expect(ledger.rejections.count == 2)
    }

    @Test("rollback and promote targets follow the accepted history")
    func rollbackAndPromote() throws {
        let verifier = ControlVerifier(trustedKeys: [operatorKey.publicKey])
        var ledger = ControlLedger(deployment: "sentiment")
        #expect(throws: ControlRejection.self) { try ledger.rollbackTarget() }
        try ledger.accept(record(message("v1", sequence: 1)), verifier: verifier)
        var canary = message("v2", sequence: 2, mode: .canary)
        canary.primary = Fixtures.reference("v1")
        canary.primaryManifestDigest = Fixtures.digest
        try ledger.accept(record(canary), verifier: verifier)
        #expect(try ledger.promoteTarget() == Fixtures.reference("v2"))
        #expect(try ledger.rollbackTarget() == Fixtures.reference("v1"))
        var promote = message("v2", sequence: 3, mode: .promote)
        promote.previous = Fixtures.reference("v1")
        try ledger.accept(record(promote), verifier: verifier)
        #expect(throws: ControlRejection.self) { try ledger.promoteTarget() }
        #expect(try ledger.rollbackTarget() == Fixtures.reference("v1"))
    }

    @Test("a canary message without a valid share is rejected")
    func canaryShare() throws {
        var bad = message("v2", sequence: 1, mode: .canary)
        bad.canaryPercent = 0
        let value = try ControlSigner(privateKey: operatorKey).signedRecordValue(bad)
        #expect(throws: ControlRejection.self) { try ControlVerifier(trustedKeys: [operatorKey.publicKey]).open(value) }
    }

    @Test("keygen writes a 0600 private key and a public key that verify each other, and never overwrites")
    func keygen() throws {
        let directory = try Fixtures.temporaryDirectory("keys")
        defer { try? FileManager.default.removeItem(at: directory) }
        let files = try SigningKeyFiles.generate(in: directory)
        let attributes = try FileManager.default.attributesOfItem(atPath: files.privateKey.path)
        #expect((attributes[.posixPermissions] as? NSNumber)?.intValue == 0o600)
        let privateKey = try SigningKeyFiles.readPrivateKey(files.privateKey)
        let publicKey = try SigningKeyFiles.readPublicKey(files.publicKey)
        #expect(publicKey.rawRepresentation == privateKey.publicKey.rawRepresentation)
        #expect(signingKeyID(publicKey) == files.keyID)
        #expect(throws: SigningKeyFiles.Failure.exists(path: files.privateKey.path)) {
            try SigningKeyFiles.generate(in: directory)
        }
    }
}
