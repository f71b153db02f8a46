import Foundation
import MiniRBT

/// What the model said about one event: the task-specific fields of an ``EnrichedResult``.
public struct Prediction: Sendable, Equatable {
    public var label: String?
    public var score: Float?
    public var scores: [String: Float]?
    public var logits: [Float]?
    public var entities: [Entity]?
    public var embedding: [Float]?
    public var truncated: Bool
    /// Tokens the model saw (special tokens included), and how many of them were `[UNK]`: for the
    /// per-version input metrics, not part of the result.
    public var tokens = 0
    public var unknownTokens = 0
}

/// The precision a prepared session runs in, against the one asked for.
public struct SessionPrecision: Sendable, Equatable {
    public let requested: Precision
    public let served: Precision
    /// Why `served` differs from `requested` (no fast kernel on this CPU, or too many changed predictions).
    public let fallbackReason: String?
}

/// Runs batches of events through a model. One per shard (or per `infer` run): it owns the scratch
/// buffers of its ``InferenceSession``s and must stay on one thread at a time.
///
/// It keeps one prepared session per model it serves (a session packs all of its model's weights, which
/// costs more than a batch), so canary and shadow batches, which alternate two models, reuse both. The
/// caller says which models still serve with ``retainSessions(for:)``; without that, the least recently
/// used session beyond ``maximumSessions`` is dropped.
public final class Predictor {
    /// oneDNN threads for this predictor's forward passes.
    public let threads: Int
    public let maxLength: Int
    public let includeLogits: Bool
    /// How sentence embeddings are pooled when the model is a bare encoder.
    public let pooling: Pooling
    /// The format of the encoder's matrix products. A reduced precision is checked against fp32 on the
    /// first batch a model serves; when it changes more than 0.5% of the predictions, or this CPU has no
    /// fast kernel for it, that model is served in fp32 instead and `prepared` says why: the service keeps
    /// answering, exactly.
    public let precision: Precision
    private let prepared: @Sendable (SessionPrecision) -> Void
    /// Sessions by the identity of their model; a session holds its model, so an identity cannot be reused
    /// by another model while it is a key here.
    private var sessions: [ObjectIdentifier: (session: InferenceSession, lastUse: UInt64)] = [:]
    private var useClock: UInt64 = 0
    /// Sessions created so far (each one packed its model's weights); for tests and diagnostics.
    public private(set) var sessionsCreated = 0

    /// Most sessions kept at once: a primary and a candidate, plus room for a swap in progress.
    public static let maximumSessions = 3

    public init(threads: Int = 1, maxLength: Int = 128, includeLogits: Bool = false, pooling: Pooling = .cls,
                precision: Precision = .default, prepared: @escaping @Sendable (SessionPrecision) -> Void = { _ in }) {
        self.threads = max(1, threads)
        self.precision = precision
        self.maxLength = maxLength
        self.includeLogits = includeLogits
        self.pooling = pooling
        self.prepared = prepared
    }

    /// Predicts every event with `model`, in one forward pass: the texts' tokens are packed as rows of one
    /// matrix (no padding), so a short text never pays for a long one and batches need no sorting.
    public func predict(_ events: [TextEvent], with model: LoadedModel) throws -> [Prediction] {
        guard !events.isEmpty else { return [] }
        // Never longer than the model's position table, whatever the service's --max-length.
        let length = min(maxLength, model.model.config.maxPositions)
        let encodings = events.map { model.tokenizer.encode($0.text, pair: $0.textPair, maxLength: length) }
        let inputs = encodings.map { ModelInput(inputIDs: $0.inputIDs, tokenTypeIDs: $0.tokenTypeIDs) }
        let session = try session(for: model.model, samples: inputs)
        var predictions = try predict(inputs, encodings: encodings, with: model, session: session)
        let unknown = model.tokenizer.vocabulary.unknownID
        for index in predictions.indices {
            predictions[index].tokens = encodings[index].inputIDs.count
            predictions[index].unknownTokens = encodings[index].inputIDs.reduce(0) { $0 + ($1 == unknown ? 1 : 0) }
        }
        return predictions
    }

