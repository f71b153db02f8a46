import ArgumentParser
import Foundation
@testable import Kafka
import KafkaTestSupport
import MiniRBT
import Testing
@testable import StreamCLI

/// `--help` is part of the interface: these tests pin what it must teach.
@Suite struct HelpTextTests {
    @Test func rootHelpListsTheCommands() {
        let help = MiniRBTStreamCommand.helpMessage()
        for command in ["run", "infer", "tokenize", "version"] {
            #expect(help.contains(command), "root --help does not mention \(command)")
        }
    }

    @Test func runHelpShowsEverySettingWithItsVariableAndDefault() {
        let help = MiniRBTStreamCommand.helpMessage(for: RunCommand.self, columns: 400)
        for setting in RunSetting.all {
            #expect(help.contains("--\(setting.flag)"), "run --help does not show --\(setting.flag)")
            #expect(help.contains(setting.variable), "run --help does not name \(setting.variable)")
            if let defaultText = setting.defaultText {
                #expect(help.contains("(default: \(defaultText))"), "run --help does not give --\(setting.flag)'s default")
            }
        }
        #expect(help.contains("--kafka"))
        #expect(help.contains("at-least-once"))
    }

    /// The table is the one place a setting is declared: an option missing from it would have no variable,
    /// no docs and no chart check.
    @Test func everyRunOptionIsInTheSettingsTable() {
        let help = MiniRBTStreamCommand.helpMessage(for: RunCommand.self, columns: 400)
        let shown = Set(help.matches(of: /--([a-z][a-z0-9-]+)/).map { String($0.output.1) })
        let declared = Set(RunSetting.all.map(\.flag))
        #expect(shown.subtracting(declared).subtracting(["kafka", "help", "version"]).isEmpty,
                "options without a RunSetting: \(shown.subtracting(declared).subtracting(["kafka", "help", "version"]).sorted())")
        #expect(Set(RunSetting.all.map(\.variable)).count == RunSetting.all.count, "two settings share a variable")
    }

    /// docs/operations.md carries the tables generated from the settings; `MINIRBT_UPDATE_DOCS=1` rewrites them.
    @Test func operationsGuideTablesAreCurrent() throws {
        let guide = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../docs/operations.md")
        var text = try String(contentsOf: guide, encoding: .utf8)
        for section in RunSetting.Section.allCases {
            let (begin, end) = ("<!-- run-settings:\(section.rawValue) begin -->\n", "\n<!-- run-settings:\(section.rawValue) end -->")
            let start = try #require(text.range(of: begin), "docs/operations.md has no \(begin)")
            let stop = try #require(text.range(of: end, range: start.upperBound..<text.endIndex))
            let table = RunSetting.markdownTable(section)
            if ProcessInfo.processInfo.environment["MINIRBT_UPDATE_DOCS"] == "1" {
                text.replaceSubrange(start.upperBound..<stop.lowerBound, with: table)
            } else {
                #expect(String(text[start.upperBound..<stop.lowerBound]) == table,
                        "the \(section.rawValue) settings table of docs/operations.md is stale: run MINIRBT_UPDATE_DOCS=1 swift test --filter operationsGuideTablesAreCurrent")
            }
        }
        if ProcessInfo.processInfo.environment["MINIRBT_UPDATE_DOCS"] == "1" {
            try text.write(to: guide, atomically: true, encoding: .utf8)
        }
    }

    @Test func inferHelpShowsAnExample() {
        let help = MiniRBTStreamCommand.helpMessage(for: InferCommand.self, columns: 200)
        #expect(help.contains("minirbt-stream infer --model"))
        #expect(help.contains("--logits"))
    }
}

