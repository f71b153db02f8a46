import CRdKafka
import Logging
import Synchronization

/// Publishes records and reports the broker's acknowledgement of each.
///
/// Two ways to send: `send` awaits one record's acknowledgement; `enqueue` only awaits room in librdkafka's
/// local queue and reports the acknowledgement through a callback, so a pipeline can keep thousands of
/// records in flight. Delivery callbacks run on the producer's poll thread: keep them short.
///
/// Call `close` before releasing the producer so queued records are flushed.
public final class KafkaProducer: Sendable {
    public typealias DeliveryHandler = @Sendable (Result<DeliveryReport, KafkaError>) -> Void

    private let client: RdKafkaClient
    private let logger: Logger
    private let pollThread: PollThread
    private let queueSpace: QueueSpace
    private let blockingCalls: BlockingCallQueue
    private let closed = Atomic<Bool>(false)

    /// Creates the producer and starts its poll thread.
    /// - Throws: `KafkaError` naming the property when librdkafka rejects a configuration key or value.
    public init(configuration: ProducerConfiguration, logger: Logger) throws(KafkaError) {
        let queueSpace = QueueSpace()
        let context = ClientContext(logger: logger, deliveryProcessed: { queueSpace.released() })
        let client = try RdKafkaClient(type: RD_KAFKA_PRODUCER, properties: configuration.librdkafkaProperties,
                                       context: context) { conf in
            rd_kafka_conf_set_dr_msg_cb(conf, deliveryCallback)
        }
        self.client = client
        self.logger = logger
        self.queueSpace = queueSpace
        self.blockingCalls = BlockingCallQueue(label: "kafka.producer.calls.\(client.name)")
        // The thread keeps the client alive until it stops, so the handle is destroyed on this dedicated
        // thread rather than in whatever task drops the last reference.
        pollThread = PollThread(name: "kafka.producer.poll") { shouldStop in
            while !shouldStop() {
                rd_kafka_poll(client.handle, 100)
            }
        }
    }

    deinit {
        pollThread.requestStop()
    }

    /// Publishes `record` and returns once the broker has acknowledged it.
    /// - Throws: `KafkaError` when the record is rejected locally or its delivery fails
    ///   (e.g. `MSG_SIZE_TOO_LARGE`, `_MSG_TIMED_OUT` after `message.timeout.ms`).
    public func send(_ record: ProducerRecord) async throws(KafkaError) -> DeliveryReport {
        let outcome = Promise<Result<DeliveryReport, KafkaError>>()
        try await enqueue(record) { outcome.fulfill($0) }
        return try await outcome.value.get()
    }

    /// Hands `record` to librdkafka and returns without awaiting the acknowledgement, which arrives later
    /// through `onDelivery` (exactly once, on the poll thread). When the local queue is full this waits
    /// until deliveries free room, rather than failing.
    /// - Throws: `KafkaError` when the record is rejected before being queued (then `onDelivery` is not called).
    public func enqueue(_ record: ProducerRecord, onDelivery: @escaping DeliveryHandler) async throws(KafkaError) {
        let ticket = Unmanaged.passRetained(DeliveryTicket(onDelivery))
        while true {
            guard !closed.load(ordering: .acquiring) else {
                ticket.release()
                throw KafkaError.client("the producer is closed", operation: "sending to topic \(record.topic)")
            }
            let generation = queueSpace.generation
            let result = produce(record, opaque: ticket.toOpaque())
            switch result {
            case RD_KAFKA_RESP_ERR_NO_ERROR:
                return
            case RD_KAFKA_RESP_ERR__QUEUE_FULL:
                await queueSpace.waitForRelease(after: generation)
            default:
                ticket.release()
                throw KafkaError(code: result, operation: "sending to topic \(record.topic)")
            }
        }
    }

    private func produce(_ record: ProducerRecord, opaque: UnsafeMutableRawPointer) -> rd_kafka_resp_err_t {
        var headerList: OpaquePointer?
        if !record.headers.isEmpty {
            headerList = rd_kafka_headers_new(record.headers.count)
            for header in record.headers {
                if let value = header.value {
                    value.withUnsafeBytes { _ = rd_kafka_header_add(headerList, header.name, -1, $0.baseAddress, $0.count) }
                } else {
                    _ = rd_kafka_header_add(headerList, header.name, -1, nil, 0)
                }
            }
        }
        let partition = record.partition ?? Int32(RD_KAFKA_PARTITION_UA)
        let result = record.key.withOptionalBytes { key in
            record.value.withOptionalBytes { value in
                minirbt_produce(client.handle, record.topic, partition, key.baseAddress, key.count,
                                value.baseAddress, value.count, headerList, record.timestampMilliseconds ?? 0, opaque)
            }
        }
        // On success librdkafka owns the headers; on failure they are still ours.
        if result != RD_KAFKA_RESP_ERR_NO_ERROR, let headerList { rd_kafka_headers_destroy(headerList) }
        return result
    }

