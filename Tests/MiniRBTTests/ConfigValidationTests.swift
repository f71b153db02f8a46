import Foundation
import Testing
@testable import MiniRBT

/// Regression corpus for config.json values that used to pass loading and trap (or allocate without end)
/// later: each must be refused when the config is read, by a typed error naming the field.
@Suite struct ConfigValidationTests {
    static func field(of json: String) -> String? {
        do {
            _ = try ModelConfig(json: Data(json.utf8))
            return nil
        } catch let CheckpointError.invalidConfig(field, _) {
            return field
        } catch {
            return "unexpected \(error)"
        }
    }

    /// `{"0":"pos","1":"pos"}` passed publish and the verifier, then trapped building results in
    /// `Dictionary(uniqueKeysWithValues:)` on the first batch.
    @Test func duplicateLabelsAreRefused() throws {
        let error = #expect(throws: CheckpointError.self) {
            try ModelConfig(json: Data(#"{"id2label": {"0": "pos", "1": "pos"}}"#.utf8))
        }
        #expect(error == .invalidConfig(field: "id2label", reason: "label \"pos\" is used by ids 0 and 1; labels must be unique"))
        // The same through the memberwise initialiser.
        #expect(throws: CheckpointError.self) { try ModelConfig(labels: ["a", "b", "a"]) }
    }

    @Test(arguments: [
        (#"{"id2label": {"0": "a", "00": "b"}}"#, "id2label"),          // two spellings of index 0
        (#"{"id2label": {"0": "a", "+1": "b"}}"#, "id2label"),
        (#"{"id2label": {"0": "a", "1": "b"}, "num_labels": 3}"#, "num_labels"),
        (#"{"num_labels": 0}"#, "num_labels"),
        (#"{"num_labels": 100000000}"#, "num_labels"),
        (#"{"num_hidden_layers": 1000000000000}"#, "num_hidden_layers"), // looped over before shapes were compared
        (#"{"hidden_size": 4611686018427387904, "num_attention_heads": 1}"#, "hidden_size"), // 3 × hidden overflowed
        (#"{"intermediate_size": 4611686018427387904}"#, "intermediate_size"),
        (#"{"vocab_size": 4611686018427387904}"#, "vocab_size"),
        (#"{"max_position_embeddings": 2}"#, "max_position_embeddings"),
        (#"{"max_position_embeddings": 9223372036854775807}"#, "max_position_embeddings"),
        (#"{"type_vocab_size": 0}"#, "type_vocab_size"),
        (#"{"num_attention_heads": 0}"#, "num_attention_heads"),
        (#"{"hidden_size": 768, "num_attention_heads": 7}"#, "hidden_size"),
        (#"{"pad_token_id": 30522}"#, "pad_token_id"),
        (#"{"pad_token_id": -1}"#, "pad_token_id"),
    ] as [(String, String)])
    func impossibleValuesNameTheirField(json: String, field: String) {
        #expect(Self.field(of: json) == field, "\(json)")
    }

    @Test func labelDefaultsFollowTransformers() throws {
        #expect(try ModelConfig(json: Data(#"{"num_labels": 3}"#.utf8)).labels == ["LABEL_0", "LABEL_1", "LABEL_2"])
        #expect(try ModelConfig(json: Data(#"{"id2label": {"1": "b", "0": "a"}, "num_labels": 2}"#.utf8)).labels == ["a", "b"])
    }
}