@Suite struct RunOptionsTests {
    @Test func environmentFillsWhatFlagsLeaveOut() throws {
        let command = try RunCommand.parse(["--input-topic", "reviews", "--shards", "3"])
        let options = try RunOptions(command, environment: [
            "MINIRBT_MODEL": "/models/v2", "MINIRBT_SHARDS": "9", "MINIRBT_MAX_BATCH": "16",
            "MINIRBT_BROKERS": "a:9092,b:9092", "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        ])
        #expect(options.stream.shards == 3, "a flag wins over its environment variable")
        #expect(options.stream.shard.maxBatch == 16)
        #expect(options.modelDirectory == "/models/v2")
        #expect(options.kafka.bootstrapServers == ["a:9092", "b:9092"])
        #expect(options.kafka.properties["security.protocol"] == "SASL_SSL")
        #expect(options.stream.delivery == .atLeastOnce)
        #expect(options.stream.shard.precision == Precision.default, "unset, the precision is auto")
    }

    /// `auto` is a spelling of the CPU's fastest precision, in a flag or in the variable; a precision's own
    /// name always wins, and anything else is refused with the choices.
    @Test func precisionAutoIsTheFastestOnThisCPU() throws {
        let parse = { (arguments: [String], environment: [String: String]) throws -> Precision in
            try RunOptions(try RunCommand.parse(["--input-topic", "t", "--model", "m"] + arguments), environment: environment)
                .stream.shard.precision
        }
        #expect(try parse(["--precision", "auto"], [:]) == Precision.default)
        #expect(try parse([], ["MINIRBT_PRECISION": "auto"]) == Precision.default)
        #expect(try parse([], ["MINIRBT_PRECISION": "fp32"]) == .fp32)
        #expect(try parse(["--precision", "bf16"], ["MINIRBT_PRECISION": "auto"]) == .bf16)
        #expect { try parse([], ["MINIRBT_PRECISION": "fp16"]) } throws: { "\($0)".contains("one of auto, fp32, bf16, int8") }
        #expect(RunSetting.precision.defaultValue == "auto")
    }

    @Test func badSettingsAreRefusedWithWhatWasExpected() throws {
        let cases: [([String], [String: String], String)] = [
            (["--model", "m"], [:], "--input-topic"),
            (["--input-topic", "t"], [:], "--model"),
            (["--input-topic", "t", "--input-pattern", "x", "--model", "m"], [:], "exclude each other"),
            (["--input-topic", "t", "--model", "m"], ["MINIRBT_DELIVERY": "twice"], "one of at-least-once, exactly-once"),
            (["--input-topic", "t", "--model", "m"], ["MINIRBT_MAX_BATCH": "many"], "whole number"),
            (["--input-topic", "t", "--model", "m", "--max-batch", "0"], [:], "at least 1"),
            (["--input-topic", "t", "--registry", "/r"], [:], "--deployment"),
            (["--input-topic", "t", "--model", "m", "--kafka", "no-equals-sign"], [:], "no-equals-sign"),
            // No stable per-replica identity: the host name is not one (replicas may share it).
            (["--input-topic", "t", "--model", "m", "--delivery", "exactly-once"], [:], "--instance-id"),
            (["--input-topic", "t", "--model", "m", "--teacher", "big", "--teacher-sample", "0"], [:], "(0, 1]"),
            (["--input-topic", "t", "--model", "m", "--teacher", "big"], ["MINIRBT_TEACHER_SAMPLE": "2%"], "MINIRBT_TEACHER_SAMPLE"),
            (["--input-topic", "t", "--model", "m", "--soft-label-topic", "soft"], [:], "need --teacher"),
            (["--input-topic", "t", "--model", "m", "--drift-window-events", "0"], [:], "--drift-window-events must be at least 1"),
            (["--input-topic", "t", "--model", "m", "--drift-window-events", "50", "--drift-min-events", "60"], [:], "cannot exceed"),
            (["--input-topic", "t", "--model", "m", "--group-instance-id", "pod 1"], [:], "--group-instance-id"),
            (["--input-topic", "t", "--model", "m"], ["MINIRBT_GROUP_INSTANCE_ID": String(repeating: "a", count: 250)], "1 to 249"),
        ]
        for (arguments, environment, expected) in cases {
            let command = try RunCommand.parse(arguments)
            #expect {
                _ = try RunOptions(command, environment: environment)
            } throws: { error in
                "\(error)".contains(expected)
            }
        }
    }

    @Test func hardeningSettingsAndKubernetesServiceLinks() throws {
        let command = try RunCommand.parse(["--input-topic", "t", "--model", "m"])
        let options = try RunOptions(command, environment: [
            "MINIRBT_METRICS_HOST": "127.0.0.1", "MINIRBT_MAX_BUFFERED_BYTES": "8388608",
            "MINIRBT_STALL_TIMEOUT_SECONDS": "90",
            // A Service named kafka in the namespace.
            "KAFKA_PORT": "tcp://10.0.0.7:9092", "KAFKA_SERVICE_HOST": "10.0.0.7", "KAFKA_SERVICE_PORT": "9092",
            "KAFKA_PORT_9092_TCP_ADDR": "10.0.0.7", "KAFKA_SASL_USERNAME": "minirbt",
            "KAFKA_MESSAGE_MAX_BYTES": "2000000",
        ])
        #expect(options.metricsHost == "127.0.0.1")
        #expect(options.stream.maxBufferedBytes == 8 << 20)
        #expect(options.stream.stallTimeout == .seconds(90))
        #expect(options.kafka.properties == ["sasl.username": "minirbt", "message.max.bytes": "2000000"])
        #expect(options.ignoredKafkaVariables.count == 4 && options.ignoredKafkaVariables.allSatisfy(\.isServiceLink))
        #expect(options.stream.maxRecordBytes < 2_000_000 && options.stream.maxRecordBytes > 1_900_000)
        #expect(options.consumer.kafka.properties["queued.max.messages.kbytes"] == "2048")
        // The revocation's commit must happen before the consumer gives the partition up.
        #expect(options.stream.revocationDrainTimeout < options.consumer.revocationTimeout)
        #expect(try RunOptions(try RunCommand.parse(["--input-topic", "t", "--model", "m"]), environment: [:]).metricsHost == "0.0.0.0")
        #expect(throws: (any Error).self) {
            _ = try RunOptions(try RunCommand.parse(["--input-topic", "t", "--model", "m", "--max-buffered-bytes", "10"]),
                               environment: [:])
        }
    }

