import Testing
@testable import MiniRBT

/// The int8 matrix product of the process's backend (oneDNN brgemm with VNNI or AMX, or the engine's AVX2
/// kernel) against the integer definition: exact int32 for every row count, which is what makes an int8
/// result independent of the batch its text shares.
@Suite struct Int8ProductTests {
    @Test("the int8 product is the exact int32 product for every row count a batch can have",
          arguments: [(32, 96), (32, 32), (32, 64), (64, 32), (256, 768), (1024, 256)])
    func productIsExact(inputs: Int, outputs: Int) throws {
        guard case let .success(backend) = Int8Backend.selected else { return }
        var generator = VectorMathTests.SplitMix(seed: UInt64(inputs * 7 + outputs))
        let weights = (0..<inputs * outputs).map { _ in Float(generator.nextUnit() * 2 - 1) }
        let layer = try Int8Linear(LinearWeights(name: "probe", weight: weights, bias: [Float](repeating: 0, count: outputs),
                                                 inputSize: inputs, outputSize: outputs, allowsReducedPrecision: true),
                                   backend: backend, stream: DNNLStream())
        // The weights as the backend holds them: each output column quantised with its own scale.
        var bytes = [Int8](repeating: 0, count: inputs * outputs)
        weights.withUnsafeBufferPointer { weight in
            bytes.withUnsafeMutableBufferPointer { output in
                for column in 0..<outputs {
                    VectorMath.quantize(weight.baseAddress! + column * inputs, count: inputs, scale: layer.columnScales[column],
                                        into: output.baseAddress! + column * inputs)
                }
            }
        }
        let quantized = bytes.map(Int32.init)
        let stream = try DNNLStream()
        for rows in [1, 2, 7, 8, 9, 31, 33, 64, 65, 100, 130] {
            let padded = RowPadding.rows(for: rows)
            let source = UnsafeMutablePointer<Int8>.allocate(capacity: padded * inputs)
            let sums = UnsafeMutablePointer<Int32>.allocate(capacity: padded * outputs)
            defer { source.deallocate(); sums.deallocate() }
            for index in 0..<rows * inputs { source[index] = Int8(Int(generator.nextUnit() * 255) - 127) }
            #expect(layer.multiply(source, rows: rows, into: sums, stream: stream))
            var wrong = 0, first = ""
            for r in 0..<rows {
                for c in 0..<outputs {
                    var exact: Int32 = 0
                    for k in 0..<inputs { exact &+= Int32(source[r * inputs + k]) &* quantized[c * inputs + k] }
                    if exact != sums[r * outputs + c] {
                        if wrong == 0 { first = "[\(r)][\(c)] \(sums[r * outputs + c]) instead of \(exact)" }
                        wrong += 1
                    }
                }
            }
            #expect(wrong == 0, "\(backend), \(rows) rows × \(inputs) → \(outputs): \(wrong) of \(rows * outputs) sums wrong, first \(first)")
        }
    }
}
