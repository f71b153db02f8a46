import Foundation
import ModelControl

/// Turns a registry version into a serving model: verify (checksums, shapes, vocabulary, golden examples),
/// then warm up one batch. Runs on a thread of its own, because it is seconds of blocking disk and CPU
/// work that must neither stall the cooperative pool nor the shards.
public struct ModelLoader: Sendable {
    public let registry: ModelRegistry

    public init(registry: ModelRegistry) {
        self.registry = registry
    }

    /// - Parameter manifestDigest: the manifest's SHA-256 from the signed control message, when it has one.
    public func load(_ reference: ModelReference, manifestDigest: String? = nil) async throws -> LoadedModel {
        try await runOnDedicatedThread(name: "minirbt.model-loader") { [registry] in
            let bundle = try registry.verify(reference, manifestDigest: manifestDigest)
            let model = LoadedModel(identity: ModelIdentity(name: reference.name, version: reference.version),
                                    model: bundle.model, tokenizer: bundle.tokenizer, directory: bundle.directory,
                                    baseline: bundle.manifest.baseline)
            // The first forward pass pays for page faults on the weights and oneDNN's first-use costs;
            // better here than in the first batch after the swap.
            let texts = bundle.manifest.golden.map { TextEvent(text: $0.text) }
            _ = try Predictor().predict(texts, with: model)
            return model
        }
    }
}

/// Runs `work` on a new thread and resumes with its result.
func runOnDedicatedThread<T: Sendable>(name: String, _ work: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        let thread = Thread {
            continuation.resume(with: Result { try work() })
        }
        thread.name = name
        thread.start()
    }
}
