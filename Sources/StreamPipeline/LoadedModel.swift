import Foundation
import MiniRBT
import ModelControl

/// A model ready to serve: weights, tokenizer, labels and identity. Immutable and shared by every shard;
/// each shard keeps its own scratch buffers (see ``Predictor``).
public final class LoadedModel: Sendable {
    public let identity: ModelIdentity
    public let model: BertModel
    public let tokenizer: BertTokenizer
    /// Where the checkpoint was read from.
    public let directory: URL
    /// The drift baseline of its manifest; nil for a plain checkpoint or a version published without one.
    public let baseline: DriftBaseline?

    public init(identity: ModelIdentity, model: BertModel, tokenizer: BertTokenizer, directory: URL,
                baseline: DriftBaseline? = nil) {
        self.identity = identity
        self.model = model
        self.tokenizer = tokenizer
        self.directory = directory
        self.baseline = baseline
    }

    /// Loads an HF checkpoint directory (`config.json`, `vocab.txt`, weights).
    /// - Parameters:
    ///   - name: the model's name in results; defaults to the directory's parent name (`<name>/<version>/`
    ///     in a registry) or the directory's own name.
    ///   - version: defaults to the directory's name.
    public static func load(directory: URL, name: String? = nil, version: String? = nil) throws -> LoadedModel {
        let model = try BertModel.load(directory: directory)
        let tokenizer = try BertTokenizer(checkpointDirectory: directory)
        let versionName = version ?? directory.lastPathComponent
        let modelName = name ?? directory.deletingLastPathComponent().lastPathComponent
        return LoadedModel(identity: ModelIdentity(name: modelName, version: versionName),
                           model: model, tokenizer: tokenizer, directory: directory)
    }
}
