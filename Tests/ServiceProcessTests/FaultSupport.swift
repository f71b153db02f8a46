import Foundation
import Kafka
import KafkaTestSupport
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A Tansu broker owned by one test, started the way ``TestBroker`` starts its private one (under a shell
/// watchdog that kills it when the test process goes away), but with its pid known, so the test can freeze
/// it with SIGSTOP and thaw it with SIGCONT without disturbing the broker other tests share.
final class FaultBroker: Sendable {
    let bootstrapServers: String
    let pid: pid_t
    let logPath: String
    private let watchdog: Process
    private let lifeline: Pipe

    init() throws {
        let environment = ProcessInfo.processInfo.environment
        let deps = environment["MINIRBT_DEPS"]
            ?? ((environment["XDG_CACHE_HOME"] ?? (NSHomeDirectory() + "/.cache")) + "/minirbt")
        let tansu = environment["TANSU_BIN"] ?? deps + "/bin/tansu"
        guard FileManager.default.isExecutableFile(atPath: tansu) else {
            throw E2EFailure("tansu not found at \(tansu); run scripts/setup.sh")
        }
        let port = try FaultNet.freeLoopbackPort()
        let address = "127.0.0.1:\(port)"
        logPath = NSTemporaryDirectory() + "minirbt-fault-broker-\(port).log"
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        // Prints the broker's pid, then holds until our end of stdin closes; CONT first so a broker left
        // frozen by a failed test still dies.
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
        // The first line of the watchdog's output is the pid.
        var line = Data()
        while !line.contains(UInt8(ascii: "\n")) {
            let chunk = output.fileHandleForReading.availableData
            guard !chunk.isEmpty else { throw E2EFailure("the broker watchdog ended before naming the broker's pid") }
            line.append(chunk)
        }
        guard let pid = pid_t(String(decoding: line, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)) else {
            throw E2EFailure("the broker watchdog printed no pid: \(String(decoding: line, as: UTF8.self))")
        }
        self.pid = pid
        bootstrapServers = address
        let deadline = Date().addingTimeInterval(20)
        while !FaultNet.canConnect(port: port) {
            guard Date() < deadline else { throw E2EFailure("tansu did not listen on \(address) within 20 s (log: \(logPath))") }
            // Start-up poll of an external process.
            usleep(50_000)
        }
    }

    func kafka(client: String) -> KafkaConfiguration {
        KafkaConfiguration(bootstrapServers: [bootstrapServers], clientID: client)
    }

    func freeze() { _ = Glibc.kill(pid, SIGSTOP) }
    func thaw() { _ = Glibc.kill(pid, SIGCONT) }

    func createTopic(_ purpose: String, partitions: Int32) async throws -> String {
        let name = TestBroker.uniqueTopic(purpose)
        let admin = try KafkaAdmin(configuration: kafka(client: "fault-admin"), logger: TestBroker.logger)
        guard try await admin.createTopic(TopicSpecification(name: name, partitions: partitions)) == .created else {
            throw E2EFailure("topic \(name) unexpectedly existed")
        }
        return name
    }

    /// Thaws and kills the broker (closing the watchdog's lifeline) and waits for the watchdog to end.
    func stop() {
        thaw()
        try? lifeline.fileHandleForWriting.close()
        watchdog.waitUntilExit()
    }
}

/// Sends review events to a topic of a given broker and remembers them, in order.
final class FaultFeed: Sendable {
    private let producer: KafkaProducer
    private let topic: String
    private let sentEvents = Mutex<[SentEvent]>([])

    init(kafka: KafkaConfiguration, topic: String) throws {
        self.topic = topic
        producer = try KafkaProducer(configuration: ProducerConfiguration(kafka: kafka), logger: TestBroker.logger)
    }

    var sent: [SentEvent] { sentEvents.withLock { $0 } }

    func send(count: Int) async throws {
        let texts = E2EFixtures.reviewTexts
        for _ in 0..<count {
            let sequence = sent.count
            let id = "event-\(sequence)"
            let text = texts.isEmpty ? "这家酒店很好" : texts[sequence % texts.count]
            let value = Array(try JSONSerialization.data(withJSONObject: ["id": id, "text": text]))
            _ = try await producer.send(ProducerRecord(topic: topic, key: Array(id.utf8), value: value))
            sentEvents.withLock { $0.append(SentEvent(sequence: sequence, key: id, id: id, malformed: false)) }
        }
    }

    func close() async { await producer.close() }
}

/// Reads the result and dead-letter topics of a given broker from the beginning into ``Outputs``.
final class FaultRecorder: Sendable {
    private let consumer: KafkaConsumer
    private let state: Mutex<(outputs: Outputs, failure: String?)>
    private let reader = Mutex<Task<Void, Never>?>(nil)

    init(kafka: KafkaConfiguration, resultTopic: String, deadLetterTopic: String) async throws {
        state = Mutex((Outputs(resultTopic: resultTopic), nil))
        consumer = try KafkaConsumer(configuration: ConsumerConfiguration(kafka: kafka), logger: TestBroker.logger)
        let admin = try KafkaAdmin(configuration: kafka, logger: TestBroker.logger)
        var assignment: [TopicPartition: KafkaOffset] = [:]
        for topic in [resultTopic, deadLetterTopic] {
            for partition in 0..<Int32(try await admin.describeTopic(topic).partitionCount) {
                assignment[TopicPartition(topic: topic, partition: partition)] = .beginning
            }
        }
        try await consumer.assign(assignment)
        let events = consumer.events
        reader.withLock {
            $0 = Task {
                do {
                    for try await event in events {
                        guard case .message(let record) = event else { continue }
                        self.state.withLock { $0.outputs.append(record) }
                    }
                } catch is CancellationError {
                } catch {
                    self.state.withLock { $0.failure = "\(error)" }
                }
            }
        }
    }

    var outputs: Outputs { state.withLock { $0.outputs } }

    /// Waits until `condition` holds over what was read, polling the recorder's own state (the records
    /// arrive on the reader task), and returns the outputs; throws after `timeout`.
    @discardableResult
    func wait(for what: String, timeout: Duration, progress: (Outputs) -> String = { "\($0.count) outputs" },
              until condition: (Outputs) -> Bool) async throws -> Outputs {
        let deadline = ContinuousClock.now + timeout
        while true {
            let (outputs, failure) = state.withLock { ($0.outputs, $0.failure) }
            if let failure { throw E2EFailure("reading the outputs failed: \(failure)") }
            if condition(outputs) { return outputs }
            guard ContinuousClock.now < deadline else {
                throw E2EFailure("timed out after \(timeout) waiting for \(what); \(progress(outputs))")
            }
            try await Task.sleep(for: .milliseconds(100))
        }
    }

    func close() async {
        reader.withLock { $0 }?.cancel()
        await consumer.close()
    }
}

/// Loopback sockets: a free port, a connect probe and a one-shot HTTP GET (for `/readyz`).
enum FaultNet {
    static func freeLoopbackPort() throws -> UInt16 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw E2EFailure("socket() failed: errno \(errno)") }
        defer { close(fd) }
        var address = loopback(port: 0)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0 else { throw E2EFailure("bind() failed: errno \(errno)") }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        return UInt16(bigEndian: address.sin_port)
    }

    static func canConnect(port: UInt16) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        return connect(fd, port: port)
    }

    /// The status code of `GET path` on 127.0.0.1:`port`, or nil when nothing answers within 3 s.
    static func httpStatus(port: UInt16, path: String) -> (code: Int, body: String)? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var timeout = timeval(tv_sec: 3, tv_usec: 0)
        _ = setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        _ = setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        guard connect(fd, port: port) else { return nil }
        let request = Array("GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".utf8)
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

    private static func connect(_ fd: Int32, port: UInt16) -> Bool {
        var address = loopback(port: port)
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
