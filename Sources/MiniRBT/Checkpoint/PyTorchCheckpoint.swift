import Foundation

/// Reader for `torch.save` state dicts (`pytorch_model.bin`) in the zip format torch writes since 1.6:
/// `<archive>/data.pkl` (the pickled dict), `<archive>/data/<key>` (raw little-endian storages) and
/// `<archive>/byteorder`.
///
/// The pickle runs on a restricted machine that only accepts the globals a state dict needs
/// (`collections.OrderedDict`, `torch._utils._rebuild_tensor_v2`, `torch._utils._rebuild_parameter`,
/// `torch.*Storage`), so a malicious checkpoint is refused, never executed. Tensors are rebuilt from
/// their storage offset, size and stride, so views and shared (tied) storages come out right.
public enum PyTorchCheckpoint {
    /// The pickle that opens pre-1.6 `torch.save` files: protocol 2, LONG1 of the format's magic number.
    private static let legacyMagicPrefix: [UInt8] = [0x80, 0x02, 0x8A, 0x0A, 0x6C, 0xFC, 0x9C, 0x46, 0xF9, 0x20, 0x6A, 0xA8, 0x50, 0x19]

    /// Reads every floating-point tensor of the state dict (float32, float16, bfloat16 widened exactly,
    /// float64 rounded to nearest). Integer and bool tensors (e.g. `position_ids`) are validated and
    /// skipped; non-tensor entries are ignored.
    public static func load(_ url: URL) throws -> [String: Tensor] {
        try decode(WeightFile.contents(of: url), fileName: url.lastPathComponent)
    }

    /// The float32 tensors rebuilt from a file may take at most this many times the file's size. Views
    /// are copied out of their storage, so without a total bound N views of one large storage would
    /// allocate N copies. 4 leaves room for 16-bit storages widened to float32 with tied (shared) weights.
    static let allocationFactor = 4
    /// Tensors of more dimensions are refused (torch itself stops at 64 in some kernels; BERT needs 2).
    static let maximumRank = 64

    static func decode(_ data: Data, fileName: String) throws -> [String: Tensor] {
        let bytes = Array(data.prefix(legacyMagicPrefix.count))
        if bytes == legacyMagicPrefix {
            throw WeightFileError.legacyTorchFormat(file: fileName)
        }
        if bytes.first == PickleMachine.protoOpcode {
            // A bare pickle has nowhere to keep storages; running it still reports refused globals precisely.
            return try unpickleStateDict(data, storages: nil, fileName: fileName, fileSize: data.count)
        }
        let archive = try ZipArchive(data, fileName: fileName)
        let prefix = try archivePrefix(archive, fileName: fileName)
        if let byteOrder = archive.contents(of: prefix + "byteorder") {
            let order = String(decoding: byteOrder.prefix(16), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            guard order == "little" else {
                throw WeightFileError.unsupportedByteOrder(file: fileName, byteOrder: order)
            }
        }
        guard let pickle = archive.contents(of: prefix + "data.pkl") else {
            throw WeightFileError.missingEntry(file: fileName, entry: prefix + "data.pkl")
        }
        return try unpickleStateDict(pickle, storages: StorageDirectory(archive: archive, prefix: prefix + "data/"),
                                     fileName: fileName, fileSize: data.count)
    }

    /// torch names the archive's top directory after the file (`archive/` by default); find it by its `data.pkl`.
    private static func archivePrefix(_ archive: ZipArchive, fileName: String) throws -> String {
        let candidates = archive.entries.keys.filter { name in
            let parts = name.split(separator: "/", omittingEmptySubsequences: false)
            return parts.count == 2 && parts[1] == "data.pkl"
        }
        guard candidates.count <= 1 else {
            throw WeightFileError.malformedArchive(
                file: fileName, detail: "several pickles (\(candidates.sorted().joined(separator: ", "))); expected one <archive>/data.pkl")
        }
        guard let pickle = candidates.first else {
            throw WeightFileError.missingEntry(file: fileName, entry: "<archive>/data.pkl")
        }
        return String(pickle.dropLast("data.pkl".count))
    }

    private static func unpickleStateDict(_ pickle: Data, storages: StorageDirectory?,
                                          fileName: String, fileSize: Int) throws -> [String: Tensor] {
        var machine = PickleMachine(pickle, fileName: fileName)
        let root = try machine.run(host: StateDictHost(storages: storages, fileName: fileName))
        guard case let .dict(stateDict) = root else {
            throw WeightFileError.malformedPickle(file: fileName, offset: pickle.count,
                                                  detail: "expected a state dict, the pickle holds a \(root.kind)")
        }
        guard let storages else {
            // The pickle was harmless, but with nowhere to keep storages it cannot hold any tensor.
            throw WeightFileError.malformedArchive(
                file: fileName, detail: "a bare pickle, not a torch.save zip archive with <archive>/data.pkl and data/ entries")
        }
        var tensors: [String: Tensor] = [:]
        let (limit, overflow) = fileSize.multipliedReportingOverflow(by: allocationFactor)
        var budget = Allocation(limit: overflow ? Int.max : limit)
        for (key, value) in stateDict.items {
            guard case let .tensor(view) = value else { continue }
            guard case let .string(name) = key else {
                throw WeightFileError.malformedPickle(file: fileName, offset: pickle.count,
                                                      detail: "a tensor is keyed by a \(key.kind), expected str")
            }
            if let tensor = try storages.materialize(view, name: name, fileName: fileName, budget: &budget) {
                tensors[name] = tensor
            }
        }
        return tensors
    }
}

/// Bytes of float32 tensors rebuilt so far from one file, against the file's allowance.
private struct Allocation {
    let limit: Int
    var used = 0
}

/// The `data/<key>` entries of a torch archive.
private struct StorageDirectory {
    let archive: ZipArchive
    let prefix: String

