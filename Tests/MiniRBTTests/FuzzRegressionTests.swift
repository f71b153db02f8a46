import Foundation
import Testing
@testable import MiniRBT

/// Inputs that crashed a fuzz target (Fuzz/Regressions/<target>/, see Fuzz/README.md), run through the same
/// entry point as the target: each must now be answered with a thrown error or a correct result, never a trap.
@Suite struct FuzzRegressionTests {
    static let repositoryRoot = URL(fileURLWithPath: #filePath).resolvingSymlinksInPath()
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The files of Fuzz/Regressions/<target>, by name.
    static func inputs(_ target: String) -> [String] {
        let directory = repositoryRoot.appendingPathComponent("Fuzz/Regressions/\(target)")
        return ((try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []).sorted()
    }

    static func input(_ target: String, _ name: String) throws -> Data {
        try Data(contentsOf: repositoryRoot.appendingPathComponent("Fuzz/Regressions/\(target)/\(name)"))
    }

    // MARK: - fuzz-pickle

    /// What fuzz-pickle does with its input: `data.pkl` of a torch archive whose storages `0`...`3` hold
    /// 64 bytes each (Fuzz/Targets/pickle/main.swift).
    static func pickleArchive(_ pickle: Data) -> Data {
        storedZip([("archive/data.pkl", Array(pickle)), ("archive/byteorder", Array("little".utf8))] + storages)
    }

    static let storages: [(name: String, bytes: [UInt8])] = (0..<4).map { key in
        ("archive/data/\(key)", (0..<64).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ key &* 101) })
    }

    /// Float32 element `index` of storage `key`.
    static func storageFloat(_ key: Int, _ index: Int) -> Float {
        let bytes = storages[key].bytes[(index * 4)..<(index * 4 + 4)]
        return Float(bitPattern: bytes.reversed().reduce(0) { $0 << 8 | UInt32($1) })
    }

    @Test("fuzz-pickle regressions: an error or tensors that match their shapes", arguments: inputs("pickle"))
    func pickleInput(_ name: String) throws {
        let archive = Self.pickleArchive(try Self.input("pickle", name))
        do {
            let tensors = try PyTorchCheckpoint.decode(archive, fileName: name)
            for tensor in tensors.values {
                #expect(tensor.shape.reduce(1, *) == tensor.values.count)
            }
        } catch {
            #expect(error is WeightFileError)
        }
    }

    /// Shape (0,) at storage offset 2^62: the bounds checks skip empty views, and the copy then computed
    /// offset × 8 and overflowed (PyTorchCheckpoint.swift, gather).
    @Test func emptyViewWithHugeOffsetIsEmpty() throws {
        let archive = Self.pickleArchive(try Self.input("pickle", "empty-view-huge-offset"))
        let tensors = try PyTorchCheckpoint.decode(archive, fileName: "empty-view-huge-offset")
        #expect(tensors["w"] == Tensor(shape: [0], values: []))
    }

    /// Shape (2, 1, 2), stride (1, Int.max, 2), offset 1: the size-1 dimension's stride is never used to reach
    /// an element, but the copy loop added it and overflowed (PyTorchCheckpoint.swift, gather).
    @Test func sizeOneDimensionWithHugeStrideIsIgnored() throws {
        let archive = Self.pickleArchive(try Self.input("pickle", "size1-dimension-huge-stride"))
        let tensors = try PyTorchCheckpoint.decode(archive, fileName: "size1-dimension-huge-stride")
        let expected = [1, 3, 2, 4].map { Self.storageFloat(0, $0) }
        #expect(tensors["w"]?.shape == [2, 1, 2])
        #expect(tensors["w"]?.values.map(\.bitPattern) == expected.map(\.bitPattern))
    }

    /// Deeply nested containers (100k TUPLE1, 50k nested lists): releasing the nested PickleValue chain
    /// recursed once per level and overflowed the stack; the pickle machine now refuses nesting past 100.
    @Test(arguments: ["nested-tuple1-100k", "nested-lists-50k"])
    func deeplyNestedPickleIsRefused(_ name: String) throws {
        let pickle = try Data(contentsOf: Self.repositoryRoot.appendingPathComponent("Fuzz/Regressions/pickle/\(name)"))
        #expect(throws: WeightFileError.self) {
            try PyTorchCheckpoint.decode(Self.pickleArchive(pickle), fileName: name)
        }
    }
}

/// A stored (method 0) zip archive, as fuzz-pickle builds it (the reader does not check CRCs).
private func storedZip(_ entries: [(name: String, bytes: [UInt8])]) -> Data {
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
