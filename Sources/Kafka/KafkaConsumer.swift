import CRdKafka
import Foundation
import Logging
import Synchronization

/// Reads records from Kafka, either as a member of a consumer group (`subscribe`) or from explicitly
/// chosen partitions (`assign`), and reports them with rebalance events through `events`.
///
/// A dedicated poll thread calls librdkafka and feeds a bounded buffer; when the buffer is full it stops
/// polling, which stops fetching. Offsets are only committed explicitly (`commit`), never automatically.
/// Call `close` to leave the group cleanly; keep reading `events` meanwhile, since closing revokes the
/// assignment and waits for that `.revoked` event to be acknowledged.
public final class KafkaConsumer: Sendable {
    private let client: RdKafkaClient
    private let logger: Logger
    private let buffer: EventBuffer
    private let pollThread: PollThread
    private let blockingCalls: BlockingCallQueue
    private let hasGroup: Bool
    private let rebalancer: Rebalancer

    /// The consumer's events. Iterate from a single task.
    public var events: ConsumerEvents { ConsumerEvents(buffer: buffer) }

    /// Creates the consumer and starts its poll thread; nothing is read until `subscribe` or `assign`.
    /// - Throws: `KafkaError` naming the property when librdkafka rejects a configuration key or value.
    public init(configuration: ConsumerConfiguration, logger: Logger) throws(KafkaError) {
        let buffer = EventBuffer(capacity: configuration.eventBufferCapacity, capacityBytes: configuration.eventBufferBytes)
        let flow = PartitionFlow(logger: logger)
        let rebalancer = Rebalancer(buffer: buffer, flow: flow, revocationTimeout: configuration.revocationTimeout, logger: logger)
        self.rebalancer = rebalancer
        let context = ClientContext(logger: logger, rebalance: { rebalancer.handle($0, $1, $2) })
        var properties = configuration.librdkafkaProperties
        if properties["group.id"] == nil {
            // librdkafka keeps assignments in its group machinery even without a group; a unique id keeps
            // this consumer from ever sharing state with another. Nothing is joined unless `subscribe` is used.
            properties["group.id"] = "minirbt-unjoined-\(UUID().uuidString)"
        }
        let client = try RdKafkaClient(type: RD_KAFKA_CONSUMER, properties: properties, context: context) { conf in
            rd_kafka_conf_set_rebalance_cb(conf, rebalanceCallback)
        }
        // Route logs, errors and rebalances through rd_kafka_consumer_poll, i.e. through the poll thread.
        rd_kafka_poll_set_consumer(client.handle)
        buffer.install(performer: { request in
            switch request {
            case let .seek(offsets): return Self.seek(client, offsets)
            case let .pause(partitions): flow.pause(partitions, on: client.handle)
            case let .resume(partitions): flow.resume(partitions, on: client.handle)
            }
            return nil
        }, wake: {
            // The consumer queue is where rd_kafka_consumer_poll waits; yielding it ends that wait at once.
            if let queue = rd_kafka_queue_get_consumer(client.handle) {
                rd_kafka_queue_yield(queue)
                rd_kafka_queue_destroy(queue)
            }
        })

        self.client = client
        self.logger = logger
        self.buffer = buffer
        self.hasGroup = configuration.groupID != nil || configuration.kafka.properties["group.id"] != nil
        self.blockingCalls = BlockingCallQueue(label: "kafka.consumer.calls.\(client.name)")
        pollThread = PollThread(name: "kafka.consumer.poll") { shouldStop in
            Self.pollLoop(client: client, buffer: buffer, flow: flow, logger: logger, shouldStop: shouldStop)
        }
    }

    deinit {
        pollThread.requestStop()
        buffer.stopBlocking()
    }

