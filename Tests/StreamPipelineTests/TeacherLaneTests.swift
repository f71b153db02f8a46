import Foundation
import Kafka
import Testing
@testable import StreamPipeline

/// The teacher lane's contract with the shards: a stable sample, and samples beyond its room skipped and
/// counted rather than waited for.
@Suite struct TeacherLaneTests {
    static let modelDirectory = PipelineFixtures.sharedRoot.appendingPathComponent("models/minirbt-h256-chnsenticorp/v2")

    static func source(_ offset: Int64) -> SourceCoordinates {
        SourceCoordinates(topic: "reviews", partition: 0, offset: offset, timestamp: nil)
    }

    @Test func sampleIsByKeyThenIdThenCoordinatesAndHasTheAskedShare() {
        let threshold: UInt64 = 200_000   // 20 %
        let keys = (0..<5000).map { Array("user-\($0)".utf8) }
        let sampled = keys.filter { TeacherLane.isSampled(key: $0, id: nil, source: Self.source(0), threshold: threshold) }
        #expect(abs(Double(sampled.count) / Double(keys.count) - 0.2) < 0.02, "\(sampled.count) of \(keys.count)")
        // The key decides whatever the id and offset: a redelivery or another replica samples the same events.
        for key in keys.prefix(200) {
            let first = TeacherLane.isSampled(key: key, id: "a", source: Self.source(1), threshold: threshold)
            #expect(first == TeacherLane.isSampled(key: key, id: "b", source: Self.source(99), threshold: threshold))
        }
        // Without a key the id decides, without either the coordinates; everything at 100 %, nothing at 0.
        let byID = (0..<200).map { TeacherLane.isSampled(key: nil, id: "event-\($0)", source: Self.source(Int64($0)), threshold: threshold) }
        #expect(byID == (0..<200).map { TeacherLane.isSampled(key: nil, id: "event-\($0)", source: Self.source(7), threshold: threshold) })
        #expect((0..<200).allSatisfy { TeacherLane.isSampled(key: nil, id: nil, source: Self.source(Int64($0)), threshold: 1_000_000) })
        #expect(!(0..<200).contains { TeacherLane.isSampled(key: nil, id: nil, source: Self.source(Int64($0)), threshold: 0) })
    }

    @Test(.enabled(if: FileManager.default.fileExists(atPath: modelDirectory.appendingPathComponent("model.safetensors").path)))
    func samplesBeyondItsRoomAreSkippedAndCountedWithoutWaiting() throws {
        let recording = RecordingMetricsFactory()
        let metrics = PipelineMetrics(factory: recording)
        let teacher = try LoadedModel.load(directory: Self.modelDirectory)
        var settings = TeacherLane.Settings()
        settings.capacity = 3
        settings.sampleRate = 1
        let lane = TeacherLane(teacher: teacher, settings: settings, metrics: metrics, logger: PipelineBroker.logger)
        #expect(lane.accepts(teacher))
        let samples = (0..<5).map {
            TeacherSample(id: "event-\($0)", event: TextEvent(text: "很好"), key: nil, source: Self.source(Int64($0)),
                          student: teacher.identity, prediction: Prediction(label: "positive", score: 0.9, truncated: false))
        }
        // The lane is not running: nothing drains, so the offer returns at once with 3 taken, 2 skipped.
        lane.offer(samples)
        #expect(recording.count("minirbt_teacher_skipped_total", [:]) == 2)
        lane.offer(Array(samples.prefix(1)))
        #expect(recording.count("minirbt_teacher_skipped_total", [:]) == 3)
    }

    @Test(.enabled(if: FileManager.default.fileExists(atPath: modelDirectory.appendingPathComponent("model.safetensors").path)),
          .timeLimit(.minutes(4)))
    func aSoftLabelTopicThatNeverAcceptsHoldsNoResultBack() async throws {
        let model = try LoadedModel.load(directory: Self.modelDirectory)
        let input = try await PipelineBroker.createTopic("teacher-in", partitions: 2)
        let output = try await PipelineBroker.createTopic("teacher-out", partitions: 2)
        let dlq = try await PipelineBroker.createTopic("teacher-dlq", partitions: 1)
        let reviews = try PipelineFixtures.devReviews(limit: 40)
        try await PipelineBroker.produce(reviews.map { (key: $0.id, value: Array($0.line.utf8)) }, to: input)
        var settings = StreamSettings()
        settings.inputTopics = [input]
        settings.outputTopic = output
        settings.deadLetterTopic = dlq
        settings.shards = 2
        settings.shard.maxBatch = 8

        let recording = RecordingMetricsFactory()
        let metrics = PipelineMetrics(factory: recording)
        var laneSettings = TeacherLane.Settings()
        laneSettings.capacity = 4
        laneSettings.sampleRate = 1
        laneSettings.softLabelTopic = "never-accepts"
        laneSettings.retryBackoff = .milliseconds(20)
        // Every delivery fails as a broker outage would: the lane retries, holding its 4 samples, until shutdown.
        let lane = TeacherLane(teacher: model, settings: laneSettings, metrics: metrics, logger: PipelineBroker.logger) { _, onDelivery in
            onDelivery(.failure(KafkaError(code: -195, name: "_TRANSPORT", message: "broker down", operation: "producing")))
        }
        let records = try await PipelineBroker.runService(
            settings: settings, models: ServingModels(primary: model), group: PipelineBroker.uniqueName("teacher-group"),
            metrics: metrics, teacher: lane) { _ in
            let records = try await PipelineBroker.read([output, dlq], count: reviews.count)
            // The lane's thread runs at nice 19: on a machine busy with other suites every result can be in
            // before it has answered its 4 samples (one CI run stopped first, and counted all 40 as skipped).
            // Stop only once it has, or after a deadline that then fails the count below.
            let deadline = ContinuousClock.now + .seconds(120)
            while recording.count("minirbt_teacher_compared_total", ["version": "v2"]) < 4, ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(50))
            }
            return records
        }
        #expect(records.count == reviews.count && records.allSatisfy { $0.topic == output }, "every event has its result")
        // The service stopped gracefully (runService waits for it): the stuck samples were given up at shutdown.
        #expect(recording.count("minirbt_teacher_compared_total", ["version": "v2"]) == 4)
        #expect(recording.count("minirbt_teacher_skipped_total", [:]) == reviews.count - 4)
        #expect(recording.count("minirbt_soft_labels_failed_total", [:]) == 4)
        #expect(recording.count("minirbt_soft_labels_published_total", [:]) == 0)
    }
}
