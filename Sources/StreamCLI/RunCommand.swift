import ArgumentParser
import Foundation
import Kafka
import Logging
import Metrics
import MiniRBT
import ModelControl
import Prometheus
import ServiceLifecycle
import StreamPipeline

struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run the streaming inference service: consume events, classify, publish enriched results.",
        discussion: """
            Every option can also be set by the environment variable named after it; flags win. \
            --max-batch is MINIRBT_MAX_BATCH; MINIRBT_INPUT_TOPIC takes a comma-separated list. librdkafka \
            properties pass through unchanged with --kafka key=value, or as KAFKA_* variables \
            (KAFKA_SECURITY_PROTOCOL=SASL_SSL sets security.protocol); a consumer-only key such as \
            fetch.wait.max.ms reaches only the consumer, a producer-only one only the producers.

            Input events are JSON objects {"id", "text"[, "text_pair"]} (field names configurable) or plain \
            UTF-8 text. Each yields one result on --output-topic, keyed like its event and carrying the model \
            version in the minirbt-model-version header, or one record on --dlq-topic saying why not. Offsets \
            are committed only over events whose output the broker acknowledged.

            Scale out with more replicas in the same --group; give the input topics at least replicas × shards \
            partitions. SIGTERM or SIGINT drains the shards, commits, leaves the group and exits 0.

            With --registry, --deployment and --verify-key the model follows signed control messages \
            (minirbt-admin deploy): the control topic is read to its end before the first event, and new \
            versions are loaded, verified and swapped in between batches.

            Example:
              minirbt-stream run --brokers 127.0.0.1:9092 --input-topic reviews \\
                --output-topic reviews-sentiment --dlq-topic reviews-dlq \\
                --model ../shared/models/minirbt-h256-chnsenticorp/v2 --shards 2
            """)

    @Option(help: "Kafka bootstrap servers, comma-separated. [env: MINIRBT_BROKERS] (default: 127.0.0.1:9092)")
    var brokers: String?

    @Option(help: "Consumer group; replicas in one group split the partitions. [env: MINIRBT_GROUP] (default: minirbt-stream)")
    var group: String?

    @Option(help: "Topic to consume (repeatable). [env: MINIRBT_INPUT_TOPIC, comma-separated]")
    var inputTopic: [String] = []

    @Option(help: "Regular expression over topic names to consume, instead of --input-topic. [env: MINIRBT_INPUT_PATTERN]")
    var inputPattern: String?

    @Option(help: "Topic for enriched results. [env: MINIRBT_OUTPUT_TOPIC] (default: minirbt-results)")
    var outputTopic: String?

    @Option(help: "Dead-letter topic for events that cannot be processed. [env: MINIRBT_DLQ_TOPIC] (default: minirbt-dead-letters)")
    var dlqTopic: String?

    @Option(help: "HF checkpoint directory of the model to serve; with --registry, the model used until a version is deployed. [env: MINIRBT_MODEL]")
    var model: String?

    @Option(help: "Name reported in results (default: the checkpoint directory's parent). [env: MINIRBT_MODEL_NAME]")
    var modelName: String?

    @Option(help: "Version reported in results (default: the checkpoint directory's name). [env: MINIRBT_MODEL_VERSION]")
    var modelVersion: String?

    @Option(help: "Model registry root (<root>/<name>/<version>/); with it the model follows the control topic. [env: MINIRBT_REGISTRY]")
    var registry: String?

    @Option(help: "Deployment this replica serves, as named by `minirbt-admin deploy`. [env: MINIRBT_DEPLOYMENT]")
    var deployment: String?

    @Option(help: "Compacted topic of signed control messages. [env: MINIRBT_CONTROL_TOPIC] (default: minirbt-control)")
    var controlTopic: String?

    @Option(help: "Topic for this replica's status heartbeats. [env: MINIRBT_STATUS_TOPIC] (default: minirbt-status)")
    var statusTopic: String?

    @Option(help: "Topic for the candidate's results in shadow mode. [env: MINIRBT_SHADOW_TOPIC] (default: minirbt-shadow)")
    var shadowTopic: String?

    @Option(help: "Public key file that control messages may be signed with (minirbt-admin keygen); repeatable, to trust several keys (e.g. during a key rotation). [env: MINIRBT_VERIFY_KEY, comma-separated]")
    var verifyKey: [String] = []

    @Option(help: "This replica's name in heartbeats. [env: MINIRBT_INSTANCE_ID] (default: host name and process id)")
    var instanceId: String?

    @Option(help: "Inference shards (threads); each owns a share of the partitions. [env: MINIRBT_SHARDS] (default: cores)")
    var shards: Int?

    @Option(help: "Most events per forward pass. [env: MINIRBT_MAX_BATCH] (default: 32)")
    var maxBatch: Int?

    @Option(help: "Longest a batch waits to fill, in milliseconds. [env: MINIRBT_MAX_WAIT_MS] (default: 10)")
    var maxWaitMs: Int?

    @Option(help: "Tokens per text; longer texts are truncated and flagged. [env: MINIRBT_MAX_LENGTH] (default: 128)")
    var maxLength: Int?

    @Option(help: "oneDNN threads per shard. [env: MINIRBT_THREADS_PER_SHARD] (default: 1)")
    var threadsPerShard: Int?

    @Option(help: "Format of the encoder's matrix products: fp32, bf16 or int8. [env: MINIRBT_PRECISION] (default: \(Precision.default))")
    var precision: Precision?

    @Option(help: "Queued events per shard at which its partitions are paused. [env: MINIRBT_QUEUE_CAPACITY] (default: 8 × max batch)")
    var queueCapacity: Int?

    @Flag(help: "Copy each event's text into its result. [env: MINIRBT_ECHO_TEXT=1]")
    var echoText = false

    @Option(help: "at-least-once or exactly-once (Kafka transactions). [env: MINIRBT_DELIVERY] (default: at-least-once)")
    var delivery: String?

    @Option(help: "Port for /metrics, /healthz and /readyz; 0 turns it off. [env: MINIRBT_METRICS_PORT] (default: 9464)")
    var metricsPort: Int?

    @Option(help: "Address the status server (/metrics, /healthz, /readyz) binds to. [env: MINIRBT_METRICS_HOST] (default: 0.0.0.0, every interface, as containers need)")
    var metricsHost: String?

    @Option(help: "Bytes of consumed events held at once (queued, in inference, awaiting publication) above which every partition is paused; they resume below half. [env: MINIRBT_MAX_BUFFERED_BYTES] (default: 268435456)")
    var maxBufferedBytes: Int?

    @Option(help: "Seconds a shard, publisher or the consumer loop may have work without progress before /healthz fails. [env: MINIRBT_STALL_TIMEOUT_SECONDS] (default: 120)")
    var stallTimeoutSeconds: Int?

    @Option(help: "Input format: auto (JSON when the value starts with '{'), json or text. [env: MINIRBT_FORMAT] (default: auto)")
    var format: String?

    @Option(help: "JSON field holding the text. [env: MINIRBT_TEXT_FIELD] (default: text)")
    var textField: String?

    @Option(help: "JSON field holding the event id. [env: MINIRBT_ID_FIELD] (default: id)")
    var idField: String?

    @Option(help: "JSON field holding the optional second text. [env: MINIRBT_TEXT_PAIR_FIELD] (default: text_pair)")
    var textPairField: String?

    @Option(help: "Predictions per serving version in the drift window (PSI against the version's baseline). [env: MINIRBT_DRIFT_WINDOW_EVENTS] (default: 1000)")
    var driftWindowEvents: Int?

    @Option(help: "Seconds a prediction stays in the drift window. [env: MINIRBT_DRIFT_WINDOW_SECONDS] (default: 600)")
    var driftWindowSeconds: Int?

    @Option(help: "Predictions the drift window needs before a PSI is reported (fewer give a noisy index). [env: MINIRBT_DRIFT_MIN_EVENTS] (default: 200)")
    var driftMinEvents: Int?

    @Option(help: "Transactional id for exactly-once; unique per replica, stable across its restarts. [env: MINIRBT_TRANSACTIONAL_ID] (default: <group>-<instance id>; exactly-once refuses to start without either)")
    var transactionalId: String?

    @Option(name: .customLong("kafka"), help: "A librdkafka property, key=value (repeatable), e.g. --kafka security.protocol=SASL_SSL.")
    var kafkaProperties: [String] = []

    @Option(help: "Log level: trace, debug, info, notice, warning, error. [env: MINIRBT_LOG_LEVEL] (default: info)")
    var logLevel: String?

    func run() async throws {
        let options = try RunOptions(self, environment: ProcessInfo.processInfo.environment)
        var logger = Logger(label: "minirbt-stream")
        logger.logLevel = options.logLevel

        let registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        // Confidences live in [0, 1]: the backend's default value buckets start at 5.
        factory.valueHistogramBuckets = PipelineMetrics.valueHistogramBuckets
        MetricsSystem.bootstrap(factory)

        for variable in options.ignoredKafkaVariables {
            if variable.isServiceLink {
                logger.debug("ignoring a Kubernetes service-link variable, not a librdkafka property",
                             metadata: ["variable": "\(variable.name)"])
            } else {
                logger.warning("ignoring a KAFKA_* variable that names no librdkafka property",
                               metadata: ["variable": "\(variable.name)"])
            }
        }
        let consumer = try KafkaConsumer(configuration: options.consumer, logger: logger)
        let producer = try KafkaProducer(configuration: options.producer, logger: logger)
        let metrics = PipelineMetrics(drift: options.drift)
        var fallback: (@Sendable () throws -> LoadedModel)?
        if let directory = options.modelDirectory {
            let (name, version) = (options.modelName, options.modelVersion)
            fallback = { try LoadedModel.load(directory: URL(fileURLWithPath: directory), name: name, version: version) }
        }

        // With a registry, the control topic decides the model, read to its end before the first event.
        var control: (listener: ControlListener, reporter: StatusReporter)?
        let deployment: ModelDeployment
        if let settings = options.control {
            let statusProducer = try KafkaProducer(configuration: ProducerConfiguration(kafka: options.kafka), logger: logger)
            let reporter = StatusReporter(producer: statusProducer, topic: settings.statusTopic,
                                          instance: settings.instanceID, deployment: settings.deployment,
                                          interval: .seconds(5), logger: logger)
            var listenerSettings = ControlListener.Configuration(
                deployment: settings.deployment, registry: ModelRegistry(root: URL(fileURLWithPath: settings.registry)),
                verifier: ControlVerifier(trustedKeys: try settings.verifyKeys.map { try SigningKeyFiles.readPublicKey(URL(fileURLWithPath: $0)) }),
                kafka: options.kafka)
            listenerSettings.controlTopic = settings.controlTopic
            let listener = try ControlListener(configuration: listenerSettings, reporter: reporter, logger: logger)
            logger.info("reading the control topic", metadata: ["topic": "\(settings.controlTopic)",
                                                              "deployment": "\(settings.deployment)"])
            deployment = try await listener.catchUp(fallback: fallback)
            control = (listener, reporter)
        } else if let fallback {
            logger.info("loading model", metadata: ["directory": "\(options.modelDirectory ?? "")"])
            deployment = ModelDeployment(primary: try fallback())
        } else {
            throw ValidationError("say which model to serve: --model DIR, or --registry with --deployment")
        }
        let serving = deployment.current.primary
        metrics.model(serving.identity, role: "primary", active: true)
        logger.info("model ready", metadata: ["name": "\(serving.identity.name)", "version": "\(serving.identity.version)",
                                              "task": "\(serving.model.task)"])

        let service = StreamService(settings: options.stream, consumer: consumer, producer: producer,
                                    deployment: deployment, metrics: metrics, logger: logger)
        var services: [any Service] = [service]
        if let control {
            control.reporter.observe {
                let status = service.status
                return ServiceObservation(assignedPartitions: status.assigned.map(\.description),
                                          processedEvents: service.metrics.snapshot.produced,
                                          lag: status.lag, lastError: status.lastError,
                                          drift: service.metrics.drift.reports())
            }
            services += [control.listener, control.reporter]
        }
        if options.metricsPort > 0 {
            services.append(StatusServer(host: options.metricsHost, port: options.metricsPort, logger: logger,
                                         renderMetrics: { registry.emitToBuffer() },
                                         readiness: { service.readiness() },
                                         liveness: { service.liveness() }))
        }
        let group = ServiceGroup(configuration: .init(
            services: services.map { .init(service: $0, successTerminationBehavior: .gracefullyShutdownGroup,
                                          failureTerminationBehavior: .gracefullyShutdownGroup) },
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger))
        try await group.run()
    }
}

