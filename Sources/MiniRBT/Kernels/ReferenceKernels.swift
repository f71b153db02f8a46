import CDNNL
import Foundation

/// `ComputeKernels` the plain way: every product a `dnnl_sgemm` call on PyTorch's weight layout,
/// attention one GEMM pair per head and text, element-wise work in scalar loops that follow PyTorch's
/// formulas. Float32 only. The tests use it as the baseline `PackedKernels` must match.
///
/// oneDNN parallelises with OpenMP; the team size is the calling thread's `omp_set_num_threads`
/// setting, which `InferenceSession` sets before each forward pass.
package final class ReferenceKernels: ComputeKernels {
    private var scores: UnsafeMutableBufferPointer<Float> = .allocate(capacity: 0)

    package init() { RuntimeInfo.applyCap() }

    deinit { scores.deallocate() }

    package func linear(_ input: MatrixView, _ layer: LinearWeights, _ epilogue: LinearEpilogue, into output: MatrixView) {
        precondition(input.columns == layer.inputSize && output.columns == layer.outputSize && input.rows == output.rows,
                     "linear \(layer.inputSize)→\(layer.outputSize) applied to \(input.rows)×\(input.columns) into \(output.rows)×\(output.columns)")
        guard input.rows > 0 else { return }
        // Start from the bias (plus the residual already in `output`) and let the GEMM accumulate onto it.
        layer.bias.withUnsafeBufferPointer { bias in
            for index in 0..<output.rows {
                let row = output.row(index)
                if epilogue == .residual {
                    for column in row.indices { row[column] += bias[column] }
                } else {
                    _ = row.update(fromContentsOf: bias)
                }
            }
        }
        layer.weight.withUnsafeBufferPointer { weight in
            guard let weightBase = weight.baseAddress else { return }
            // HF Linear stores [out, in]; reading it transposed avoids a copy.
            sgemm(transposeB: true, m: input.rows, n: layer.outputSize, k: layer.inputSize,
                  alpha: 1, a: input.base, lda: input.rowStride, b: weightBase, ldb: layer.inputSize,
                  beta: 1, c: output.base, ldc: output.rowStride)
        }
        if case let .activation(activation) = epilogue { Self.activate(output, activation) }
    }

    package func attention(_ queryKeyValue: MatrixView, sequences: [Range<Int>], headCount: Int, into context: MatrixView) {
        let hidden = context.columns, headSize = hidden / headCount
        precondition(queryKeyValue.columns == 3 * hidden && headSize * headCount == hidden,
                     "attention over \(queryKeyValue.columns) QKV columns into \(hidden) with \(headCount) heads")
        let longest = sequences.map(\.count).max() ?? 0
        if scores.count < longest * longest {
            scores.deallocate()
            scores = .allocate(capacity: longest * longest)
        }
        guard let scoresBase = scores.baseAddress else { return }
        let scale = 1 / Float(headSize).squareRoot()
        for rows in sequences {
            // Keys are only this text's tokens, so no padding mask is needed and no row is all-masked.
            let textScores = MatrixView(base: scoresBase, rows: rows.count, columns: rows.count)
            let text = queryKeyValue.rows(rows)
            for head in 0..<headCount {
                let query = text.columns(head * headSize ..< (head + 1) * headSize)
                let key = text.columns(hidden + head * headSize ..< hidden + (head + 1) * headSize)
                let value = text.columns(2 * hidden + head * headSize ..< 2 * hidden + (head + 1) * headSize)
                sgemm(transposeB: true, m: rows.count, n: rows.count, k: headSize, alpha: scale,
                      a: query.base, lda: query.rowStride, b: key.base, ldb: key.rowStride,
                      beta: 0, c: textScores.base, ldc: textScores.rowStride)
                softmaxRows(textScores)
                let out = context.rows(rows).columns(head * headSize ..< (head + 1) * headSize)
                sgemm(transposeB: false, m: rows.count, n: headSize, k: rows.count, alpha: 1,
                      a: textScores.base, lda: textScores.rowStride, b: value.base, ldb: value.rowStride,
                      beta: 0, c: out.base, ldc: out.rowStride)
            }
        }
    }

    package func layerNorm(_ x: MatrixView, _ norm: LayerNormWeights, epsilon: Float) {
        precondition(x.columns == norm.size, "layer norm of size \(norm.size) applied to \(x.rows)×\(x.columns)")
        norm.weight.withUnsafeBufferPointer { gamma in
            norm.bias.withUnsafeBufferPointer { beta in
                guard let gamma = gamma.baseAddress, let beta = beta.baseAddress else { return }
                VectorMath.layerNorm(x, gamma: gamma, beta: beta, epsilon: epsilon)
            }
        }
    }

    /// PyTorch's formula for `activation`, in place, in scalar loops.
    static func activate(_ x: MatrixView, _ activation: Activation) {
        let width = x.columns
        for index in 0..<x.rows {
            let row = x.base + index * x.rowStride
            switch activation {
            case .gelu:
                for column in 0..<width { row[column] = 0.5 * row[column] * (1 + erff(row[column] * 0.707_106_781_186_547_524)) }
            case .geluTanh:
                for column in 0..<width {
                    let value = row[column]
                    row[column] = 0.5 * value * (1 + tanhf(0.797_884_560_802_865_355 * (value + 0.044715 * value * value * value)))
                }
            case .quickGelu:
                for column in 0..<width { row[column] = row[column] / (1 + expf(-1.702 * row[column])) }
            case .relu:
                for column in 0..<width where row[column] < 0 { row[column] = 0 }
            case .silu:
                for column in 0..<width { row[column] = row[column] / (1 + expf(-row[column])) }
            case .tanh:
                for column in 0..<width { row[column] = tanhf(row[column]) }
            }
        }
    }

    private func softmaxRows(_ x: MatrixView) {
        let width = x.columns
        guard width > 0 else { return }
        for index in 0..<x.rows {
            let row = x.base + index * x.rowStride
            var largest = row[0]
            for column in 1..<width where row[column] > largest { largest = row[column] }
            var sum: Float = 0
            for column in 0..<width {
                let exponential = expf(row[column] - largest)
                row[column] = exponential
                sum += exponential
            }
            let scale = 1 / sum
            for column in 0..<width { row[column] *= scale }
        }
    }

    private func sgemm(transposeB: Bool, m: Int, n: Int, k: Int,
                       alpha: Float, a: UnsafePointer<Float>, lda: Int,
                       b: UnsafePointer<Float>, ldb: Int,
                       beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
        let no = CChar(UInt8(ascii: "N")), yes = CChar(UInt8(ascii: "T"))
        let status = dnnl_sgemm(no, transposeB ? yes : no, dnnl_dim_t(m), dnnl_dim_t(n), dnnl_dim_t(k),
                                alpha, a, dnnl_dim_t(lda), b, dnnl_dim_t(ldb), beta, c, dnnl_dim_t(ldc))
        // Shapes are checked by the callers, so a failure here is a bug in this file, not bad input.
        precondition(status == dnnl_success, "dnnl_sgemm(\(m)×\(k) · \(k)×\(n)) failed with status \(status.rawValue)")
    }
}
