/// The spellings of the special tokens a BERT encoder relies on.
///
/// Checkpoints may rename them in `tokenizer_config.json` (`cls_token`, ...); the defaults are BERT's.
public struct SpecialTokens: Sendable, Equatable {
    public var unknown: String
    public var classifier: String
    public var separator: String
    public var padding: String
    public var mask: String

    public init(unknown: String = "[UNK]", classifier: String = "[CLS]", separator: String = "[SEP]",
                padding: String = "[PAD]", mask: String = "[MASK]") {
        self.unknown = unknown
        self.classifier = classifier
        self.separator = separator
        self.padding = padding
        self.mask = mask
    }

    /// BERT's own spellings: `[UNK] [CLS] [SEP] [PAD] [MASK]`.
    public static let bert = SpecialTokens()

    /// Role names (for error messages) paired with spellings, in a fixed order.
    var roles: [(role: String, token: String)] {
        [("unknown", unknown), ("classifier", classifier), ("separator", separator),
         ("padding", padding), ("mask", mask)]
    }
}
