import Foundation
import Kafka
#if canImport(Glibc)
import Glibc
#endif

/// A Tansu broker process on a free port of the loopback address (or of `host`), with in-memory storage.
///
/// It runs under a shell watchdog holding a pipe from this process: when this process exits (however it
/// exits) the pipe closes and the watchdog kills the broker. KILL, because a Tansu 0.6 started this way was
/// seen to ignore TERM and INT, and its in-memory storage has nothing to flush anyway; CONT first, so that a
/// broker a failed fault test left frozen still dies. The pid is known, so a fault test can freeze the broker
/// with SIGSTOP and thaw it with SIGCONT.
public final class TansuProcess: Sendable {
    public let bootstrapServers: String
    public let pid: pid_t
    public let logPath: String
    private let watchdog: Process
    private let lifeline: Pipe

    /// Starts the broker and returns once it accepts connections.
    /// - Parameter host: the local IPv4 address it listens on and advertises; another address than loopback
    ///   lets a fault test reach it through a link it controls (a veth pair into a network namespace).
    public init(logName: String = "minirbt-test-broker", host: String = "127.0.0.1") throws {
        let environment = ProcessInfo.processInfo.environment
        let deps = environment["MINIRBT_DEPS"]
            ?? ((environment["XDG_CACHE_HOME"] ?? (NSHomeDirectory() + "/.cache")) + "/minirbt")
        let tansu = environment["TANSU_BIN"] ?? deps + "/bin/tansu"
        guard FileManager.default.isExecutableFile(atPath: tansu) else {
            throw TestFailure("tansu not found at \(tansu); run scripts/setup.sh or set MINIRBT_TEST_BROKERS")
        }
        let port = try Loopback.freePort()
        let address = "\(host):\(port)"
        logPath = NSTemporaryDirectory() + "\(logName)-\(port).log"
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        // Prints the broker's pid, then holds until our end of stdin closes.
        process.arguments = ["-c", """
            "$0" broker --listener-url "tcp://$1" --advertised-listener-url "tcp://$1" \
                --storage-engine memory://tansu/ >"$2" 2>&1 </dev/null &
            broker=$!
            echo "$broker"
            cat >/dev/null
            kill -CONT "$broker" 2>/dev/null
            kill -KILL "$broker" 2>/dev/null
            """, tansu, address, logPath]
        let input = Pipe()
        let output = Pipe()
        process.standardInput = input
        process.standardOutput = output
        try process.run()
        watchdog = process
        lifeline = input
        var line = Data()
        while !line.contains(UInt8(ascii: "\n")) {
            let chunk = output.fileHandleForReading.availableData
            guard !chunk.isEmpty else { throw TestFailure("the broker watchdog ended before naming the broker's pid") }
            line.append(chunk)
        }
        guard let pid = pid_t(String(decoding: line, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)) else {
            throw TestFailure("the broker watchdog printed no pid: \(String(decoding: line, as: UTF8.self))")
        }
        self.pid = pid
        bootstrapServers = address
        let deadline = Date().addingTimeInterval(20)
        while !Loopback.canConnect(host: host, port: port) {
            guard Date() < deadline else { throw TestFailure("tansu did not listen on \(address) within 20 s (log: \(logPath))") }
            // Start-up poll of an external process, not synchronisation between tests.
            usleep(50_000)
        }
    }

    public func kafka(client: String) -> KafkaConfiguration {
        KafkaConfiguration(bootstrapServers: [bootstrapServers], clientID: client)
    }

    public func freeze() { _ = Glibc.kill(pid, SIGSTOP) }
    public func thaw() { _ = Glibc.kill(pid, SIGCONT) }

    /// Creates a fresh topic on this broker and returns its name.
    public func createTopic(_ purpose: String, partitions: Int32) async throws -> String {
        let name = TestBroker.uniqueTopic(purpose)
        let admin = try KafkaAdmin(configuration: kafka(client: "test-admin"), logger: TestBroker.logger)
        guard try await admin.createTopic(TopicSpecification(name: name, partitions: partitions)) == .created else {
            throw TestFailure("topic \(name) unexpectedly existed")
        }
        return name
    }

    /// Thaws and kills the broker (closing the watchdog's lifeline) and waits for the watchdog to end.
    public func stop() {
        thaw()
        try? lifeline.fileHandleForWriting.close()
        watchdog.waitUntilExit()
    }
}

/// Sockets for tests: a free loopback port, a connect probe and a one-shot HTTP GET (for `/readyz`), on the
/// loopback address unless another local IPv4 address is given.
public enum Loopback {
    public static func freePort() throws -> UInt16 {
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

    public static func canConnect(host: String = "127.0.0.1", port: UInt16) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        return connect(fd, host: host, port: port)
    }

    /// The status code and body of `GET path` on `host`:`port`, or nil when nothing answers within 3 s.
    public static func httpStatus(host: String = "127.0.0.1", port: UInt16, path: String) -> (code: Int, body: String)? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var timeout = timeval(tv_sec: 3, tv_usec: 0)
        _ = setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        _ = setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        guard connect(fd, host: host, port: port) else { return nil }
        let request = Array("GET \(path) HTTP/1.1\r\nHost: \(host)\r\nConnection: close\r\n\r\n".utf8)
        guard request.withUnsafeBytes({ write(fd, $0.baseAddress, $0.count) }) == request.count else { return nil }
        var response: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            guard count > 0 else { break }
            response += buffer[0..<count]
        }
        let text = String(decoding: response, as: UTF8.self)
        // "HTTP/1.1 200 OK"
        let fields = text.split(separator: " ", maxSplits: 2)
        guard fields.count >= 2, let code = Int(fields[1]) else { return nil }
        let body = text.components(separatedBy: "\r\n\r\n").dropFirst().joined(separator: "\r\n\r\n")
        return (code, body.trimmingCharacters(in: .whitespacesAndNewlines))
    }

    private static func connect(_ fd: Int32, host: String, port: UInt16) -> Bool {
        var address = loopback(port: port)
        guard inet_pton(AF_INET, host, &address.sin_addr) == 1 else { return false }
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
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
