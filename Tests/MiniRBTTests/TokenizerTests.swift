import Foundation
import KafkaTestSupport
import Testing
@testable import MiniRBT

/// Parity of `BertTokenizer` with Hugging Face `transformers` (fixtures made by
/// scripts/fixtures/make_tokenizer_fixtures.py), plus its loading errors and truncation rule.
@Suite("TokenizerTests")
struct TokenizerTests {
    // MARK: Parity with transformers

    @Test("every ChnSentiCorp text encodes to the reference ids at max_length 512 and 128")
    func corpusParity() throws {
        let tokenizer = try Self.referenceTokenizer()
        var texts: [String: String] = [:]
        for file in ["train", "dev"] {
            for row in try Self.corpusRows(file) { texts["\(file)\t\(row.id)"] = row.text }
        }
        let expectations = try Self.tsvRows("corpus.tsv")
        #expect(expectations.count == 6765)
        #expect(expectations.count == texts.count)

        var identical = 0
        var firstMismatch: String?
        for fields in expectations {
            try #require(fields.count == 6, "corpus.tsv row \(fields) should have 6 fields")
            let key = "\(fields[0])\t\(fields[1])"
            let text = try #require(texts[key], "corpus.tsv names \(key), which is not in shared/data")
            let full = tokenizer.encode(text, maxLength: 512)
            let short = tokenizer.encode(text, maxLength: 128)
            let matches = "\(full.count)" == fields[2] && Self.fnv1a(full.inputIDs) == fields[3]
                && "\(short.count)" == fields[4] && Self.fnv1a(short.inputIDs) == fields[5]
            if matches {
                identical += 1
            } else if firstMismatch == nil {
                firstMismatch = """
                    \(fields[0]) \(fields[1]): \(text)
                    expected count/hash 512: \(fields[2]) \(fields[3]), 128: \(fields[4]) \(fields[5])
                    actual 512: \(full.count) \(Self.fnv1a(full.inputIDs)) \(Self.tokens(full, tokenizer))
                    (expected tokens: make_tokenizer_fixtures.py --show \(fields[0]):\(fields[1]))
                    """
            }
            if full.count < 512 {
                #expect(short.truncated == (full.count > 128), "\(key): truncation flag at 128")
                #expect(!full.truncated, "\(key): not truncated at 512")
            }
        }
        #expect(identical == expectations.count,
                "\(identical)/\(expectations.count) identical; first mismatch: \(firstMismatch ?? "none")")
    }

    @Test("hand-picked edge cases encode to the reference ids, types and truncation flag")
    func edgeCases() throws {
        let tokenizer = try Self.referenceTokenizer()
        let cases = try JSONDecoder().decode([EdgeCase].self, from: Data(contentsOf: Self.fixture("edge-cases.json")))
        #expect(cases.count >= 70)
        for edge in cases {
            let encoding = tokenizer.encode(edge.text, pair: edge.pair, maxLength: edge.maxLength)
            #expect(encoding.inputIDs == edge.inputIDs,
                    "\(edge.name): expected \(edge.tokens), got \(Self.tokens(encoding, tokenizer))")
            #expect(encoding.tokenTypeIDs == edge.tokenTypeIDs, "\(edge.name): token types")
            #expect(encoding.truncated == edge.truncated, "\(edge.name): truncated flag")
        }
    }

    @Test("every code point of planes 0-3 and 14 is cleaned, split, cased and stripped as the reference")
    func unicodeSweep() throws {
        let tokenizer = try Self.referenceTokenizer()
        let rows = try Self.tsvRows("unicode.tsv")
        #expect(rows.count == 1280)
        var mismatchedBlocks: [String] = []
        for fields in rows {
            try #require(fields.count == 3, "unicode.tsv row \(fields) should have 3 fields")
            let block = try #require(UInt32(fields[0], radix: 16), "block \(fields[0]) is not hex")
            let encoding = tokenizer.encode(Self.unicodeBlockText(block), maxLength: .max)
            if "\(encoding.count)" != fields[1] || Self.fnv1a(encoding.inputIDs) != fields[2] {
                mismatchedBlocks.append(fields[0])
            }
        }
        #expect(mismatchedBlocks.isEmpty,
                "blocks differing from the reference (inspect with make_tokenizer_fixtures.py --block HEX): \(mismatchedBlocks)")
    }

    /// The normalizer skips NFD for text made only of these scalars; that is only right if
    /// Foundation's NFD leaves each of them alone and none reorders.
    @Test("scalars on the NFD fast path are unchanged by canonical decomposition")
    func canonicallyStableScalars() {
        var wrong: [String] = []
        for value in UInt32(0)...0x2FFFF {
            guard let scalar = Unicode.Scalar(value), scalar.isCanonicallyStable else { continue }
            let text = String(Character(scalar))
            let decomposed = text.decomposedStringWithCanonicalMapping
            if !decomposed.unicodeScalars.elementsEqual([scalar])
                || scalar.properties.canonicalCombiningClass != .notReordered {
                wrong.append(String(value, radix: 16))
            }
        }
        #expect(wrong.isEmpty, "not canonically stable: \(wrong.prefix(20))")
    }

    // MARK: Behaviour

    @Test("tokenize gives word pieces without framing and keeps literal special tokens")
    func tokenizeWordPieces() throws {
        let tokenizer = try Self.referenceTokenizer()
        #expect(tokenizer.tokenize("iPhone13Pro很好[SEP]") == ["iphone", "##13", "##pro", "很", "好", "[SEP]"])
        #expect(tokenizer.tokenize("[sep]") == ["[", "sep", "]"])
        #expect(tokenizer.tokenize("") == [])
        #expect(tokenizer.tokenize(String(repeating: "a", count: 101)) == ["[UNK]"])
    }

    @Test("an empty pair is no pair, and the pair's tokens have type 1")
    func pairs() throws {
        let tokenizer = try Self.referenceTokenizer()
        let vocabulary = tokenizer.vocabulary
        #expect(tokenizer.encode("好", pair: "") == tokenizer.encode("好"))
        let pair = tokenizer.encode("好", pair: "差评")
        #expect(pair.inputIDs == [vocabulary.classifierID, 1962, vocabulary.separatorID, 2345, 6397, vocabulary.separatorID])
        #expect(pair.tokenTypeIDs == [0, 0, 0, 1, 1, 1])
        #expect(!pair.truncated)
    }

    @Test("longest-first truncation keeps the tokenizers crate's lengths",
          arguments: [
              // (first, second, budget) → (kept first, kept second)
              (5, 100, 5, 2, 3), (3, 100, 5, 2, 3), (2, 100, 5, 2, 3), (100, 3, 5, 3, 2), (4, 4, 5, 2, 3), (6, 6, 6, 3, 3),
              (6, 6, 7, 3, 4), (10, 1, 5, 4, 1), (1, 10, 5, 1, 4), (2, 2, 5, 2, 2), (0, 9, 5, 0, 5),
              (9, 0, 5, 5, 0), (7, 7, 0, 0, 0), (100, 200, 509, 100, 200), (300, 300, 509, 254, 255),
          ])
    func truncationLengths(_ first: Int, _ second: Int, _ budget: Int, _ keptFirst: Int, _ keptSecond: Int) {
        let kept = BertTokenizer.truncatedLengths(first: first, second: second, budget: budget)
        #expect(kept.first == keptFirst && kept.second == keptSecond)
    }

    @Test("single texts keep their first budget pieces; the flag reports dropped pieces")
    func singleTruncation() throws {
        let tokenizer = try Self.referenceTokenizer()
        let text = "一二三四五六七八"
        #expect(tokenizer.encode(text, maxLength: 10) == Encoding(
            inputIDs: [101] + tokenizer.wordPieceIDs(text) + [102], tokenTypeIDs: Array(repeating: 0, count: 10),
            truncated: false))
        let cut = tokenizer.encode(text, maxLength: 5)
        #expect(cut.inputIDs == [101] + tokenizer.wordPieceIDs("一二三") + [102])
        #expect(cut.truncated)
        #expect(tokenizer.encode(text, maxLength: 0).inputIDs == [101, 102])
    }

    // MARK: Vocabulary and loading

    @Test("vocabulary lookups compare exact scalars, not canonical equivalence")
    func exactScalarLookup() throws {
        let syllable = "\u{D55C}"  // 한, precomposed
        let jamo = "\u{1112}\u{1161}\u{11AB}"  // the same text, decomposed
        #expect(syllable == jamo)  // Swift's String equality, which the vocabulary must not use
        let vocabulary = try Vocabulary(tokens: Self.specials + [syllable])
        #expect(vocabulary.id(of: syllable) == 5)
        #expect(vocabulary.id(of: jamo) == nil)
        #expect(vocabulary.token(of: 5) == syllable)
        #expect(vocabulary.token(of: 6) == nil && vocabulary.token(of: -1) == nil)
        #expect(vocabulary.unknownID == 1 && vocabulary.classifierID == 2 && vocabulary.separatorID == 3)
        #expect(vocabulary.paddingID == 0 && vocabulary.maskID == 4)
    }

    @Test("the checkpoint's vocabulary has BERT's ids for the special tokens")
    func checkpointVocabulary() throws {
        let vocabulary = try Self.referenceTokenizer().vocabulary
        #expect(vocabulary.count == 21128)
        #expect([vocabulary.paddingID, vocabulary.unknownID, vocabulary.classifierID, vocabulary.separatorID,
                 vocabulary.maskID] == [0, 100, 101, 102, 103])
        #expect(vocabulary.id(of: "##😎") == 21127)
    }

    @Test("a vocab file with CRLF line ends and a final newline reads like one without")
    func crlfVocabulary() throws {
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let url = directory.appendingPathComponent("vocab.txt")
        try Data((Self.specials + ["好", "##好"]).joined(separator: "\r\n").appending("\r\n").utf8).write(to: url)
        let vocabulary = try Vocabulary(contentsOf: url)
        #expect(vocabulary.count == 7)
        #expect(vocabulary.id(of: "##好") == 6)
        let tokenizer = BertTokenizer(vocabulary: vocabulary)
        #expect(tokenizer.encode("好好 坏").inputIDs == [2, 5, 5, 1, 3])
    }

    @Test("missing, empty, non-UTF-8 and incomplete vocabularies throw typed errors naming the file")
    func vocabularyErrors() throws {
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let missing = directory.appendingPathComponent("vocab.txt")
        #expect(throws: TokenizerError.vocabularyNotFound(path: missing.path)) {
            try Vocabulary(contentsOf: missing)
        }
        #expect(throws: TokenizerError.vocabularyNotFound(path: missing.path)) {
            try BertTokenizer(checkpointDirectory: directory)
        }
        #expect("\(TokenizerError.vocabularyNotFound(path: missing.path))".contains(missing.path))

        let empty = directory.appendingPathComponent("empty.txt")
        try Data().write(to: empty)
        #expect(throws: TokenizerError.vocabularyEmpty(source: empty.path)) { try Vocabulary(contentsOf: empty) }

        let binary = directory.appendingPathComponent("binary.txt")
        try Data([0x5B, 0x50, 0xFF, 0xFE, 0x0A]).write(to: binary)
        #expect(throws: TokenizerError.vocabularyNotUTF8(path: binary.path)) { try Vocabulary(contentsOf: binary) }

        let incomplete = directory.appendingPathComponent("incomplete.txt")
        try Data("[PAD]\n[UNK]\n[SEP]\n[MASK]\n".utf8).write(to: incomplete)
        #expect(throws: TokenizerError.missingSpecialToken(source: incomplete.path, role: "classifier", token: "[CLS]")) {
            try Vocabulary(contentsOf: incomplete)
        }

        let aDirectory = directory.appendingPathComponent("folder")
        try FileManager.default.createDirectory(at: aDirectory, withIntermediateDirectories: false)
        #expect {
            try Vocabulary(contentsOf: aDirectory)
        } throws: { error in
            guard case TokenizerError.vocabularyUnreadable(let path, _) = error else { return false }
            return path == aDirectory.path
        }
    }

    @Test("tokenizer_config.json sets casing and special spellings; bad types are typed errors")
    func checkpointConfiguration() throws {
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        try Data((["<pad>", "<unk>", "<cls>", "<sep>", "<mask>", "A", "a", "é", "e"]).joined(separator: "\n").utf8)
            .write(to: directory.appendingPathComponent("vocab.txt"))
        let configURL = directory.appendingPathComponent("tokenizer_config.json")

        try Data(#"{"do_lower_case": false, "strip_accents": null, "unk_token": "<unk>", "cls_token": "<cls>","#
            .appending(#" "sep_token": {"content": "<sep>"}, "pad_token": "<pad>", "mask_token": "<mask>"}"#).utf8)
            .write(to: configURL)
        let cased = try BertTokenizer(checkpointDirectory: directory)
        #expect(cased.encode("A a é").inputIDs == [2, 5, 6, 7, 3])

        try Data(#"{"do_lower_case": true, "unk_token": "<unk>", "cls_token": "<cls>", "sep_token": "<sep>", "pad_token": "<pad>", "mask_token": "<mask>"}"#.utf8)
            .write(to: configURL)
        let uncased = try BertTokenizer(checkpointDirectory: directory)
        #expect(uncased.encode("A a é <cls>").inputIDs == [2, 6, 6, 8, 2, 3])

        try Data(#"{"do_lower_case": "yes"}"#.utf8).write(to: configURL)
        #expect {
            try BertTokenizer(checkpointDirectory: directory)
        } throws: { error in
            guard case TokenizerError.invalidConfiguration(let path, let reason) = error else { return false }
            return path == configURL.path && reason.contains("do_lower_case")
        }

        try Data("[1, 2]".utf8).write(to: configURL)
        #expect(throws: TokenizerError.self) { try BertTokenizer(checkpointDirectory: directory) }
    }

    // MARK: Helpers

    private static let specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]

    private struct EdgeCase: Decodable {
        var name: String
        var text: String
        var pair: String?
        var maxLength: Int
        var inputIDs: [Int32]
        var tokenTypeIDs: [Int32]
        var truncated: Bool
        var tokens: [String]

        enum CodingKeys: String, CodingKey {
            case name, text, pair, tokens, truncated
            case maxLength = "max_length", inputIDs = "input_ids", tokenTypeIDs = "token_type_ids"
        }
    }

    private struct CorpusRow: Decodable {
        var id: String
        var text: String
    }


    private static func fixture(_ name: String) -> URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("Fixtures/tokenizer").appendingPathComponent(name)
    }

    private static func referenceTokenizer() throws -> BertTokenizer {
        try BertTokenizer(checkpointDirectory: SharedData.model("v1"))
    }

    private static func corpusRows(_ file: String) throws -> [CorpusRow] {
        let url = SharedData.reviews(file)
        let text = try String(contentsOf: url, encoding: .utf8)
        let decoder = JSONDecoder()
        return try text.split(separator: "\n").map { try decoder.decode(CorpusRow.self, from: Data($0.utf8)) }
    }

    private static func tsvRows(_ name: String) throws -> [[String]] {
        try String(contentsOf: fixture(name), encoding: .utf8)
            .split(separator: "\n")
            .filter { !$0.hasPrefix("#") }
            .map { $0.split(separator: "\t", omittingEmptySubsequences: false).map(String.init) }
    }

    /// Same text as `unicode_block_text` in the fixture script.
    private static func unicodeBlockText(_ block: UInt32) -> String {
        var text = String.UnicodeScalarView()
        for value in block * 256..<block * 256 + 256 {
            guard let scalar = Unicode.Scalar(value) else { continue }  // surrogates
            if !text.isEmpty { text.append(" ") }
            text.append(contentsOf: ["a", scalar, "b", " ", scalar])
        }
        return String(text)
    }

    /// 64-bit FNV-1a of the comma-joined decimal ids, as in the fixture script.
    private static func fnv1a(_ ids: [Int32]) -> String {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        for byte in ids.map(String.init).joined(separator: ",").utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01B3
        }
        let hex = String(hash, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }

    private static func tokens(_ encoding: Encoding, _ tokenizer: BertTokenizer) -> [String] {
        encoding.inputIDs.map { tokenizer.vocabulary.token(of: $0) ?? "<\($0)>" }
    }

    private static func temporaryDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("tokenizer-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }
}
