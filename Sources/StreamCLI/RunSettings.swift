import ArgumentParser
import Foundation
import Logging
import MiniRBT
import ModelControl
import StreamPipeline

/// One setting of `minirbt-stream run`, declared once: its flag, environment variable, default, lower bound
/// and help. `run --help`, the validation in ``RunOptions``, the tables of docs/operations.md (kept current
/// by a test) and the Helm chart's variable check (scripts/check-deploy.py reads those tables) derive from it.
struct RunSetting: Sendable {
    /// Which table of docs/operations.md lists it.
    enum Section: String, Sendable, CaseIterable {
        case service
        /// The model registry and the control plane.
        case hotSwap = "hot-swap"
        /// Drift monitoring against each version's baseline.
        case drift
        /// The teacher lane and its soft labels.
        case teacher
    }

    enum Kind: Sendable {
        /// One value.
        case value
        /// Repeatable flag; the variable holds a comma-separated list.
        case list
        /// An on/off flag; the variable is on when `1`, `true` or `yes`.
        case flag
    }

    /// The long flag, without `--`.
    let flag: String
    let kind: Kind
    let section: Section
    /// The value used when neither flag nor variable is given, as typed on the command line; `nil` when there
    /// is none or it is computed (then ``defaultText`` says how).
    let defaultValue: String?
    /// How the default reads in help and docs when it is not a literal value.
    let computedDefault: String?
    /// Values below it are refused (numbers only).
    let minimum: Int?
    /// The values an enumerated setting takes, from its type.
    let choices: [String]
    /// One or two sentences for `--help`.
    let summary: String
    /// What the docs add to the summary (operational detail too long for `--help`).
    let details: String?

    init(_ flag: String, _ kind: Kind = .value, section: Section = .service, default defaultValue: String? = nil,
         computedDefault: String? = nil, minimum: Int? = nil, choices: [String] = [], help summary: String,
         details: String? = nil) {
        self.flag = flag
        self.kind = kind
        self.section = section
        self.defaultValue = defaultValue
        self.computedDefault = computedDefault
        self.minimum = minimum
        self.choices = choices
        self.summary = summary
        self.details = details
    }

    /// `MINIRBT_` and the flag in upper case, dashes as underscores: `--max-batch` is `MINIRBT_MAX_BATCH`.
    var variable: String { "MINIRBT_" + flag.uppercased().replacingOccurrences(of: "-", with: "_") }

    var defaultText: String? { defaultValue ?? computedDefault }

    /// The `--help` text: summary, variable, default.
    var help: ArgumentHelp {
        var text = summary
        switch kind {
        case .value: text += " [env: \(variable)]"
        case .list: text += " [env: \(variable), comma-separated]"
        case .flag: text += " [env: \(variable)=1]"
        }
        if let defaultText { text += " (default: \(defaultText))" }
        return ArgumentHelp(text)
    }
}

extension RunSetting {
    private static let stream = StreamSettings()

