import Foundation

/// A distribution over bins cut at `edges`: bin 0 holds values below `edges[0]`, bin i values in
/// `[edges[i-1], edges[i])`, the last bin values at or above the last edge, so every value has a bin.
public struct BinnedCounts: Codable, Sendable, Equatable {
    /// Strictly increasing, finite.
    public let edges: [Double]
    /// `edges.count + 1` counts, none negative.
    public let counts: [Int]
    /// The mean of the values counted, for people: the bins are what drift is measured on.
    public let mean: Double?

    enum Failure: Error, CustomStringConvertible {
        case invalid(String)
        var description: String { switch self { case .invalid(let reason): reason } }
    }

    /// Throws unless `edges` are finite and strictly increasing and there is one more count than edges.
    public init(edges: [Double], counts: [Int], mean: Double? = nil) throws {
        guard edges.allSatisfy(\.isFinite), zip(edges, edges.dropFirst()).allSatisfy({ $0 < $1 }) else {
            throw Failure.invalid("bin edges must be finite and strictly increasing, found \(edges)")
        }
        guard counts.count == edges.count + 1 else {
            throw Failure.invalid("\(edges.count) bin edges need \(edges.count + 1) counts, found \(counts.count)")
        }
        guard counts.allSatisfy({ $0 >= 0 }) else { throw Failure.invalid("bin counts must not be negative: \(counts)") }
        guard mean?.isFinite ?? true else { throw Failure.invalid("the mean must be finite") }
        self.edges = edges
        self.counts = counts
        self.mean = mean
    }

    /// `values` counted into the bins of `edges` (which must be valid, as a decoded baseline's are).
    public init(binning values: some Sequence<Double>, edges: [Double]) {
        var counts = [Int](repeating: 0, count: edges.count + 1)
        var sum = 0.0
        for value in values {
            counts[Self.bin(of: value, edges: edges)] += 1
            if value.isFinite { sum += value }
        }
        let total = counts.reduce(0, +)
        self.edges = edges
        self.counts = counts
        self.mean = total > 0 ? sum / Double(total) : nil
    }

    enum CodingKeys: String, CodingKey {
        case edges, counts, mean
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        do {
            try self.init(edges: container.decode([Double].self, forKey: .edges),
                          counts: container.decode([Int].self, forKey: .counts),
                          mean: container.decodeIfPresent(Double.self, forKey: .mean))
        } catch let failure as Failure {
            throw DecodingError.dataCorruptedError(forKey: .counts, in: container, debugDescription: failure.description)
        }
    }

    /// The bin a value falls in; NaN goes to the first bin, so no input can fall outside.
    public static func bin(of value: Double, edges: [Double]) -> Int {
        var low = 0, high = edges.count
        // The first edge greater than the value is the bin's upper end.
        while low < high {
            let middle = (low + high) / 2
            if edges[middle] <= value { low = middle + 1 } else { high = middle }
        }
        return low
    }

    /// The sum of the counts, saturating at `Int.max`: a manifest's counts are input and may be huge.
    public var total: Int { Self.saturatingSum(counts) }

    /// The sum of `values`, saturating at `Int.max` (values are not negative).
    public static func saturatingSum(_ values: [Int]) -> Int {
        values.reduce(0) { sum, value in
            let next = sum.addingReportingOverflow(value)
            return next.overflow ? .max : next.partialValue
        }
    }

    /// The bin edges that cut `values` into up to `bins` groups of about equal size (the baseline's
    /// quantiles), without repeats: every bin then holds a fair share of the baseline, so no bin's PSI term
    /// rests on a handful of baseline samples.
    public static func quantileEdges(of values: [Double], bins: Int) -> [Double] {
        let sorted = values.filter(\.isFinite).sorted()
        guard bins > 1, !sorted.isEmpty else { return [] }
        var edges: [Double] = []
        for step in 1..<bins {
            let edge = sorted[min(sorted.count - 1, sorted.count * step / bins)]
            // An edge equal to the smallest value would leave bin 0 empty.
            if edge > sorted[0], edge > (edges.last ?? -.infinity) { edges.append(edge) }
        }
        return edges
    }
}

/// What a model answered on a representative sample when it was published (`publish --baseline`): the
/// reference the service's live drift is measured against. Stored in the manifest, so the manifest's
/// digest (and a signed rollout) covers it.
public struct DriftBaseline: Codable, Sendable, Equatable {
    /// The features drift is measured on.
    public enum Feature: String, Codable, Sendable, CaseIterable {
        /// The predicted label's mix, one bin per label.
        case label
        /// The top probability of each prediction, in quantile bins of the baseline.
        case confidence
        /// Tokens per text as the model saw them ([CLS] and [SEP] included), in quantile bins of the baseline.
        case length
    }

    /// How many quantile bins confidence and length are cut into (fewer where values repeat).
    public static let quantileBins = 10

