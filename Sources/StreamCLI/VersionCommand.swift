import ArgumentParser
import Foundation
import Kafka
import MiniRBT

struct VersionCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "version",
        abstract: "Print the program's version and the versions of the libraries actually loaded.")

    func run() throws {
        print("minirbt-stream \(BuildInfo.version)")
        print("librdkafka \(KafkaLibrary.version)")
        print("oneDNN \(RuntimeInfo.oneDNNVersion) (CPU instruction set: \(RuntimeInfo.instructionSet))")
    }
}
