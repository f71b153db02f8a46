// fuzz-control: signed control messages (ModelControl/Messages): the envelope, signature verification, the
// control message inside and its validation, and the replay ledger. Input: one mode byte, then
//   mode 0: a raw control record value, opened as the service opens it (and judged under an arbitrary key);
//   mode 1: a control message payload, which the harness signs with the trusted key (so the fuzzer reaches
//           message decoding and validation past the signature check);
//   mode 2: a payload signed with an untrusted key but labelled with the trusted key id: must be refused.
import Crypto
import Foundation
import FuzzSupport
import ModelControl

nonisolated(unsafe) let trustedKey = try! Curve25519.Signing.PrivateKey(rawRepresentation: Data(repeating: 0x42, count: 32))
nonisolated(unsafe) let forgingKey = try! Curve25519.Signing.PrivateKey(rawRepresentation: Data(repeating: 0x17, count: 32))
let verifier = ControlVerifier(trustedKeys: [trustedKey.publicKey])
let trustedKeyID = signingKeyID(trustedKey.publicKey)

func envelope(_ payload: Data, signedBy key: Curve25519.Signing.PrivateKey) -> [UInt8] {
    let signature = try! key.signature(for: payload)
    let envelope = SignedEnvelope(payload: payload.base64EncodedString(), signature: signature.base64EncodedString(),
                                  keyID: trustedKeyID)
    return Array(try! JSONEncoder.control.encode(envelope))
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    var input = FuzzInput(data, size)
    let mode = input.byte() % 3
    let record: [UInt8]
    switch mode {
    case 0: record = Array(input.bytes)
    case 1: record = envelope(input.data, signedBy: trustedKey)
    default: record = envelope(input.data, signedBy: forgingKey)
    }
    if mode == 0 {
        // Whatever the key and value, the ledger judges without trapping.
        var ledger = ControlLedger(deployment: "sentiment")
        _ = try? ledger.accept(ControlRecord(key: Array(input.bytes.prefix(8)), value: record, appendedAt: Date()), verifier: verifier)
    }
    let message: ControlMessage
    do {
        message = try verifier.open(record)
    } catch {
        _ = error.description
        if mode == 1 {
            // A correctly signed record is refused only for its content.
            guard case .invalidMessage = error else { preconditionFailure("signed record refused: \(error)") }
        }
        return 0
    }
    precondition(mode != 2, "accepted a payload with a forged signature")
    // Accepted messages are usable: their target, serving plan and log line.
    _ = try! message.target
    _ = message.desired
    _ = message.summary
    // Under its own key and appended when issued, it is accepted once; the same record again is a replay.
    let key = Array(ControlTopics.recordKey(deployment: message.deployment, sequence: message.sequence).utf8)
    let controlRecord = ControlRecord(key: key, value: record, appendedAt: message.issuedAt)
    var ledger = ControlLedger(deployment: message.deployment)
    precondition((try? ledger.accept(controlRecord, verifier: verifier)) == message)
    do {
        try ledger.accept(controlRecord, verifier: verifier)
        preconditionFailure("the ledger accepted a replay")
    } catch {
        guard case .replayed = error else { preconditionFailure("replay rejected as \(error)") }
    }
    _ = try? ledger.rollbackTarget()
    _ = try? ledger.promoteTarget()
    return 0
}

runFuzzer(fuzz)
