import AdminCLI
import ArgumentParser

// The command tree lives in AdminCLI so tests can drive it; this only makes it the program's entry point.
@main
extension AdminCommand {}
