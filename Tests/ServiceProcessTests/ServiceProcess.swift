import Foundation
import KafkaTestSupport
import Timeouts
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A product binary running as a child process, its stdout and stderr going to one log file.
///
/// The log is a file rather than a pipe so a stalled test can never block the child on a full pipe, and so
/// a failure message can point at what the service said; it is kept after the test for a post-mortem, in
/// `$TMPDIR/minirbt-e2e-logs/`.
/// Start services through ``E2EScope``, which kills whatever still runs when the test ends.
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
        let logDirectory = FileManager.default.temporaryDirectory.appendingPathComponent("minirbt-e2e-logs")
        try FileManager.default.createDirectory(at: logDirectory, withIntermediateDirectories: true)
        logFile = logDirectory.appendingPathComponent("\(name)-\(UUID().uuidString.prefix(8)).log")
        guard FileManager.default.createFile(atPath: logFile.path, contents: nil) else {
            throw TestFailure("could not create the log file \(logFile.path)")
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

    /// Starts `minirbt-stream` with `arguments`, inside `namespace` when one is given (`ip netns exec` execs
    /// the binary, so the pid and the signals are the service's own).
    static func stream(_ name: String, _ arguments: [String], environment: [String: String] = [:],
                       namespace: NetworkNamespace? = nil) throws -> ServiceProcess {
        let (executable, arguments) = namespace?.command(ProductBinaries.stream, arguments) ?? (ProductBinaries.stream, arguments)
        return try ServiceProcess(name: name, executable: executable, arguments: arguments, environment: environment)
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
        guard let outcome = try await withTimeout(timeout, { await self.exitMonitor.exited() }) ?? nil else {
            throw TestFailure("\(name) (pid \(pid)) was still running \(timeout) later\n\(kernelView)\n\(logTail())")
        }
        return outcome
    }

    /// What the kernel says of the process and each of its threads (state, name, where it sleeps): tells a
    /// process wedged in its own teardown from one whose exit the test missed.
    private var kernelView: String {
        let root = "/proc/\(pid)"
        func read(_ path: String) -> String {
            ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "?").trimmingCharacters(in: .whitespacesAndNewlines)
        }
        let state = read("\(root)/status").split(separator: "\n").first { $0.hasPrefix("State:") } ?? "State: gone"
        let threads = ((try? FileManager.default.contentsOfDirectory(atPath: "\(root)/task")) ?? []).sorted().map { tid in
            "  \(tid) \(read("\(root)/task/\(tid)/comm")) in \(read("\(root)/task/\(tid)/wchan"))"
        }
        return "--- the kernel's view of pid \(pid): \(state) ---\n" + threads.joined(separator: "\n")
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
                throw TestFailure("\(name) ended (\(exit)) before logging '\(text)'\n\(logTail())")
            }
            guard ContinuousClock.now < deadline else {
                throw TestFailure("\(name) did not log '\(text)' within \(timeout)\n\(logTail())")
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
