/// Splits normalized text into words: whitespace separates words and is dropped, and every
/// punctuation character becomes a word of its own (BERT's `BertPreTokenizer`).
enum BertPreTokenizer {
    /// Calls `body` with each word of `scalars`, in order.
    static func forEachWord(in scalars: [Unicode.Scalar], _ body: (ArraySlice<Unicode.Scalar>) -> Void) {
        var wordStart = scalars.startIndex
        for index in scalars.indices {
            let scalar = scalars[index]
            if scalar.isBertWhitespace {
                if wordStart < index { body(scalars[wordStart..<index]) }
                wordStart = index + 1
            } else if scalar.isBertPunctuation {
                if wordStart < index { body(scalars[wordStart..<index]) }
                body(scalars[index...index])
                wordStart = index + 1
            }
        }
        if wordStart < scalars.endIndex { body(scalars[wordStart...]) }
    }
}
