import CDNNL

/// `ComputeKernels` on oneDNN primitives, the inference engine:
///
/// - each linear layer's weights are packed once into the layout the kernels read fastest (the primitive
///   chooses it; nothing here assumes an instruction set): fp32 and bf16 for oneDNN, int8 for the
///   process's ``Int8Backend``;
/// - fp32 and bf16 run bias, activation and the residual sum inside the matmul as post-ops, so each
///   activation matrix is written once; int8 quantises each row with its own scale, multiplies exactly in
///   int32 and dequantises in one pass (``Int8Epilogue``), so a text's result does not depend on its batch;
/// - primitives are created once per (layer shape, padded row count) and reused by every layer and batch;
/// - attention runs per text with all heads in one batched matmul, texts spread over the OpenMP team.
///
/// Whether `precision` runs fast on this CPU is decided in `init`, which throws if it does not. Should
/// oneDNN still refuse one shape later (a row count no probe covered), that product is computed in fp32
/// (``fallbackProducts`` counts them) and attention by the reference kernels: never a trap.
///
/// Layers whose `LinearWeights.allowsReducedPrecision` is false (the heads) always run in fp32.
/// Not thread-safe: one instance per inference session.
package final class PackedKernels: ComputeKernels {
    package let precision: Precision
    private let stream: DNNLStream
    private let weightsForFallback: BertWeights
    /// Each fp32/bf16 layer's weights, packed in each layout one of its primitives reads (normally one).
    private var packed: [PackKey: PackedLinear] = [:]
    private var int8Layers: [String: Int8Linear] = [:]
    private var primitives: [LinearPrimitive.Key: PreparedProduct] = [:]
    /// The weight layouts oneDNN chose per layer shape; the first serves every row count unless oneDNN
    /// refuses it for one (a CPU whose kernels block weights by row count), which then gets its own.
    private var weightLayouts: [LayoutKey: [dnnl_memory_desc_t]] = [:]
    /// One per OpenMP team member, each with its own stream and scratch: attention runs texts in parallel.
    private var attentionWorkers: [AttentionWorker] = []
    /// Activations converted to the product's input format, int8 row scales and accumulators.
    private var converted = ScratchBuffer()
    private var rowScales = ScratchBuffer()
    private var accumulators = ScratchBuffer()
    /// fp32 kernels for products oneDNN refused in `precision` after all; made on first need.
    private var fp32Fallback: (any ComputeKernels)?
    /// Products computed by the fallback instead of in `precision` (0 on every CPU seen so far).
    package private(set) var fallbackProducts = 0

    private struct LayoutKey: Hashable {
        let inputs: Int
        let outputs: Int
        let precision: Precision
    }

    private struct PackKey: Hashable {
        let layer: String
        let layout: Int
    }

    private struct PreparedProduct {
        let primitive: LinearPrimitive
        /// Index into `weightLayouts` of the layout the primitive reads its weights in.
        let layout: Int
    }

    /// Elements below which an element-wise loop stays on one thread (a few microseconds of work, about
    /// what waking the OpenMP team costs).
    private static let elementGrain = 16_384

    /// Row count the first weight layout of each shape is chosen for.
    private static let referenceRows = 128

    /// Row counts probed at load, from one short text to a full batch of long ones, so a precision this
    /// CPU cannot run fast is refused here rather than discovered on a batch.
    private static let probedRows = [8, referenceRows, 2048]

    /// Packs every linear layer of `weights` up front and probes each shape at a few row counts.
    /// - Throws: `KernelError` when this CPU has no fast kernel for `precision` (bf16 without AVX-512
    ///   BF16 or AMX; int8 without AVX2).
    package init(precision: Precision, weights: BertWeights) throws(KernelError) {
        self.precision = precision
        self.weightsForFallback = weights
        stream = try DNNLStream()
        for layer in weights.linearLayers {
            switch format(of: layer) {
            case .int8:
                let backend = try Int8Backend.selected.get()
                int8Layers[layer.name] = try Int8Linear(layer, backend: backend, stream: stream)
            case let format:
                _ = try pack(layer, layout: 0)
                for rows in Self.probedRows {
                    for epilogue in [LinearEpilogue.bias, .residual] {
                        _ = try product(LinearPrimitive.Key(inputs: layer.inputSize, outputs: layer.outputSize, rows: rows,
                                                            precision: format, epilogue: epilogue))
                    }
                }
            }
        }
    }

    package func linear(_ input: MatrixView, _ layer: LinearWeights, _ epilogue: LinearEpilogue, into output: MatrixView) {
        precondition(input.columns == layer.inputSize && output.columns == layer.outputSize && input.rows == output.rows
                     && input.rowStride == input.columns && output.rowStride == output.columns,
                     "linear \(layer.inputSize)→\(layer.outputSize) applied to \(input.rows)×\(input.columns) into \(output.rows)×\(output.columns)")
        guard input.rows > 0 else { return }
        let done = if let int8 = int8Layers[layer.name] {
            linearInt8(input, int8, epilogue, into: output)
        } else {
            linearOneDNN(input, layer, epilogue, into: output)
        }
        if !done {
            fallbackProducts += 1
            fallback().linear(input, layer, epilogue, into: output)
        }
    }

    private func linearOneDNN(_ input: MatrixView, _ layer: LinearWeights, _ epilogue: LinearEpilogue,
                              into output: MatrixView) -> Bool {
        let rows = RowPadding.rows(for: input.rows)
        let format = format(of: layer)
        guard let prepared = try? product(LinearPrimitive.Key(inputs: layer.inputSize, outputs: layer.outputSize, rows: rows,
                                                              precision: format, epilogue: epilogue)),
              let weights = try? pack(layer, layout: prepared.layout) else { return false }
        let primitive = prepared.primitive
        stageSource(input, paddedTo: rows, format: format, for: primitive)
        if epilogue == .residual {
            // The sum post-op reads the padding rows too; keep them finite.
            (output.base + output.rows * output.columns).update(repeating: 0, count: (rows - output.rows) * output.columns)
        }
        primitive.bias.point(at: weights.bias.baseAddress.unsafelyUnwrapped)
        primitive.weights.point(at: weights.weights)
        primitive.destination.point(at: output.base)
        return primitive.execute(on: stream)
    }

    /// Quantise each row, multiply exactly, dequantise with bias and activation (or add to the residual).
    private func linearInt8(_ input: MatrixView, _ layer: Int8Linear, _ epilogue: LinearEpilogue,
                            into output: MatrixView) -> Bool {
        let rows = RowPadding.rows(for: input.rows)
        let bytes = converted.reserve(bytes: rows * layer.inputs).assumingMemoryBound(to: Int8.self)
        let scales = rowScales.reserve(bytes: rows * 4).assumingMemoryBound(to: Float.self)
        let sums = accumulators.reserve(bytes: rows * layer.outputs * 4).assumingMemoryBound(to: Int32.self)
        Int8Epilogue.quantizeRows(input, into: bytes, scales: scales)
        guard layer.multiply(bytes, rows: input.rows, into: sums, stream: stream) else { return false }
        Int8Epilogue.dequantize(sums, rowScales: scales, layer: layer, epilogue: epilogue, into: output)
        return true
    }

    /// Points `primitive` at `input` in the product's source format — fp32 as is, bf16 converted — with
    /// the padding rows zeroed.
    private func stageSource(_ input: MatrixView, paddedTo rows: Int, format: Precision, for primitive: LinearPrimitive) {
        let count = input.rows * input.columns
        let padding = (rows - input.rows) * input.columns
        switch format {
        case .fp32, .int8:
            (input.base + count).update(repeating: 0, count: padding)
            primitive.source.point(at: input.base)
        case .bf16:
            let halves = converted.reserve(bytes: rows * input.columns * 2).assumingMemoryBound(to: UInt16.self)
            OpenMPTeam.forEachChunk(of: count, grain: Self.elementGrain) { chunk, _ in
                VectorMath.convertToBFloat16(input.base + chunk.lowerBound, count: chunk.count, into: halves + chunk.lowerBound)
            }
            (halves + count).update(repeating: 0, count: padding)
            primitive.source.point(at: halves)
        }
    }

    /// fp32 packed kernels, or the reference kernels if oneDNN refuses even those.
    private func fallback() -> any ComputeKernels {
        if let fp32Fallback { return fp32Fallback }
        let made: any ComputeKernels = precision == .fp32
            ? ReferenceKernels()
            : (try? PackedKernels(precision: .fp32, weights: weightsForFallback)) ?? ReferenceKernels()
        fp32Fallback = made
        return made
    }

    package func attention(_ queryKeyValue: MatrixView, sequences: [Range<Int>], headCount: Int, into context: MatrixView) {
        let hidden = context.columns
        precondition(queryKeyValue.columns == 3 * hidden && hidden % headCount == 0,
                     "attention over \(queryKeyValue.columns) QKV columns into \(hidden) with \(headCount) heads")
        // One text's heads are too little work to split inside a primitive; split the texts instead,
        // longest first onto the least-loaded member (cost grows with length²).
        let members = max(1, min(Int(omp_get_max_threads()), sequences.count))
        while attentionWorkers.count < members, let worker = try? AttentionWorker() {
            attentionWorkers.append(worker)
        }
        guard !attentionWorkers.isEmpty else {
            fallbackProducts += 1
            return fallback().attention(queryKeyValue, sequences: sequences, headCount: headCount, into: context)
        }
        var assignment = [[Range<Int>]](repeating: [], count: attentionWorkers.count)
        var load = [Int](repeating: 0, count: attentionWorkers.count)
        for rows in sequences.sorted(by: { $0.count > $1.count }) {
            let member = load.indices.min { load[$0] < load[$1] } ?? 0
            assignment[member].append(rows)
            load[member] += rows.count * (rows.count + hidden)
        }
        let workers = attentionWorkers
        var refused = [[Range<Int>]](repeating: [], count: workers.count)
        refused.withUnsafeMutableBufferPointer { refused in
            OpenMPTeam.run(threads: workers.count) { member, _ in
                guard member < assignment.count else { return }
                for rows in assignment[member]
                where !workers[member].run(rows, queryKeyValue: queryKeyValue, headCount: headCount, into: context) {
                    refused[member].append(rows)
                }
            }
        }
        let leftOver = refused.flatMap { $0 }
        if !leftOver.isEmpty {
            fallbackProducts += 1
            fallback().attention(queryKeyValue, sequences: leftOver, headCount: headCount, into: context)
        }
    }

    package func layerNorm(_ x: MatrixView, _ norm: LayerNormWeights, epsilon: Float) {
        precondition(x.columns == norm.size, "layer norm of size \(norm.size) applied to \(x.rows)×\(x.columns)")
        norm.weight.withUnsafeBufferPointer { gamma in
            norm.bias.withUnsafeBufferPointer { beta in
                guard let gamma = gamma.baseAddress, let beta = beta.baseAddress else { return }
                OpenMPTeam.forEachChunk(of: x.rows, grain: Self.elementGrain / max(x.columns, 1)) { chunk, _ in
                    VectorMath.layerNorm(x.rows(chunk), gamma: gamma, beta: beta, epsilon: epsilon)
                }
            }
        }
    }

    /// Implementations in use, by operation (for benchmarks and logs).
    package var implementations: [String] {
        var names = primitives.values.map(\.primitive).map { "\($0.key.precision) \($0.key.inputs)→\($0.key.outputs): \($0.primitive.implementation)" }
        if !int8Layers.isEmpty, case let .success(backend) = Int8Backend.selected {
            names += Set(int8Layers.values.map { "int8 \($0.inputs)→\($0.outputs): \(backend)" })
        }
        return Array(Set(names)).sorted()
    }

    // MARK: - Preparation

    private func format(of layer: LinearWeights) -> Precision {
        layer.allowsReducedPrecision ? precision : .fp32
    }

    /// `layer`'s weights in its shape's `layout`-th weight layout, packed on first use.
    private func pack(_ layer: LinearWeights, layout: Int) throws(KernelError) -> PackedLinear {
        let packKey = PackKey(layer: layer.name, layout: layout)
        if let existing = packed[packKey] { return existing }
        let layouts = try weightLayouts(LayoutKey(inputs: layer.inputSize, outputs: layer.outputSize, precision: format(of: layer)))
        let packedLayer = try PackedLinear(layer, layout: layouts[layout], stream: stream)
        packed[packKey] = packedLayer
        return packedLayer
    }

    /// The weight layouts known for `shape`, starting with the one oneDNN picks at `referenceRows`.
    private func weightLayouts(_ shape: LayoutKey) throws(KernelError) -> [dnnl_memory_desc_t] {
        if let known = weightLayouts[shape] { return known }
        let chooser = try LinearPrimitive.choosingLayout(LinearPrimitive.Key(inputs: shape.inputs, outputs: shape.outputs,
                                                                             rows: Self.referenceRows, precision: shape.precision,
                                                                             epilogue: .bias))
        weightLayouts[shape] = [chooser.weightsLayout]
        primitives[chooser.key] = PreparedProduct(primitive: chooser, layout: 0)
        return [chooser.weightsLayout]
    }

    /// The primitive for `key`, reading weights in the shape's first layout if oneDNN accepts that for
    /// this row count, else in the layout it chooses (recorded, so those weights are packed once too).
    private func product(_ key: LinearPrimitive.Key) throws(KernelError) -> PreparedProduct {
        if let existing = primitives[key] { return existing }
        let shape = LayoutKey(inputs: key.inputs, outputs: key.outputs, precision: key.precision)
        var layouts = try weightLayouts(shape)
        let prepared: PreparedProduct
        if let shared = try? LinearPrimitive(key, weightsLayout: layouts[0]) {
            prepared = PreparedProduct(primitive: shared, layout: 0)
        } else {
            let own = try LinearPrimitive.choosingLayout(key)
            var chosen = own.weightsLayout
            let index = layouts.firstIndex { known in
                var known = known
                return dnnl_memory_desc_equal(&known, &chosen) != 0
            } ?? layouts.count
            if index == layouts.count {
                layouts.append(chosen)
                weightLayouts[shape] = layouts
            }
            prepared = PreparedProduct(primitive: own, layout: index)
        }
        primitives[key] = prepared
        return prepared
    }
}

