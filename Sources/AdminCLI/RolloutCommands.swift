import ArgumentParser
import Foundation
import ModelControl

struct DeployCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "deploy",
        abstract: "Roll a published version out to a deployment, alone, as a canary, or in shadow.")

    @Argument(help: "Deployment name (the services' --deployment).")
    var deployment: String

    @Argument(help: "Registry version to serve (its name is the deployment name unless --model is given).")
    var version: String

    @Option(help: "Registry model name, when it differs from the deployment name.")
    var model: String?

    @Option(help: ArgumentHelp("Send this percentage (1-100) of keys to the version; the rest stay on the current one.", valueName: "percent"))
    var canary: Int?

    @Flag(help: "Run the version on every event beside the current one; its results go to the shadow topic only.")
    var shadow = false

    @OptionGroup var cluster: ClusterOptions
    @OptionGroup var signing: SigningOptions
    @OptionGroup var manifests: ManifestDigestOptions
    @OptionGroup var waiting: WaitOptions

    func validate() throws {
        if canary != nil && shadow { throw ValidationError("--canary and --shadow are exclusive") }
        if let canary, !(1...100).contains(canary) { throw ValidationError("--canary must be 1...100, got \(canary)") }
    }

    func run() async throws {
        let target = try ModelReference.parse(name: model ?? deployment, version: version)
        let action: RolloutAction = canary != nil ? .canary : (shadow ? .shadow : .deploy)
        try await Rollout(cluster: cluster, signing: signing, manifests: manifests, waiting: waiting)
            .issue(deployment: deployment, action: action, canaryPercent: canary) { _ in target }
    }
}

struct PromoteCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "promote",
        abstract: "Make the deployment's canary (or shadow) version the only serving version.")

    @Argument(help: "Deployment name.")
    var deployment: String

    @OptionGroup var cluster: ClusterOptions
    @OptionGroup var signing: SigningOptions
    @OptionGroup var manifests: ManifestDigestOptions
    @OptionGroup var waiting: WaitOptions

    func run() async throws {
        try await Rollout(cluster: cluster, signing: signing, manifests: manifests, waiting: waiting)
            .issue(deployment: deployment, action: .promote) { try $0.promoteTarget() }
    }
}

struct RollbackCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rollback",
        abstract: "Serve the previously active version again; during a canary or shadow, drop the candidate.")

    @Argument(help: "Deployment name.")
    var deployment: String

    @OptionGroup var cluster: ClusterOptions
    @OptionGroup var signing: SigningOptions
    @OptionGroup var manifests: ManifestDigestOptions
    @OptionGroup var waiting: WaitOptions

    func run() async throws {
        try await Rollout(cluster: cluster, signing: signing, manifests: manifests, waiting: waiting)
            .issue(deployment: deployment, action: .rollback) { try $0.rollbackTarget() }
    }
}

/// Builds, signs, sends and optionally awaits one control message.
struct Rollout {
    let cluster: ClusterOptions
    let signing: SigningOptions
    let manifests: ManifestDigestOptions
    let waiting: WaitOptions

    func issue(deployment: String, action: RolloutAction, canaryPercent: Int? = nil,
               target: (ControlLedger) throws -> ModelReference) async throws {
        do {
            try ModelReference.validate(deployment, role: "deployment")
        } catch {
            throw ValidationError(error.description)
        }
        let signer = try signing.signer()
        let kafka = try cluster.kafka()
        let client = ControlClient(kafka: kafka, topic: cluster.controlTopic, logger: AdminLog.logger)
        // The history is read with the operator's own public key: messages signed by others are not "ours".
        let verifier = ControlVerifier(trustedKeys: [try SigningKeyFiles.readPrivateKey(URL(fileURLWithPath: signing.key)).publicKey])
        let ledger = try await client.ledger(for: deployment, verifier: verifier)
        let version = try target(ledger)
        let keepsPrimary = action == .canary || action == .shadow
        let primary = keepsPrimary ? ledger.currentPrimary : nil
        let message = ControlMessage(
            deployment: deployment, target: version, mode: action, canaryPercent: canaryPercent,
            primary: primary,
            previous: keepsPrimary ? ledger.latest?.previous : ledger.currentPrimary,
            sequence: ControlClient.nextSequence(after: ledger), issuedBy: signing.issuer,
            manifestDigest: try manifests.digest(of: version),
            primaryManifestDigest: try primary.map { try manifests.digest(of: $0) })
        let record = try await client.send(message, signer: signer)
        print("sent \(message.summary) to \(cluster.controlTopic)")
        guard waiting.wait else { return }

        let watcher = FleetWatcher(kafka: kafka, topic: cluster.statusTopic, logger: AdminLog.logger)
        let instances = try await watcher.waitUntilApplied(deployment: deployment, sequence: message.sequence, record: record,
                                                           timeout: .milliseconds(Int64(waiting.timeout * 1000))) { line in
            print("  \(line)")
        }
        print("applied by \(instances.count) live instance\(instances.count == 1 ? "" : "s"): \(instances.map(\.instance).joined(separator: ", "))")
    }
}
