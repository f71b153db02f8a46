import ArgumentParser
import Foundation
import MiniRBT
import StreamPipeline

struct TokenizeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokenize",
        abstract: "Turn JSON Lines events into BERT input ids, exactly as the model sees them.",
        discussion: """
            Reads one {"id", "text"[, "text_pair"]} object per line and writes \
            {"id", "input_ids", "token_type_ids", "truncated"} per line, with [CLS]/[SEP] added and \
            pairs truncated longest-first. A line that cannot be read gets {"line", "error"} and the run goes on.
            """)

    @Option(help: "The WordPiece vocabulary (vocab.txt), one token per line.")
    var vocab: String

    @Option(help: "Maximum sequence length in tokens, [CLS] and [SEP] included.")
    var maxLength: Int = 512

    @Flag(help: "Keep upper case and accents (for cased vocabularies).")
    var cased = false

    @OptionGroup var files: JSONLinesOptions

    func validate() throws {
        guard maxLength >= 2 else { throw ValidationError("--max-length must be at least 2 ([CLS] and [SEP]), got \(maxLength)") }
    }

    struct Line: Encodable {
        var id: String?
        var inputIDs: [Int32]
        var tokenTypeIDs: [Int32]
        var truncated: Bool

        enum CodingKeys: String, CodingKey {
            case id, truncated
            case inputIDs = "input_ids"
            case tokenTypeIDs = "token_type_ids"
        }
    }

    func run() throws {
        let vocabulary = try Vocabulary(contentsOf: URL(fileURLWithPath: vocab))
        let tokenizer = BertTokenizer(vocabulary: vocabulary, lowercase: !cased)
        let writer = try LineWriter(path: files.output)
        try files.forEachEvent { line, decoded in
            switch decoded {
            case .success(let event):
                let encoding = tokenizer.encode(event.text, pair: event.textPair, maxLength: maxLength)
                try writer.write(Line(id: event.id, inputIDs: encoding.inputIDs,
                                      tokenTypeIDs: encoding.tokenTypeIDs, truncated: encoding.truncated))
            case .failure(let error):
                try writer.write(LineError(line: line, error))
            }
        }
        writer.flush()
    }
}
