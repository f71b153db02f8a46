// fuzz-tokenizer: BertTokenizer (MiniRBT/Tokenizer): normalisation, pre-tokenisation, WordPiece, special
// tokens, pair truncation. Input: one option byte (lower-casing, accents, CJK splitting, pair or not), one
// byte of maximum length, then the text as UTF-8 (invalid sequences repaired, as a String would be); a NUL
// byte separates the pair's second text.
//
// The vocabulary is $MINIRBT_FUZZ_VOCAB, else /work/shared/data/vocab.txt (MiniRBT's 21128 tokens), else a
// small built-in one.
import Foundation
import FuzzSupport
import MiniRBT

let vocabulary: Vocabulary = {
    let path = ProcessInfo.processInfo.environment["MINIRBT_FUZZ_VOCAB"] ?? "/work/shared/data/vocab.txt"
    if FileManager.default.fileExists(atPath: path) {
        do { return try Vocabulary(contentsOf: URL(fileURLWithPath: path)) } catch { fatalError("\(path): \(error)") }
    }
    let tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "un", "##aff", "##able", "a", "##b", "##c",
                  "中", "国", "人", "！", ",", ".", "##s", "é", "e", "ß", "##😎", "😎", "ﬁ", "1", "##2"]
    return try! Vocabulary(tokens: tokens)
}()

/// Every option combination, built once (a tokenizer is immutable and cheap to share).
let tokenizers: [BertTokenizer] = (0..<12).map { options in
    let stripAccents: Bool? = [nil, true, false][options % 3]
    return BertTokenizer(vocabulary: vocabulary, lowercase: options & 4 == 0, stripAccents: stripAccents,
                         tokenizeChineseChars: options & 8 == 0)
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    var input = FuzzInput(data, size)
    let options = Int(input.byte())
    let maxLength = Int(input.byte()) - 8  // includes lengths below the special tokens' count
    let tokenizer = tokenizers[options % tokenizers.count]
    let parts = input.bytes.split(separator: 0, maxSplits: 1, omittingEmptySubsequences: false)
    let text = String(decoding: parts.first ?? [], as: UTF8.self)
    let pair = options & 0x80 != 0 && parts.count > 1 ? String(decoding: parts[1], as: UTF8.self) : nil

    let ids = tokenizer.wordPieceIDs(text)
    precondition(ids.allSatisfy { $0 >= 0 && Int($0) < vocabulary.count }, "word piece id out of the vocabulary")
    precondition(tokenizer.tokenize(text).count == ids.count)

    let encoding = tokenizer.encode(text, pair: pair, maxLength: maxLength)
    let framing = pair?.isEmpty == false ? 3 : 2
    precondition(encoding.inputIDs.count == encoding.tokenTypeIDs.count, "ids and token types differ in length")
    precondition(encoding.count <= max(maxLength, framing), "encoding of \(encoding.count) exceeds \(maxLength)")
    precondition(encoding.inputIDs.first == vocabulary.classifierID && encoding.inputIDs.last == vocabulary.separatorID)
    precondition(encoding.inputIDs.allSatisfy { $0 >= 0 && Int($0) < vocabulary.count })
    return 0
}

runFuzzer(fuzz)
