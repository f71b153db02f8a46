import Foundation
import Testing
@testable import MiniRBT

/// Crafted weight files that used to crash the loader or allocate far beyond their size. The files are in
/// Fixtures/weights/corpus (scripts/fixtures/make_hostile_corpus.py); every one must fail with a
/// `WeightFileError`, never trap.
@Suite struct HostileWeightFileTests {
    static let corpus = WeightFileTests.fixtures.appendingPathComponent("corpus")

    static func corpusFile(_ name: String) -> URL { corpus.appendingPathComponent(name) }

    /// The regression corpus as a whole: a new crash file dropped into the directory is covered here.
    @Test func corpusFilesFailCleanly() throws {
        let files = try FileManager.default.contentsOfDirectory(atPath: Self.corpus.path).sorted()
        #expect(files.count >= 6)
        for name in files where name != "size1-huge-stride.bin" { // that one is valid once its stride is ignored
            #expect(throws: WeightFileError.self, "\(name)") { try WeightFile.load(Self.corpusFile(name)) }
        }
    }

    @Test func aSizeOneDimensionsStrideIsIgnored() throws {
        // shape [2, 1], stride [2, Int.max]: the second stride used to overflow the copy loop.
        let tensors = try WeightFile.load(Self.corpusFile("size1-huge-stride.bin"))
        #expect(tensors["w"] == Tensor(shape: [2, 1], values: [0, 2]))
    }

    @Test func manyViewsOfOneStorageAreBoundedByTheFileSize() throws {
        let url = Self.corpusFile("many-views.bin")
        let size = try #require(try FileManager.default.attributesOfItem(atPath: url.path)[.size] as? Int)
        let error = #expect(throws: WeightFileError.self) { try WeightFile.load(url) }
        guard case let .allocationExceeded(file, _, bytes, alreadyAllocated, limit)? = error else {
            Issue.record("expected allocationExceeded, got \(String(describing: error))")
            return
        }
        #expect(file == "many-views.bin")
        #expect(limit == size * PyTorchCheckpoint.allocationFactor)
        #expect(bytes == 4 << 16 && alreadyAllocated + bytes > limit)
    }

    @Test(arguments: ["deep-tuple1.pkl", "deep-list.pkl"])
    func deepNestingIsRefusedNotRecursedInto(file: String) throws {
        let error = #expect(throws: WeightFileError.self) { try WeightFile.load(Self.corpusFile(file)) }
        guard case let .malformedPickle(_, _, detail)? = error else {
            Issue.record("expected malformedPickle, got \(String(describing: error))")
            return
        }
        #expect(detail == "containers nest deeper than \(PickleMachine.maximumNestingDepth) levels")
    }

    @Test func aListCannotContainItself() throws {
        let error = #expect(throws: WeightFileError.self) { try WeightFile.load(Self.corpusFile("self-append.pkl")) }
        #expect(error == .malformedPickle(file: "self-append.pkl", offset: 4, detail: "a list cannot contain itself"))
    }

    @Test func aNestedContainerCannotBeChangedAfterwards() throws {
        // EMPTY_LIST, MEMOIZE, TUPLE1 (nests it), BINGET 0, EMPTY_LIST, APPEND: the memoized list grows
        // deeper behind its parent's recorded depth.
        let bytes: [UInt8] = [0x80, 0x04, 0x5D, 0x94, 0x85, 0x68, 0x00, 0x5D, 0x61, 0x2E]
        let error = #expect(throws: WeightFileError.self) { try PyTorchCheckpoint.decode(Data(bytes), fileName: "p") }
        #expect(error == .malformedPickle(file: "p", offset: 8, detail: "APPEND(S) to a list already nested in another container"))
    }

    @Test func nestingWithinTheLimitStillUnpickles() throws {
        let depth = PickleMachine.maximumNestingDepth
        var machine = PickleMachine(Data([0x80, 0x02, 0x29] + [UInt8](repeating: 0x85, count: depth - 1) + [0x2E]), fileName: "p")
        guard case .tuple = try machine.run(host: WeightFileTests.NoGlobalsHost()) else {
            Issue.record("expected a tuple")
            return
        }
        var tooDeep = PickleMachine(Data([0x80, 0x02, 0x29] + [UInt8](repeating: 0x85, count: depth) + [0x2E]), fileName: "p")
        #expect(throws: WeightFileError.self) { try tooDeep.run(host: WeightFileTests.NoGlobalsHost()) }
    }

    @Test func overlappingSafeTensorsAreRefused() throws {
        let error = #expect(throws: WeightFileError.self) { try WeightFile.load(Self.corpusFile("overlapping.safetensors")) }
        guard case let .overlappingTensors(file, first, second)? = error else {
            Issue.record("expected overlappingTensors, got \(String(describing: error))")
            return
        }
        #expect(file == "overlapping.safetensors" && first != second)
    }

    @Test func safeTensorsWithAdjacentAndEmptyTensorsStillLoad() throws {
        let header = Array(#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"e":{"dtype":"F32","shape":[0],"data_offsets":[4,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#.utf8)
        var bytes = withUnsafeBytes(of: UInt64(header.count).littleEndian, Array.init) + header
        for value in [Float(1), 2] { bytes += withUnsafeBytes(of: value.bitPattern.littleEndian, Array.init) }
        let tensors = try SafeTensors.decode(Data(bytes), fileName: "ok.safetensors")
        #expect(tensors["a"]?.values == [1] && tensors["b"]?.values == [2] && tensors["e"]?.values == [])
    }
}
