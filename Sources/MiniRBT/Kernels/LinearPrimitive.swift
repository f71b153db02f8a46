import CDNNL

/// One oneDNN matmul computing `epilogue(x · W + b)` for one layer shape, precision (fp32 or bf16) and
/// padded row count. int8 products are ``Int8Linear``'s.
///
/// Weights are not part of the primitive, so every layer of the same shape shares it: the packed weights
/// of the layer at hand are pointed to per call.
final class LinearPrimitive {
    struct Key: Hashable {
        let inputs: Int
        let outputs: Int
        let rows: Int
        let precision: Precision
        let epilogue: LinearEpilogue
    }

    let key: Key
    let primitive: DNNLPrimitive
    let source: DNNLMemory
    let weights: DNNLMemory
    let destination: DNNLMemory
    let bias: DNNLMemory

    /// `weightsLayout` nil lets oneDNN choose the layout it computes fastest with (read it from `weightsLayout`).
    init(_ key: Key, weightsLayout: dnnl_memory_desc_t?) throws(KernelError) {
        self.key = key
        let operation = "\(key.precision) matmul \(key.rows)×\(key.inputs) · \(key.inputs)×\(key.outputs) (\(key.epilogue))"
        let (sourceType, weightsType) = switch key.precision {
        case .fp32: (dnnl_f32, dnnl_f32)
        case .bf16: (dnnl_bf16, dnnl_bf16)
        case .int8: throw KernelError(operation: operation, status: 0, instructionSet: RuntimeInfo.instructionSet,
                                      implementation: "int8 runs through Int8Linear")
        }
        var sourceLayout = DNNL.layout([key.rows, key.inputs], sourceType, dnnl_ab)
        var weightsRequest = weightsLayout ?? DNNL.layout([key.inputs, key.outputs], weightsType, dnnl_format_tag_any)
        var destinationLayout = DNNL.layout([key.rows, key.outputs], dnnl_f32, dnnl_ab)
        var columnLayout = DNNL.layout([1, key.outputs], dnnl_f32, dnnl_ab)

        var desc = dnnl_matmul_desc_t()
        try DNNL.check(dnnl_matmul_desc_init(&desc, &sourceLayout, &weightsRequest, &columnLayout, &destinationLayout),
                       "describing a \(key.precision) matmul")

        let attributes = try DNNLAttributes()
        try attributes.postOps { ops in
            switch key.epilogue {
            case .bias:
                return dnnl_success
            case .residual:
                return dnnl_post_ops_append_sum(ops, 1)
            case let .activation(activation):
                let (algorithm, alpha) = Self.eltwise(activation)
                return dnnl_post_ops_append_eltwise(ops, 1, algorithm, alpha, 0)
            }
        }
        // fp32 is the fallback of every other format, so any implementation of it will do.
        let accepted: DNNLPrimitive.Accepted = switch key.precision {
        case .fp32: .any
        case .bf16: .brgemm
        case .int8: .jit
        }
        primitive = try DNNLPrimitive(&desc, attributes: attributes.handle, operation: operation, accepted: accepted)

        guard let chosenWeights = primitive.layout(dnnl_query_weights_md) else {
            throw KernelError(operation: operation, status: 0, instructionSet: RuntimeInfo.instructionSet, implementation: "no weights layout")
        }
        source = try DNNLMemory(sourceLayout)
        weights = try DNNLMemory(chosenWeights)
        destination = try DNNLMemory(destinationLayout)
        bias = try DNNLMemory(columnLayout)
    }

    var weightsLayout: dnnl_memory_desc_t { weights.layout }

    /// The primitive for `key` in the weight layout it computes fastest with: oneDNN's own choice, except that
    /// a plain row-major choice gets rows padded by 64 bytes.
    ///
    /// oneDNN chooses plain weights for its generic gemm (its only fp32 matmul without AVX-512), which reads
    /// them in place when the batch is small. Rows of exactly 4 KB — the 1024 columns of the FFN-in layer of
    /// every H256 model — then all fall into the same L1 cache sets and that product ran at half speed up to
    /// ~128 rows (61 against 122 GFLOPS on one core under the AVX2 cap; bench/README.md "Padded weight rows").
    static func choosingLayout(_ key: Key) throws(KernelError) -> LinearPrimitive {
        let chosen = try LinearPrimitive(key, weightsLayout: nil)
        var layout = chosen.weightsLayout
        var plain = DNNL.layout([key.inputs, key.outputs], layout.data_type, dnnl_ab)
        guard dnnl_memory_desc_equal(&layout, &plain) != 0 else { return chosen }
        let padded = DNNL.layout([key.inputs, key.outputs], layout.data_type, strides: [key.outputs + 16, 1])
        return (try? LinearPrimitive(key, weightsLayout: padded)) ?? chosen
    }

    /// Runs with memory already pointed at by `source`, `weights`, `destination` and `bias`.
    /// - Returns: false when oneDNN refused to run.
    func execute(on stream: DNNLStream) -> Bool {
        primitive.execute([source.argument(DNNLArgument.source), weights.argument(DNNLArgument.weights),
                           destination.argument(DNNLArgument.destination), bias.argument(DNNLArgument.bias)], on: stream)
    }

    /// oneDNN's eltwise algorithm (and alpha) computing `activation` as PyTorch defines it.
    static func eltwise(_ activation: Activation) -> (dnnl_alg_kind_t, Float) {
        switch activation {
        case .gelu: (dnnl_eltwise_gelu_erf, 0)
        case .geluTanh: (dnnl_eltwise_gelu_tanh, 0)
        case .quickGelu: (dnnl_eltwise_swish, 1.702)
        case .relu: (dnnl_eltwise_relu, 0)
        case .silu: (dnnl_eltwise_swish, 1)
        case .tanh: (dnnl_eltwise_tanh, 0)
        }
    }
}

/// A linear layer's fp32 or bf16 weights packed once into the layout its primitives compute with.
final class PackedLinear {
    /// The packed weights, 64-byte aligned.
    let weights: UnsafeMutableRawPointer
    /// Float32 bias, one per output column.
    let bias: UnsafeMutableBufferPointer<Float>

    init(_ layer: LinearWeights, layout: dnnl_memory_desc_t, stream: DNNLStream) throws(KernelError) {
        var packedLayout = layout
        weights = .allocate(byteCount: max(dnnl_memory_desc_get_size(&packedLayout), 1), alignment: 64)
        bias = .allocate(capacity: max(layer.outputSize, 1))
        _ = bias.initialize(from: layer.bias)
        // PyTorch's [out, in] row-major matrix is the [in, out] matrix oneDNN wants, read column-major ("ba");
        // the reorder converts to bf16 where the layout asks for it.
        let plain = UnsafeMutableBufferPointer<Float>.allocate(capacity: max(layer.weight.count, 1))
        defer { plain.deallocate() }
        _ = plain.initialize(from: layer.weight)
        do throws(KernelError) {
            try DNNL.reorder(DNNLMemory(DNNL.layout([layer.inputSize, layer.outputSize], dnnl_f32, dnnl_ba), data: plain.baseAddress),
                             into: DNNLMemory(layout, data: weights), stream: stream)
        } catch {
            weights.deallocate()
            bias.deallocate()
            throw error
        }
    }

    deinit {
        weights.deallocate()
        bias.deallocate()
    }
}
