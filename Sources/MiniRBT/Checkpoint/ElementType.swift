/// The element types a weight file may store, with their little-endian widening to float32.
///
/// Integer and bool types are recognised so their byte sizes can be validated, but readers skip such
/// tensors: they are buffers like `position_ids`, never weights.
enum ElementType: Sendable, Equatable {
    case float32, float16, bfloat16, float64
    case int64, int32, int16, int8, uint8, bool

    /// The name safetensors uses in its header (`"F32"`, `"BF16"`, ...).
    init?(safetensorsName name: String) {
        switch name {
        case "F32": self = .float32
        case "F16": self = .float16
        case "BF16": self = .bfloat16
        case "F64": self = .float64
        case "I64": self = .int64
        case "I32": self = .int32
        case "I16": self = .int16
        case "I8": self = .int8
        case "U8": self = .uint8
        case "BOOL": self = .bool
        default: return nil
        }
    }

    /// The `torch.<Name>Storage` class a pickle names for a typed storage.
    init?(torchStorageClass name: String) {
        switch name {
        case "FloatStorage": self = .float32
        case "HalfStorage": self = .float16
        case "BFloat16Storage": self = .bfloat16
        case "DoubleStorage": self = .float64
        case "LongStorage": self = .int64
        case "IntStorage": self = .int32
        case "ShortStorage": self = .int16
        case "CharStorage": self = .int8
        case "ByteStorage": self = .uint8
        case "BoolStorage": self = .bool
        default: return nil
        }
    }

    var byteSize: Int {
        switch self {
        case .float64, .int64: return 8
        case .float32, .int32: return 4
        case .float16, .bfloat16, .int16: return 2
        case .int8, .uint8, .bool: return 1
        }
    }

    var isFloatingPoint: Bool {
        switch self {
        case .float32, .float16, .bfloat16, .float64: return true
        case .int64, .int32, .int16, .int8, .uint8, .bool: return false
        }
    }

    /// Widens (or, for F64, rounds) the element at `byteOffset` of little-endian `bytes` to Float.
    /// Integer types return nil; callers skip those tensors before converting.
    @inline(__always)
    func float(in bytes: UnsafeRawBufferPointer, atByte byteOffset: Int) -> Float? {
        switch self {
        case .float32:
            return Float(bitPattern: UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: byteOffset, as: UInt32.self)))
        case .float16:
            return Self.widenHalf(UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: byteOffset, as: UInt16.self)))
        case .bfloat16:
            // bfloat16 is the upper half of a float32, so widening is a shift and exact.
            let bits = UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: byteOffset, as: UInt16.self))
            return Float(bitPattern: UInt32(bits) << 16)
        case .float64:
            return Float(Double(bitPattern: UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: byteOffset, as: UInt64.self))))
        case .int64, .int32, .int16, .int8, .uint8, .bool:
            return nil
        }
    }

    /// Converts `count` consecutive elements starting at `byteOffset`; the caller has bounds-checked the range.
    /// Integer types yield an empty array. The type is switched on once, outside the per-element loop,
    /// because this runs over every weight of a model at load time.
    func floats(in bytes: UnsafeRawBufferPointer, atByte byteOffset: Int, count: Int) -> [Float] {
        func convert<Stored: FixedWidthInteger>(_: Stored.Type, _ widen: (Stored) -> Float) -> [Float] {
            [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
                for index in 0..<count {
                    let offset = byteOffset + index * MemoryLayout<Stored>.size
                    buffer[index] = widen(Stored(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: Stored.self)))
                }
                initialized = count
            }
        }
        switch self {
        case .float32: return convert(UInt32.self) { Float(bitPattern: $0) }
        case .float16: return convert(UInt16.self, Self.widenHalf)
        case .bfloat16: return convert(UInt16.self) { Float(bitPattern: UInt32($0) << 16) }
        case .float64: return convert(UInt64.self) { Float(Double(bitPattern: $0)) }
        case .int64, .int32, .int16, .int8, .uint8, .bool: return []
        }
    }

    /// IEEE 754 binary16 → binary32, exact for every input including subnormals, infinities and NaN payloads.
    /// Written out rather than using `Float16`, which is unavailable on some platforms Swift targets.
    static func widenHalf(_ half: UInt16) -> Float {
        let sign = UInt32(half & 0x8000) << 16
        let exponent = UInt32(half >> 10) & 0x1F
        let mantissa = UInt32(half) & 0x3FF
        switch exponent {
        case 0x1F:
            return Float(bitPattern: sign | 0x7F80_0000 | (mantissa << 13))
        case 0 where mantissa == 0:
            return Float(bitPattern: sign)
        case 0:
            // Subnormal half: value = mantissa × 2^-24, representable exactly as a normal float.
            let magnitude = Float(mantissa) * 0x1p-24
            return sign == 0 ? magnitude : -magnitude
        default:
            return Float(bitPattern: sign | ((exponent + 112) << 23) | (mantissa << 13))
        }
    }
}
