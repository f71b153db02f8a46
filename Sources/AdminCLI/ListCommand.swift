import ArgumentParser
import Foundation
import ModelControl

struct ListCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list",
        abstract: "List the registry's versions with their creation time, shape and labels.")

    @Option(help: ArgumentHelp("Registry root directory.", valueName: "dir"))
    var registry: String

    func run() async throws {
        let (manifests, problems) = try ModelRegistry(root: URL(fileURLWithPath: registry)).list()
        var rows = [["NAME", "VERSION", "CREATED", "LAYERS/HIDDEN/HEADS", "LABELS", "DRIFT BASELINE"]]
        for manifest in manifests {
            let config = manifest.config
            rows.append([manifest.name, manifest.version, manifest.createdAt.formatted(.iso8601),
                         "\(config.layers)/\(config.hidden)/\(config.heads)", config.labels.joined(separator: ","),
                         manifest.baseline.map { "\($0.samples) texts of \($0.source)" } ?? "none (drift off)"])
        }
        print(TextTable.render(rows))
        for problem in problems { print("unreadable: \(problem)") }
    }
}

/// Left-aligned columns separated by two spaces.
enum TextTable {
    static func render(_ rows: [[String]]) -> String {
        let widths = rows.reduce(into: [Int]()) { widths, row in
            for (index, cell) in row.enumerated() {
                if index < widths.count { widths[index] = max(widths[index], cell.count) } else { widths.append(cell.count) }
            }
        }
        return rows.map { row in
            row.enumerated().map { index, cell in
                index == row.count - 1 ? cell : cell.padding(toLength: widths[index], withPad: " ", startingAt: 0)
            }.joined(separator: "  ")
        }.joined(separator: "\n")
    }
}
