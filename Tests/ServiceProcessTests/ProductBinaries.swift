import Foundation
import KafkaTestSupport

/// Where `swift build --build-tests` put the product executables: beside the test bundle.
enum ProductBinaries {
    /// The build directory (e.g. `.build/debug` or `.build/x86_64-unknown-linux-gnu/debug`); the
    /// `MINIRBT_E2E_BIN_DIR` environment variable overrides it.
    static let directory: URL = {
        if let configured = ProcessInfo.processInfo.environment["MINIRBT_E2E_BIN_DIR"], !configured.isEmpty {
            return URL(fileURLWithPath: configured)
        }
        // The test runner is `<build dir>/<package>PackageTests.xctest` (an executable on Linux).
        let runner = Bundle.main.executablePath ?? CommandLine.arguments[0]
        var directory = URL(fileURLWithPath: runner).resolvingSymlinksInPath().deletingLastPathComponent()
        // On Darwin the runner sits inside the bundle: climb out of `….xctest/Contents/MacOS`.
        while directory.path.contains(".xctest") { directory = directory.deletingLastPathComponent() }
        return directory
    }()

    static var stream: URL { directory.appendingPathComponent("minirbt-stream") }
    static var admin: URL { directory.appendingPathComponent("minirbt-admin") }

    /// Throws unless both executables exist, saying how to build them.
    static func require() throws {
        for binary in [stream, admin] where !FileManager.default.isExecutableFile(atPath: binary.path) {
            throw TestFailure("\(binary.path) is missing: build the products with the tests (`swift build --build-tests`) or set MINIRBT_E2E_BIN_DIR")
        }
    }
}
