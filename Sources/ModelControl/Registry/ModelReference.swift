/// A model version in the registry: `<root>/<name>/<version>/`.
///
/// Both parts are validated on creation and on decoding, so a reference read from a control message can
/// never point outside the registry root (no `/`, no `..`, no leading dot).
public struct ModelReference: Sendable, Hashable, Codable, CustomStringConvertible {
    public let name: String
    public let version: String

    /// - Throws: `RegistryError.invalidComponent` when either part is not a plain registry name.
    public init(name: String, version: String) throws(RegistryError) {
        try Self.validate(name, role: "name")
        try Self.validate(version, role: "version")
        self.name = name
        self.version = version
    }

    public var description: String { "\(name)/\(version)" }

    /// The longest name or version accepted.
    public static let maximumLength = 128

    /// Checks `value` against `^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$` without `..`.
    /// - Parameter role: what the value is ("name", "version", "deployment"), for the error message.
    public static func validate(_ value: String, role: String) throws(RegistryError) {
        func reject(_ reason: String) -> RegistryError {
            .invalidComponent(role: role, value: value, reason: reason)
        }
        guard let first = value.unicodeScalars.first else { throw reject("it is empty") }
        guard value.unicodeScalars.count <= maximumLength else {
            throw reject("it is longer than \(maximumLength) characters")
        }
        guard isAlphanumeric(first) else { throw reject("it must start with a letter or digit") }
        for scalar in value.unicodeScalars where !(isAlphanumeric(scalar) || scalar == "." || scalar == "_" || scalar == "-") {
            throw reject("'\(scalar)' is not allowed (letters, digits, '.', '_' and '-' only)")
        }
        guard !value.contains("..") else { throw reject("'..' is not allowed") }
    }

    private static func isAlphanumeric(_ scalar: Unicode.Scalar) -> Bool {
        ("a"..."z").contains(scalar) || ("A"..."Z").contains(scalar) || ("0"..."9").contains(scalar)
    }

    private enum CodingKeys: String, CodingKey { case name, version }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let name = try container.decode(String.self, forKey: .name)
        let version = try container.decode(String.self, forKey: .version)
        do {
            try self.init(name: name, version: version)
        } catch {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: error.description))
        }
    }
}