    private static func pollLoop(client: RdKafkaClient, buffer: EventBuffer, flow: PartitionFlow, logger: Logger,
                                 shouldStop: () -> Bool) {
        var failure: KafkaError?
        while !shouldStop() {
            if let fatal = client.context.fatalError {
                failure = fatal
                break
            }
            buffer.serviceRequests()
            flow.repeatDueResumes(on: client.handle)
            guard let message = rd_kafka_consumer_poll(client.handle, 100) else { continue }
            defer { rd_kafka_message_destroy(message) }
            let code = message.pointee.err
            if code == RD_KAFKA_RESP_ERR_NO_ERROR {
                buffer.push(.record(ConsumerRecord(message: message)))
            } else if code == RD_KAFKA_RESP_ERR__PARTITION_EOF {
                // Only delivered when enable.partition.eof is on.
                if let topic = message.pointee.rkt.flatMap({ rd_kafka_topic_name($0) }) {
                    buffer.push(.endOfPartition(TopicPartition(topic: String(cString: topic), partition: message.pointee.partition),
                                                offset: message.pointee.offset))
                }
            } else {
                // Consumer errors are informational (librdkafka keeps retrying); fatal ones arrive via the
                // error callback and end the loop above.
                let detail = rd_kafka_message_errstr(message).map { String(cString: $0) }
                logger.warning("\(KafkaError(code: code, operation: "consuming", detail: detail))")
            }
        }
        // Closing revokes the assignment through the rebalance callback (on this thread): the reader gets a
        // `.revoked` event and can commit before the group moves the partitions.
        buffer.stopBlocking()
        let closeResult = rd_kafka_consumer_close(client.handle)
        if closeResult != RD_KAFKA_RESP_ERR_NO_ERROR {
            logger.warning("\(KafkaError(code: closeResult, operation: "closing the consumer"))")
        }
        buffer.finish(error: failure)
    }

    /// Joins the group and consumes `topics`. A name starting with `^` is a regular expression matched
    /// against all topics (librdkafka syntax), e.g. `^events\\..*`.
    public func subscribe(topics: [String]) async throws(KafkaError) {
        guard hasGroup else {
            throw KafkaError.client("subscribe needs ConsumerConfiguration.groupID",
                                    operation: "subscribing to \(topics)", code: RD_KAFKA_RESP_ERR__INVALID_ARG)
        }
        let client = client
        try await blockingCalls.run { () throws(KafkaError) in
            try TopicPartitionList.with(topics.map { (TopicPartition(topic: $0, partition: Int32(RD_KAFKA_PARTITION_UA)), nil) }) { list throws(KafkaError) in
                let result = rd_kafka_subscribe(client.handle, list)
                if result != RD_KAFKA_RESP_ERR_NO_ERROR {
                    throw KafkaError(code: result, operation: "subscribing to \(topics)")
                }
            }
        }
    }

    /// Replaces the assignment with exactly these partitions, without a group rebalance. No `.assigned`
    /// event is emitted: the caller knows what it asked for. The partitions start unpaused, as with a
    /// group's assignment (see ``PartitionFlow``).
    public func assign(_ partitions: [TopicPartition: KafkaOffset]) async throws(KafkaError) {
        let entries = partitions.sorted { $0.key < $1.key }.map { ($0.key, Optional($0.value.rawValue)) }
        let client = client
        try await blockingCalls.run { () throws(KafkaError) in
            try TopicPartitionList.with(entries) { list throws(KafkaError) in
                let result = rd_kafka_assign(client.handle, list)
                if result != RD_KAFKA_RESP_ERR_NO_ERROR {
                    throw KafkaError(code: result, operation: "assigning \(partitions.keys.sorted())")
                }
            }
        }
        resume(partitions.keys.sorted())
    }

    /// Moves the fetch positions of `offsets`' partitions back (or forward) to those offsets, e.g. to read
    /// again what an aborted transaction consumed. Returns at once; the poll thread seeks between two polls,
    /// drops the records of those partitions it had already fetched (buffered or about to be), and reports
    /// a `.rewound` event: every record of these partitions after that event is read from the new position.
    public func rewind(_ offsets: [TopicPartition: Int64]) {
        guard !offsets.isEmpty else { return }
        buffer.request(.seek(offsets))
    }

    /// Poll thread: the seek itself. librdkafka discards what it prefetched for these partitions.
    private static func seek(_ client: RdKafkaClient, _ offsets: [TopicPartition: Int64]) -> KafkaError? {
        let entries = offsets.sorted { $0.key < $1.key }.map { ($0.key, Optional($0.value)) }
        do {
            try TopicPartitionList.with(entries) { list throws(KafkaError) in
                if let error = rd_kafka_seek_partitions(client.handle, list, 10_000) {
                    throw KafkaError(consuming: error, operation: "seeking \(offsets.keys.sorted())")
                }
                if let partitionError = TopicPartitionList.firstError(in: list, operation: "seeking") {
                    throw partitionError
                }
            }
            return nil
        } catch {
            return error
        }
    }

