import Foundation
import Testing
@testable import MiniRBT

/// The encoder and heads against transformers' outputs for the tiny checkpoints made by
/// scripts/fixtures/make_model_fixtures.py.
@Suite struct EncoderTests {
    static let fixtures = Bundle.module.url(forResource: "tiny-bert", withExtension: nil, subdirectory: "Fixtures")!
    static let expected: Expected = {
        // The fixture is committed next to the checkpoints; failing to read it is a broken checkout.
        let data = try! Data(contentsOf: fixtures.appendingPathComponent("expected.json"))
        return try! JSONDecoder().decode(Expected.self, from: data)
    }()
    static let tolerance: Float = 1e-4

    struct Expected: Decodable {
        struct Input: Decodable {
            let input_ids: [Int32]
            let token_type_ids: [Int32]
        }
        struct SequenceClassification: Decodable {
            let labels: [String]
            let f32: [[Float]]
            let f16: [[Float]]
            let bin: [[Float]]
        }
        struct TokenClassification: Decodable {
            let labels: [String]
            let logits: [[[Float]]]
        }
        struct Embeddings: Decodable {
            let cls: [[Float]]
            let mean: [[Float]]
        }
        let inputs: [Input]
        let sequence_classification: SequenceClassification
        let token_classification: TokenClassification
        let embeddings: Embeddings

        var modelInputs: [ModelInput] {
            inputs.map { ModelInput(inputIDs: $0.input_ids, tokenTypeIDs: $0.token_type_ids) }
        }
    }

    static func load(_ variant: String) throws -> BertModel {
        try BertModel.load(directory: fixtures.appendingPathComponent(variant))
    }

    static func maxDifference(_ a: [Float], _ b: [Float]) -> Float {
        precondition(a.count == b.count, "comparing \(a.count) values with \(b.count)")
        return zip(a, b).map { abs($0 - $1) }.max() ?? 0
    }

    // MARK: - Parity with transformers

    @Test(arguments: ["f32", "f16", "bin"])
    func sequenceClassificationMatchesTransformers(variant: String) throws {
        let model = try Self.load(variant)
        #expect(model.task == .sequenceClassification)
        #expect(model.labels == Self.expected.sequence_classification.labels)
        let reference: [[Float]] = switch variant {
        case "f16": Self.expected.sequence_classification.f16
        case "bin": Self.expected.sequence_classification.bin
        default: Self.expected.sequence_classification.f32
        }

        let results = try InferenceSession(model: model).classify(Self.expected.modelInputs)

        #expect(results.count == reference.count)
        var worst: Float = 0
        for (result, logits) in zip(results, reference) {
            worst = max(worst, Self.maxDifference(result.logits, logits))
            let best = logits.indices.max { logits[$0] < logits[$1] }!
            #expect(result.labelIndex == best)
            #expect(result.label == model.labels[best])
            #expect(abs(result.scores.reduce(0, +) - 1) < 1e-5)
            #expect(result.score == result.scores.max())
        }
        print("tiny-bert/\(variant): max |logit diff| vs transformers = \(worst)")
        #expect(worst < Self.tolerance)
    }

    @Test func f16WeightsGiveTheirOwnResultNotTheF32One() throws {
        // Guards the test above: the F16 reference differs from the F32 one by more than the tolerance,
        // so matching it proves the F16 weights were read, not merely similar ones.
        let f32 = Self.expected.sequence_classification.f32.flatMap { $0 }
        let f16 = Self.expected.sequence_classification.f16.flatMap { $0 }
        #expect(Self.maxDifference(f32, f16) > 5 * Self.tolerance)
    }

    @Test func tokenClassificationMatchesTransformers() throws {
        let model = try Self.load("token-classification")
        #expect(model.config.activation == .geluTanh)
        let reference = Self.expected.token_classification.logits

        let results = try InferenceSession(model: model).labelTokens(Self.expected.modelInputs)

        #expect(results.map(\.count) == Self.expected.inputs.map(\.input_ids.count))
        var worst: Float = 0
        for (tokens, expectedTokens) in zip(results, reference) {
            for (token, logits) in zip(tokens, expectedTokens) {
                worst = max(worst, Self.maxDifference(token.logits, logits))
                #expect(token.label == model.labels[logits.indices.max { logits[$0] < logits[$1] }!])
            }
        }
        print("tiny-bert/token-classification: max |logit diff| = \(worst)")
        #expect(worst < Self.tolerance)
    }

