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
    public static func verify(directory: URL, expecting expected: ModelReference?) throws(BundleError) -> VerifiedBundle {
        let manifest = try ModelManifest.read(from: directory)
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
        try checkFiles(manifest.files, in: directory)
        let model: BertModel
        let tokenizer: BertTokenizer
        do {
            model = try BertModel.load(directory: directory)
            tokenizer = try BertTokenizer(checkpointDirectory: directory)
        } catch {
            throw .loadFailed(reason: "\(error)")
        }
        // The embedding table was checked against config.json; a vocabulary of another size would map
        // tokens to the wrong rows (or out of the table) without any shape error.
        guard tokenizer.vocabulary.count == model.config.vocabSize else {
            throw .vocabularySizeMismatch(vocabulary: tokenizer.vocabulary.count, config: model.config.vocabSize)
        }
        try GoldenRunner.check(manifest.golden, model: model, tokenizer: tokenizer)
        return VerifiedBundle(manifest: manifest, reference: reference, model: model, tokenizer: tokenizer,
                              directory: directory)
    }

    /// Every listed file has its size and checksum, and nothing unlisted sits beside them.
    static func checkFiles(_ files: [ModelManifest.FileEntry], in directory: URL) throws(BundleError) {
        let fileManager = FileManager.default
        var listed = Set<String>()
        for entry in files {
            guard isPlainFileName(entry.path) else { throw .invalidFileEntry(path: entry.path) }
            listed.insert(entry.path)
            let url = directory.appendingPathComponent(entry.path)
            guard fileManager.fileExists(atPath: url.path) else { throw .fileMissing(file: entry.path) }
            let digest: (hex: String, size: Int64)
            do {
                digest = try FileDigest.sha256(of: url)
            } catch {
                throw .loadFailed(reason: error.description)
            }
            if digest.size != entry.size {
                throw .sizeMismatch(file: entry.path, expected: entry.size, found: digest.size)
            }
            if digest.hex != entry.sha256.lowercased() {
                throw .checksumMismatch(file: entry.path, expected: entry.sha256, found: digest.hex)
            }
        }
        let present = (try? fileManager.contentsOfDirectory(atPath: directory.path)) ?? []
        for name in present.sorted() where name != ModelManifest.fileName && !listed.contains(name) {
            throw .unlistedFile(file: name)
        }
    }

    static func isPlainFileName(_ path: String) -> Bool {
        !path.isEmpty && path != "." && path != ".." && !path.contains("/") && !path.contains("\0")
    }
}
