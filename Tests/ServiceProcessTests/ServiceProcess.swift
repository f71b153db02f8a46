import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A failure of the end-to-end harness or of an expectation that cannot go on; says what was awaited.
struct E2EFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Where `swift build --build-tests` put the product executables: beside the test bundle.
enum ProductBinaries {
    /// The build directory (e.g. `.build/debug` or `.build/x86_64-unknown-linux-gnu/debug`); the
    /// `MINIRBT_E2E_BIN_DIR` environment variable overrides it.
    static let directory: URL = {
        if let configured = ProcessInfo.processInfo.environment["MINIRBT_E2E_BIN_DIR"], !configured.isEmpty {
            return URL(fileURLWithPath: configured)
        }
        // The test runner is `<build dir>/<package>PackageTests.xctest` (an executable on Linux).
        let runner = Bundle.main.executablePath ?? CommandLine.arguments[0]
        var directory = URL(fileURLWithPath: runner).resolvingSymlinksInPath().deletingLastPathComponent()
        // On Darwin the runner sits inside the bundle: climb out of `….xctest/Contents/MacOS`.
        while directory.path.contains(".xctest") { directory = directory.deletingLastPathComponent() }
        return directory
    }()

    static var stream: URL { directory.appendingPathComponent("minirbt-stream") }
    static var admin: URL { directory.appendingPathComponent("minirbt-admin") }

    /// Throws unless both executables exist, saying how to build them.
    static func require() throws {
        for binary in [stream, admin] where !FileManager.default.isExecutableFile(atPath: binary.path) {
            throw E2EFailure("\(binary.path) is missing: build the products with the tests (`swift build --build-tests`) or set MINIRBT_E2E_BIN_DIR")
        }
    }
}

/// A product binary running as a child process, its stdout and stderr going to one log file.
///
/// The log is a file rather than a pipe so a stalled test can never block the child on a full pipe, and so
/// a failure message can show what the service said. ``kill()`` or the test's `defer` must end it: a
/// process is never left behind (see ``ServiceProcess/run(_:)``).
final class ServiceProcess: Sendable {
    /// How a process ended.
    enum Exit: Sendable, Equatable, CustomStringConvertible {
        case exited(Int32)
        case signalled(Int32)

        var description: String {
            switch self {
            case .exited(let code): "exit code \(code)"
            case .signalled(let signal): "killed by signal \(signal)"
            }
        }
    }

    let name: String
    let logFile: URL
    private let process: Process
    private let exitMonitor = ExitMonitor()

    /// Starts `executable` with `arguments`; `environment` entries are added to the test's own.
    init(name: String, executable: URL, arguments: [String], environment: [String: String] = [:]) throws {
        self.name = name
        logFile = FileManager.default.temporaryDirectory
            .appendingPathComponent("minirbt-e2e-\(name)-\(UUID().uuidString.prefix(8)).log")
        guard FileManager.default.createFile(atPath: logFile.path, contents: nil) else {
            throw E2EFailure("could not create the log file \(logFile.path)")
        }
        let log = try FileHandle(forWritingTo: logFile)
        defer { try? log.close() }

        process = Process()
        process.executableURL = executable
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { _, override in override }
        process.standardOutput = log
        process.standardError = log
        process.standardInput = FileHandle.nullDevice
        let exitMonitor = exitMonitor
        process.terminationHandler = { finished in
            exitMonitor.record(finished.terminationReason == .uncaughtSignal
                ? .signalled(finished.terminationStatus) : .exited(finished.terminationStatus))
        }
        try process.run()
    }

    /// Starts `minirbt-stream` with `arguments`.
    static func stream(_ name: String, _ arguments: [String], environment: [String: String] = [:]) throws -> ServiceProcess {
        try ServiceProcess(name: name, executable: ProductBinaries.stream, arguments: arguments, environment: environment)
    }

    var pid: Int32 { process.processIdentifier }

