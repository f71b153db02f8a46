import ArgumentParser
import Foundation
import Kafka
import Logging
import ModelControl

/// Where the cluster and the control-plane topics are.
struct ClusterOptions: ParsableArguments {
    @Option(help: "Kafka bootstrap servers, comma-separated host:port.")
    var brokers = "localhost:9092"

    @Option(help: "Compacted topic of signed control messages, one key per message (<deployment>/<sequence>).")
    var controlTopic = ControlTopics.defaultControlTopic

    @Option(help: "Topic of instance heartbeats.")
    var statusTopic = ControlTopics.defaultStatusTopic

    @Option(name: .customLong("kafka"), help: ArgumentHelp("A librdkafka property, key=value (repeatable).", valueName: "key=value"))
    var kafkaProperties: [String] = []

    func kafka() throws -> KafkaConfiguration {
        var configuration = KafkaConfiguration(bootstrapServers: brokers.split(separator: ",").map(String.init),
                                               clientID: "minirbt-admin")
        configuration.applyEnvironment(ProcessInfo.processInfo.environment)
        try configuration.apply(assignments: kafkaProperties)
        return configuration
    }
}

/// The operator's signing key.
struct SigningOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Private key file written by keygen.", valueName: "file"))
    var key: String

    @Option(help: "Who issues the message, recorded in it (default: $USER@host).")
    var issuedBy: String?

    func signer() throws -> ControlSigner {
        ControlSigner(privateKey: try SigningKeyFiles.readPrivateKey(URL(fileURLWithPath: key)))
    }

    var issuer: String {
        issuedBy ?? "\(ProcessInfo.processInfo.environment["USER"] ?? "unknown")@\(ProcessInfo.processInfo.hostName)"
    }
}

/// Where rollout commands read the manifests whose digests they sign.
struct ManifestDigestOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Registry root: the SHA-256 of the version's manifest.json is signed into the message, so replicas load only the bundle signed for.", valueName: "dir"))
    var registry: String

    /// The digest of `reference`'s manifest.
    func digest(of reference: ModelReference) throws -> String {
        do {
            return try ModelManifest.digest(in: ModelRegistry(root: URL(fileURLWithPath: registry)).directory(for: reference))
        } catch {
            throw AdminFailure("cannot sign the manifest of \(reference): \(error)")
        }
    }
}

/// Options of commands that can block until the fleet applied a message.
struct WaitOptions: ParsableArguments {
    @Flag(help: "Wait until every live instance serves the version, or one reports a failure.")
    var wait = false

    @Option(help: "Seconds --wait waits before giving up.")
    var timeout: Double = 120
}

enum AdminLog {
    static let logger: Logger = {
        var logger = Logger(label: "minirbt-admin")
        logger.logLevel = .warning
        return logger
    }()
}

/// A command that did not achieve its goal; printed as is, exit code 1.
struct AdminFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

extension ModelReference {
    /// Parses command-line arguments, turning a validation failure into a usage error.
    static func parse(name: String, version: String) throws -> ModelReference {
        do {
            return try ModelReference(name: name, version: version)
        } catch {
            throw ValidationError(error.description)
        }
    }
}
