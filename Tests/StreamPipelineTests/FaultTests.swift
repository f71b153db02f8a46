import Foundation
import Kafka
import KafkaTestSupport
import Logging
import Testing
@testable import StreamPipeline

/// Issue #12 through a real broker: poison timestamps, records too large to publish as they are, a missing
/// output topic, and a burst of large events against the byte budget. Each test prints what it counted.
@Suite struct FaultTests {
    static let modelDirectory = SharedData.model("v2")
    static var hasModel: Bool { FileManager.default.fileExists(atPath: modelDirectory.path) }

    static func settings(input: String, output: String, dlq: String) -> StreamSettings {
        var settings = StreamSettings()
        settings.inputTopics = [input]
        settings.outputTopic = output
        settings.deadLetterTopic = dlq
        settings.shards = 2
        settings.shard.maxBatch = 8
        settings.shard.queueCapacity = 8
        return settings
    }

    /// Counts outputs per input key and prints them.
    static func report(_ name: String, sent: [String], records: [ConsumerRecord], output: String) -> [String: [ConsumerRecord]] {
        let byKey = Dictionary(grouping: records) { $0.key.map { String(decoding: $0, as: UTF8.self) } ?? "<no key>" }
        let delivered = records.count
        let lost = sent.filter { byKey[$0] == nil }.count
        let duplicates = byKey.values.map { $0.count - 1 }.reduce(0, +)
        let deadLetters = records.filter { $0.topic != output }.count
        print("\(name): sent \(sent.count), delivered \(delivered), lost \(lost), duplicates \(duplicates), dead letters \(deadLetters)")
        return byKey
    }

