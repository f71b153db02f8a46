import ArgumentParser
import Foundation
import Kafka
import MiniRBT

struct VersionCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "version",
        abstract: "Print the program's version, the libraries actually loaded, and what each precision runs on this CPU.")

    func run() throws {
        print("minirbt-stream \(BuildInfo.version)")
        print("librdkafka \(KafkaLibrary.version)")
        print("oneDNN \(RuntimeInfo.oneDNNVersion) (CPU instruction set: \(RuntimeInfo.instructionSet))")
        print("engine kernels: \(RuntimeInfo.kernelLevel) (cap with \(RuntimeInfo.instructionSetCapVariable))")
        for precision in Precision.allCases {
            switch RuntimeInfo.kernel(for: precision) {
            case let .success(kernel):
                print("precision \(precision): \(kernel)")
            case let .failure(error):
                print("precision \(precision): no fast kernel on this CPU, served as fp32 (\(error))")
            }
        }
        print("precision \(Precision.automatic) (the default): \(Precision.default), the fastest on this CPU")
    }
}
