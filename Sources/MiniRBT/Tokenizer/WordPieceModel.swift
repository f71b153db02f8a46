/// Greedy longest-match-first WordPiece over a vocabulary, as BERT's `WordpieceTokenizer`.
///
/// The vocabulary is held as two tries over Unicode scalars (one for word-initial pieces, one for
/// "##" continuations with the prefix removed), so finding the longest piece at a position is a
/// single walk with no substring allocation. The answer is the same as trying every substring
/// from the longest down, which is what the reference does.
struct WordPieceModel: Sendable {
    /// Words with more scalars than this become one unknown token (`max_input_chars_per_word`).
    static let maxWordLength = 100
    static let continuationPrefix = "##"

    private static let initialRoot: Int32 = 0
    private static let continuationRoot: Int32 = 1

    /// Edge (parent node << 21 | scalar value) → child node. 21 bits hold any scalar value.
    private let edges: [UInt64: Int32]
    /// Node → id of the token ending there, or -1.
    private let tokenIDs: [Int32]
    private let unknownID: Int32

    init(vocabulary: Vocabulary) {
        var edges: [UInt64: Int32] = [:]
        edges.reserveCapacity(vocabulary.count * 2)
        var tokenIDs: [Int32] = [-1, -1]

        func insert(_ scalars: Substring.UnicodeScalarView, root: Int32, id: Int32) {
            var node = root
            for scalar in scalars {
                let key = Self.edgeKey(node, scalar)
                if let child = edges[key] {
                    node = child
                } else {
                    let child = Int32(tokenIDs.count)
                    tokenIDs.append(-1)
                    edges[key] = child
                    node = child
                }
            }
            // The empty token never matches a piece; a repeated token keeps its last id.
            if node != root { tokenIDs[Int(node)] = id }
        }

        let prefix = Self.continuationPrefix.unicodeScalars
        for (index, token) in vocabulary.tokens.enumerated() {
            let id = Int32(index)
            let scalars = token[...].unicodeScalars
            insert(scalars, root: Self.initialRoot, id: id)
            // By scalars: in "##ﾞ" the second "#" and U+FF9E form one Character, so a Character
            // prefix test would miss this continuation.
            if scalars.starts(with: prefix) {
                insert(scalars.dropFirst(prefix.count), root: Self.continuationRoot, id: id)
            }
        }
        self.edges = edges
        self.tokenIDs = tokenIDs
        self.unknownID = vocabulary.unknownID
    }

    /// Appends the ids of `word`'s pieces to `ids`; a word with any unmatched part, or longer than
    /// `maxWordLength` scalars, becomes the single unknown id.
    func appendIDs(of word: ArraySlice<Unicode.Scalar>, to ids: inout [Int32]) {
        guard word.count <= Self.maxWordLength else {
            ids.append(unknownID)
            return
        }
        let firstPiece = ids.count
        var start = word.startIndex
        while start < word.endIndex {
            var node = start == word.startIndex ? Self.initialRoot : Self.continuationRoot
            var match: (end: Int, id: Int32)?
            var index = start
            while index < word.endIndex, let child = edges[Self.edgeKey(node, word[index])] {
                node = child
                index += 1
                let id = tokenIDs[Int(node)]
                if id >= 0 { match = (index, id) }
            }
            guard let match else {
                ids.removeSubrange(firstPiece...)
                ids.append(unknownID)
                return
            }
            ids.append(match.id)
            start = match.end
        }
    }

    private static func edgeKey(_ node: Int32, _ scalar: Unicode.Scalar) -> UInt64 {
        UInt64(UInt32(bitPattern: node)) << 21 | UInt64(scalar.value)
    }
}
