import Foundation
import Kafka
import Logging
import ServiceLifecycle
import Testing
@testable import StreamPipeline

/// End to end through a real broker: the service in-process, events in, results and dead letters out.
@Suite struct StreamServiceTests {
    static let modelDirectory = PipelineFixtures.sharedRoot.appendingPathComponent("models/minirbt-h256-chnsenticorp/v2")

    @Test(.enabled(if: FileManager.default.fileExists(atPath: modelDirectory.path), "needs ../shared/models"),
          arguments: [1, 2, 4])
    func everyEventYieldsExactlyOneOutputInPartitionOrder(shards: Int) async throws {
        let model = try LoadedModel.load(directory: Self.modelDirectory)
        let reviews = try PipelineFixtures.devReviews(limit: 96)
        let input = try await PipelineBroker.createTopic("in", partitions: 4)
        let output = try await PipelineBroker.createTopic("out", partitions: 3)
        let dlq = try await PipelineBroker.createTopic("dlq", partitions: 1)

        // Reviews with the bad inputs interleaved, keyed so every output can be traced to its event.
        var sent: [(key: String, value: [UInt8], expectedCode: String?)] = []
        for (index, review) in reviews.enumerated() {
            sent.append(("review-\(index)", Array(review.line.utf8), nil))
            if index % 8 == 0, index / 8 < badEvents.count {
                let bad = badEvents[index / 8]
                sent.append(("bad-\(index / 8)", bad.value, bad.code.rawValue))
            }
        }
        try await PipelineBroker.produce(sent.map { ($0.key, $0.value) }, to: input)
        let expectedCount = sent.count

        var settings = StreamSettings()
        settings.inputTopics = [input]
        settings.outputTopic = output
        settings.deadLetterTopic = dlq
        settings.shards = shards
        settings.shard.maxBatch = 8
        let records = try await PipelineBroker.runService(settings: settings, model: model,
                                                         group: PipelineBroker.uniqueName("group")) {
            try await PipelineBroker.read([output, dlq], count: expectedCount)
        }

        // Exactly one output per event.
        let byKey = Dictionary(grouping: records) { $0.key.map { String(decoding: $0, as: UTF8.self) } ?? "" }
        #expect(byKey.count == sent.count)
        for event in sent {
            let outputs = byKey[event.key] ?? []
            #expect(outputs.count == 1, "\(event.key) has \(outputs.count) outputs")
            guard let record = outputs.first else { continue }
            if let code = event.expectedCode {
                #expect(record.topic == dlq, "\(event.key) should be dead-lettered")
                let letter = try JSONDecoder().decode(DeadLetter.self, from: Data(record.value ?? []))
                #expect(letter.error.code == code)
                #expect(letter.valueBase64 == Data(event.value).base64EncodedString(), "the original bytes are kept")
            } else {
                #expect(record.topic == output)
                let version = record.headers.first { $0.name == "minirbt-model-version" }?.value
                #expect(version == Array("v2".utf8))
            }
        }

        // Within each output partition, results of one input partition appear in input order.
        let results = records.filter { $0.topic == output }
            .map { try! JSONDecoder().decode(EnrichedResult.self, from: Data($0.value ?? [])) }
        for (_, sameInput) in Dictionary(grouping: zip(records.filter { $0.topic == output }, results),
                                         by: { "\($0.0.partition)/\($0.1.source?.partition ?? -1)" }) {
            let offsets = sameInput.map { $0.1.source?.offset ?? -1 }
            #expect(offsets == offsets.sorted(), "results out of input order: \(offsets)")
        }

        // The service's labels are the offline labels.
        let offline = try Predictor(maxLength: settings.shard.maxLength)
            .predict(reviews.map { TextEvent(id: $0.id, text: $0.text) }, with: model)
        let expected = Dictionary(uniqueKeysWithValues: zip(reviews.map(\.id), offline.map(\.label)))
        for result in results {
            #expect(result.label == expected[result.id] ?? nil, "\(result.id)")
        }
    }
}
