import Foundation

/// A read-only view of the entries of a zip archive held in memory, enough for `torch.save` files:
/// the central directory is parsed (zip64 included), entries must be stored uncompressed, and an entry's
/// bytes are handed out as a slice of the archive without copying.
struct ZipArchive {
    static let localHeaderMagic: [UInt8] = [0x50, 0x4B, 0x03, 0x04]

    private static let endOfCentralDirectorySignature: UInt32 = 0x0605_4B50
    private static let zip64EndOfCentralDirectorySignature: UInt32 = 0x0606_4B50
    private static let zip64LocatorSignature: UInt32 = 0x0706_4B50
    private static let centralHeaderSignature: UInt32 = 0x0201_4B50
    private static let localHeaderSignature: UInt32 = 0x0403_4B50
    private static let zip64ExtraFieldID: UInt16 = 0x0001

    struct Entry {
        var name: String
        /// Offset of the entry's data from the start of the archive.
        var dataRange: Range<Int>
    }

    private let data: Data
    /// Entries by name; central-directory order is irrelevant to torch.
    let entries: [String: Entry]

    init(_ data: Data, fileName: String) throws {
        self.data = data
        let reader = ByteReader(data)
        let directory = try Self.locateCentralDirectory(reader, fileName: fileName)
        var entries: [String: Entry] = [:]
        var offset = directory.offset
        for _ in 0..<directory.entryCount {
            let entry = try Self.readCentralHeader(reader, at: &offset, directoryEnd: directory.end, fileName: fileName)
            entries[entry.name] = entry
        }
        self.entries = entries
    }

    /// The bytes of `name`, or nil if the archive has no such entry.
    func contents(of name: String) -> Data? {
        guard let entry = entries[name] else { return nil }
        let start = data.startIndex
        return data[(start + entry.dataRange.lowerBound)..<(start + entry.dataRange.upperBound)]
    }

    // MARK: - Parsing

    private struct CentralDirectory {
        var offset: Int
        var end: Int
        var entryCount: Int
    }

    private static func locateCentralDirectory(_ reader: ByteReader, fileName: String) throws -> CentralDirectory {
        // The end record is 22 bytes plus a comment of at most 65535; search backwards for its signature.
        let recordSize = 22
        guard reader.count >= recordSize else {
            throw WeightFileError.malformedArchive(
                file: fileName, detail: "\(reader.count) bytes is too short for an end-of-central-directory record")
        }
        let earliest = max(0, reader.count - recordSize - 0xFFFF)
        var candidate = reader.count - recordSize
        while candidate >= earliest, reader.uint32(at: candidate) != endOfCentralDirectorySignature {
            candidate -= 1
        }
        guard candidate >= earliest else {
            throw WeightFileError.malformedArchive(
                file: fileName, detail: "no end-of-central-directory record in the last \(reader.count - earliest) bytes (file truncated?)")
        }
        var entryCount = Int(reader.uint16(at: candidate + 10))
        var size = Int(reader.uint32(at: candidate + 12))
        var offset = Int(reader.uint32(at: candidate + 16))

        // Saturated fields mean the real values are in the zip64 record, found through its locator.
        if entryCount == 0xFFFF || size == 0xFFFF_FFFF || offset == 0xFFFF_FFFF {
            let locator = candidate - 20
            guard locator >= 0, reader.uint32(at: locator) == zip64LocatorSignature else {
                throw WeightFileError.malformedArchive(
                    file: fileName, detail: "end record has zip64 placeholders but no zip64 locator precedes it")
            }
            let recordOffset = try fittingInt(reader.uint64(at: locator + 8), what: "zip64 record offset", fileName: fileName)
            guard recordOffset <= reader.count - 56, reader.uint32(at: recordOffset) == zip64EndOfCentralDirectorySignature else {
                throw WeightFileError.malformedArchive(
                    file: fileName, detail: "zip64 locator points at \(recordOffset), where there is no zip64 end record")
            }
            entryCount = try fittingInt(reader.uint64(at: recordOffset + 32), what: "zip64 entry count", fileName: fileName)
            size = try fittingInt(reader.uint64(at: recordOffset + 40), what: "zip64 directory size", fileName: fileName)
            offset = try fittingInt(reader.uint64(at: recordOffset + 48), what: "zip64 directory offset", fileName: fileName)
        }
        guard offset <= candidate, size <= candidate - offset else {
            throw WeightFileError.malformedArchive(
                file: fileName, detail: "central directory at \(offset) of \(size) bytes overruns its end record at \(candidate)")
        }
        // Each central header is at least 46 bytes; a larger count is corruption and must not drive the loop.
        guard entryCount <= size / 46 else {
            throw WeightFileError.malformedArchive(
                file: fileName, detail: "\(entryCount) entries cannot fit a \(size)-byte central directory")
        }
        return CentralDirectory(offset: offset, end: offset + size, entryCount: entryCount)
    }

