import Foundation

/// A text event as the service understands it, decoded from a record's value.
public struct TextEvent: Sendable, Equatable {
    /// The event's own id, when it carried one; the service falls back to `topic-partition-offset`.
    public var id: String?
    public var text: String
    public var textPair: String?

    public init(id: String? = nil, text: String, textPair: String? = nil) {
        self.id = id
        self.text = text
        self.textPair = textPair
    }
}

/// Why a record could not become a ``TextEvent``. The code is stable and machine-readable; it is what the
/// dead-letter record carries in its `error.code` field.
public struct EventDecodingError: Error, Sendable, Equatable, CustomStringConvertible {
    /// One of the decoding codes of ``DeadLetterCode`` (`invalid_utf8` … `empty_record`).
    public typealias Code = DeadLetterCode

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code.rawValue): \(message)" }
}

/// How record values are read.
public struct EventFormat: Sendable, Equatable {
    public enum Kind: String, Sendable, CaseIterable {
        /// JSON objects when the value starts with `{`, plain UTF-8 text otherwise.
        case auto
        /// Every value must be a JSON object.
        case json
        /// Every value is the text itself.
        case text
    }

    public var kind: Kind
    /// Field holding the event id (string or number). Default `id`.
    public var idField: String
    /// Field holding the text. Default `text`.
    public var textField: String
    /// Field holding the optional second text of a sentence pair. Default `text_pair`.
    public var textPairField: String

    public init(kind: Kind = .auto, idField: String = "id", textField: String = "text",
                textPairField: String = "text_pair") {
        self.kind = kind
        self.idField = idField
        self.textField = textField
        self.textPairField = textPairField
    }

    /// Decodes one record value. Never throws anything but ``EventDecodingError``.
    public func decode(_ bytes: some Collection<UInt8>) -> Result<TextEvent, EventDecodingError> {
        guard !bytes.isEmpty else {
            return .failure(EventDecodingError(.emptyRecord, "the record has no value"))
        }
        guard let string = String(validating: bytes, as: UTF8.self) else {
            return .failure(EventDecodingError(.invalidUTF8, "the value is not valid UTF-8 (\(bytes.count) bytes)"))
        }
        switch kind {
        case .text:
            return plainText(string)
        case .json:
            return jsonObject(string)
        case .auto:
            let firstNonSpace = string.unicodeScalars.first { !$0.properties.isWhitespace }
            return firstNonSpace == "{" ? jsonObject(string) : plainText(string)
        }
    }

    private func plainText(_ string: String) -> Result<TextEvent, EventDecodingError> {
        guard string.unicodeScalars.contains(where: { !$0.properties.isWhitespace }) else {
            return .failure(EventDecodingError(.emptyText, "the text is empty or only white space"))
        }
        return .success(TextEvent(text: string))
    }

    private func jsonObject(_ string: String) -> Result<TextEvent, EventDecodingError> {
        let parsed: JSONValue
        do {
            parsed = try JSONDecoder().decode(JSONValue.self, from: Data(string.utf8))
        } catch {
            return .failure(EventDecodingError(.malformedJSON, "the value is not valid JSON: \(Self.reason(error))"))
        }
        guard case .object(let object) = parsed else {
            return .failure(EventDecodingError(.notAnObject, "expected a JSON object, got \(parsed.kindName)"))
        }
        guard let rawText = object[textField] else {
            return .failure(EventDecodingError(.missingText, "the object has no \"\(textField)\" field"))
        }
        guard rawText != .null else {
            return .failure(EventDecodingError(.missingText, "\"\(textField)\" is null, expected a string"))
        }
        guard case .string(let text) = rawText else {
            return .failure(EventDecodingError(
                .textNotString, "\"\(textField)\" must be a string, got \(rawText.kindName)"))
        }
        guard text.unicodeScalars.contains(where: { !$0.properties.isWhitespace }) else {
            return .failure(EventDecodingError(.emptyText, "\"\(textField)\" is empty or only white space"))
        }
        var pair: String?
        switch object[textPairField] {
        case nil, .null?:
            break
        case .string(let value)?:
            pair = value
        case let other?:
            return .failure(EventDecodingError(
                .textPairNotString, "\"\(textPairField)\" must be a string, got \(other.kindName)"))
        }
        return .success(TextEvent(id: object[idField]?.identifier, text: text, textPair: pair))
    }

    private static func reason(_ error: Error) -> String {
        guard let decodingError = error as? DecodingError else { return "\(error)" }
        switch decodingError {
        case .dataCorrupted(let context), .keyNotFound(_, let context), .typeMismatch(_, let context),
             .valueNotFound(_, let context):
            let underlying = (context.underlyingError as NSError?)?.userInfo[NSDebugDescriptionErrorKey] as? String
            return underlying ?? context.debugDescription
        @unknown default:
            return "\(decodingError)"
        }
    }
}

/// Just enough of JSON to tell a string from a number, a boolean or null: event fields are checked by type.
enum JSONValue: Decodable, Equatable {
    case null
    case bool(Bool)
    case number(Double, literal: String)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    init(from decoder: Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Decimal.self) {
            self = .number(NSDecimalNumber(decimal: value).doubleValue, literal: "\(value)")
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([JSONValue].self) {
            self = .array(value)
        } else {
            self = .object(try container.decode([String: JSONValue].self))
        }
    }

    /// Ids may be strings or numbers; anything else is ignored and the record's coordinates stand in.
    var identifier: String? {
        switch self {
        case .string(let value): return value
        case .number(_, let literal): return literal
        default: return nil
        }
    }

    var kindName: String {
        switch self {
        case .null: return "null"
        case .bool: return "a boolean"
        case .number: return "a number"
        case .string: return "a string"
        case .array: return "an array"
        case .object: return "an object"
        }
    }
}
