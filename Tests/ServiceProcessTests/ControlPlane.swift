import Foundation
import Kafka
import KafkaTestSupport
import ModelControl

/// A signing key, a model registry holding the demo model's versions, and fresh control and status
/// topics: what `minirbt-admin` and a registry-following `minirbt-stream` share.
struct ControlPlane: Sendable {
    let deployment = "sentiment"
    let keyDirectory: URL
    let registry: URL
    let controlTopic: String
    let statusTopic: String

    var privateKey: URL { keyDirectory.appendingPathComponent("minirbt-control.key") }
    var publicKey: URL { keyDirectory.appendingPathComponent("minirbt-control.pub") }

    /// Generates a key pair with `minirbt-admin keygen` and publishes `versions` of the shared demo model
    /// under ``deployment`` with `minirbt-admin publish`.
    static func prepare(in scope: E2EScope, versions: [String] = ["v1", "v2"]) async throws -> ControlPlane {
        let keys = try scope.temporaryDirectory("keys")
        let registry = try scope.temporaryDirectory("registry")
        try await AdminProcess.succeed(["keygen", "--out", keys.path])
        let plane = ControlPlane(
            keyDirectory: keys, registry: registry,
            controlTopic: try await TestBroker.createTopic("e2e-control", partitions: 1, config: ["cleanup.policy": "compact"]),
            statusTopic: try await TestBroker.createTopic("e2e-status", partitions: 1, config: ["cleanup.policy": "compact"]))
        for version in versions {
            try await AdminProcess.succeed(["publish", "--registry", registry.path, "--name", plane.deployment,
                                            "--version", version, "--model-dir", E2EFixtures.modelDirectory(version).path])
        }
        return plane
    }

    /// A version's bundle directory in the registry.
    func bundle(_ version: String) -> URL {
        registry.appendingPathComponent(deployment).appendingPathComponent(version)
    }

    /// `minirbt-stream run` options that make an instance follow the deployment, starting on the registry's
    /// `fallback` version until the control topic (``controlTopic`` unless given) says otherwise.
    func serviceArguments(instance: String, fallback: String = "v1", controlTopic: String? = nil) -> [String] {
        ["--registry", registry.path, "--deployment", deployment, "--verify-key", publicKey.path,
         "--control-topic", controlTopic ?? self.controlTopic, "--status-topic", statusTopic, "--instance-id", instance,
         "--model", bundle(fallback).path]
    }

    /// Runs a signed rollout command (`deploy`, `promote`, `rollback`) against this plane's topics, signed
    /// with `key` (default: the plane's own); `--wait` gives up after `waitSeconds`.
    func rollout(_ arguments: [String], key: URL? = nil, waitSeconds: Int = 150) async throws -> AdminRun {
        try await AdminProcess.run(arguments + clusterOptions + ["--registry", registry.path, "--key", (key ?? privateKey).path, "--timeout", "\(waitSeconds)"],
                                   timeout: .seconds(waitSeconds + 30))
    }

    /// Runs a signed rollout command and throws (with its output) unless it exits 0.
    @discardableResult
    func rolloutSucceeds(_ arguments: [String]) async throws -> AdminRun {
        let run = try await rollout(arguments)
        guard run.succeeded else { throw TestFailure("expected success from \(run)") }
        return run
    }

    /// `minirbt-admin status` of this deployment.
    func status() async throws -> AdminRun {
        try await AdminProcess.succeed(["status", "--deployment", deployment] + clusterOptions)
    }

    /// `minirbt-admin drift` of this deployment (`--json` with `json`).
    func drift(json: Bool = false) async throws -> AdminRun {
        try await AdminProcess.succeed(["drift", deployment] + (json ? ["--json"] : []) + clusterOptions)
    }

    /// The ACTIVE column of `instance`'s row in a `status` table, if the row is there.
    static func activeVersion(of instance: String, in table: String) -> String? {
        let rows = table.split(separator: "\n").map { $0.split(separator: " ", omittingEmptySubsequences: true) }
        guard let header = rows.first(where: { $0.first == "INSTANCE" }),
              let column = header.firstIndex(of: "ACTIVE"),
              let row = rows.first(where: { $0.first.map(String.init) == instance }), row.count > column
        else { return nil }
        return String(row[column])
    }

