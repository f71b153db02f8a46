import Foundation
import KafkaTestSupport

/// One-shot `minirbt-stream` commands (`infer`, `version`) run to completion, and their input files.
enum StreamCommand {
    struct Run {
        let status: Int32
        let output: String
        let errors: String
    }

    /// Runs `minirbt-stream arguments`, with `environment` added to the test's own and `input` as stdin.
    static func run(_ arguments: [String], environment: [String: String] = [:], input: URL? = nil) throws -> Run {
        let process = Process()
        process.executableURL = ProductBinaries.stream
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { _, override in override }
        // stderr goes to a file, so only one pipe is read and neither can fill up and block the child.
        let errorsFile = FileManager.default.temporaryDirectory.appendingPathComponent("minirbt-cmd-\(UUID()).log")
        _ = FileManager.default.createFile(atPath: errorsFile.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: errorsFile) }
        let output = Pipe()
        process.standardOutput = output
        process.standardError = try FileHandle(forWritingTo: errorsFile)
        if let input { process.standardInput = try FileHandle(forReadingFrom: input) }
        try process.run()
        let outputText = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        let errorText = (try? String(contentsOf: errorsFile, encoding: .utf8)) ?? ""
        return Run(status: process.terminationStatus, output: outputText, errors: errorText)
    }

    /// The first `count` dev reviews as JSON Lines `{"id": "<idPrefix><n>", "text"}` in a temporary file.
    static func reviews(_ count: Int, idPrefix: String = "r") throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("minirbt-reviews-\(UUID()).jsonl")
        let lines = try E2EFixtures.reviewTexts.prefix(count).enumerated().map { index, text in
            String(decoding: try JSONSerialization.data(withJSONObject: ["id": "\(idPrefix)\(index)", "text": text]), as: UTF8.self)
        }
        try Data((lines.joined(separator: "\n") + "\n").utf8).write(to: url)
        return url
    }

    /// `infer --logits` of `version` of the demo model over `input`: label and logits by event id.
    static func inferLogits(version: String, input: URL) throws -> [String: (label: String, logits: [Double])] {
        let run = try run(["infer", "--model", E2EFixtures.modelDirectory(version).path, "--input", input.path, "--logits"])
        guard run.status == 0 else { throw TestFailure("infer with \(version) exited \(run.status): \(run.errors.suffix(2000))") }
        var answers: [String: (label: String, logits: [Double])] = [:]
        for line in run.output.split(separator: "\n") {
            guard let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                  let id = object["id"] as? String, let label = object["label"] as? String,
                  let logits = object["logits"] as? [Double] else {
                throw TestFailure("infer with \(version) printed an unexpected line: \(line)")
            }
            answers[id] = (label, logits)
        }
        return answers
    }
}
