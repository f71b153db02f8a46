import StreamPipeline
import Testing

@Suite("Canary bucketing")
struct CanaryBucketTests {
    @Test("20% canary sends 20% ± 5% of 2,000 distinct keys to the candidate, the same keys every time")
    func shareAndStability() {
        let keys = (0..<2_000).map { Array("order-\($0)".utf8) }
        let chosen = keys.filter { CanaryBucket.of($0) < 20 }
        let share = Double(chosen.count) / Double(keys.count)
        #expect(abs(share - 0.20) <= 0.05, "share was \(share)")
        let again = keys.filter { CanaryBucket.of($0) < 20 }
        #expect(again == chosen)
        // Growing the canary only adds keys: nobody flips back to the primary.
        let wider = Set(keys.filter { CanaryBucket.of($0) < 50 }.map { String(decoding: $0, as: UTF8.self) })
        #expect(chosen.allSatisfy { wider.contains(String(decoding: $0, as: UTF8.self)) })
    }
}