    /// Copies a published version under a new version name with one byte of its weights flipped: the
    /// manifest (rewritten only to name the new version) then lists a checksum the file no longer has.
    func publishCorruptCopy(of version: String, as corrupt: String) throws {
        let source = bundle(version)
        let target = bundle(corrupt)
        try FileManager.default.copyItem(at: source, to: target)
        let manifestURL = target.appendingPathComponent("manifest.json")
        guard var manifest = try JSONSerialization.jsonObject(with: Data(contentsOf: manifestURL)) as? [String: Any] else {
            throw TestFailure("\(manifestURL.path) is not a JSON object")
        }
        manifest["version"] = corrupt
        try JSONSerialization.data(withJSONObject: manifest, options: [.sortedKeys]).write(to: manifestURL)

        let weights = target.appendingPathComponent("model.safetensors")
        let handle = try FileHandle(forUpdating: weights)
        defer { try? handle.close() }
        let middle = try handle.seekToEnd() / 2
        try handle.seek(toOffset: middle)
        guard let byte = try handle.read(upToCount: 1)?.first else { throw TestFailure("\(weights.path) is empty") }
        try handle.seek(toOffset: middle)
        try handle.write(contentsOf: [byte ^ 0xFF])
    }

    /// The SHA-256 of a published version's manifest, as a rollout signs it.
    func manifestDigest(_ version: String) throws -> String {
        try ModelManifest.digest(in: bundle(version))
    }

    /// `message` signed with the plane's private key: a record value as `minirbt-admin` would send it.
    func signedValue(_ message: ControlMessage) throws -> [UInt8] {
        try ControlSigner(privateKey: SigningKeyFiles.readPrivateKey(privateKey)).signedRecordValue(message)
    }

    /// Appends records as they are, to the control topic unless `topic` is given: what anyone with write
    /// access to the topic can do.
    func append(_ records: [(key: String?, value: [UInt8]?)], to topic: String? = nil) async throws {
        let producer = try KafkaProducer(configuration: ProducerConfiguration(kafka: TestBroker.kafka), logger: TestBroker.logger)
        do {
            for record in records {
                _ = try await producer.send(ProducerRecord(topic: topic ?? controlTopic, key: record.key.map { Array($0.utf8) },
                                                           value: record.value))
            }
        } catch {
            await producer.close()
            throw error
        }
        await producer.close()
    }

    /// Every record of the control topic (or `topic`) so far.
    func records(of topic: String? = nil) async throws -> [ConsumerRecord] {
        let follower = try TopicFollower(topic: topic ?? controlTopic, kafka: TestBroker.kafka, logger: TestBroker.logger)
        do {
            let records = try await follower.readToEnd()
            await follower.close()
            return records
        } catch {
            await follower.close()
            throw error
        }
    }

    /// The first heartbeat of `instance` on the status topic, from the beginning, that satisfies `condition`.
    func heartbeat(of instance: String, _ what: String, timeout: Duration = .seconds(120),
                   until condition: @escaping @Sendable (InstanceHeartbeat) -> Bool) async throws -> InstanceHeartbeat {
        let follower = try TopicFollower(topic: statusTopic, kafka: TestBroker.kafka, logger: TestBroker.logger)
        do {
            let found = try await withDeadline(timeout, "a heartbeat of \(instance): \(what)") {
                try await follower.consumer.assign([TopicPartition(topic: statusTopic, partition: 0): .beginning])
                for try await event in follower.events {
                    guard case .record(let record) = event, let value = record.value,
                          let heartbeat = try? JSONDecoder.control.decode(InstanceHeartbeat.self, from: Data(value)),
                          heartbeat.instance == instance else { continue }
                    if condition(heartbeat) { return heartbeat }
                }
                throw TestFailure("the status topic \(statusTopic) ended")
            }
            await follower.close()
            return found
        } catch {
            await follower.close()
            throw error
        }
    }

    private var clusterOptions: [String] {
        ["--brokers", TestBroker.bootstrapServers, "--control-topic", controlTopic, "--status-topic", statusTopic]
    }
}
