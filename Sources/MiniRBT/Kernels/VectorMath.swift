import CVectorMath

/// The element-wise loops both kernel sets share. They are C (`CVectorMath`) so that each is built for
/// AVX-512, AVX2 and baseline x86-64 and run at the level `RuntimeInfo.kernelLevel` names; Swift itself
/// compiles for the baseline.
enum VectorMath {
    /// In place, row by row: `x = (x − mean) / √(variance + ε) · gamma + beta`, two passes as torch computes it.
    static func layerNorm(_ x: MatrixView, gamma: UnsafePointer<Float>, beta: UnsafePointer<Float>, epsilon: Float) {
        vm_layer_norm(x.base, x.rows, x.columns, x.rowStride, gamma, beta, epsilon)
    }

    /// The largest |value| of `count` floats.
    static func maximumMagnitude(_ values: UnsafePointer<Float>, count: Int) -> Float {
        vm_maximum_magnitude(values, count)
    }

    /// Symmetric int8 quantisation: `round(value / scale)` (ties to even) clamped to ±127.
    static func quantize(_ values: UnsafePointer<Float>, count: Int, scale: Float, into output: UnsafeMutablePointer<Int8>) {
        vm_quantize_s8(values, count, 1 / scale, output)
    }

    /// float32 → bfloat16 with round-to-nearest-even (inputs are finite activations).
    static func convertToBFloat16(_ values: UnsafePointer<Float>, count: Int, into output: UnsafeMutablePointer<UInt16>) {
        vm_convert_bf16(values, count, output)
    }
}
