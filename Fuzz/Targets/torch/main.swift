// fuzz-torch: torch.save checkpoints as files (MiniRBT/Checkpoint/PyTorchCheckpoint.swift, ZipArchive.swift,
// PickleMachine.swift): the zip container, the pickle in it and the storages. Input: the whole file.
import Foundation
import FuzzSupport
@testable import MiniRBT

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let input = FuzzInput(data, size)
    do {
        let tensors = try PyTorchCheckpoint.decode(input.data, fileName: "pytorch_model.bin")
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