    /// Commits `offsets` synchronously. Each value is the NEXT offset to read (last processed + 1).
    public func commit(_ offsets: [TopicPartition: Int64]) async throws(KafkaError) {
        guard !offsets.isEmpty else { return }
        let entries = offsets.sorted { $0.key < $1.key }.map { ($0.key, Optional($0.value)) }
        let client = client
        try await blockingCalls.run { () throws(KafkaError) in
            try TopicPartitionList.with(entries) { list throws(KafkaError) in
                let result = rd_kafka_commit(client.handle, list, 0)
                if result != RD_KAFKA_RESP_ERR_NO_ERROR {
                    throw KafkaError(code: result, operation: "committing offsets")
                }
                if let partitionError = TopicPartitionList.firstError(in: list, operation: "committing offsets") {
                    throw partitionError
                }
            }
        }
    }

    /// The group's committed offsets (next offset to read) for `partitions`; `nil` where none is committed.
    public func committed(_ partitions: [TopicPartition], timeout: Duration = .seconds(10))
        async throws(KafkaError) -> [TopicPartition: Int64?] {
        let client = client
        return try await blockingCalls.run { () throws(KafkaError) in
            try TopicPartitionList.with(partitions.map { ($0, nil) }) { list throws(KafkaError) in
                let result = rd_kafka_committed(client.handle, list, timeout.timeoutMilliseconds)
                if result != RD_KAFKA_RESP_ERR_NO_ERROR {
                    throw KafkaError(code: result, operation: "reading committed offsets")
                }
                return offsetsByPartition(TopicPartitionList.entries(of: list))
            }
        }
    }

    /// Stops fetching `partitions` until `resume`; the assignment (and group membership) is kept, which is
    /// how a pipeline applies back-pressure without triggering a rebalance. Returns at once: the poll thread
    /// pauses them before its next poll (see ``PartitionFlow`` for why there); records it had already
    /// polled are still delivered.
    public func pause(_ partitions: [TopicPartition]) {
        guard !partitions.isEmpty else { return }
        buffer.request(.pause(partitions))
    }

    /// Resumes fetching paused `partitions` from where they stopped. Returns at once, like `pause`, whose
    /// requests it stays ordered with.
    public func resume(_ partitions: [TopicPartition]) {
        guard !partitions.isEmpty else { return }
        buffer.request(.resume(partitions))
    }

    /// The offset of the next record the consumer will fetch, per partition; `nil` before the first fetch.
    public func position(_ partitions: [TopicPartition]) throws(KafkaError) -> [TopicPartition: Int64?] {
        try TopicPartitionList.with(partitions.map { ($0, nil) }) { list throws(KafkaError) in
            let result = rd_kafka_position(client.handle, list)
            if result != RD_KAFKA_RESP_ERR_NO_ERROR {
                throw KafkaError(code: result, operation: "reading positions")
            }
            return offsetsByPartition(TopicPartitionList.entries(of: list))
        }
    }

    /// Asks the partition leader for the low and high watermarks.
    public func watermarks(_ partition: TopicPartition, timeout: Duration = .seconds(10))
        async throws(KafkaError) -> WatermarkOffsets {
        let client = client
        return try await blockingCalls.run { () throws(KafkaError) in
            try queryWatermarks(client.handle, partition, timeout: timeout)
        }
    }

    /// The group's identity for `KafkaProducer.sendOffsetsToTransaction`.
    public func groupMetadata() throws(KafkaError) -> ConsumerGroupMetadata {
        guard let pointer = rd_kafka_consumer_group_metadata(client.handle) else {
            throw KafkaError.client("the consumer has no group metadata", operation: "reading group metadata")
        }
        return ConsumerGroupMetadata(pointer: pointer)
    }

    /// Leaves the group and stops the poll thread. Outstanding partitions are revoked first (the `.revoked`
    /// event waits for its acknowledgement up to `revocationTimeout`), then `events` ends. Idempotent.
    public func close() async {
        pollThread.requestStop()
        buffer.stopBlocking()
        await pollThread.join()
    }

