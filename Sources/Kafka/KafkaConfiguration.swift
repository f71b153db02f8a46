/// Settings every Kafka client shares: where the cluster is, who we are, and raw librdkafka properties.
///
/// The typed fields cover what this project decides; `properties` passes any other librdkafka key through
/// unchanged and is applied last, so deployment-specific settings (TLS, SASL, tuning) never need code.
public struct KafkaConfiguration: Sendable, Equatable {
    /// `bootstrap.servers`: `host:port` entries.
    public var bootstrapServers: [String]
    /// `client.id`, shown in broker logs and metrics.
    public var clientID: String
    /// librdkafka properties applied after the typed settings, overriding them on conflict.
    public var properties: [String: String]

    public init(bootstrapServers: [String], clientID: String = "minirbt-stream",
                properties: [String: String] = [:]) {
        self.bootstrapServers = bootstrapServers
        self.clientID = clientID
        self.properties = properties
    }

    /// The pass-through properties that apply to `client`: a consumer-only key (e.g. `fetch.wait.max.ms`)
    /// is not handed to producers, nor a producer-only one to consumers, so one `--kafka` list can
    /// configure both without librdkafka warning that a property "will be ignored".
    public func properties(for client: PropertyScope) -> [String: String] {
        properties.filter { key, _ in
            let scope = KafkaLibrary.scope(ofProperty: key)
            return scope == .both || client == .both || scope == client
        }
    }

    /// The typed settings as librdkafka properties, before the pass-through ones.
    var baseProperties: [String: String] {
        ["bootstrap.servers": bootstrapServers.joined(separator: ","), "client.id": clientID]
    }

    /// Adds the librdkafka properties found in `KAFKA_*` environment variables
    /// (`KAFKA_SECURITY_PROTOCOL=SASL_SSL` sets `security.protocol`), overriding existing entries.
    /// - Returns: the `KAFKA_*` variables left out because they name no librdkafka property (see
    ///   ``environmentProperties(_:)``), for the caller to log.
    @discardableResult
    public mutating func applyEnvironment(_ environment: [String: String]) -> [IgnoredVariable] {
        let found = KafkaConfiguration.environmentProperties(environment)
        properties.merge(found.properties) { _, new in new }
        return found.ignored
    }

    /// A `KAFKA_*` variable that is not a librdkafka property.
    public struct IgnoredVariable: Sendable, Equatable {
        public var name: String
        /// True for the shapes Kubernetes injects for a Service named `kafka` (`KAFKA_PORT`,
        /// `KAFKA_SERVICE_HOST`, `KAFKA_PORT_9092_TCP_ADDR`, ...); false for any other unknown name (a typo?).
        public var isServiceLink: Bool
    }

    /// Maps `KAFKA_FOO_BAR=v` to `foo.bar=v`, keeping only names the loaded librdkafka knows as properties.
    /// Kubernetes service links of a Service named `kafka` (and any other unknown name) would otherwise reach
    /// librdkafka as unknown keys and stop the start-up.
    public static func environmentProperties(_ environment: [String: String])
        -> (properties: [String: String], ignored: [IgnoredVariable]) {
        var result: [String: String] = [:]
        var ignored: [IgnoredVariable] = []
        for (name, value) in environment where name.hasPrefix("KAFKA_") {
            let key = name.dropFirst("KAFKA_".count).lowercased().replacingUnderscores()
            guard !key.isEmpty else { continue }
            if KafkaLibrary.isKnownProperty(key) {
                result[key] = value
            } else {
                ignored.append(IgnoredVariable(name: name, isServiceLink: isServiceLinkShape(name)))
            }
        }
        return (result, ignored.sorted { $0.name < $1.name })
    }