/// The attention state of one OpenMP team member.
final class AttentionWorker {
    private let stream: DNNLStream
    private var byLength: [Int: AttentionPrimitives] = [:]
    private var scratch = ScratchBuffer()

    init() throws(KernelError) {
        stream = try DNNLStream()
    }

    /// - Returns: false when oneDNN could not prepare or run this text's attention.
    func run(_ rows: Range<Int>, queryKeyValue: MatrixView, headCount: Int, into context: MatrixView) -> Bool {
        let primitives: AttentionPrimitives
        if let cached = byLength[rows.count] {
            primitives = cached
        } else {
            guard let made = try? AttentionPrimitives(length: rows.count, headCount: headCount, hidden: context.columns,
                                                      queryKeyValueStride: queryKeyValue.rowStride,
                                                      contextStride: context.rowStride) else { return false }
            primitives = made
            byLength[rows.count] = made
        }
        let scratch = scratch.reserve(bytes: primitives.scratchCount * 4).assumingMemoryBound(to: Float.self)
        return primitives.run(queryKeyValue: queryKeyValue.base + rows.lowerBound * queryKeyValue.rowStride,
                              contextRow: context.base + rows.lowerBound * context.rowStride, scratch: scratch, stream: stream)
    }
}

/// Raw scratch memory that grows to the largest request and is then reused.
struct ScratchBuffer: ~Copyable {
    private var base: UnsafeMutableRawPointer?
    private var capacity = 0

    init() {}

    deinit { base?.deallocate() }

    /// At least `bytes` bytes, 64-byte aligned; contents unspecified.
    mutating func reserve(bytes: Int) -> UnsafeMutableRawPointer {
        if let base, capacity >= bytes { return base }
        base?.deallocate()
        let fresh = UnsafeMutableRawPointer.allocate(byteCount: max(bytes, 64), alignment: 64)
        base = fresh
        capacity = max(bytes, 64)
        return fresh
    }
}