    static let brokers = RunSetting("brokers", default: "127.0.0.1:9092", help: "Kafka bootstrap servers, comma-separated.")
    static let group = RunSetting("group", default: "minirbt-stream", help: "Consumer group; replicas in one group split the partitions.")
    static let groupInstanceId = RunSetting(
        "group-instance-id",
        help: "Static group membership: this replica's group.instance.id, unique per replica and stable across its restarts, so a restart within session.timeout.ms does not rebalance the group.",
        details: """
            The chart's StatefulSet sets the pod name; a Deployment's pod names change at every rollout, so it sets \
            none. While a static member is away its partitions wait for it (it does not leave the group on SIGTERM) \
            for up to `session.timeout.ms` (45 s; `--kafka session.timeout.ms=…`); two running replicas with one id \
            fence each other. Letters, digits, `.`, `_` and `-`, at most 249. See [section 7](#7-scaling).
            """)
    static let inputTopic = RunSetting("input-topic", .list, help: "Topic to consume (repeatable).",
                                       details: "Exclusive with `--input-pattern`.")
    static let inputPattern = RunSetting("input-pattern", help: "Regular expression over topic names to consume, instead of --input-topic.")
    static let outputTopic = RunSetting("output-topic", default: stream.outputTopic, help: "Topic for enriched results.",
                                        details: "Key = input key; header `minirbt-model-version`.")
    static let dlqTopic = RunSetting("dlq-topic", default: stream.deadLetterTopic, help: "Dead-letter topic for events that cannot be processed.",
                                     details: "Original bytes, error code and message, source coordinates.")
    static let model = RunSetting("model", help: "HF checkpoint directory of the model to serve; with --registry, the model used until a version is deployed.")
    static let modelName = RunSetting("model-name", computedDefault: "the checkpoint directory's parent", help: "Name reported in results.")
    static let modelVersion = RunSetting("model-version", computedDefault: "the checkpoint directory's name", help: "Version reported in results.")
    static let shards = RunSetting("shards", computedDefault: "number of cores", minimum: 1,
                                   help: "Inference shards (threads); each owns a share of the partitions.")
    static let maxBatch = RunSetting("max-batch", default: "\(stream.shard.maxBatch)", minimum: 1, help: "Most events per forward pass.")
    static let maxWaitMs = RunSetting("max-wait-ms", default: "\(Int(stream.shard.maxWait / .milliseconds(1)))",
                                      minimum: 0, help: "Longest a batch waits to fill, in milliseconds.")
    static let maxLength = RunSetting("max-length", default: "\(stream.shard.maxLength)", minimum: 2,
                                      help: "Tokens per text; longer texts are truncated and flagged.",
                                      details: "`\"truncated\": true` in the result; never dropped.")
    static let threadsPerShard = RunSetting("threads-per-shard", default: "\(stream.shard.threads)", minimum: 1, help: "oneDNN threads per shard.")
    static let precision = RunSetting(
        "precision", default: Precision.automatic, choices: Precision.allValueStrings,
        help: "Format of the encoder's matrix products; auto is the fastest on this CPU.",
        details: """
            auto is bf16 where the CPU has AMX, int8 where it has AVX-512 VNNI or AVX2 without AVX-512, fp32 \
            otherwise (one setting for a fleet of mixed machines; the log's `precision` line says what it chose). \
            fp32 reproduces transformers; every precision is batch-invariant (int8 scales each text on its own). \
            `minirbt-stream version` prints what each precision runs on the machine, and `MINIRBT_MAX_CPU_ISA=AVX2` \
            caps every kernel to try a lesser CPU. A reduced precision is checked against fp32 on the first batch a \
            model serves and, if it would change predictions or the CPU lacks fast kernels, that model is served in \
            fp32 with a warning (bench/README.md has the measurements behind the default).
            """)
    static let queueCapacity = RunSetting("queue-capacity", computedDefault: "8 × max batch", minimum: 1,
                                          help: "Queued events per shard at which its partitions are paused (back-pressure).")
    static let echoText = RunSetting("echo-text", .flag, help: "Copy each event's text into its result.")
    static let delivery = RunSetting(
        "delivery", default: DeliveryMode.atLeastOnce.rawValue, choices: DeliveryMode.allValueStrings,
        help: "at-least-once, or exactly-once with Kafka transactions.",
        details: "See [section 8](#8-delivery-guarantees-and-shutdown).")
    static let transactionalId = RunSetting(
        "transactional-id", computedDefault: "<group>-<instance id>",
        help: "Transactional id for exactly-once; unique per replica, stable across its restarts.",
        details: """
            Without it, `--instance-id` (the chart: the pod name) gives `<group>-<instance id>`; with neither, \
            `--delivery exactly-once` refuses to start. See [section 8](#exactly-once-what-is-guaranteed-where-and-at-what-cost).
            """)
    static let metricsPort = RunSetting("metrics-port", default: "9464", minimum: 0,
                                        help: "Port for /metrics, /healthz and /readyz; 0 turns it off.")
    static let metricsHost = RunSetting(
        "metrics-host", default: "0.0.0.0", help: "Address the status server (/metrics, /healthz, /readyz) binds to.",
        details: """
            Every interface by default, as a container's probes need; `127.0.0.1` keeps it local on a shared host. \
            Each connection gets 5 s to send its request and at most 64 are served at once (more are closed on accept).
            """)
    static let maxBufferedBytes = RunSetting(
        "max-buffered-bytes", default: "\(stream.maxBufferedBytes)", minimum: 1 << 20,
        help: "Bytes of consumed events held at once (queued, in inference, awaiting publication) above which every partition is paused; they resume below half.",
        details: """
            librdkafka's prefetch (`queued.max.messages.kbytes`, set to a quarter of the budget, at most 64 MiB, \
            unless given) and the consumer's hand-off buffer (a quarter of the budget) come on top.
            """)
    static let stallTimeoutSeconds = RunSetting(
        "stall-timeout-seconds", default: "\(stream.stallTimeout.components.seconds)", minimum: 1,
        help: "Seconds a shard, publisher or the consumer loop may have work without progress before /healthz fails.",
        details: "Keep it above the producer's 30 s `message.timeout.ms`.")
    static let format = RunSetting("format", default: EventFormat.Kind.auto.rawValue, choices: EventFormat.Kind.allValueStrings,
                                   help: "Input format: JSON objects, plain text, or auto (JSON when the value starts with '{').")
    static let idField = RunSetting("id-field", default: EventFormat().idField, help: "JSON field holding the event id.",
                                    details: "Results fall back to `topic-partition-offset`.")
    static let textField = RunSetting("text-field", default: EventFormat().textField, help: "JSON field holding the text.")
    static let textPairField = RunSetting("text-pair-field", default: EventFormat().textPairField,
                                          help: "JSON field holding the optional second text.")
    static let logLevel = RunSetting("log-level", default: Logger.Level.info.rawValue, choices: Logger.Level.allValueStrings,
                                     help: "Log level.")

