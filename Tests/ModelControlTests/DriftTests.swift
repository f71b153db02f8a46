import Foundation
import Testing
@testable import ModelControl

/// The PSI and its binning, on values computed by hand, and the baseline that `publish --baseline` stores.
@Suite struct DriftTests {
    @Test func populationStabilityMatchesHandComputedValues() throws {
        // Σ (a − e) ln(a / e) over the shares.
        #expect(PopulationStability.index(expected: [10, 20, 30, 40], actual: [10, 20, 30, 40]) == 0)
        let textbook = try #require(PopulationStability.index(expected: [10, 20, 30, 40], actual: [20, 20, 30, 30]))
        #expect(abs(textbook - (0.1 * log(2.0) - 0.1 * log(0.75))) < 1e-12)
        #expect(abs(textbook - 0.0980829) < 1e-6)
        let skewed = try #require(PopulationStability.index(expected: [50, 50], actual: [90, 10]))
        #expect(abs(skewed - 0.8788898) < 1e-6)
        // Counts, not shares: scaling either side changes nothing.
        #expect(PopulationStability.index(expected: [1, 2, 3, 4], actual: [200, 200, 300, 300]) == textbook)
    }

    /// An empty bin counts as ε = 1e-4 of its side: finite, and large when the other side fills it.
    @Test func emptyBinsAreFlooredAtEpsilon() throws {
        let psi = try #require(PopulationStability.index(expected: [100, 0], actual: [50, 50]))
        let expected = (0.5 - 1) * log(0.5) + (0.5 - 1e-4) * log(0.5 / 1e-4)
        #expect(abs(psi - expected) < 1e-12)
        #expect(abs(psi - 4.6043) < 1e-4)
        #expect(PopulationStability.index(expected: [0, 10], actual: [0, 7]) == 0)
    }

    @Test func populationStabilityRefusesWhatItCannotCompare() {
        #expect(PopulationStability.index(expected: [1, 2], actual: [1, 2, 3]) == nil)
        #expect(PopulationStability.index(expected: [], actual: []) == nil)
        #expect(PopulationStability.index(expected: [0, 0], actual: [1, 2]) == nil)
        #expect(PopulationStability.index(expected: [1, 2], actual: [0, 0]) == nil)
        #expect(PopulationStability.index(expected: [1, -2], actual: [1, 2]) == nil)
    }

    @Test func verdictsAtTheUsualThresholds() {
        #expect(PopulationStability.verdict(0) == .stable)
        #expect(PopulationStability.verdict(0.0999) == .stable)
        #expect(PopulationStability.verdict(0.1) == .moderate)
        #expect(PopulationStability.verdict(0.2499) == .moderate)
        #expect(PopulationStability.verdict(0.25) == .significant)
        #expect(PopulationStability.verdict(4.6) == .significant)
    }

    @Test func valuesFallInHalfOpenBins() {
        let edges = [0.5, 0.9]
        #expect(BinnedCounts.bin(of: 0.4, edges: edges) == 0)
        #expect(BinnedCounts.bin(of: 0.5, edges: edges) == 1)
        #expect(BinnedCounts.bin(of: 0.89, edges: edges) == 1)
        #expect(BinnedCounts.bin(of: 0.9, edges: edges) == 2)
        #expect(BinnedCounts.bin(of: 7, edges: edges) == 2)
        #expect(BinnedCounts.bin(of: .nan, edges: edges) == 0)
        #expect(BinnedCounts.bin(of: 3, edges: []) == 0)
        #expect(BinnedCounts(binning: [0.1, 0.5, 0.6, 0.95, 1], edges: edges).counts == [1, 2, 2])
    }

