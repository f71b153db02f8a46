import Crypto
import Foundation
import ModelControl
import Testing

@Suite("Control plane hardening")
struct ControlHardeningTests {
    @Test("a flood of rejected records keeps only the latest rejections")
    func rejectionsAreBounded() throws {
        let verifier = ControlVerifier(trustedKeys: [Curve25519.Signing.PrivateKey().publicKey])
        var ledger = ControlLedger(deployment: "sentiment")
        for index in 0..<500 {
            #expect(throws: ControlRejection.self) { try ledger.accept(ControlRecord(key: nil, value: Array("garbage \(index)".utf8)), verifier: verifier) }
        }
        #expect(ledger.rejections.count == ControlLedger.maximumRejections)
        #expect(ledger.rejectionCount == 500)
        guard case .unsigned(let reason)? = ledger.rejections.last else {
            Issue.record("expected an unsigned rejection last")
            return
        }
        #expect(!reason.isEmpty)
    }

    @Test("a replica checks the signed manifest digest before trusting the manifest's checksums")
    func manifestDigest() throws {
        let (registry, root) = try Fixtures.registry(publishing: ["v1"], purpose: "manifest-digest")
        defer { try? FileManager.default.removeItem(at: root) }
        let v1 = Fixtures.reference("v1")
        let bundle = registry.directory(for: v1)
        let signed = try ModelManifest.digest(in: bundle)
        _ = try registry.verify(v1, manifestDigest: signed)

        // A registry writer re-publishes v1 in place with a consistent manifest: checksums alone pass.
        var manifest = try ModelManifest.read(from: bundle)
        manifest.createdAt = manifest.createdAt.addingTimeInterval(1)
        let url = bundle.appendingPathComponent(ModelManifest.fileName)
        try FileManager.default.removeItem(at: url)
        try manifest.encoded().write(to: url)
        _ = try registry.verify(v1)
        let error = #expect(throws: BundleError.self) { try registry.verify(v1, manifestDigest: signed) }
        guard case .manifestDigestMismatch(expected: signed, found: _)? = error else {
            Issue.record("expected manifestDigestMismatch, got \(String(describing: error))")
            return
        }
    }

    @Test("the digests and key id travel inside the signed payload")
    func signedFields() throws {
        let key = Curve25519.Signing.PrivateKey(), second = Curve25519.Signing.PrivateKey()
        let digest = String(repeating: "ab", count: 32)
        let message = ControlMessage(deployment: "sentiment", target: Fixtures.reference("v2"), mode: .canary, canaryPercent: 10,
                                     primary: Fixtures.reference("v1"), sequence: 1, issuedBy: "tests",
                                     manifestDigest: digest, primaryManifestDigest: String(repeating: "cd", count: 32))
        // Several trusted keys: either may sign.
        let verifier = ControlVerifier(trustedKeys: [key.publicKey, second.publicKey])
        for signer in [ControlSigner(privateKey: key), ControlSigner(privateKey: second)] {
            let opened = try verifier.open(try signer.signedRecordValue(message))
            #expect(opened.keyID == signer.keyID)
            #expect(opened.manifestDigest(for: Fixtures.reference("v2")) == digest)
            #expect(opened.manifestDigest(for: Fixtures.reference("v1")) == String(repeating: "cd", count: 32))
            #expect(opened.manifestDigest(for: Fixtures.reference("v3")) == nil)
        }

        // A payload naming another key than the envelope's is refused even though the signature holds.
        var claimed = message
        claimed.keyID = "0011223344556677"
        let payload = try JSONEncoder.control.encode(claimed)
        let envelope = SignedEnvelope(payload: payload.base64EncodedString(),
                                      signature: try key.signature(for: payload).base64EncodedString(),
                                      keyID: signingKeyID(key.publicKey))
        #expect(throws: ControlRejection.self) { try verifier.open(Array(try JSONEncoder.control.encode(envelope))) }

        // A malformed digest is refused.
        var malformed = message
        malformed.manifestDigest = "not-a-digest"
        #expect(throws: ControlRejection.self) { try verifier.open(try ControlSigner(privateKey: key).signedRecordValue(malformed)) }
    }
}