    /// Closes when the reader has nothing left to finish (its work is committed, or left to the partitions'
    /// next owner): the revocations closing causes are acknowledged at once instead of waiting for the reader.
    /// Their `.revoked` events are still delivered, already acknowledged.
    public func closeAcknowledgingRevocations() async {
        rebalancer.acknowledgesAtOnce.store(true, ordering: .releasing)
        await close()
    }
}

/// A consumer group's identity (group id, generation, member id), captured for transactional offset commits.
public final class ConsumerGroupMetadata: @unchecked Sendable {
    // @unchecked: immutable once created; librdkafka only reads it.
    let pointer: OpaquePointer

    init(pointer: OpaquePointer) {
        self.pointer = pointer
    }

    deinit {
        rd_kafka_consumer_group_metadata_destroy(pointer)
    }
}

/// Applies librdkafka's rebalance decisions on the poll thread and reports them as events.
private final class Rebalancer: Sendable {
    let buffer: EventBuffer
    let flow: PartitionFlow
    let revocationTimeout: Duration
    let logger: Logger
    /// Set while closing with nothing left to finish: revocations need no acknowledgement from the reader.
    let acknowledgesAtOnce = Atomic<Bool>(false)

    init(buffer: EventBuffer, flow: PartitionFlow, revocationTimeout: Duration, logger: Logger) {
        self.buffer = buffer
        self.flow = flow
        self.revocationTimeout = revocationTimeout
        self.logger = logger
    }

    func handle(_ handle: OpaquePointer, _ code: rd_kafka_resp_err_t,
                _ list: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?) {
        let partitions = TopicPartitionList.entries(of: list).map(\.topicPartition)
        let cooperative = rd_kafka_rebalance_protocol(handle).map { String(cString: $0) } == "COOPERATIVE"
        switch code {
        case RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS:
            logger.info("partitions assigned: \(partitions)")
            // A pause left from an earlier assignment would hold these partitions for good, and pause
            // requests still queued for them date from then too: the reader learns of this assignment from
            // the `.assigned` event below, not before.
            buffer.dropPendingPauses(of: Set(partitions))
            if cooperative {
                report(rd_kafka_incremental_assign(handle, list), "assigning \(partitions)")
            } else {
                report(rd_kafka_assign(handle, list), "assigning \(partitions)")
            }
            flow.resume(partitions, on: handle)
            buffer.push(.assigned(partitions))
        case RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS:
            if rd_kafka_assignment_lost(handle) != 0 {
                logger.warning("partitions lost: \(partitions)")
                buffer.push(.lost(partitions))
            } else {
                logger.info("partitions revoked: \(partitions); waiting for the reader to finish them")
                let acknowledgement = RevocationAcknowledgement()
                if acknowledgesAtOnce.load(ordering: .acquiring) { acknowledgement.acknowledge() }
                buffer.push(.revoked(partitions, acknowledgement))
                if !acknowledgement.wait(timeout: revocationTimeout) {
                    logger.warning("revocation of \(partitions) not acknowledged within \(revocationTimeout); giving them up")
                }
            }
            if cooperative {
                report(rd_kafka_incremental_unassign(handle, list), "unassigning \(partitions)")
            } else {
                report(rd_kafka_assign(handle, nil), "unassigning \(partitions)")
            }
        default:
            logger.error("\(KafkaError(code: code, operation: "rebalancing")); dropping the assignment")
            report(rd_kafka_assign(handle, nil), "dropping the assignment")
        }
    }

    private func report(_ error: OpaquePointer?, _ operation: String) {
        if let error { logger.error("\(KafkaError(consuming: error, operation: operation))") }
    }

    private func report(_ code: rd_kafka_resp_err_t, _ operation: String) {
        if code != RD_KAFKA_RESP_ERR_NO_ERROR { logger.error("\(KafkaError(code: code, operation: operation))") }
    }
}

private let rebalanceCallback: @convention(c) (OpaquePointer?, rd_kafka_resp_err_t,
                                               UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?,
                                               UnsafeMutableRawPointer?) -> Void = { handle, code, list, opaque in
    guard let handle, let opaque else { return }
    Unmanaged<ClientContext>.fromOpaque(opaque).takeUnretainedValue().rebalance?(handle, code, list)
}

private func offsetsByPartition(_ entries: [TopicPartitionList.Entry]) -> [TopicPartition: Int64?] {
    var result: [TopicPartition: Int64?] = [:]
    for entry in entries {
        result[entry.topicPartition] = entry.offset >= 0 ? entry.offset : nil
    }
    return result
}

