import ArgumentParser
import StreamCLI

// The command tree lives in StreamCLI so tests can drive it; this only makes it the program's entry point.
@main
extension MiniRBTStreamCommand {}
