import Foundation

/// A model registry on a file system (local disk, NFS, a Kubernetes volume): `<root>/<name>/<version>/`
/// holds a checkpoint and its `manifest.json`. Published versions are immutable.
public struct ModelRegistry: Sendable {
    public let root: URL

    /// Prefix of the staging directories `publish` builds a version in before renaming it into place.
    static let stagingPrefix = ".staging-"

    public init(root: URL) {
        self.root = root.standardizedFileURL
    }

    /// Where a version lives (or would live). The reference is validated, so this stays inside `root`.
    public func directory(for reference: ModelReference) -> URL {
        root.appendingPathComponent(reference.name, isDirectory: true)
            .appendingPathComponent(reference.version, isDirectory: true)
    }

    public func contains(_ reference: ModelReference) -> Bool {
        FileManager.default.fileExists(atPath: directory(for: reference).path)
    }

    /// Verifies a version for serving: see ``BundleVerifier``. Blocking work.
    /// - Parameter manifestDigest: the manifest's SHA-256 named by a signed control message, if any.
    public func verify(_ reference: ModelReference, manifestDigest: String? = nil) throws -> VerifiedBundle {
        let directory = directory(for: reference)
        guard FileManager.default.fileExists(atPath: directory.path) else {
            throw RegistryError.versionNotFound(reference, path: directory.path)
        }
        return try BundleVerifier.verify(directory: directory, expecting: reference, manifestDigest: manifestDigest)
    }

    /// The manifests of every published version, by name then creation time. Directories without a readable
    /// manifest (not published through `publish`, or damaged) are reported in `problems`, not skipped silently.
    public func list() throws(RegistryError) -> (manifests: [ModelManifest], problems: [String]) {
        let fileManager = FileManager.default
        func entries(_ url: URL) throws(RegistryError) -> [String] {
            do {
                return try fileManager.contentsOfDirectory(atPath: url.path).filter { !$0.hasPrefix(".") }.sorted()
            } catch {
                throw .io(operation: "listing", path: url.path, reason: "\(error.localizedDescription)")
            }
        }
        var manifests: [ModelManifest] = []
        var problems: [String] = []
        for name in try entries(root) {
            let nameDirectory = root.appendingPathComponent(name, isDirectory: true)
            for version in try entries(nameDirectory) {
                do {
                    manifests.append(try ModelManifest.read(from: nameDirectory.appendingPathComponent(version)))
                } catch {
                    problems.append("\(name)/\(version): \(error)")
                }
            }
        }
        manifests.sort { ($0.name, $0.createdAt) < ($1.name, $1.createdAt) }
        return (manifests, problems)
    }
}