    @Test func quantileEdgesCutTheBaselineIntoEqualShares() {
        let values = (1...100).map(Double.init)
        let edges = BinnedCounts.quantileEdges(of: values, bins: 10)
        #expect(edges == [11, 21, 31, 41, 51, 61, 71, 81, 91])
        #expect(BinnedCounts(binning: values, edges: edges).counts == [Int](repeating: 10, count: 10))
        // Repeated values give fewer bins, never an empty first bin or a repeated edge.
        #expect(BinnedCounts.quantileEdges(of: [1, 1, 1, 1, 2, 2, 2, 2, 2, 3], bins: 10) == [2, 3])
        #expect(BinnedCounts.quantileEdges(of: [5, 5, 5], bins: 10) == [])
        #expect(BinnedCounts.quantileEdges(of: [], bins: 10) == [])
    }

    /// A manifest is input: a baseline whose counts do not fit its bins or labels fails decoding, so
    /// nothing later indexes out of range.
    @Test func inconsistentBaselinesAreRefusedWhenDecoded() throws {
        let valid = try baseline()
        let encoded = try JSONSerialization.jsonObject(with: JSONEncoder().encode(valid)) as? [String: Any]
        var json = try #require(encoded)
        #expect(try JSONDecoder().decode(DriftBaseline.self, from: JSONSerialization.data(withJSONObject: json)) == valid)

        let mutations: [(String, ([String: Any]) -> [String: Any])] = [
            ("one count too many", { var j = $0; j["label_counts"] = [1, 2, 3]; return j }),
            ("negative label count", { var j = $0; j["label_counts"] = [-1, 5]; return j }),
            ("bins without their counts", { var j = $0; j["length"] = ["edges": [10, 20], "counts": [4]]; return j }),
            ("unsorted edges", { var j = $0; j["confidence"] = ["edges": [0.9, 0.6], "counts": [1, 1, 2]]; return j }),
            ("samples against counts", { var j = $0; j["samples"] = 999; return j }),
            ("share above 1", { var j = $0; j["unknown_token_rate"] = 2; return j }),
        ]
        for (name, mutate) in mutations {
            json = try #require(encoded)
            let bytes = try JSONSerialization.data(withJSONObject: mutate(json))
            #expect(throws: DecodingError.self, "\(name)") { try JSONDecoder().decode(DriftBaseline.self, from: bytes) }
        }

        // Counts whose sum overflows an Int decode (the totals saturate) and compare without trapping.
        json = try #require(encoded)
        json["label_counts"] = [Int.max, Int.max]
        json["samples"] = Int.max
        json["length"] = ["edges": [20, 30], "counts": [Int.max, Int.max, 5]]
        let huge = try JSONDecoder().decode(DriftBaseline.self, from: JSONSerialization.data(withJSONObject: json))
        let drift = VersionDrift.compare(observations(), version: "v1", baseline: huge, minimumEvents: 1)
        #expect(drift.features.first { $0.feature == .label }?.baseline == "negative 50%, positive 50%")
        #expect(drift.features.allSatisfy { $0.psi?.isFinite == true })
    }

    @Test func aWindowLikeTheBaselineHasNoDriftAndAShiftedOneHas() throws {
        let baseline = try baseline()
        let same = VersionDrift.compare(observations(), version: "v1", baseline: baseline, minimumEvents: 10)
        #expect(same.features.map(\.feature) == [.label, .confidence, .length])
        #expect(same.features.allSatisfy { $0.psi == 0 && $0.verdict == .stable })
        #expect(same.baselineSamples == 40)
        #expect(same.features.first?.baseline == "negative 50%, positive 50%")

        let negative = observations().map { var o = $0; o.label = "negative"; return o }
        let shifted = VersionDrift.compare(negative, version: "v1", baseline: baseline, minimumEvents: 10)
        #expect(shifted.features.first { $0.feature == .label }?.verdict == .significant)
        #expect(shifted.features.first { $0.feature == .length }?.psi == 0)
        #expect(shifted.worstPSI == shifted.features.first { $0.feature == .label }?.psi)

        let early = VersionDrift.compare(Array(negative.prefix(9)), version: "v1", baseline: baseline, minimumEvents: 10)
        #expect(early.features.allSatisfy { $0.psi == nil }, "below the minimum the index is not reported")
        #expect(early.windowEvents == 9)

        let off = VersionDrift.compare(negative, version: "v0", baseline: nil, minimumEvents: 10)
        #expect(off.baselineSamples == nil && off.features.isEmpty)
    }

