/// The encoder's input for one text or text pair: `[CLS] a [SEP]` or `[CLS] a [SEP] b [SEP]`.
public struct Encoding: Sendable, Equatable {
    /// Token ids, special tokens included.
    public var inputIDs: [Int32]
    /// 0 for `[CLS]`, the first text and its `[SEP]`; 1 for the second text and its `[SEP]`.
    public var tokenTypeIDs: [Int32]
    /// True when truncation to the maximum length dropped word pieces.
    public var truncated: Bool

    public init(inputIDs: [Int32], tokenTypeIDs: [Int32], truncated: Bool) {
        self.inputIDs = inputIDs
        self.tokenTypeIDs = tokenTypeIDs
        self.truncated = truncated
    }

    /// Number of tokens (the sequence length the encoder sees).
    public var count: Int { inputIDs.count }
}
