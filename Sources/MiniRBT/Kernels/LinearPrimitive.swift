import CDNNL

/// One oneDNN matmul computing `epilogue(x · W + b)` for one layer shape, precision and padded row count.
///
/// Weights are not part of the primitive, so every layer of the same shape shares it: the packed weights
/// (and int8 scales) of the layer at hand are pointed to per call.
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
    /// fp32 and bf16 add the bias in the product; int8 instead scales (per batch and column) and then adds
    /// it as post-ops, since oneDNN 2.6's fast int8 kernels take no run-time output scales.
    let bias: DNNLMemory?
    let columnScales: DNNLMemory?
    let columnShift: DNNLMemory?

    /// `weightsLayout` nil lets oneDNN choose the layout it computes fastest with (read it from `weightsLayout`).
    init(_ key: Key, weightsLayout: dnnl_memory_desc_t?) throws(KernelError) {
        self.key = key
        let (sourceType, weightsType) = switch key.precision {
        case .fp32: (dnnl_f32, dnnl_f32)
        case .bf16: (dnnl_bf16, dnnl_bf16)
        case .int8: (dnnl_s8, dnnl_s8)
        }
        var sourceLayout = DNNL.layout([key.rows, key.inputs], sourceType, dnnl_ab)
        var weightsRequest = weightsLayout ?? DNNL.layout([key.inputs, key.outputs], weightsType, dnnl_format_tag_any)
        var destinationLayout = DNNL.layout([key.rows, key.outputs], dnnl_f32, dnnl_ab)
        var columnLayout = DNNL.layout([1, key.outputs], dnnl_f32, dnnl_ab)
        let quantized = key.precision == .int8

        var desc = dnnl_matmul_desc_t()
        try DNNL.check(quantized
            ? dnnl_matmul_desc_init(&desc, &sourceLayout, &weightsRequest, nil, &destinationLayout)
            : dnnl_matmul_desc_init(&desc, &sourceLayout, &weightsRequest, &columnLayout, &destinationLayout),
            "describing a \(key.precision) matmul")

        let attributes = try DNNLAttributes()
        try attributes.postOps { ops in
            if quantized {
                var status = dnnl_post_ops_append_binary(ops, dnnl_binary_mul, &columnLayout)
                guard status == dnnl_success else { return status }
                status = dnnl_post_ops_append_binary(ops, dnnl_binary_add, &columnLayout)
                guard status == dnnl_success else { return status }
            }
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
        let operation = "\(key.precision) matmul \(key.rows)×\(key.inputs) · \(key.inputs)×\(key.outputs) (\(key.epilogue))"
        primitive = try DNNLPrimitive(&desc, attributes: attributes.handle, operation: operation, requireJIT: key.precision != .fp32)

        guard let chosenWeights = primitive.layout(dnnl_query_weights_md) else {
            throw KernelError(operation: operation, status: 0, instructionSet: RuntimeInfo.instructionSet, implementation: "no weights layout")
        }
        source = try DNNLMemory(sourceLayout)
        weights = try DNNLMemory(chosenWeights)
        destination = try DNNLMemory(destinationLayout)
        bias = quantized ? nil : try DNNLMemory(columnLayout)
        columnScales = quantized ? try DNNLMemory(columnLayout) : nil
        columnShift = quantized ? try DNNLMemory(columnLayout) : nil
    }

    var weightsLayout: dnnl_memory_desc_t { weights.layout }

    /// Runs with memory already pointed at by `source`, `weights`, `destination` and the column vectors.
    func execute(on stream: DNNLStream) {
        var arguments = [source.argument(DNNLArgument.source), weights.argument(DNNLArgument.weights),
                         destination.argument(DNNLArgument.destination)]
        if let bias { arguments.append(bias.argument(DNNLArgument.bias)) }
        if let columnScales, let columnShift {
            arguments.append(columnScales.argument(DNNLArgument.postOpInput(0)))
            arguments.append(columnShift.argument(DNNLArgument.postOpInput(1)))
        }
        primitive.execute(arguments, on: stream)
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

/// A linear layer's weights packed once into the layout its primitives compute with.
final class PackedLinear {
    let precision: Precision
    /// The packed weights (plus, for int8, oneDNN's compensation terms), 64-byte aligned.
    let weights: UnsafeMutableRawPointer
    /// Float32 bias, one per output column.
    let bias: UnsafeMutableBufferPointer<Float>
    /// int8 only: the scale of each output column's weights (`max |w| / 127`); empty otherwise.
    let weightScales: UnsafeMutableBufferPointer<Float>

    init(_ layer: LinearWeights, precision: Precision, layout: dnnl_memory_desc_t, stream: DNNLStream) throws(KernelError) {
        self.precision = precision
        var packedLayout = layout
        weights = .allocate(byteCount: max(dnnl_memory_desc_get_size(&packedLayout), 1), alignment: 64)
        bias = .allocate(capacity: layer.outputSize)
        _ = bias.initialize(from: layer.bias)
        weightScales = .allocate(capacity: precision == .int8 ? layer.outputSize : 0)
        do throws(KernelError) {
            try Self.pack(layer, precision: precision, into: DNNLMemory(layout, data: weights), scales: weightScales, stream: stream)
        } catch {
            weights.deallocate()
            bias.deallocate()
            weightScales.deallocate()
            throw error
        }
    }

    /// Reorders PyTorch's [out, in] row-major matrix, which is the [in, out] matrix oneDNN wants read
    /// column-major ("ba"), into `packed`; int8 first quantises each output column with its own scale.
    private static func pack(_ layer: LinearWeights, precision: Precision, into packed: DNNLMemory,
                             scales: UnsafeMutableBufferPointer<Float>, stream: DNNLStream) throws(KernelError) {
        let dims = [layer.inputSize, layer.outputSize]
        switch precision {
        case .fp32, .bf16:
            let plain = UnsafeMutableBufferPointer<Float>.allocate(capacity: max(layer.weight.count, 1))
            defer { plain.deallocate() }
            _ = plain.initialize(from: layer.weight)
            try DNNL.reorder(DNNLMemory(DNNL.layout(dims, dnnl_f32, dnnl_ba), data: plain.baseAddress), into: packed, stream: stream)
        case .int8:
            let quantized = UnsafeMutableBufferPointer<Int8>.allocate(capacity: max(layer.weight.count, 1))
            defer { quantized.deallocate() }
            layer.weight.withUnsafeBufferPointer { weight in
                guard let weight = weight.baseAddress, let output = quantized.baseAddress else { return }
                for column in 0..<layer.outputSize {
                    let row = weight + column * layer.inputSize
                    let largest = VectorMath.maximumMagnitude(row, count: layer.inputSize)
                    let scale = largest > 0 ? largest / 127 : 1
                    scales[column] = scale
                    VectorMath.quantize(row, count: layer.inputSize, scale: scale, into: output + column * layer.inputSize)
                }
            }
            try DNNL.reorder(DNNLMemory(DNNL.layout(dims, dnnl_s8, dnnl_ba), data: quantized.baseAddress), into: packed, stream: stream)
        }
    }

    deinit {
        weights.deallocate()
        bias.deallocate()
        weightScales.deallocate()
    }
}