    /// File name of the sample (no directory), for people reading the manifest.
    public var source: String
    /// Hex SHA-256 of the sample file.
    public var sourceSHA256: String
    /// Texts the model answered.
    public var samples: Int
    /// Tokens per text the sample was encoded with; compare the service's `--max-length`.
    public var maxLength: Int
    /// The model's labels, in the order of `labelCounts`; empty for models without labels.
    public var labels: [String]
    public var labelCounts: [Int]
    /// Top probability per prediction (classification models only; empty counts otherwise).
    public var confidence: BinnedCounts
    /// Tokens per text.
    public var length: BinnedCounts
    /// Share of the sample's tokens that were `[UNK]`.
    public var unknownTokenRate: Double

    public init(source: String, sourceSHA256: String, samples: Int, maxLength: Int, labels: [String],
                labelCounts: [Int], confidence: BinnedCounts, length: BinnedCounts, unknownTokenRate: Double) {
        self.source = source
        self.sourceSHA256 = sourceSHA256
        self.samples = samples
        self.maxLength = maxLength
        self.labels = labels
        self.labelCounts = labelCounts
        self.confidence = confidence
        self.length = length
        self.unknownTokenRate = unknownTokenRate
    }

    enum CodingKeys: String, CodingKey {
        case source, samples, labels, confidence, length
        case sourceSHA256 = "source_sha256"
        case maxLength = "max_length"
        case labelCounts = "label_counts"
        case unknownTokenRate = "unknown_token_rate"
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        source = try container.decode(String.self, forKey: .source)
        sourceSHA256 = try container.decode(String.self, forKey: .sourceSHA256)
        samples = try container.decode(Int.self, forKey: .samples)
        maxLength = try container.decode(Int.self, forKey: .maxLength)
        labels = try container.decode([String].self, forKey: .labels)
        labelCounts = try container.decode([Int].self, forKey: .labelCounts)
        confidence = try container.decode(BinnedCounts.self, forKey: .confidence)
        length = try container.decode(BinnedCounts.self, forKey: .length)
        unknownTokenRate = try container.decode(Double.self, forKey: .unknownTokenRate)
        // A manifest is input like any other: what the service later indexes by must agree here.
        guard labels.count == labelCounts.count, labelCounts.allSatisfy({ $0 >= 0 }) else {
            throw DecodingError.dataCorruptedError(forKey: .labelCounts, in: container,
                                                   debugDescription: "expected one count (not negative) per label")
        }
        guard samples > 0, length.total == samples else {
            throw DecodingError.dataCorruptedError(forKey: .samples, in: container,
                                                   debugDescription: "samples must be positive and equal the length counts' total")
        }
        guard unknownTokenRate.isFinite, (0...1).contains(unknownTokenRate) else {
            throw DecodingError.dataCorruptedError(forKey: .unknownTokenRate, in: container,
                                                   debugDescription: "expected a share in [0, 1]")
        }
    }

    /// The baseline's counts for `feature`.
    public func counts(of feature: Feature) -> [Int] {
        switch feature {
        case .label: labelCounts
        case .confidence: confidence.counts
        case .length: length.counts
        }
    }
}

extension DriftBaseline {
    /// One answer of the model, as the baseline and the live window both see it.
    public struct Observation: Sendable, Equatable {
        public var label: String?
        /// The top probability (classification only).
        public var score: Double?
        public var tokens: Int
        public var unknownTokens: Int

        public init(label: String?, score: Double?, tokens: Int, unknownTokens: Int) {
            self.label = label
            self.score = score
            self.tokens = tokens
            self.unknownTokens = unknownTokens
        }
    }

    /// The baseline of `observations`, binned at their own quantiles.
    public init(observations: [Observation], labels: [String], source: String, sourceSHA256: String,
                maxLength: Int) throws {
        guard !observations.isEmpty else { throw Failure.emptySample(source) }
        let scores = observations.compactMap(\.score)
        let lengths = observations.map { Double($0.tokens) }
        let confidence = BinnedCounts(binning: scores, edges: BinnedCounts.quantileEdges(of: scores, bins: Self.quantileBins))
        let length = BinnedCounts(binning: lengths, edges: BinnedCounts.quantileEdges(of: lengths, bins: Self.quantileBins))
        let tokens = observations.reduce(0) { $0 + $1.tokens }
        let unknown = observations.reduce(0) { $0 + $1.unknownTokens }
        self.init(source: source, sourceSHA256: sourceSHA256, samples: observations.count, maxLength: maxLength,
                  labels: labels, labelCounts: Self.labelCounts(observations, labels: labels),
                  confidence: confidence, length: length,
                  unknownTokenRate: tokens > 0 ? Double(unknown) / Double(tokens) : 0)
    }

    /// Counts per label of `labels`; answers with another label (or none) are not counted.
    public static func labelCounts(_ observations: some Sequence<Observation>, labels: [String]) -> [Int] {
        let index = Dictionary(labels.enumerated().map { ($1, $0) }) { first, _ in first }
        var counts = [Int](repeating: 0, count: labels.count)
        for observation in observations {
            if let label = observation.label, let position = index[label] { counts[position] += 1 }
        }
        return counts
    }

    enum Failure: Error, CustomStringConvertible {
        case emptySample(String)
        var description: String {
            switch self { case .emptySample: "the sample holds no text" }
        }
    }
}
