import Crypto
import Foundation
import MiniRBT

/// `manifest.json` of a published version: what the bundle must contain, byte for byte, and what the model
/// must answer on its golden examples.
public struct ModelManifest: Codable, Sendable, Equatable {
    /// The manifest's file name inside `<root>/<name>/<version>/`.
    public static let fileName = "manifest.json"
    /// Bumped when the layout changes incompatibly.
    public static let currentFormat = 1

    public var format: Int
    public var name: String
    public var version: String
    public var createdAt: Date
    /// Every file of the bundle except the manifest itself, sorted by path.
    public var files: [FileEntry]
    public var config: ConfigSummary
    public var golden: [GoldenExample]
    /// What the model answered on a representative sample (`publish --baseline`), the reference of live
    /// drift; nil when published without one (drift is off for this version).
    public var baseline: DriftBaseline?

    public init(reference: ModelReference, createdAt: Date, files: [FileEntry], config: ConfigSummary,
                golden: [GoldenExample], baseline: DriftBaseline? = nil) {
        self.format = Self.currentFormat
        self.name = reference.name
        self.version = reference.version
        self.createdAt = createdAt
        self.files = files.sorted { $0.path < $1.path }
        self.config = config
        self.golden = golden
        self.baseline = baseline
    }

    /// The validated name and version.
    public var reference: ModelReference {
        get throws(RegistryError) { try ModelReference(name: name, version: version) }
    }

    /// One file of the bundle.
    public struct FileEntry: Codable, Sendable, Equatable {
        /// A plain file name, relative to the bundle directory.
        public var path: String
        public var size: Int64
        /// Lower-case hex SHA-256 of the content.
        public var sha256: String

        public init(path: String, size: Int64, sha256: String) {
            self.path = path
            self.size = size
            self.sha256 = sha256
        }

        /// The size and checksum of the file at `url`, recorded under `path`.
        public init(describing url: URL, as path: String) throws(RegistryError) {
            let digest = try FileDigest.sha256(of: url)
            self.init(path: path, size: digest.size, sha256: digest.hex)
        }
    }

    /// The shape of the model, for `list` and for a quick sanity check before loading.
    public struct ConfigSummary: Codable, Sendable, Equatable {
        public var task: String
        public var layers: Int
        public var hidden: Int
        public var heads: Int
        public var intermediate: Int
        public var vocabSize: Int
        public var labels: [String]

        public init(_ config: ModelConfig) {
            task = config.task.rawValue
            layers = config.layerCount
            hidden = config.hiddenSize
            heads = config.headCount
            intermediate = config.intermediateSize
            vocabSize = config.vocabSize
            labels = config.labels
        }

        enum CodingKeys: String, CodingKey {
            case task, layers, hidden, heads, intermediate, labels
            case vocabSize = "vocab_size"
        }
    }

    enum CodingKeys: String, CodingKey {
        case format, name, version, files, config, golden, baseline
        case createdAt = "created_at"
    }

    /// Reads and decodes `<directory>/manifest.json`.
    public static func read(from directory: URL) throws(BundleError) -> ModelManifest {
        try readWithBytes(from: directory).manifest
    }

    /// Hex SHA-256 of manifest bytes: what a control message's `manifest_digest` names.
    public static func digest(of bytes: Data) -> String {
        FileDigest.hex(SHA256.hash(data: bytes))
    }

    /// The digest of the manifest in `directory`, as `deploy` signs it.
    public static func digest(in directory: URL) throws(BundleError) -> String {
        digest(of: try readWithBytes(from: directory).bytes)
    }

    /// The manifest and the exact bytes it was decoded from (what a signed control message's manifest
    /// digest covers). Like every bundle file it must be a regular file, not a link.
    public static func readWithBytes(from directory: URL) throws(BundleError) -> (manifest: ModelManifest, bytes: Data) {
        let url = directory.appendingPathComponent(fileName)
        let bytes: Data
        do throws(FileDigest.Failure) {
            let file = try FileDigest.OpenFile(path: url.path, followLinks: false)
            defer { file.close() }
            bytes = try file.readAll()
        } catch {
            switch error {
            case .missing: throw .manifestMissing(path: url.path)
            case .notRegular(let kind): throw .notRegularFile(file: fileName, kind: kind)
            case .changedWhileReading: throw .fileChanged(file: fileName)
            case let .io(operation, reason): throw .manifestInvalid(path: url.path, reason: "\(operation) failed: \(reason)")
            }
        }
        do {
            return (try JSONDecoder.manifest.decode(ModelManifest.self, from: bytes), bytes)
        } catch {
            throw .manifestInvalid(path: url.path, reason: "\(error)")
        }
    }

    /// The manifest as written to disk: pretty, with sorted keys so it diffs cleanly.
    public func encoded() throws -> Data {
        try JSONEncoder.manifest.encode(self)
    }
}

/// One self-test input and the answer the publisher's runtime gave for it.
public struct GoldenExample: Codable, Sendable, Equatable {
    public var text: String
    /// The predicted label (classification), or `nil` for models without labels.
    public var label: String?
    /// The raw outputs compared within ``GoldenExample/tolerance``: classifier logits, or for other tasks
    /// the pooled embedding / the first token's logits.
    public var logits: [Float]

    /// Largest absolute difference accepted per output.
    public static let tolerance: Float = 1e-3

    public init(text: String, label: String?, logits: [Float]) {
        self.text = text
        self.label = label
        self.logits = logits
    }
}

extension JSONEncoder {
    static let manifest: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .iso8601
        return encoder
    }()
}

extension JSONDecoder {
    static let manifest: JSONDecoder = {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return decoder
    }()
}
