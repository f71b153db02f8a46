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

    // Each option's flag, variable, default and help live in RunSettings.swift (RunSetting).
    @Option(name: .setting(.brokers), help: RunSetting.brokers.help)
    var brokers: String?

    @Option(name: .setting(.group), help: RunSetting.group.help)
    var group: String?

    @Option(name: .setting(.groupInstanceId), help: RunSetting.groupInstanceId.help)
    var groupInstanceId: String?

    @Option(name: .setting(.inputTopic), help: RunSetting.inputTopic.help)
    var inputTopic: [String] = []

    @Option(name: .setting(.inputPattern), help: RunSetting.inputPattern.help)
    var inputPattern: String?

    @Option(name: .setting(.outputTopic), help: RunSetting.outputTopic.help)
    var outputTopic: String?

    @Option(name: .setting(.dlqTopic), help: RunSetting.dlqTopic.help)
    var dlqTopic: String?

    @Option(name: .setting(.model), help: RunSetting.model.help)
    var model: String?

    @Option(name: .setting(.modelName), help: RunSetting.modelName.help)
    var modelName: String?

    @Option(name: .setting(.modelVersion), help: RunSetting.modelVersion.help)
    var modelVersion: String?

    @Option(name: .setting(.registry), help: RunSetting.registry.help)
    var registry: String?

    @Option(name: .setting(.deployment), help: RunSetting.deployment.help)
    var deployment: String?

    @Option(name: .setting(.controlTopic), help: RunSetting.controlTopic.help)
    var controlTopic: String?

    @Option(name: .setting(.statusTopic), help: RunSetting.statusTopic.help)
    var statusTopic: String?

    @Option(name: .setting(.shadowTopic), help: RunSetting.shadowTopic.help)
    var shadowTopic: String?

    @Option(name: .setting(.verifyKey), help: RunSetting.verifyKey.help)
    var verifyKey: [String] = []

    @Option(name: .setting(.instanceId), help: RunSetting.instanceId.help)
    var instanceId: String?

    @Option(name: .setting(.shards), help: RunSetting.shards.help)
    var shards: Int?

    @Option(name: .setting(.maxBatch), help: RunSetting.maxBatch.help)
    var maxBatch: Int?

    @Option(name: .setting(.maxWaitMs), help: RunSetting.maxWaitMs.help)
    var maxWaitMs: Int?

    @Option(name: .setting(.maxLength), help: RunSetting.maxLength.help)
    var maxLength: Int?

    @Option(name: .setting(.threadsPerShard), help: RunSetting.threadsPerShard.help)
    var threadsPerShard: Int?

    @Option(name: .setting(.precision), help: RunSetting.precision.help)
    var precision: Precision?

    @Option(name: .setting(.queueCapacity), help: RunSetting.queueCapacity.help)
    var queueCapacity: Int?

    @Flag(name: .setting(.echoText), help: RunSetting.echoText.help)
    var echoText = false

    @Option(name: .setting(.delivery), help: RunSetting.delivery.help)
    var delivery: DeliveryMode?

    @Option(name: .setting(.metricsPort), help: RunSetting.metricsPort.help)
    var metricsPort: Int?

    @Option(name: .setting(.metricsHost), help: RunSetting.metricsHost.help)
    var metricsHost: String?

    @Option(name: .setting(.maxBufferedBytes), help: RunSetting.maxBufferedBytes.help)
    var maxBufferedBytes: Int?

    @Option(name: .setting(.stallTimeoutSeconds), help: RunSetting.stallTimeoutSeconds.help)
    var stallTimeoutSeconds: Int?

    @Option(name: .setting(.format), help: RunSetting.format.help)
    var format: EventFormat.Kind?

    @Option(name: .setting(.textField), help: RunSetting.textField.help)
    var textField: String?

    @Option(name: .setting(.idField), help: RunSetting.idField.help)
    var idField: String?

    @Option(name: .setting(.textPairField), help: RunSetting.textPairField.help)
    var textPairField: String?

    @Option(name: .setting(.teacher), help: RunSetting.teacher.help)
    var teacher: String?

    @Option(name: .setting(.teacherSample), help: RunSetting.teacherSample.help)
    var teacherSample: Double?

    @Option(name: .setting(.softLabelTopic), help: RunSetting.softLabelTopic.help)
    var softLabelTopic: String?

    @Option(name: .setting(.driftWindowEvents), help: RunSetting.driftWindowEvents.help)
    var driftWindowEvents: Int?

    @Option(name: .setting(.driftWindowSeconds), help: RunSetting.driftWindowSeconds.help)
    var driftWindowSeconds: Int?

    @Option(name: .setting(.driftMinEvents), help: RunSetting.driftMinEvents.help)
    var driftMinEvents: Int?

    @Option(name: .setting(.transactionalId), help: RunSetting.transactionalId.help)
    var transactionalId: String?

    @Option(name: .customLong("kafka"), help: "A librdkafka property, key=value (repeatable), e.g. --kafka security.protocol=SASL_SSL.")
    var kafkaProperties: [String] = []

    @Option(name: .setting(.logLevel), help: RunSetting.logLevel.help)
    var logLevel: Logger.Level?

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
        let deployment: ServingModels
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
            deployment = ServingModels(primary: try fallback())
        } else {
            throw ValidationError("say which model to serve: --model DIR, or --registry with --deployment")
        }
        let serving = deployment.current.primary
        metrics.model(serving.identity, role: "primary", active: true)
        logger.info("model ready", metadata: ["name": "\(serving.identity.name)", "version": "\(serving.identity.version)",
                                              "task": "\(serving.model.task)",
                                              // What auto chose on this CPU; a model failing the check is served in
                                              // fp32 (warning and minirbt_precision_info).
                                              "precision": "\(options.stream.shard.precision)"])

        var teacher: TeacherLane?
        if let settings = options.teacher {
            teacher = try Self.teacherLane(settings, student: serving, kafka: options.kafka, metrics: metrics, logger: logger)
        }
        let (producerConfiguration, producerLogger) = (options.producer, logger)
        let service = StreamService(settings: options.stream, consumer: consumer, producer: producer,
                                    makeProducer: { () throws(KafkaError) in
                                        try KafkaProducer(configuration: producerConfiguration, logger: producerLogger)
                                    },
                                    models: deployment, metrics: metrics, logger: logger, teacher: teacher)
        // The lane goes first: the group stops services in reverse order, so it outlives the shards' drain.
        var services: [any Service] = (teacher.map { [$0] } ?? []) + [service]
        if let control {
            control.reporter.observe {
                let status = service.status
                let selection = deployment.current
                let shadow = selection.shadow.map { candidate in
                    (primary: selection.primary.identity, candidate: candidate.identity,
                     tally: service.metrics.shadowTally(primary: selection.primary.identity, candidate: candidate.identity))
                }
                return ServiceObservation(assignedPartitions: status.assigned.map(\.description),
                                          processedEvents: service.metrics.snapshot.produced,
                                          lag: status.lag, lastError: status.lastError, shadow: shadow,
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
        // The last line before the Kafka handles are released on the way out: a process that logs it and
        // lingers is wedged in that teardown, not in the pipeline.
        logger.info("every service stopped; exiting")
    }
}

extension RunCommand {
    /// Loads the teacher and checks it can judge `student`; with a soft-label topic, gives the lane a
    /// producer of its own (never the transactional one: soft labels are outside exactly-once).
    static func teacherLane(_ settings: RunOptions.TeacherSettings, student: LoadedModel, kafka: KafkaConfiguration,
                            metrics: PipelineMetrics, logger: Logger) throws -> TeacherLane {
        logger.info("loading teacher", metadata: ["directory": "\(settings.directory)"])
        let model = try LoadedModel.load(directory: URL(fileURLWithPath: settings.directory))
        guard model.model.task == .sequenceClassification, model.model.labels == student.model.labels else {
            throw ValidationError("--teacher \(settings.directory) cannot judge \(student.identity.name)/\(student.identity.version): "
                                  + "the teacher must be a sequence classifier with the student's labels in the same order "
                                  + "(teacher: \(model.model.task) \(model.model.labels), student: \(student.model.task) \(student.model.labels))")
        }
        var send: TeacherLane.Send?
        if settings.lane.softLabelTopic != nil {
            let producer = try KafkaProducer(configuration: ProducerConfiguration(kafka: kafka), logger: logger)
            send = { record, onDelivery in try await producer.enqueue(record, onDelivery: onDelivery) }
        }
        logger.info("teacher ready", metadata: ["name": "\(model.identity.name)", "version": "\(model.identity.version)",
                                                "sample": "\(settings.lane.sampleRate)",
                                                "soft_label_topic": "\(settings.lane.softLabelTopic ?? "-")"])
        return TeacherLane(teacher: model, settings: settings.lane, metrics: metrics, logger: logger, send: send)
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
    var teacher: TeacherSettings?

    /// The teacher lane, present with --teacher.
    struct TeacherSettings {
        var directory: String
        var lane = TeacherLane.Settings()
    }

    var metricsPort: Int
    var metricsHost: String
    /// `KAFKA_*` variables that name no librdkafka property (Kubernetes service links, typos), for the log.
    var ignoredKafkaVariables: [KafkaConfiguration.IgnoredVariable] = []
    var logLevel: Logger.Level

    init(_ command: RunCommand, environment: [String: String]) throws {
        let settings = RunSettingValues(environment: environment)
        let brokers = try settings.value(.brokers, command.brokers)
        let group = try settings.value(.group, command.group)

        stream.inputTopics = settings.list(.inputTopic, command.inputTopic)
        stream.inputPattern = try settings.given(.inputPattern, command.inputPattern)
        guard !stream.inputTopics.isEmpty || stream.inputPattern != nil else {
            throw ValidationError("say what to consume: --input-topic TOPIC (repeatable) or --input-pattern REGEX")
        }
        guard stream.inputTopics.isEmpty || stream.inputPattern == nil else {
            throw ValidationError("--input-topic and --input-pattern exclude each other; got both")
        }
        stream.outputTopic = try settings.value(.outputTopic, command.outputTopic)
        stream.deadLetterTopic = try settings.value(.dlqTopic, command.dlqTopic)
        modelDirectory = try settings.given(.model, command.model)
        stream.shadowTopic = try settings.value(.shadowTopic, command.shadowTopic)
        let instanceID = try settings.given(.instanceId, command.instanceId)
        if let registry = try settings.given(.registry, command.registry) {
            guard let deployment = try settings.given(.deployment, command.deployment) else {
                throw ValidationError("--registry needs --deployment NAME: the deployment whose control messages this replica follows")
            }
            let verifyKeys = settings.list(.verifyKey, command.verifyKey)
            guard !verifyKeys.isEmpty else {
                throw ValidationError("--registry needs --verify-key FILE: control messages are accepted only when signed by its key")
            }
            control = ControlSettings(
                registry: registry, deployment: deployment,
                controlTopic: try settings.value(.controlTopic, command.controlTopic),
                statusTopic: try settings.value(.statusTopic, command.statusTopic),
                verifyKeys: verifyKeys,
                instanceID: instanceID ?? "\(ProcessInfo.processInfo.hostName)-\(ProcessInfo.processInfo.processIdentifier)")
        } else if modelDirectory == nil {
            throw ValidationError("say which model to serve: --model DIR (an HF checkpoint directory), or --registry ROOT --deployment NAME")
        }
        modelName = try settings.given(.modelName, command.modelName)
        modelVersion = try settings.given(.modelVersion, command.modelVersion)

        stream.shards = try settings.value(.shards, command.shards, computed: ProcessInfo.processInfo.activeProcessorCount)
        stream.shard.maxBatch = try settings.value(.maxBatch, command.maxBatch)
        stream.shard.maxWait = .milliseconds(try settings.value(.maxWaitMs, command.maxWaitMs))
        stream.shard.maxLength = try settings.value(.maxLength, command.maxLength)
        stream.shard.threads = try settings.value(.threadsPerShard, command.threadsPerShard)
        stream.shard.precision = try settings.value(.precision, command.precision)
        stream.shard.queueCapacity = try settings.value(.queueCapacity, command.queueCapacity, computed: 8 * stream.shard.maxBatch)
        stream.shard.echoText = settings.isOn(.echoText, command.echoText)
        stream.delivery = try settings.value(.delivery, command.delivery)
        stream.shard.format = EventFormat(kind: try settings.value(.format, command.format),
                                          idField: try settings.value(.idField, command.idField),
                                          textField: try settings.value(.textField, command.textField),
                                          textPairField: try settings.value(.textPairField, command.textPairField))
        let softLabelTopic = try settings.given(.softLabelTopic, command.softLabelTopic)
        if let directory = try settings.given(.teacher, command.teacher) {
            var teacher = TeacherSettings(directory: directory)
            let sample = try settings.value(.teacherSample, command.teacherSample)
            guard sample > 0, sample <= 1 else {
                throw ValidationError("--teacher-sample must be a share in (0, 1] (0.02 for 2 %), got \(sample)")
            }
            teacher.lane.sampleRate = sample
            teacher.lane.softLabelTopic = softLabelTopic
            teacher.lane.maxLength = stream.shard.maxLength
            teacher.lane.precision = stream.shard.precision
            self.teacher = teacher
        } else if softLabelTopic != nil || command.teacherSample != nil
                    || environment[RunSetting.teacherSample.variable].map({ !$0.isEmpty }) == true {
            throw ValidationError("--teacher-sample and --soft-label-topic need --teacher DIR: the model whose answers they sample")
        }
        metricsPort = try settings.value(.metricsPort, command.metricsPort)
        metricsHost = try settings.value(.metricsHost, command.metricsHost)
        stream.maxBufferedBytes = try settings.value(.maxBufferedBytes, command.maxBufferedBytes)
        stream.stallTimeout = .seconds(try settings.value(.stallTimeoutSeconds, command.stallTimeoutSeconds))
        logLevel = try settings.value(.logLevel, command.logLevel)
        drift.windowEvents = try settings.value(.driftWindowEvents, command.driftWindowEvents)
        drift.windowDuration = .seconds(try settings.value(.driftWindowSeconds, command.driftWindowSeconds))
        drift.minimumEvents = try settings.value(.driftMinEvents, command.driftMinEvents,
                                                 computed: min(drift.minimumEvents, drift.windowEvents))
        guard drift.minimumEvents <= drift.windowEvents else {
            throw ValidationError("--drift-min-events (\(drift.minimumEvents)) cannot exceed --drift-window-events (\(drift.windowEvents)): no PSI would ever be reported")
        }

        var kafka = KafkaConfiguration(bootstrapServers: brokers.split(separator: ",").map(String.init),
                                       clientID: "minirbt-stream")
        ignoredKafkaVariables = kafka.applyEnvironment(environment)
        do { try kafka.apply(assignments: command.kafkaProperties) } catch {
            throw ValidationError("\(error)")
        }
        self.kafka = kafka
        consumer = ConsumerConfiguration(kafka: kafka, groupID: group)
        consumer.groupInstanceID = try Self.groupInstanceID(try settings.given(.groupInstanceId, command.groupInstanceId))
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
        teacher?.lane.maxRecordBytes = stream.maxRecordBytes
        if stream.delivery == .exactlyOnce {
            let transactionalID = try Self.transactionalID(
                explicit: try settings.given(.transactionalId, command.transactionalId), instance: instanceID, group: group)
            producer.transactionalID = transactionalID
            stream.transactionalID = transactionalID
        }
    }
}

extension RunOptions {
    /// `--group-instance-id` as given, checked against the broker's rule for it (Kafka refuses a JoinGroup
    /// with any other id, and the consumer would retry that forever).
    static func groupInstanceID(_ id: String?) throws -> String? {
        guard let id else { return nil }
        let legal = id.unicodeScalars.allSatisfy { scalar in
            scalar.isASCII && (("a"..."z").contains(scalar) || ("A"..."Z").contains(scalar) || ("0"..."9").contains(scalar)
                               || scalar == "." || scalar == "_" || scalar == "-")
        }
        guard legal, (1...249).contains(id.utf8.count) else {
            throw ValidationError("--group-instance-id (MINIRBT_GROUP_INSTANCE_ID) must be 1 to 249 letters, digits, '.', '_' or '-' (e.g. the pod name), got '\(id)'")
        }
        return id
    }

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
