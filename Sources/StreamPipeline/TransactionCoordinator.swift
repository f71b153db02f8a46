import Kafka
import Logging

/// Exactly-once delivery: the one owner of the producer's transactions.
///
/// Results are produced inside the open transaction, and each commit closes it together with the consumed
/// offsets of every partition (with the consumer's group metadata, so a member of an older group generation
/// cannot commit), so a `read_committed` reader sees every result once or not at all.
///
/// - Publishers take a ``Lease`` for each batch (enqueue, await delivery reports, acknowledge offsets) and
///   give it back; a batch therefore lies wholly in one transaction, and its events' offsets are in the
///   offset book before that transaction commits.
/// - Commits and aborts are *turns*: one at a time (callers queue, nothing interleaves across awaits), with
///   the gate closed and no lease out. A turn commits (begin → send → send offsets → commit → begin), or,
///   after an abortable error, aborts, rewinds the consumer of every partition with uncommitted work to its
///   last committed offset (their in-flight work is dropped: outputs of a rewound generation are never
///   published), and begins again.
/// - A fatal error (fenced by another producer with the same transactional id, transactions unsupported)
///   ends the transactions for good: leases fail, and `onFatal` stops the service.
actor TransactionCoordinator {
    /// Permission to publish one batch into the open transaction.
    struct Lease: Sendable {
        let transaction: UInt64
    }

    /// Why a lease cannot be had.
    struct Stopped: Error, CustomStringConvertible {
        let error: KafkaError
        var description: String { "exactly-once stopped: \(error)" }
    }

    private let producer: KafkaProducer
    private let consumer: KafkaConsumer
    private let book: OffsetBook
    private let logger: Logger
    private let transactionalID: String
    /// Drops the queued events of partitions (dropped or rewound) from the shards.
    private let dropQueued: @Sendable (Set<TopicPartition>) -> Void
    private let onFatal: @Sendable (KafkaError) -> Void
    private let onCommit: @Sendable (_ transaction: UInt64, _ committed: Bool) -> Void

    /// Number of the open transaction (1 for the first); changes at every commit and abort.
    private var transaction: UInt64 = 0
    private var leases = 0
    private var turnTaken = false
    /// Why the open transaction must be aborted, once reported by a publisher.
    private var abortCause: KafkaError?
    private var fatal: KafkaError?
    private var producedInTransaction = false
    private var gateWaiters: [CheckedContinuation<Void, Never>] = []
    private var idleWaiters: [CheckedContinuation<Void, Never>] = []
    private var turnWaiters: [CheckedContinuation<Void, Never>] = []
    private(set) var commits = 0
    private(set) var aborts = 0
    /// Yields when a publisher reported a failed record: the open transaction should be aborted now rather
    /// than at the next commit interval. The service serves it with ``commit()`` from a child task.
    nonisolated let abortRequests: AsyncStream<Void>
    private nonisolated let requestAbort: AsyncStream<Void>.Continuation

    init(producer: KafkaProducer, consumer: KafkaConsumer, book: OffsetBook, transactionalID: String, logger: Logger,
         dropQueued: @escaping @Sendable (Set<TopicPartition>) -> Void,
         onFatal: @escaping @Sendable (KafkaError) -> Void,
         onCommit: @escaping @Sendable (UInt64, Bool) -> Void = { _, _ in }) {
        self.producer = producer
        self.consumer = consumer
        self.book = book
        self.transactionalID = transactionalID
        self.logger = logger
        self.dropQueued = dropQueued
        self.onFatal = onFatal
        self.onCommit = onCommit
        (abortRequests, requestAbort) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(1))
    }

    /// Registers the transactional id (fencing older producers with it) and begins the first transaction.
    func start() async throws {
        do {
            try await producer.initTransactions()
            try producer.beginTransaction()
        } catch {
            throw StreamServiceError(description: "exactly-once cannot start with transactional.id '\(transactionalID)': \(error)")
        }
        transaction = 1
    }

    var fatalError: KafkaError? { fatal }

    // MARK: Leases

    /// Waits until the gate is open and the transaction healthy, then lends it for one batch.
    func acquire() async throws(Stopped) -> Lease {
        while true {
            if let fatal { throw Stopped(error: fatal) }
            if !turnTaken && abortCause == nil { break }
            await withCheckedContinuation { gateWaiters.append($0) }
        }
        leases += 1
        return Lease(transaction: transaction)
    }

    /// Gives a lease back. `produced`: records were enqueued under it. `failure`: a record of the batch failed
    /// (a delivery report or an enqueue), which dooms the transaction: it is aborted at once.
    func release(_ lease: Lease, produced: Bool, failure: KafkaError? = nil) {
        leases -= 1
        if lease.transaction == transaction {
            if produced { producedInTransaction = true }
            if let failure { fail(failure) }
        }
        if leases == 0 {
            idleWaiters.forEach { $0.resume() }
            idleWaiters.removeAll()
        }
    }

    private func fail(_ error: KafkaError) {
        guard fatal == nil else { return }
        if error.transactionReaction == .fatal || producer.fatalError != nil {
            becomeFatal(producer.fatalError ?? error)
            return
        }
        guard abortCause == nil else { return }
        abortCause = error
        logger.warning("a record of the open transaction failed; aborting it", metadata: ["error": "\(error)"])
        // Abort now rather than at the next commit interval; the turn queues behind any other.
        requestAbort.yield()
    }

    // MARK: Turns

    /// Commits the open transaction with the offsets of every partition, or aborts it when it failed. Either
    /// way a new transaction is open afterwards (unless fatal).
    func commit() async {
        await turn(revoked: [], lost: [])
    }

    /// Before `partitions` are revoked: commit everything settled (every partition's offsets with their
    /// outputs), then stop tracking the revoked partitions; their later outputs are never published.
    func commitBeforeRevocation(_ partitions: Set<TopicPartition>) async {
        await turn(revoked: partitions, lost: [])
    }

    /// `partitions` were lost: the open transaction may hold their outputs and the group has moved on, so it
    /// is aborted; they are forgotten and the other partitions are read again from their committed offsets.
    func abortForLostPartitions(_ partitions: Set<TopicPartition>) async {
        await turn(revoked: [], lost: partitions)
    }

    private func turn(revoked: Set<TopicPartition>, lost: Set<TopicPartition>) async {
        while turnTaken {
            await withCheckedContinuation { turnWaiters.append($0) }
        }
        turnTaken = true
        defer { endTurn() }
        while leases > 0 {
            await withCheckedContinuation { idleWaiters.append($0) }
        }
        guard fatal == nil else {
            forget(revoked.union(lost))
            return
        }
        if lost.isEmpty, abortCause == nil {
            do {
                // Committed, or nothing to commit (the open transaction stays open, empty).
                _ = try await commitOpenTransaction()
                forget(revoked)
                return
            } catch {
                if error.transactionReaction == .fatal || producer.fatalError != nil {
                    becomeFatal(producer.fatalError ?? error)
                    forget(revoked.union(lost))
                    return
                }
                abortCause = error
            }
        }
        await abortAndRewind(forgetting: revoked.union(lost),
                             because: abortCause.map { "\($0)" } ?? "partitions lost: \(lost.sorted())")
    }

    private func endTurn() {
        turnTaken = false
        if !turnWaiters.isEmpty {
            turnWaiters.removeFirst().resume()
        }
        gateWaiters.forEach { $0.resume() }
        gateWaiters.removeAll()
    }

    private func forget(_ partitions: Set<TopicPartition>) {
        guard !partitions.isEmpty else { return }
        book.remove(partitions)
        dropQueued(partitions)
    }

    /// Sends every partition's settled offsets and commits. Returns false when there was nothing to commit
    /// (the transaction stays open, empty).
    /// - Throws: the error of the send or commit (after retrying retriable ones), or an orphan error when
    ///   records were produced whose offsets are no longer tracked (their partitions were lost).
    private func commitOpenTransaction() async throws(KafkaError) -> Bool {
        let offsets = book.pendingCommits(for: nil)
        if offsets.isEmpty {
            guard producedInTransaction else { return false }
            throw KafkaError(code: -1, name: "ORPHAN_RECORDS", message: "records were produced for events whose partitions are no longer tracked",
                             operation: "committing a transaction", requiresTransactionAbort: true)
        }
        let metadata = try consumer.groupMetadata()
        try await retrying("sending offsets") { () async throws(KafkaError) in
            try await self.producer.sendOffsetsToTransaction(offsets, groupMetadata: metadata)
        }
        try await retrying("committing") { () async throws(KafkaError) in
            try await self.producer.commitTransaction()
        }
        book.markCommitted(offsets)
        commits += 1
        onCommit(transaction, true)
        producedInTransaction = false
        transaction &+= 1
        try producer.beginTransaction()
        return true
    }

    /// Calls `operation` again while it fails with a retriable error, up to 5 times in all.
    private func retrying(_ what: String, _ operation: () async throws(KafkaError) -> Void) async throws(KafkaError) {
        var backoff = Duration.milliseconds(200)
        for attempt in 1...5 {
            do {
                try await operation()
                return
            } catch {
                guard error.transactionReaction == .retry, attempt < 5 else { throw error }
                logger.warning("\(what) failed transiently; retrying", metadata: ["error": "\(error)", "attempt": "\(attempt)"])
                try? await Task.sleep(for: backoff)
                backoff *= 2
            }
        }
    }

    private func abortAndRewind(forgetting gone: Set<TopicPartition>, because cause: String) async {
        logger.warning("aborting the transaction; its events will be processed again from the last committed offsets",
                       metadata: ["transaction": "\(transaction)", "cause": "\(cause)"])
        do {
            try await retrying("aborting") { () async throws(KafkaError) in try await self.producer.abortTransaction() }
        } catch {
            becomeFatal(producer.fatalError ?? error)
            forget(gone)
            return
        }
        aborts += 1
        onCommit(transaction, false)
        abortCause = nil
        producedInTransaction = false
        transaction &+= 1
        forget(gone)
        let targets = book.beginRewind()
        dropQueued(Set(targets.keys))
        if !targets.isEmpty {
            logger.info("rewinding partitions to their committed offsets",
                        metadata: ["offsets": "\(targets.sorted { $0.key < $1.key }.map { "\($0.key)@\($0.value)" })"])
            consumer.rewind(targets)
        }
        do {
            try producer.beginTransaction()
        } catch {
            becomeFatal(producer.fatalError ?? error)
        }
    }

    private func becomeFatal(_ error: KafkaError) {
        guard fatal == nil else { return }
        fatal = error
        logger.critical("exactly-once cannot go on: the producer with transactional.id '\(transactionalID)' failed fatally; stopping",
                        metadata: ["error": "\(error)"])
        onFatal(error)
        gateWaiters.forEach { $0.resume() }
        gateWaiters.removeAll()
    }
}