    /// `<NAME>_PORT`, `<NAME>_SERVICE_HOST`, `<NAME>_SERVICE_PORT[_<port name>]`,
    /// `<NAME>_PORT_<n>_<TCP|UDP|SCTP>[_ADDR|_PORT|_PROTO]`: the variables of Kubernetes service links.
    static func isServiceLinkShape(_ name: String) -> Bool {
        let parts = name.split(separator: "_", omittingEmptySubsequences: false).map(String.init)
        guard parts.count >= 2, parts[0] == "KAFKA" else { return false }
        let rest = Array(parts.dropFirst())
        if rest == ["PORT"] || rest == ["SERVICE", "HOST"] { return true }
        if rest.count >= 2, rest[0] == "SERVICE", rest[1] == "PORT" { return true }
        if rest.count >= 3, rest[0] == "PORT", Int(rest[1]) != nil, ["TCP", "UDP", "SCTP"].contains(rest[2]) {
            return rest.count == 3 || (rest.count == 4 && ["ADDR", "PORT", "PROTO"].contains(rest[3]))
        }
        return false
    }

    /// Adds `key=value` assignments (the CLI's repeatable `--kafka key=value`), overriding existing entries.
    public mutating func apply(assignments: [String]) throws(KafkaConfigurationError) {
        for assignment in assignments {
            let (key, value) = try KafkaConfiguration.parseAssignment(assignment)
            properties[key] = value
        }
    }

    /// Maps `KAFKA_FOO_BAR=v` to `foo.bar=v`. Other variables, and names that are no librdkafka property,
    /// are ignored.
    public static func properties(fromEnvironment environment: [String: String]) -> [String: String] {
        environmentProperties(environment).properties
    }

    /// Splits `key=value` at the first `=` (values may contain `=`, e.g. SASL JAAS strings).
    public static func parseAssignment(_ text: String) throws(KafkaConfigurationError) -> (key: String, value: String) {
        guard let equals = text.firstIndex(of: "=") else {
            throw KafkaConfigurationError.malformedAssignment(text)
        }
        let key = text[..<equals].trimmingSpaces()
        guard !key.isEmpty else { throw KafkaConfigurationError.malformedAssignment(text) }
        return (key, String(text[text.index(after: equals)...]))
    }
}

/// A configuration text that could not be read.
public enum KafkaConfigurationError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Expected `key=value`; the text is shown as given.
    case malformedAssignment(String)

    public var description: String {
        switch self {
        case .malformedAssignment(let text):
            return "expected a librdkafka property as key=value, got \"\(text)\""
        }
    }
}

/// Producer settings. Defaults favour safety: idempotent, `acks=all`, a short linger for batching.
public struct ProducerConfiguration: Sendable, Equatable {
    /// Which acknowledgement the producer waits for (`acks`).
    public enum Acks: String, Sendable, Equatable {
        case none = "0", leader = "1", all = "all"
    }

    public var kafka: KafkaConfiguration
    /// `enable.idempotence`: no duplicates or reordering from producer retries. Default on.
    public var enableIdempotence = true
    /// `acks`. Default `.all`, which idempotence requires.
    public var acks = Acks.all
    /// `linger.ms`: how long to wait to fill a batch. Default 5 ms: small latency cost, much better batching.
    public var linger = Duration.milliseconds(5)
    /// `message.timeout.ms`: a message not acknowledged within this time fails with `_MSG_TIMED_OUT`.
    public var messageTimeout = Duration.seconds(30)
    /// `transactional.id`: set to use transactions (exactly-once). Default none.
    public var transactionalID: String?

    public init(kafka: KafkaConfiguration) {
        self.kafka = kafka
    }

    /// All librdkafka properties, the pass-through ones last.
    var librdkafkaProperties: [String: String] {
        var result = kafka.baseProperties
        result["enable.idempotence"] = String(enableIdempotence)
        result["acks"] = acks.rawValue
        result["linger.ms"] = String(linger.milliseconds)
        result["message.timeout.ms"] = String(messageTimeout.milliseconds)
        if let transactionalID { result["transactional.id"] = transactionalID }
        result.merge(kafka.properties(for: .producer)) { _, passThrough in passThrough }
        return result
    }
}

/// Consumer settings. Defaults suit a pipeline that commits explicitly after its outputs are acknowledged.
public struct ConsumerConfiguration: Sendable, Equatable {
    /// Where to start when the group has no committed offset (`auto.offset.reset`).
    public enum OffsetReset: String, Sendable, Equatable {
        case earliest, latest, error
    }