    /// Static membership reaches librdkafka's group consumer as `group.instance.id`, and only when asked for.
    @Test func groupInstanceIDReachesTheGroupConsumer() throws {
        let fromFlag = try RunOptions(try RunCommand.parse(["--input-topic", "t", "--model", "m", "--group-instance-id", "minirbt-stream-1"]),
                                      environment: ["MINIRBT_GROUP_INSTANCE_ID": "ignored"])
        #expect(fromFlag.consumer.groupInstanceID == "minirbt-stream-1", "a flag wins over its environment variable")
        #expect(fromFlag.consumer.librdkafkaProperties["group.instance.id"] == "minirbt-stream-1")
        let fromEnvironment = try RunOptions(try RunCommand.parse(["--input-topic", "t", "--model", "m"]),
                                             environment: ["MINIRBT_GROUP_INSTANCE_ID": "minirbt-stream-0"])
        #expect(fromEnvironment.consumer.librdkafkaProperties["group.instance.id"] == "minirbt-stream-0")
        // librdkafka accepts the property on a group consumer.
        _ = try KafkaConsumer(configuration: fromEnvironment.consumer, logger: TestBroker.logger)
        // Dynamic membership by default: a Deployment's pod names change at every rollout.
        let dynamic = try RunOptions(try RunCommand.parse(["--input-topic", "t", "--model", "m", "--instance-id", "pod-7"]),
                                     environment: [:])
        #expect(dynamic.consumer.groupInstanceID == nil)
        #expect(dynamic.consumer.librdkafkaProperties["group.instance.id"] == nil)
    }

    @Test func exactlyOnceGetsAStableTransactionalID() throws {
        let command = try RunCommand.parse(["--input-topic", "t", "--model", "m", "--delivery", "exactly-once",
                                            "--group", "g", "--transactional-id", "g-replica-0"])
        let options = try RunOptions(command, environment: [:])
        #expect(options.producer.transactionalID == "g-replica-0")
        #expect(options.stream.delivery == .exactlyOnce)
        // Derived from the instance id (the chart's pod name), flag or variable.
        let derived = try RunOptions(try RunCommand.parse(["--input-topic", "t", "--model", "m", "--delivery", "exactly-once",
                                                           "--group", "g"]),
                                     environment: ["MINIRBT_INSTANCE_ID": "minirbt-stream-2"])
        #expect(derived.producer.transactionalID == "g-minirbt-stream-2")
        #expect(derived.stream.transactionalID == "g-minirbt-stream-2")
        let atLeastOnce = try RunOptions(try RunCommand.parse(["--input-topic", "t", "--model", "m"]), environment: [:])
        #expect(atLeastOnce.producer.transactionalID == nil)
    }
}

/// The offline commands on real files: bad lines get an error line and the run goes on, in input order.
@Suite struct OfflineCommandTests {
    static let model = SharedData.model("v1")

    static func run(_ command: some ParsableCommand) throws {
        var command = command
        try command.run()
    }

    static func lines(_ url: URL) throws -> [[String: Any]] {
        try String(contentsOf: url, encoding: .utf8).split(separator: "\n").map {
            try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
        }
    }

