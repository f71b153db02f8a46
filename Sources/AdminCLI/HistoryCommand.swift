import ArgumentParser
import Foundation
import ModelControl

struct HistoryCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "history",
        abstract: "Print the accepted control messages of a deployment, oldest first.",
        discussion: "The control topic is compacted: after compaction only the latest message per deployment remains.")

    @Argument(help: "Deployment name.")
    var deployment: String

    @Option(help: ArgumentHelp("Public key that signs accepted messages.", valueName: "file"))
    var verifyKey: String

    @Flag(help: "Also print rejected records and why.")
    var rejected = false

    @OptionGroup var cluster: ClusterOptions

    func run() async throws {
        let key = try SigningKeyFiles.readPublicKey(URL(fileURLWithPath: verifyKey))
        let client = ControlClient(kafka: try cluster.kafka(), topic: cluster.controlTopic, logger: AdminLog.logger)
        let ledger = try await client.ledger(for: deployment, verifier: ControlVerifier(trustedKeys: [key]))
        if ledger.accepted.isEmpty { print("no accepted control messages for \(deployment)") }
        for message in ledger.accepted { print(message.summary) }
        if rejected {
            for rejection in ledger.rejections { print("rejected: \(rejection)") }
        }
    }
}