    /// Whether records of open or aborted transactions are delivered (`isolation.level`).
    public enum IsolationLevel: String, Sendable, Equatable {
        case readCommitted = "read_committed", readUncommitted = "read_uncommitted"
    }

    public var kafka: KafkaConfiguration
    /// `group.id`. Required for `subscribe` and `commit`; without one, `assign` still works (a private
    /// throw-away group id is used because librdkafka needs one internally, but no group is ever joined).
    public var groupID: String?
    /// `group.instance.id`: static membership. A member that rejoins under the same id within
    /// ``sessionTimeout`` gets its partitions back without a rebalance of the group; one that closes does not
    /// leave the group (the broker waits ``sessionTimeout`` for it). Unique per member, stable across its
    /// restarts. Default none (dynamic membership).
    public var groupInstanceID: String?
    /// `auto.offset.reset`. Default `.earliest`: a new group reads everything rather than skipping.
    public var autoOffsetReset = OffsetReset.earliest
    /// `isolation.level`. Default `.readCommitted`.
    public var isolationLevel = IsolationLevel.readCommitted
    /// `session.timeout.ms`: how long the group waits for a silent member before reassigning its partitions.
    public var sessionTimeout = Duration.seconds(45)
    /// `max.poll.interval.ms`: the longest the consumer may go without polling before it leaves the group.
    public var maxPollInterval = Duration.seconds(300)
    /// How long the poll thread waits for a `.revoked` event's acknowledgement before giving the partitions
    /// up anyway. Keep it below `maxPollInterval`.
    public var revocationTimeout = Duration.seconds(30)
    /// Events buffered between the poll thread and the `events` sequence. When full, polling waits.
    public var eventBufferCapacity = 1024
    /// Bytes of records (key, value, headers) buffered between the poll thread and the `events` sequence;
    /// above it polling waits too (at least one record is always let through).
    public var eventBufferBytes = 64 << 20
    /// `enable.partition.eof`: deliver ``ConsumerEvent/endOfPartition(_:offset:)`` whenever the consumer
    /// has read everything a partition holds. Off by default (group consumers have no use for it).
    public var reportsEndOfPartition = false

    // enable.auto.commit is always false and partition.assignment.strategy defaults to cooperative-sticky;
    // both can still be overridden through `kafka.properties`.

    public init(kafka: KafkaConfiguration, groupID: String? = nil) {
        self.kafka = kafka
        self.groupID = groupID
    }

    /// All librdkafka properties, the pass-through ones last.
    var librdkafkaProperties: [String: String] {
        var result = kafka.baseProperties
        if let groupID { result["group.id"] = groupID }
        if let groupInstanceID { result["group.instance.id"] = groupInstanceID }
        result["enable.auto.commit"] = "false"
        result["enable.auto.offset.store"] = "false"
        result["auto.offset.reset"] = autoOffsetReset.rawValue
        result["isolation.level"] = isolationLevel.rawValue
        result["partition.assignment.strategy"] = "cooperative-sticky"
        result["session.timeout.ms"] = String(sessionTimeout.milliseconds)
        result["max.poll.interval.ms"] = String(maxPollInterval.milliseconds)
        result["enable.partition.eof"] = reportsEndOfPartition ? "true" : "false"
        result.merge(kafka.properties(for: .consumer)) { _, passThrough in passThrough }
        return result
    }
}

extension Duration {
    /// Whole milliseconds, rounded down, clamped to what librdkafka's `int` timeouts accept.
    var milliseconds: Int {
        let (seconds, attoseconds) = components
        let total = seconds.multipliedReportingOverflow(by: 1000)
        if total.overflow { return Int(Int32.max) }
        return Int(min(total.partialValue + attoseconds / 1_000_000_000_000_000, Int64(Int32.max)))
    }

    var timeoutMilliseconds: Int32 { Int32(clamping: max(0, milliseconds)) }
}

extension String {
    fileprivate func replacingUnderscores() -> String {
        String(map { $0 == "_" ? "." : $0 })
    }
}

extension Substring {
    fileprivate func trimmingSpaces() -> String {
        String(drop(while: { $0 == " " }).reversed().drop(while: { $0 == " " }).reversed())
    }
}