    static func temporaryFile(_ contents: [UInt8]) throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("minirbt-cli-\(UUID()).jsonl")
        try Data(contents).write(to: url)
        return url
    }

    static let input: [UInt8] = Array(#"{"id": "a", "text": "房间很干净，服务很好"}"#.utf8) + [0x0a]
        + Array(#"{"id": "b", "text": 3}"#.utf8) + [0x0a]
        + [0xff, 0xfe, 0x0a]
        + Array(#"{"id": "c", "text": "太吵了，不会再来", "text_pair": "隔音差"}"#.utf8) + [0x0a]

    @Test(.enabled(if: FileManager.default.fileExists(atPath: model.path), "needs ../shared/models"))
    func inferAnswersGoodLinesAndExplainsBadOnes() throws {
        let input = try Self.temporaryFile(Self.input)
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("minirbt-infer-\(UUID()).jsonl")
        try Self.run(try InferCommand.parse(["--model", Self.model.path, "--input", input.path, "--output", output.path,
                                             "--batch", "2", "--logits"]))
        let lines = try Self.lines(output)
        #expect(lines.count == 4)
        #expect(lines[0]["id"] as? String == "a")
        #expect(["positive", "negative"].contains(lines[0]["label"] as? String ?? ""))
        #expect((lines[0]["logits"] as? [Double])?.count == 2)
        #expect((lines[1]["error"] as? [String: Any])?["code"] as? String == "text_not_string")
        #expect(lines[1]["line"] as? Int == 2)
        #expect((lines[2]["error"] as? [String: Any])?["code"] as? String == "invalid_utf8")
        #expect(lines[3]["id"] as? String == "c")
        #expect((lines[3]["model"] as? [String: Any])?["version"] as? String == "v1")
    }

    /// `--output` writes through what the path names: a symlink stays a link (its target gets the lines),
    /// as /dev/null must stay a device. Writing a new file and renaming it over the path replaced both.
    @Test(.enabled(if: FileManager.default.fileExists(atPath: model.path), "needs ../shared/models"))
    func outputWritesThroughASymlinkInsteadOfReplacingIt() throws {
        let input = try Self.temporaryFile(Self.input)
        let target = try Self.temporaryFile(Array("stale\n".utf8))
        let link = FileManager.default.temporaryDirectory.appendingPathComponent("minirbt-link-\(UUID()).jsonl")
        try FileManager.default.createSymbolicLink(at: link, withDestinationURL: target)
        try Self.run(try InferCommand.parse(["--model", Self.model.path, "--input", input.path, "--output", link.path]))
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: link.path) == target.path)
        let lines = try Self.lines(target)
        #expect(lines.count == 4, "the target holds the results, the stale line truncated away")
        #expect(lines.first?["id"] as? String == "a")
    }

    @Test(.enabled(if: FileManager.default.fileExists(atPath: model.path), "needs ../shared/models"))
    func tokenizeWritesIdsWithSpecialTokens() throws {
        let input = try Self.temporaryFile(Self.input)
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("minirbt-tok-\(UUID()).jsonl")
        try Self.run(try TokenizeCommand.parse(["--vocab", Self.model.appendingPathComponent("vocab.txt").path,
                                                "--input", input.path, "--output", output.path, "--max-length", "8"]))
        let lines = try Self.lines(output)
        #expect(lines.count == 4)
        let ids = try #require(lines[0]["input_ids"] as? [Int])
        #expect(ids.first == 101 && ids.last == 102 && ids.count == 8)
        #expect(lines[0]["truncated"] as? Bool == true)
        let types = try #require(lines[3]["token_type_ids"] as? [Int])
        #expect(types.contains(1), "the pair's tokens have type 1")
        #expect((lines[2]["error"] as? [String: Any])?["code"] as? String == "invalid_utf8")
    }

    @Test func missingModelDirectoryIsAClearError() throws {
        #expect {
            try Self.run(try InferCommand.parse(["--model", "/nonexistent/model", "--input", "/dev/null"]))
        } throws: { error in
            "\(error)".contains("/nonexistent/model")
        }
    }
}

@Suite struct VerifyKeyOptionsTests {
    @Test func severalVerifyKeysFromFlagsOrTheEnvironment() throws {
        let base = ["--input-topic", "t", "--registry", "/registry", "--deployment", "sentiment"]
        let flags = try RunOptions(try RunCommand.parse(base + ["--verify-key", "a.pub", "--verify-key", "b.pub"]), environment: [:])
        #expect(flags.control?.verifyKeys == ["a.pub", "b.pub"])
        let environment = try RunOptions(try RunCommand.parse(base), environment: ["MINIRBT_VERIFY_KEY": "a.pub, b.pub"])
        #expect(environment.control?.verifyKeys == ["a.pub", "b.pub"])
        #expect(throws: ValidationError.self) { try RunOptions(try RunCommand.parse(base), environment: [:]) }
    }
}
