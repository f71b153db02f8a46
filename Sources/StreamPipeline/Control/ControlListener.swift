import CoreMetrics
import Foundation
import Kafka
import Logging
import ModelControl
import ServiceLifecycle
import Synchronization

/// Why the control listener could not give the service a model to start with.
public enum ControlListenerError: Error, Sendable, CustomStringConvertible {
    /// No control message names a version for the deployment and no fallback model was given.
    case noModel(deployment: String)
    /// The desired version failed to load at start-up and there is no fallback.
    case startupLoadFailed(ModelReference, reason: String)
    /// `run()` was called before `catchUp()`.
    case notCaughtUp

    public var description: String {
        switch self {
        case .noModel(let deployment):
            return "no control message deploys a version of \(deployment) yet and no --model was given; run minirbt-admin deploy first"
        case let .startupLoadFailed(reference, reason):
            return "the deployed version \(reference) failed to load at start-up: \(reason)"
        case .notCaughtUp:
            return "ControlListener.run() needs catchUp() first: the service must start on the deployed version"
        }
    }
}

/// Follows the control topic for one deployment and swaps models when a verified message asks for it.
///
/// Start-up: ``catchUp(fallback:)`` reads the topic to its end before the service consumes anything and
/// returns the deployment holding the desired version. Then ``run()`` (a ServiceLifecycle service) applies
/// each new message: load → verify → warm up (off the cooperative pool) → swap. A failure leaves the
/// serving models untouched and is reported in the status heartbeat. Messages are applied one at a time,
/// in topic order.
public final class ControlListener: Service, Sendable {
    public struct Configuration: Sendable {
        public var deployment: String
        public var controlTopic = ControlTopics.defaultControlTopic
        public var registry: ModelRegistry
        public var verifier: ControlVerifier
        public var kafka: KafkaConfiguration
        /// Longest ``catchUp(fallback:)`` waits to read the topic to its end.
        public var catchUpTimeout = Duration.seconds(30)
        /// Where `minirbt_control_rejections_total` goes; `nil` for the backend `MetricsSystem.bootstrap`
        /// installed (tests pass their own).
        public var metricsFactory: (any MetricsFactory)?

        public init(deployment: String, registry: ModelRegistry, verifier: ControlVerifier, kafka: KafkaConfiguration) {
            self.deployment = deployment
            self.registry = registry
            self.verifier = verifier
            self.kafka = kafka
        }
    }

    private let configuration: Configuration
    private let follower: TopicFollower
    private let loader: ModelLoader
    private let reporter: StatusReporter?
    private let logger: Logger
    private let state: Mutex<State>

    private struct State {
        var ledger: ControlLedger
        var deployment: ServingModels?
    }

    public init(configuration: Configuration, reporter: StatusReporter?, logger: Logger) throws {
        self.configuration = configuration
        self.reporter = reporter
        self.logger = logger
        follower = try TopicFollower(topic: configuration.controlTopic, kafka: configuration.kafka, logger: logger)
        loader = ModelLoader(registry: configuration.registry)
        state = Mutex(State(ledger: ControlLedger(deployment: configuration.deployment)))
    }

    /// The accepted messages so far (tests and diagnostics).
    public var ledger: ControlLedger { state.withLock { $0.ledger } }

    /// Reads the control topic to its end and loads the version it asks for.
    ///
    /// - Parameter fallback: the model to serve when no message deploys a version yet, or when the desired
    ///   version fails to load at start-up (that failure is reported in the heartbeat).
    /// - Returns: the deployment the stream service must be built with.
    public func catchUp(fallback: (@Sendable () throws -> LoadedModel)? = nil) async throws -> ServingModels {
        let records = try await follower.readToEnd(timeout: configuration.catchUpTimeout)
        for record in records { accept(record) }
        let latest = state.withLock { $0.ledger.latest }

        var deployment: ServingModels
        if let latest, let primary = latest.desired.primary {
            do {
                deployment = ServingModels(primary: try await load(primary, for: latest))
            } catch {
                guard let fallback else { throw ControlListenerError.startupLoadFailed(primary, reason: "\(error)") }
                deployment = ServingModels(primary: try fallback())
            }
        } else if let fallback {
            deployment = ServingModels(primary: try fallback())
        } else {
            throw ControlListenerError.noModel(deployment: configuration.deployment)
        }
        state.withLock { $0.deployment = deployment }
        if let latest {
            await apply(latest)
        } else {
            report(deployment.current, sequence: nil)
        }
        return deployment
    }

