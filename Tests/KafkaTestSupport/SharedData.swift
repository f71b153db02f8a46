import Foundation

/// The project's shared data (`../shared` beside the repository: vocabulary, ChnSentiCorp reviews, the two
/// trained demo checkpoints), located once for every test target. Read in place, never copied into the
/// repository; tests that need it are skipped without it.
public enum SharedData {
    /// `../shared`, from this file: Tests/KafkaTestSupport → Tests → the package root → its parent.
    public static let root = URL(fileURLWithPath: #filePath).resolvingSymlinksInPath()
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("shared")

    /// The demo model family; its versions are `v1` and `v2`.
    public static let models = root.appendingPathComponent("models/minirbt-h256-chnsenticorp")

    /// One trained checkpoint directory, `v1` or `v2`.
    public static func model(_ version: String) -> URL { models.appendingPathComponent(version) }

    /// `train` or `dev` reviews (JSON Lines with `id`, `text`, `label`).
    public static func reviews(_ split: String) -> URL {
        root.appendingPathComponent("data/chnsenticorp/\(split).jsonl")
    }

    /// Whether both checkpoints and the dev reviews are present.
    public static var isPresent: Bool {
        [model("v1").appendingPathComponent("model.safetensors"), model("v2").appendingPathComponent("model.safetensors"),
         reviews("dev")].allSatisfy { FileManager.default.fileExists(atPath: $0.path) }
    }
}
