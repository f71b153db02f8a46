import Foundation

/// What a checkpoint's head computes, from `architectures` in config.json.
public enum ModelTask: String, Sendable {
    /// `BertForSequenceClassification`: pooler → classifier → one label per text.
    case sequenceClassification
    /// `BertForTokenClassification`: classifier on every token.
    case tokenClassification
    /// `BertModel` (or any other BERT head): the encoder's hidden states, pooled into sentence embeddings.
    case embeddings
}

/// How classification logits become scores (`problem_type`).
public enum ProblemType: String, Sendable {
    /// One label per text: softmax over the labels (HF's default).
    case singleLabel = "single_label_classification"
    /// Independent labels: a sigmoid per label.
    case multiLabel = "multi_label_classification"
}

/// The fields of an HF `BertConfig` that change what the forward pass computes.
///
/// Dropout, initializer range and similar training-only fields are ignored. Defaults are `BertConfig`'s,
/// so a config.json that leaves a field out means what it means to transformers. Every instance has been
/// validated (positive sizes, heads dividing the hidden size, at least one label), hence the `let`s.
public struct ModelConfig: Sendable, Equatable {
    /// `vocab_size`: rows of the word embedding table.
    public let vocabSize: Int
    /// `hidden_size`.
    public let hiddenSize: Int
    /// `num_hidden_layers`.
    public let layerCount: Int
    /// `num_attention_heads`.
    public let headCount: Int
    /// `intermediate_size`: width of the feed-forward layer.
    public let intermediateSize: Int
    /// `hidden_act`.
    public let activation: Activation
    /// `layer_norm_eps`.
    public let layerNormEpsilon: Float
    /// `max_position_embeddings`: the longest input the model accepts.
    public let maxPositions: Int
    /// `type_vocab_size`: how many token types (segments) there are.
    public let typeVocabSize: Int
    /// `pad_token_id`. Batches are packed, never padded, so the forward pass does not need it; it is kept
    /// for callers that build padded inputs.
    public let padTokenID: Int
    /// `id2label`: label names in class-index order.
    public let labels: [String]
    /// From `architectures`.
    public let task: ModelTask
    /// `problem_type`.
    public let problemType: ProblemType

    /// Width of one attention head.
    public var headSize: Int { hiddenSize / headCount }

    public init(vocabSize: Int = 30522, hiddenSize: Int = 768, layerCount: Int = 12, headCount: Int = 12,
                intermediateSize: Int = 3072, activation: Activation = .gelu, layerNormEpsilon: Float = 1e-12,
                maxPositions: Int = 512, typeVocabSize: Int = 2, padTokenID: Int = 0,
                labels: [String] = ["LABEL_0", "LABEL_1"], task: ModelTask = .sequenceClassification,
                problemType: ProblemType = .singleLabel) throws {
        self.vocabSize = vocabSize
        self.hiddenSize = hiddenSize
        self.layerCount = layerCount
        self.headCount = headCount
        self.intermediateSize = intermediateSize
        self.activation = activation
        self.layerNormEpsilon = layerNormEpsilon
        self.maxPositions = maxPositions
        self.typeVocabSize = typeVocabSize
        self.padTokenID = padTokenID
        self.labels = labels
        self.task = task
        self.problemType = problemType
        try validate()
    }

    /// Reads `config.json`.
    public static func load(from url: URL) throws -> ModelConfig {
        let data: Data
        do {
            data = try Data(contentsOf: url)
        } catch {
            throw CheckpointError.missingFile(path: url.path, expected: "an HF config.json")
        }
        return try ModelConfig(json: data)
    }

