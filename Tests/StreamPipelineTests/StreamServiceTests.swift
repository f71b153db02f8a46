import Foundation
import KafkaTestSupport
import Kafka
import Logging
import ServiceLifecycle
import Testing
@testable import StreamPipeline

/// End to end through a real broker: the service in-process, events in, results and dead letters out.
@Suite struct StreamServiceTests {
    static let modelDirectory = SharedData.model("v2")

    @Test(.enabled(if: FileManager.default.fileExists(atPath: modelDirectory.path), "needs ../shared/models"),
          arguments: [1, 2, 4])
    func everyEventYieldsExactlyOneOutputInPartitionOrder(shards: Int) async throws {
        let model = try LoadedModel.load(directory: Self.modelDirectory)
        let reviews = try PipelineFixtures.devReviews(limit: 96)
        let input = try await PipelineBroker.createTopic("in", partitions: 4)
        let output = try await PipelineBroker.createTopic("out", partitions: 3)
        let dlq = try await PipelineBroker.createTopic("dlq", partitions: 1)

        // Reviews with the bad inputs interleaved, keyed so every output can be traced to its event.
        var sent: [(key: String, value: [UInt8], expectedCode: DeadLetterCode?)] = []
        for (index, review) in reviews.enumerated() {
            sent.append(("review-\(index)", Array(review.line.utf8), nil))
            if index % 8 == 0, index / 8 < badEvents.count {
                let bad = badEvents[index / 8]
                sent.append(("bad-\(index / 8)", bad.value, bad.code))
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

    /// Shadow mode: the candidate answers every event on the shadow topic; the primary results are untouched.
    @Test(.enabled(if: FileManager.default.fileExists(atPath: modelDirectory.path), "needs ../shared/models"))
    func shadowRunsTheCandidateOnEveryEventBesideThePrimary() async throws {
        let primary = try LoadedModel.load(directory: Self.modelDirectory.deletingLastPathComponent()
            .appendingPathComponent("v1"))
        let candidate = try LoadedModel.load(directory: Self.modelDirectory)
        let deployment = ServingModels(primary: primary)
        deployment.trial(candidate, mode: .shadow)

        let reviews = try PipelineFixtures.devReviews(limit: 40)
        let input = try await PipelineBroker.createTopic("in", partitions: 2)
        let output = try await PipelineBroker.createTopic("out", partitions: 2)
        let shadow = try await PipelineBroker.createTopic("shadow", partitions: 2)
        try await PipelineBroker.produce(reviews.enumerated().map { ("review-\($0.offset)", Array($0.element.line.utf8)) },
                                         to: input)
        var settings = StreamSettings()
        settings.inputTopics = [input]
        settings.outputTopic = output
        settings.shadowTopic = shadow
        settings.deadLetterTopic = try await PipelineBroker.createTopic("dlq", partitions: 1)
        let records = try await PipelineBroker.runService(settings: settings, models: deployment,
                                                         group: PipelineBroker.uniqueName("group")) {
            try await PipelineBroker.read([output, shadow], count: 2 * reviews.count)
        }

        let decoded = try records.map { ($0.topic, try JSONDecoder().decode(EnrichedResult.self, from: Data($0.value ?? []))) }
        let primaryResults = decoded.filter { $0.0 == output }.map(\.1)
        let shadowResults = decoded.filter { $0.0 == shadow }.map(\.1)
        #expect(Set(primaryResults.map(\.id)) == Set(reviews.map(\.id)))
        #expect(Set(shadowResults.map(\.id)) == Set(reviews.map(\.id)))
        #expect(primaryResults.allSatisfy { $0.model.version == "v1" }, "primary results must stay on the primary")
        #expect(shadowResults.allSatisfy { $0.model.version == "v2" }, "the shadow topic carries the candidate's answers")
    }
}
