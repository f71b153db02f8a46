import Foundation
import Testing
@testable import StreamPipeline

/// Canary and shadow batches alternate two models; each must keep its prepared session (packed weights)
/// instead of rebuilding it on every switch.
@Suite struct PredictorSessionTests {
    static let models = PipelineFixtures.sharedRoot.appendingPathComponent("models/minirbt-h256-chnsenticorp")

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
