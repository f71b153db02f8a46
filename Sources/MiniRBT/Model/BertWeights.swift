/// A fully connected layer in PyTorch's layout: `weight` is [outputSize, inputSize] row-major.
package struct LinearWeights: Sendable {
    /// The layer's checkpoint name without `.weight` (unique within a model; kernels key packed copies by it).
    package let name: String
    package let weight: [Float]
    package let bias: [Float]
    package let inputSize: Int
    package let outputSize: Int
    /// Whether a bf16/int8 session may run this layer in its reduced format: true for the encoder's
    /// layers, false for the small heads, whose outputs are the logits themselves.
    package let allowsReducedPrecision: Bool

    package init(name: String, weight: [Float], bias: [Float], inputSize: Int, outputSize: Int, allowsReducedPrecision: Bool) {
        self.name = name
        self.weight = weight
        self.bias = bias
        self.inputSize = inputSize
        self.outputSize = outputSize
        self.allowsReducedPrecision = allowsReducedPrecision
    }

    /// Layers that read the same input stacked into one, so one product computes all their outputs
    /// side by side (BERT's query, key and value projections).
    package init(stacking layers: [LinearWeights], name: String) {
        precondition(!layers.isEmpty && Set(layers.map(\.inputSize)).count == 1, "stacking layers of different input sizes")
        self.init(name: name, weight: layers.flatMap(\.weight), bias: layers.flatMap(\.bias), inputSize: layers[0].inputSize,
                  outputSize: layers.reduce(0) { $0 + $1.outputSize },
                  allowsReducedPrecision: layers.allSatisfy(\.allowsReducedPrecision))
    }
}

/// LayerNorm's affine parameters (gamma, beta).
package struct LayerNormWeights: Sendable {
    package let weight: [Float]
    package let bias: [Float]
    package var size: Int { weight.count }
}

/// `embeddings.*`: three lookup tables [rows, hidden] summed, then normalised.
package struct EmbeddingWeights: Sendable {
    package let word: [Float]
    package let position: [Float]
    package let tokenType: [Float]
    package let norm: LayerNormWeights
}

/// `encoder.layer.N.attention.*`.
package struct AttentionWeights: Sendable {
    /// `self.query`, `self.key` and `self.value` stacked: [3 × hidden, hidden], one GEMM for all three.
    package let queryKeyValue: LinearWeights
    package let output: LinearWeights
    package let norm: LayerNormWeights
}

/// `encoder.layer.N.intermediate.*` and `encoder.layer.N.output.*`.
package struct FeedForwardWeights: Sendable {
    package let intermediate: LinearWeights
    package let output: LinearWeights
    package let norm: LayerNormWeights
}

package struct EncoderLayerWeights: Sendable {
    package let attention: AttentionWeights
    package let feedForward: FeedForwardWeights
}

