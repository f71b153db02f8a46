import Foundation
import KafkaTestSupport
import Testing
import MiniRBT

/// The whole runtime (tokenizer, checkpoint, encoder, head) on the shared MiniRBT-H256 sentiment models,
/// against PyTorch's logits for every dev text (reference-dev.jsonl, inputs truncated to 128 tokens).
@Suite(.enabled(if: SharedData.isPresent,
                "../shared/models/minirbt-h256-chnsenticorp or ../shared/data/chnsenticorp is not present"))
struct RealModelTests {
    struct DevLine: Decodable {
        let id: String
        let text: String
    }

    struct ReferenceLine: Decodable {
        let id: String
        let label: String
        let logits: [Float]
    }

    static func jsonLines<Line: Decodable>(_ url: URL, as type: Line.Type) throws -> [Line] {
        let decoder = JSONDecoder()
        return try String(contentsOf: url, encoding: .utf8)
            .split(whereSeparator: \.isNewline)
            .map { try decoder.decode(Line.self, from: Data($0.utf8)) }
    }

    @Test(arguments: ["v1", "v2"])
    func everyDevTextReproducesPyTorch(version: String) throws {
        let directory = SharedData.models.appendingPathComponent(version)
        let model = try BertModel.load(directory: directory)
        let tokenizer = try BertTokenizer(checkpointDirectory: directory)
        let texts = try Self.jsonLines(SharedData.reviews("dev"), as: DevLine.self)
        let references = try Self.jsonLines(directory.appendingPathComponent("reference-dev.jsonl"), as: ReferenceLine.self)
        try #require(texts.map(\.id) == references.map(\.id))

        let session = InferenceSession(model: model, threads: 2)
        let inputs = texts.map { line in
            let encoding = tokenizer.encode(line.text, maxLength: 128)
            return ModelInput(inputIDs: encoding.inputIDs, tokenTypeIDs: encoding.tokenTypeIDs)
        }
        var results: [Classification] = []
        for start in stride(from: 0, to: inputs.count, by: 32) {
            results += try session.classify(Array(inputs[start ..< min(start + 32, inputs.count)]))
        }

        var worst: Float = 0
        var wrongLabels: [String] = []
        for (result, reference) in zip(results, references) {
            worst = max(worst, zip(result.logits, reference.logits).map { abs($0 - $1) }.max() ?? .infinity)
            if result.label != reference.label { wrongLabels.append(reference.id) }
        }
        print("\(version): \(results.count) dev texts, max |logit diff| vs PyTorch = \(worst), label mismatches: \(wrongLabels.count)")
        #expect(results.count == references.count)
        #expect(wrongLabels.isEmpty, "labels differ for \(wrongLabels)")
        #expect(worst < 1e-3)
    }
}
