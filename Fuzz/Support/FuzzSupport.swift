import CLibFuzzer
import Foundation

/// Hands control to libFuzzer with `testOneInput` (each target's `LLVMFuzzerTestOneInput`).
///
/// SwiftPM links an executable's `main` to the module's top-level code, so the fuzz targets keep a
/// `main.swift` that calls this instead of relying on libFuzzer's own `main`.
public func runFuzzer(_ testOneInput: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> Never {
    var argc = CommandLine.argc
    var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
    exit(LLVMFuzzerRunDriver(&argc, &argv, testOneInput))
}

/// Reads option bytes off the front of a fuzz input; what is left is the payload.
public struct FuzzInput {
    public private(set) var bytes: ArraySlice<UInt8>

    public init(_ data: UnsafePointer<UInt8>?, _ size: Int) {
        bytes = size > 0 && data != nil ? ArraySlice(UnsafeBufferPointer(start: data, count: size)) : []
    }

    /// The next byte, or 0 once the input is exhausted.
    public mutating func byte() -> UInt8 {
        bytes.popFirst() ?? 0
    }

    public var data: Data { Data(bytes) }
}