    @Test(arguments: Pooling.allCases)
    func sentenceEmbeddingsMatchTransformers(pooling: Pooling) throws {
        // A bare BertModel: pytorch_model.bin without the `bert.` prefix, ReLU feed-forward.
        let model = try Self.load("embeddings-relu")
        #expect(model.task == .embeddings)
        #expect(model.config.activation == .relu)
        let reference = pooling == .cls ? Self.expected.embeddings.cls : Self.expected.embeddings.mean

        let embeddings = try InferenceSession(model: model).embed(Self.expected.modelInputs, pooling: pooling)

        let worst = Self.maxDifference(embeddings.flatMap { $0 }, reference.flatMap { $0 })
        print("tiny-bert/embeddings-relu \(pooling): max |diff| = \(worst)")
        #expect(embeddings.count == reference.count)
        #expect(worst < Self.tolerance)
    }

    // MARK: - Batching

    @Test func aBatchOfMixedLengthsGivesEachTextItsResultAlone() throws {
        let session = InferenceSession(model: try Self.load("f32"), threads: 2)
        let inputs = Self.expected.modelInputs
        let alone = try inputs.map { try session.classify([$0])[0].logits }

        // Shuffled so that every text sits next to longer and shorter neighbours.
        let order = [7, 0, 11, 3, 9, 1, 5, 10, 2, 8, 4, 6]
        let batched = try session.classify(order.map { inputs[$0] })

        for (position, index) in order.enumerated() {
            #expect(Self.maxDifference(batched[position].logits, alone[index]) < 1e-5, "input \(index)")
        }
    }

    @Test func aSessionReusedForSmallerBatchesStillMatches() throws {
        let session = InferenceSession(model: try Self.load("f32"))
        let inputs = Self.expected.modelInputs
        _ = try session.classify(inputs)  // grows the workspace to the largest batch
        let small = try session.classify([inputs[2], inputs[0]])
        #expect(Self.maxDifference(small[0].logits, Self.expected.sequence_classification.f32[2]) < Self.tolerance)
        #expect(Self.maxDifference(small[1].logits, Self.expected.sequence_classification.f32[0]) < Self.tolerance)
        #expect(try session.classify([]).isEmpty)
    }

    @Test func hiddenStatesHaveOneRowPerToken() throws {
        let session = InferenceSession(model: try Self.load("embeddings-relu"))
        let inputs = Array(Self.expected.modelInputs.prefix(3))
        let states = try session.hiddenStates(inputs)
        #expect(states.map(\.shape) == inputs.map { [$0.inputIDs.count, 32] })
        #expect(Self.maxDifference(Array(states[2].values.prefix(32)), Self.expected.embeddings.cls[2]) < Self.tolerance)
    }

    @Test func theClsReadoutIsEachTextsFirstRowOfTheFullLastLayer() throws {
        // `.firstTokens` computes the last layer's output projection and feed-forward block for the
        // `[CLS]` rows alone, after compacting them; mixed lengths put those rows at uneven offsets.
        let session = InferenceSession(model: try Self.load("embeddings-relu"), threads: 2)
        let inputs = Self.expected.modelInputs
        let cls = try session.embed(inputs, pooling: .cls)
        let states = try session.hiddenStates(inputs)
        #expect(Set(inputs.map(\.inputIDs.count)).count > 1)
        for (index, (vector, tokens)) in zip(cls, states).enumerated() {
            #expect(Self.maxDifference(vector, Array(tokens.values.prefix(vector.count))) < 1e-5, "input \(index)")
        }
    }

    // MARK: - Checkpoint checking

