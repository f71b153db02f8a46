import ArgumentParser
import Foundation
import MiniRBT

/// `minirbt-bench`: sequences per second and batch latency of the encoder on random weights.
@main
struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "minirbt-bench",
        abstract: "Benchmark the MiniRBT encoder (random weights of real model shapes).",
        discussion: "Models: \(ModelShape.all.map(\.name).joined(separator: ", ")). "
            + "Each cell: warm-up, then the median latency of the timed runs; sequences/s = batch size / median.")

    @Option(name: .long, parsing: .upToNextOption, help: "Model shapes to run (default: all).")
    var model: [String] = []

    @Option(name: .long, parsing: .upToNextOption, help: "Batch shapes as BxS (default: 1x32 32x64 32x128).")
    var shape: [String] = []

    @Option(name: .long, parsing: .upToNextOption, help: "Precisions: fp32, bf16, int8 (default: all).")
    var precision: [Precision] = []

    @Option(name: .long, help: "OpenMP threads for the matrix products.")
    var threads = 2

    @Option(name: .long, help: "Untimed runs per cell before timing.")
    var warmUp = 2

    @Option(name: .long, help: "Timed runs per cell, at least.")
    var runs = 5

    @Option(name: .long, help: "Seconds of timed runs per cell to aim for (more runs if time allows).")
    var seconds = 2.0

    @Flag(name: .long, help: "Print one JSON array of results instead of a table.")
    var json = false

    func validate() throws {
        for name in model where ModelShape.named(name) == nil {
            throw ValidationError("unknown model '\(name)', expected one of \(ModelShape.all.map(\.name).joined(separator: ", "))")
        }
        for text in shape where BatchShape(text) == nil {
            throw ValidationError("batch shape '\(text)' is not BxS with B ≥ 1 and S ≥ 2, e.g. 32x64")
        }
        guard threads >= 1, runs >= 1, warmUp >= 0 else { throw ValidationError("--threads and --runs must be ≥ 1, --warm-up ≥ 0") }
    }

    func run() throws {
        let models = model.isEmpty ? ModelShape.all : model.compactMap(ModelShape.named)
        let shapes = shape.isEmpty ? BatchShape.defaults : shape.compactMap(BatchShape.init)
        let precisions = precision.isEmpty ? Precision.allCases : precision
        let stopwatch = Stopwatch(warmUp: warmUp, minimumRuns: runs, maximumRuns: max(runs, 200), budget: seconds)
        if !json {
            print("oneDNN \(RuntimeInfo.oneDNNVersion), \(RuntimeInfo.instructionSet), \(threads) thread(s)")
            print(Self.row(["model", "precision", "batch", "runs", "median ms", "min ms", "seq/s", "first batch ms"]))
            print(Self.row(Array(repeating: "---", count: 8)))
        }
        var results: [Measurement] = []
        for shapeOfModel in models {
            let weights = try shapeOfModel.randomModel(seed: 20_260_429)
            for precision in precisions {
                // A precision this CPU has no fast kernel for is skipped (served as fp32, its cells would
                // only repeat fp32's); stderr says why, so scripts reading --json see no cell for it.
                if case .failure(let reason) = RuntimeInfo.kernel(for: precision) {
                    FileHandle.standardError.write(Data("minirbt-bench: skipping \(precision): \(reason)\n".utf8))
                    continue
                }
                for batchShape in shapes {
                    let inputs = Self.inputs(batchShape, vocabSize: ModelShape.vocabSize)
                    var session: InferenceSession?
                    let first = try Stopwatch.seconds {
                        let fresh = try InferenceSession(model: weights, threads: threads, precision: precision)
                        _ = try fresh.classify(inputs)
                        session = fresh
                    }
                    guard let session else { continue }
                    let samples = try stopwatch.measure { _ = try session.classify(inputs) }
                    let median = samples.median
                    let measurement = Measurement(
                        model: shapeOfModel.name, precision: precision.rawValue, batch: batchShape.batch,
                        length: batchShape.length, threads: threads, runs: samples.count,
                        medianMilliseconds: median * 1e3, minimumMilliseconds: (samples.min() ?? .nan) * 1e3,
                        sequencesPerSecond: Double(batchShape.batch) / median, firstBatchMilliseconds: first * 1e3)
                    results.append(measurement)
                    if !json { print(Self.row(measurement)) }
                }
            }
        }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(results), as: UTF8.self))
        }
    }

    /// `batch` texts of `length` ids: [CLS], random ordinary tokens, [SEP] (bert-base-chinese's ids).
    static func inputs(_ shape: BatchShape, vocabSize: Int) -> [ModelInput] {
        var generator = SplitMix64(seed: UInt64(shape.batch * 1000 + shape.length))
        let classToken: Int32 = 101, separator: Int32 = 102, firstOrdinary = 672
        return (0..<shape.batch).map { _ in
            let body = (0..<(shape.length - 2)).map { _ in Int32(Int.random(in: firstOrdinary..<vocabSize, using: &generator)) }
            return ModelInput(inputIDs: [classToken] + body + [separator])
        }
    }

    static func row(_ cells: [String]) -> String { "| " + cells.joined(separator: " | ") + " |" }

    static func row(_ m: Measurement) -> String {
        row([m.model, m.precision, "B=\(m.batch),S=\(m.length)", "\(m.runs)",
             String(format: "%.2f", m.medianMilliseconds), String(format: "%.2f", m.minimumMilliseconds),
             String(format: "%.1f", m.sequencesPerSecond), String(format: "%.0f", m.firstBatchMilliseconds)])
    }
}

extension Precision: ExpressibleByArgument {}
