import CDNNL

/// `ComputeKernels` on oneDNN primitives, the inference engine:
///
/// - each linear layer's weights are packed once into the layout oneDNN's kernels read fastest (the
///   primitive chooses it; nothing here assumes an instruction set), in fp32, bf16 or int8;
/// - bias, activation and the residual sum run inside the matmul as post-ops, so each activation matrix
///   is written once;
/// - primitives are created once per (layer shape, padded row count) and reused by every layer and batch;
/// - attention runs per text with all heads in one batched matmul, texts spread over the OpenMP team.
///
/// Layers whose `LinearWeights.allowsReducedPrecision` is false (the heads) always run in fp32.
/// Not thread-safe: one instance per inference session.
package final class PackedKernels: ComputeKernels {
    package let precision: Precision
    private let stream: DNNLStream
    /// Each layer's weights, packed in each layout one of its primitives reads (normally exactly one).
    private var packed: [PackKey: PackedLinear] = [:]
    private var primitives: [LinearPrimitive.Key: PreparedProduct] = [:]
    /// The weight layouts oneDNN chose per layer shape; the first serves every row count unless oneDNN
    /// refuses it for one (a CPU whose kernels block weights by row count), which then gets its own.
    private var weightLayouts: [LayoutKey: [dnnl_memory_desc_t]] = [:]
    /// One per OpenMP team member, each with its own stream and scratch: attention runs texts in parallel.
    private var attentionWorkers: [AttentionWorker] = []
    /// Activations converted to the product's input format, and int8 per-column scales.
    private var converted = ScratchBuffer()
    private var columnScales = ScratchBuffer()
    private var partialMaxima = ScratchBuffer()

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

    /// Packs every linear layer of `weights` up front, so an instruction set without `precision` support
    /// fails here rather than on the first batch.
    package init(precision: Precision, weights: BertWeights) throws(KernelError) {
        self.precision = precision
        stream = try DNNLStream()
        for layer in weights.linearLayers { _ = try pack(layer, layout: 0) }
    }

    package func linear(_ input: MatrixView, _ layer: LinearWeights, _ epilogue: LinearEpilogue, into output: MatrixView) {
        precondition(input.columns == layer.inputSize && output.columns == layer.outputSize && input.rows == output.rows
                     && input.rowStride == input.columns && output.rowStride == output.columns,
                     "linear \(layer.inputSize)→\(layer.outputSize) applied to \(input.rows)×\(input.columns) into \(output.rows)×\(output.columns)")
        guard input.rows > 0 else { return }
        let rows = RowPadding.rows(for: input.rows)
        let format = format(of: layer)
        let weights: PackedLinear, primitive: LinearPrimitive
        do {
            let prepared = try product(LinearPrimitive.Key(inputs: layer.inputSize, outputs: layer.outputSize, rows: rows,
                                                           precision: format, epilogue: epilogue))
            primitive = prepared.primitive
            weights = try pack(layer, layout: prepared.layout)
        } catch {
            // The same layer shapes were prepared in init; failing now is a oneDNN inconsistency, not input.
            preconditionFailure("\(error)")
        }

        stageSource(input, paddedTo: rows, format: format, weights: weights, for: primitive)
        if epilogue == .residual {
            // The sum post-op reads the padding rows too; keep them finite.
            (output.base + output.rows * output.columns).update(repeating: 0, count: (rows - output.rows) * output.columns)
        }
        primitive.bias?.point(at: weights.bias.baseAddress.unsafelyUnwrapped)
        primitive.weights.point(at: weights.weights)
        primitive.destination.point(at: output.base)
        primitive.execute(on: stream)
    }

    /// Points `primitive` at `input` in the product's source format — fp32 as is, bf16 converted, int8
    /// quantised with one scale for the whole matrix (its per-column dequantisation factors set too) —
    /// with the padding rows zeroed.
    private func stageSource(_ input: MatrixView, paddedTo rows: Int, format: Precision, weights: PackedLinear,
                             for primitive: LinearPrimitive) {
        let count = input.rows * input.columns
        let padding = (rows - input.rows) * input.columns
        switch format {
        case .fp32:
            (input.base + count).update(repeating: 0, count: padding)
            primitive.source.point(at: input.base)
        case .bf16:
            let halves = converted.reserve(bytes: rows * input.columns * 2).assumingMemoryBound(to: UInt16.self)
            OpenMPTeam.forEachChunk(of: count, grain: Self.elementGrain) { chunk, _ in
                VectorMath.convertToBFloat16(input.base + chunk.lowerBound, count: chunk.count, into: halves + chunk.lowerBound)
            }
            (halves + count).update(repeating: 0, count: padding)
            primitive.source.point(at: halves)
        case .int8:
            let largest = maximumMagnitude(input.base, count: count)
            let scale = largest > 0 ? largest / 127 : 1
            let bytes = converted.reserve(bytes: rows * input.columns).assumingMemoryBound(to: Int8.self)
            OpenMPTeam.forEachChunk(of: count, grain: Self.elementGrain) { chunk, _ in
                VectorMath.quantize(input.base + chunk.lowerBound, count: chunk.count, scale: scale, into: bytes + chunk.lowerBound)
            }
            (bytes + count).update(repeating: 0, count: padding)
            let outputs = weights.weightScales.count
            let scales = columnScales.reserve(bytes: outputs * 4).assumingMemoryBound(to: Float.self)
            for column in 0..<outputs { scales[column] = scale * weights.weightScales[column] }
            primitive.source.point(at: bytes)
            primitive.columnScales?.point(at: scales)
            primitive.columnShift?.point(at: weights.bias.baseAddress.unsafelyUnwrapped)
        }
    }

    package func attention(_ queryKeyValue: MatrixView, sequences: [Range<Int>], headCount: Int, into context: MatrixView) {
        let hidden = context.columns
        precondition(queryKeyValue.columns == 3 * hidden && hidden % headCount == 0,
                     "attention over \(queryKeyValue.columns) QKV columns into \(hidden) with \(headCount) heads")
        // One text's heads are too little work to split inside a primitive; split the texts instead,
        // longest first onto the least-loaded member (cost grows with length²).
        let members = max(1, min(Int(omp_get_max_threads()), sequences.count))
        while attentionWorkers.count < members {
            do {
                attentionWorkers.append(try AttentionWorker())
            } catch {
                preconditionFailure("\(error)")
            }
        }
        var assignment = [[Range<Int>]](repeating: [], count: members)
        var load = [Int](repeating: 0, count: members)
        for rows in sequences.sorted(by: { $0.count > $1.count }) {
            let member = load.indices.min { load[$0] < load[$1] } ?? 0
            assignment[member].append(rows)
            load[member] += rows.count * (rows.count + hidden)
        }
        let workers = attentionWorkers
        OpenMPTeam.run(threads: members) { member, _ in
            guard member < assignment.count else { return }
            for rows in assignment[member] {
                workers[member].run(rows, queryKeyValue: queryKeyValue, headCount: headCount, into: context)
            }
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

    /// `VectorMath.maximumMagnitude` with the team splitting the values.
    private func maximumMagnitude(_ values: UnsafePointer<Float>, count: Int) -> Float {
        let slots = max(Int(omp_get_max_threads()), 1)
        let partial = partialMaxima.reserve(bytes: 4 * slots).assumingMemoryBound(to: Float.self)
        partial.update(repeating: 0, count: slots)
        OpenMPTeam.forEachChunk(of: count, grain: Self.elementGrain) { chunk, member in
            partial[member] = VectorMath.maximumMagnitude(values + chunk.lowerBound, count: chunk.count)
        }
        return (0..<slots).reduce(0) { max($0, partial[$1]) }
    }

    /// Implementations oneDNN picked, by operation (for benchmarks and logs).
    package var implementations: [String] {
        primitives.values.map(\.primitive).map { "\($0.key.precision) \($0.key.inputs)→\($0.key.outputs): \($0.primitive.implementation)" }.sorted()
    }

    // MARK: - Preparation

    private func format(of layer: LinearWeights) -> Precision {
        layer.allowsReducedPrecision ? precision : .fp32
    }

    /// `layer`'s weights in its shape's `layout`-th weight layout, packed on first use.
    private func pack(_ layer: LinearWeights, layout: Int) throws(KernelError) -> PackedLinear {
        let packKey = PackKey(layer: layer.name, layout: layout)
        if let existing = packed[packKey] { return existing }
        let format = format(of: layer)
        let layouts = try weightLayouts(LayoutKey(inputs: layer.inputSize, outputs: layer.outputSize, precision: format))
        let packedLayer = try PackedLinear(layer, precision: format, layout: layouts[layout], stream: stream)
        packed[packKey] = packedLayer
        return packedLayer
    }

    /// The weight layouts known for `shape`, starting with the one oneDNN picks at `referenceRows`.
    private func weightLayouts(_ shape: LayoutKey) throws(KernelError) -> [dnnl_memory_desc_t] {
        if let known = weightLayouts[shape] { return known }
        let chooser = try LinearPrimitive(LinearPrimitive.Key(inputs: shape.inputs, outputs: shape.outputs, rows: Self.referenceRows,
                                                              precision: shape.precision, epilogue: .bias),
                                          weightsLayout: nil)
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
            let own = try LinearPrimitive(key, weightsLayout: nil)
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

    func run(_ rows: Range<Int>, queryKeyValue: MatrixView, headCount: Int, into context: MatrixView) {
        let primitives: AttentionPrimitives
        if let cached = byLength[rows.count] {
            primitives = cached
        } else {
            do {
                primitives = try AttentionPrimitives(length: rows.count, headCount: headCount, hidden: context.columns,
                                                     queryKeyValueStride: queryKeyValue.rowStride, contextStride: context.rowStride)
            } catch {
                // f32 matmul and softmax exist on every CPU oneDNN supports (reference code at worst).
                preconditionFailure("\(error)")
            }
            byLength[rows.count] = primitives
        }
        let scratch = scratch.reserve(bytes: primitives.scratchCount * 4).assumingMemoryBound(to: Float.self)
        primitives.run(queryKeyValue: queryKeyValue.base + rows.lowerBound * queryKeyValue.rowStride,
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
