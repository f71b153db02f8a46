import Foundation

/// A WordPiece vocabulary: token strings and their ids (the line number in `vocab.txt`, from 0).
///
/// Tokens are compared by their exact Unicode scalars, as Hugging Face does (Rust byte equality),
/// not by Swift's canonical equivalence: a precomposed Hangul syllable and its decomposed jamo are
/// different tokens here, exactly as in the reference tokenizer.
public struct Vocabulary: Sendable {
    /// Id → token, in file order.
    public let tokens: [String]
    private let ids: [ExactString: Int32]

    /// The special tokens' spellings this vocabulary was resolved against.
    public let specialTokens: SpecialTokens
    public let unknownID: Int32
    public let classifierID: Int32
    public let separatorID: Int32
    public let paddingID: Int32
    public let maskID: Int32

    /// Builds a vocabulary from tokens in id order.
    ///
    /// - Parameter source: names the origin in error messages (a path, or "in-memory vocabulary").
    /// - Throws: `TokenizerError.vocabularyEmpty`, `.vocabularyTooLarge`, `.missingSpecialToken`.
    public init(tokens: [String], specialTokens: SpecialTokens = .bert,
                source: String = "in-memory vocabulary") throws {
        guard !tokens.isEmpty else { throw TokenizerError.vocabularyEmpty(source: source) }
        guard tokens.count <= Int(Int32.max) else {
            throw TokenizerError.vocabularyTooLarge(source: source, count: tokens.count)
        }
        var ids: [ExactString: Int32] = [:]
        ids.reserveCapacity(tokens.count)
        for (index, token) in tokens.enumerated() {
            // A repeated line maps to its last id, as in the Hugging Face loaders.
            ids[ExactString(token)] = Int32(index)
        }
        func resolve(_ role: String, _ token: String) throws -> Int32 {
            guard let id = ids[ExactString(token)] else {
                throw TokenizerError.missingSpecialToken(source: source, role: role, token: token)
            }
            return id
        }
        self.tokens = tokens
        self.ids = ids
        self.specialTokens = specialTokens
        unknownID = try resolve("unknown", specialTokens.unknown)
        classifierID = try resolve("classifier", specialTokens.classifier)
        separatorID = try resolve("separator", specialTokens.separator)
        paddingID = try resolve("padding", specialTokens.padding)
        maskID = try resolve("mask", specialTokens.mask)
    }

    /// Reads a `vocab.txt`: one token per line, the id being the zero-based line number.
    ///
    /// A final newline is optional; `\r\n` line ends are accepted.
    /// - Throws: `TokenizerError` naming the file when it is missing, unreadable, not UTF-8, empty,
    ///   or lacks a special token.
    public init(contentsOf url: URL, specialTokens: SpecialTokens = .bert) throws {
        let path = url.path
        let data: Data
        do {
            data = try Data(contentsOf: url)
        } catch {
            if !FileManager.default.fileExists(atPath: path) {
                throw TokenizerError.vocabularyNotFound(path: path)
            }
            throw TokenizerError.vocabularyUnreadable(path: path, reason: "\(error.localizedDescription)")
        }
        try self.init(data: data, source: path, specialTokens: specialTokens)
    }

    /// Parses the bytes of a `vocab.txt` already read (and, in a registry, verified); `source` names it in errors.
    public init(data: Data, source: String, specialTokens: SpecialTokens = .bert) throws {
        guard let text = String(data: data, encoding: .utf8) else {
            throw TokenizerError.vocabularyNotUTF8(path: source)
        }
        try self.init(tokens: Self.lines(of: text), specialTokens: specialTokens, source: source)
    }

    /// Number of tokens (the embedding table's row count).
    public var count: Int { tokens.count }

    /// The id of `token`, compared scalar by scalar; nil when absent.
    public func id(of token: String) -> Int32? { ids[ExactString(token)] }

    /// The token with id `id`; nil when out of range.
    public func token(of id: Int32) -> String? {
        guard id >= 0, Int(id) < tokens.count else { return nil }
        return tokens[Int(id)]
    }

    /// Splits on `\n` only (a token may itself contain other line separators such as U+2028),
    /// dropping one trailing `\r` per line and an empty last line after a final newline.
    private static func lines(of text: String) -> [String] {
        // Scalars, not Characters: "\r\n" is one Character and would not split on "\n".
        var lines = text.unicodeScalars.split(separator: "\n", omittingEmptySubsequences: false).map { line in
            String(Substring(line.last == "\r" ? line.dropLast() : line))
        }
        if lines.last?.isEmpty == true { lines.removeLast() }
        return lines
    }
}

/// A string key whose equality and hash use the exact scalars, not canonical equivalence.
struct ExactString: Hashable, Sendable {
    let value: String

    init(_ value: String) { self.value = value }

    static func == (lhs: ExactString, rhs: ExactString) -> Bool {
        lhs.value.unicodeScalars.elementsEqual(rhs.value.unicodeScalars)
    }

    func hash(into hasher: inout Hasher) {
        for scalar in value.unicodeScalars { hasher.combine(scalar.value) }
    }
}