    func bytes(of storage: TorchStorage, fileName: String) throws -> Data {
        let entry = prefix + storage.key
        guard let data = archive.contents(of: entry) else {
            throw WeightFileError.missingEntry(file: fileName, entry: entry)
        }
        let (needed, overflow) = storage.elementCount.multipliedReportingOverflow(by: storage.elementType.byteSize)
        guard !overflow, data.count >= needed else {
            throw WeightFileError.truncated(
                file: fileName, structure: "storage '\(entry)' of \(storage.elementCount) \(storage.elementType) elements",
                needed: overflow ? Int.max : needed, available: data.count)
        }
        return data
    }

    /// Copies a (possibly strided) view out of its storage, or returns nil for integer and bool tensors.
    func materialize(_ declared: TorchTensorView, name: String, fileName: String, budget: inout Allocation) throws -> Tensor? {
        func invalid(_ detail: String) -> WeightFileError {
            .invalidTensor(file: fileName, tensor: name, detail: detail)
        }
        var view = declared
        let storage = view.storage
        guard view.shape.count == view.strides.count else {
            throw invalid("size \(view.shape) and stride \(view.strides) differ in rank")
        }
        guard view.shape.count <= PyTorchCheckpoint.maximumRank else {
            throw invalid("\(view.shape.count) dimensions exceed the supported \(PyTorchCheckpoint.maximumRank)")
        }
        // A size-1 dimension's stride is never used to reach an element (torch leaves it arbitrary), but the
        // copy loop would still add it: a huge one overflowed. Zero it, after checking it is not negative.
        guard view.storageOffset >= 0, view.strides.allSatisfy({ $0 >= 0 }), let count = checkedProduct(view.shape) else {
            throw invalid("negative or overflowing geometry: offset \(view.storageOffset), size \(view.shape), stride \(view.strides)")
        }
        view.strides = zip(view.shape, view.strides).map { size, stride in size == 1 ? 0 : stride }
        // Broadcast (stride-0) views could ask for far more elements than the file holds; refusing views
        // larger than their storage bounds every allocation by the file's size.
        guard count <= max(storage.elementCount, 1) || count == 0 else {
            throw invalid("view of \(count) elements exceeds its storage of \(storage.elementCount); broadcast views are not supported")
        }
        if count > 0 {
            var lastIndex = view.storageOffset
            for (size, stride) in zip(view.shape, view.strides) {
                let (span, overflow1) = (size - 1).multipliedReportingOverflow(by: stride)
                let (sum, overflow2) = lastIndex.addingReportingOverflow(span)
                guard !overflow1, !overflow2 else { throw invalid("stride \(view.strides) overflows") }
                lastIndex = sum
            }
            guard lastIndex < storage.elementCount else {
                throw invalid("view (offset \(view.storageOffset), size \(view.shape), stride \(view.strides)) reaches element"
                              + " \(lastIndex) of a storage of \(storage.elementCount) elements ('\(prefix + storage.key)')")
            }
        }
        let data = try bytes(of: storage, fileName: fileName)
        guard storage.elementType.isFloatingPoint else { return nil }
        let (byteCount, overflow) = count.multipliedReportingOverflow(by: MemoryLayout<Float>.size)
        guard !overflow, byteCount <= budget.limit - budget.used else {
            throw WeightFileError.allocationExceeded(file: fileName, tensor: name, bytes: overflow ? Int.max : byteCount,
                                                     alreadyAllocated: budget.used, limit: budget.limit)
        }
        budget.used += byteCount
        let values = data.withUnsafeBytes { bytes in
            Self.gather(view, count: count, from: bytes)
        }
        return Tensor(shape: view.shape, values: values)
    }

