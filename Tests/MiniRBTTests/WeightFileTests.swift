import Foundation
import Testing
@testable import MiniRBT

/// Weight-file readers against fixtures from scripts/fixtures/make_weight_fixtures.py, whose expected
/// values come from PyTorch itself, and against the shared MiniRBT checkpoints.
@Suite struct WeightFileTests {
    /// Resolved so the paths hold when the test file is reached through a symlink.
    static let testsDirectory = URL(fileURLWithPath: #filePath).resolvingSymlinksInPath().deletingLastPathComponent()
    static let fixtures = testsDirectory.appendingPathComponent("Fixtures/weights")
    /// ../shared next to the package root.
    static let sharedModels = testsDirectory.deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("shared/models/minirbt-h256-chnsenticorp")

    static func fixture(_ name: String) -> URL { fixtures.appendingPathComponent(name) }

    // MARK: - Expected values

    struct ExpectedTensor: Decodable {
        var shape: [Int]
        /// float32 bit patterns in hex, so NaN, -0.0 and subnormals compare exactly.
        var bits: [String]
    }

    struct ExpectedFile: Decodable {
        var tensors: [String: ExpectedTensor]
        var skipped: [String]
    }

    static func expectation(for file: String) throws -> ExpectedFile {
        let data = try Data(contentsOf: fixture("expected.json"))
        let all = try JSONDecoder().decode([String: ExpectedFile].self, from: data)
        return try #require(all[file], "expected.json has no entry for \(file)")
    }

    /// Hex bit patterns, with every NaN spelled "nan": payloads differ between converters and mean nothing.
    static func bitPatterns(_ values: [Float]) -> [String] {
        values.map { $0.isNaN ? "nan" : String($0.bitPattern, radix: 16).leftPadded(to: 8) }
    }

    static func expectMatches(_ tensors: [String: Tensor], _ expected: ExpectedFile) {
        #expect(Set(tensors.keys) == Set(expected.tensors.keys))
        for name in expected.skipped {
            #expect(tensors[name] == nil, "\(name) is not a floating-point tensor and should be skipped")
        }
        for (name, want) in expected.tensors {
            guard let tensor = tensors[name] else { continue }
            #expect(tensor.shape == want.shape, "shape of \(name)")
            let wantValues = want.bits.compactMap { UInt32($0, radix: 16).map(Float.init(bitPattern:)) }
            #expect(bitPatterns(tensor.values) == bitPatterns(wantValues), "values of \(name)")
        }
    }

    /// Tensor equality that treats NaN as equal to NaN, for comparing two loads of one file.
    static func sameContents(_ lhs: [String: Tensor], _ rhs: [String: Tensor]) -> Bool {
        lhs.mapValues { [$0.shape.description] + bitPatterns($0.values) }
            == rhs.mapValues { [$0.shape.description] + bitPatterns($0.values) }
    }

    // MARK: - Well-formed files

    @Test(arguments: ["f32.safetensors", "f16.safetensors", "bf16.safetensors"])
    func safeTensorsValuesAreExact(file: String) throws {
        let tensors = try SafeTensors.load(Self.fixture(file))
        Self.expectMatches(tensors, try Self.expectation(for: file))
        #expect(Self.sameContents(try WeightFile.load(Self.fixture(file)), tensors))
    }

    @Test(arguments: ["state-dict.bin", "zip64.bin"])
    func torchStateDictValuesAreExact(file: String) throws {
        let tensors = try PyTorchCheckpoint.load(Self.fixture(file))
        Self.expectMatches(tensors, try Self.expectation(for: file))
        #expect(Self.sameContents(try WeightFile.load(Self.fixture(file)), tensors))
    }

    /// Independent of expected.json: the saved views must agree with the base tensor they share storage with.
    @Test func torchViewsAndSharedStoragesAreRebuiltFromStrides() throws {
        let tensors = try PyTorchCheckpoint.load(Self.fixture("state-dict.bin"))
        let base = try #require(tensors["base"])
        #expect(base.shape == [3, 4])
        #expect(base.values == (0..<12).map { Float($0) / 8 })
        func element(_ row: Int, _ column: Int) -> Float { base.values[row * 4 + column] }

        let transposed = try #require(tensors["base_transposed"])
        #expect(transposed.shape == [4, 3])
        #expect(transposed.values == (0..<4).flatMap { column in (0..<3).map { row in element(row, column) } })

        let slice = try #require(tensors["base_slice"])
        #expect(slice.shape == [2, 2])
        #expect(slice.values == [element(1, 1), element(1, 2), element(2, 1), element(2, 2)])

        let column = try #require(tensors["base_column"])
        #expect(column.values == [element(0, 2), element(1, 2), element(2, 2)])

        #expect(tensors["tied_a"] == tensors["dense.weight"])
        #expect(tensors["scalar"] == Tensor(shape: [], values: [-7.25]))
    }

    /// A header length whose low byte is 0x80 (pickle's PROTO opcode) is still safetensors.
    @Test func safeTensorsWhoseHeaderLengthStartsLikeAPickle() throws {
        var header = Array(#"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#.utf8)
        header += [UInt8](repeating: UInt8(ascii: " "), count: 0x80 - header.count)
        var bytes: [UInt8] = [0x80, 0, 0, 0, 0, 0, 0, 0] + header
        for value in [Float(1.5), -2] { bytes += withUnsafeBytes(of: value.bitPattern.littleEndian, Array.init) }
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("header-0x80-\(UUID()).safetensors")
        try Data(bytes).write(to: url)
        defer { try? FileManager.default.removeItem(at: url) }
        let tensors = try WeightFile.load(url)
        #expect(tensors["w"] == Tensor(shape: [2], values: [1.5, -2]))
    }

    @Test func halfWideningMatchesFloat16ForEveryBitPattern() {
        for bits in UInt16.min...UInt16.max {
            let reference = Float(Float16(bitPattern: bits))
            let widened = ElementType.widenHalf(bits)
            if reference.isNaN {
                #expect(widened.isNaN, "0x\(String(bits, radix: 16))")
            } else if widened.bitPattern != reference.bitPattern {
                Issue.record("0x\(String(bits, radix: 16)): \(widened) != \(reference)")
            }
        }
    }

    // MARK: - Shared checkpoints

    @Test func loadsSharedCheckpoints() throws {
        let v1 = try WeightFile.load(Self.sharedModels.appendingPathComponent("v1/model.safetensors")) // F16
        let v2 = try WeightFile.load(Self.sharedModels.appendingPathComponent("v2/model.safetensors")) // F32
        #expect(v1.count == 105)
        #expect(v1["bert.embeddings.word_embeddings.weight"]?.shape == [21128, 256])
        #expect(v1["bert.encoder.layer.0.attention.self.query.weight"]?.shape == [256, 256])
        #expect(v1.mapValues(\.shape) == v2.mapValues(\.shape))
        #expect(v1.values.allSatisfy { $0.values.allSatisfy(\.isFinite) })
    }

    // MARK: - Malformed safetensors

    @Test func unrecognizedContentIsNamedWithItsLeadingBytes() throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("weights-\(UUID().uuidString).txt")
        try Data("hello, world".utf8).write(to: url)
        defer { try? FileManager.default.removeItem(at: url) }
        let error = #expect(throws: WeightFileError.self) { try WeightFile.load(url) }
        #expect(error == .unrecognizedFormat(file: url.lastPathComponent, leadingBytes: Array("hello, w".utf8)))
        #expect(error?.description.hasSuffix("not a safetensors file, torch zip archive or pickle (starts with 68 65 6c 6c 6f 2c 20 77)") == true)
    }

    @Test func safeTensorsOffsetBeyondDataSection() throws {
        let error = #expect(throws: WeightFileError.self) { try WeightFile.load(Self.fixture("out-of-range.safetensors")) }
        #expect(error == .tensorOutOfBounds(file: "out-of-range.safetensors", tensor: "w", range: 8..<24, dataSectionSize: 16))
        #expect(error?.description == "out-of-range.safetensors: tensor 'w' declares 16 bytes at 8..<24 but the data section holds 16")
    }

    @Test func safeTensorsTruncatedInDataSection() throws {
        let error = #expect(throws: WeightFileError.self) { try SafeTensors.load(Self.fixture("truncated-data.safetensors")) }
        guard case let .tensorOutOfBounds(file, _, range, dataSectionSize)? = error else {
            Issue.record("expected tensorOutOfBounds, got \(String(describing: error))")
            return
        }
        #expect(file == "truncated-data.safetensors")
        #expect(dataSectionSize == 40)
        #expect(range.upperBound > 40)
    }

    @Test func safeTensorsTruncatedInHeader() throws {
        let error = #expect(throws: WeightFileError.self) { try SafeTensors.load(Self.fixture("truncated-header.safetensors")) }
        guard case let .truncated(file, structure, needed, available)? = error else {
            Issue.record("expected truncated, got \(String(describing: error))")
            return
        }
        #expect(file == "truncated-header.safetensors")
        #expect(structure == "the JSON header")
        #expect(available < needed)
    }

    @Test func safeTensorsSizeDisagreeingWithShape() throws {
        let error = #expect(throws: WeightFileError.self) { try WeightFile.load(Self.fixture("size-mismatch.safetensors")) }
        #expect(error == .tensorSizeMismatch(file: "size-mismatch.safetensors", tensor: "w", shape: [2, 3], dtype: "F32",
                                             expectedBytes: 24, declaredBytes: 16))
    }

    @Test func safeTensorsHeaderErrors() throws {
        for (file, mentions) in [("fractional-shape.safetensors", "at w.shape[0]: 2.5 is not an integer"),
                                ("bad-json.safetensors", "not valid JSON")] {
            let error = #expect(throws: WeightFileError.self) { try WeightFile.load(Self.fixture(file)) }
            guard case let .malformedHeader(reportedFile, detail)? = error else {
                Issue.record("\(file): expected malformedHeader, got \(String(describing: error))")
                continue
            }
            #expect(reportedFile == file)
            #expect(detail.contains(mentions), "\(detail)")
        }
    }

    @Test func safeTensorsUnsupportedDType() throws {
        let error = #expect(throws: WeightFileError.self) { try WeightFile.load(Self.fixture("unsupported-dtype.safetensors")) }
        #expect(error == .unsupportedDType(file: "unsupported-dtype.safetensors", tensor: "w", dtype: "F8_E4M3"))
    }

    @Test func safeTensorsHeaderLengthBeyondFile() throws {
        var bytes = Data([0x00, 0x10, 0, 0, 0, 0, 0, 0]) // 4096-byte header
        bytes.append(contentsOf: Array("{}".utf8))
        let error = #expect(throws: WeightFileError.self) { try SafeTensors.decode(bytes, fileName: "x.safetensors") }
        #expect(error == .truncated(file: "x.safetensors", structure: "the JSON header", needed: 4096, available: 2))
    }

    // MARK: - Malformed or hostile torch checkpoints

    @Test func refusesOsSystemWithoutRunningIt() throws {
        let error = #expect(throws: WeightFileError.self) { try WeightFile.load(Self.fixture("os-system.pkl")) }
        #expect(error == .refusedGlobal(file: "os-system.pkl", module: "os", name: "system"))
        #expect(error?.description == "os-system.pkl: refused pickle global 'os.system' (a state dict only needs"
                + " torch._utils._rebuild_tensor_v2, collections.OrderedDict, torch.*Storage)")
    }

    @Test func refusesUnknownClassInsideTorchArchive() throws {
        let error = #expect(throws: WeightFileError.self) { try PyTorchCheckpoint.load(Self.fixture("unknown-reduce.bin")) }
        #expect(error == .refusedGlobal(file: "unknown-reduce.bin", module: "__main__", name: "Payload"))
    }

    @Test func storageEntryShorterThanDeclared() throws {
        let error = #expect(throws: WeightFileError.self) { try PyTorchCheckpoint.load(Self.fixture("truncated-storage.bin")) }
        #expect(error == .truncated(file: "truncated-storage.bin", structure: "storage 'state-dict/data/1' of 6 float32 elements",
                                    needed: 24, available: 12))
    }

    @Test func viewReachingPastItsStorage() throws {
        let error = #expect(throws: WeightFileError.self) { try PyTorchCheckpoint.load(Self.fixture("view-past-storage.bin")) }
        #expect(error == .invalidTensor(
            file: "view-past-storage.bin", tensor: "w",
            detail: "view (offset 1, size [2, 2], stride [2, 1]) reaches element 4 of a storage of 4 elements ('view-past-storage/data/0')"))
    }

    @Test func broadcastViewLargerThanItsStorage() throws {
        let error = #expect(throws: WeightFileError.self) { try PyTorchCheckpoint.load(Self.fixture("broadcast-view.bin")) }
        #expect(error == .invalidTensor(
            file: "broadcast-view.bin", tensor: "w",
            detail: "view of 1000 elements exceeds its storage of 4; broadcast views are not supported"))
    }

    @Test func compressedEntriesAreRefused() throws {
        let error = #expect(throws: WeightFileError.self) { try PyTorchCheckpoint.load(Self.fixture("compressed.bin")) }
        guard case let .compressedEntry(file, _, method)? = error else {
            Issue.record("expected compressedEntry, got \(String(describing: error))")
            return
        }
        #expect(file == "compressed.bin")
        #expect(method == 8)
    }

    @Test func truncatedArchiveHasNoDirectory() throws {
        let error = #expect(throws: WeightFileError.self) { try WeightFile.load(Self.fixture("truncated-archive.bin")) }
        guard case let .malformedArchive(file, detail)? = error else {
            Issue.record("expected malformedArchive, got \(String(describing: error))")
            return
        }
        #expect(file == "truncated-archive.bin")
        #expect(detail.contains("no end-of-central-directory record"))
    }

    @Test func bigEndianStoragesAreRefused() throws {
        let error = #expect(throws: WeightFileError.self) { try PyTorchCheckpoint.load(Self.fixture("big-endian.bin")) }
        #expect(error == .unsupportedByteOrder(file: "big-endian.bin", byteOrder: "big"))
    }

    @Test func legacyFormatIsNamed() throws {
        let error = #expect(throws: WeightFileError.self) { try WeightFile.load(Self.fixture("legacy.bin")) }
        #expect(error == .legacyTorchFormat(file: "legacy.bin"))
    }

    /// Hand-written pickles for the machine's own failure modes; each must fail with a precise error.
    @Test(arguments: [
        ([0x80, 0x02, 0x81, 0x2E], WeightFileError.unsupportedOpcode(file: "p", opcode: 0x81, offset: 2)), // NEWOBJ
        ([0x80, 0x02, 0x52, 0x2E], .malformedPickle(file: "p", offset: 2, detail: "stack underflow")), // REDUCE on nothing
        ([0x80, 0x02, 0x68, 0x05, 0x2E], .malformedPickle(file: "p", offset: 2, detail: "memo has no entry 5")),
        ([0x80, 0x02, 0x58, 0xFF, 0, 0, 0, 0x41], .truncated(file: "p", structure: "pickle operand at byte 2", needed: 255, available: 1)),
        ([0x80, 0x02, 0x4E], .truncated(file: "p", structure: "pickle an opcode at byte 3", needed: 1, available: 0)),
        ([0x80, 0x02, 0x4E, 0x2E], .malformedPickle(file: "p", offset: 4, detail: "expected a state dict, the pickle holds a None")),
        ([0x80, 0x04, 0x8C, 0x05] + Array("posix".utf8) + [0x8C, 0x06] + Array("system".utf8) + [0x93, 0x2E],
         .refusedGlobal(file: "p", module: "posix", name: "system")), // STACK_GLOBAL
        ([0x80, 0x02, 0x4E, 0x28, 0x73, 0x2E], .malformedPickle(file: "p", offset: 4, detail: "needs 2 stack entries, 0 available")),
    ] as [([UInt8], WeightFileError)])
    func hostilePicklesFailPrecisely(bytes: [UInt8], expected: WeightFileError) throws {
        let error = #expect(throws: WeightFileError.self) { try PyTorchCheckpoint.decode(Data(bytes), fileName: "p") }
        #expect(error == expected)
    }

    /// A host that allows nothing: plain data must unpickle without it.
    struct NoGlobalsHost: PickleHost {
        func resolveGlobal(module: String, name: String) throws -> PickleValue {
            throw PickleRejection.refusedGlobal(module: module, name: name)
        }
        func call(_ callable: PickleValue, arguments: [PickleValue]) throws -> PickleValue {
            throw PickleRejection.invalid("no calls")
        }
        func persistentLoad(_ id: PickleValue) throws -> PickleValue {
            throw PickleRejection.invalid("no persistent ids")
        }
    }

    @Test func integerAndFloatOperandsDecode() throws {
        // {'a': -2 (LONG1), 'b': 2**40 (LONG1), 'c': -70000 (BININT), 'd': 65535 (BININT2), 'e': 0.5 (BINFLOAT)}
        let pickle: [UInt8] = [0x80, 0x02, 0x7D, 0x28,
                               0x8C, 0x01, 0x61, 0x8A, 0x01, 0xFE,
                               0x8C, 0x01, 0x62, 0x8A, 0x06, 0, 0, 0, 0, 0, 0x01,
                               0x8C, 0x01, 0x63, 0x4A, 0x90, 0xEE, 0xFE, 0xFF,
                               0x8C, 0x01, 0x64, 0x4D, 0xFF, 0xFF,
                               0x8C, 0x01, 0x65, 0x47, 0x3F, 0xE0, 0, 0, 0, 0, 0, 0,
                               0x75, 0x2E]
        var machine = PickleMachine(Data(pickle), fileName: "p")
        guard case let .dict(dict) = try machine.run(host: NoGlobalsHost()) else {
            Issue.record("expected a dict")
            return
        }
        let decoded: [String] = dict.items.map { key, value in
            switch (key, value) {
            case let (.string(name), .int(number)): return "\(name)=\(number)"
            case let (.string(name), .float(number)): return "\(name)=\(number)"
            default: return "unexpected \(key.kind): \(value.kind)"
            }
        }
        #expect(decoded == ["a=-2", "b=\(1 << 40)", "c=-70000", "d=65535", "e=0.5"])
    }
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
