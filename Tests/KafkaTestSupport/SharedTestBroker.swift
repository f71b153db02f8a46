import Foundation
import Kafka
import Logging
#if canImport(Glibc)
import Glibc
#endif

/// The broker the control-plane tests talk to, shared by every test target that depends on this one.
///
/// `MINIRBT_TEST_BROKERS` (set by the CI script after `scripts/broker.sh start`) wins; otherwise one Tansu
/// process is started lazily per test process. It runs under a shell watchdog that reads a pipe from this
/// process: when the process exits, however it exits, the pipe closes and the watchdog stops the broker.
///
/// Note: KafkaTests still carries its own `TestBroker`; it can move onto this target unchanged in behaviour.
public enum SharedTestBroker {
    public static let bootstrapServers: String = {
        if let configured = ProcessInfo.processInfo.environment["MINIRBT_TEST_BROKERS"], !configured.isEmpty {
            return configured
        }
        do {
            return try startPrivateBroker()
        } catch {
            fatalError("could not start a test broker: \(error)")
        }
    }()

    public static func kafka(client: String = "minirbt-control-tests") -> KafkaConfiguration {
        KafkaConfiguration(bootstrapServers: [bootstrapServers], clientID: client)
    }

    public static let logger: Logger = {
        var logger = Logger(label: "control-tests")
        logger.logLevel = .warning
        return logger
    }()

    /// A topic name no other test (or earlier run against a long-lived broker) uses.
    public static func uniqueTopic(_ purpose: String) -> String {
        "test-\(purpose)-\(UUID().uuidString.prefix(8).lowercased())"
    }

    nonisolated(unsafe) private static var lifeline: Pipe?

    private static func startPrivateBroker() throws -> String {
        let environment = ProcessInfo.processInfo.environment
        let deps = environment["MINIRBT_DEPS"]
            ?? ((environment["XDG_CACHE_HOME"] ?? (NSHomeDirectory() + "/.cache")) + "/minirbt")
        let tansu = environment["TANSU_BIN"] ?? deps + "/bin/tansu"
        guard FileManager.default.isExecutableFile(atPath: tansu) else {
            throw SupportFailure("tansu not found at \(tansu); run scripts/setup.sh or set MINIRBT_TEST_BROKERS")
        }
        let port = try freeLoopbackPort()
        let address = "127.0.0.1:\(port)"
        let logPath = NSTemporaryDirectory() + "minirbt-control-test-broker-\(port).log"
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", """
            "$0" broker --listener-url "tcp://$1" --advertised-listener-url "tcp://$1" \
                --storage-engine memory://tansu/ >"$2" 2>&1 </dev/null &
            broker=$!
            cat >/dev/null
            kill -TERM "$broker" 2>/dev/null
            """, tansu, address, logPath]
        let pipe = Pipe()
        process.standardInput = pipe
        try process.run()
        lifeline = pipe
        let deadline = Date().addingTimeInterval(20)
        while !accepts(port: port) {
            guard Date() < deadline else { throw SupportFailure("tansu did not listen on \(address) within 20 s (log: \(logPath))") }
            // Polling an external process's start-up, not synchronising tests.
            usleep(50_000)
        }
        return address
    }

    private static func freeLoopbackPort() throws -> UInt16 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw SupportFailure("socket() failed: errno \(errno)") }
        defer { close(fd) }
        var address = loopback(port: 0)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0 else { throw SupportFailure("bind() failed: errno \(errno)") }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        return UInt16(bigEndian: address.sin_port)
    }

    private static func accepts(port: UInt16) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = loopback(port: port)
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        } == 0
    }

    private static func loopback(port: UInt16) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        return address
    }
}

/// A test precondition that did not hold.
public struct SupportFailure: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Runs `body`, failing with a clear message if it has not finished by `timeout` (a deadline, not a sleep
/// used for synchronisation: the body awaits real events).
public func withTestDeadline<T: Sendable>(_ timeout: Duration, _ what: String,
                                          _ body: @escaping @Sendable () async throws -> T) async throws -> T {
    try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(for: timeout)
            return nil
        }
        defer { group.cancelAll() }
        guard let first = try await group.next(), let value = first else {
            throw SupportFailure("timed out after \(timeout) waiting for \(what)")
        }
        return value
    }
}