    @Test func theBertPrefixAndLegacyLayerNormNamesAreOptional() throws {
        let tensors = try WeightFile.load(Self.fixtures.appendingPathComponent("f32/model.safetensors"))
        var renamed: [String: Tensor] = [:]
        for (name, tensor) in tensors {
            var newName = name.hasPrefix("bert.") ? String(name.dropFirst("bert.".count)) : name
            if newName.hasSuffix("LayerNorm.weight") { newName = newName.replacingOccurrences(of: "LayerNorm.weight", with: "LayerNorm.gamma") }
            if newName.hasSuffix("LayerNorm.bias") { newName = newName.replacingOccurrences(of: "LayerNorm.bias", with: "LayerNorm.beta") }
            renamed[newName] = tensor
        }
        #expect(renamed["embeddings.LayerNorm.gamma"] != nil)
        let config = try ModelConfig.load(from: Self.fixtures.appendingPathComponent("f32/config.json"))

        let model = try BertModel(config: config, tensors: renamed)

        let logits = try InferenceSession(model: model).classify(Self.expected.modelInputs).flatMap(\.logits)
        #expect(Self.maxDifference(logits, Self.expected.sequence_classification.f32.flatMap { $0 }) < Self.tolerance)
    }

    @Test func everyMissingOrMisshapedTensorIsReportedByName() throws {
        var tensors = try WeightFile.load(Self.fixtures.appendingPathComponent("f32/model.safetensors"))
        let config = try ModelConfig.load(from: Self.fixtures.appendingPathComponent("f32/config.json"))
        tensors["bert.encoder.layer.1.attention.self.key.weight"] = nil
        tensors["classifier.weight"] = nil
        tensors["bert.encoder.layer.0.intermediate.dense.weight"] = Tensor(shape: [32, 64], values: Array(repeating: 0, count: 2048))

        let error = #expect(throws: CheckpointError.self) { try BertModel(config: config, tensors: tensors) }

        guard case let .tensorProblems(problems)? = error else {
            Issue.record("expected tensorProblems, got \(String(describing: error))")
            return
        }
        #expect(Set(problems.map(\.name)) == [
            "bert.encoder.layer.1.attention.self.key.weight", "classifier.weight", "bert.encoder.layer.0.intermediate.dense.weight",
        ])
        #expect(problems.contains(.missing(name: "bert.encoder.layer.1.attention.self.key.weight", expectedShape: [32, 32])))
        #expect(problems.contains(.missing(name: "classifier.weight", expectedShape: [3, 32])))
        #expect(problems.contains(.shapeMismatch(name: "bert.encoder.layer.0.intermediate.dense.weight", expected: [64, 32], found: [32, 64])))
        let text = String(describing: error!)
        #expect(text.contains("3 problems"))
        #expect(text.contains("bert.encoder.layer.0.intermediate.dense.weight: expected shape [64, 32], found [32, 64]"))
    }

    @Test func aConfigWithMoreLabelsThanTheClassifierIsAShapeProblem() throws {
        let tensors = try WeightFile.load(Self.fixtures.appendingPathComponent("f32/model.safetensors"))
        let config = try ModelConfig(vocabSize: 512, hiddenSize: 32, layerCount: 2, headCount: 4, intermediateSize: 64,
                                     maxPositions: 64, labels: ["a", "b", "c", "d"], task: .sequenceClassification)
        #expect(throws: CheckpointError.tensorProblems([
            .shapeMismatch(name: "classifier.weight", expected: [4, 32], found: [3, 32]),
            .shapeMismatch(name: "classifier.bias", expected: [4], found: [3]),
        ])) { try BertModel(config: config, tensors: tensors) }
    }

    @Test func aDirectoryWithoutWeightsIsAMissingFile() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("minirbt-encoder-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        #expect(throws: CheckpointError.self) { try BertModel.load(directory: directory) }  // no config.json
        try FileManager.default.copyItem(at: Self.fixtures.appendingPathComponent("f32/config.json"),
                                         to: directory.appendingPathComponent("config.json"))
        let error = #expect(throws: CheckpointError.self) { try BertModel.load(directory: directory) }
        #expect(String(describing: error!).contains("model.safetensors, pytorch_model.bin"))
    }

    // MARK: - Config

    @Test func configReadsTheFieldsThatChangeTheComputation() throws {
        let config = try ModelConfig.load(from: Self.fixtures.appendingPathComponent("token-classification/config.json"))
        #expect(config.vocabSize == 512 && config.hiddenSize == 32 && config.layerCount == 2)
        #expect(config.headCount == 4 && config.headSize == 8 && config.intermediateSize == 64)
        #expect(config.maxPositions == 64 && config.typeVocabSize == 2 && config.padTokenID == 0)
        #expect(config.layerNormEpsilon == 1e-12)
        #expect(config.task == .tokenClassification)
        #expect(config.labels == ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"])
    }

    @Test func unsupportedConfigValuesAreRejectedWithTheSupportedOnes() throws {
        #expect(throws: CheckpointError.unsupportedConfig(field: "position_embedding_type", value: "relative_key", supported: ["absolute"])) {
            try ModelConfig(json: Data(#"{"position_embedding_type": "relative_key"}"#.utf8))
        }
        let error = #expect(throws: CheckpointError.self) { try ModelConfig(json: Data(#"{"hidden_act": "mish"}"#.utf8)) }
        #expect(String(describing: error!).contains("hidden_act 'mish'"))
        #expect(String(describing: error!).contains("gelu_new"))
        #expect(throws: CheckpointError.invalidConfig(field: "hidden_size", reason: "100 is not a multiple of num_attention_heads 12")) {
            try ModelConfig(json: Data(#"{"hidden_size": 100}"#.utf8))
        }
        #expect(throws: CheckpointError.invalidConfig(field: "num_hidden_layers", reason: "expected a value of type Int")) {
            try ModelConfig(json: Data(#"{"num_hidden_layers": "six"}"#.utf8))
        }
        #expect(throws: CheckpointError.self) { try ModelConfig(json: Data(#"{"id2label": {"0": "a", "2": "b"}}"#.utf8)) }
    }

    @Test func anEmptyConfigMeansBertConfigDefaults() throws {
        let config = try ModelConfig(json: Data("{}".utf8))
        #expect(config.hiddenSize == 768 && config.layerCount == 12 && config.headCount == 12)
        #expect(config.activation == .gelu && config.labels == ["LABEL_0", "LABEL_1"] && config.task == .embeddings)
    }

    // MARK: - Inputs

    @Test func badInputsAreRejectedBeforeAnyComputation() throws {
        let session = InferenceSession(model: try Self.load("f32"))
        let good = ModelInput(inputIDs: [1, 2, 3])
        #expect(throws: InferenceError.tokenIDOutOfRange(index: 1, position: 2, id: 512, vocabSize: 512)) {
            try session.classify([good, ModelInput(inputIDs: [1, 2, 512])])
        }
        #expect(throws: InferenceError.tokenIDOutOfRange(index: 0, position: 0, id: -1, vocabSize: 512)) {
            try session.classify([ModelInput(inputIDs: [-1])])
        }
        #expect(throws: InferenceError.tokenTypeOutOfRange(index: 0, position: 1, id: 2, typeVocabSize: 2)) {
            try session.classify([ModelInput(inputIDs: [1, 2], tokenTypeIDs: [0, 2])])
        }
        #expect(throws: InferenceError.tokenTypeCountMismatch(index: 0, inputIDs: 2, tokenTypeIDs: 1)) {
            try session.classify([ModelInput(inputIDs: [1, 2], tokenTypeIDs: [0])])
        }
        #expect(throws: InferenceError.inputTooLong(index: 0, length: 65, maximum: 64)) {
            try session.classify([ModelInput(inputIDs: Array(repeating: 1, count: 65))])
        }
        #expect(throws: InferenceError.emptyInput(index: 1)) { try session.classify([good, ModelInput(inputIDs: [])]) }
        #expect(throws: InferenceError.headUnavailable(requested: .tokenClassification, model: .sequenceClassification)) {
            try session.labelTokens([good])
        }
        // The session is still usable after rejected batches.
        #expect(try session.classify([good]).count == 1)
    }
}
