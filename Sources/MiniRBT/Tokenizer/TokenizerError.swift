import Foundation

/// Why a vocabulary or tokenizer configuration could not be loaded.
///
/// Every case names the file (or source) involved and what was expected, so an operator reading a
/// deployment failure knows which file of a model bundle to fix.
public enum TokenizerError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The vocabulary file does not exist.
    case vocabularyNotFound(path: String)
    /// The vocabulary file exists but could not be read (permissions, a directory, I/O error).
    case vocabularyUnreadable(path: String, reason: String)
    /// The vocabulary file is not valid UTF-8 text.
    case vocabularyNotUTF8(path: String)
    /// The vocabulary holds no tokens at all.
    case vocabularyEmpty(source: String)
    /// The vocabulary has more entries than 32-bit token ids can address.
    case vocabularyTooLarge(source: String, count: Int)
    /// A special token the encoder needs (such as `[CLS]`) is not in the vocabulary.
    case missingSpecialToken(source: String, role: String, token: String)
    /// `tokenizer_config.json` exists but is not a JSON object with the expected field types.
    case invalidConfiguration(path: String, reason: String)

    public var description: String {
        switch self {
        case .vocabularyNotFound(let path):
            return "vocabulary file not found at \(path); expected a WordPiece vocab.txt with one token per line"
        case .vocabularyUnreadable(let path, let reason):
            return "vocabulary file \(path) could not be read: \(reason)"
        case .vocabularyNotUTF8(let path):
            return "vocabulary file \(path) is not valid UTF-8; expected one UTF-8 token per line"
        case .vocabularyEmpty(let source):
            return "vocabulary \(source) is empty; expected one token per line (BERT Chinese has 21128)"
        case .vocabularyTooLarge(let source, let count):
            return "vocabulary \(source) has \(count) tokens; at most \(Int32.max) fit 32-bit token ids"
        case .missingSpecialToken(let source, let role, let token):
            return "vocabulary \(source) lacks the \(role) token \"\(token)\"; expected it as one line of the file"
        case .invalidConfiguration(let path, let reason):
            return "tokenizer configuration \(path) is invalid: \(reason)"
        }
    }
}
