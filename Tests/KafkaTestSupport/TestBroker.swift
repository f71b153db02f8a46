import Foundation
import Kafka
import Logging
#if canImport(Glibc)
import Glibc
#endif

/// The broker every Kafka test talks to.
///
/// `MINIRBT_TEST_BROKERS` (set by the CI script after `scripts/broker.sh start`) wins; otherwise one Tansu
/// process is started lazily for the whole test process, so a plain `swift test` works on a developer box.
/// That process runs under a shell watchdog holding a pipe from us: when this process exits (however it
/// exits) the pipe closes and the watchdog kills the broker. KILL, because a Tansu 0.6 started this way was
/// seen to ignore TERM and INT, and its in-memory storage has nothing to flush anyway.
public enum TestBroker {
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

    public static func kafka(client: String = "minirbt-tests") -> KafkaConfiguration {
        KafkaConfiguration(bootstrapServers: [bootstrapServers], clientID: client)
    }

    public static var kafka: KafkaConfiguration {
        KafkaConfiguration(bootstrapServers: [bootstrapServers], clientID: "minirbt-kafka-tests")
    }

    public static let logger: Logger = {
        var logger = Logger(label: "kafka-tests")
        logger.logLevel = .warning
        return logger
    }()

    /// A topic name no other test (or earlier run against a long-lived broker) uses.
    public static func uniqueTopic(_ purpose: String) -> String {
        "test-\(purpose)-\(UUID().uuidString.prefix(8).lowercased())"
    }

    /// Creates a fresh topic and returns its name.
    public static func createTopic(_ purpose: String, partitions: Int32, config: [String: String] = [:]) async throws -> String {
        let name = uniqueTopic(purpose)
        let admin = try KafkaAdmin(configuration: kafka, logger: logger)
        let outcome = try await admin.createTopic(TopicSpecification(name: name, partitions: partitions, config: config))
        guard outcome == .created else { throw TestFailure("topic \(name) unexpectedly existed") }
        return name
    }

    // Kept alive for the life of the process: its write end is the watchdog's lifeline.
    nonisolated(unsafe) private static var lifeline: Pipe?

    private static func startPrivateBroker() throws -> String {
        let environment = ProcessInfo.processInfo.environment
        let deps = environment["MINIRBT_DEPS"]
            ?? ((environment["XDG_CACHE_HOME"] ?? (NSHomeDirectory() + "/.cache")) + "/minirbt")
        let tansu = environment["TANSU_BIN"] ?? deps + "/bin/tansu"
        guard FileManager.default.isExecutableFile(atPath: tansu) else {
            throw TestFailure("tansu not found at \(tansu); run scripts/setup.sh or set MINIRBT_TEST_BROKERS")
        }
        let port = try freeLoopbackPort()
        let address = "127.0.0.1:\(port)"
        let logPath = NSTemporaryDirectory() + "minirbt-test-broker-\(port).log"

        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", """
            "$0" broker --listener-url "tcp://$1" --advertised-listener-url "tcp://$1" \
                --storage-engine memory://tansu/ >"$2" 2>&1 </dev/null &
            broker=$!
            cat >/dev/null
            kill -KILL "$broker" 2>/dev/null
            """, tansu, address, logPath]
        let pipe = Pipe()
        process.standardInput = pipe
        try process.run()
        lifeline = pipe

        let deadline = Date().addingTimeInterval(20)
        while !canConnect(port: port) {
            guard Date() < deadline else { throw TestFailure("tansu did not listen on \(address) within 20 s (log: \(logPath))") }
            // Start-up poll of an external process, not synchronisation between tests.
            usleep(50_000)
        }
        FileHandle.standardError.write(Data("[KafkaTests] started tansu on \(address), log \(logPath)\n".utf8))
        return address
    }

    private static func freeLoopbackPort() throws -> UInt16 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestFailure("socket() failed: errno \(errno)") }
        defer { close(fd) }
        var address = loopback(port: 0)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0 else { throw TestFailure("bind() failed: errno \(errno)") }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        return UInt16(bigEndian: address.sin_port)
    }

    private static func canConnect(port: UInt16) -> Bool {
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

public struct TestFailure: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Runs `body`, failing with a clear message if it has not finished by `timeout`.
/// A deadline, not a synchronisation sleep: the body awaits real events.
public func withDeadline<T: Sendable>(_ timeout: Duration, _ what: String,
                              _ body: @escaping @Sendable () async throws -> T) async throws -> T {
    try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(for: timeout)
            return nil
        }
        defer { group.cancelAll() }
        guard let first = try await group.next(), let value = first else {
            throw TestFailure("timed out after \(timeout) waiting for \(what)")
        }
        return value
    }
}

extension ConsumerRecord {
    public var valueText: String { String(decoding: value ?? [], as: UTF8.self) }
    public var keyText: String? { key.map { String(decoding: $0, as: UTF8.self) } }
}

extension KafkaConsumer {
    /// Closes while reading the remaining events, acknowledging the final revocation the way a pipeline
    /// would once its in-flight work is done (here there is none).
    public func closeAcknowledgingRevocations() async throws {
        let events = self.events
        async let drained: Void = {
            for try await event in events {
                if case .revoked(_, let acknowledgement) = event { acknowledgement.acknowledge() }
            }
        }()
        await close()
        try await drained
    }
}
