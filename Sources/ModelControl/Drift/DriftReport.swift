import Foundation

/// How far one feature of a live window has drifted from the serving version's baseline.
public struct FeatureDrift: Codable, Sendable, Equatable {
    public var feature: DriftBaseline.Feature
    /// nil while the window holds fewer events than the minimum (too few for a meaningful index).
    public var psi: Double?
    /// Short summaries for people, e.g. `negative 35%, positive 65%` or `mean 0.962`.
    public var baseline: String
    public var window: String

    public init(feature: DriftBaseline.Feature, psi: Double?, baseline: String, window: String) {
        self.feature = feature
        self.psi = psi
        self.baseline = baseline
        self.window = window
    }

    public var verdict: PopulationStability.Verdict? { psi.map(PopulationStability.verdict) }

    enum CodingKeys: String, CodingKey {
        case feature, psi, baseline, window, verdict
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        feature = try container.decode(DriftBaseline.Feature.self, forKey: .feature)
        psi = try container.decodeIfPresent(Double.self, forKey: .psi)
        baseline = try container.decode(String.self, forKey: .baseline)
        window = try container.decode(String.self, forKey: .window)
    }

    /// The verdict is written too, for readers of `drift --json` and of heartbeats; it is derived on decoding.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(feature, forKey: .feature)
        try container.encodeIfPresent(psi, forKey: .psi)
        try container.encode(baseline, forKey: .baseline)
        try container.encode(window, forKey: .window)
        try container.encodeIfPresent(verdict, forKey: .verdict)
    }
}

/// The drift of one serving version on one replica, as heartbeats carry it.
public struct VersionDrift: Codable, Sendable, Equatable {
    public var version: String
    /// Events in the window now.
    public var windowEvents: Int
    /// The baseline's sample count; nil when the version was published without `--baseline` (drift off).
    public var baselineSamples: Int?
    /// One entry per feature; empty when drift is off.
    public var features: [FeatureDrift]
    /// Share of `[UNK]` tokens in the baseline and in the window.
    public var baselineUnknownTokenRate: Double?
    public var windowUnknownTokenRate: Double?

    public init(version: String, windowEvents: Int, baselineSamples: Int?, features: [FeatureDrift],
                baselineUnknownTokenRate: Double? = nil, windowUnknownTokenRate: Double? = nil) {
        self.version = version
        self.windowEvents = windowEvents
        self.baselineSamples = baselineSamples
        self.features = features
        self.baselineUnknownTokenRate = baselineUnknownTokenRate
        self.windowUnknownTokenRate = windowUnknownTokenRate
    }

    enum CodingKeys: String, CodingKey {
        case version, features
        case windowEvents = "window_events"
        case baselineSamples = "baseline_samples"
        case baselineUnknownTokenRate = "baseline_unknown_token_rate"
        case windowUnknownTokenRate = "window_unknown_token_rate"
    }

    /// The largest PSI of any feature, nil when none is known yet.
    public var worstPSI: Double? { features.compactMap(\.psi).max() }

    /// The window of `observations` against `baseline`; the PSI is left out (nil) until the window holds
    /// `minimumEvents` events.
    public static func compare(_ observations: [DriftBaseline.Observation], version: String,
                               baseline: DriftBaseline?, minimumEvents: Int) -> VersionDrift {
        let tokens = observations.reduce(0) { $0 + $1.tokens }
        let unknown = observations.reduce(0) { $0 + $1.unknownTokens }
        let windowUnknown = tokens > 0 ? Double(unknown) / Double(tokens) : nil
        guard let baseline else {
            return VersionDrift(version: version, windowEvents: observations.count, baselineSamples: nil,
                                features: [], windowUnknownTokenRate: windowUnknown)
        }
        let enough = observations.count >= max(1, minimumEvents)
        var features: [FeatureDrift] = []
        for feature in DriftBaseline.Feature.allCases {
            let expected = baseline.counts(of: feature)
            let actual: [Int]
            let summaries: (baseline: String, window: String)
            switch feature {
            case .label:
                // Labels nobody predicted in the baseline and the window (embedding models) give no index.
                guard !baseline.labels.isEmpty else { continue }
                actual = DriftBaseline.labelCounts(observations, labels: baseline.labels)
                summaries = (mix(baseline.labels, expected), mix(baseline.labels, actual))
            case .confidence:
                let scores = observations.compactMap(\.score)
                guard baseline.confidence.total > 0 else { continue }
                let binned = BinnedCounts(binning: scores, edges: baseline.confidence.edges)
                actual = binned.counts
                summaries = (meanText(baseline.confidence.mean, digits: 3), meanText(binned.mean, digits: 3))
            case .length:
                let binned = BinnedCounts(binning: observations.map { Double($0.tokens) }, edges: baseline.length.edges)
                actual = binned.counts
                summaries = (meanText(baseline.length.mean, digits: 1), meanText(binned.mean, digits: 1))
            }
            features.append(FeatureDrift(feature: feature,
                                         psi: enough ? PopulationStability.index(expected: expected, actual: actual) : nil,
                                         baseline: summaries.baseline, window: summaries.window))
        }
        return VersionDrift(version: version, windowEvents: observations.count, baselineSamples: baseline.samples,
                            features: features, baselineUnknownTokenRate: baseline.unknownTokenRate,
                            windowUnknownTokenRate: windowUnknown)
    }

    private static func mix(_ labels: [String], _ counts: [Int]) -> String {
        // In Double: a manifest's counts may sum past Int.max; each share stays within 0...100.
        let total = counts.reduce(0.0) { $0 + Double($1) }
        guard total > 0 else { return "-" }
        return zip(labels, counts).map { label, count in
            "\(label) \(Int((Double(count) * 100 / total).rounded()))%"
        }.joined(separator: ", ")
    }

    private static func meanText(_ mean: Double?, digits: Int) -> String {
        guard let mean else { return "-" }
        return "mean " + String(format: "%.\(digits)f", mean)
    }
}