/// Every tensor the forward pass of one checkpoint reads, checked against its config.
package struct BertWeights: Sendable {
    package let embeddings: EmbeddingWeights
    package let layers: [EncoderLayerWeights]
    /// `pooler.dense`: present when the head needs it (sequence classification).
    package let pooler: LinearWeights?
    /// `classifier`: present for the classification tasks.
    package let classifier: LinearWeights?

    /// Every linear layer, encoder first (what kernels pack at session start).
    package var linearLayers: [LinearWeights] {
        layers.flatMap { [$0.attention.queryKeyValue, $0.attention.output, $0.feedForward.intermediate, $0.feedForward.output] }
            + [pooler, classifier].compactMap { $0 }
    }

    /// Picks the tensors `config` calls for out of a weight file's contents.
    ///
    /// Names may carry the `bert.` prefix of the task models or not (a bare `BertModel`), and LayerNorm
    /// parameters may use the TensorFlow-era names `gamma`/`beta` (as in HFL's original releases).
    /// Tensors the forward pass does not read (MLM heads, `position_ids`) are ignored. Every missing or
    /// mis-shaped tensor is collected before throwing `CheckpointError.tensorProblems`.
    package init(config: ModelConfig, tensors: [String: Tensor]) throws {
        var reader = TensorReader(tensors)
        let hidden = config.hiddenSize

        func linear(_ name: String, inputs: Int, outputs: Int, encoder: Bool = true, head: Bool = false) -> LinearWeights {
            LinearWeights(name: name, weight: reader.take("\(name).weight", shape: [outputs, inputs], encoder: encoder),
                          bias: reader.take("\(name).bias", shape: [outputs], encoder: encoder),
                          inputSize: inputs, outputSize: outputs, allowsReducedPrecision: !head)
        }
        func layerNorm(_ name: String) -> LayerNormWeights {
            LayerNormWeights(weight: reader.take("\(name).weight", shape: [hidden]),
                             bias: reader.take("\(name).bias", shape: [hidden]))
        }

        let embeddings = EmbeddingWeights(
            word: reader.take("embeddings.word_embeddings.weight", shape: [config.vocabSize, hidden]),
            position: reader.take("embeddings.position_embeddings.weight", shape: [config.maxPositions, hidden]),
            tokenType: reader.take("embeddings.token_type_embeddings.weight", shape: [config.typeVocabSize, hidden]),
            norm: layerNorm("embeddings.LayerNorm"))

        let layers = (0..<config.layerCount).map { index in
            let prefix = "encoder.layer.\(index)"
            return EncoderLayerWeights(
                attention: AttentionWeights(
                    queryKeyValue: LinearWeights(stacking: ["query", "key", "value"].map {
                        linear("\(prefix).attention.self.\($0)", inputs: hidden, outputs: hidden)
                    }, name: "\(prefix).attention.self.query_key_value"),
                    output: linear("\(prefix).attention.output.dense", inputs: hidden, outputs: hidden),
                    norm: layerNorm("\(prefix).attention.output.LayerNorm")),
                feedForward: FeedForwardWeights(
                    intermediate: linear("\(prefix).intermediate.dense", inputs: hidden, outputs: config.intermediateSize),
                    output: linear("\(prefix).output.dense", inputs: config.intermediateSize, outputs: hidden),
                    norm: layerNorm("\(prefix).output.LayerNorm")))
        }

        let pooler: LinearWeights?
        let classifier: LinearWeights?
        switch config.task {
        case .sequenceClassification:
            pooler = linear("pooler.dense", inputs: hidden, outputs: hidden, head: true)
            classifier = linear("classifier", inputs: hidden, outputs: config.labels.count, encoder: false, head: true)
        case .tokenClassification:
            pooler = nil
            classifier = linear("classifier", inputs: hidden, outputs: config.labels.count, encoder: false, head: true)
        case .embeddings:
            pooler = nil
            classifier = nil
        }

        if !reader.problems.isEmpty { throw CheckpointError.tensorProblems(reader.problems) }
        self.embeddings = embeddings
        self.layers = layers
        self.pooler = pooler
        self.classifier = classifier
    }
}

/// Looks tensors up by their canonical HF name and records what is wrong instead of stopping.
private struct TensorReader {
    private let tensors: [String: Tensor]
    /// `"bert."` when the file is a task model's state dict, so problems are reported by the names the
    /// file itself would use.
    private let encoderPrefix: String
    private(set) var problems: [TensorProblem] = []

    init(_ tensors: [String: Tensor]) {
        self.tensors = tensors
        self.encoderPrefix = tensors.keys.contains { $0.hasPrefix("bert.") } ? "bert." : ""
    }

    /// The values of `name` (relative to the encoder unless `encoder` is false), or an empty array
    /// after recording a problem.
    mutating func take(_ name: String, shape: [Int], encoder: Bool = true) -> [Float] {
        let fullName = (encoder ? encoderPrefix : "") + name
        guard let tensor = tensors[fullName] ?? legacyLayerNormTensor(fullName) else {
            problems.append(.missing(name: fullName, expectedShape: shape))
            return []
        }
        guard tensor.shape == shape else {
            problems.append(.shapeMismatch(name: fullName, expected: shape, found: tensor.shape))
            return []
        }
        return tensor.values
    }

    /// TF-converted checkpoints name LayerNorm's parameters `gamma`/`beta`; transformers renames them on load.
    private func legacyLayerNormTensor(_ name: String) -> Tensor? {
        guard name.contains("LayerNorm.") else { return nil }
        if name.hasSuffix(".weight") { return tensors[name.dropLast("weight".count) + "gamma"] }
        if name.hasSuffix(".bias") { return tensors[name.dropLast("bias".count) + "beta"] }
        return nil
    }
}
