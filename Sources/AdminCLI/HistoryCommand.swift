import ArgumentParser
import Foundation
import ModelControl

struct HistoryCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "history",
        abstract: "List every control record of a deployment, accepted or rejected, with each replica's outcome.",
        discussion: """
            Reads the control topic from the beginning and judges each record of the deployment as the \
            replicas do (signature by a --verify-key key, the record's own key, validity window, sequence \
            above everything accepted before); then reads the status topic for what every replica reported: \
            applied, failed (with the reason), rejected (with the reason), superseded (went on to a later \
            message without reporting this one, e.g. started afterwards) or unreported. The status topic is \
            compacted per instance, so old outcomes may have been compacted away.
            """)

    @Argument(help: "Deployment name.")
    var deployment: String

    @Option(help: ArgumentHelp("Public key that signs accepted messages (repeatable: every key the replicas trust).", valueName: "file"))
    var verifyKey: [String] = []

    @Flag(help: "One JSON object per record, one per line.")
    var json = false

    @OptionGroup var cluster: ClusterOptions

    func validate() throws {
        if verifyKey.isEmpty { throw ValidationError("history needs --verify-key FILE: the keys the replicas trust") }
    }

    func run() async throws {
        let keys = try verifyKey.map { try SigningKeyFiles.readPublicKey(URL(fileURLWithPath: $0)) }
        let kafka = try cluster.kafka()
        let client = ControlClient(kafka: kafka, topic: cluster.controlTopic, logger: AdminLog.logger)
        let records = try await client.records()
        let heartbeats = try await FleetWatcher(kafka: kafka, topic: cluster.statusTopic, logger: AdminLog.logger).heartbeats()
        let entries = ControlHistory.entries(deployment: deployment, records: records, heartbeats: heartbeats,
                                             verifier: ControlVerifier(trustedKeys: keys))
        if json {
            for entry in entries { print(String(decoding: try JSONEncoder.control.encode(entry), as: UTF8.self)) }
        } else {
            print(Self.text(entries, deployment: deployment))
        }
    }

    static func text(_ entries: [ControlHistory.Entry], deployment: String) -> String {
        guard !entries.isEmpty else { return "no control records for \(deployment)" }
        return entries.map { entry in
            var line = "offset \(entry.offset.map(String.init) ?? "?")"
            if let at = entry.appendedAt { line += " at \(at.formatted(.iso8601))" }
            line += " key \(entry.key ?? "(none)"): "
            line += entry.accepted ? "accepted" : "REJECTED"
            if let message = entry.message {
                line += " \(message.summary) key-id \(message.keyID ?? "?")"
                if let digest = message.manifestDigest { line += " manifest \(digest.prefix(16))" }
            }
            if let reason = entry.reason { line += "\n    reason: \(reason)" }
            for replica in entry.replicas {
                line += "\n    \(replica.instance): \(replica.outcome.rawValue)" + (replica.reason.map { " (\($0))" } ?? "")
            }
            return line
        }.joined(separator: "\n")
    }
}