    /// Applies new control messages until graceful shutdown.
    public func run() async throws {
        guard state.withLock({ $0.deployment != nil }) else { throw ControlListenerError.notCaughtUp }
        do {
            for try await event in follower.events.cancelOnGracefulShutdown() {
                guard case .record(let record) = event else { continue }
                if let message = accept(record) {
                    await apply(message)
                }
            }
        } catch is CancellationError {
            // Shutdown.
        }
        await follower.close()
    }

    /// Authenticates and orders one record; a rejection is logged, counted in
    /// `minirbt_control_rejections_total{reason}` and reported in the heartbeat (at start-up too: a replica
    /// that skipped records while catching up says so). Records of other deployments are skipped silently.
    @discardableResult
    private func accept(_ record: ConsumerRecord) -> ControlMessage? {
        let controlRecord = ControlRecord(record)
        do {
            let message = try state.withLock { state throws(ControlRejection) in
                try state.ledger.accept(controlRecord, verifier: configuration.verifier)
            }
            if let message { logger.info("control message accepted", metadata: ["message": "\(message.summary)"]) }
            return message
        } catch {
            logger.error("\(error)", metadata: ["record": "\(record.topicPartition)@\(record.offset)",
                                                "key": "\(controlRecord.keyText ?? "(none)")"])
            Counter(label: "minirbt_control_rejections_total", dimensions: [("reason", error.kind)],
                    factory: configuration.metricsFactory ?? MetricsSystem.factory).increment()
            let rejected = RejectedControlRecord(offset: record.offset, key: controlRecord.keyText, record: controlRecord.digest,
                                                 kind: error.kind, reason: error.description)
            reporter?.update {
                $0.lastError = error.description
                $0.rejectedRecord = controlRecord.digest
                $0.rejectedRecords.append(rejected)
                $0.rejectedRecords.removeFirst(max(0, $0.rejectedRecords.count - RejectedControlRecord.maximumReported))
                $0.rejectedCount += 1
            }
            return nil
        }
    }

    /// Makes the deployment serve what `message` asks for, or reports why it cannot.
    private func apply(_ message: ControlMessage) async {
        guard let deployment = state.withLock({ $0.deployment }) else { return }
        let current = deployment.current
        let desired = message.desired
        do {
            // No primary in the message (a canary before any deploy): keep the one serving.
            let primary = try await desired.primary.asyncMap { try await model($0, from: current, for: message) }
                ?? current.primary
            let candidate = try await desired.candidate.asyncMap { try await model($0, from: current, for: message) }
            deployment.serve(ModelSelection(primary: primary, candidate: candidate,
                                             mode: candidate == nil ? .single : desired.mode))
            logger.info("now serving", metadata: ["message": "\(message.summary)"])
            report(deployment.current, sequence: message.sequence)
        } catch {
            let failed = (try? message.target).map(\.description) ?? "\(message.name)/\(message.version)"
            logger.error("control message not applied; the current models keep serving",
                         metadata: ["message": "\(message.summary)", "error": "\(error)"])
            reporter?.update {
                $0.loading = nil
                $0.lastError = "loading \(failed) failed: \(error)"
                $0.failedVersion = try? message.target
                $0.failedSequence = message.sequence
            }
        }
    }

    /// A model already serving (primary or candidate) is reused; anything else is loaded and verified.
    private func model(_ reference: ModelReference, from current: ModelSelection, for message: ControlMessage) async throws -> LoadedModel {
        for model in [current.primary, current.candidate].compactMap({ $0 }) where self.reference(of: model) == reference {
            return model
        }
        return try await load(reference, for: message)
    }

    private func load(_ reference: ModelReference, for message: ControlMessage) async throws -> LoadedModel {
        reporter?.update { $0.loading = reference }
        logger.info("loading", metadata: ["version": "\(reference)", "sequence": "\(message.sequence)"])
        return try await loader.load(reference, manifestDigest: message.manifestDigest(for: reference))
    }

    private func reference(of model: LoadedModel) -> ModelReference? {
        try? ModelReference(name: model.identity.name, version: model.identity.version)
    }

    private func report(_ selection: ModelSelection, sequence: Int64?) {
        reporter?.update { status in
            status.active = reference(of: selection.primary)
            status.candidate = selection.candidate.flatMap { reference(of: $0) }
            status.mode = selection.mode
            status.loading = nil
            if let sequence { status.appliedSequence = sequence }
            status.lastError = nil
            status.failedVersion = nil
        }
    }
}

extension Optional {
    fileprivate func asyncMap<T>(_ transform: (Wrapped) async throws -> T) async rethrows -> T? {
        guard let self else { return nil }
        return try await transform(self)
    }
}
