import Foundation
import KafkaTestSupport

/// Shared data and the service's common command line.
enum E2EFixtures {
    static let sharedRoot = SharedData.root
    static func modelDirectory(_ version: String) -> URL { SharedData.model(version) }
    static var sharedDataPresent: Bool { SharedData.isPresent }

    /// The repository's root (for the chart's files).
    static let repositoryRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The texts of the dev reviews, in file order.
    static let reviewTexts: [String] = reviews("dev.jsonl").map(\.text)

    /// A ChnSentiCorp file of `../shared/data/chnsenticorp` (`dev.jsonl`, `train.jsonl`), in file order;
    /// empty when it is missing.
    static func reviews(_ file: String) -> [(text: String, label: String?)] {
        let url = reviewFile(file)
        guard let contents = try? String(contentsOf: url, encoding: .utf8) else { return [] }
        return contents.split(separator: "\n").compactMap { line in
            let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            return (object?["text"] as? String).map { ($0, object?["label"] as? String) }
        }
    }

    static func reviewFile(_ file: String) -> URL {
        sharedRoot.appendingPathComponent("data/chnsenticorp").appendingPathComponent(file)
    }

    /// `minirbt-stream run` arguments every test uses: small batches, no metrics port (instances share
    /// the host), unique topics and group given by the caller.
    static func runArguments(input: String, output: String, dlq: String, group: String,
                             shards: Int = 2, brokers: String = TestBroker.bootstrapServers,
                             extra: [String] = []) -> [String] {
        ["run", "--brokers", brokers, "--group", group, "--input-topic", input,
         "--output-topic", output, "--dlq-topic", dlq, "--shards", "\(shards)", "--max-batch", "8",
         "--metrics-port", "0"] + extra
    }
}
