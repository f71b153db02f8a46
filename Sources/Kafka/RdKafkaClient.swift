import CRdKafka
import Logging
import Synchronization

/// State reachable from librdkafka's C callbacks through the instance opaque.
///
/// It outlives the `rd_kafka_t` (the client owns it and destroys the handle first), so callbacks can use an
/// unretained reference.
final class ClientContext: Sendable {
    let logger: Logger
    /// Called on the thread that served a rebalance (the consumer's poll thread).
    let rebalance: (@Sendable (OpaquePointer, rd_kafka_resp_err_t,
                               UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?) -> Void)?
    /// Called after each delivery report, so producers waiting for local queue space can retry.
    let deliveryProcessed: (@Sendable () -> Void)?
    private let fatal = Mutex<KafkaError?>(nil)

    init(logger: Logger,
         rebalance: (@Sendable (OpaquePointer, rd_kafka_resp_err_t,
                                UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?) -> Void)? = nil,
         deliveryProcessed: (@Sendable () -> Void)? = nil) {
        self.logger = logger
        self.rebalance = rebalance
        self.deliveryProcessed = deliveryProcessed
    }

    /// The first fatal error librdkafka raised for this instance, if any.
    var fatalError: KafkaError? { fatal.withLock { $0 } }

    func recordFatal(_ error: KafkaError) {
        fatal.withLock { if $0 == nil { $0 = error } }
    }
}

/// Owns one `rd_kafka_t` and the context its callbacks use; destroys the handle when released.
final class RdKafkaClient: @unchecked Sendable {
    // @unchecked: `handle` is an immutable pointer to a thread-safe librdkafka instance.
    let handle: OpaquePointer
    let context: ClientContext
    private let contextReference: Unmanaged<ClientContext>

    /// Builds the configuration from `properties` (sorted for deterministic error reporting), lets `configure`
    /// install type-specific callbacks, then creates the instance.
    init(type: rd_kafka_type_t, properties: [String: String], context: ClientContext,
         configure: (OpaquePointer) -> Void = { _ in }) throws(KafkaError) {
        guard let conf = rd_kafka_conf_new() else {
            throw KafkaError.client("rd_kafka_conf_new returned NULL", operation: "creating a configuration")
        }
        var confOwned = true
        defer { if confOwned { rd_kafka_conf_destroy(conf) } }

        for key in properties.keys.sorted() {
            guard let value = properties[key] else { continue }
            try Self.set(key, value, in: conf)
        }
        contextReference = Unmanaged.passRetained(context)
        self.context = context
        rd_kafka_conf_set_opaque(conf, contextReference.toOpaque())
        rd_kafka_conf_set_log_cb(conf, logCallback)
        rd_kafka_conf_set_error_cb(conf, errorCallback)
        configure(conf)

        var errorText = [CChar](repeating: 0, count: 512)
        guard let created = rd_kafka_new(type, conf, &errorText, errorText.count) else {
            contextReference.release()
            let detail = string(fromErrorBuffer: errorText)
            throw KafkaError(code: RD_KAFKA_RESP_ERR__INVALID_ARG, operation: "creating a Kafka client",
                             detail: detail)
        }
        confOwned = false  // rd_kafka_new took ownership
        handle = created
    }

    deinit {
        // Consumers are closed explicitly on their poll thread; closing again here would run rebalance
        // callbacks against objects that are going away.
        rd_kafka_destroy_flags(handle, Int32(RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE))
        contextReference.release()
    }

    private static func set(_ key: String, _ value: String, in conf: OpaquePointer) throws(KafkaError) {
        var errorText = [CChar](repeating: 0, count: 512)
        let result = rd_kafka_conf_set(conf, key, value, &errorText, errorText.count)
        guard result != RD_KAFKA_CONF_OK else { return }
        let detail = string(fromErrorBuffer: errorText)
        // librdkafka has no response code for configuration errors; errstr says unknown vs invalid.
        let code = RD_KAFKA_RESP_ERR__INVALID_ARG
        throw KafkaError(code: code.rawValue, name: String(cString: rd_kafka_err2name(code)),
                         message: detail, operation: "setting configuration property \(key)",
                         configurationKey: key)
    }

    /// The instance's name as librdkafka logs it, e.g. `rdkafka#producer-1`.
    var name: String { String(cString: rd_kafka_name(handle)) }

    /// The fatal error of this instance, if it has raised one: recorded by the error callback, or asked of
    /// librdkafka directly (its failed deliveries may be reported before the callback has run).
    var fatalError: KafkaError? {
        context.fatalError ?? Self.fatalError(of: handle)
    }

    static func fatalError(of handle: OpaquePointer) -> KafkaError? {
        var detail = [CChar](repeating: 0, count: 512)
        let underlying = rd_kafka_fatal_error(handle, &detail, detail.count)
        guard underlying != RD_KAFKA_RESP_ERR_NO_ERROR else { return nil }
        return KafkaError(code: underlying.rawValue, name: String(cString: rd_kafka_err2name(underlying)),
                          message: string(fromErrorBuffer: detail), operation: "running the Kafka client",
                          isFatal: true)
    }
}

extension ClientContext {
    static func from(_ handle: OpaquePointer?) -> ClientContext? {
        guard let handle, let opaque = rd_kafka_opaque(handle) else { return nil }
        return Unmanaged<ClientContext>.fromOpaque(opaque).takeUnretainedValue()
    }
}

// librdkafka may call these from its internal threads at any time; they only touch the thread-safe Logger.

private let logCallback: @convention(c) (OpaquePointer?, Int32, UnsafePointer<CChar>?, UnsafePointer<CChar>?) -> Void = {
    handle, level, facility, text in
    guard let context = ClientContext.from(handle) else { return }
    let facilityText = facility.map { String(cString: $0) } ?? "-"
    let message = text.map { String(cString: $0) } ?? ""
    context.logger.log(level: Logger.Level(syslog: level), "\(message)",
                       metadata: ["rdkafka.facility": "\(facilityText)"])
}

private let errorCallback: @convention(c) (OpaquePointer?, Int32, UnsafePointer<CChar>?, UnsafeMutableRawPointer?) -> Void = {
    handle, code, reason, opaque in
    guard let opaque else { return }
    let context = Unmanaged<ClientContext>.fromOpaque(opaque).takeUnretainedValue()
    let errorCode = rd_kafka_resp_err_t(rawValue: code)
    let reasonText = reason.map { String(cString: $0) } ?? ""
    if errorCode == RD_KAFKA_RESP_ERR__FATAL, let handle, let error = RdKafkaClient.fatalError(of: handle) {
        context.recordFatal(error)
        context.logger.critical("\(error)")
    } else {
        // Most errors here are transient (broker down, transport): librdkafka retries on its own.
        let error = KafkaError(code: errorCode, operation: "talking to the cluster", detail: reasonText)
        context.logger.warning("\(error)")
    }
}

extension Logger.Level {
    /// Maps syslog severities (0 emergency ... 7 debug), which librdkafka uses, to swift-log levels.
    init(syslog level: Int32) {
        switch level {
        case ...2: self = .critical
        case 3: self = .error
        case 4: self = .warning
        case 5: self = .notice
        case 6: self = .info
        default: self = .debug
        }
    }
}

/// Reads a C string buffer filled by librdkafka.
func string(fromErrorBuffer buffer: [CChar]) -> String {
    String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}
