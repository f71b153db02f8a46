import Foundation
import ModelControl
import Testing

@Suite("Registry publish and bundle verification")
struct BundleVerificationTests {
    @Test("a published version verifies and lists, and is never overwritten")
    func publishVerifyList() throws {
        let (registry, root) = try Fixtures.registry(publishing: ["v1"], purpose: "publish")
        defer { try? FileManager.default.removeItem(at: root) }
        let v1 = Fixtures.reference("v1")

        let bundle = try registry.verify(v1)
        #expect(bundle.manifest.config.labels == ["negative", "positive"])
        #expect(bundle.manifest.config.layers == 6 && bundle.manifest.config.hidden == 256)
        #expect(bundle.manifest.golden.count == GoldenRunner.defaultTexts.count)
        #expect(Set(bundle.manifest.files.map(\.path)) == ["config.json", "vocab.txt", "tokenizer_config.json", "model.safetensors"])
        // Sanity of the golden answers themselves: the trained model tells praise from complaint.
        #expect(bundle.manifest.golden[0].label == "positive")
        #expect(bundle.manifest.golden[1].label == "negative")

        let listed = try registry.list()
        #expect(listed.manifests.map(\.version) == ["v1"])
        #expect(listed.problems.isEmpty)
        // No staging directory is left behind.
        #expect(try FileManager.default.contentsOfDirectory(atPath: root.path) == ["sentiment"])

        #expect(throws: RegistryError.versionExists(v1, path: registry.directory(for: v1).path)) {
            try registry.publish(v1, from: Fixtures.checkpoint("v2"))
        }
    }

    @Test("a flipped byte in the weights is a checksum mismatch")
    func flippedByte() throws {
        try withCorruptedCopy { bundle in
            try mutate(bundle.appendingPathComponent("model.safetensors")) { bytes in bytes[bytes.count / 2] ^= 0x01 }
        } check: { error in
            guard case .checksumMismatch(file: "model.safetensors", _, _) = error else { return false }
            return true
        }
    }

    @Test("truncated weights are a size mismatch")
    func truncatedWeights() throws {
        try withCorruptedCopy { bundle in
            try mutate(bundle.appendingPathComponent("model.safetensors")) { bytes in bytes.removeLast(4096) }
        } check: { error in
            guard case .sizeMismatch(file: "model.safetensors", _, _) = error else { return false }
            return true
        }
    }

    @Test("a config whose shapes do not match the weights fails to load, even with a consistent manifest")
    func wrongShape() throws {
        try withCorruptedCopy(rehash: true) { bundle in
            try mutate(bundle.appendingPathComponent("config.json")) { bytes in
                let text = String(decoding: bytes, as: UTF8.self)
                    .replacingOccurrences(of: "\"intermediate_size\": 1024", with: "\"intermediate_size\": 512")
                bytes = Array(text.utf8)
            }
        } check: { error in
            guard case .loadFailed(let reason) = error else { return false }
            return reason.contains("intermediate") || reason.contains("shape")
        }
    }

    @Test("a vocabulary of the wrong size is refused, even with a consistent manifest")
    func brokenVocabulary() throws {
        try withCorruptedCopy(rehash: true) { bundle in
            try mutate(bundle.appendingPathComponent("vocab.txt")) { bytes in
                let lines = String(decoding: bytes, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
                bytes = Array(lines.dropLast(100).joined(separator: "\n").utf8)
            }
        } check: { error in
            guard case .vocabularySizeMismatch(vocabulary: let count, config: 21128) = error else { return false }
            return count < 21128
        }
    }

    @Test("a vocabulary without its special tokens fails to load")
    func vocabularyWithoutSpecialTokens() throws {
        try withCorruptedCopy(rehash: true) { bundle in
            try mutate(bundle.appendingPathComponent("vocab.txt")) { bytes in
                bytes = Array(String(decoding: bytes, as: UTF8.self).replacingOccurrences(of: "[SEP]\n", with: "[SEQ]\n").utf8)
            }
        } check: { error in
            guard case .loadFailed(let reason) = error else { return false }
            return reason.contains("[SEP]")
        }
    }

    @Test("changed golden answers are caught by the self-test")
    func goldenMismatch() throws {
        try withCorruptedCopy { bundle in
            let url = bundle.appendingPathComponent(ModelManifest.fileName)
            var manifest = try ModelManifest.read(from: bundle)
            manifest.golden[0].logits[0] += 0.01
            try manifest.encoded().write(to: url)
        } check: { error in
            guard case .goldenMismatch(index: 0, _, _, _) = error else { return false }
            return true
        }
    }

    @Test("an unlisted file beside the checkpoint is refused")
    func unlistedFile() throws {
        try withCorruptedCopy { bundle in
            try Data("{}".utf8).write(to: bundle.appendingPathComponent("special_tokens_map.json"))
        } check: { error in
            error == .unlistedFile(file: "special_tokens_map.json")
        }
    }

    @Test("a manifest file entry cannot point outside the bundle")
    func manifestPathEscape() throws {
        try withCorruptedCopy { bundle in
            let url = bundle.appendingPathComponent(ModelManifest.fileName)
            var manifest = try ModelManifest.read(from: bundle)
            manifest.files[0].path = "../../etc/passwd"
            try manifest.encoded().write(to: url)
        } check: { error in
            error == .invalidFileEntry(path: "../../etc/passwd")
        }
    }

    // MARK: Helpers

    /// Publishes v1, copies the bundle, corrupts the copy (and, with `rehash`, rewrites the manifest's
    /// checksums so only the deeper checks can catch it), then expects verification to fail as `check` says.
    private func withCorruptedCopy(rehash: Bool = false, corrupt: (URL) throws -> Void,
                                   check: (BundleError) -> Bool) throws {
        let (registry, root) = try Fixtures.registry(publishing: ["v1"], purpose: "corrupt")
        defer { try? FileManager.default.removeItem(at: root) }
        let original = registry.directory(for: Fixtures.reference("v1"))
        let copy = root.appendingPathComponent("sentiment/v1-copy")
        try FileManager.default.copyItem(at: original, to: copy)
        try corrupt(copy)
        if rehash { try rewriteChecksums(copy) }

        do {
            _ = try BundleVerifier.verify(directory: copy, expecting: Fixtures.reference("v1"))
            Issue.record("the corrupt bundle verified")
        } catch {
            #expect(check(error), "unexpected error: \(error)")
        }
        // The original is untouched by the corruption of its copy.
        _ = try registry.verify(Fixtures.reference("v1"))
    }

    private func mutate(_ url: URL, _ change: (inout [UInt8]) -> Void) throws {
        var bytes = Array(try Data(contentsOf: url))
        change(&bytes)
        try FileManager.default.removeItem(at: url)
        try Data(bytes).write(to: url)
    }

    private func rewriteChecksums(_ bundle: URL) throws {
        var manifest = try ModelManifest.read(from: bundle)
        manifest.files = try manifest.files.map { entry in
            try ModelManifest.FileEntry(describing: bundle.appendingPathComponent(entry.path), as: entry.path)
        }
        try manifest.encoded().write(to: bundle.appendingPathComponent(ModelManifest.fileName))
    }
}
