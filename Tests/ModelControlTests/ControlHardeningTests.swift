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
            #expect(throws: ControlRejection.self) { try ledger.accept(recordValue: Array("garbage \(index)".utf8), verifier: verifier) }
        }
        #expect(ledger.rejections.count == ControlLedger.maximumRejections)
        #expect(ledger.rejectionCount == 500)
        guard case .unsigned(let reason)? = ledger.rejections.last else {
            Issue.record("expected an unsigned rejection last")
            return
        }
        #expect(!reason.isEmpty)
    }
}
