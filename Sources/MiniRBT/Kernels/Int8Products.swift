import CDNNL
import CVectorMath

/// Where the int8 matrix products run on this CPU: decided once per process, from what the CPU offers
/// (capped by `MINIRBT_MAX_CPU_ISA`, see ``RuntimeInfo``).
///
/// Both implementations compute the exact int32 product of int8 activations and int8 weights; scaling,
/// bias and activation happen afterwards in ``Int8Epilogue``, with one scale per activation row. That is
/// what makes an int8 result independent of the batch a text shares: each text's rows are quantised on
/// their own, and an integer product is the same in any batch.
package enum Int8Backend: Sendable, CustomStringConvertible {
    /// oneDNN's brgemm kernels, where the CPU has VNNI or AMX: `vpdpbusd` / tile products at full speed.
    case oneDNN(implementation: String)
    /// The engine's own kernels (`CVectorMath/int8_gemm.c`), where oneDNN's int8 is no faster than fp32
    /// (AVX2 without VNNI: oneDNN 2.6 offers only its generic gemm there).
    case native(level: String)

    /// The backend of this process, or why int8 has no fast path here.
    package static let selected: Result<Int8Backend, KernelError> = select()

    /// Largest |weight| the backend multiplies exactly: the AVX2 kernel sums pairs of u8 × s8 products in
    /// int16, which 7-bit weights keep from saturating.
    var weightLimit: Int32 {
        switch self {
        case .oneDNN: 127
        case .native: Int32(i8_weight_limit())
        }
    }

    package var description: String {
        switch self {
        case let .oneDNN(implementation): "oneDNN \(implementation)"
        case let .native(level): "MiniRBT int8 kernel (\(level))"
        }
    }

    private static func select() -> Result<Int8Backend, KernelError> {
        let operation = "int8 matmul 128×256 · 256×256"
        var offered = "none"
        if let probe = try? Int8Matmul(rows: 128, inputs: 256, outputs: 256, weightsLayout: nil) {
            offered = probe.primitive.implementation
            // brgemm is oneDNN's VNNI/AMX int8 path; its generic gemm runs int8 no faster than fp32.
            if offered.hasPrefix("brg") { return .success(.oneDNN(implementation: offered)) }
        }
        if i8_kernel_level() >= 2 {
            return .success(.native(level: String(cString: cpu_level_name(cpu_kernel_level()))))
        }
        let level = String(cString: cpu_level_name(cpu_kernel_level()))
        return .failure(KernelError(operation: operation, status: 0, instructionSet: RuntimeInfo.instructionSet,
                                    implementation: offered,
                                    reason: "no fast int8 kernel: oneDNN offers \(offered) (no VNNI, so no faster than fp32) "
                                        + "and the engine's own int8 kernel needs AVX2 (kernel level here: \(level))"))
    }
}

/// One oneDNN int8 matmul without post-ops: s8 activations × s8 weights → s32, for one row count.
final class Int8Matmul {
    let primitive: DNNLPrimitive
    let source: DNNLMemory
    let weights: DNNLMemory
    let destination: DNNLMemory

    init(rows: Int, inputs: Int, outputs: Int, weightsLayout: dnnl_memory_desc_t?) throws(KernelError) {
        var sourceLayout = DNNL.layout([rows, inputs], dnnl_s8, dnnl_ab)
        var weightsRequest = weightsLayout ?? DNNL.layout([inputs, outputs], dnnl_s8, dnnl_format_tag_any)
        var destinationLayout = DNNL.layout([rows, outputs], dnnl_s32, dnnl_ab)
        var desc = dnnl_matmul_desc_t()
        try DNNL.check(dnnl_matmul_desc_init(&desc, &sourceLayout, &weightsRequest, nil, &destinationLayout),
                       "describing an int8 matmul")
        let operation = "int8 matmul \(rows)×\(inputs) · \(inputs)×\(outputs)"
        primitive = try DNNLPrimitive(&desc, attributes: nil, operation: operation, accepted: .jit)
        guard let chosen = primitive.layout(dnnl_query_weights_md) else {
            throw KernelError(operation: operation, status: 0, instructionSet: RuntimeInfo.instructionSet, implementation: "no weights layout")
        }
        source = try DNNLMemory(sourceLayout)
        weights = try DNNLMemory(chosen)
        destination = try DNNLMemory(destinationLayout)
    }

    func run(source input: UnsafeRawPointer, weights packed: UnsafeRawPointer, into output: UnsafeMutableRawPointer,
             stream: DNNLStream) -> Bool {
        source.point(at: input)
        weights.point(at: packed)
        destination.point(at: output)
        return primitive.execute([source.argument(DNNLArgument.source), weights.argument(DNNLArgument.weights),
                                  destination.argument(DNNLArgument.destination)], on: stream)
    }
}

