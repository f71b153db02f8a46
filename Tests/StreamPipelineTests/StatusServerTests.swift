import Foundation
import KafkaTestSupport
import Logging
import ServiceLifecycle
import Synchronization
import Testing
@testable import StreamPipeline
#if canImport(Glibc)
import Glibc
#endif

/// The status server over a real socket: probes answer with their reasons, a slow client is cut off at the
/// read timeout without holding anyone else up, and connections beyond the cap are refused.
@Suite struct StatusServerTests {
    /// A blocking TCP client on its own thread (never on the cooperative pool).
    struct Client {
        let fd: Int32

        static func connect(port: Int) throws -> Client {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            guard fd >= 0 else { throw TestFailure("socket failed") }
            var timeout = timeval(tv_sec: 60, tv_usec: 0)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = in_port_t(UInt16(port).bigEndian)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            let result = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
            guard result == 0 else {
                Glibc.close(fd)
                throw TestFailure("connect failed: \(errno)")
            }
            return Client(fd: fd)
        }

        func send(_ text: String) {
            _ = Array(text.utf8).withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        }

        /// Everything until the server closes (or 60 s).
        func readAll() -> String {
            var data: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 65536)
            while true {
                let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                if count <= 0 { break }
                data += buffer.prefix(count)
            }
            return String(decoding: data, as: UTF8.self)
        }

        func close() { Glibc.close(fd) }
    }

    static func onThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            Thread { continuation.resume(with: Result { try body() }) }.start()
        }
    }

    static func get(_ path: String, port: Int) async throws -> String {
        try await onThread {
            let client = try Client.connect(port: port)
            defer { client.close() }
            client.send("GET \(path) HTTP/1.1\r\nHost: test\r\n\r\n")
            return client.readAll()
        }
    }

    /// Runs `body` against a status server on a free loopback port, then shuts it down.
    static func withServer(limits: StatusServer.Limits, liveness: @escaping @Sendable () -> String? = { nil },
                           _ body: (StatusServer, Int) async throws -> Void) async throws {
        var logger = Logger(label: "status-tests")
        logger.logLevel = .warning
        let server = StatusServer(host: "127.0.0.1", port: 0, limits: limits, logger: logger,
                                  renderMetrics: { Array("minirbt_events_consumed_total 7\n".utf8) },
                                  readiness: { "the Kafka cluster is unreachable: test" },
                                  liveness: liveness)
        let group = ServiceGroup(services: [server], logger: logger)
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            defer { tasks.cancelAll() }
            // Generous: with every suite running at once the server's task can wait long for a thread.
            let port = try await withDeadline(.seconds(120), "the status server's port") {
                while server.localPort == nil { try await Task.sleep(for: .milliseconds(10)) }
                return server.localPort ?? 0
            }
            try await body(server, port)
            await group.triggerGracefulShutdown()
        }
    }

    @Test func probesAnswerOverARealSocketAndASlowClientBlocksNoOne() async throws {
        let unhealthy = Atomic<Bool>(false)
        var limits = StatusServer.Limits()
        // Long enough that even a machine running every suite at once answers the probes first.
        let readTimeout = Duration.seconds(20)
        limits.readTimeout = .seconds(20)
        try await Self.withServer(limits: limits, liveness: { unhealthy.load(ordering: .relaxed) ? "shard 0 has stopped" : nil }) { _, serverPort in
            // A slow client: connects, sends half a request line and nothing more. The clock starts
            // before the connection does, so the server's timer (armed at accept) cannot precede it.
            let clock = ContinuousClock()
            let started = clock.now
            let slow = try await Self.onThread { try Client.connect(port: serverPort) }
            defer { slow.close() }
            slow.send("GET /hea")
            let fastStarted = clock.now

            let health = try await Self.get("/healthz", port: serverPort)
            let ready = try await Self.get("/readyz", port: serverPort)
            let metrics = try await Self.get("/metrics", port: serverPort)
            let fastElapsed = clock.now - fastStarted
            #expect(health.hasPrefix("HTTP/1.1 200") && health.contains("ok"))
            #expect(ready.hasPrefix("HTTP/1.1 503") && ready.contains("unreachable"))
            #expect(metrics.hasPrefix("HTTP/1.1 200") && metrics.contains("minirbt_events_consumed_total 7"))
            #expect(fastElapsed < readTimeout, "the probes waited behind the slow client: \(fastElapsed)")
            unhealthy.store(true, ordering: .relaxed)
            let failing = try await Self.get("/healthz", port: serverPort)
            #expect(failing.hasPrefix("HTTP/1.1 503") && failing.contains("shard 0 has stopped"))

            // The read timeout cuts the slow client off (an answer it never asked for is not sent).
            let slowAnswer = try await Self.onThread { slow.readAll() }
            let slowElapsed = clock.now - started
            #expect(slowAnswer.isEmpty)
            #expect(slowElapsed >= readTimeout && slowElapsed < .seconds(120), "cut off at \(slowElapsed), read timeout 20 s")
            print("status server: 4 requests answered, slow client cut off after \(slowElapsed)")
        }
    }

    @Test func connectionsBeyondTheCapAreClosedAtOnce() async throws {
        var limits = StatusServer.Limits()
        limits.maxConnections = 3
        // No idle connection may time out while the cap is checked, however slow the machine.
        limits.readTimeout = .seconds(60)
        try await Self.withServer(limits: limits) { server, serverPort in
            let idle = try await Self.onThread { try (0..<3).map { _ in try Client.connect(port: serverPort) } }
            // The server accepts asynchronously: await its count of open connections reaching the cap.
            try await withDeadline(.seconds(10), "the idle connections to be accepted") {
                while server.connectionCount < 3 { try await Task.sleep(for: .milliseconds(5)) }
            }
            let refused = try await Self.get("/healthz", port: serverPort)
            #expect(refused.isEmpty, "over the connection cap: closed without an answer")

            idle.forEach { $0.close() }
            try await withDeadline(.seconds(10), "the idle connections to be closed") {
                while server.connectionCount > 0 { try await Task.sleep(for: .milliseconds(5)) }
            }
            let after = try await Self.get("/healthz", port: serverPort)
            #expect(after.hasPrefix("HTTP/1.1 200"), "served again once the idle connections are gone")
            print("status server: 3 idle connections held, 1 refused over the cap, served again after they closed")
        }
    }

    @Test("a cancelled status server stops: a failing service group cannot be kept alive by it")
    func cancellationStopsTheServer() async throws {
        var logger = Logger(label: "status-tests")
        logger.logLevel = .warning
        let server = StatusServer(host: "127.0.0.1", port: 0, logger: logger, renderMetrics: { [] }, readiness: { nil })
        let finished = Atomic<Bool>(false)
        let running = Task {
            try? await server.run()
            finished.store(true, ordering: .relaxed)
        }
        try await withDeadline(.seconds(120), "the status server's port") {
            while server.localPort == nil { try await Task.sleep(for: .milliseconds(10)) }
        }
        running.cancel()
        // Polled rather than awaited: a server that ignores cancellation must fail this test, not hang it.
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(10)
        while !finished.load(ordering: .relaxed) && clock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
        let stopped = finished.load(ordering: .relaxed)
        #expect(stopped, "the status server was still running 10 s after its task was cancelled")
    }
}