    /// How the process ended, or `nil` while it runs.
    var exit: Exit? { exitMonitor.exit }

    /// Everything the process logged so far.
    var log: String { (try? String(contentsOf: logFile, encoding: .utf8)) ?? "" }

    /// The last `lines` lines of the log, for failure messages.
    func logTail(_ lines: Int = 40) -> String {
        let all = log.split(separator: "\n", omittingEmptySubsequences: false)
        return "--- last \(min(lines, all.count)) lines of \(name)'s log (\(logFile.path)) ---\n"
            + all.suffix(lines).joined(separator: "\n")
    }

    /// Asks the process to shut down gracefully.
    func terminate() {
        send(signal: SIGTERM)
    }

    /// Ends the process at once (no drain, no commit), as a crash or an OOM kill would.
    func kill() {
        send(signal: SIGKILL)
    }

    private func send(signal number: Int32) {
        guard exit == nil else { return }
        _ = Glibc.kill(process.processIdentifier, number)
    }

    /// Waits for the process to end; throws when it is still running after `timeout`.
    @discardableResult
    func waitForExit(timeout: Duration) async throws -> Exit {
        let outcome = try await withThrowingTaskGroup(of: Exit?.self) { group in
            group.addTask { await self.exitMonitor.exited() }
            group.addTask {
                try await Task.sleep(for: timeout)
                return nil
            }
            defer { group.cancelAll() }
            return try await group.next() ?? nil
        }
        guard let outcome else {
            throw E2EFailure("\(name) (pid \(pid)) was still running \(timeout) later\n\(logTail())")
        }
        return outcome
    }

    /// Waits until the log contains `text` (a line the service writes once); throws on timeout or when the
    /// process ends first.
    ///
    /// Polls the log file: a child writing to a file gives no notification, and the poll only observes,
    /// it orders nothing.
    func waitForLog(_ text: String, timeout: Duration) async throws {
        let deadline = ContinuousClock.now + timeout
        while !log.contains(text) {
            if let exit {
                throw E2EFailure("\(name) ended (\(exit)) before logging '\(text)'\n\(logTail())")
            }
            guard ContinuousClock.now < deadline else {
                throw E2EFailure("\(name) did not log '\(text)' within \(timeout)\n\(logTail())")
            }
            try await Task.sleep(for: .milliseconds(200))
        }
    }

    /// Kills the process if it still runs and waits until it is gone. For `defer` blocks: never throws.
    func stop() async {
        kill()
        _ = try? await waitForExit(timeout: .seconds(10))
    }
}

/// The exit of a process, delivered once from Foundation's termination handler to any number of waiters.
private final class ExitMonitor: Sendable {
    private let state = Mutex<State>(State())

    private struct State {
        var exit: ServiceProcess.Exit?
        var waiters: [UUID: CheckedContinuation<ServiceProcess.Exit?, Never>] = [:]
    }

    var exit: ServiceProcess.Exit? { state.withLock { $0.exit } }

    func record(_ exit: ServiceProcess.Exit) {
        let waiters = state.withLock { state in
            state.exit = exit
            defer { state.waiters.removeAll() }
            return Array(state.waiters.values)
        }
        waiters.forEach { $0.resume(returning: exit) }
    }

    /// The exit, once the process ended; `nil` if the waiting task is cancelled first.
    func exited() async -> ServiceProcess.Exit? {
        let id = UUID()
        return await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let known: ServiceProcess.Exit?? = state.withLock { state in
                    if let exit = state.exit { return .some(exit) }
                    if Task.isCancelled { return .some(nil) }
                    state.waiters[id] = continuation
                    return .none
                }
                if let known { continuation.resume(returning: known) }
            }
        } onCancel: {
            state.withLock { $0.waiters.removeValue(forKey: id) }?.resume(returning: nil)
        }
    }
}

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
        guard run.succeeded else { throw E2EFailure("expected success from \(run)") }
        return run
    }
}
