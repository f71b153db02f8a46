import ArgumentParser
import Foundation
import MiniRBT
import StreamPipeline

struct InferCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "infer",
        abstract: "Run a model over JSON Lines events offline and print the results the service would publish.",
        discussion: """
            Reads one {"id", "text"[, "text_pair"]} object per line. Writes one result per line: for a \
            classifier {"id", "label", "score", "scores", "model", "truncated"} (plus "logits" with \
            --logits), the same object `minirbt-stream run` publishes. A line that cannot be read gets \
            {"line", "error": {"code", "message"}} and the run goes on.

            Example:
              minirbt-stream infer --model ../shared/models/minirbt-h256-chnsenticorp/v2 \\
                --input ../shared/data/chnsenticorp/dev.jsonl
            """)

    @Option(help: "An HF checkpoint directory: config.json, vocab.txt, model.safetensors or pytorch_model.bin.")
    var model: String

    @Option(help: "Maximum sequence length in tokens; longer texts are truncated and flagged.")
    var maxLength: Int = 128

    @Option(help: "Events per forward pass.")
    var batch: Int = 32

    @Option(help: "oneDNN threads for the forward passes.")
    var threads: Int = ProcessInfo.processInfo.activeProcessorCount

    @Option(help: ArgumentHelp("Format of the encoder's matrix products, checked against fp32 on the first batch "
                               + "(default: auto, the fastest on this CPU: \(Precision.default)).", valueName: "precision"))
    var precision: Precision?

    @Flag(help: "Include the raw logits in every result.")
    var logits = false

    @Option(help: "Pooling for sentence-embedding models: cls or mean.")
    var pooling: Pooling = .cls

    @OptionGroup var files: JSONLinesOptions

    func validate() throws {
        guard batch >= 1 else { throw ValidationError("--batch must be at least 1, got \(batch)") }
        guard maxLength >= 2 else { throw ValidationError("--max-length must be at least 2, got \(maxLength)") }
        guard threads >= 1 else { throw ValidationError("--threads must be at least 1, got \(threads)") }
    }

    func run() throws {
        let loaded = try LoadedModel.load(directory: URL(fileURLWithPath: model))
        let limit = loaded.model.config.maxPositions
        guard maxLength <= limit else {
            throw ValidationError("--max-length \(maxLength) exceeds the model's max_position_embeddings (\(limit))")
        }
        let predictor = Predictor(threads: threads, maxLength: maxLength, includeLogits: logits, pooling: pooling,
                                  precision: precision ?? .default) { session in
            if let warning = session.fallbackReason {
                FileHandle.standardError.write(Data("minirbt-stream infer: \(warning)\n".utf8))
            }
        }
        let writer = try LineWriter(path: files.output)
        var pending: [(line: Int, event: TextEvent)] = []
        func flush() throws {
            let predictions = try predictor.predict(pending.map(\.event), with: loaded)
            for ((line, event), prediction) in zip(pending, predictions) {
                try writer.write(EnrichedResult(id: event.id ?? "line-\(line)", model: loaded.identity,
                                                prediction: prediction))
            }
            pending.removeAll(keepingCapacity: true)
        }

        try files.forEachEvent { line, decoded in
            switch decoded {
            case .success(let event):
                pending.append((line, event))
                if pending.count == batch { try flush() }
            case .failure(let error):
                // Earlier good lines go out first, so the output keeps the input's order.
                try flush()
                try writer.write(LineError(line: line, error))
            }
        }
        try flush()
        writer.flush()
    }
}

extension Pooling: ExpressibleByArgument {}
extension Precision: ExpressibleByArgument {
    /// A precision's name, or `auto` for ``Precision/default``, the fastest on this CPU.
    public init?(argument: String) {
        guard let precision = argument == Precision.automatic ? .default : Precision(rawValue: argument) else { return nil }
        self = precision
    }

    public static var allValueStrings: [String] { [automatic] + allCases.map(\.rawValue) }
}
