/// The dense math the encoder needs, and nothing else.
///
/// Kept deliberately small so an implementation can be swapped (oneDNN GEMM today; prepacked oneDNN
/// matmul primitives or a naive reference in tests tomorrow) without touching the model code.
/// All operations work on caller-owned memory and allocate nothing.
package protocol ComputeKernels: Sendable {
    /// `output = input · layer.weightᵀ + layer.bias`, where `input` is rows × `layer.inputSize`
    /// and `layer.weight` keeps PyTorch's [out, in] layout.
    func linear(_ input: MatrixView, _ layer: LinearWeights, into output: MatrixView)

    /// `c = alpha · a · (transposeB ? bᵀ : b)`, overwriting `c`.
    func matmul(_ a: MatrixView, _ b: MatrixView, transposeB: Bool, alpha: Float, into c: MatrixView)

    /// `output = layerNorm(input + residual)` row by row, with PyTorch's biased variance.
    /// `output` may be the same memory as `input` or `residual`.
    func layerNorm(_ input: MatrixView, adding residual: MatrixView?, _ norm: LayerNormWeights, epsilon: Float,
                   into output: MatrixView)

    /// In place, element-wise.
    func activate(_ x: MatrixView, _ activation: Activation)

    /// In place: each row becomes `softmax(row)`.
    func softmaxRows(_ x: MatrixView)
}
