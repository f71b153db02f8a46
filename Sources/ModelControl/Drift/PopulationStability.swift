import Foundation

/// The Population Stability Index of one feature: how far a window's distribution over some bins has moved
/// from a baseline's distribution over the same bins.
///
/// `PSI = Σ (aᵢ − eᵢ) · ln(aᵢ / eᵢ)` over the bins, where `eᵢ` is the baseline's share of bin i and `aᵢ`
/// the window's. A share of 0 (a bin one side never saw) would make the term infinite, so every share is
/// raised to at least ``epsilon`` first (the shares are not renormalised: the floor only matters for empty
/// bins, and it keeps the index finite and comparable across windows).
public enum PopulationStability {
    /// The floor of a bin's share: an empty bin counts as if it held 0.01 % of its side.
    public static let epsilon = 1e-4
    /// Below this the distribution has not moved in a way worth acting on.
    public static let moderateThreshold = 0.1
    /// At or above this the traffic differs from the baseline significantly.
    public static let significantThreshold = 0.25

    /// The PSI of `actual` (window counts) against `expected` (baseline counts), bin by bin; nil when the
    /// bin counts differ or either side is empty (no distribution to compare).
    public static func index(expected: [Int], actual: [Int]) -> Double? {
        guard expected.count == actual.count, !expected.isEmpty,
              expected.allSatisfy({ $0 >= 0 }), actual.allSatisfy({ $0 >= 0 }) else { return nil }
        let expectedTotal = expected.reduce(0.0) { $0 + Double($1) }
        let actualTotal = actual.reduce(0.0) { $0 + Double($1) }
        guard expectedTotal > 0, actualTotal > 0 else { return nil }
        var sum = 0.0
        for (e, a) in zip(expected, actual) {
            let expectedShare = max(Double(e) / expectedTotal, epsilon)
            let actualShare = max(Double(a) / actualTotal, epsilon)
            sum += (actualShare - expectedShare) * log(actualShare / expectedShare)
        }
        return sum
    }

    /// The usual reading of a PSI value.
    public static func verdict(_ psi: Double) -> Verdict {
        if psi >= significantThreshold { return .significant }
        if psi >= moderateThreshold { return .moderate }
        return .stable
    }

    /// What a PSI value means for an operator, at the usual 0.1 and 0.25 thresholds.
    public enum Verdict: String, Codable, Sendable, Equatable {
        /// PSI < 0.1.
        case stable
        /// 0.1 ≤ PSI < 0.25: watch it.
        case moderate
        /// PSI ≥ 0.25: the traffic is not what the model was validated on.
        case significant
    }
}