    /// Parses the contents of a `config.json`.
    public init(json data: Data) throws {
        let raw: RawConfig
        do {
            raw = try JSONDecoder().decode(RawConfig.self, from: data)
        } catch let DecodingError.typeMismatch(type, context) {
            throw CheckpointError.invalidConfig(field: Self.fieldName(context.codingPath), reason: "expected a value of type \(type)")
        } catch let DecodingError.valueNotFound(type, context) {
            throw CheckpointError.invalidConfig(field: Self.fieldName(context.codingPath), reason: "expected a value of type \(type), found null")
        } catch {
            throw CheckpointError.invalidConfig(field: "(file)", reason: "not a JSON object: \(error)")
        }

        if let modelType = raw.model_type, modelType != "bert" {
            throw CheckpointError.unsupportedConfig(field: "model_type", value: modelType, supported: ["bert"])
        }
        if let positions = raw.position_embedding_type, positions != "absolute" {
            throw CheckpointError.unsupportedConfig(field: "position_embedding_type", value: positions, supported: ["absolute"])
        }
        let activationName = raw.hidden_act ?? "gelu"
        guard let activation = Activation(huggingFaceName: activationName) else {
            throw CheckpointError.unsupportedConfig(field: "hidden_act", value: activationName, supported: Activation.huggingFaceNames)
        }
        let problemType: ProblemType
        switch raw.problem_type {
        case nil: problemType = .singleLabel
        case let name?:
            guard let known = ProblemType(rawValue: name) else {
                throw CheckpointError.unsupportedConfig(field: "problem_type", value: name,
                                                        supported: [ProblemType.singleLabel.rawValue, ProblemType.multiLabel.rawValue])
            }
            problemType = known
        }

        try self.init(
            vocabSize: raw.vocab_size ?? 30522,
            hiddenSize: raw.hidden_size ?? 768,
            layerCount: raw.num_hidden_layers ?? 12,
            headCount: raw.num_attention_heads ?? 12,
            intermediateSize: raw.intermediate_size ?? 3072,
            activation: activation,
            layerNormEpsilon: Float(raw.layer_norm_eps ?? 1e-12),
            maxPositions: raw.max_position_embeddings ?? 512,
            typeVocabSize: raw.type_vocab_size ?? 2,
            padTokenID: raw.pad_token_id ?? 0,
            labels: try Self.labels(from: raw.id2label, numLabels: raw.num_labels),
            task: Self.task(from: raw.architectures),
            problemType: problemType)
    }

    // MARK: - Private

    /// Upper bounds on the sizes a config may declare. Far above any BERT checkpoint (BERT-large is
    /// 1024 hidden, 24 layers, 512 positions), far below what would overflow a size computation or make
    /// building the model allocate or loop without end before the weight file's shapes are compared.
    public enum Limits {
        public static let vocabSize = 1 << 22
        public static let hiddenSize = 1 << 15
        public static let layerCount = 256
        public static let intermediateSize = 1 << 17
        public static let maxPositions = 1 << 16
        public static let typeVocabSize = 1 << 16
        public static let labelCount = 1 << 16
        /// `[CLS] text [SEP] pair [SEP]` must fit the position table.
        public static let minimumPositions = 3
    }

    private func validate() throws {
        let sizes: [(String, Int, Int)] = [
            ("vocab_size", vocabSize, Limits.vocabSize), ("hidden_size", hiddenSize, Limits.hiddenSize),
            ("num_hidden_layers", layerCount, Limits.layerCount), ("num_attention_heads", headCount, Limits.hiddenSize),
            ("intermediate_size", intermediateSize, Limits.intermediateSize),
            ("max_position_embeddings", maxPositions, Limits.maxPositions), ("type_vocab_size", typeVocabSize, Limits.typeVocabSize),
        ]
        for (field, value, _) in sizes where value <= 0 {
            throw CheckpointError.invalidConfig(field: field, reason: "expected a positive integer, found \(value)")
        }
        for (field, value, limit) in sizes where value > limit {
            throw CheckpointError.invalidConfig(field: field, reason: "\(value) exceeds the supported maximum of \(limit)")
        }
        guard maxPositions >= Limits.minimumPositions else {
            throw CheckpointError.invalidConfig(
                field: "max_position_embeddings",
                reason: "\(maxPositions) cannot hold [CLS] text [SEP] pair [SEP]; expected at least \(Limits.minimumPositions)")
        }
        guard hiddenSize % headCount == 0 else {
            throw CheckpointError.invalidConfig(field: "hidden_size",
                                                reason: "\(hiddenSize) is not a multiple of num_attention_heads \(headCount)")
        }
        guard layerNormEpsilon.isFinite, layerNormEpsilon >= 0 else {
            throw CheckpointError.invalidConfig(field: "layer_norm_eps", reason: "expected a finite non-negative number, found \(layerNormEpsilon)")
        }
        guard (0..<vocabSize).contains(padTokenID) else {
            throw CheckpointError.invalidConfig(field: "pad_token_id", reason: "\(padTokenID) is outside the vocabulary 0..<\(vocabSize)")
        }
        guard !labels.isEmpty else {
            throw CheckpointError.invalidConfig(field: "id2label", reason: "expected at least one label")
        }
        guard labels.count <= Limits.labelCount else {
            throw CheckpointError.invalidConfig(field: "id2label",
                                                reason: "\(labels.count) labels exceed the supported maximum of \(Limits.labelCount)")
        }
        // Results map label names to scores, and HF derives label2id from id2label: a name used twice would
        // make two classes indistinguishable (and used to trap when results were built).
        var firstIndex: [String: Int] = [:]
        for (index, label) in labels.enumerated() {
            if let earlier = firstIndex[label] {
                throw CheckpointError.invalidConfig(
                    field: "id2label", reason: "label \"\(label)\" is used by ids \(earlier) and \(index); labels must be unique")
            }
            firstIndex[label] = index
        }
    }

