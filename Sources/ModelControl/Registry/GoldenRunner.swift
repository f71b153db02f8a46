import Foundation
import MiniRBT

/// Runs golden examples through a checkpoint: at publish time to record the answers, at load time to check
/// that this bundle, on this machine, still gives them.
public enum GoldenRunner {
    /// Chinese sentences used when `publish` is given no golden file: short and long, praise and complaint.
    public static let defaultTexts = [
        "房间很干净，服务也很热情，下次还会再来。",
        "酒店位置偏僻，房间又小又吵，非常失望。",
        "早餐品种丰富，性价比很高。",
        "前台态度恶劣，等了半个小时才办好入住。",
        "总体还可以，就是隔音效果一般。",
    ]

    /// Sequence length the golden examples are encoded with; the same at publish and at verification.
    public static let maxLength = 128

    /// The model's answers for `texts`, computed as one batch.
    public static func run(_ texts: [String], model: BertModel, tokenizer: BertTokenizer) throws -> [GoldenExample] {
        guard !texts.isEmpty else { return [] }
        let inputs = texts.map { text in
            let encoding = tokenizer.encode(text, maxLength: min(maxLength, model.config.maxPositions))
            return ModelInput(inputIDs: encoding.inputIDs, tokenTypeIDs: encoding.tokenTypeIDs)
        }
        let session = InferenceSession(model: model)
        switch model.task {
        case .sequenceClassification:
            return try zip(texts, session.classify(inputs)).map { text, result in
                GoldenExample(text: text, label: result.label, logits: result.logits)
            }
        case .tokenClassification:
            // The first word piece's logits stand for the sequence; labels are per token, so none is kept.
            return try zip(texts, session.labelTokens(inputs)).map { text, tokens in
                GoldenExample(text: text, label: nil, logits: tokens.dropFirst().first?.logits ?? [])
            }
        case .embeddings:
            return try zip(texts, session.embed(inputs, pooling: .cls)).map { text, vector in
                GoldenExample(text: text, label: nil, logits: vector)
            }
        }
    }

    /// Re-runs `expected` and throws on the first example whose label differs or whose outputs differ by
    /// more than ``GoldenExample/tolerance``.
    public static func check(_ expected: [GoldenExample], model: BertModel, tokenizer: BertTokenizer) throws(BundleError) {
        guard !expected.isEmpty else { throw .noGoldenExamples }
        let actual: [GoldenExample]
        do {
            actual = try run(expected.map(\.text), model: model, tokenizer: tokenizer)
        } catch {
            throw .loadFailed(reason: "running the golden examples: \(error)")
        }
        for (index, (want, got)) in zip(expected, actual).enumerated() {
            if want.label != got.label {
                throw .goldenMismatch(index: index, text: want.text, expected: "label \(want.label ?? "none")",
                                      found: "label \(got.label ?? "none")")
            }
            guard want.logits.count == got.logits.count else {
                throw .goldenMismatch(index: index, text: want.text, expected: "\(want.logits.count) outputs",
                                      found: "\(got.logits.count)")
            }
            let worst = zip(want.logits, got.logits).map { abs($0 - $1) }.max() ?? 0
            // `!(worst <= tolerance)` also catches NaN.
            if !(worst <= GoldenExample.tolerance) {
                throw .goldenMismatch(index: index, text: want.text,
                                      expected: "outputs within \(GoldenExample.tolerance) of \(want.logits)",
                                      found: "\(got.logits) (max difference \(worst))")
            }
        }
    }

    /// The `text` of the first `limit` lines of a JSON Lines file (`{"text": ...}` per line; other keys ignored).
    public static func texts(fromJSONLines url: URL, limit: Int) throws(RegistryError) -> [String] {
        let content: String
        do {
            content = try String(contentsOf: url, encoding: .utf8)
        } catch {
            throw .io(operation: "reading", path: url.path, reason: "\(error.localizedDescription)")
        }
        struct Line: Decodable { let text: String }
        var texts: [String] = []
        for (index, line) in content.split(whereSeparator: \.isNewline).enumerated() where texts.count < limit {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            guard !trimmed.isEmpty else { continue }
            do {
                texts.append(try JSONDecoder().decode(Line.self, from: Data(trimmed.utf8)).text)
            } catch {
                throw .invalidGoldenInput(path: url.path, line: index + 1, reason: "\(error)")
            }
        }
        return texts
    }
}