/// A linear layer's weights quantised per output column and packed for the process's ``Int8Backend``.
final class Int8Linear {
    let inputs: Int
    let outputs: Int
    /// The scale of each output column's weights (`max |w| / limit`).
    let columnScales: UnsafeMutableBufferPointer<Float>
    let bias: UnsafeMutableBufferPointer<Float>
    let packed: UnsafeMutableRawPointer
    private let backend: Int8Backend
    /// oneDNN only: the weight layout and one primitive per padded row count, made on first use.
    private var layout: dnnl_memory_desc_t?
    private var matmuls: [Int: Int8Matmul] = [:]
    private var refusedRows: Set<Int> = []
    /// oneDNN only: the row count the weight layout was chosen for, whose primitive always exists.
    private static let layoutRows = 128
    /// oneDNN only: staging for row counts without a primitive of their own (``multiplyInBlocks``).
    private var blockSource: UnsafeMutablePointer<Int8>?
    private var blockSums: UnsafeMutablePointer<Int32>?

    init(_ layer: LinearWeights, backend: Int8Backend, stream: DNNLStream) throws(KernelError) {
        let (inputs, outputs) = (layer.inputSize, layer.outputSize)
        self.inputs = inputs
        self.outputs = outputs
        self.backend = backend
        let columnScales = UnsafeMutableBufferPointer<Float>.allocate(capacity: max(outputs, 1))
        self.columnScales = columnScales
        bias = .allocate(capacity: max(outputs, 1))
        _ = bias.initialize(from: layer.bias)

        // PyTorch's [out, in] rows are the output columns: quantise each with its own scale.
        let quantized = UnsafeMutableBufferPointer<Int8>.allocate(capacity: max(layer.weight.count, 1))
        defer { quantized.deallocate() }
        let limit = Float(backend.weightLimit)
        layer.weight.withUnsafeBufferPointer { weight in
            guard let weight = weight.baseAddress, let output = quantized.baseAddress else { return }
            for column in 0..<outputs {
                let row = weight + column * inputs
                let largest = VectorMath.maximumMagnitude(row, count: inputs)
                let scale = largest > 0 ? largest / limit : 1
                columnScales[column] = scale
                VectorMath.quantize(row, count: inputs, scale: scale, into: output + column * inputs)
            }
        }

        switch backend {
        case .native:
            packed = .allocate(byteCount: max(i8_packed_size(inputs, outputs), 1), alignment: 64)
            i8_pack_weights(quantized.baseAddress, inputs, outputs, packed)
        case .oneDNN:
            do {
                let chooser = try Int8Matmul(rows: Self.layoutRows, inputs: inputs, outputs: outputs, weightsLayout: nil)
                var chosen = chooser.weights.layout
                packed = .allocate(byteCount: max(dnnl_memory_desc_get_size(&chosen), 1), alignment: 64)
                layout = chosen
                matmuls[Self.layoutRows] = chooser
                try DNNL.reorder(DNNLMemory(DNNL.layout([inputs, outputs], dnnl_s8, dnnl_ba), data: quantized.baseAddress),
                                 into: DNNLMemory(chosen, data: packed), stream: stream)
            } catch {
                columnScales.deallocate()
                bias.deallocate()
                throw error
            }
        }
    }

    /// Multiply-adds of the native kernel worth waking another team member for (~10 µs on a Zen 5 core
    /// under the AVX2 cap, ~45 µs on Zen 3). The earlier bound, 32 K outputs (8 M multiply-adds for these
    /// layers), kept every product of a single short text on one thread: MiniRBT-H256 int8 at B=1,S=32 on
    /// 2 threads ran at its 1-thread speed (~450 sequences/s under the cap); with this bound, ~800–900.
    static let nativeGrain = 1 << 20

    deinit {
        packed.deallocate()
        columnScales.deallocate()
        bias.deallocate()
        blockSource?.deallocate()
        blockSums?.deallocate()
    }