    /// Reads the view's elements in row-major order; contiguous views take the fast path.
    private static func gather(_ view: TorchTensorView, count: Int, from bytes: UnsafeRawBufferPointer) -> [Float] {
        // An empty view is never bounds-checked against its storage, so its offset may be anything (found by
        // fuzz-pickle: offset 2^62 overflowed `storageOffset * byteSize` below).
        guard count > 0 else { return [] }
        let elementType = view.storage.elementType
        let byteSize = elementType.byteSize
        if isContiguous(view) {
            return elementType.floats(in: bytes, atByte: view.storageOffset * byteSize, count: count)
        }
        let rank = view.shape.count
        // A size-1 dimension's stride never reaches an element and passes validation whatever it is
        // ((1 - 1) × stride = 0), but the odometer below adds it: a huge one overflowed `position`.
        let strides = zip(view.shape, view.strides).map { size, stride in size == 1 ? 0 : stride }
        var values: [Float] = []
        values.reserveCapacity(count)
        var index = [Int](repeating: 0, count: rank)
        var position = view.storageOffset
        for _ in 0..<count {
            values.append(elementType.float(in: bytes, atByte: position * byteSize) ?? 0)
            // Odometer over the multi-index, innermost dimension fastest.
            var dimension = rank - 1
            while dimension >= 0 {
                index[dimension] += 1
                position += strides[dimension]
                if index[dimension] < view.shape[dimension] { break }
                position -= strides[dimension] * view.shape[dimension]
                index[dimension] = 0
                dimension -= 1
            }
        }
        return values
    }

    /// Row-major contiguity; strides of size-1 dimensions are irrelevant (torch leaves them arbitrary).
    private static func isContiguous(_ view: TorchTensorView) -> Bool {
        var expected = 1
        for (size, stride) in zip(view.shape, view.strides).reversed() where size != 1 {
            guard stride == expected else { return false }
            expected *= size
        }
        return true
    }
}

/// The torch side of unpickling: the allow-list, the two rebuild functions and persistent storage ids.
private struct StateDictHost: PickleHost {
    let storages: StorageDirectory?
    let fileName: String

    func resolveGlobal(module: String, name: String) throws -> PickleValue {
        guard let global = TorchGlobal(module: module, name: name) else {
            throw PickleRejection.refusedGlobal(module: module, name: name)
        }
        return .global(global)
    }

    func call(_ callable: PickleValue, arguments: [PickleValue]) throws -> PickleValue {
        guard case let .global(global) = callable else {
            throw PickleRejection.invalid("REDUCE calls a \(callable.kind), expected an allowed global")
        }
        switch global {
        case .orderedDict:
            guard arguments.isEmpty else {
                throw PickleRejection.invalid("collections.OrderedDict takes no arguments here, got \(arguments.count)")
            }
            return .dict(PickleDict())
        case .rebuildTensor:
            return .tensor(try rebuildTensor(arguments))
        case .rebuildParameter:
            guard arguments.count == 3, case let .tensor(view) = arguments[0] else {
                throw PickleRejection.invalid("_rebuild_parameter expects (tensor, requires_grad, hooks), got \(describe(arguments))")
            }
            return .tensor(view)
        case .storageClass:
            throw PickleRejection.invalid("\(global.qualifiedName) may only appear in a persistent id, not be called")
        }
    }

    /// `_rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])`.
    private func rebuildTensor(_ arguments: [PickleValue]) throws -> TorchTensorView {
        guard arguments.count == 6 || arguments.count == 7,
              case let .storage(storage) = arguments[0],
              case let .int(offset) = arguments[1],
              let shape = integers(arguments[2]),
              let strides = integers(arguments[3]) else {
            throw PickleRejection.invalid(
                "_rebuild_tensor_v2 expects (storage, int, tuple of int, tuple of int, bool, hooks[, metadata]), got \(describe(arguments))")
        }
        return TorchTensorView(storage: storage, storageOffset: offset, shape: shape, strides: strides)
    }

    /// `('storage', torch.<Type>Storage, key, location, element_count)`, as `torch.save` writes it.
    func persistentLoad(_ id: PickleValue) throws -> PickleValue {
        guard case let .tuple(fields) = id, fields.count == 5,
              case .string("storage") = fields[0],
              case let .global(.storageClass(elementType, _)) = fields[1],
              case let .string(key) = fields[2],
              case .string = fields[3],
              case let .int(elementCount) = fields[4], elementCount >= 0 else {
            throw PickleRejection.invalid(
                "persistent id should be ('storage', torch.<Type>Storage, key, location, numel), got \(id.kind)")
        }
        guard storages != nil else {
            throw PickleRejection.invalid("storage '\(key)' referenced outside a torch zip archive")
        }
        // Storage keys become archive paths; keep them to plain names so they cannot point elsewhere.
        guard !key.isEmpty, !key.contains("/"), key != "..", key != "." else {
            throw PickleRejection.invalid("storage key '\(key)' is not a plain entry name")
        }
        return .storage(TorchStorage(key: key, elementType: elementType, elementCount: elementCount))
    }

    private func integers(_ value: PickleValue) -> [Int]? {
        guard case let .tuple(items) = value else { return nil }
        var result: [Int] = []
        for item in items {
            guard case let .int(number) = item else { return nil }
            result.append(number)
        }
        return result
    }

    private func describe(_ arguments: [PickleValue]) -> String {
        "(" + arguments.map(\.kind).joined(separator: ", ") + ")"
    }
}
