import ArgumentParser

public struct MiniRBTStreamCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(commandName: "minirbt-stream")
    public init() {}
    public func run() async throws {}
}
