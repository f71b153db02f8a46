import Kafka
import Logging
import Synchronization

/// The service's producer, and — in at-least-once mode — its replacement when the producer itself is
/// at fault.
///
/// An idempotent producer (`enable.idempotence=true`, the default) whose producer id, epoch or sequence
/// numbers the broker no longer accepts fails its records with errors no retry on that instance can fix, or
/// raises a fatal error and publishes nothing more; librdkafka's remedy is a new instance. It happens after a
/// broker stall longer than `message.timeout.ms` (on Tansu 0.6 as `PRODUCER_FENCED` on every record).
/// Without transactions nothing ties the service to the old instance: the records it failed are retried by
/// their publishers, at least once as always, so the service swaps in a new producer rather than stopping.
/// Under exactly-once a fatal error still stops the service: the transactional id may belong to another
/// replica now, and only the next owner may redo the work.
final class ProducerSlot: Sendable {
    private struct State {
        var producer: KafkaProducer
        var generation: UInt64 = 0
    }

    private let state: Mutex<State>
    private let makeProducer: (@Sendable () throws(KafkaError) -> KafkaProducer)?
    private let metrics: PipelineMetrics
    private let logger: Logger

    /// - Parameter makeProducer: builds a replacement; `nil` (exactly-once) never replaces the producer.
    init(_ producer: KafkaProducer, makeProducer: (@Sendable () throws(KafkaError) -> KafkaProducer)?,
         metrics: PipelineMetrics, logger: Logger) {
        state = Mutex(State(producer: producer))
        self.makeProducer = makeProducer
        self.metrics = metrics
        self.logger = logger
    }

    /// The producer to use now.
    var current: KafkaProducer { state.withLock { $0.producer } }

    /// Counts replacements: a publisher notes it before a round of deliveries and passes it to ``renew(after:)``.
    var generation: UInt64 { state.withLock { $0.generation } }

    /// After a delivery failed permanently with `error`: replaces the producer of `generation` if the fault is
    /// the producer's (``KafkaError/invalidatesProducer``, or a fatal error raised for it).
    /// - Returns: true when the records should be sent again — the producer was replaced, now or by another
    ///   publisher since `generation`; false when the failure is the topic's, not the producer's.
    func renew(after generation: UInt64, error: KafkaError) async -> Bool {
        guard let makeProducer else { return false }
        enum Outcome { case retry(replaced: KafkaProducer?), stop }
        let outcome: Outcome = state.withLock { state in
            guard state.generation == generation else { return .retry(replaced: nil) }
            guard let fault = state.producer.fatalError ?? (error.invalidatesProducer ? error : nil) else { return .stop }
            // Built under the lock, so that one failure makes one replacement however many publishers
            // see it: creating a producer allocates and starts librdkafka's threads, with no network round
            // trip, so the lock is held for milliseconds (and only after a producer fault).
            do {
                let failed = state.producer
                state.producer = try makeProducer()
                state.generation += 1
                logger.warning("the producer failed; replaced it with a new one, its records are sent again",
                               metadata: ["error": "\(fault)", "replacements": "\(state.generation)"])
                return .retry(replaced: failed)
            } catch {
                logger.error("the producer failed and a new one could not be created",
                             metadata: ["error": "\(fault)", "creating": "\(error)"])
                return .stop
            }
        }
        guard case .retry(let failed) = outcome else { return false }
        if failed != nil { metrics.producerReplaced() }
        // Its queued records fail with _PURGE_QUEUE, which their publishers retry on the new producer.
        await failed?.close(timeout: .seconds(1))
        return true
    }
}
