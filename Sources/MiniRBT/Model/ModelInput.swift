/// One tokenized text (or text pair) as the encoder consumes it.
public struct ModelInput: Sendable, Equatable {
    /// Vocabulary ids including `[CLS]` and `[SEP]`.
    public var inputIDs: [Int32]
    /// Segment of each token (0 for the first text, 1 for the second of a pair); same count as `inputIDs`.
    public var tokenTypeIDs: [Int32]

    /// `tokenTypeIDs` default to all zeros (a single text).
    public init(inputIDs: [Int32], tokenTypeIDs: [Int32]? = nil) {
        self.inputIDs = inputIDs
        self.tokenTypeIDs = tokenTypeIDs ?? [Int32](repeating: 0, count: inputIDs.count)
    }
}

/// Why a batch could not be run. Inputs are checked before any computation, so nothing is half done.
public enum InferenceError: Error, Equatable, CustomStringConvertible {
    /// Input `index` has no tokens (a tokenizer always adds `[CLS]` and `[SEP]`).
    case emptyInput(index: Int)
    /// Input `index` is longer than the model's position table.
    case inputTooLong(index: Int, length: Int, maximum: Int)
    /// `tokenTypeIDs` and `inputIDs` of input `index` differ in length.
    case tokenTypeCountMismatch(index: Int, inputIDs: Int, tokenTypeIDs: Int)
    /// A token id outside `0..<vocabSize` (typically a tokenizer built from another vocabulary).
    case tokenIDOutOfRange(index: Int, position: Int, id: Int32, vocabSize: Int)
    case tokenTypeOutOfRange(index: Int, position: Int, id: Int32, typeVocabSize: Int)
    /// The requested head is not part of this checkpoint (e.g. `classify` on a bare `BertModel`).
    case headUnavailable(requested: ModelTask, model: ModelTask)

    public var description: String {
        switch self {
        case let .emptyInput(index):
            return "input \(index) has no tokens (expected at least [CLS] and [SEP])"
        case let .inputTooLong(index, length, maximum):
            return "input \(index) has \(length) tokens, the model accepts at most \(maximum)"
        case let .tokenTypeCountMismatch(index, inputIDs, tokenTypeIDs):
            return "input \(index) has \(inputIDs) token ids but \(tokenTypeIDs) token type ids"
        case let .tokenIDOutOfRange(index, position, id, vocabSize):
            return "input \(index) token \(position) has id \(id), expected 0..<\(vocabSize)"
        case let .tokenTypeOutOfRange(index, position, id, typeVocabSize):
            return "input \(index) token \(position) has token type \(id), expected 0..<\(typeVocabSize)"
        case let .headUnavailable(requested, model):
            return "the model is a \(model.rawValue) checkpoint; \(requested.rawValue) needs a checkpoint with that head"
        }
    }
}

/// A batch laid out as one matrix row per token, texts back to back without padding.
///
/// Linear layers run over all rows at once; attention runs per text over its own rows. So no text ever
/// sees another's (or padding) tokens, and each text's result equals running it alone.
struct PackedBatch {
    let tokenIDs: [Int32]
    let tokenTypeIDs: [Int32]
    /// Row range of each input, in input order.
    let sequences: [Range<Int>]
    let longest: Int

    var tokenCount: Int { tokenIDs.count }

    init(_ inputs: [ModelInput], config: ModelConfig) throws(InferenceError) {
        var tokenIDs: [Int32] = []
        var tokenTypeIDs: [Int32] = []
        var sequences: [Range<Int>] = []
        tokenIDs.reserveCapacity(inputs.reduce(0) { $0 + $1.inputIDs.count })
        tokenTypeIDs.reserveCapacity(tokenIDs.capacity)
        for (index, input) in inputs.enumerated() {
            let length = input.inputIDs.count
            guard length > 0 else { throw .emptyInput(index: index) }
            guard length <= config.maxPositions else {
                throw .inputTooLong(index: index, length: length, maximum: config.maxPositions)
            }
            guard input.tokenTypeIDs.count == length else {
                throw .tokenTypeCountMismatch(index: index, inputIDs: length, tokenTypeIDs: input.tokenTypeIDs.count)
            }
            if let position = input.inputIDs.firstIndex(where: { $0 < 0 || Int($0) >= config.vocabSize }) {
                throw .tokenIDOutOfRange(index: index, position: position, id: input.inputIDs[position], vocabSize: config.vocabSize)
            }
            if let position = input.tokenTypeIDs.firstIndex(where: { $0 < 0 || Int($0) >= config.typeVocabSize }) {
                throw .tokenTypeOutOfRange(index: index, position: position, id: input.tokenTypeIDs[position],
                                           typeVocabSize: config.typeVocabSize)
            }
            sequences.append(tokenIDs.count ..< tokenIDs.count + length)
            tokenIDs.append(contentsOf: input.inputIDs)
            tokenTypeIDs.append(contentsOf: input.tokenTypeIDs)
        }
        self.tokenIDs = tokenIDs
        self.tokenTypeIDs = tokenTypeIDs
        self.sequences = sequences
        self.longest = sequences.map(\.count).max() ?? 0
    }
}
