import Foundation
import Testing
@testable import ModelControl

/// Bundle files are regular files, read once: links and special files are refused before a byte is read,
/// publish copies the bytes a link points to, and a file that changes while read is not loaded.
@Suite("Bundle files: regular files only, verified bytes are the loaded bytes")
struct BundleFileTests {
    /// Publishes v1 into a fresh registry and hands its bundle directory to `body`.
    private func withPublishedBundle(_ purpose: String, _ body: (ModelRegistry, URL) throws -> Void) throws {
        let (registry, root) = try Fixtures.registry(publishing: ["v1"], purpose: purpose)
        defer { try? FileManager.default.removeItem(at: root) }
        try body(registry, registry.directory(for: Fixtures.reference("v1")))
    }

    private func replace(_ file: URL, withLinkTo target: String) throws {
        try FileManager.default.removeItem(at: file)
        try FileManager.default.createSymbolicLink(atPath: file.path, withDestinationPath: target)
    }

    @Test("a bundle file linked to /dev/zero is refused at once, not hashed forever", .timeLimit(.minutes(1)))
    func linkToDevZero() throws {
        try withPublishedBundle("devzero") { registry, bundle in
            try replace(bundle.appendingPathComponent("vocab.txt"), withLinkTo: "/dev/zero")
            #expect(throws: BundleError.notRegularFile(file: "vocab.txt", kind: "a symbolic link")) {
                try registry.verify(Fixtures.reference("v1"))
            }
        }
    }

    @Test("a link leaving the bundle is refused even when its target has the right bytes")
    func linkOutOfTheBundle() throws {
        try withPublishedBundle("link-out") { registry, bundle in
            let outside = bundle.deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("config-elsewhere.json")
            try FileManager.default.copyItem(at: bundle.appendingPathComponent("config.json"), to: outside)
            try replace(bundle.appendingPathComponent("config.json"), withLinkTo: outside.path)
            #expect(throws: BundleError.notRegularFile(file: "config.json", kind: "a symbolic link")) {
                try registry.verify(Fixtures.reference("v1"))
            }
        }
    }

    @Test("a FIFO in place of a bundle file is refused without blocking", .timeLimit(.minutes(1)))
    func fifo() throws {
        try withPublishedBundle("fifo") { registry, bundle in
            let file = bundle.appendingPathComponent("tokenizer_config.json")
            try FileManager.default.removeItem(at: file)
            #expect(mkfifo(file.path, 0o644) == 0)
            #expect(throws: BundleError.notRegularFile(file: "tokenizer_config.json", kind: "a FIFO")) {
                try registry.verify(Fixtures.reference("v1"))
            }
        }
    }

    @Test("a manifest that is a link is refused too")
    func manifestLink() throws {
        try withPublishedBundle("manifest-link") { registry, bundle in
            let manifest = bundle.appendingPathComponent(ModelManifest.fileName)
            let moved = bundle.deletingLastPathComponent().appendingPathComponent("manifest-elsewhere.json")
            try FileManager.default.moveItem(at: manifest, to: moved)
            try FileManager.default.createSymbolicLink(at: manifest, withDestinationURL: moved)
            #expect(throws: BundleError.notRegularFile(file: ModelManifest.fileName, kind: "a symbolic link")) {
                try registry.verify(Fixtures.reference("v1"))
            }
        }
    }

    @Test("publish copies the bytes behind links, as in a Hugging Face cache snapshot")
    func publishFollowsSnapshotLinks() throws {
        let cache = try Fixtures.temporaryDirectory("hf-cache")
        defer { try? FileManager.default.removeItem(at: cache) }
        let blobs = cache.appendingPathComponent("blobs"), snapshot = cache.appendingPathComponent("snapshots/0123abc")
        try FileManager.default.createDirectory(at: blobs, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(at: snapshot, withIntermediateDirectories: true)
        for (index, name) in ["config.json", "vocab.txt", "tokenizer_config.json", "model.safetensors"].enumerated() {
            try FileManager.default.copyItem(at: Fixtures.checkpoint("v1").appendingPathComponent(name),
                                             to: blobs.appendingPathComponent("blob\(index)"))
            // Relative, like huggingface_hub's: copied verbatim they would dangle in the registry.
            try FileManager.default.createSymbolicLink(atPath: snapshot.appendingPathComponent(name).path,
                                                       withDestinationPath: "../../blobs/blob\(index)")
        }
        let root = try Fixtures.temporaryDirectory("hf-publish")
        defer { try? FileManager.default.removeItem(at: root) }
        let registry = ModelRegistry(root: root)
        try registry.publish(Fixtures.reference("v1"), from: snapshot)
        let bundle = registry.directory(for: Fixtures.reference("v1"))
        for name in try FileManager.default.contentsOfDirectory(atPath: bundle.path) {
            let type = try FileManager.default.attributesOfItem(atPath: bundle.appendingPathComponent(name).path)[.type] as? FileAttributeType
            #expect(type == .typeRegular, "\(name) is \(String(describing: type))")
        }
        _ = try registry.verify(Fixtures.reference("v1"))
    }

    @Test("publish refuses a source file that is a link to a device", .timeLimit(.minutes(1)))
    func publishRefusesDevice() throws {
        let source = try Fixtures.temporaryDirectory("device-src")
        defer { try? FileManager.default.removeItem(at: source) }
        for name in ["config.json", "model.safetensors"] {
            try FileManager.default.copyItem(at: Fixtures.checkpoint("v1").appendingPathComponent(name),
                                             to: source.appendingPathComponent(name))
        }
        try FileManager.default.createSymbolicLink(atPath: source.appendingPathComponent("vocab.txt").path, withDestinationPath: "/dev/zero")
        let root = try Fixtures.temporaryDirectory("device-publish")
        defer { try? FileManager.default.removeItem(at: root) }
        do {
            try ModelRegistry(root: root).publish(Fixtures.reference("v1"), from: source)
            Issue.record("published a device")
        } catch let RegistryError.invalidSource(_, reason) {
            #expect(reason == "vocab.txt is a character device, expected a regular file")
        }
    }

    @Test("a file that grows or is rewritten while read is reported, not loaded")
    func changedWhileReading() throws {
        let directory = try Fixtures.temporaryDirectory("changing")
        defer { try? FileManager.default.removeItem(at: directory) }
        let url = directory.appendingPathComponent("weights")
        try Data(repeating: 7, count: 1 << 16).write(to: url)

        let grown = try FileDigest.OpenFile(path: url.path, followLinks: false)
        defer { grown.close() }
        let handle = try FileHandle(forWritingTo: url)
        try handle.seekToEnd()
        try handle.write(contentsOf: Data([1, 2, 3]))
        try handle.close()
        #expect(throws: FileDigest.Failure.self) { try grown.readAll() }

        let rewritten = try FileDigest.OpenFile(path: url.path, followLinks: false)
        defer { rewritten.close() }
        let size = try #require(try FileManager.default.attributesOfItem(atPath: url.path)[.size] as? Int)
        let writer = try FileHandle(forWritingTo: url)
        try writer.write(contentsOf: Data(repeating: 9, count: size)) // same size, other bytes, in place
        try writer.close()
        try FileManager.default.setAttributes([.modificationDate: Date(timeIntervalSinceNow: 3600)], ofItemAtPath: url.path)
        #expect(throws: FileDigest.Failure.self) { try rewritten.readAll() }

        let steady = try FileDigest.OpenFile(path: url.path, followLinks: false)
        defer { steady.close() }
        #expect(try steady.readAll().count == size)
    }
}
