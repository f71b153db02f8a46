/// Why a registry operation (naming, publishing, listing) failed.
public enum RegistryError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A name, version or deployment that is not a plain registry path component.
    case invalidComponent(role: String, value: String, reason: String)
    /// `publish` never replaces a version: versions are immutable once published.
    case versionExists(ModelReference, path: String)
    /// The registry has no directory for this version.
    case versionNotFound(ModelReference, path: String)
    /// The directory to publish from is not a usable checkpoint.
    case invalidSource(path: String, reason: String)
    /// A golden-examples file line that is not `{"text": ...}` JSON.
    case invalidGoldenInput(path: String, line: Int, reason: String)
    /// A `--baseline` sample that cannot give a baseline (no text in it).
    case invalidBaseline(path: String, reason: String)
    /// A file-system operation failed.
    case io(operation: String, path: String, reason: String)

    public var description: String {
        switch self {
        case let .invalidComponent(role, value, reason):
            return "invalid model \(role) \"\(value)\": \(reason)"
        case let .versionExists(reference, path):
            return "\(reference) is already published at \(path); versions are immutable, publish a new version instead"
        case let .versionNotFound(reference, path):
            return "\(reference) is not in the registry (expected a directory at \(path))"
        case let .invalidSource(path, reason):
            return "cannot publish \(path): \(reason)"
        case let .invalidGoldenInput(path, line, reason):
            return "\(path):\(line): expected a JSON object with a \"text\" string: \(reason)"
        case let .invalidBaseline(path, reason):
            return "cannot build a drift baseline from \(path): \(reason)"
        case let .io(operation, path, reason):
            return "\(operation) \(path) failed: \(reason)"
        }
    }
}

/// Why a published bundle must not be served. Every case names the file or check that failed, what was
/// expected and what was found, so `deploy --wait` can show the operator the reason as is.
public enum BundleError: Error, Sendable, Equatable, CustomStringConvertible {
    case manifestMissing(path: String)
    case manifestInvalid(path: String, reason: String)
    /// The manifest describes another model than the directory it sits in.
    case manifestMismatch(expected: ModelReference, found: ModelReference)
    /// The manifest's bytes are not the ones the signed control message names (sha256): replaced or edited
    /// after the operator signed the rollout.
    case manifestDigestMismatch(expected: String, found: String)
    /// A manifest file entry that is not a plain file name in the bundle directory.
    case invalidFileEntry(path: String)
    case fileMissing(file: String)
    /// A file in the bundle the manifest does not list: the runtime might read it unverified.
    case unlistedFile(file: String)
    /// A bundle file that is not a regular file: a symbolic link (which could lead out of the bundle or to
    /// a device), a device, a FIFO or a directory. `kind` says which.
    case notRegularFile(file: String, kind: String)
    /// The file changed (size, modification time or inode) while it was being read for verification.
    case fileChanged(file: String)
    case sizeMismatch(file: String, expected: Int64, found: Int64)
    case checksumMismatch(file: String, expected: String, found: String)
    /// The checkpoint does not load: bad config, wrong tensor shapes, broken vocabulary.
    case loadFailed(reason: String)
    case vocabularySizeMismatch(vocabulary: Int, config: Int)
    case noGoldenExamples
    case goldenMismatch(index: Int, text: String, expected: String, found: String)

    public var description: String {
        switch self {
        case let .manifestMissing(path):
            return "no manifest at \(path) (was the version published with minirbt-admin publish?)"
        case let .manifestInvalid(path, reason):
            return "manifest \(path) is not valid: \(reason)"
        case let .manifestDigestMismatch(expected, found):
            return "manifest.json has sha256 \(found), the signed control message names \(expected) (replaced after signing?)"
        case let .manifestMismatch(expected, found):
            return "manifest describes \(found), expected \(expected)"
        case let .invalidFileEntry(path):
            return "manifest lists \"\(path)\", expected a plain file name inside the bundle"
        case let .fileMissing(file):
            return "\(file) is listed in the manifest but missing"
        case let .unlistedFile(file):
            return "\(file) is in the bundle but not in the manifest"
        case let .notRegularFile(file, kind):
            return "\(file) is \(kind); a bundle holds regular files only"
        case let .fileChanged(file):
            return "\(file) changed while it was being verified; not loading a file that is being modified"
        case let .sizeMismatch(file, expected, found):
            return "\(file): expected \(expected) bytes, found \(found) (truncated or replaced?)"
        case let .checksumMismatch(file, expected, found):
            return "\(file): sha256 mismatch, expected \(expected), found \(found)"
        case let .loadFailed(reason):
            return "checkpoint does not load: \(reason)"
        case let .vocabularySizeMismatch(vocabulary, config):
            return "vocab.txt has \(vocabulary) tokens, config.json vocab_size is \(config)"
        case .noGoldenExamples:
            return "the manifest has no golden examples to self-test with"
        case let .goldenMismatch(index, text, expected, found):
            return "golden example \(index) (\"\(text.prefix(40))\") expected \(expected), got \(found)"
        }
    }
}