/// The run command's options after flags, environment and defaults are resolved and checked.
struct RunOptions {
    var stream = StreamSettings()
    var consumer: ConsumerConfiguration
    var producer: ProducerConfiguration
    var kafka: KafkaConfiguration
    var drift = DriftSettings()
    var modelDirectory: String?
    var modelName: String?
    var control: ControlSettings?

    /// Hot-swap settings, present when the model follows a registry deployment.
    struct ControlSettings {
        var registry: String
        var deployment: String
        var controlTopic: String
        var statusTopic: String
        /// Public key files; a message signed by any of them is trusted.
        var verifyKeys: [String]
        var instanceID: String
    }

    var modelVersion: String?
    var metricsPort: Int
    var metricsHost: String
    /// `KAFKA_*` variables that name no librdkafka property (Kubernetes service links, typos), for the log.
    var ignoredKafkaVariables: [KafkaConfiguration.IgnoredVariable] = []
    var logLevel: Logger.Level

    init(_ command: RunCommand, environment: [String: String]) throws {
        let env = EnvironmentFallback(environment)
        let brokers = try env.value(command.brokers, "MINIRBT_BROKERS") ?? "127.0.0.1:9092"
        let group = try env.value(command.group, "MINIRBT_GROUP") ?? "minirbt-stream"

        stream.inputTopics = command.inputTopic.isEmpty
            ? (environment["MINIRBT_INPUT_TOPIC"]?.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } ?? [])
            : command.inputTopic
        stream.inputPattern = try env.value(command.inputPattern, "MINIRBT_INPUT_PATTERN")
        guard !stream.inputTopics.isEmpty || stream.inputPattern != nil else {
            throw ValidationError("say what to consume: --input-topic TOPIC (repeatable) or --input-pattern REGEX")
        }
        guard stream.inputTopics.isEmpty || stream.inputPattern == nil else {
            throw ValidationError("--input-topic and --input-pattern exclude each other; got both")
        }
        stream.outputTopic = try env.value(command.outputTopic, "MINIRBT_OUTPUT_TOPIC") ?? stream.outputTopic
        stream.deadLetterTopic = try env.value(command.dlqTopic, "MINIRBT_DLQ_TOPIC") ?? stream.deadLetterTopic
        modelDirectory = try env.value(command.model, "MINIRBT_MODEL")
        stream.shadowTopic = try env.value(command.shadowTopic, "MINIRBT_SHADOW_TOPIC") ?? stream.shadowTopic
        if let registry = try env.value(command.registry, "MINIRBT_REGISTRY") {
            guard let deployment = try env.value(command.deployment, "MINIRBT_DEPLOYMENT") else {
                throw ValidationError("--registry needs --deployment NAME: the deployment whose control messages this replica follows")
            }
            let verifyKeys = !command.verifyKey.isEmpty ? command.verifyKey
                : (environment["MINIRBT_VERIFY_KEY"] ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            guard !verifyKeys.isEmpty else {
                throw ValidationError("--registry needs --verify-key FILE: control messages are accepted only when signed by its key")
            }
            let host = ProcessInfo.processInfo.hostName
            control = ControlSettings(
                registry: registry, deployment: deployment,
                controlTopic: try env.value(command.controlTopic, "MINIRBT_CONTROL_TOPIC") ?? ControlTopics.defaultControlTopic,
                statusTopic: try env.value(command.statusTopic, "MINIRBT_STATUS_TOPIC") ?? ControlTopics.defaultStatusTopic,
                verifyKeys: verifyKeys,
                instanceID: try env.value(command.instanceId, "MINIRBT_INSTANCE_ID") ?? "\(host)-\(ProcessInfo.processInfo.processIdentifier)")
        } else if modelDirectory == nil {
            throw ValidationError("say which model to serve: --model DIR (an HF checkpoint directory), or --registry ROOT --deployment NAME")
        }
        modelName = try env.value(command.modelName, "MINIRBT_MODEL_NAME")
        modelVersion = try env.value(command.modelVersion, "MINIRBT_MODEL_VERSION")

        stream.shards = try env.value(command.shards, "MINIRBT_SHARDS") ?? ProcessInfo.processInfo.activeProcessorCount
        stream.shard.maxBatch = try env.value(command.maxBatch, "MINIRBT_MAX_BATCH") ?? 32
        stream.shard.maxWait = .milliseconds(try env.value(command.maxWaitMs, "MINIRBT_MAX_WAIT_MS") ?? 10)
        stream.shard.maxLength = try env.value(command.maxLength, "MINIRBT_MAX_LENGTH") ?? 128
        stream.shard.threads = try env.value(command.threadsPerShard, "MINIRBT_THREADS_PER_SHARD") ?? 1
        let precisionName = try env.value(command.precision?.rawValue, "MINIRBT_PRECISION") ?? Precision.default.rawValue
        guard let precision = Precision(rawValue: precisionName) else {
            throw ValidationError("--precision must be fp32, bf16 or int8, got '\(precisionName)'")
        }
        stream.shard.precision = precision
        stream.shard.queueCapacity = try env.value(command.queueCapacity, "MINIRBT_QUEUE_CAPACITY") ?? 8 * stream.shard.maxBatch
        stream.shard.echoText = command.echoText || ["1", "true", "yes"].contains(environment["MINIRBT_ECHO_TEXT"]?.lowercased() ?? "")
        for (name, value, minimum) in [("--shards", stream.shards, 1), ("--max-batch", stream.shard.maxBatch, 1),
                                       ("--max-length", stream.shard.maxLength, 2),
                                       ("--threads-per-shard", stream.shard.threads, 1),
                                       ("--queue-capacity", stream.shard.queueCapacity, 1)] where value < minimum {
            throw ValidationError("\(name) must be at least \(minimum), got \(value)")
        }
        let deliveryName = try env.value(command.delivery, "MINIRBT_DELIVERY") ?? DeliveryMode.atLeastOnce.rawValue
        guard let delivery = DeliveryMode(rawValue: deliveryName) else {
            throw ValidationError("--delivery must be at-least-once or exactly-once, got '\(deliveryName)'")
        }
        stream.delivery = delivery
        let formatName = try env.value(command.format, "MINIRBT_FORMAT") ?? "auto"
        guard let kind = EventFormat.Kind(rawValue: formatName) else {
            throw ValidationError("--format must be auto, json or text, got '\(formatName)'")
        }
        stream.shard.format = EventFormat(kind: kind,
                                          idField: try env.value(command.idField, "MINIRBT_ID_FIELD") ?? "id",
                                          textField: try env.value(command.textField, "MINIRBT_TEXT_FIELD") ?? "text",
                                          textPairField: try env.value(command.textPairField, "MINIRBT_TEXT_PAIR_FIELD") ?? "text_pair")
        metricsPort = try env.value(command.metricsPort, "MINIRBT_METRICS_PORT") ?? 9464
        metricsHost = try env.value(command.metricsHost, "MINIRBT_METRICS_HOST") ?? "0.0.0.0"
        stream.maxBufferedBytes = try env.value(command.maxBufferedBytes, "MINIRBT_MAX_BUFFERED_BYTES") ?? stream.maxBufferedBytes
        let stallSeconds = try env.value(command.stallTimeoutSeconds, "MINIRBT_STALL_TIMEOUT_SECONDS") ?? 120
        for (name, value, minimum) in [("--max-buffered-bytes", stream.maxBufferedBytes, 1 << 20),
                                       ("--stall-timeout-seconds", stallSeconds, 1)] where value < minimum {
            throw ValidationError("\(name) must be at least \(minimum), got \(value)")
        }
        stream.stallTimeout = .seconds(stallSeconds)
        drift.windowEvents = try env.value(command.driftWindowEvents, "MINIRBT_DRIFT_WINDOW_EVENTS") ?? drift.windowEvents
        let driftSeconds = try env.value(command.driftWindowSeconds, "MINIRBT_DRIFT_WINDOW_SECONDS") ?? 600
        drift.minimumEvents = try env.value(command.driftMinEvents, "MINIRBT_DRIFT_MIN_EVENTS") ?? min(drift.minimumEvents, drift.windowEvents)
        for (name, value, minimum) in [("--drift-window-events", drift.windowEvents, 1), ("--drift-window-seconds", driftSeconds, 1),
                                       ("--drift-min-events", drift.minimumEvents, 1)] where value < minimum {
            throw ValidationError("\(name) must be at least \(minimum), got \(value)")
        }
        guard drift.minimumEvents <= drift.windowEvents else {
            throw ValidationError("--drift-min-events (\(drift.minimumEvents)) cannot exceed --drift-window-events (\(drift.windowEvents)): no PSI would ever be reported")
        }
        drift.windowDuration = .seconds(driftSeconds)
        let levelName = try env.value(command.logLevel, "MINIRBT_LOG_LEVEL") ?? "info"
        guard let level = Logger.Level(rawValue: levelName) else {
            throw ValidationError("--log-level must be one of \(Logger.Level.allCases.map(\.rawValue).joined(separator: ", ")), got '\(levelName)'")
        }
        logLevel = level

        var kafka = KafkaConfiguration(bootstrapServers: brokers.split(separator: ",").map(String.init),
                                       clientID: "minirbt-stream")
        ignoredKafkaVariables = kafka.applyEnvironment(environment)
        do { try kafka.apply(assignments: command.kafkaProperties) } catch {
            throw ValidationError("\(error)")
        }
        self.kafka = kafka
        consumer = ConsumerConfiguration(kafka: kafka, groupID: group)
        // The service's revocation drain (stream.revocationDrainTimeout) is shorter, so its commit lands
        // before the consumer gives the partitions up.
        consumer.revocationTimeout = stream.drainTimeout
        // librdkafka's prefetch is outside the byte budget: keep it to a quarter of it (librdkafka's default
        // is 64 MiB), unless set explicitly.
        consumer.eventBufferBytes = max(1 << 20, stream.maxBufferedBytes / 4)
        if consumer.kafka.properties["queued.max.messages.kbytes"] == nil {
            consumer.kafka.properties["queued.max.messages.kbytes"] = String(min(65536, max(1024, stream.maxBufferedBytes / 4 / 1024)))
        }
        producer = ProducerConfiguration(kafka: kafka)
        // Records larger than the producer's message.max.bytes are refused locally; keep a margin for framing.
        let messageMaxBytes = kafka.properties["message.max.bytes"].flatMap { Int($0) } ?? 1_000_000
        stream.maxRecordBytes = max(4096, messageMaxBytes - 2048)
        if delivery == .exactlyOnce {
            let transactionalID = try Self.transactionalID(
                explicit: try env.value(command.transactionalId, "MINIRBT_TRANSACTIONAL_ID"),
                instance: try env.value(command.instanceId, "MINIRBT_INSTANCE_ID"), group: group)
            producer.transactionalID = transactionalID
            stream.transactionalID = transactionalID
        }
    }
}

