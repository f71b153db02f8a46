/// The element-wise loops both kernel sets share, written on 16-lane SIMD vectors (one AVX-512 register)
/// because the compiler will not reassociate float reductions on its own.
enum VectorMath {
    typealias Lanes = SIMD16<Float>
    static let width = Lanes.scalarCount

    /// `row = (row − mean) / √(variance + ε) · gamma + beta`, two passes as torch computes it.
    static func layerNorm(_ row: UnsafeMutablePointer<Float>, count: Int, gamma: UnsafePointer<Float>,
                          beta: UnsafePointer<Float>, epsilon: Float) {
        let vectorEnd = count / width * width
        var sums = Lanes()
        for start in stride(from: 0, to: vectorEnd, by: width) { sums += load(row + start) }
        var sum = sums.sum()
        for index in vectorEnd..<count { sum += row[index] }
        let mean = sum / Float(count)

        var squares = Lanes()
        for start in stride(from: 0, to: vectorEnd, by: width) {
            let centred = load(row + start) - mean
            squares += centred * centred
        }
        var squareSum = squares.sum()
        for index in vectorEnd..<count {
            let centred = row[index] - mean
            squareSum += centred * centred
        }
        let inverseDeviation = 1 / (squareSum / Float(count) + epsilon).squareRoot()

        for start in stride(from: 0, to: vectorEnd, by: width) {
            let normalised = (load(row + start) - mean) * inverseDeviation
            store(normalised * load(gamma + start) + load(beta + start), to: row + start)
        }
        for index in vectorEnd..<count {
            row[index] = (row[index] - mean) * inverseDeviation * gamma[index] + beta[index]
        }
    }

    // The loops below are written for LLVM's auto-vectoriser rather than on SIMD types: Swift's generic
    // SIMD conversions and pointwise min/max are not specialised into vector instructions, and Float's
    // min/max/rounding APIs carry NaN and overflow semantics that block vectorisation.

    /// The largest |value| of `count` floats. Non-negative floats order like their bit patterns, so the
    /// reduction runs on integers, which vectorises without reassociating float arithmetic.
    static func maximumMagnitude(_ values: UnsafePointer<Float>, count: Int) -> Float {
        let bits = UnsafeRawPointer(values).assumingMemoryBound(to: UInt32.self)
        var largest: UInt32 = 0
        for index in 0..<count {
            let magnitude = bits[index] & 0x7FFF_FFFF
            largest = magnitude > largest ? magnitude : largest
        }
        return Float(bitPattern: largest)
    }

    /// Symmetric int8 quantisation: `round(value / scale)` (ties to even) clamped to ±127.
    static func quantize(_ values: UnsafePointer<Float>, count: Int, scale: Float, into output: UnsafeMutablePointer<Int8>) {
        let inverse = 1 / scale
        // Adding 1.5·2²³ leaves round(v) in the low mantissa bits for |v| ≤ 2²², so the low byte is the
        // two's-complement int8 — the FPU's round-to-nearest-even does the rounding.
        let shifter: Float = 12_582_912
        for index in 0..<count {
            var scaled = values[index] * inverse
            scaled = scaled > 127 ? 127 : scaled
            scaled = scaled < -127 ? -127 : scaled
            output[index] = Int8(truncatingIfNeeded: (scaled + shifter).bitPattern)
        }
    }

    /// float32 → bfloat16 with round-to-nearest-even (inputs are finite activations).
    static func convertToBFloat16(_ values: UnsafePointer<Float>, count: Int, into output: UnsafeMutablePointer<UInt16>) {
        let bits = UnsafeRawPointer(values).assumingMemoryBound(to: UInt32.self)
        for index in 0..<count {
            let word = bits[index]
            output[index] = UInt16(truncatingIfNeeded: (word &+ 0x7FFF &+ ((word >> 16) & 1)) >> 16)
        }
    }

    @inline(__always) static func load(_ pointer: UnsafePointer<Float>) -> Lanes {
        UnsafeRawPointer(pointer).loadUnaligned(as: Lanes.self)
    }

    @inline(__always) static func load(_ pointer: UnsafeMutablePointer<Float>) -> Lanes {
        UnsafeRawPointer(pointer).loadUnaligned(as: Lanes.self)
    }

    @inline(__always) static func store(_ lanes: Lanes, to pointer: UnsafeMutablePointer<Float>) {
        UnsafeMutableRawPointer(pointer).storeBytes(of: lanes, as: Lanes.self)
    }
}
