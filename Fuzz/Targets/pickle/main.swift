// fuzz-pickle: the restricted pickle machine and the state-dict rebuild (MiniRBT/Checkpoint/PickleMachine.swift,
// PyTorchCheckpoint.swift). Input: `data.pkl` alone; the harness stores it in a torch zip archive next to
// fixed storages `data/0` ... `data/3` (64 bytes each), so tensor views, strides and offsets are reached
// without the fuzzer having to keep a zip container intact.
import Foundation
import FuzzSupport
@testable import MiniRBT

/// A stored (method 0) zip archive of `entries`, as torch.save writes it (CRCs are not checked by the reader).
func storedZip(_ entries: [(name: String, bytes: [UInt8])]) -> Data {
    var archive: [UInt8] = [], directory: [UInt8] = []
    func le16(_ value: Int, into bytes: inout [UInt8]) { bytes += [UInt8(value & 0xFF), UInt8((value >> 8) & 0xFF)] }
    func le32(_ value: Int, into bytes: inout [UInt8]) { le16(value & 0xFFFF, into: &bytes); le16((value >> 16) & 0xFFFF, into: &bytes) }
    for (name, bytes) in entries {
        let offset = archive.count, nameBytes = Array(name.utf8)
        le32(0x0403_4B50, into: &archive); le16(20, into: &archive); le16(0, into: &archive); le16(0, into: &archive)
        le32(0, into: &archive); le32(0, into: &archive)
        le32(bytes.count, into: &archive); le32(bytes.count, into: &archive)
        le16(nameBytes.count, into: &archive); le16(0, into: &archive)
        archive += nameBytes + bytes
        le32(0x0201_4B50, into: &directory); le16(20, into: &directory); le16(20, into: &directory)
        le16(0, into: &directory); le16(0, into: &directory); le32(0, into: &directory); le32(0, into: &directory)
        le32(bytes.count, into: &directory); le32(bytes.count, into: &directory)
        le16(nameBytes.count, into: &directory); le16(0, into: &directory); le16(0, into: &directory)
        le16(0, into: &directory); le16(0, into: &directory); le32(0, into: &directory); le32(offset, into: &directory)
        directory += nameBytes
    }
    let directoryOffset = archive.count
    archive += directory
    le32(0x0605_4B50, into: &archive); le16(0, into: &archive); le16(0, into: &archive)
    le16(entries.count, into: &archive); le16(entries.count, into: &archive)
    le32(directory.count, into: &archive); le32(directoryOffset, into: &archive); le16(0, into: &archive)
    return Data(archive)
}

/// Storages with varied bit patterns (NaNs, infinities, subnormals appear among them).
let storages: [(name: String, bytes: [UInt8])] = (0..<4).map { key in
    ("archive/data/\(key)", (0..<64).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ key &* 101) })
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let input = FuzzInput(data, size)
    let file = storedZip([("archive/data.pkl", Array(input.bytes)), ("archive/byteorder", Array("little".utf8))]
                         + storages)
    do {
        let tensors = try PyTorchCheckpoint.decode(file, fileName: "pytorch_model.bin")
        for (name, tensor) in tensors {
            precondition(tensor.shape.reduce(1, *) == tensor.values.count, "tensor \(name) disagrees with its shape")
        }
    } catch let error as WeightFileError {
        _ = error.description
    } catch {
        preconditionFailure("PyTorchCheckpoint.decode threw a \(type(of: error)), not a WeightFileError: \(error)")
    }
    return 0
}

runFuzzer(fuzz)
