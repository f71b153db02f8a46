import Foundation
import Kafka
import Logging
import ModelControl
import ServiceLifecycle
import Synchronization

/// What the control listener knows about the models, for the heartbeat.
public struct ControlStatus: Sendable, Equatable {
    public var active: ModelReference?
    public var candidate: ModelReference?
    public var mode: ServingMode = .single
    public var loading: ModelReference?
    public var lastError: String?
    public var failedVersion: ModelReference?
    public var appliedSequence: Int64?
    public var failedSequence: Int64?
    /// Which control record was rejected last (see `InstanceHeartbeat.rejectedRecord`).
    public var rejectedRecord: String?
    /// The newest rejected records (see `InstanceHeartbeat.rejectedRecords`) and how many since start.
    public var rejectedRecords: [RejectedControlRecord] = []
    public var rejectedCount = 0

    public init() {}
}

/// What the stream service reports for the heartbeat; supplied by a closure so the reporter does not
/// depend on how the service is built.
public struct ServiceObservation: Sendable {
    public var assignedPartitions: [String]
    /// Events processed since start (monotonic); the reporter derives events per second from it.
    public var processedEvents: Int
    public var lag: Int64?
    /// The service's own last error, shown when the control plane has none.
    public var lastError: String?
    /// How the serving shadow candidate compared with the primary, by the models' identities (the reporter
    /// keeps it only when they are the ones the control plane says are serving).
    public var shadow: (primary: ModelIdentity, candidate: ModelIdentity, tally: PipelineMetrics.AgreementTally)?

    /// Live drift of the versions serving (``DriftMonitor/reports(now:)``).
    public var drift: [VersionDrift]?

    public init(assignedPartitions: [String] = [], processedEvents: Int = 0, lag: Int64? = nil, lastError: String? = nil,
                shadow: (primary: ModelIdentity, candidate: ModelIdentity, tally: PipelineMetrics.AgreementTally)? = nil,
                drift: [VersionDrift]? = nil) {
        self.assignedPartitions = assignedPartitions
        self.processedEvents = processedEvents
        self.lag = lag
        self.lastError = lastError
        self.shadow = shadow
        self.drift = drift
    }
}

/// Publishes this instance's ``InstanceHeartbeat`` to the status topic (key = instance id) every
/// `interval` and promptly after every ``update(_:)``.
public final class StatusReporter: Service, Sendable {
    public let instance: String
    public let deployment: String
    public let topic: String
    public let interval: Duration
    private let producer: KafkaProducer
    private let logger: Logger
    private let state: Mutex<State>
    private let wakeUps: AsyncStream<Void>
    private let wake: AsyncStream<Void>.Continuation

    private struct State {
        var control = ControlStatus()
        var observe: @Sendable () -> ServiceObservation? = { nil }
        var lastCount: (events: Int, at: ContinuousClock.Instant)?
    }

    public init(producer: KafkaProducer, topic: String = ControlTopics.defaultStatusTopic, instance: String,
                deployment: String, interval: Duration = .seconds(5), logger: Logger,
                observe: @escaping @Sendable () -> ServiceObservation? = { nil }) {
        self.producer = producer
        self.topic = topic
        self.instance = instance
        self.deployment = deployment
        self.interval = interval
        self.logger = logger
        state = Mutex(State(observe: observe))
        // Newest-only: a burst of changes becomes one prompt heartbeat carrying the latest state.
        (wakeUps, wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    /// Replaces the closure that observes the stream service (it may be built after the reporter).
    public func observe(_ closure: @escaping @Sendable () -> ServiceObservation?) {
        state.withLock { $0.observe = closure }
    }

    /// Changes the control part of the heartbeat and publishes it soon.
    public func update(_ change: (inout ControlStatus) -> Void) {
        state.withLock { change(&$0.control) }
        wake.yield()
    }

    public var control: ControlStatus { state.withLock { $0.control } }

    /// The heartbeat as it would be published now.
    public func heartbeat(now: Date = Date()) -> InstanceHeartbeat {
        let (control, observe) = state.withLock { ($0.control, $0.observe) }
        let observation = observe()
        let rate = eventsPerSecond(observation?.processedEvents)
        let mode: (name: String, percent: Int?) = switch control.mode {
        case .single: ("single", nil)
        case .canary(let percent): ("canary", percent)
        case .shadow: ("shadow", nil)
        }
        var heartbeat = InstanceHeartbeat(
            instance: instance, deployment: deployment, active: control.active, candidate: control.candidate,
            mode: mode.name, canaryPercent: mode.percent, loading: control.loading,
            lastError: control.lastError ?? observation?.lastError, failedVersion: control.failedVersion,
            appliedSequence: control.appliedSequence, failedSequence: control.failedSequence,
            rejectedRecord: control.rejectedRecord,
            assignedPartitions: observation?.assignedPartitions ?? [], eventsPerSecond: rate,
            lag: observation?.lag, intervalMs: Int(interval / .milliseconds(1)),
            at: now, shadow: Self.shadowComparison(control, observation?.shadow), drift: observation?.drift)
        heartbeat.rejectedRecords = control.rejectedRecords
        heartbeat.rejectedCount = control.rejectedCount
        return heartbeat
    }

    /// The shadow comparison for the heartbeat: only in shadow mode, and only of the pair the control plane
    /// serves (a swap may be between the observation and the control state).
    static func shadowComparison(_ control: ControlStatus,
                                 _ observed: (primary: ModelIdentity, candidate: ModelIdentity, tally: PipelineMetrics.AgreementTally)?)
        -> ShadowComparison? {
        guard control.mode == .shadow, let candidate = control.candidate, let active = control.active,
              let observed, observed.candidate.name == candidate.name, observed.candidate.version == candidate.version,
              observed.primary.name == active.name, observed.primary.version == active.version
        else { return nil }
        return ShadowComparison(candidate: candidate, compared: observed.tally.compared, agreed: observed.tally.agreed,
                                meanScoreDifference: observed.tally.meanScoreDifference)
    }

    private func eventsPerSecond(_ events: Int?) -> Double {
        guard let events else { return 0 }
        let now = ContinuousClock.now
        return state.withLock { state in
            defer { state.lastCount = (events, now) }
            guard let last = state.lastCount else { return 0 }
            let seconds = (now - last.at) / .seconds(1)
            return seconds > 0 ? Double(events - last.events) / seconds : 0
        }
    }

    /// Publishes one heartbeat and waits for the broker's acknowledgement.
    public func publish() async throws {
        let heartbeat = heartbeat()
        let value = Array(try JSONEncoder.control.encode(heartbeat))
        _ = try await producer.send(ProducerRecord(topic: topic, key: Array(instance.utf8), value: value))
    }

    /// Heartbeats until graceful shutdown: on a timer and after every change.
    public func run() async throws {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { [wake, interval] in
                while !Task.isCancelled {
                    wake.yield()
                    try? await Task.sleep(for: interval)
                }
            }
            for await _ in wakeUps.cancelOnGracefulShutdown() {
                do {
                    try await publish()
                } catch {
                    // A missed heartbeat only makes the instance look stale for a moment; the next one follows.
                    logger.warning("status heartbeat not published", metadata: ["topic": "\(topic)", "error": "\(error)"])
                }
            }
            group.cancelAll()
        }
    }
}