    /// 40 answers: labels half and half, scores 0.55 … 0.94, lengths 10 … 49, one [UNK] in ten texts.
    private func observations() -> [DriftBaseline.Observation] {
        (0..<40).map { index in
            DriftBaseline.Observation(label: index % 2 == 0 ? "negative" : "positive", score: 0.55 + Double(index) / 100,
                                      tokens: 10 + index, unknownTokens: index % 10 == 0 ? 1 : 0)
        }
    }

    private func baseline() throws -> DriftBaseline {
        try DriftBaseline(observations: observations(), labels: ["negative", "positive"], source: "sample.jsonl",
                          sourceSHA256: String(repeating: "0", count: 64), maxLength: 128)
    }
}

/// `publish --baseline` on the real model: what the manifest then holds, under its digest.
@Suite struct BaselinePublishTests {
    static let train = Fixtures.sharedModels.deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("data/chnsenticorp/train.jsonl")

    @Test("a baseline of 64 train reviews: label counts, bins, [UNK] share and the sample's sha256 in the verified manifest")
    func publishStoresTheBaseline() throws {
        let root = try Fixtures.temporaryDirectory("baseline")
        defer { try? FileManager.default.removeItem(at: root) }
        let registry = ModelRegistry(root: root)
        var steps: [PublishStep] = []
        try registry.publish(Fixtures.reference("v2"), from: Fixtures.checkpoint("v2"), baseline: (Self.train, 64)) {
            steps.append($0)
        }
        let bundle = try registry.verify(Fixtures.reference("v2"))
        let baseline = try #require(bundle.manifest.baseline)
        #expect(steps.contains { if case .profiled(64, _) = $0 { true } else { false } })
        #expect(baseline.samples == 64 && baseline.source == "train.jsonl" && baseline.maxLength == 128)
        #expect(baseline.sourceSHA256 == (try FileDigest.sha256(of: Self.train)).hex)
        #expect(baseline.labels == ["negative", "positive"])
        #expect(baseline.labelCounts.reduce(0, +) == 64)
        // The trained model finds both kinds among the first train reviews (about a third negative).
        #expect(baseline.labelCounts.allSatisfy { $0 >= 10 }, "\(baseline.labelCounts)")
        #expect(baseline.confidence.total == 64 && baseline.length.total == 64)
        #expect(baseline.length.edges.count >= 5, "token lengths of reviews vary: \(baseline.length.edges)")
        #expect(baseline.confidence.edges.allSatisfy { (0.5...1).contains($0) }, "\(baseline.confidence.edges)")
        #expect((0..<0.05).contains(baseline.unknownTokenRate), "reviews are inside the vocabulary: \(baseline.unknownTokenRate)")
        // The baseline is in the manifest's bytes, hence under the digest a rollout signs.
        let bytes = try Data(contentsOf: registry.directory(for: Fixtures.reference("v2")).appendingPathComponent(ModelManifest.fileName))
        #expect(String(decoding: bytes, as: UTF8.self).contains("\"source_sha256\""))

        let plain = try registry.publish(Fixtures.reference("v1"), from: Fixtures.checkpoint("v1"))
        #expect(plain.baseline == nil)
    }

    @Test("a baseline file without a text is refused with the path")
    func emptyBaselineIsRefused() throws {
        let root = try Fixtures.temporaryDirectory("baseline-empty")
        defer { try? FileManager.default.removeItem(at: root) }
        let empty = root.appendingPathComponent("empty.jsonl")
        try Data("\n".utf8).write(to: empty)
        #expect(throws: RegistryError.invalidBaseline(path: empty.path, reason: "the sample holds no text")) {
            try ModelRegistry(root: root).publish(Fixtures.reference("v1"), from: Fixtures.checkpoint("v1"), baseline: (empty, nil))
        }
        #expect(!ModelRegistry(root: root).contains(Fixtures.reference("v1")))
    }
}