    private func predict(_ inputs: [ModelInput], encodings: [Encoding], with model: LoadedModel,
                         session: InferenceSession) throws -> [Prediction] {
        switch model.model.task {
        case .sequenceClassification:
            return try session.classify(inputs).enumerated().map { index, result in
                Prediction(label: result.label, score: result.score,
                           // Labels are unique (ModelConfig validates id2label); should two ever collide,
                           // the first keeps its score rather than trapping.
                           scores: Dictionary(zip(model.model.labels, result.scores)) { first, _ in first },
                           logits: includeLogits ? result.logits : nil,
                           truncated: encodings[index].truncated)
            }
        case .tokenClassification:
            return try session.labelTokens(inputs).enumerated().map { index, tokens in
                Prediction(entities: Self.entities(tokens, ids: encodings[index].inputIDs, tokenizer: model.tokenizer),
                           truncated: encodings[index].truncated)
            }
        case .embeddings:
            return try session.embed(inputs, pooling: pooling).enumerated().map { index, vector in
                Prediction(embedding: vector, truncated: encodings[index].truncated)
            }
        }
    }

    /// Drops the sessions of every model not in `models` (the ones serving now), freeing their packed
    /// weights and letting a replaced model be released.
    public func retainSessions(for models: [LoadedModel]) {
        let serving = Set(models.map { ObjectIdentifier($0.model) })
        sessions = sessions.filter { serving.contains($0.key) }
    }

    /// How many sessions are prepared now.
    public var cachedSessionCount: Int { sessions.count }

    private func session(for model: BertModel, samples: [ModelInput]) throws -> InferenceSession {
        useClock += 1
        let key = ObjectIdentifier(model)
        if let cached = sessions[key] {
            sessions[key]?.lastUse = useClock
            return cached.session
        }
        let fresh: InferenceSession
        var fallback: String?
        do {
            fresh = try InferenceSession.checked(model: model, threads: threads, precision: precision, samples: samples)
        } catch let error as PrecisionCheckError {
            fallback = "\(error); serving this model in fp32"
            fresh = InferenceSession(model: model, threads: threads)
        } catch let error as KernelError {
            fallback = "\(error); serving this model in fp32"
            fresh = InferenceSession(model: model, threads: threads)
        }
        prepared(SessionPrecision(requested: precision, served: fresh.precision, fallbackReason: fallback))
        sessionsCreated += 1
        while sessions.count >= Self.maximumSessions,
              let oldest = sessions.min(by: { $0.value.lastUse < $1.value.lastUse })?.key {
            sessions[oldest] = nil
        }
        sessions[key] = (fresh, useClock)
        return fresh
    }

    /// Groups consecutive word pieces with the same BIO-style label (`B-X`, `I-X`, or plain `X`) into
    /// entities; `O` and special tokens end an entity.
    static func entities(_ tokens: [TokenPrediction], ids: [Int32], tokenizer: BertTokenizer) -> [Entity] {
        var entities: [Entity] = []
        var current: (label: String, start: Int, scores: [Float], pieces: [String])?
        func close() {
            if let open = current {
                let text = open.pieces.reduce(into: "") { text, piece in
                    text += piece.hasPrefix("##") ? String(piece.dropFirst(2)) : piece
                }
                entities.append(Entity(label: open.label, score: open.scores.reduce(0, +) / Float(open.scores.count),
                                       start: open.start, end: open.start + open.pieces.count, text: text))
            }
            current = nil
        }
        // Positions 0 and count-1 are [CLS] and [SEP]; pair texts' inner [SEP] is labelled like any token.
        for position in tokens.indices.dropFirst().dropLast() {
            let token = tokens[position]
            let piece = tokenizer.vocabulary.token(of: ids[position]) ?? "[UNK]"
            let (tag, type) = Self.split(token.label)
            if tag == "O" {
                close()
            } else if tag == "I", let open = current, open.label == type {
                current?.scores.append(token.score)
                current?.pieces.append(piece)
            } else {
                close()
                current = (type, position - 1, [token.score], [piece])
            }
        }
        close()
        return entities
    }

    private static func split(_ label: String) -> (tag: String, type: String) {
        if label == "O" { return ("O", "") }
        if label.count > 2, let dash = label.firstIndex(of: "-"), label.distance(from: label.startIndex, to: dash) == 1 {
            return (String(label[..<dash]), String(label[label.index(after: dash)...]))
        }
        return ("B", label)
    }
}
