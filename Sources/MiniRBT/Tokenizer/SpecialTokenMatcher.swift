/// Finds special-token spellings (e.g. "[CLS]") in raw text, before normalization, so they become
/// their own ids, as Hugging Face's added-token splitting does. Matching is exact and
/// case-sensitive; at each position the leftmost, then longest, spelling wins.
struct SpecialTokenMatcher: Sendable {
    enum Segment {
        case text(Substring)
        case special(Int32)
    }

    /// Spellings as UTF-8 bytes with their ids, longest first.
    private let tokens: [(utf8: [UInt8], id: Int32)]
    /// Whether a byte can start a spelling: spares the comparison at almost every position.
    private let startsToken: [Bool]

    init(tokens: [(spelling: String, id: Int32)]) {
        let encoded = tokens.filter { !$0.spelling.isEmpty }.map { (utf8: Array($0.spelling.utf8), id: $0.id) }
        self.tokens = encoded.sorted { $0.utf8.count > $1.utf8.count }
        var startsToken = [Bool](repeating: false, count: 256)
        for token in encoded { startsToken[Int(token.utf8[0])] = true }
        self.startsToken = startsToken
    }

    /// Calls `body` with the text between spellings and with the id of each spelling, in order.
    /// Empty text segments are skipped.
    func forEachSegment(of text: String, _ body: (Segment) -> Void) {
        let utf8 = text.utf8
        var segmentStart = utf8.startIndex
        var position = utf8.startIndex
        while position < utf8.endIndex {
            guard startsToken[Int(utf8[position])], let (length, id) = match(in: utf8, at: position) else {
                position = utf8.index(after: position)
                continue
            }
            if segmentStart < position { body(.text(text[segmentStart..<position])) }
            body(.special(id))
            position = utf8.index(position, offsetBy: length)
            segmentStart = position
        }
        if segmentStart < utf8.endIndex { body(.text(text[segmentStart...])) }
    }

    private func match(in utf8: String.UTF8View, at position: String.Index) -> (length: Int, id: Int32)? {
        for token in tokens {
            guard let end = utf8.index(position, offsetBy: token.utf8.count, limitedBy: utf8.endIndex),
                  utf8[position..<end].elementsEqual(token.utf8) else { continue }
            return (token.utf8.count, token.id)
        }
        return nil
    }
}