    @Test(.enabled(if: hasModel, "needs ../shared/models"))
    func poisonTimestampsFlowThroughAndProduceResults() async throws {
        let model = try LoadedModel.load(directory: Self.modelDirectory)
        let input = try await PipelineBroker.createTopic("in", partitions: 2)
        let output = try await PipelineBroker.createTopic("out", partitions: 2)
        let dlq = try await PipelineBroker.createTopic("dlq", partitions: 1)
        let timestamps: [Int64] = [Int64.max, Int64.max - 1, 32_503_680_000_000 * 100, -5, 1,
                                   Int64(Date().timeIntervalSince1970 * 1000)]
        let events = timestamps.enumerated().map { index, timestamp in
            ProducerRecord(topic: input, key: Array("ts-\(index)".utf8),
                           value: Array(#"{"id":"ts-\#(index)","text":"房间很干净，服务很好"}"#.utf8),
                           timestampMilliseconds: timestamp)
        }
        try await PipelineBroker.produce(events)
        let settings = Self.settings(input: input, output: output, dlq: dlq)
        let records = try await PipelineBroker.runService(settings: settings, model: model,
                                                         group: PipelineBroker.uniqueName("group")) {
            try await PipelineBroker.read([output, dlq], count: events.count)
        }
        let byKey = Self.report("poison timestamps", sent: events.map { String(decoding: $0.key ?? [], as: UTF8.self) },
                                records: records, output: output)
        #expect(records.count == events.count)
        #expect(records.allSatisfy { $0.topic == output }, "every event yields a result")
        for (index, _) in timestamps.enumerated() { #expect(byKey["ts-\(index)"]?.count == 1) }
        let seen = try records.map { try JSONDecoder().decode(EnrichedResult.self, from: Data($0.value ?? [])).source?.timestamp }
        print("timestamps as consumed: \(seen.map { $0.map(String.init) ?? "nil" })")
    }

    @Test(.enabled(if: hasModel, "needs ../shared/models"))
    func eventsTooLargeToPublishAsTheyAreEndAsDeadLettersThatFit() async throws {
        let model = try LoadedModel.load(directory: Self.modelDirectory)
        let input = try await PipelineBroker.createTopic("in", partitions: 2,
                                                         config: ["max.message.bytes": "4000000"])
        let output = try await PipelineBroker.createTopic("out", partitions: 2)
        let dlq = try await PipelineBroker.createTopic("dlq", partitions: 1)
        // Malformed JSON of control characters: 6 bytes each once escaped into the dead letter's text form.
        let controls = Array("{".utf8) + [UInt8](repeating: 0x01, count: 450_000)
        let hugeID = String(repeating: "i", count: 1_100_000)
        var large: [ProducerRecord] = [
            ProducerRecord(topic: input, key: Array("controls".utf8), value: controls),
            ProducerRecord(topic: input, key: Array("huge-id".utf8),
                           value: Array(#"{"id":"\#(hugeID)","text":"很好"}"#.utf8)),
            ProducerRecord(topic: input, key: Array("forged-header".utf8), value: Array(#"{"id":"f","text":"很好"}"#.utf8),
                           headers: [KafkaHeader(name: "minirbt-error", value: "forged")]),
        ]
        for index in 0..<6 {
            large.append(ProducerRecord(topic: input, key: Array("ok-\(index)".utf8),
                                         value: Array(#"{"id":"ok-\#(index)","text":"不错"}"#.utf8)))
        }
        let events = large
        try await PipelineBroker.produce(events, properties: ["message.max.bytes": "4000000"])
        let settings = Self.settings(input: input, output: output, dlq: dlq)
        let records = try await PipelineBroker.runService(settings: settings, model: model,
                                                         group: PipelineBroker.uniqueName("group")) {
            try await PipelineBroker.read([output, dlq], count: events.count)
        }
        let keys = events.map { String(decoding: $0.key ?? [], as: UTF8.self) }
        let byKey = Self.report("too large", sent: keys, records: records, output: output)
        for record in records where (record.value?.count ?? 0) > 10_000 {
            print("too large: \(String(decoding: record.key ?? [], as: UTF8.self)) → \(record.topic == output ? "result" : "dead letter") of \(record.value?.count ?? 0) bytes")
        }
        for key in keys { #expect(byKey[key]?.count == 1, "\(key)") }
        #expect(records.allSatisfy { ($0.value?.count ?? 0) <= settings.maxRecordBytes })
        let controlsLetter = try JSONDecoder().decode(DeadLetter.self, from: Data(byKey["controls"]?.first?.value ?? []))
        #expect(controlsLetter.error.code == .malformedJSON)
        #expect(controlsLetter.valueTruncated != nil && controlsLetter.valueSize == controls.count)
        let idLetter = try JSONDecoder().decode(DeadLetter.self, from: Data(byKey["huge-id"]?.first?.value ?? []))
        #expect(idLetter.error.code == .resultTooLarge)
        let forged = try #require(byKey["forged-header"]?.first)
        #expect(forged.topic == output)
        #expect(!forged.headers.contains { $0.name == "minirbt-error" })
    }

    @Test(.enabled(if: hasModel, "needs ../shared/models"))
    func aMissingOutputTopicStopsTheStartWithAClearMessage() async throws {
        let model = try LoadedModel.load(directory: Self.modelDirectory)
        let input = try await PipelineBroker.createTopic("in", partitions: 1)
        let dlq = try await PipelineBroker.createTopic("dlq", partitions: 1)
        let missing = PipelineBroker.uniqueName("never-created")
        let settings = Self.settings(input: input, output: missing, dlq: dlq)
        let consumer = try KafkaConsumer(configuration: ConsumerConfiguration(kafka: PipelineBroker.kafka,
                                                                              groupID: PipelineBroker.uniqueName("group")),
                                         logger: PipelineBroker.logger)
        let producer = try KafkaProducer(configuration: ProducerConfiguration(kafka: PipelineBroker.kafka),
                                         logger: PipelineBroker.logger)
        let service = StreamService(settings: settings, consumer: consumer, producer: producer,
                                    models: ServingModels(primary: model), logger: PipelineBroker.logger)
        await #expect {
            try await withDeadline(.seconds(60), "the start-up check") { try await service.run() }
        } throws: { error in
            let text = "\(error)"
            print("missing topic: \(text)")
            return text.contains(missing) && text.contains("output topic")
        }
        await consumer.close()
        await producer.close()
    }

    @Test(.enabled(if: hasModel, "needs ../shared/models"))
    func aBurstOfLargeEventsStaysWithinTheByteBudget() async throws {
        let model = try LoadedModel.load(directory: Self.modelDirectory)
        let input = try await PipelineBroker.createTopic("in", partitions: 2,
                                                         config: ["max.message.bytes": "4000000"])
        let output = try await PipelineBroker.createTopic("out", partitions: 2)
        let dlq = try await PipelineBroker.createTopic("dlq", partitions: 1)
        let eventBytes = 1 << 20
        let count = 24
        let text = String(repeating: "好", count: (eventBytes - 64) / 3)
        let events = (0..<count).map { index in
            ProducerRecord(topic: input, key: Array("big-\(index)".utf8),
                           value: Array(#"{"id":"big-\#(index)","text":"\#(text)"}"#.utf8))
        }
        try await PipelineBroker.produce(events, properties: ["message.max.bytes": "4000000"])
        var settings = Self.settings(input: input, output: output, dlq: dlq)
        settings.maxBufferedBytes = 4 * eventBytes
        settings.shard.queueCapacity = 1000  // only the byte budget limits what is held
        let rssBefore = Self.residentMegabytes()
        let (records, peak) = try await PipelineBroker.runService(settings: settings, models: ServingModels(primary: model),
                                                                 group: PipelineBroker.uniqueName("group")) { service in
            let records = try await PipelineBroker.read([output, dlq], count: count)
            return (records, service.peakBufferedBytes)
        }
        _ = Self.report("1 MB burst", sent: events.map { String(decoding: $0.key ?? [], as: UTF8.self) },
                        records: records, output: output)
        let rssAfter = Self.residentMegabytes()
        print("1 MB burst: budget \(settings.maxBufferedBytes) bytes, peak held \(peak) bytes, "
              + "RSS \(rssBefore) → \(rssAfter) MB (peak \(Self.peakResidentMegabytes()) MB)")
        #expect(records.count == count)
        #expect(records.allSatisfy { $0.topic == output })
        // Admitting the record that crosses the limit is the most it can overshoot.
        #expect(peak <= settings.maxBufferedBytes + eventBytes + 4096, "held \(peak) bytes")
    }

    static func residentMegabytes() -> Int { statusField("VmRSS") }
    static func peakResidentMegabytes() -> Int { statusField("VmHWM") }

    private static func statusField(_ name: String) -> Int {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix(name + ":") }),
              let kilobytes = Int(line.split(separator: " ").dropFirst().first ?? "") else { return -1 }
        return kilobytes / 1024
    }
}
