import ArgumentParser
import Foundation
import ModelControl

struct KeygenCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keygen",
        abstract: "Create the Ed25519 key pair that signs control messages.",
        discussion: """
            Writes \(SigningKeyFiles.privateKeyName) (mode 0600, for operators) and \(SigningKeyFiles.publicKeyName)
            (for every service's --verify-key). Existing files are never overwritten.
            """)

    @Option(help: ArgumentHelp("Directory for the key files.", valueName: "dir"))
    var out: String

    func run() async throws {
        let files = try SigningKeyFiles.generate(in: URL(fileURLWithPath: out))
        print("private key: \(files.privateKey.path) (keep secret)")
        print("public key:  \(files.publicKey.path)")
        print("key id:      \(files.keyID)")
    }
}
