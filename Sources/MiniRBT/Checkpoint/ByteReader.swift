import Foundation

/// Little-endian reads at zero-based offsets into a `Data` (which may be a slice with a non-zero start).
///
/// Callers validate offsets against `count` before reading, to produce errors that name the structure
/// involved; as a second line of defence an out-of-range read yields zero (or empty bytes) instead of
/// trapping, so a missed check can misparse hostile input but never crash on it.
struct ByteReader {
    let data: Data

    init(_ data: Data) { self.data = data }

    var count: Int { data.count }

    func uint8(at offset: Int) -> UInt8 { load(at: offset) }
    func uint16(at offset: Int) -> UInt16 { UInt16(littleEndian: load(at: offset)) }
    func uint32(at offset: Int) -> UInt32 { UInt32(littleEndian: load(at: offset)) }
    func uint64(at offset: Int) -> UInt64 { UInt64(littleEndian: load(at: offset)) }

    /// The bytes in `range`, clamped to the data.
    func bytes(_ range: Range<Int>) -> Data {
        let lower = min(max(range.lowerBound, 0), count), upper = min(max(range.upperBound, lower), count)
        return data[(data.startIndex + lower)..<(data.startIndex + upper)]
    }

    private func load<T: FixedWidthInteger>(at offset: Int) -> T {
        guard offset >= 0, offset <= count - MemoryLayout<T>.size else { return 0 }
        return data.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: offset, as: T.self) }
    }
}