    static let registry = RunSetting("registry", section: .hotSwap,
                                     help: "Model registry root (<root>/<name>/<version>/); with it the model follows the control topic.",
                                     details: "Read-only for the service.")
    static let deployment = RunSetting("deployment", section: .hotSwap,
                                       help: "Deployment this replica serves, as named by `minirbt-admin deploy`.")
    static let controlTopic = RunSetting("control-topic", section: .hotSwap, default: ControlTopics.defaultControlTopic,
                                         help: "Compacted topic of signed control messages.")
    static let statusTopic = RunSetting("status-topic", section: .hotSwap, default: ControlTopics.defaultStatusTopic,
                                        help: "Topic for this replica's status heartbeats.")
    static let shadowTopic = RunSetting("shadow-topic", section: .hotSwap, default: stream.shadowTopic,
                                        help: "Topic for the candidate's results in shadow mode.")
    static let verifyKey = RunSetting(
        "verify-key", .list, section: .hotSwap,
        help: "Public key file that control messages may be signed with (minirbt-admin keygen); repeatable, to trust several keys (e.g. during a key rotation).",
        details: "Ed25519, `minirbt-control.pub`.")
    static let instanceId = RunSetting(
        "instance-id", section: .hotSwap, computedDefault: "host name and process id", help: "This replica's name in heartbeats.",
        details: """
            The chart sets the pod name. With exactly-once and no `--transactional-id`, the transactional id is \
            `<group>-<instance id>` (the default is not used for it).
            """)

    static let driftWindowEvents = RunSetting(
        "drift-window-events", section: .drift, default: "\(DriftSettings().windowEvents)", minimum: 1,
        help: "Predictions per serving version in the drift window (PSI against the version's baseline).",
        details: "See [Drift](#live-drift-against-the-baseline) for the formula and how to size the window.")
    static let driftWindowSeconds = RunSetting(
        "drift-window-seconds", section: .drift, default: "\(DriftSettings().windowDuration.components.seconds)", minimum: 1,
        help: "Seconds a prediction stays in the drift window.")
    static let driftMinEvents = RunSetting(
        "drift-min-events", section: .drift, computedDefault: "\(DriftSettings().minimumEvents), or the window if smaller", minimum: 1,
        help: "Predictions the drift window needs before a PSI is reported (fewer give a noisy index); at most --drift-window-events.")

    static let teacher = RunSetting(
        "teacher", section: .teacher,
        help: "HF checkpoint directory of a teacher (a sequence classifier with the students' labels, in the same order) that answers a sample of the events in a low-priority lane, for minirbt_teacher_agreement_ratio and soft labels.",
        details: """
            Checked at start-up (the service refuses to start otherwise). Named in soft labels after its directory \
            (parent / directory). See [section 5.6](#56-shadow-verdicts-the-teacher-lane-and-the-distillation-loop).
            """)
    static let teacherSample = RunSetting(
        "teacher-sample", section: .teacher, default: "\(TeacherLane.Settings().sampleRate)",
        help: "Share of events the teacher answers, in (0, 1], chosen by a stable hash of the key (else the id, else partition and offset); needs --teacher.",
        details: """
            FNV-1a of the record key (else the event id, else `topic/partition/offset`) modulo 10⁶ below share × 10⁶: \
            every replica and every redelivery samples the same events.
            """)
    static let softLabelTopic = RunSetting(
        "soft-label-topic", section: .teacher,
        help: "Topic for one soft-label record per sampled event the teacher answered (teacher and student logits; schemas/soft-label.schema.json); needs --teacher.",
        details: "Best effort, outside exactly-once (section 5.6).")

    /// Every setting, in the order of the docs.
    static let all: [RunSetting] = [
        brokers, group, groupInstanceId, inputTopic, inputPattern, outputTopic, dlqTopic, model, modelName, modelVersion,
        shards, maxBatch, maxWaitMs, maxLength, threadsPerShard, precision, queueCapacity, echoText, delivery,
        transactionalId, metricsPort, metricsHost, maxBufferedBytes, stallTimeoutSeconds, format, idField,
        textField, textPairField, logLevel,
        registry, deployment, controlTopic, statusTopic, shadowTopic, verifyKey, instanceId,
        driftWindowEvents, driftWindowSeconds, driftMinEvents,
        teacher, teacherSample, softLabelTopic,
    ]