    /// `accumulators[r][c] = Σₖ source[r][k] · w[c][k]` for `rows` rows (row strides `inputs` and
    /// `outputs`). The buffers hold `RowPadding.rows(for: rows)` rows, which oneDNN computes.
    /// - Returns: false when oneDNN has no primitive for this row count (the caller computes in fp32).
    func multiply(_ source: UnsafeMutablePointer<Int8>, rows: Int, into accumulators: UnsafeMutablePointer<Int32>,
                  stream: DNNLStream) -> Bool {
        switch backend {
        case .native:
            let (inputs, outputs, packed) = (inputs, outputs, UnsafeRawPointer(packed))
            // Rows are independent: each team member multiplies its own block of them, at least
            // `nativeGrain` multiply-adds' worth, so one short text is shared too.
            OpenMPTeam.forEachChunk(of: rows, grain: max(1, Self.nativeGrain / max(inputs * outputs, 1))) { chunk, _ in
                i8_gemm_s32(source + chunk.lowerBound * inputs, chunk.count, inputs, inputs, packed, outputs,
                            accumulators + chunk.lowerBound * outputs, outputs)
            }
            return true
        case .oneDNN:
            let padded = RowPadding.rows(for: rows)
            source.advanced(by: rows * inputs).update(repeating: 0, count: (padded - rows) * inputs)
            guard let matmul = matmul(rows: padded) else {
                return multiplyInBlocks(source, rows: rows, into: accumulators, stream: stream)
            }
            return matmul.run(source: source, weights: packed, into: accumulators, stream: stream)
        }
    }

    /// The product through the primitive the weight layout was chosen with, ``layoutRows`` rows at a time.
    ///
    /// oneDNN does not offer a JIT kernel for every row count with a given weight layout (on AMX, a
    /// 32-column layer has none at 8 rows). Running such a batch's layer in fp32 would make a text's result
    /// depend on its batch; the integer product computed in blocks is the same exact product.
    private func multiplyInBlocks(_ source: UnsafePointer<Int8>, rows: Int, into accumulators: UnsafeMutablePointer<Int32>,
                                  stream: DNNLStream) -> Bool {
        let block = Self.layoutRows
        guard let matmul = matmuls[block] else { return false }
        let staged = blockSource ?? .allocate(capacity: block * inputs)
        let sums = blockSums ?? .allocate(capacity: block * outputs)
        (blockSource, blockSums) = (staged, sums)
        for start in stride(from: 0, to: rows, by: block) {
            let count = min(block, rows - start)
            staged.update(from: source + start * inputs, count: count * inputs)
            (staged + count * inputs).update(repeating: 0, count: (block - count) * inputs)
            guard matmul.run(source: staged, weights: packed, into: sums, stream: stream) else { return false }
            (accumulators + start * outputs).update(from: sums, count: count * outputs)
        }
        return true
    }

    /// The primitive for `rows` rows, or nil when oneDNN has none (remembered: asking again costs a failed
    /// primitive creation per batch).
    private func matmul(rows: Int) -> Int8Matmul? {
        if let existing = matmuls[rows] { return existing }
        guard !refusedRows.contains(rows),
              let made = try? Int8Matmul(rows: rows, inputs: inputs, outputs: outputs, weightsLayout: layout) else {
            refusedRows.insert(rows)
            return nil
        }
        matmuls[rows] = made
        return made
    }
}

/// The element-wise halves of an int8 product: per-row quantisation before, dequantisation with bias and
/// activation (or residual sum) after, split over the OpenMP team by rows.
enum Int8Epilogue {
    /// Quantises each row of `input` with its own symmetric scale (`max |x| / 127`).
    static func quantizeRows(_ input: MatrixView, into bytes: UnsafeMutablePointer<Int8>, scales: UnsafeMutablePointer<Float>) {
        let columns = input.columns
        OpenMPTeam.forEachChunk(of: input.rows, grain: max(1, 16_384 / max(columns, 1))) { chunk, _ in
            i8_quantize_rows(input.base + chunk.lowerBound * input.rowStride, chunk.count, columns, input.rowStride,
                             bytes + chunk.lowerBound * columns, columns, scales + chunk.lowerBound)
        }
    }

    /// `output = f(accumulators · rowScale · columnScale + bias)`, `f` the epilogue's activation, or
    /// `output += …` for the residual epilogue. Activations other than exact GELU run as a second pass.
    static func dequantize(_ accumulators: UnsafePointer<Int32>, rowScales: UnsafePointer<Float>, layer: Int8Linear,
                           epilogue: LinearEpilogue, into output: MatrixView) {
        let kind: i8_epilogue = switch epilogue {
        case .bias: I8_EPILOGUE_BIAS
        case .residual: I8_EPILOGUE_RESIDUAL
        case .activation(.gelu): I8_EPILOGUE_GELU_ERF
        case .activation: I8_EPILOGUE_BIAS
        }
        let columns = output.columns
        OpenMPTeam.forEachChunk(of: output.rows, grain: max(1, 16_384 / max(columns, 1))) { chunk, _ in
            i8_dequantize(accumulators + chunk.lowerBound * columns, chunk.count, columns, columns,
                          rowScales + chunk.lowerBound, layer.columnScales.baseAddress, layer.bias.baseAddress, kind,
                          output.base + chunk.lowerBound * output.rowStride, output.rowStride)
        }
        if case let .activation(activation) = epilogue, activation != .gelu {
            ReferenceKernels.activate(output, activation)
        }
    }
}
