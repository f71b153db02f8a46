import CRdKafka

/// An error reported by librdkafka (or by this wrapper around it), with the operation it interrupted.
///
/// `code` is the raw `rd_kafka_resp_err_t` value so callers can match codes librdkafka documents without
/// this type having to enumerate hundreds of them. The flags carry librdkafka's own classification, which
/// is what decides the reaction: retry, abort the transaction, or give up on the client.
public struct KafkaError: Error, Sendable, CustomStringConvertible {
    /// Raw `rd_kafka_resp_err_t` value; negative codes are client-side, positive ones come from the broker.
    public let code: Int32
    /// Symbolic name from `rd_kafka_err2name`, e.g. `MSG_SIZE_TOO_LARGE` or `_QUEUE_FULL`.
    public let name: String
    /// Human-readable detail: librdkafka's error string, or the message of the failed call.
    public let message: String
    /// What was being done, e.g. "delivering to topic orders" or "setting configuration property foo".
    public let operation: String
    /// The same call may succeed when retried.
    public let isRetriable: Bool
    /// The client instance is unusable and must be recreated.
    public let isFatal: Bool
    /// A transactional producer must abort the current transaction before it can continue.
    public let requiresTransactionAbort: Bool
    /// For configuration errors: the librdkafka property that was rejected.
    public let configurationKey: String?

    public init(code: Int32, name: String, message: String, operation: String, isRetriable: Bool = false,
                isFatal: Bool = false, requiresTransactionAbort: Bool = false, configurationKey: String? = nil) {
        self.code = code
        self.name = name
        self.message = message
        self.operation = operation
        self.isRetriable = isRetriable
        self.isFatal = isFatal
        self.requiresTransactionAbort = requiresTransactionAbort
        self.configurationKey = configurationKey
    }

    public var description: String {
        var flags: [String] = []
        if isRetriable { flags.append("retriable") }
        if isFatal { flags.append("fatal") }
        if requiresTransactionAbort { flags.append("transaction must abort") }
        let suffix = flags.isEmpty ? "" : " [\(flags.joined(separator: ", "))]"
        return "Kafka error while \(operation): \(name) (\(code)): \(message)\(suffix)"
    }

    /// The broker or client rejected a message as larger than the allowed maximum.
    public var isMessageTooLarge: Bool {
        code == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE.rawValue || code == RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE.rawValue
            || code == RD_KAFKA_RESP_ERR_INVALID_MSG_SIZE.rawValue
    }

    /// What a failed produce or delivery means for the record, to decide between retrying it, replacing it
    /// (e.g. by a smaller dead letter) and stopping.
    public enum ProduceFailure: Sendable, Equatable {
        /// The cluster is unreachable or busy (timeouts, transport, leader changes): send it again later.
        case transient
        /// This record as it is can never be accepted (too large, invalid): send something else instead.
        case recordRejected
        /// No record to this topic can be published (topic missing, not authorised, client fenced or
        /// fatally failed): retrying cannot help.
        case permanent
    }

    /// How to react to this error from `enqueue` or a delivery report. Codes this does not know are
    /// `.transient`: retried, never turned into data loss.
    public var produceFailure: ProduceFailure {
        if isFatal { return .permanent }
        switch rd_kafka_resp_err_t(rawValue: code) {
        case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE, RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE,
             RD_KAFKA_RESP_ERR_INVALID_MSG_SIZE, RD_KAFKA_RESP_ERR_INVALID_MSG, RD_KAFKA_RESP_ERR_INVALID_RECORD,
             RD_KAFKA_RESP_ERR_INVALID_TIMESTAMP, RD_KAFKA_RESP_ERR__BAD_MSG:
            return .recordRejected
        case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART, RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC,
             RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION, RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED,
             RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED, RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION,
             RD_KAFKA_RESP_ERR_SASL_AUTHENTICATION_FAILED, RD_KAFKA_RESP_ERR__AUTHENTICATION,
             RD_KAFKA_RESP_ERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED, RD_KAFKA_RESP_ERR__FATAL,
             RD_KAFKA_RESP_ERR__FENCED, RD_KAFKA_RESP_ERR_PRODUCER_FENCED, RD_KAFKA_RESP_ERR__STATE,
             RD_KAFKA_RESP_ERR_POLICY_VIOLATION, RD_KAFKA_RESP_ERR__INVALID_ARG:
            return .permanent
        default:
            return .transient
        }
    }
}

extension KafkaError {
    /// What a transactional producer must do after this error.
    public enum TransactionReaction: Sendable, Equatable {
        /// Call the same operation again (e.g. a commit that timed out).
        case retry
        /// Abort the transaction; then a new one can begin.
        case abort
        /// The producer can do nothing more: it was fenced by another producer with the same transactional
        /// id, the broker does not support transactions, or librdkafka raised a fatal error.
        case fatal
    }

