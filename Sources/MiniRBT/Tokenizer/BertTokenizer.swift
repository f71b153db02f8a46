/// BERT's WordPiece tokenizer, giving the same ids as Hugging Face `transformers` gives for a
/// MiniRBT checkpoint (`AutoTokenizer`, i.e. the `tokenizers` `BertNormalizer` +
/// `BertPreTokenizer` + `WordPiece` pipeline with the BERT template and longest-first truncation).
///
/// Immutable and `Sendable`: one instance is shared by every shard of a loaded model.
public struct BertTokenizer: Sendable {
    public let vocabulary: Vocabulary
    private let normalizer: BertNormalizer
    private let wordPiece: WordPieceModel
    private let specialTokenMatcher: SpecialTokenMatcher

    /// - Parameters:
    ///   - lowercase: lower-case the text (`do_lower_case`).
    ///   - stripAccents: delete accents after NFD; `nil` follows `lowercase`, as in BERT.
    ///   - tokenizeChineseChars: make every CJK ideograph a word of its own.
    public init(vocabulary: Vocabulary, lowercase: Bool = true, stripAccents: Bool? = nil,
                tokenizeChineseChars: Bool = true) {
        self.vocabulary = vocabulary
        normalizer = BertNormalizer(lowercase: lowercase, stripAccents: stripAccents ?? lowercase,
                                    separateChineseCharacters: tokenizeChineseChars)
        wordPiece = WordPieceModel(vocabulary: vocabulary)
        let special = vocabulary.specialTokens
        specialTokenMatcher = SpecialTokenMatcher(tokens: [
            (special.padding, vocabulary.paddingID), (special.unknown, vocabulary.unknownID),
            (special.classifier, vocabulary.classifierID), (special.separator, vocabulary.separatorID),
            (special.mask, vocabulary.maskID),
        ])
    }

    /// The word pieces of `text`, without `[CLS]`/`[SEP]` framing.
    ///
    /// Special-token spellings written in the text (e.g. a literal "[SEP]") stay single tokens,
    /// as in the reference; case matters, so "[sep]" is ordinary text.
    public func tokenize(_ text: String) -> [String] {
        wordPieceIDs(text).map { vocabulary.token(of: $0) ?? vocabulary.specialTokens.unknown }
    }

    /// The ids of `tokenize(text)`.
    public func wordPieceIDs(_ text: String) -> [Int32] {
        var ids: [Int32] = []
        ids.reserveCapacity(text.utf8.count / 2 + 4)
        var normalized: [Unicode.Scalar] = []
        var scratch: [Unicode.Scalar] = []
        specialTokenMatcher.forEachSegment(of: text) { segment in
            switch segment {
            case .special(let id):
                ids.append(id)
            case .text(let substring):
                normalized.removeAll(keepingCapacity: true)
                normalizer.normalize(substring, into: &normalized, scratch: &scratch)
                BertPreTokenizer.forEachWord(in: normalized) { word in
                    wordPiece.appendIDs(of: word, to: &ids)
                }
            }
        }
        return ids
    }

    /// Encodes `text` (and `pair`) as `[CLS] text [SEP] (pair [SEP])`, truncated to `maxLength`
    /// tokens with the longest-first rule.
    ///
    /// An empty `pair` counts as no pair, as in `transformers` (which tests the pair's truthiness).
    /// A `maxLength` below the number of special tokens (2, or 3 for a pair) is treated as that
    /// number, leaving only the framing; Hugging Face instead logs an error and skips truncation.
    public func encode(_ text: String, pair: String? = nil, maxLength: Int = 512) -> Encoding {
        var first = wordPieceIDs(text)
        var second = pair.flatMap { $0.isEmpty ? nil : wordPieceIDs($0) }
        let budget = max(0, maxLength - (second == nil ? 2 : 3))
        let lengths = Self.truncatedLengths(first: first.count, second: second?.count, budget: budget)
        let truncated = lengths.first < first.count || lengths.second < (second?.count ?? 0)
        first.removeSubrange(lengths.first...)
        second?.removeSubrange(lengths.second...)

        var inputIDs: [Int32] = []
        inputIDs.reserveCapacity(first.count + (second?.count ?? 0) + 3)
        inputIDs.append(vocabulary.classifierID)
        inputIDs.append(contentsOf: first)
        inputIDs.append(vocabulary.separatorID)
        var tokenTypeIDs = [Int32](repeating: 0, count: inputIDs.count)
        if let second {
            inputIDs.append(contentsOf: second)
            inputIDs.append(vocabulary.separatorID)
            tokenTypeIDs.append(contentsOf: repeatElement(1, count: second.count + 1))
        }
        return Encoding(inputIDs: inputIDs, tokenTypeIDs: tokenTypeIDs, truncated: truncated)
    }

    /// How many pieces of each text survive a `budget` of content tokens (special tokens excluded),
    /// by `tokenizers`' longest-first rule: a single text keeps its first `budget` pieces; for a pair,
    /// the longer text is cut to make room, and when both must be cut each keeps half the budget,
    /// the odd token going to the longer one (to the second on a tie).
    static func truncatedLengths(first: Int, second: Int?, budget: Int) -> (first: Int, second: Int) {
        guard let second else { return (min(first, budget), 0) }
        if first + second <= budget { return (first, second) }
        let shorter = min(first, second)
        let firstIsShorter = first <= second
        var keptShorter = shorter
        var keptLonger = shorter > budget ? shorter : max(shorter, budget - shorter)
        if keptShorter + keptLonger > budget {
            keptShorter = budget / 2
            keptLonger = keptShorter + budget % 2
        }
        let keptFirst = firstIsShorter ? keptShorter : keptLonger
        let keptSecond = firstIsShorter ? keptLonger : keptShorter
        return (min(first, keptFirst), min(second, keptSecond))
    }
}
