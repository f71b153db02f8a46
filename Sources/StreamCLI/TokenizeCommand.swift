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

    @Option(help: "JSON Lines input file ('-' for standard input).")
    var input: String = "-"

    @Option(help: "JSON Lines output file ('-' for standard output).")
    var output: String = "-"

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
        let writer = try LineWriter(path: output)
        let format = EventFormat(kind: .json)
        var number = 0
        for line in try LineReader(path: input) {
            number += 1
            if line.allSatisfy({ $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") }) { continue }
            switch format.decode(line) {
            case .success(let event):
                let encoding = tokenizer.encode(event.text, pair: event.textPair, maxLength: maxLength)
                try writer.write(Line(id: event.id, inputIDs: encoding.inputIDs,
                                      tokenTypeIDs: encoding.tokenTypeIDs, truncated: encoding.truncated))
            case .failure(let error):
                try writer.write(LineError(line: number, error: .init(code: error.code.rawValue, message: error.message)))
            }
        }
        writer.flush()
    }
}
