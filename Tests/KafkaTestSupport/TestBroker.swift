import Foundation
import Kafka
import Logging
import Timeouts

/// The broker every Kafka test talks to.
///
/// `MINIRBT_TEST_BROKERS` (set by the CI script after `scripts/broker.sh start`) wins; otherwise one Tansu
/// process (a ``TansuProcess``, killed when the test process ends) is started lazily for the whole test
/// process, so a plain `swift test` works on a developer box.
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

    // Kept for the life of the test process; its watchdog kills it when the process ends.
    nonisolated(unsafe) private static var privateBroker: TansuProcess?

    private static func startPrivateBroker() throws -> String {
        let broker = try TansuProcess()
        privateBroker = broker
        FileHandle.standardError.write(Data("[KafkaTests] started tansu on \(broker.bootstrapServers), log \(broker.logPath)\n".utf8))
        return broker.bootstrapServers
    }
}

/// A failure of a test harness, or an expectation a test cannot go on without; says what was awaited.
public struct TestFailure: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Runs `body`, failing with a clear message if it has not finished by `timeout`.
/// A deadline, not a synchronisation sleep: the body awaits real events.
public func withDeadline<T: Sendable>(_ timeout: Duration, _ what: String,
                              _ body: @escaping @Sendable () async throws -> T) async throws -> T {
    guard let value = try await withTimeout(timeout, body) else {
        throw TestFailure("timed out after \(timeout) waiting for \(what)")
    }
    return value
}

extension ConsumerRecord {
    public var valueText: String { String(decoding: value ?? [], as: UTF8.self) }
    public var keyText: String? { key.map { String(decoding: $0, as: UTF8.self) } }
}

