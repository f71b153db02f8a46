import CDNNL
import Foundation

/// `ComputeKernels` on oneDNN: matrix products through `dnnl_sgemm` (which picks the widest instruction
/// set the CPU offers at run time), element-wise work in plain Swift loops that follow PyTorch's formulas.
///
/// oneDNN parallelises with OpenMP; the team size is the calling thread's `omp_set_num_threads`
/// setting, which `InferenceSession` sets before each forward pass.
package struct DNNLKernels: ComputeKernels {
    package init() {}

    package func linear(_ input: MatrixView, _ layer: LinearWeights, into output: MatrixView) {
        precondition(input.columns == layer.inputSize && output.columns == layer.outputSize && input.rows == output.rows,
                     "linear \(layer.inputSize)→\(layer.outputSize) applied to \(input.rows)×\(input.columns) into \(output.rows)×\(output.columns)")
        guard input.rows > 0 else { return }
        // Start from the bias and let the GEMM accumulate onto it (beta = 1), as torch's addmm does.
        layer.bias.withUnsafeBufferPointer { bias in
            for index in 0..<output.rows {
                _ = output.row(index).update(fromContentsOf: bias)
            }
        }
        layer.weight.withUnsafeBufferPointer { weight in
            guard let weightBase = weight.baseAddress else { return }
            // HF Linear stores [out, in]; reading it transposed avoids a copy.
            sgemm(transposeA: false, transposeB: true,
                  m: input.rows, n: layer.outputSize, k: layer.inputSize,
                  alpha: 1, a: input.base, lda: input.rowStride,
                  b: weightBase, ldb: layer.inputSize,
                  beta: 1, c: output.base, ldc: output.rowStride)
        }
    }

    package func matmul(_ a: MatrixView, _ b: MatrixView, transposeB: Bool, alpha: Float, into c: MatrixView) {
        let k = a.columns
        let n = transposeB ? b.rows : b.columns
        precondition((transposeB ? b.columns : b.rows) == k && c.rows == a.rows && c.columns == n,
                     "matmul \(a.rows)×\(a.columns) · \(b.rows)×\(b.columns)\(transposeB ? "ᵀ" : "") into \(c.rows)×\(c.columns)")
        guard a.rows > 0, n > 0 else { return }
        sgemm(transposeA: false, transposeB: transposeB, m: a.rows, n: n, k: k,
              alpha: alpha, a: a.base, lda: a.rowStride, b: b.base, ldb: b.rowStride,
              beta: 0, c: c.base, ldc: c.rowStride)
    }

    package func layerNorm(_ input: MatrixView, adding residual: MatrixView?, _ norm: LayerNormWeights, epsilon: Float,
                           into output: MatrixView) {
        precondition(input.columns == norm.size && output.columns == norm.size && output.rows == input.rows
                     && (residual.map { $0.rows == input.rows && $0.columns == input.columns } ?? true),
                     "layer norm of size \(norm.size) applied to \(input.rows)×\(input.columns) into \(output.rows)×\(output.columns)")
        let width = norm.size
        guard width > 0 else { return }
        // Raw pointers rather than buffer subscripts and iterators: these loops run over every activation,
        // and in debug builds the checked, generic paths cost several times the arithmetic.
        norm.weight.withUnsafeBufferPointer { gammaBuffer in
            norm.bias.withUnsafeBufferPointer { betaBuffer in
                guard let gamma = gammaBuffer.baseAddress, let beta = betaBuffer.baseAddress else { return }
                for index in 0..<input.rows {
                    // Each element is read before it is written, so output may alias input or residual.
                    let source = input.base + index * input.rowStride
                    let row = output.base + index * output.rowStride
                    if let residual {
                        let skip = residual.base + index * residual.rowStride
                        for column in 0..<width { row[column] = source[column] + skip[column] }
                    } else if row != source {
                        row.update(from: source, count: width)
                    }
                    // Two passes (mean, then centred variance) as torch does, not E[x²] − E[x]².
                    var sum: Float = 0
                    for column in 0..<width { sum += row[column] }
                    let mean = sum / Float(width)
                    var squares: Float = 0
                    for column in 0..<width {
                        let centred = row[column] - mean
                        squares += centred * centred
                    }
                    let inverseDeviation = 1 / (squares / Float(width) + epsilon).squareRoot()
                    for column in 0..<width {
                        row[column] = (row[column] - mean) * inverseDeviation * gamma[column] + beta[column]
                    }
                }
            }
        }
    }

    package func activate(_ x: MatrixView, _ activation: Activation) {
        let width = x.columns
        for index in 0..<x.rows {
            let row = x.base + index * x.rowStride
            switch activation {
            case .gelu:
                for column in 0..<width { row[column] = Self.gelu(row[column]) }
            case .geluTanh:
                for column in 0..<width { row[column] = Self.geluTanh(row[column]) }
            case .quickGelu:
                for column in 0..<width { row[column] = row[column] * Self.sigmoid(1.702 * row[column]) }
            case .relu:
                for column in 0..<width where row[column] < 0 { row[column] = 0 }
            case .silu:
                for column in 0..<width { row[column] = row[column] * Self.sigmoid(row[column]) }
            case .tanh:
                for column in 0..<width { row[column] = tanhf(row[column]) }
            }
        }
    }

    package func softmaxRows(_ x: MatrixView) {
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

    // MARK: - Scalar functions (PyTorch's definitions)

    @inline(__always) static func gelu(_ x: Float) -> Float {
        0.5 * x * (1 + erff(x * 0.707_106_781_186_547_524))
    }

    @inline(__always) static func geluTanh(_ x: Float) -> Float {
        0.5 * x * (1 + tanhf(0.797_884_560_802_865_355 * (x + 0.044715 * x * x * x)))
    }

    @inline(__always) static func sigmoid(_ x: Float) -> Float {
        1 / (1 + expf(-x))
    }

    // MARK: - GEMM

    private func sgemm(transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int,
                       alpha: Float, a: UnsafePointer<Float>, lda: Int,
                       b: UnsafePointer<Float>, ldb: Int,
                       beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
        let no = CChar(UInt8(ascii: "N")), yes = CChar(UInt8(ascii: "T"))
        let status = dnnl_sgemm(transposeA ? yes : no, transposeB ? yes : no,
                                dnnl_dim_t(m), dnnl_dim_t(n), dnnl_dim_t(k),
                                alpha, a, dnnl_dim_t(lda), b, dnnl_dim_t(ldb),
                                beta, c, dnnl_dim_t(ldc))
        // Shapes are checked by the callers, so a failure here is a bug in this file, not bad input.
        precondition(status == dnnl_success, "dnnl_sgemm(\(m)×\(k) · \(k)×\(n)) failed with status \(status.rawValue)")
    }
}
