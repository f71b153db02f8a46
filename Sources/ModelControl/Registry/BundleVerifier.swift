import Crypto
import Foundation
import MiniRBT

/// A bundle that passed every check: files, shapes, vocabulary and golden examples. Only a verified bundle
/// may become a serving model.
public struct VerifiedBundle: Sendable {
    public let manifest: ModelManifest
    public let reference: ModelReference
    public let model: BertModel
    public let tokenizer: BertTokenizer
    public let directory: URL
}

/// Checks a bundle directory against its manifest before anything serves from it.
///
/// Order matters: sizes and checksums first (cheap, and they catch half-copied or altered files before the
/// loader parses them), then loading (config, tensor shapes, vocabulary), then the golden examples (the
/// numbers themselves). Blocking CPU and disk work: call it off the cooperative thread pool.
public enum BundleVerifier {
    /// - Parameter expected: the version the caller asked for; the manifest must describe exactly it.
    /// - Parameter manifestDigest: hex SHA-256 the manifest's bytes must have (from a signed control
    ///   message); checked before any of the manifest's file checksums is trusted.
    public static func verify(directory: URL, expecting expected: ModelReference?,
                              manifestDigest: String? = nil) throws(BundleError) -> VerifiedBundle {
        let (manifest, manifestBytes) = try ModelManifest.readWithBytes(from: directory)
        if let manifestDigest {
            let found = ModelManifest.digest(of: manifestBytes)
            guard found == manifestDigest.lowercased() else {
                throw .manifestDigestMismatch(expected: manifestDigest, found: found)
            }
        }
        let reference: ModelReference
        do {
            reference = try manifest.reference
        } catch {
            throw .manifestInvalid(path: directory.appendingPathComponent(ModelManifest.fileName).path,
                                   reason: error.description)
        }
        if let expected, expected != reference {
            throw .manifestMismatch(expected: expected, found: reference)
        }
        // Each file is read once into memory, hashed as read, and the model is built from those very
        // bytes: nothing is re-opened by path after its checksum was checked.
        let contents = try checkFiles(manifest.files, in: directory)
        let model: BertModel
        let tokenizer: BertTokenizer
        do {
            guard let config = contents["config.json"] else { throw BundleError.fileMissing(file: "config.json") }
            guard let weightName = BertModel.weightFileNames.first(where: { contents[$0] != nil }),
                  let weights = contents[weightName] else {
                throw BundleError.fileMissing(file: BertModel.weightFileNames.joined(separator: " or "))
            }
            guard let vocabulary = contents["vocab.txt"] else { throw BundleError.fileMissing(file: "vocab.txt") }
            model = try BertModel(config: ModelConfig(json: config), tensors: WeightFile.decode(weights, fileName: weightName))
            tokenizer = try BertTokenizer(vocabularyData: vocabulary, configurationData: contents["tokenizer_config.json"],
                                          directory: directory)
        } catch let error as BundleError {
            throw error
        } catch {
            throw .loadFailed(reason: "\(error)")
        }
        try checkServable(model: model, tokenizer: tokenizer)
        try GoldenRunner.check(manifest.golden, model: model, tokenizer: tokenizer)
        return VerifiedBundle(manifest: manifest, reference: reference, model: model, tokenizer: tokenizer,
                              directory: directory)
    }

    /// What must hold between a loaded model and its tokenizer before it may serve; `publish` runs the same
    /// check on its source as replicas run on the bundle. The config itself (sizes, heads dividing the hidden
    /// size, unique labels, label count against the classifier) was validated by loading.
    public static func checkServable(model: BertModel, tokenizer: BertTokenizer) throws(BundleError) {
        // The embedding table was checked against config.json; a vocabulary of another size would map
        // tokens to the wrong rows (or out of the table) without any shape error.
        guard tokenizer.vocabulary.count == model.config.vocabSize else {
            throw .vocabularySizeMismatch(vocabulary: tokenizer.vocabulary.count, config: model.config.vocabSize)
        }
    }

    /// Every listed file is a regular file with its size and checksum, and nothing unlisted sits beside
    /// them. Returns the bytes that were checked, by file name: callers load from these, never from the
    /// path again (a file replaced or rewritten after its check cannot slip in).
    @discardableResult
    static func checkFiles(_ files: [ModelManifest.FileEntry], in directory: URL) throws(BundleError) -> [String: Data] {
        let fileManager = FileManager.default
        var listed = Set<String>()
        var contents: [String: Data] = [:]
        for entry in files {
            guard isPlainFileName(entry.path), !listed.contains(entry.path) else { throw .invalidFileEntry(path: entry.path) }
            listed.insert(entry.path)
            let url = directory.appendingPathComponent(entry.path)
            do {
                // Not following links: a link could lead out of the bundle, or to /dev/zero (endless).
                let file = try FileDigest.OpenFile(path: url.path, followLinks: false)
                defer { file.close() }
                // Checked before reading, so a huge replacement is not read in full to find out.
                if file.size != entry.size {
                    throw BundleError.sizeMismatch(file: entry.path, expected: entry.size, found: file.size)
                }
                var hasher = SHA256()
                let data = try file.readAll { hasher.update(bufferPointer: $0) }
                let hex = FileDigest.hex(hasher.finalize())
                if hex != entry.sha256.lowercased() {
                    throw BundleError.checksumMismatch(file: entry.path, expected: entry.sha256, found: hex)
                }
                contents[entry.path] = data
            } catch let error as BundleError {
                throw error
            } catch let failure as FileDigest.Failure {
                switch failure {
                case .missing: throw .fileMissing(file: entry.path)
                case .notRegular(let kind): throw .notRegularFile(file: entry.path, kind: kind)
                case .changedWhileReading: throw .fileChanged(file: entry.path)
                case let .io(operation, reason): throw .loadFailed(reason: "\(operation) \(url.path) failed: \(reason)")
                }
            } catch {
                throw .loadFailed(reason: "\(error)")
            }
        }
        let present = (try? fileManager.contentsOfDirectory(atPath: directory.path)) ?? []
        for name in present.sorted() where name != ModelManifest.fileName && !listed.contains(name) {
            throw .unlistedFile(file: name)
        }
        return contents
    }

    static func isPlainFileName(_ path: String) -> Bool {
        !path.isEmpty && path != "." && path != ".." && !path.contains("/") && !path.contains("\0")
    }
}