    private static func readCentralHeader(_ reader: ByteReader, at offset: inout Int, directoryEnd: Int,
                                          fileName: String) throws -> Entry {
        let fixedSize = 46
        guard directoryEnd - offset >= fixedSize, reader.uint32(at: offset) == centralHeaderSignature else {
            throw WeightFileError.malformedArchive(file: fileName, detail: "no central directory header at \(offset)")
        }
        let flags = reader.uint16(at: offset + 8)
        let method = Int(reader.uint16(at: offset + 10))
        var compressedSize = UInt64(reader.uint32(at: offset + 20))
        var uncompressedSize = UInt64(reader.uint32(at: offset + 24))
        let nameLength = Int(reader.uint16(at: offset + 28))
        let extraLength = Int(reader.uint16(at: offset + 30))
        let commentLength = Int(reader.uint16(at: offset + 32))
        var localHeaderOffset = UInt64(reader.uint32(at: offset + 42))
        let variableStart = offset + fixedSize
        guard directoryEnd - variableStart >= nameLength + extraLength + commentLength else {
            throw WeightFileError.malformedArchive(
                file: fileName, detail: "central directory header at \(offset) runs past the directory's end")
        }
        let name = String(decoding: reader.bytes(variableStart..<(variableStart + nameLength)), as: UTF8.self)

        // Zip64 extra field: only the saturated 32-bit fields are present, in this fixed order.
        var extra = variableStart + nameLength
        let extraEnd = extra + extraLength
        while extraEnd - extra >= 4 {
            let id = reader.uint16(at: extra), length = Int(reader.uint16(at: extra + 2))
            let fieldEnd = extra + 4 + length
            guard fieldEnd <= extraEnd else { break }
            if id == zip64ExtraFieldID {
                var cursor = extra + 4
                func next() -> UInt64? {
                    guard fieldEnd - cursor >= 8 else { return nil }
                    defer { cursor += 8 }
                    return reader.uint64(at: cursor)
                }
                if uncompressedSize == 0xFFFF_FFFF, let value = next() { uncompressedSize = value }
                if compressedSize == 0xFFFF_FFFF, let value = next() { compressedSize = value }
                if localHeaderOffset == 0xFFFF_FFFF, let value = next() { localHeaderOffset = value }
            }
            extra = fieldEnd
        }
        offset = extraEnd + commentLength

        guard flags & 0x1 == 0 else {
            throw WeightFileError.malformedArchive(file: fileName, detail: "entry '\(name)' is encrypted")
        }
        guard method == 0 else {
            throw WeightFileError.compressedEntry(file: fileName, entry: name, method: method)
        }
        guard compressedSize == uncompressedSize else {
            throw WeightFileError.malformedArchive(
                file: fileName, detail: "stored entry '\(name)' declares \(compressedSize) stored but \(uncompressedSize) uncompressed bytes")
        }
        let size = try fittingInt(compressedSize, what: "size of '\(name)'", fileName: fileName)
        let header = try fittingInt(localHeaderOffset, what: "offset of '\(name)'", fileName: fileName)
        let dataStart = try localDataStart(reader, header: header, entry: name, fileName: fileName)
        guard size <= reader.count - dataStart else {
            throw WeightFileError.truncated(file: fileName, structure: "zip entry '\(name)'", needed: size,
                                            available: reader.count - dataStart)
        }
        return Entry(name: name, dataRange: dataStart..<(dataStart + size))
    }

    /// The local header repeats the name and carries its own extra field (torch pads it to align data).
    private static func localDataStart(_ reader: ByteReader, header: Int, entry: String, fileName: String) throws -> Int {
        let fixedSize = 30
        guard header <= reader.count - fixedSize, reader.uint32(at: header) == localHeaderSignature else {
            throw WeightFileError.malformedArchive(file: fileName, detail: "no local header for '\(entry)' at \(header)")
        }
        let variableSize = Int(reader.uint16(at: header + 26)) + Int(reader.uint16(at: header + 28))
        let dataStart = header + fixedSize + variableSize
        guard dataStart <= reader.count else {
            throw WeightFileError.truncated(file: fileName, structure: "local header of '\(entry)'",
                                            needed: fixedSize + variableSize, available: reader.count - header)
        }
        return dataStart
    }

    private static func fittingInt(_ value: UInt64, what: String, fileName: String) throws -> Int {
        guard let result = Int(exactly: value) else {
            throw WeightFileError.malformedArchive(file: fileName, detail: "\(what) \(value) is out of range")
        }
        return result
    }
}
