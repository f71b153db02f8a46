import Foundation
import Testing
@testable import StreamPipeline

/// The JSON Schemas in schemas/ document what the service publishes; these keep them true to the encoder.
@Suite struct SchemaTests {
    static let schemas = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("schemas")

    static func schema(_ name: String) throws -> (properties: [String: Any], required: [String]) {
        let data = try Data(contentsOf: schemas.appendingPathComponent(name))
        let object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        return (try #require(object["properties"] as? [String: Any]), object["required"] as? [String] ?? [])
    }

    static func encoded(_ value: some Encodable) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: JSONEncoder.results.encode(value)) as? [String: Any])
    }

    @Test func everyResultFieldIsDocumented() throws {
        let (properties, required) = try Self.schema("result.schema.json")
        let result = EnrichedResult(
            id: "dev-1", source: SourceCoordinates(topic: "reviews", partition: 2, offset: 41, timestamp: 1_700_000_000_000),
            model: ModelIdentity(name: "sentiment", version: "v2"), label: "positive", score: 0.9,
            scores: ["positive": 0.9, "negative": 0.1], logits: [-1, 1],
            entities: [Entity(label: "LOC", score: 0.8, start: 0, end: 2, text: "北京")], embedding: [0.5],
            truncated: false, text: "北京很好", latencyMs: 3.2)
        let object = try Self.encoded(result)
        #expect(Set(object.keys).subtracting(properties.keys).isEmpty, "undocumented: \(Set(object.keys).subtracting(properties.keys))")
        #expect(Set(properties.keys).subtracting(object.keys).isEmpty, "documented but never written: \(Set(properties.keys).subtracting(object.keys))")
        for field in required { #expect(object[field] != nil, "required \(field) missing") }
    }

    @Test func everyDeadLetterFieldIsDocumented() throws {
        let (properties, required) = try Self.schema("dead-letter.schema.json")
        let letter = DeadLetter(code: .invalidUTF8, message: "not UTF-8",
                                source: SourceCoordinates(topic: "reviews", partition: 0, offset: 7, timestamp: nil),
                                originalValue: Array("ok".utf8))
        let object = try Self.encoded(letter)
        let truncated = try Self.encoded(letter.truncated(keeping: 1, of: Array("ok".utf8)))
        #expect(Set(object.keys).subtracting(properties.keys).isEmpty)
        #expect(Set(object.keys).union(truncated.keys) == Set(properties.keys))
        for field in required { #expect(object[field] != nil, "required \(field) missing") }
        let codes = try #require(((properties["error"] as? [String: Any])?["properties"] as? [String: Any])?["code"] as? [String: Any])
        let documented = Set(codes["enum"] as? [String] ?? [])
        #expect(documented == Set(DeadLetterCode.allCases.map(\.rawValue)),
                "the schema's codes and DeadLetterCode differ: \(documented.symmetricDifference(DeadLetterCode.allCases.map(\.rawValue)).sorted())")
    }
}

extension SchemaTests {
    @Test func everySoftLabelFieldIsDocumented() throws {
        let (properties, required) = try Self.schema("soft-label.schema.json")
        let label = SoftLabel(id: "dev-1", text: "很好", textPair: "不错", labels: ["negative", "positive"],
                              teacherLogits: [-1.5, 1.5], studentLogits: [-1, 1],
                              model: ModelIdentity(name: "sentiment", version: "v1"),
                              teacher: ModelIdentity(name: "minirbt-h256-chnsenticorp", version: "v2"),
                              source: SourceCoordinates(topic: "reviews", partition: 0, offset: 3, timestamp: 1_700_000_000_000))
        let object = try Self.encoded(label)
        #expect(Set(object.keys) == Set(properties.keys), "written \(object.keys.sorted()), documented \(properties.keys.sorted())")
        for field in required { #expect(object[field] != nil, "required \(field) missing") }
    }
}
