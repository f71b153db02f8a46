/// Why a model directory could not become a `BertModel`.
public enum CheckpointError: Error, Equatable, CustomStringConvertible {
    /// A file the checkpoint needs is not there (`config.json`, or no weight file at all).
    case missingFile(path: String, expected: String)
    /// `config.json` is not valid JSON or a field has the wrong type or an impossible value.
    case invalidConfig(field: String, reason: String)
    /// A config value this runtime does not implement (it would compute something else).
    case unsupportedConfig(field: String, value: String, supported: [String])
    /// Every tensor problem found, so one run shows the whole mismatch rather than the first line of it.
    case tensorProblems([TensorProblem])

    public var description: String {
        switch self {
        case let .missingFile(path, expected):
            return "missing file \(path) (expected \(expected))"
        case let .invalidConfig(field, reason):
            return "invalid config.json field '\(field)': \(reason)"
        case let .unsupportedConfig(field, value, supported):
            return "unsupported config.json \(field) '\(value)' (supported: \(supported.joined(separator: ", ")))"
        case let .tensorProblems(problems):
            let lines = problems.map { "  - \($0)" }.joined(separator: "\n")
            return "checkpoint does not match its config (\(problems.count) problem\(problems.count == 1 ? "" : "s")):\n\(lines)"
        }
    }
}

/// One tensor that the config calls for but the weight file does not provide as described.
public enum TensorProblem: Equatable, Sendable, CustomStringConvertible {
    case missing(name: String, expectedShape: [Int])
    case shapeMismatch(name: String, expected: [Int], found: [Int])

    public var description: String {
        switch self {
        case let .missing(name, expectedShape):
            return "\(name): missing (expected shape \(expectedShape))"
        case let .shapeMismatch(name, expected, found):
            return "\(name): expected shape \(expected), found \(found)"
        }
    }

    public var name: String {
        switch self {
        case let .missing(name, _), let .shapeMismatch(name, _, _): return name
        }
    }
}
