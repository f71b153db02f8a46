import Foundation

extension BertTokenizer {
    /// Loads the tokenizer of a Hugging Face checkpoint directory: `vocab.txt`, plus
    /// `tokenizer_config.json` when present (`do_lower_case`, `strip_accents`,
    /// `tokenize_chinese_chars` and the `*_token` spellings; absent keys keep BERT's defaults).
    ///
    /// - Throws: `TokenizerError` naming the file that is missing, unreadable or malformed.
    public init(checkpointDirectory directory: URL) throws {
        let configuration = try TokenizerConfiguration(
            contentsOf: directory.appendingPathComponent("tokenizer_config.json"))
        let vocabulary = try Vocabulary(contentsOf: directory.appendingPathComponent("vocab.txt"),
                                        specialTokens: configuration.specialTokens)
        self.init(vocabulary: vocabulary, lowercase: configuration.lowercase,
                  stripAccents: configuration.stripAccents,
                  tokenizeChineseChars: configuration.tokenizeChineseChars)
    }

    /// The same from the bytes of `vocab.txt` and `tokenizer_config.json` (nil when absent) already read,
    /// so a caller that verified those bytes tokenizes with exactly them. `directory` names them in errors.
    public init(vocabularyData: Data, configurationData: Data?, directory: URL) throws {
        let configurationPath = directory.appendingPathComponent("tokenizer_config.json").path
        let configuration = try configurationData.map { try TokenizerConfiguration(data: $0, path: configurationPath) }
            ?? TokenizerConfiguration()
        let vocabulary = try Vocabulary(data: vocabularyData, source: directory.appendingPathComponent("vocab.txt").path,
                                        specialTokens: configuration.specialTokens)
        self.init(vocabulary: vocabulary, lowercase: configuration.lowercase,
                  stripAccents: configuration.stripAccents,
                  tokenizeChineseChars: configuration.tokenizeChineseChars)
    }
}

/// The options of `tokenizer_config.json` that change BERT tokenization; other keys are ignored.
struct TokenizerConfiguration: Equatable, Decodable {
    var lowercase = true
    var stripAccents: Bool? = nil
    var tokenizeChineseChars = true
    var specialTokens = SpecialTokens.bert

    init() {}

    /// Reads the file at `url`; a missing file yields the defaults.
    init(contentsOf url: URL) throws {
        let path = url.path
        guard FileManager.default.fileExists(atPath: path) else {
            self.init()
            return
        }
        let data: Data
        do {
            data = try Data(contentsOf: url)
        } catch {
            throw TokenizerError.invalidConfiguration(path: path, reason: "unreadable: \(error.localizedDescription)")
        }
        try self.init(data: data, path: path)
    }

    init(data: Data, path: String) throws {
        do {
            self = try JSONDecoder().decode(TokenizerConfiguration.self, from: data)
        } catch let error as DecodingError {
            throw TokenizerError.invalidConfiguration(path: path, reason: Self.explain(error))
        }
    }

    private enum CodingKeys: String, CodingKey {
        case doLowerCase = "do_lower_case", stripAccents = "strip_accents"
        case tokenizeChineseChars = "tokenize_chinese_chars"
        case unknown = "unk_token", classifier = "cls_token", separator = "sep_token"
        case padding = "pad_token", mask = "mask_token"
    }

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        lowercase = try container.decodeIfPresent(Bool.self, forKey: .doLowerCase) ?? true
        stripAccents = try container.decodeIfPresent(Bool.self, forKey: .stripAccents)
        tokenizeChineseChars = try container.decodeIfPresent(Bool.self, forKey: .tokenizeChineseChars) ?? true
        func spelling(_ key: CodingKeys, default fallback: String) throws -> String {
            try container.decodeIfPresent(TokenSpelling.self, forKey: key)?.content ?? fallback
        }
        let bert = SpecialTokens.bert
        specialTokens = SpecialTokens(
            unknown: try spelling(.unknown, default: bert.unknown),
            classifier: try spelling(.classifier, default: bert.classifier),
            separator: try spelling(.separator, default: bert.separator),
            padding: try spelling(.padding, default: bert.padding),
            mask: try spelling(.mask, default: bert.mask))
    }

    private static func explain(_ error: DecodingError) -> String {
        func at(_ context: DecodingError.Context) -> String {
            let path = context.codingPath.map(\.stringValue).joined(separator: ".")
            return (path.isEmpty ? "" : "at \"\(path)\": ") + context.debugDescription
        }
        switch error {
        case .typeMismatch(let type, let context):
            return "expected \(type) " + at(context)
        case .valueNotFound(let type, let context):
            return "expected \(type) " + at(context)
        case .keyNotFound(let key, let context):
            return "missing \"\(key.stringValue)\" " + at(context)
        case .dataCorrupted(let context):
            return "expected a JSON object: " + at(context)
        @unknown default:
            return "\(error)"
        }
    }
}

/// A special token's spelling: a string, or (in older configurations) an AddedToken object
/// `{"content": "[CLS]", ...}`.
private struct TokenSpelling: Decodable {
    let content: String

    private enum CodingKeys: String, CodingKey { case content }

    init(from decoder: any Decoder) throws {
        if let string = try? decoder.singleValueContainer().decode(String.self) {
            content = string
        } else {
            content = try decoder.container(keyedBy: CodingKeys.self).decode(String.self, forKey: .content)
        }
        guard !content.isEmpty else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath,
                                                    debugDescription: "a special token must not be empty"))
        }
    }
}