    /// Another producer with the same transactional id took over (this one is fenced).
    public var isFenced: Bool {
        switch rd_kafka_resp_err_t(rawValue: code) {
        case RD_KAFKA_RESP_ERR__FENCED, RD_KAFKA_RESP_ERR_PRODUCER_FENCED, RD_KAFKA_RESP_ERR_INVALID_PRODUCER_EPOCH:
            return true
        default:
            return false
        }
    }

    /// The producer instance is at fault, not the record or its topic: it failed fatally, or the broker refused
    /// its idempotence state (producer id, epoch, sequence numbers; seen as PRODUCER_FENCED after a broker stall
    /// past `message.timeout.ms`). A new producer instance starts with a clean state.
    public var invalidatesProducer: Bool {
        if isFatal || isFenced { return true }
        switch rd_kafka_resp_err_t(rawValue: code) {
        case RD_KAFKA_RESP_ERR__FATAL, RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER,
             RD_KAFKA_RESP_ERR_UNKNOWN_PRODUCER_ID, RD_KAFKA_RESP_ERR__INCONSISTENT:
            return true
        default:
            return false
        }
    }

    /// Codes that mean another producer took over this transactional id, or that transactions cannot work.
    public var isFencingOrUnsupported: Bool {
        switch rd_kafka_resp_err_t(rawValue: code) {
        case RD_KAFKA_RESP_ERR__FENCED, RD_KAFKA_RESP_ERR_PRODUCER_FENCED, RD_KAFKA_RESP_ERR_INVALID_PRODUCER_EPOCH,
             RD_KAFKA_RESP_ERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED, RD_KAFKA_RESP_ERR__FATAL,
             RD_KAFKA_RESP_ERR_UNSUPPORTED_VERSION, RD_KAFKA_RESP_ERR_UNSUPPORTED_FOR_MESSAGE_FORMAT,
             RD_KAFKA_RESP_ERR__NOT_CONFIGURED, RD_KAFKA_RESP_ERR__UNSUPPORTED_FEATURE:
            return true
        default:
            return false
        }
    }

    /// The reaction to an error of a transactional call (`rd_kafka_error_t` flags), or of a delivery report
    /// inside a transaction (a bare code: the transaction is doomed unless the producer is fenced).
    public var transactionReaction: TransactionReaction {
        if isFatal || isFencingOrUnsupported { return .fatal }
        if requiresTransactionAbort { return .abort }
        if isRetriable { return .retry }
        return .abort
    }

    /// An error from a bare response code, as returned by most non-transactional calls and delivery reports.
    init(code: rd_kafka_resp_err_t, operation: String, detail: String? = nil) {
        let name = String(cString: rd_kafka_err2name(code))
        let text = String(cString: rd_kafka_err2str(code))
        self.init(code: code.rawValue, name: name, message: detail ?? text, operation: operation,
                  isRetriable: KafkaError.isRetriableCode(code))
    }

    /// Takes ownership of a `rd_kafka_error_t` (as returned by the transactional and incremental-assignment
    /// APIs), copies its classification and destroys it.
    init(consuming error: OpaquePointer, operation: String) {
        defer { rd_kafka_error_destroy(error) }
        let code = rd_kafka_error_code(error)
        self.init(code: code.rawValue,
                  name: String(cString: rd_kafka_error_name(error)),
                  message: rd_kafka_error_string(error).map { String(cString: $0) } ?? "",
                  operation: operation,
                  isRetriable: rd_kafka_error_is_retriable(error) != 0,
                  isFatal: rd_kafka_error_is_fatal(error) != 0,
                  requiresTransactionAbort: rd_kafka_error_txn_requires_abort(error) != 0)
    }

    /// An error this wrapper raises itself (no librdkafka call failed), e.g. a closed client.
    static func client(_ message: String, operation: String,
                       code: rd_kafka_resp_err_t = RD_KAFKA_RESP_ERR__STATE) -> KafkaError {
        KafkaError(code: code, operation: operation, detail: message)
    }

    /// Codes that describe transient conditions. librdkafka only classifies `rd_kafka_error_t` objects;
    /// for bare codes (delivery reports, admin results) this list fills the gap.
    static func isRetriableCode(_ code: rd_kafka_resp_err_t) -> Bool {
        switch code {
        case RD_KAFKA_RESP_ERR__TRANSPORT, RD_KAFKA_RESP_ERR__TIMED_OUT, RD_KAFKA_RESP_ERR__MSG_TIMED_OUT,
             RD_KAFKA_RESP_ERR__QUEUE_FULL, RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
             RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION, RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE,
             RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS, RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND,
             RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS, RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE,
             RD_KAFKA_RESP_ERR_NOT_COORDINATOR, RD_KAFKA_RESP_ERR_NETWORK_EXCEPTION,
             RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS:
            return true
        default:
            return false
        }
    }
}
