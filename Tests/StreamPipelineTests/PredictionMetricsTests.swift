import CoreMetrics
import Foundation
import KafkaTestSupport
import Kafka
import Logging
import MiniRBT
import Synchronization
import Testing
@testable import StreamPipeline

/// A metrics backend that keeps what it is given, by metric label and dimensions, for assertions. Passed to
/// `PipelineMetrics(factory:)`: the process-wide `MetricsSystem.bootstrap` is never touched, so tests running
/// in parallel cannot see each other's values.
final class RecordingMetricsFactory: MetricsFactory, Sendable {
    struct Key: Hashable {
        let label: String
        let dimensions: [String: String]
    }

    final class Handler: CounterHandler, RecorderHandler, TimerHandler, Sendable {
        let values = Mutex<[Double]>([])
        func increment(by amount: Int64) { values.withLock { $0.append(Double(amount)) } }
        func reset() { values.withLock { $0.removeAll() } }
        func record(_ value: Int64) { values.withLock { $0.append(Double(value)) } }
        func record(_ value: Double) { values.withLock { $0.append(value) } }
        func recordNanoseconds(_ duration: Int64) { values.withLock { $0.append(Double(duration)) } }
    }

    private let handlers = Mutex<[Key: Handler]>([:])

    private func handler(_ label: String, _ dimensions: [(String, String)]) -> Handler {
        let key = Key(label: label, dimensions: Dictionary(dimensions) { first, _ in first })
        return handlers.withLock { handlers in
            if let existing = handlers[key] { return existing }
            let fresh = Handler()
            handlers[key] = fresh
            return fresh
        }
    }

    func makeCounter(label: String, dimensions: [(String, String)]) -> any CounterHandler { handler(label, dimensions) }
    func makeRecorder(label: String, dimensions: [(String, String)], aggregate: Bool) -> any RecorderHandler {
        handler(label, dimensions)
    }
    func makeTimer(label: String, dimensions: [(String, String)]) -> any TimerHandler { handler(label, dimensions) }
    func destroyCounter(_ handler: any CounterHandler) {}
    func destroyRecorder(_ handler: any RecorderHandler) {}
    func destroyTimer(_ handler: any TimerHandler) {}

    /// Whether the metric was ever created (a counter can exist at 0).
    func exists(_ label: String, _ dimensions: [String: String]) -> Bool {
        handlers.withLock { $0[Key(label: label, dimensions: dimensions)] != nil }
    }

    /// A counter's total (0 when it was never created).
    func count(_ label: String, _ dimensions: [String: String]) -> Int {
        Int(values(label, dimensions).reduce(0, +))
    }

    /// Everything recorded into one series, in order.
    func values(_ label: String, _ dimensions: [String: String]) -> [Double] {
        handlers.withLock { $0[Key(label: label, dimensions: dimensions)] }?.values.withLock { $0 } ?? []
    }

    /// The totals of a counter by the value of one dimension, over the series whose other dimensions match.
    func counts(_ label: String, by dimension: String, where filter: [String: String]) -> [String: Int] {
        handlers.withLock { handlers in
            handlers.filter { key, _ in
                key.label == label && filter.allSatisfy { key.dimensions[$0.key] == $0.value }
            }.reduce(into: [:]) { result, entry in
                result[entry.key.dimensions[dimension] ?? "", default: 0] += Int(entry.value.values.withLock { $0.reduce(0, +) })
            }
        }
    }
}

@Suite struct PredictionMetricsTests {
    static let modelsRoot = SharedData.models

    private func prediction(_ label: String?, _ score: Float?, truncated: Bool = false) -> Prediction {
        Prediction(label: label, score: score, truncated: truncated)
    }

    /// Counts by version and label, the top scores as confidence values, truncations by version.
    @Test func predictionsAreCountedByVersionAndLabel() {
        let factory = RecordingMetricsFactory()
        let metrics = PipelineMetrics(factory: factory)

        metrics.predictions([prediction("positive", 0.9), prediction("negative", 0.75, truncated: true),
                             prediction("positive", 0.6)], version: "v1")
        metrics.predictions([prediction("positive", 0.99)], version: "v1")
        metrics.predictions([prediction("negative", 0.55), prediction("negative", 0.8)], version: "v2")
        metrics.predictions([], version: "v3")

        #expect(factory.count("minirbt_predictions_total", ["version": "v1", "label": "positive"]) == 3)
        #expect(factory.count("minirbt_predictions_total", ["version": "v1", "label": "negative"]) == 1)
        #expect(factory.count("minirbt_predictions_total", ["version": "v2", "label": "negative"]) == 2)
        #expect(!factory.exists("minirbt_predictions_total", ["version": "v2", "label": "positive"]))
        #expect(!factory.exists("minirbt_predictions_total", ["version": "v3", "label": ""]), "an empty batch records nothing")

        #expect(factory.values("minirbt_prediction_confidence", ["version": "v1"]).map { Float($0) } == [0.9, 0.75, 0.6, 0.99])
        #expect(factory.values("minirbt_prediction_confidence", ["version": "v2"]).map { Float($0) } == [0.55, 0.8])

        #expect(factory.count("minirbt_truncated_total", ["version": "v1"]) == 1)
        #expect(factory.exists("minirbt_truncated_total", ["version": "v2"]), "exported at 0 so the ratio is defined")
        #expect(factory.count("minirbt_truncated_total", ["version": "v2"]) == 0)
    }

