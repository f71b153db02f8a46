import Foundation

/// A loaded BERT checkpoint: config, weights and labels, immutable once built.
///
/// One instance is shared by every inference shard; per-shard scratch memory lives in
/// `InferenceSession`, so sharing needs no locks.
public final class BertModel: Sendable {
    public let config: ModelConfig
    package let weights: BertWeights

    /// Label names in class-index order (empty meaning for `.embeddings` models).
    public var labels: [String] { config.labels }
    public var task: ModelTask { config.task }

    /// Builds a model from a config and a weight file's tensors, checking every tensor's presence and shape.
    public init(config: ModelConfig, tensors: [String: Tensor]) throws {
        self.config = config
        self.weights = try BertWeights(config: config, tensors: tensors)
    }

    /// The weight file names tried in a model directory, in order of preference.
    public static let weightFileNames = ["model.safetensors", "pytorch_model.bin"]

    /// Loads an HF model directory: `config.json` plus `model.safetensors` or `pytorch_model.bin`.
    public static func load(directory: URL) throws -> BertModel {
        let config = try ModelConfig.load(from: directory.appendingPathComponent("config.json"))
        let fileManager = FileManager.default
        guard let weightsURL = weightFileNames
            .map({ directory.appendingPathComponent($0) })
            .first(where: { fileManager.fileExists(atPath: $0.path) })
        else {
            throw CheckpointError.missingFile(path: directory.appendingPathComponent(weightFileNames[0]).path,
                                              expected: "one of \(weightFileNames.joined(separator: ", ")) (sharded checkpoints are not supported)")
        }
        return try BertModel(config: config, tensors: WeightFile.load(weightsURL))
    }
}