/// Blocking watermark query; call from a blocking-call queue.
func queryWatermarks(_ handle: OpaquePointer, _ partition: TopicPartition,
                     timeout: Duration) throws(KafkaError) -> WatermarkOffsets {
    var low: Int64 = 0
    var high: Int64 = 0
    let result = rd_kafka_query_watermark_offsets(handle, partition.topic, partition.partition, &low, &high,
                                                  timeout.timeoutMilliseconds)
    guard result == RD_KAFKA_RESP_ERR_NO_ERROR else {
        throw KafkaError(code: result, operation: "querying watermarks of \(partition)")
    }
    return WatermarkOffsets(low: low, high: high)
}

/// Pauses and resumes partitions for the poll thread, which alone calls it, between two of its polls.
///
/// Two races of librdkafka 2.8 decide where and how:
/// - A pause saves the application's position as the offset to fetch from on resume when librdkafka's
///   own thread handles it. A record that a poll on another thread has taken from the queue, but not yet
///   counted in that position, is then fetched again after the resume: a duplicate (seen about once per
///   100,000 records in the soak while shards paused and resumed partitions from their own threads).
///   Between two polls no record is in flight.
/// - A resume is dropped when its partition does not look paused yet, i.e. when librdkafka's thread has
///   not handled the pause before it; the partition would then stay paused for good (librdkafka issue
///   5591 describes the same window after an assignment). So every resume is repeated after 0.2, 1 and 5
///   seconds unless the partition is paused again meanwhile; resuming a partition that is not paused
///   changes nothing.
///
/// librdkafka also keeps an application's pause across assignments (it clears only its own pauses), so a
/// partition revoked while paused would never be fetched again once assigned back: every assignment
/// resumes its partitions first (``Rebalancer``).
final class PartitionFlow: @unchecked Sendable {
    // @unchecked: only the poll thread touches `repeats`.
    private let logger: Logger
    /// Resumes still to repeat: the next time, and the delays after that one.
    private var repeats: [TopicPartition: (due: ContinuousClock.Instant, later: ArraySlice<Duration>)] = [:]
    private static let repeatDelays: [Duration] = [.milliseconds(200), .seconds(1), .seconds(5)]

    init(logger: Logger) {
        self.logger = logger
    }

    func pause(_ partitions: [TopicPartition], on handle: OpaquePointer) {
        for partition in partitions { repeats[partition] = nil }
        apply(partitions, pause: true, on: handle)
    }

    func resume(_ partitions: [TopicPartition], on handle: OpaquePointer) {
        apply(partitions, pause: false, on: handle)
        let now = ContinuousClock.now
        for partition in partitions {
            repeats[partition] = (now + Self.repeatDelays[0], Self.repeatDelays.dropFirst())
        }
    }

    /// Repeats the resumes whose time has come.
    func repeatDueResumes(on handle: OpaquePointer) {
        guard !repeats.isEmpty else { return }
        let now = ContinuousClock.now
        let due = repeats.filter { $0.value.due <= now }.map(\.key).sorted()
        guard !due.isEmpty else { return }
        // A partition revoked since may refuse; that is expected here, so it is not a warning.
        apply(due, pause: false, on: handle, failureLevel: .debug)
        for partition in due {
            guard let entry = repeats[partition] else { continue }
            if let delay = entry.later.first {
                repeats[partition] = (now + delay, entry.later.dropFirst())
            } else {
                repeats[partition] = nil
            }
        }
    }

    private func apply(_ partitions: [TopicPartition], pause: Bool, on handle: OpaquePointer,
                       failureLevel: Logger.Level = .warning) {
        let operation = pause ? "pausing \(partitions)" : "resuming \(partitions)"
        do {
            try TopicPartitionList.with(partitions.map { ($0, nil) }) { list throws(KafkaError) in
                let result = pause ? rd_kafka_pause_partitions(handle, list) : rd_kafka_resume_partitions(handle, list)
                if result != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(code: result, operation: operation) }
                if let error = TopicPartitionList.firstError(in: list, operation: operation) { throw error }
            }
        } catch {
            // Unassigned partitions end up here; the next assignment resumes them.
            logger.log(level: failureLevel, "\(error)")
        }
    }
}
