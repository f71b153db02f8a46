import ArgumentParser

/// `minirbt-stream`: the streaming inference service and its offline companions.
public struct MiniRBTStreamCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "minirbt-stream",
        abstract: "Run MiniRBT-family Chinese BERT models over Kafka streams.",
        discussion: """
            The service reads text events from Kafka, classifies them with a MiniRBT student model on \
            sharded, micro-batched workers and publishes enriched JSON results. The offline commands run the \
            same model and tokenizer on JSON Lines files.

            Examples:
              minirbt-stream infer --model ../shared/models/minirbt-h256-chnsenticorp/v2 --input dev.jsonl
              minirbt-stream tokenize --vocab vocab.txt < events.jsonl
              minirbt-stream version
            """,
        version: BuildInfo.version,
        subcommands: [RunCommand.self, InferCommand.self, TokenizeCommand.self, VersionCommand.self])

    public init() {}
}

/// The program's own version.
enum BuildInfo {
    static let version = "0.1.0"
}
