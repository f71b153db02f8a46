/// Why a weight file could not be read. Every case names the file (its last path component) and says
/// what the reader expected next to what it found, so a bad checkpoint can be diagnosed from the log line.
public enum WeightFileError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The file could not be opened or mapped.
    case unreadable(file: String, reason: String)
    /// The content matches none of the supported formats (safetensors, torch zip, pickle).
    case unrecognizedFormat(file: String, leadingBytes: [UInt8])
    /// The file ends before a structure it declares.
    case truncated(file: String, structure: String, needed: Int, available: Int)
    /// The safetensors JSON header is not what the format prescribes.
    case malformedHeader(file: String, detail: String)
    /// A tensor's element type is not one this reader understands.
    case unsupportedDType(file: String, tensor: String, dtype: String)
    /// A safetensors tensor's byte range lies outside the data section.
    case tensorOutOfBounds(file: String, tensor: String, range: Range<Int>, dataSectionSize: Int)
    /// A tensor's byte count disagrees with its shape and element type.
    case tensorSizeMismatch(file: String, tensor: String, shape: [Int], dtype: String,
                            expectedBytes: Int, declaredBytes: Int)
    /// The zip container of a torch checkpoint is damaged or uses a feature this reader refuses.
    case malformedArchive(file: String, detail: String)
    /// A zip entry is compressed; torch writes entries stored, and this reader does not inflate.
    case compressedEntry(file: String, entry: String, method: Int)
    /// A zip entry the torch format requires is absent.
    case missingEntry(file: String, entry: String)
    /// The checkpoint's storages are not little-endian.
    case unsupportedByteOrder(file: String, byteOrder: String)
    /// The pickle names a global outside the state-dict allow-list. Nothing was executed.
    case refusedGlobal(file: String, module: String, name: String)
    /// The pickle uses an opcode the restricted machine does not implement.
    case unsupportedOpcode(file: String, opcode: UInt8, offset: Int)
    /// The pickle is inconsistent: wrong operand types, stack underflow, a missing memo entry and so on.
    case malformedPickle(file: String, offset: Int, detail: String)
    /// A rebuilt tensor does not fit its storage, or its storage entry is shorter than declared.
    case invalidTensor(file: String, tensor: String, detail: String)
    /// Rebuilding the tensor would take the file's float32 tensors past their allowance (a multiple of the
    /// file's size): many views of one storage, each copied.
    case allocationExceeded(file: String, tensor: String, bytes: Int, alreadyAllocated: Int, limit: Int)
    /// Two safetensors tensors claim overlapping bytes of the data section.
    case overlappingTensors(file: String, first: String, second: String)
    /// A pre-1.6 `torch.save` file (pickle followed by raw storages), which this reader does not parse.
    case legacyTorchFormat(file: String)

    public var description: String {
        switch self {
        case let .unreadable(file, reason):
            return "\(file): cannot read the file (\(reason))"
        case let .unrecognizedFormat(file, leadingBytes):
            let hex = leadingBytes.map { String($0, radix: 16).leftPadded(to: 2) }.joined(separator: " ")
            return "\(file): not a safetensors file, torch zip archive or pickle (starts with \(hex))"
        case let .truncated(file, structure, needed, available):
            return "\(file): \(structure) needs \(needed) bytes but only \(available) remain"
        case let .malformedHeader(file, detail):
            return "\(file): malformed safetensors header: \(detail)"
        case let .unsupportedDType(file, tensor, dtype):
            return "\(file): tensor '\(tensor)' has unsupported dtype '\(dtype)'"
                + " (supported: F32, F16, BF16, F64; integer and bool tensors are skipped)"
        case let .tensorOutOfBounds(file, tensor, range, dataSectionSize):
            return "\(file): tensor '\(tensor)' declares \(range.count) bytes at \(range.lowerBound)..<\(range.upperBound)"
                + " but the data section holds \(dataSectionSize)"
        case let .tensorSizeMismatch(file, tensor, shape, dtype, expectedBytes, declaredBytes):
            return "\(file): tensor '\(tensor)' of shape \(shape) and dtype \(dtype) needs \(expectedBytes) bytes"
                + " but its data_offsets span \(declaredBytes)"
        case let .malformedArchive(file, detail):
            return "\(file): malformed zip archive: \(detail)"
        case let .compressedEntry(file, entry, method):
            return "\(file): zip entry '\(entry)' uses compression method \(method);"
                + " torch.save stores entries uncompressed (method 0), re-save without recompressing"
        case let .missingEntry(file, entry):
            return "\(file): zip archive has no entry '\(entry)'"
        case let .unsupportedByteOrder(file, byteOrder):
            return "\(file): storages are '\(byteOrder)'-endian; only 'little' is supported"
        case let .refusedGlobal(file, module, name):
            return "\(file): refused pickle global '\(module).\(name)' (a state dict only needs"
                + " torch._utils._rebuild_tensor_v2, collections.OrderedDict, torch.*Storage)"
        case let .unsupportedOpcode(file, opcode, offset):
            return "\(file): unsupported pickle opcode 0x\(String(opcode, radix: 16).leftPadded(to: 2)) at byte \(offset)"
        case let .malformedPickle(file, offset, detail):
            return "\(file): malformed pickle at byte \(offset): \(detail)"
        case let .invalidTensor(file, tensor, detail):
            return "\(file): tensor '\(tensor)': \(detail)"
        case let .allocationExceeded(file, tensor, bytes, alreadyAllocated, limit):
            return "\(file): tensor '\(tensor)' needs \(bytes) bytes as float32 after \(alreadyAllocated) already rebuilt,"
                + " beyond the \(limit) bytes allowed for this file (views of one storage are each copied)"
        case let .overlappingTensors(file, first, second):
            return "\(file): tensors '\(first)' and '\(second)' overlap in the data section"
        case let .legacyTorchFormat(file):
            return "\(file): legacy (pre-1.6) torch.save format is not supported;"
                + " re-save with a current torch or convert to safetensors"
        }
    }
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
