// fuzz-config: config.json parsing and validation (MiniRBT/Model/ModelConfig.swift). Input: the file.
import Foundation
import FuzzSupport
import MiniRBT

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let input = FuzzInput(data, size)
    do {
        let config = try ModelConfig(json: input.data)
        // A validated config must be safe to derive shapes from.
        precondition(config.hiddenSize > 0 && config.headCount > 0 && config.hiddenSize % config.headCount == 0)
        precondition(!config.labels.isEmpty && config.headSize > 0)
    } catch {
        _ = "\(error)"
    }
    return 0
}

runFuzzer(fuzz)
