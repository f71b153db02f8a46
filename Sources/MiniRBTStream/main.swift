import ArgumentParser
import StreamCLI

// `AsyncParsableCommand.main()` is not chosen from a top-level call in another module, so parse and
// dispatch here the way it would.
do {
    var command = try MiniRBTStreamCommand.parseAsRoot()
    if var asyncCommand = command as? AsyncParsableCommand {
        try await asyncCommand.run()
    } else {
        try command.run()
    }
} catch {
    MiniRBTStreamCommand.exit(withError: error)
}
