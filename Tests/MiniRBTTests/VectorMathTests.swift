import Testing
@testable import MiniRBT

/// The element-wise loops of the engine (C, one build per instruction-set level) against plain
/// definitions, on sizes that are not multiples of any vector width.
@Suite struct VectorMathTests {
    @Test("LayerNorm matches the textbook formula in Double, row by row, honouring the row stride",
          arguments: [1, 7, 256, 301])
    func layerNormMatchesDefinition(columns: Int) {
        let rows = 5, stride = columns + 3
        var generator = SplitMix(seed: UInt64(columns))
        var values = (0..<rows * stride).map { _ in Float(generator.nextUnit() * 8 - 4) }
        let gamma = (0..<columns).map { _ in Float(generator.nextUnit() + 0.5) }
        let beta = (0..<columns).map { _ in Float(generator.nextUnit() - 0.5) }
        let original = values
        values.withUnsafeMutableBufferPointer { buffer in
            VectorMath.layerNorm(MatrixView(base: buffer.baseAddress!, rows: rows, columns: columns, rowStride: stride),
                                 gamma: gamma, beta: beta, epsilon: 1e-12)
        }
        for row in 0..<rows {
            let input = original[row * stride ..< row * stride + columns].map(Double.init)
            let mean = input.reduce(0, +) / Double(columns)
            let variance = input.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(columns)
            for column in 0..<columns {
                let expected = (input[column] - mean) / (variance + 1e-12).squareRoot() * Double(gamma[column]) + Double(beta[column])
                #expect(abs(Double(values[row * stride + column]) - expected) < 1e-5, "row \(row) column \(column)")
            }
            // The gap between rows is not part of any row.
            for gap in columns..<stride { #expect(values[row * stride + gap] == original[row * stride + gap]) }
        }
    }

    @Test("int8 quantisation rounds half to even and clamps to ±127; the largest magnitude ignores sign")
    func quantisation() {
        let values: [Float] = [0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 126.5, 127.4, 300, -1e9, 0, -0.0, 3.49, -3.51,
                               10, 11, 12, 13, 14, 15, 16, -17.5]
        let expected: [Int8] = [0, 2, 2, 0, -2, -2, 126, 127, 127, -127, 0, 0, 3, -4,
                                10, 11, 12, 13, 14, 15, 16, -18]
        var output = [Int8](repeating: 99, count: values.count)
        values.withUnsafeBufferPointer { input in
            VectorMath.quantize(input.baseAddress!, count: values.count, scale: 1, into: &output)
        }
        #expect(output == expected)
        values.withUnsafeBufferPointer { input in
            #expect(VectorMath.maximumMagnitude(input.baseAddress!, count: values.count) == 1e9)
            #expect(VectorMath.maximumMagnitude(input.baseAddress!, count: 6) == 2.5)
            #expect(VectorMath.maximumMagnitude(input.baseAddress!, count: 0) == 0)
        }
    }

    @Test("bfloat16 conversion rounds to nearest, ties to even")
    func bfloat16Rounding() {
        let bits: [UInt32] = [0x3F80_0000, 0x3F80_8000, 0x3F81_8000, 0x3F80_8001, 0xBF80_7FFF, 0x0000_0000, 0x7F7F_0000]
        let expected: [UInt16] = [0x3F80, 0x3F80, 0x3F82, 0x3F81, 0xBF80, 0x0000, 0x7F7F]
        let values = bits.map(Float.init(bitPattern:))
        var output = [UInt16](repeating: 0xFFFF, count: values.count)
        values.withUnsafeBufferPointer { input in
            VectorMath.convertToBFloat16(input.baseAddress!, count: values.count, into: &output)
        }
        #expect(output == expected)
    }

    /// A small deterministic generator, so failures reproduce.
    struct SplitMix {
        var state: UInt64
        init(seed: UInt64) { state = seed }
        mutating func nextUnit() -> Double {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return Double((z ^ (z >> 31)) >> 11) / Double(1 << 53)
        }
    }
}
