import Foundation
import MiniRBT

/// Runs a model over a representative sample at publish time and summarises its answers as a
/// ``DriftBaseline``, with the engine and tokenizer settings the service uses.
public enum BaselineProfiler {
    /// Texts per forward pass; the service's default batch size.
    public static let batchSize = 32

    /// The baseline of the first `limit` texts (all when nil) of the JSON Lines file at `url`
    /// (`{"text": ...}` per line, the service's event format), encoded to `maxLength` tokens.
    /// - Parameter threads: oneDNN threads for the forward passes. One by default: on the shared CI machine
    ///   two threads made a 2,000-text baseline slower (114 s against 63 s), as the service's shards also
    ///   run one thread each.
    public static func profile(_ url: URL, limit: Int?, model: BertModel, tokenizer: BertTokenizer,
                               maxLength: Int = GoldenRunner.maxLength, threads: Int = 1) throws -> DriftBaseline {
        let texts = try GoldenRunner.texts(fromJSONLines: url, limit: limit ?? .max)
        let digest = try FileDigest.sha256(of: url)
        let length = min(maxLength, model.config.maxPositions)
        let unknown = tokenizer.vocabulary.unknownID
        let session = InferenceSession(model: model, threads: threads)
        // Batches of similar lengths: a batch costs as much as its longest text, and the baseline is a set of
        // histograms, so the order the texts are answered in does not matter.
        let encoded = texts.map { tokenizer.encode($0, maxLength: length) }.sorted { $0.inputIDs.count < $1.inputIDs.count }
        var observations: [DriftBaseline.Observation] = []
        observations.reserveCapacity(texts.count)
        var start = 0
        while start < encoded.count {
            let end = min(encoded.count, start + batchSize)
            let encodings = encoded[start..<end]
            let inputs = encodings.map { ModelInput(inputIDs: $0.inputIDs, tokenTypeIDs: $0.tokenTypeIDs) }
            let answers: [(label: String?, score: Double?)]
            switch model.task {
            case .sequenceClassification:
                answers = try session.classify(inputs).map { ($0.label, Double($0.score)) }
            case .tokenClassification, .embeddings:
                // No label and no top score: only length and [UNK] drift apply.
                answers = inputs.map { _ in (nil, nil) }
            }
            for (encoding, answer) in zip(encodings, answers) {
                observations.append(DriftBaseline.Observation(
                    label: answer.label, score: answer.score, tokens: encoding.inputIDs.count,
                    unknownTokens: encoding.inputIDs.reduce(0) { $0 + ($1 == unknown ? 1 : 0) }))
            }
            start = end
        }
        do {
            return try DriftBaseline(observations: observations, labels: model.labels, source: url.lastPathComponent,
                                     sourceSHA256: digest.hex, maxLength: length)
        } catch {
            throw RegistryError.invalidBaseline(path: url.path, reason: "\(error)")
        }
    }
}
