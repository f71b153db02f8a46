import Foundation
import MiniRBT

/// A step of `publish`, for progress output.
public enum PublishStep: Sendable, Equatable {
    case loading(source: String)
    case selfTesting(examples: Int)
    /// The drift baseline of `samples` texts was computed.
    case profiled(samples: Int, seconds: Double)
    case copying(file: String, bytes: Int64)
    case verifying
    case published(path: String)
}

extension ModelRegistry {
    /// The checkpoint files a bundle carries, when present in the source directory: exactly what the runtime
    /// reads, so nothing unverified can influence a served model.
    public static let checkpointFiles = ["config.json", "vocab.txt", "tokenizer_config.json",
                                         "special_tokens_map.json"] + BertModel.weightFileNames

    /// Publishes the checkpoint in `source` as `reference`.
    ///
    /// Loads and self-tests the source, copies its checkpoint files into a staging directory inside the
    /// registry root (same file system, so the final rename is atomic), checksums the copies, writes the
    /// manifest with the golden answers, verifies the staged bundle exactly as a service would, then renames
    /// it into place. Readers never see a half-written version; an existing version is never replaced.
    /// - Parameter goldenTexts: self-test inputs; defaults to ``GoldenRunner/defaultTexts``.
    /// - Parameter baseline: a JSON Lines sample (and how many of its lines to use, all when nil) the model
    ///   answers to make the version's drift baseline; none: drift is off for this version.
    @discardableResult
    public func publish(_ reference: ModelReference, from source: URL, goldenTexts: [String] = GoldenRunner.defaultTexts,
                        baseline baselineSample: (url: URL, limit: Int?)? = nil,
                        now: Date = Date(), progress: (PublishStep) -> Void = { _ in }) throws -> ModelManifest {
        let target = directory(for: reference)
        guard !contains(reference) else { throw RegistryError.versionExists(reference, path: target.path) }
        guard !goldenTexts.isEmpty else { throw BundleError.noGoldenExamples }

        progress(.loading(source: source.path))
        // Loading maps files by path: refuse a link to a device (/dev/zero never ends) or a FIFO up front.
        for name in Self.checkpointFiles {
            let path = source.appendingPathComponent(name).path
            var status = stat()
            guard stat(path, &status) == 0 else { continue }
            guard status.st_mode & S_IFMT == S_IFREG else {
                throw RegistryError.invalidSource(path: source.path,
                                                  reason: "\(name) is \(FileDigest.kind(of: status.st_mode)), expected a regular file")
            }
        }
        let model: BertModel
        let tokenizer: BertTokenizer
        do {
            model = try BertModel.load(directory: source)
            tokenizer = try BertTokenizer(checkpointDirectory: source)
        } catch {
            throw RegistryError.invalidSource(path: source.path, reason: "\(error)")
        }
        try BundleVerifier.checkServable(model: model, tokenizer: tokenizer)
        progress(.selfTesting(examples: goldenTexts.count))
        let golden = try GoldenRunner.run(goldenTexts, model: model, tokenizer: tokenizer)
        let baseline = try baselineSample.map { sample in
            let started = ContinuousClock.now
            let baseline = try BaselineProfiler.profile(sample.url, limit: sample.limit, model: model, tokenizer: tokenizer)
            progress(.profiled(samples: baseline.samples, seconds: (ContinuousClock.now - started) / .seconds(1)))
            return baseline
        }

        let fileManager = FileManager.default
        let staging = root.appendingPathComponent(Self.stagingPrefix + "\(reference.name)-\(reference.version)-\(UUID().uuidString)",
                                                  isDirectory: true)
        try perform("creating", staging) { try fileManager.createDirectory(at: staging, withIntermediateDirectories: true) }
        var moved = false
        defer { if !moved { try? fileManager.removeItem(at: staging) } }

        // Only the first weight file the loader would pick is carried, so the manifest matches what loads.
        let weightFile = BertModel.weightFileNames.first { fileManager.fileExists(atPath: source.appendingPathComponent($0).path) }
        let names = Self.checkpointFiles.filter { name in
            let isWeights = BertModel.weightFileNames.contains(name)
            return (isWeights ? name == weightFile : true) && fileManager.fileExists(atPath: source.appendingPathComponent(name).path)
        }
        var files: [ModelManifest.FileEntry] = []
        for name in names {
            let copy = staging.appendingPathComponent(name)
            // The bytes, not the link: an HF cache snapshot links every file to a blob outside the directory,
            // and a bundle must hold regular files (a link target must be one too).
            do {
                try FileDigest.copyRegularFile(from: source.appendingPathComponent(name), to: copy)
            } catch {
                throw RegistryError.invalidSource(path: source.path, reason: "\(name): \(error)")
            }
            // Checksums are of the copies: what the registry holds, not what the source held a moment ago.
            let entry = try ModelManifest.FileEntry(describing: copy, as: name)
            progress(.copying(file: name, bytes: entry.size))
            files.append(entry)
        }
        let manifest = ModelManifest(reference: reference, createdAt: now, files: files,
                                     config: ModelManifest.ConfigSummary(model.config), golden: golden,
                                     baseline: baseline)
        let manifestURL = staging.appendingPathComponent(ModelManifest.fileName)
        try perform("writing", manifestURL) { try manifest.encoded().write(to: manifestURL) }

        progress(.verifying)
        _ = try BundleVerifier.verify(directory: staging, expecting: reference)

        let nameDirectory = target.deletingLastPathComponent()
        try perform("creating", nameDirectory) { try fileManager.createDirectory(at: nameDirectory, withIntermediateDirectories: true) }
        // Checked again right before the rename: another publisher may have won meanwhile.
        guard !contains(reference) else { throw RegistryError.versionExists(reference, path: target.path) }
        guard rename(staging.path, target.path) == 0 else {
            throw RegistryError.io(operation: "renaming \(staging.path) to", path: target.path,
                                   reason: String(cString: strerror(errno)))
        }
        moved = true
        progress(.published(path: target.path))
        return manifest
    }

    private func perform(_ operation: String, _ url: URL, _ body: () throws -> Void) throws(RegistryError) {
        do {
            try body()
        } catch {
            throw .io(operation: operation, path: url.path, reason: "\(error.localizedDescription)")
        }
    }
}