    /// Waits until every queued record is acknowledged or failed.
    /// - Throws: `KafkaError` `_TIMED_OUT` when records are still outstanding at the deadline.
    public func flush(timeout: Duration) async throws(KafkaError) {
        let client = client
        try await blockingCalls.run { () throws(KafkaError) in
            let result = rd_kafka_flush(client.handle, timeout.timeoutMilliseconds)
            guard result == RD_KAFKA_RESP_ERR_NO_ERROR else {
                let pending = rd_kafka_outq_len(client.handle)
                throw KafkaError(code: result, operation: "flushing the producer",
                                 detail: "\(pending) records still unacknowledged after \(timeout)")
            }
        }
    }

    /// Describes a topic from cluster metadata (without creating it), e.g. to check at start-up that the
    /// topics a service writes exist.
    /// - Throws: `KafkaError` `UNKNOWN_TOPIC_OR_PART` when the topic does not exist, or the metadata error.
    public func describeTopic(_ name: String, timeout: Duration = .seconds(10)) async throws(KafkaError) -> TopicDescription {
        let client = client
        return try await blockingCalls.run { () throws(KafkaError) in
            try describe(client, name, timeout: timeout)
        }
    }

    /// Asks the cluster for its broker list; throws when no broker answers within `timeout`.
    /// - Returns: how many brokers the cluster reported.
    @discardableResult
    public func pingCluster(timeout: Duration = .seconds(5)) async throws(KafkaError) -> Int {
        let client = client
        return try await blockingCalls.run { () throws(KafkaError) in
            var metadata: UnsafePointer<rd_kafka_metadata>?
            let result = rd_kafka_metadata(client.handle, 0, nil, &metadata, timeout.timeoutMilliseconds)
            guard result == RD_KAFKA_RESP_ERR_NO_ERROR, let metadata else {
                throw KafkaError(code: result, operation: "reading cluster metadata")
            }
            defer { rd_kafka_metadata_destroy(metadata) }
            return Int(metadata.pointee.broker_cnt)
        }
    }

    /// The fatal error librdkafka raised for this producer (e.g. fenced by a newer producer with the same
    /// transactional id), if any: the producer can do nothing more.
    public var fatalError: KafkaError? { client.fatalError }

    /// Records and requests not yet acknowledged (librdkafka's out-queue length).
    public var outstandingCount: Int { Int(rd_kafka_outq_len(client.handle)) }

    /// Flushes (bounded by `timeout`), then stops the poll thread. Further sends fail. Records still
    /// unacknowledged at the deadline fail with `_PURGE_QUEUE` through their delivery handlers.
    public func close(timeout: Duration = .seconds(10)) async {
        guard !closed.exchange(true, ordering: .acquiringAndReleasing) else { return }
        queueSpace.releaseAll()
        do {
            try await flush(timeout: timeout)
        } catch {
            logger.warning("closing producer: \(error)")
            let client = client
            _ = try? await blockingCalls.run {
                rd_kafka_purge(client.handle, Int32(RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT))
                rd_kafka_poll(client.handle, 0)
            }
        }
        pollThread.requestStop()
        await pollThread.join()
    }

    // MARK: Transactions (requires `ProducerConfiguration.transactionalID`)

    /// Registers the transactional id with the coordinator and fences older producers using it.
    /// Call once before the first `beginTransaction`.
    public func initTransactions(timeout: Duration = .seconds(30)) async throws(KafkaError) {
        try await transactionCall("initialising transactions") { handle in
            rd_kafka_init_transactions(handle, timeout.timeoutMilliseconds)
        }
    }

    /// Starts a transaction; records sent until commit or abort belong to it. Local, does not block.
    public func beginTransaction() throws(KafkaError) {
        if let error = rd_kafka_begin_transaction(client.handle) {
            throw KafkaError(consuming: error, operation: "beginning a transaction")
        }
    }

    /// Adds the consumer's offsets (next offset to read per partition) to the current transaction, so they
    /// are committed if and only if the transaction is.
    public func sendOffsetsToTransaction(_ offsets: [TopicPartition: Int64], groupMetadata: ConsumerGroupMetadata,
                                         timeout: Duration = .seconds(30)) async throws(KafkaError) {
        let entries = offsets.sorted { $0.key < $1.key }.map { ($0.key, Optional($0.value)) }
        try await transactionCall("sending offsets to the transaction") { handle throws(KafkaError) in
            try TopicPartitionList.with(entries) { list in
                rd_kafka_send_offsets_to_transaction(handle, list, groupMetadata.pointer,
                                                     timeout.timeoutMilliseconds)
            }
        }
    }

