import Foundation
import ModelControl
import Testing
@testable import StreamPipeline

/// The replica's sliding windows: bounded by events and by age, per version, exported as gauges.
@Suite struct DriftMonitorTests {
    /// 20 predictions: labels alternating, scores 0.6 … 0.98, lengths 20 … 39.
    private func predictions(label: String? = nil, count: Int = 20) -> [Prediction] {
        (0..<count).map { index in
            var prediction = Prediction(label: label ?? (index % 2 == 0 ? "negative" : "positive"),
                                        score: 0.6 + Float(index % 20) / 50, truncated: false)
            prediction.tokens = 20 + index % 20
            return prediction
        }
    }

    private func baseline() throws -> DriftBaseline {
        let observations = predictions().map {
            DriftBaseline.Observation(label: $0.label, score: $0.score.map(Double.init), tokens: $0.tokens, unknownTokens: 0)
        }
        return try DriftBaseline(observations: observations, labels: ["negative", "positive"], source: "s.jsonl",
                                 sourceSHA256: "", maxLength: 128)
    }

    @Test func theWindowKeepsTheLatestEventsAndExportsOneGaugePerFeature() throws {
        let factory = RecordingMetricsFactory()
        var settings = DriftSettings()
        (settings.windowEvents, settings.minimumEvents) = (20, 20)
        let monitor = DriftMonitor(settings: settings, factory: factory)
        let start = ContinuousClock.now
        monitor.observe(predictions(count: 10), version: "v2", baseline: try baseline(), now: start)
        let warming = try #require(monitor.reports(now: start).first)
        #expect(warming.windowEvents == 10 && warming.features.allSatisfy { $0.psi == nil })
        #expect(!factory.exists("minirbt_drift_psi", ["version": "v2", "feature": "label"]))

        monitor.observe(predictions(), version: "v2", baseline: try baseline(), now: start)
        let like = try #require(monitor.reports(now: start).first)
        #expect(like.windowEvents == 20, "at most --drift-window-events")
        #expect(like.features.allSatisfy { $0.psi == 0 }, "the latest 20 are the baseline's own answers: \(like.features)")
        #expect(factory.values("minirbt_drift_psi", ["version": "v2", "feature": "label"]).last == 0)

        // The window slides: 20 negative answers push the mixed ones out.
        monitor.observe(predictions(label: "negative"), version: "v2", baseline: try baseline(), now: start)
        let shifted = try #require(monitor.reports(now: start).first)
        let label = try #require(shifted.features.first { $0.feature == .label }?.psi)
        #expect(label > PopulationStability.significantThreshold)
        #expect(factory.values("minirbt_drift_psi", ["version": "v2", "feature": "label"]).last == label)
    }

    @Test func oldPredictionsLeaveAndVersionsWithoutABaselineReportDriftOff() throws {
        var settings = DriftSettings()
        (settings.windowEvents, settings.minimumEvents, settings.windowDuration) = (100, 10, .seconds(60))
        let monitor = DriftMonitor(settings: settings, factory: RecordingMetricsFactory())
        let start = ContinuousClock.now
        monitor.observe(predictions(), version: "v1", baseline: nil, now: start)
        monitor.observe(predictions(), version: "v2", baseline: try baseline(), now: start + .seconds(30))

        let both = monitor.reports(now: start + .seconds(45))
        #expect(both.map(\.version) == ["v1", "v2"])
        #expect(both[0].baselineSamples == nil && both[0].features.isEmpty, "no baseline: drift off")
        #expect(both[1].features.count == 3)

        let later = monitor.reports(now: start + .seconds(61))
        #expect(later.map(\.version) == ["v2"], "v1's predictions are older than the window")
        #expect(monitor.reports(now: start + .seconds(91)).isEmpty)

        // A rollout replaced v2 by v3: v2's window goes at once, not after the window's age.
        monitor.observe(predictions(), version: "v2", baseline: try baseline(), now: start + .seconds(100))
        monitor.observe(predictions(), version: "v3", baseline: try baseline(), now: start + .seconds(100))
        monitor.retain(versions: ["v3"])
        #expect(monitor.reports(now: start + .seconds(100)).map(\.version) == ["v3"])
    }
}
