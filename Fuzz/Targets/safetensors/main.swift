// fuzz-safetensors: the safetensors reader (MiniRBT/Checkpoint/SafeTensors.swift). Input: the file.
import Foundation
import FuzzSupport
@testable import MiniRBT

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let input = FuzzInput(data, size)
    do {
        let tensors = try SafeTensors.decode(input.data, fileName: "fuzz.safetensors")
        for (name, tensor) in tensors {
            precondition(tensor.shape.reduce(1, *) == tensor.values.count, "tensor \(name) disagrees with its shape")
        }
    } catch let error as WeightFileError {
        _ = error.description
    } catch {
        preconditionFailure("SafeTensors.decode threw a \(type(of: error)), not a WeightFileError: \(error)")
    }
    return 0
}

runFuzzer(fuzz)