extension RunOptions {
    /// Exactly-once's `transactional.id`: unique to the replica (two producers with one id fence each other)
    /// and stable across its restarts (so a restart fences its own crashed predecessor and aborts its open
    /// transaction at once). `--transactional-id`, else `<group>-<instance id>`; neither the host name nor
    /// the process id qualifies (replicas may share a host name; the pid changes at every restart).
    static func transactionalID(explicit: String?, instance: String?, group: String) throws -> String {
        if let explicit { return explicit }
        if let instance { return "\(group)-\(instance)" }
        throw ValidationError("""
            --delivery exactly-once needs a transactional id unique to this replica and stable across its restarts: \
            set --instance-id (MINIRBT_INSTANCE_ID; the Helm chart sets it to the pod name, stable with a StatefulSet) \
            to use <group>-<instance id>, or --transactional-id (MINIRBT_TRANSACTIONAL_ID)
            """)
    }
}

/// Flag value, else the environment variable, parsed as the flag's type.
struct EnvironmentFallback {
    let environment: [String: String]

    init(_ environment: [String: String]) {
        self.environment = environment
    }

    func value(_ flag: String?, _ variable: String) throws -> String? {
        flag ?? environment[variable].flatMap { $0.isEmpty ? nil : $0 }
    }

    func value(_ flag: Int?, _ variable: String) throws -> Int? {
        if let flag { return flag }
        guard let text = environment[variable], !text.isEmpty else { return nil }
        guard let number = Int(text) else {
            throw ValidationError("\(variable) must be a whole number, got '\(text)'")
        }
        return number
    }
}
