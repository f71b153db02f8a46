import Foundation
import KafkaTestSupport
import Testing
import MiniRBT
import Synchronization
@testable import StreamPipeline

/// Canary and shadow batches alternate two models; each must keep its prepared session (packed weights)
/// instead of rebuilding it on every switch.
@Suite struct PredictorSessionTests {
    static let models = SharedData.models

    static func load(_ version: String) throws -> LoadedModel {
        try LoadedModel.load(directory: models.appendingPathComponent(version))
    }

    static let events = ["房间很干净，服务也很热情。", "前台态度恶劣，非常失望。"].map { TextEvent(text: $0) }

    @Test func alternatingModelsCreateOneSessionEach() throws {
        let v1 = try Self.load("v1"), v2 = try Self.load("v2")
        let predictor = Predictor()
        var first: [Prediction] = []
        for batch in 0..<20 {
            predictor.retainSessions(for: [v1, v2])
            let fromV1 = try predictor.predict(Self.events, with: v1)
            _ = try predictor.predict(Self.events, with: v2)
            if batch == 0 { first = fromV1 }
            #expect(fromV1 == first, "a reused session gives the same answers")
        }
        #expect(predictor.sessionsCreated == 2)
        #expect(predictor.cachedSessionCount == 2)
    }

    /// Every precision asked for serves: fast where this CPU has a kernel, else fp32 with the reason; the
    /// metric's first sighting of an outcome is what the shards log, so two shards warn once.
    @Test(arguments: Precision.allCases)
    func eachSessionReportsThePrecisionItServes(requested: Precision) throws {
        let v2 = try Self.load("v2")
        let reports = Mutex<[SessionPrecision]>([])
        let predictor = Predictor(precision: requested) { session in reports.withLock { $0.append(session) } }
        _ = try predictor.predict(Self.events, with: v2)
        _ = try predictor.predict(Self.events, with: v2)
        let seen = reports.withLock { $0 }
        #expect(seen.count == 1, "one report per prepared session")
        let report = try #require(seen.first)
        #expect(report.requested == requested)
        switch RuntimeInfo.kernel(for: requested) {
        case .success:
            #expect(report.served == requested || report.fallbackReason?.contains("agrees with fp32") == true)
        case .failure:
            #expect(report.served == .fp32)
            #expect(report.fallbackReason?.contains("serving this model in fp32") == true)
        }
        let metrics = PipelineMetrics()
        #expect(metrics.precisionServed(report))
        #expect(!metrics.precisionServed(report), "a second shard with the same outcome does not warn again")
    }

    @Test func sessionsOfModelsNoLongerServingAreDropped() throws {
        let v1 = try Self.load("v1"), v2 = try Self.load("v2")
        let predictor = Predictor()
        _ = try predictor.predict(Self.events, with: v1)
        _ = try predictor.predict(Self.events, with: v2)
        predictor.retainSessions(for: [v2])
        #expect(predictor.cachedSessionCount == 1)
        _ = try predictor.predict(Self.events, with: v2)
        #expect(predictor.sessionsCreated == 2)
        // Without retainSessions the cache is still bounded.
        for _ in 0..<(Predictor.maximumSessions + 2) {
            _ = try predictor.predict(Self.events, with: try Self.load("v1"))
        }
        #expect(predictor.cachedSessionCount <= Predictor.maximumSessions)
    }
}

/// Throughput of a 50 % canary against a single model, with the per-model session cache and with the
/// previous behaviour (one cached session, rebuilt at every model switch), on 32-event batches of the dev
/// reviews. A measurement, not a check: runs only with MINIRBT_BENCH=1 and prints its figures.
@Suite struct CanaryThroughputBench {
    @Test(.enabled(if: ProcessInfo.processInfo.environment["MINIRBT_BENCH"] == "1"))
    func canaryVersusSingle() throws {
        let v1 = try PredictorSessionTests.load("v1"), v2 = try PredictorSessionTests.load("v2")
        let reviews = try PipelineFixtures.devReviews(limit: 320).map { TextEvent(id: $0.id, text: $0.text) }
        let batches = stride(from: 0, to: reviews.count, by: 32).map { Array(reviews[$0..<min($0 + 32, reviews.count)]) }

        func measure(_ label: String, oneSessionOnly: Bool, canary: Bool) throws {
            let predictor = Predictor()
            _ = try predictor.predict(Array(reviews.prefix(4)), with: v1) // warm-up outside the timing
            let clock = ContinuousClock()
            let elapsed = try clock.measure {
                for batch in batches {
                    let parts = canary
                        ? [(v1, batch.enumerated().filter { $0.offset % 2 == 0 }.map(\.element)),
                           (v2, batch.enumerated().filter { $0.offset % 2 == 1 }.map(\.element))]
                        : [(v1, batch)]
                    for (model, events) in parts {
                        // The old Predictor kept only the last model's session.
                        if oneSessionOnly { predictor.retainSessions(for: [model]) }
                        _ = try predictor.predict(events, with: model)
                    }
                }
            }
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
            print("bench \(label): \(reviews.count) events in \(String(format: "%.2f", seconds)) s = "
                  + "\(String(format: "%.1f", Double(reviews.count) / seconds)) events/s, sessions created \(predictor.sessionsCreated)")
        }
        try measure("single model", oneSessionOnly: false, canary: false)
        try measure("50% canary, session per model", oneSessionOnly: false, canary: true)
        try measure("50% canary, one session (before)", oneSessionOnly: true, canary: true)
    }
}