    /// The docs table of one section (docs/operations.md, between `<!-- run-settings:SECTION -->` markers).
    static func markdownTable(_ section: Section) -> String {
        var lines = ["| Flag | Environment variable | Default | Meaning |", "| --- | --- | --- | --- |"]
        for setting in all where setting.section == section {
            let variable: String = switch setting.kind {
            case .value: "`\(setting.variable)`"
            case .list: "`\(setting.variable)` (comma-separated)"
            case .flag: "`\(setting.variable)=1`"
            }
            // `<` would open an HTML tag outside code spans.
            func escaped(_ text: String) -> String { text.replacingOccurrences(of: "<", with: "\\<") }
            let defaultText = setting.defaultValue.map { "`\($0)`" } ?? setting.computedDefault.map(escaped)
                ?? (setting.kind == .flag ? "off" : "—")
            var meaning = escaped(setting.summary)
            if !setting.choices.isEmpty { meaning += " One of " + setting.choices.map { "`\($0)`" }.joined(separator: ", ") + "." }
            if let minimum = setting.minimum { meaning += " At least \(minimum)." }
            if let details = setting.details { meaning += " " + details }
            lines.append("| `--\(setting.flag)` | \(variable) | \(defaultText) | \(meaning) |")
        }
        return lines.joined(separator: "\n")
    }
}

extension NameSpecification {
    /// The option of a run setting: `@Option(name: .setting(.maxBatch), help: RunSetting.maxBatch.help)`.
    static func setting(_ setting: RunSetting) -> NameSpecification { .customLong(setting.flag) }
}

extension DeliveryMode: ExpressibleByArgument {}
extension EventFormat.Kind: ExpressibleByArgument {}
extension Logger.Level: @retroactive ExpressibleByArgument {}

/// The run settings' values: the flag when given, else the environment variable, else the default; checked
/// against the setting's bounds and choices, with errors naming the flag or the variable.
struct RunSettingValues {
    let environment: [String: String]

    /// The value, or `nil` when neither flag nor variable nor a literal default gives one.
    func given<Value: ExpressibleByArgument>(_ setting: RunSetting, _ flag: Value?) throws -> Value? {
        let value: Value?
        let source: String
        if let flag {
            (value, source) = (flag, "--\(setting.flag)")
        } else if let text = environment[setting.variable], !text.isEmpty {
            guard let parsed = Value(argument: text) else {
                throw ValidationError("\(setting.variable) must be \(Self.expectation(setting, Value.self)), got '\(text)'")
            }
            (value, source) = (parsed, setting.variable)
        } else if let text = setting.defaultValue {
            guard let parsed = Value(argument: text) else {
                throw ValidationError("the default of --\(setting.flag), '\(text)', is not \(Self.expectation(setting, Value.self))")
            }
            (value, source) = (parsed, "the default of --\(setting.flag)")
        } else {
            return nil
        }
        if let minimum = setting.minimum, let number = value as? Int, number < minimum {
            throw ValidationError("\(source) must be at least \(minimum), got \(number)")
        }
        return value
    }

    /// The value of a setting with a literal default.
    func value<Value: ExpressibleByArgument>(_ setting: RunSetting, _ flag: Value?) throws -> Value {
        guard let value = try given(setting, flag) else {
            throw ValidationError("--\(setting.flag) (\(setting.variable)) needs a value")
        }
        return value
    }

    /// The value, or `computed` when neither flag nor variable gives one (the setting's default is computed).
    func value<Value: ExpressibleByArgument>(_ setting: RunSetting, _ flag: Value?, computed: @autoclosure () -> Value) throws -> Value {
        try given(setting, flag) ?? computed()
    }

    /// A repeatable setting: the flags when given, else the variable's comma-separated items.
    func list(_ setting: RunSetting, _ flags: [String]) -> [String] {
        if !flags.isEmpty { return flags }
        return (environment[setting.variable] ?? "").split(separator: ",")
            .map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    /// An on/off setting: on with the flag, or with the variable set to 1, true or yes.
    func isOn(_ setting: RunSetting, _ flag: Bool) -> Bool {
        flag || ["1", "true", "yes"].contains(environment[setting.variable]?.lowercased() ?? "")
    }

    private static func expectation<Value: ExpressibleByArgument>(_ setting: RunSetting, _: Value.Type) -> String {
        if !setting.choices.isEmpty { return "one of " + setting.choices.joined(separator: ", ") }
        return Value.self == Int.self ? "a whole number" : "a valid value"
    }
}