    /// `id2label` keys are class indices written as strings; they must be exactly "0"..."n-1" (so "00" or
    /// "+1" cannot stand for an index another key already holds). Without `id2label`, `num_labels` gives
    /// transformers' default names `LABEL_<i>`; with both, they must agree.
    private static func labels(from id2label: [String: String]?, numLabels: Int?) throws -> [String] {
        guard let id2label else {
            // BertConfig's default num_labels = 2.
            let count = numLabels ?? 2
            guard count > 0, count <= Limits.labelCount else {
                throw CheckpointError.invalidConfig(field: "num_labels", reason: "expected 1...\(Limits.labelCount), found \(count)")
            }
            return (0..<count).map { "LABEL_\($0)" }
        }
        guard id2label.count <= Limits.labelCount else {
            throw CheckpointError.invalidConfig(field: "id2label",
                                                reason: "\(id2label.count) labels exceed the supported maximum of \(Limits.labelCount)")
        }
        var labels = [String?](repeating: nil, count: id2label.count)
        for (key, label) in id2label {
            guard let index = Int(key), String(index) == key, labels.indices.contains(index), labels[index] == nil else {
                throw CheckpointError.invalidConfig(field: "id2label",
                                                    reason: "expected keys \"0\"...\"\(id2label.count - 1)\", found \"\(key)\"")
            }
            labels[index] = label
        }
        if let numLabels, numLabels != labels.count {
            throw CheckpointError.invalidConfig(field: "num_labels",
                                                reason: "\(numLabels) disagrees with the \(labels.count) labels of id2label")
        }
        return labels.compactMap { $0 }
    }

    private static func task(from architectures: [String]?) -> ModelTask {
        switch architectures?.first {
        case "BertForSequenceClassification": return .sequenceClassification
        case "BertForTokenClassification": return .tokenClassification
        default: return .embeddings
        }
    }

    private static func fieldName(_ path: [any CodingKey]) -> String {
        path.map { $0.intValue.map(String.init) ?? $0.stringValue }.joined(separator: ".")
    }
}

/// config.json as written by transformers; every field optional so absent ones take BertConfig defaults.
private struct RawConfig: Decodable {
    // Field names mirror the JSON keys so the mapping is visible at a glance.
    // swiftlint:disable identifier_name
    var model_type: String?
    var architectures: [String]?
    var vocab_size: Int?
    var hidden_size: Int?
    var num_hidden_layers: Int?
    var num_attention_heads: Int?
    var intermediate_size: Int?
    var hidden_act: String?
    var layer_norm_eps: Double?
    var max_position_embeddings: Int?
    var type_vocab_size: Int?
    var pad_token_id: Int?
    var position_embedding_type: String?
    var id2label: [String: String]?
    var num_labels: Int?
    var problem_type: String?
    // swiftlint:enable identifier_name
}
