import Crypto
import Foundation

/// Where a record came from: enough to find it again in Kafka.
public struct SourceCoordinates: Codable, Sendable, Equatable {
    public var topic: String
    public var partition: Int32
    public var offset: Int64
    /// The record's timestamp, milliseconds since the epoch, when the broker or producer set one.
    public var timestamp: Int64?

    public init(topic: String, partition: Int32, offset: Int64, timestamp: Int64?) {
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.timestamp = timestamp
    }

    /// The fallback event id: `topic-partition-offset`.
    public var eventID: String { "\(topic)-\(partition)-\(offset)" }
}

/// Which model answered.
public struct ModelIdentity: Codable, Sendable, Hashable {
    public var name: String
    public var version: String

    public init(name: String, version: String) {
        self.name = name
        self.version = version
    }
}

/// One label and its probability, in the model's label order.
public struct LabelScore: Codable, Sendable, Equatable {
    public var label: String
    public var score: Float
}

/// A named entity found by a token-classification model.
public struct Entity: Codable, Sendable, Equatable {
    public var label: String
    public var score: Float
    /// Index of the first and one past the last word piece, `[CLS]` excluded.
    public var start: Int
    public var end: Int
    public var text: String

    public init(label: String, score: Float, start: Int, end: Int, text: String) {
        self.label = label
        self.score = score
        self.start = start
        self.end = end
        self.text = text
    }
}

/// The result the service publishes for every event, and `infer` prints: schema in `schemas/result.schema.json`.
public struct EnrichedResult: Codable, Sendable, Equatable {
    public var id: String
    /// Absent for `infer`, which reads no Kafka record.
    public var source: SourceCoordinates?
    public var model: ModelIdentity
    /// Classification: the most probable label, its probability, and every label's probability.
    public var label: String?
    public var score: Float?
    public var scores: [String: Float]?
    /// Raw logits, when asked for.
    public var logits: [Float]?
    /// Token classification.
    public var entities: [Entity]?
    /// Sentence embeddings.
    public var embedding: [Float]?
    /// True when the text was cut to the maximum sequence length.
    public var truncated: Bool
    /// The input text, when `--echo-text` is on.
    public var text: String?
    /// Milliseconds from the record's arrival at the service to its result being ready.
    public var latencyMs: Double?

    enum CodingKeys: String, CodingKey {
        case id, source, model, label, score, scores, logits, entities, embedding, truncated, text
        case latencyMs = "latency_ms"
    }

    public init(id: String, source: SourceCoordinates? = nil, model: ModelIdentity, label: String? = nil,
                score: Float? = nil, scores: [String: Float]? = nil, logits: [Float]? = nil,
                entities: [Entity]? = nil, embedding: [Float]? = nil, truncated: Bool, text: String? = nil,
                latencyMs: Double? = nil) {
        self.id = id
        self.source = source
        self.model = model
        self.label = label
        self.score = score
        self.scores = scores
        self.logits = logits
        self.entities = entities
        self.embedding = embedding
        self.truncated = truncated
        self.text = text
        self.latencyMs = latencyMs
    }
}

/// What the dead-letter topic receives for an event that could not be processed.
public struct DeadLetter: Codable, Sendable, Equatable {
    public struct Reason: Codable, Sendable, Equatable {
        public var code: DeadLetterCode
        public var message: String
    }

    public var error: Reason
    public var source: SourceCoordinates
    /// The original value, base64-encoded: it may not be valid UTF-8.
    public var valueBase64: String
    /// The original value as text, when it is valid UTF-8 (and the dead letter is not truncated).
    public var value: String?
    public var failedAt: String
    /// Present when the dead letter had to be shortened to fit one record (`value` is then left out): true
    /// when `value_base64` holds only the first bytes of the original, false when it still holds all of it.
    /// `value_size` and `value_sha256` then describe the whole original.
    public var valueTruncated: Bool?
    /// Size of the whole original value in bytes (with `value_truncated`).
    public var valueSize: Int?
    /// SHA-256 of the whole original value, lower-case hex (with `value_truncated`).
    public var valueSha256: String?

    enum CodingKeys: String, CodingKey {
        case error, source, value
        case valueBase64 = "value_base64"
        case failedAt = "failed_at"
        case valueTruncated = "value_truncated"
        case valueSize = "value_size"
        case valueSha256 = "value_sha256"
    }

    public init(code: DeadLetterCode, message: String, source: SourceCoordinates, originalValue: [UInt8], at date: Date = Date()) {
        self.error = Reason(code: code, message: message)
        self.source = source
        self.valueBase64 = Data(originalValue).base64EncodedString()
        self.value = String(validating: originalValue, as: UTF8.self)
        self.failedAt = date.formatted(.iso8601)
    }

    /// This dead letter shortened: without the text form, with only the first `keeping` bytes of
    /// `originalValue` (the whole value it was made from), with the original's size and SHA-256.
    func truncated(keeping: Int, of originalValue: [UInt8]) -> DeadLetter {
        var letter = self
        let kept = min(max(0, keeping), originalValue.count)
        letter.valueBase64 = Data(originalValue.prefix(kept)).base64EncodedString()
        letter.value = nil
        letter.valueTruncated = kept < originalValue.count
        letter.valueSize = originalValue.count
        letter.valueSha256 = SHA256.hash(data: originalValue).map { String(format: "%02x", $0) }.joined()
        return letter
    }
}

extension JSONEncoder {
    /// The encoder for everything the service publishes: stable key order, so outputs diff cleanly.
    public static let results: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }()
}

extension EnrichedResult {
    /// A result from a prediction; the service adds the record's coordinates and timings.
    public init(id: String, source: SourceCoordinates? = nil, model: ModelIdentity, prediction: Prediction,
                text: String? = nil, latencyMs: Double? = nil) {
        self.init(id: id, source: source, model: model, label: prediction.label, score: prediction.score,
                  scores: prediction.scores, logits: prediction.logits, entities: prediction.entities,
                  embedding: prediction.embedding, truncated: prediction.truncated, text: text,
                  latencyMs: latencyMs)
    }
}
