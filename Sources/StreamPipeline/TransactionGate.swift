import Kafka

/// Exactly-once delivery: results are produced inside an open Kafka transaction, and each commit closes it
/// together with the consumed offsets, so a `read_committed` reader sees every result once or not at all.
///
/// Sends and commits exclude each other: a commit waits for sends already under way, flushes them (so the
/// offset book knows every acknowledged event), adds the offsets, commits, and opens the next transaction.
actor TransactionGate {
    private let producer: KafkaProducer
    private var committing = false
    private var sendsUnderWay = 0
    private var producedSinceCommit = false
    private var gateWaiters: [CheckedContinuation<Void, Never>] = []
    private var idleWaiters: [CheckedContinuation<Void, Never>] = []

    init(producer: KafkaProducer) {
        self.producer = producer
    }

    func start() async throws {
        try await producer.initTransactions()
        try producer.beginTransaction()
    }

    func send(_ record: ProducerRecord,
              onDelivery: @escaping @Sendable (Result<DeliveryReport, KafkaError>) -> Void) async throws {
        while committing {
            await withCheckedContinuation { gateWaiters.append($0) }
        }
        sendsUnderWay += 1
        defer {
            sendsUnderWay -= 1
            if sendsUnderWay == 0 {
                idleWaiters.forEach { $0.resume() }
                idleWaiters.removeAll()
            }
        }
        producedSinceCommit = true
        try await producer.enqueue(record, onDelivery: onDelivery)
    }

    /// Commits the open transaction with the offsets `offsets()` returns once every result is acknowledged.
    /// A failure that needs an abort is rethrown after aborting: the service must stop, and a restart redoes
    /// the aborted events from the last committed offsets.
    func commit(offsets: @Sendable () -> [TopicPartition: Int64], consumer: KafkaConsumer,
                markCommitted: @Sendable ([TopicPartition: Int64]) -> Void) async throws {
        committing = true
        defer {
            committing = false
            gateWaiters.forEach { $0.resume() }
            gateWaiters.removeAll()
        }
        while sendsUnderWay > 0 {
            await withCheckedContinuation { idleWaiters.append($0) }
        }
        try await producer.flush(timeout: .seconds(60))
        let pending = offsets()
        guard producedSinceCommit || !pending.isEmpty else { return }
        do {
            if !pending.isEmpty {
                try await producer.sendOffsetsToTransaction(pending, groupMetadata: try consumer.groupMetadata())
            }
            try await producer.commitTransaction()
        } catch {
            if error.requiresTransactionAbort {
                try? await producer.abortTransaction()
            }
            throw error
        }
        markCommitted(pending)
        producedSinceCommit = false
        try producer.beginTransaction()
    }
}
