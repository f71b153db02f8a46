import Foundation
import KafkaTestSupport

/// One run of `minirbt-admin` to completion.
struct AdminRun: Sendable, CustomStringConvertible {
    let arguments: [String]
    let exit: ServiceProcess.Exit
    /// stdout and stderr, interleaved as written.
    let output: String

    var succeeded: Bool { exit == .exited(0) }

    var description: String {
        "minirbt-admin \(arguments.joined(separator: " ")) → \(exit)\n\(output)"
    }
}

/// Runs `minirbt-admin` commands and returns their exit and output.
enum AdminProcess {
    static func run(_ arguments: [String], timeout: Duration = .seconds(180)) async throws -> AdminRun {
        let process = try ServiceProcess(name: "admin-\(arguments.first ?? "")", executable: ProductBinaries.admin,
                                         arguments: arguments)
        defer { try? FileManager.default.removeItem(at: process.logFile) }
        do {
            let exit = try await process.waitForExit(timeout: timeout)
            return AdminRun(arguments: arguments, exit: exit, output: process.log)
        } catch {
            await process.stop()
            throw error
        }
    }

    /// Runs the command and throws (with its output) unless it exits 0.
    @discardableResult
    static func succeed(_ arguments: [String], timeout: Duration = .seconds(180)) async throws -> AdminRun {
        let run = try await run(arguments, timeout: timeout)
        guard run.succeeded else { throw TestFailure("expected success from \(run)") }
        return run
    }
}