    /// Token lengths per prediction, and the [UNK] share as two counters (both exported at 0).
    @Test func tokensAndUnknownTokensAreCountedByVersion() throws {
        let factory = RecordingMetricsFactory()
        let metrics = PipelineMetrics(factory: factory)
        var short = prediction("positive", 0.9), long = prediction("negative", 0.8)
        (short.tokens, short.unknownTokens) = (12, 0)
        (long.tokens, long.unknownTokens) = (128, 3)
        metrics.predictions([short, long], version: "v1")
        #expect(factory.values("minirbt_input_tokens", ["version": "v1"]) == [12, 128])
        #expect(factory.count("minirbt_tokens_total", ["version": "v1"]) == 140)
        #expect(factory.count("minirbt_unknown_tokens_total", ["version": "v1"]) == 3)

        // Through the predictor: two words outside the vocabulary are one [UNK] each between [CLS] and [SEP].
        let model = try LoadedModel.load(directory: Self.modelsRoot.appendingPathComponent("v1"))
        let predicted = try Predictor().predict([TextEvent(text: "房间很干净"), TextEvent(text: "ǂǂ ʬʬ")],
                                                with: model)
        #expect(predicted[0].tokens == 7 && predicted[0].unknownTokens == 0)
        #expect(predicted[1].tokens == 4 && predicted[1].unknownTokens == 2)
    }

    /// Models without a label (token classification, embeddings) are counted under an empty label, and add no
    /// confidence values.
    @Test func unlabelledPredictionsAreCountedWithoutConfidence() {
        let factory = RecordingMetricsFactory()
        let metrics = PipelineMetrics(factory: factory)
        metrics.predictions([prediction(nil, nil), prediction(nil, nil, truncated: true)], version: "emb-1")

        #expect(factory.count("minirbt_predictions_total", ["version": "emb-1", "label": ""]) == 2)
        #expect(factory.values("minirbt_prediction_confidence", ["version": "emb-1"]).isEmpty)
        #expect(factory.count("minirbt_truncated_total", ["version": "emb-1"]) == 1)
    }

    /// Through a real shard in shadow mode: every event is counted once under the primary's version and once
    /// under the candidate's, with the labels each model actually gave.
    @Test(.enabled(if: FileManager.default.fileExists(atPath: modelsRoot.appendingPathComponent("v2").path),
                   "needs ../shared/models"))
    func shadowPredictionsAreCountedUnderTheCandidatesVersion() async throws {
        let primary = try LoadedModel.load(directory: Self.modelsRoot.appendingPathComponent("v1"))
        let candidate = try LoadedModel.load(directory: Self.modelsRoot.appendingPathComponent("v2"))
        #expect(primary.identity.version != candidate.identity.version)
        let deployment = ServingModels(primary: primary)
        deployment.trial(candidate, mode: .shadow)
        let factory = RecordingMetricsFactory()
        let metrics = PipelineMetrics(factory: factory)
        var settings = ShardSettings()
        settings.maxBatch = 8
        let shard = InferenceShard(index: 0, settings: settings, models: deployment, metrics: metrics,
                                   logger: Logger(label: "prediction-metrics-test"), onDrained: { _ in })

        let reviews = try PipelineFixtures.devReviews(limit: 12)
        for (offset, review) in reviews.enumerated() {
            let record = ConsumerRecord(topic: "in", partition: 0, offset: Int64(offset), timestampMilliseconds: nil,
                                        key: Array("review-\(offset)".utf8), value: Array(review.line.utf8), headers: [])
            _ = shard.queue.push(WorkItem(record: record, receivedAt: .now))
        }
        shard.start()
        shard.stop()
        var outputs: [ShardOutput] = []
        for await batch in shard.outputs { outputs += batch }
        #expect(outputs.count == reviews.count)

        var primaryLabels: [String: Int] = [:]
        var shadowLabels: [String: Int] = [:]
        for output in outputs {
            guard case .result(let result) = output.outcome else {
                Issue.record("event \(output.record.offset) was dead-lettered")
                continue
            }
            primaryLabels[result.label ?? "", default: 0] += 1
            if let shadow = output.shadow { shadowLabels[shadow.label ?? "", default: 0] += 1 }
        }
        #expect(shadowLabels.values.reduce(0, +) == reviews.count)
        #expect(factory.counts("minirbt_predictions_total", by: "label",
                               where: ["version": primary.identity.version]) == primaryLabels)
        #expect(factory.counts("minirbt_predictions_total", by: "label",
                               where: ["version": candidate.identity.version]) == shadowLabels)
        #expect(factory.values("minirbt_prediction_confidence", ["version": candidate.identity.version]).count
                == reviews.count)
    }
}
