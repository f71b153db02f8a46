import Foundation
import ModelControl
import Testing

/// A model that publish accepts must be one every replica can serve: the same validation runs on both sides.
@Suite("Publish and replicas validate models alike")
struct ServableValidationTests {
    /// A copy of the v2 checkpoint (config, vocabulary, weights) whose config.json `edit` rewrites.
    static func sourceCopy(_ purpose: String, editConfig edit: (String) -> String) throws -> URL {
        let source = try Fixtures.temporaryDirectory(purpose)
        for name in ["config.json", "vocab.txt", "tokenizer_config.json", "model.safetensors"] {
            try FileManager.default.copyItem(at: Fixtures.checkpoint("v2").appendingPathComponent(name),
                                             to: source.appendingPathComponent(name))
        }
        let config = source.appendingPathComponent("config.json")
        let text = try String(contentsOf: config, encoding: .utf8)
        try FileManager.default.removeItem(at: config)
        try Data(edit(text).utf8).write(to: config)
        return source
    }

    static func duplicateLabels(_ config: String) -> String {
        config.replacingOccurrences(of: "\"1\": \"positive\"", with: "\"1\": \"negative\"")
    }

    @Test("duplicate id2label values are refused by publish, naming the field")
    func publishRefusesDuplicateLabels() throws {
        let source = try Self.sourceCopy("dup-labels-src", editConfig: Self.duplicateLabels)
        defer { try? FileManager.default.removeItem(at: source) }
        let root = try Fixtures.temporaryDirectory("dup-labels")
        defer { try? FileManager.default.removeItem(at: root) }
        let registry = ModelRegistry(root: root)
        do {
            try registry.publish(Fixtures.reference("dup"), from: source)
            Issue.record("a model with duplicate labels was published")
        } catch let RegistryError.invalidSource(_, reason) {
            #expect(reason.contains("id2label"), "\(reason)")
            #expect(reason.contains("\"negative\" is used by ids 0 and 1"), "\(reason)")
        }
        #expect(!registry.contains(Fixtures.reference("dup")))
    }

    @Test("a bundle with duplicate labels and consistent checksums fails verification, it does not trap")
    func verifierRefusesDuplicateLabels() throws {
        let (registry, root) = try Fixtures.registry(publishing: ["v2"], purpose: "dup-verify")
        defer { try? FileManager.default.removeItem(at: root) }
        let bundle = registry.directory(for: Fixtures.reference("v2"))
        let config = bundle.appendingPathComponent("config.json")
        let edited = Self.duplicateLabels(try String(contentsOf: config, encoding: .utf8))
        try FileManager.default.removeItem(at: config)
        try Data(edited.utf8).write(to: config)
        var manifest = try ModelManifest.read(from: bundle)
        manifest.files = try manifest.files.map { try ModelManifest.FileEntry(describing: bundle.appendingPathComponent($0.path), as: $0.path) }
        try manifest.encoded().write(to: bundle.appendingPathComponent(ModelManifest.fileName))

        let error = #expect(throws: BundleError.self) { try registry.verify(Fixtures.reference("v2")) }
        guard case .loadFailed(let reason)? = error else {
            Issue.record("expected loadFailed, got \(String(describing: error))")
            return
        }
        #expect(reason.contains("id2label"), "\(reason)")
    }
}