    /// Flushes and commits the current transaction.
    /// - Throws: `KafkaError`; when `requiresTransactionAbort`, call `abortTransaction`; when `isRetriable`,
    ///   commit again; when `isFatal`, recreate the producer.
    public func commitTransaction(timeout: Duration = .seconds(30)) async throws(KafkaError) {
        try await transactionCall("committing a transaction") { handle in
            rd_kafka_commit_transaction(handle, timeout.timeoutMilliseconds)
        }
    }

    /// Aborts the current transaction: its records are never seen by read_committed consumers.
    public func abortTransaction(timeout: Duration = .seconds(30)) async throws(KafkaError) {
        try await transactionCall("aborting a transaction") { handle in
            rd_kafka_abort_transaction(handle, timeout.timeoutMilliseconds)
        }
    }

    private func transactionCall(_ operation: String,
                                 _ call: @escaping @Sendable (OpaquePointer) throws(KafkaError) -> OpaquePointer?)
        async throws(KafkaError) {
        let client = client
        try await blockingCalls.run { () throws(KafkaError) in
            if let error = try call(client.handle) {
                throw KafkaError(consuming: error, operation: operation)
            }
        }
    }
}

/// The per-record completion, passed through librdkafka as the message opaque.
private final class DeliveryTicket {
    let handler: KafkaProducer.DeliveryHandler

    init(_ handler: @escaping KafkaProducer.DeliveryHandler) {
        self.handler = handler
    }
}

/// Lets producers that hit `_QUEUE_FULL` wait for a delivery report instead of spinning.
///
/// The generation counter closes the race where room is freed between the failed produce and the wait:
/// a waiter whose generation is already stale returns at once.
private final class QueueSpace: Sendable {
    private struct State {
        var generation: UInt64 = 0
        var waiters: [CheckedContinuation<Void, Never>] = []
    }

    private let state = Mutex(State())

    var generation: UInt64 { state.withLock { $0.generation } }

    func waitForRelease(after generation: UInt64) async {
        await withCheckedContinuation { continuation in
            let stale = state.withLock { state in
                if state.generation != generation { return true }
                state.waiters.append(continuation)
                return false
            }
            if stale { continuation.resume() }
        }
    }

    func released() {
        let waiters = state.withLock { state in
            state.generation &+= 1
            defer { state.waiters.removeAll() }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    func releaseAll() { released() }
}

private let deliveryCallback: @convention(c) (OpaquePointer?, UnsafePointer<rd_kafka_message_t>?, UnsafeMutableRawPointer?) -> Void = {
    _, message, opaque in
    guard let message else { return }
    if let ticketPointer = message.pointee._private {
        let ticket = Unmanaged<DeliveryTicket>.fromOpaque(ticketPointer).takeRetainedValue()
        let topic = message.pointee.rkt.flatMap { rd_kafka_topic_name($0) }.map { String(cString: $0) } ?? ""
        if message.pointee.err == RD_KAFKA_RESP_ERR_NO_ERROR {
            var timestampType = RD_KAFKA_TIMESTAMP_NOT_AVAILABLE
            let timestamp = rd_kafka_message_timestamp(message, &timestampType)
            let offset = message.pointee.offset
            ticket.handler(.success(DeliveryReport(
                topic: topic, partition: message.pointee.partition,
                offset: offset >= 0 ? offset : nil,
                timestampMilliseconds: timestampType == RD_KAFKA_TIMESTAMP_NOT_AVAILABLE ? nil : timestamp)))
        } else {
            ticket.handler(.failure(KafkaError(code: message.pointee.err,
                                               operation: "delivering to \(topic)[\(message.pointee.partition)]")))
        }
    }
    if let opaque {
        Unmanaged<ClientContext>.fromOpaque(opaque).takeUnretainedValue().deliveryProcessed?()
    }
}

extension Optional where Wrapped == [UInt8] {
    /// Calls `body` with the bytes, or with an empty buffer whose base address is NULL for `nil`, which is
    /// how librdkafka tells a null key/value from an empty one.
    fileprivate func withOptionalBytes<Result>(_ body: (UnsafeRawBufferPointer) -> Result) -> Result {
        switch self {
        case .some(let bytes):
            // An empty array may have a NULL base address; a one-byte stand-in keeps "empty" distinct from
            // "null" while passing length 0.
            if bytes.isEmpty {
                return withUnsafeBytes(of: UInt8(0)) { body(UnsafeRawBufferPointer(start: $0.baseAddress, count: 0)) }
            }
            return bytes.withUnsafeBytes(body)
        case .none:
            return body(UnsafeRawBufferPointer(start: nil, count: 0))
        }
    }
}
