import Foundation
import Testing

/// The product binaries under `MINIRBT_MAX_CPU_ISA`: whatever instruction set a CPU lacks, every
/// precision answers every text (fast where a kernel exists, fp32 with one warning where none does).
@Suite(.enabled(if: E2EFixtures.sharedDataPresent, "needs ../shared models and reviews"))
struct InstructionSetCapTests {
    static func run(_ arguments: [String], cap: String, input: URL? = nil) throws -> StreamCommand.Run {
        try StreamCommand.run(arguments, environment: ["MINIRBT_MAX_CPU_ISA": cap], input: input)
    }

    @Test(arguments: ["AVX2", "SSE41"], ["int8", "bf16"])
    func inferAnswersEveryTextUnderTheCap(cap: String, precision: String) throws {
        try ProductBinaries.require()
        let input = try StreamCommand.reviews(100)
        let version = try Self.run(["version"], cap: cap)
        #expect(version.status == 0)
        let line = version.output.split(separator: "\n").first { $0.hasPrefix("precision \(precision):") } ?? "?"
        print("cap \(cap): \(line)")
        let run = try Self.run(["infer", "--model", E2EFixtures.modelDirectory("v2").path, "--precision", precision,
                                "--input", input.path], cap: cap)
        #expect(run.status == 0, "exit \(run.status): \(run.errors.suffix(2000))")
        let results = run.output.split(separator: "\n").compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
        #expect(results.count == 100)
        #expect(results.allSatisfy { ["positive", "negative"].contains($0["label"] as? String ?? "") })
        let fast = !line.contains("no fast kernel")
        if fast {
            #expect(!run.errors.contains("serving this model in fp32"), "\(run.errors.suffix(2000))")
        } else {
            // One clear warning, not one per batch.
            #expect(run.errors.components(separatedBy: "serving this model in fp32").count - 1 == 1, "\(run.errors.suffix(2000))")
        }
        if cap == "SSE41" {
            #expect(!fast, "no fast \(precision) kernel exists below AVX2")
        }
    }
}
