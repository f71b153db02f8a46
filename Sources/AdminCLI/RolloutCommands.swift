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

    @Option(help: ArgumentHelp("Refuse unless the shadow candidate agreed with the primary on at least this share (0-1) of the events the live replicas compared (weighted by events); refuses too when none compared any.", valueName: "share"))
    var minAgreement: Double?

    @OptionGroup var cluster: ClusterOptions
    @OptionGroup var signing: SigningOptions
    @OptionGroup var manifests: ManifestDigestOptions
    @OptionGroup var waiting: WaitOptions

    func validate() throws {
        if let minAgreement, !(0...1).contains(minAgreement) {
            throw ValidationError("--min-agreement must be a share in 0...1 (0.97 for 97 %), got \(minAgreement)")
        }
    }

    func run() async throws {
        let minAgreement = minAgreement
        let cluster = cluster
        try await Rollout(cluster: cluster, signing: signing, manifests: manifests, waiting: waiting)
            .issue(deployment: deployment, action: .promote) { ledger in
                let candidate = try ledger.promoteTarget()
                if let minAgreement {
                    let watcher = FleetWatcher(kafka: try cluster.kafka(), topic: cluster.statusTopic, logger: AdminLog.logger)
                    try Self.checkAgreement(of: candidate, deployment: ledger.deployment,
                                            in: try await watcher.snapshot().live(at: Date(), deployment: ledger.deployment),
                                            minimum: minAgreement)
                }
                return candidate
            }
    }

    /// Throws unless the live instances' shadow comparisons of `candidate`, taken together, reach `minimum`.
    static func checkAgreement(of candidate: ModelReference, deployment: String, in instances: [InstanceHeartbeat],
                               minimum: Double) throws {
        guard let measured = ShadowComparison.aggregate(instances.compactMap(\.shadow), of: candidate),
              let agreement = measured.agreement else {
            throw AdminFailure("refusing to promote \(candidate): no live instance of \(deployment) has reported comparing it "
                               + "with the primary in shadow mode (deploy it with --shadow and let events flow first), "
                               + "so --min-agreement \(minimum) cannot be checked")
        }
        let reporting = instances.filter { $0.shadow?.candidate == candidate && ($0.shadow?.compared ?? 0) > 0 }.count
        let summary = "\(candidate) agreed with the primary on \(measured.agreed) of \(measured.compared) events "
            + "(\(String(format: "%.4f", agreement))) over \(reporting) instance\(reporting == 1 ? "" : "s"), "
            + "mean |score difference| \(String(format: "%.4f", measured.meanScoreDifference))"
        guard agreement >= minimum else {
            throw AdminFailure("refusing to promote: \(summary), below --min-agreement \(minimum)")
        }
        print("shadow verdict: \(summary), at least --min-agreement \(minimum)")
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
               target: (ControlLedger) async throws -> ModelReference) async throws {
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
        let version = try await target(ledger)
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
