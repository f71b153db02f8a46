import MiniRBT

/// An encoder architecture from the MiniRBT family (or its teacher), benchmarked with random weights.
struct ModelShape: Sendable {
    let name: String
    let layers: Int
    let hidden: Int
    let intermediate: Int
    let heads: Int

    /// The shapes of HFL's Chinese releases the service targets, smallest first.
    static let all = [
        ModelShape(name: "MiniRBT-H256", layers: 6, hidden: 256, intermediate: 1024, heads: 8),
        ModelShape(name: "MiniRBT-H288", layers: 6, hidden: 288, intermediate: 1152, heads: 8),
        ModelShape(name: "RBT4-H312", layers: 4, hidden: 312, intermediate: 1200, heads: 12),
        ModelShape(name: "RoBERTa-wwm-ext", layers: 12, hidden: 768, intermediate: 3072, heads: 12),
    ]

    static func named(_ name: String) -> ModelShape? {
        all.first { $0.name.lowercased() == name.lowercased() }
    }

    /// bert-base-chinese's vocabulary size, so the embedding table is as large as the real one.
    static let vocabSize = 21128

    func config() throws -> ModelConfig {
        try ModelConfig(vocabSize: Self.vocabSize, hiddenSize: hidden, layerCount: layers, headCount: heads,
                        intermediateSize: intermediate, maxPositions: 512, labels: ["negative", "positive"])
    }

    /// A sequence-classification model with weights drawn uniformly from ±1/√fan-in, so activations
    /// stay in the range trained weights produce and no block is negligible.
    func randomModel(seed: UInt64) throws -> BertModel {
        let config = try config()
        var generator = SplitMix64(seed: seed)
        var tensors: [String: Tensor] = [:]
        func random(_ name: String, _ shape: [Int], fanIn: Int) {
            let bound = 1 / Float(fanIn).squareRoot()
            let count = shape.reduce(1, *)
            tensors[name] = Tensor(shape: shape, values: (0..<count).map { _ in generator.nextFloat(in: -bound...bound) })
        }
        func constant(_ name: String, _ shape: [Int], _ value: Float) {
            tensors[name] = Tensor(shape: shape, values: [Float](repeating: value, count: shape.reduce(1, *)))
        }
        func linear(_ name: String, inputs: Int, outputs: Int) {
            random("\(name).weight", [outputs, inputs], fanIn: inputs)
            random("\(name).bias", [outputs], fanIn: inputs)
        }
        func layerNorm(_ name: String) {
            constant("\(name).weight", [hidden], 1)
            constant("\(name).bias", [hidden], 0)
        }
        random("bert.embeddings.word_embeddings.weight", [Self.vocabSize, hidden], fanIn: 1)
        random("bert.embeddings.position_embeddings.weight", [config.maxPositions, hidden], fanIn: 1)
        random("bert.embeddings.token_type_embeddings.weight", [config.typeVocabSize, hidden], fanIn: 1)
        layerNorm("bert.embeddings.LayerNorm")
        for layer in 0..<layers {
            let prefix = "bert.encoder.layer.\(layer)"
            for part in ["query", "key", "value"] {
                linear("\(prefix).attention.self.\(part)", inputs: hidden, outputs: hidden)
            }
            linear("\(prefix).attention.output.dense", inputs: hidden, outputs: hidden)
            layerNorm("\(prefix).attention.output.LayerNorm")
            linear("\(prefix).intermediate.dense", inputs: hidden, outputs: intermediate)
            linear("\(prefix).output.dense", inputs: intermediate, outputs: hidden)
            layerNorm("\(prefix).output.LayerNorm")
        }
        linear("bert.pooler.dense", inputs: hidden, outputs: hidden)
        linear("classifier", inputs: hidden, outputs: 2)
        return try BertModel(config: config, tensors: tensors)
    }
}

/// A small, fast, reproducible generator (Steele et al.'s SplitMix64), so every run benchmarks the same weights.
struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    mutating func nextFloat(in range: ClosedRange<Float>) -> Float {
        // 24 random bits are all a Float's significand holds.
        let unit = Float(next() >> 40) / Float(1 << 24)
        return range.lowerBound + unit * (range.upperBound - range.lowerBound)
    }
}
