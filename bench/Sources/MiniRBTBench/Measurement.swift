import Foundation

/// A batch geometry: `batch` texts of exactly `length` tokens each.
struct BatchShape: Sendable, CustomStringConvertible {
    let batch: Int
    let length: Int

    var description: String { "B=\(batch),S=\(length)" }

    /// Parses `BxS`, e.g. `32x64`.
    init?(_ text: String) {
        let parts = text.lowercased().split(separator: "x")
        guard parts.count == 2, let batch = Int(parts[0]), let length = Int(parts[1]), batch > 0, length > 1 else { return nil }
        self.init(batch: batch, length: length)
    }

    init(batch: Int, length: Int) {
        self.batch = batch
        self.length = length
    }

    static let defaults = [BatchShape(batch: 1, length: 32), BatchShape(batch: 32, length: 64), BatchShape(batch: 32, length: 128)]
}

/// One benchmark cell's result, as printed and as `--json` emits it.
struct Measurement: Codable, Sendable {
    let model: String
    let precision: String
    let batch: Int
    let length: Int
    let threads: Int
    /// Timed runs after warm-up.
    let runs: Int
    let medianMilliseconds: Double
    let minimumMilliseconds: Double
    /// `batch / median`.
    let sequencesPerSecond: Double
    /// Milliseconds to create the session and run its first batch (packing, primitive creation).
    let firstBatchMilliseconds: Double
}

/// Times a closure: warm-up runs, then at least `minimumRuns` and until `budget` seconds have passed.
struct Stopwatch {
    let warmUp: Int
    let minimumRuns: Int
    let maximumRuns: Int
    let budget: Double

    func measure(_ body: () throws -> Void) rethrows -> [Double] {
        for _ in 0..<warmUp { try body() }
        var samples: [Double] = []
        let start = DispatchTime.now().uptimeNanoseconds
        while samples.count < minimumRuns
            || (samples.count < maximumRuns && Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 < budget) {
            samples.append(try Self.seconds(body))
        }
        return samples
    }

    static func seconds(_ body: () throws -> Void) rethrows -> Double {
        let start = DispatchTime.now().uptimeNanoseconds
        try body()
        return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
    }
}

extension Array where Element == Double {
    /// The middle sample (mean of the two middle ones for an even count).
    var median: Double {
        guard !isEmpty else { return .nan }
        let sorted = self.sorted()
        let middle = sorted.count / 2
        return sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
    }
}
