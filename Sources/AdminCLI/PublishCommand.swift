import ArgumentParser
import Foundation
import ModelControl

struct PublishCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "publish",
        abstract: "Self-test a checkpoint and copy it into the registry as an immutable version.")

    @Option(help: ArgumentHelp("Registry root directory.", valueName: "dir"))
    var registry: String

    @Option(help: "Model name (letters, digits, '.', '_', '-').")
    var name: String

    @Option(help: "Version to publish; an existing version is never replaced.")
    var version: String

    @Option(help: ArgumentHelp("Hugging Face checkpoint directory (config.json, vocab.txt, weights).", valueName: "dir"))
    var modelDir: String

    @Option(help: ArgumentHelp("JSON Lines file whose first lines' \"text\" become the golden examples (default: built-in sentences).", valueName: "file"))
    var golden: String?

    @Option(help: "How many lines of --golden to use.")
    var goldenCount = 8

    @Option(help: ArgumentHelp("JSON Lines of representative texts (the event format: {\"text\": ...}); the model's answers on them become the version's drift baseline. Without it drift is off for this version.", valueName: "file"))
    var baseline: String?

    @Option(help: ArgumentHelp("Use only the first N lines of --baseline (default: all).", valueName: "n"))
    var baselineLimit: Int?

    func validate() throws {
        if let baselineLimit, baselineLimit < 1 {
            throw ValidationError("--baseline-limit must be at least 1, got \(baselineLimit)")
        }
        if baselineLimit != nil, baseline == nil {
            throw ValidationError("--baseline-limit needs --baseline")
        }
    }

    func run() async throws {
        let reference = try ModelReference.parse(name: name, version: version)
        let texts = try golden.map { try GoldenRunner.texts(fromJSONLines: URL(fileURLWithPath: $0), limit: goldenCount) }
            ?? GoldenRunner.defaultTexts
        let registry = ModelRegistry(root: URL(fileURLWithPath: registry))
        let manifest = try registry.publish(reference, from: URL(fileURLWithPath: modelDir), goldenTexts: texts,
                                            baseline: baseline.map { (url: URL(fileURLWithPath: $0), limit: baselineLimit) }) { step in
            switch step {
            case .loading(let source): print("loading \(source)")
            case .selfTesting(let count): print("self-testing on \(count) golden examples")
            case let .profiled(samples, seconds):
                print("drift baseline: \(samples) texts answered in \(String(format: "%.1f", seconds)) s")
            case let .copying(file, bytes): print("copied \(file) (\(bytes) bytes), sha256 computed")
            case .verifying: print("verifying the staged bundle")
            case .published(let path): print("published \(reference) at \(path)")
            }
        }
        print("labels: \(manifest.config.labels.joined(separator: ", ")); \(manifest.files.count) files; \(manifest.golden.count) golden examples")
        print(DriftDescription.baseline(manifest.baseline))
    }
}
