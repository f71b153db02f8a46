/// What happens to a linear layer's product before it is stored.
package enum LinearEpilogue: Hashable, Sendable {
    /// `output = x · Wᵀ + b`.
    case bias
    /// `output = activation(x · Wᵀ + b)`.
    case activation(Activation)
    /// `output += x · Wᵀ + b`: the residual connection, with `output` holding the block's input.
    case residual
}

/// The dense math the encoder needs, and nothing else.
///
/// Kept deliberately small so implementations can be swapped without touching the model code:
/// `PackedKernels` (oneDNN primitives with prepacked weights, fp32/bf16/int8) serves inference,
/// `ReferenceKernels` (plain GEMM calls and loops) is the readable baseline the tests compare it with.
/// All operations work on caller-owned memory.
///
/// Row padding: a linear layer may compute `RowPadding.rows(for: input.rows)` rows so that one prepared
/// primitive serves many batch sizes. Its input and output views must therefore be backed by that many
/// rows of memory (as `Workspace` buffers are); the extra rows' contents are the kernels' to overwrite.
package protocol ComputeKernels {
    /// `output = epilogue(input · layer.weightᵀ + layer.bias)`; `layer.weight` keeps PyTorch's [out, in] layout.
    func linear(_ input: MatrixView, _ layer: LinearWeights, _ epilogue: LinearEpilogue, into output: MatrixView)

    /// Multi-head scaled dot-product self-attention within each text.
    ///
    /// `queryKeyValue` holds each token's query, key and value side by side (3 × hidden columns, heads
    /// consecutive within each); `context` receives each token's heads' outputs side by side.
    func attention(_ queryKeyValue: MatrixView, sequences: [Range<Int>], headCount: Int, into context: MatrixView)

    /// In place, row by row, with PyTorch's biased variance.
    func layerNorm(_ x: MatrixView, _ norm: LayerNormWeights, epsilon: Float)
}

/// The row counts linear layers are computed for: a few sizes per range, so prepared primitives are
/// reused across batches while padding wastes at most ~1/8 of the work.
package enum RowPadding {
    package static func rows(for count: Int) -> Int {
        let step = switch count {
        case ...64: 8
        case ...512: 32
        case ...2048: 128
        default: 256
        }
        return (count + step - 1) / step * step
    }
}
