// swift-tools-version: 6.1
import PackageDescription
import Foundation

// librdkafka >= 2.3 is built by scripts/setup.sh into $MINIRBT_DEPS/librdkafka when the system copy is
// older (Debian bookworm ships 2.0.2). pkg-config finds it at build time; the rpath makes the binaries
// load that copy, not the system one, at run time.
let environment = ProcessInfo.processInfo.environment
let depsRoot = environment["MINIRBT_DEPS"]
    ?? ((environment["XDG_CACHE_HOME"] ?? ((environment["HOME"] ?? "/root") + "/.cache")) + "/minirbt")
let rdkafkaRPath: [LinkerSetting] = [
    .unsafeFlags(["-Xlinker", "-rpath", "-Xlinker", depsRoot + "/librdkafka/lib"]),
]

let package = Package(
    name: "minirbt-stream",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "minirbt-stream", targets: ["MiniRBTStream"]),
        .executable(name: "minirbt-admin", targets: ["MiniRBTAdmin"]),
        .executable(name: "minirbt-bench", targets: ["MiniRBTBench"]),
        .executable(name: "minirbt-demo", targets: ["MiniRBTDemo"]),
        .library(name: "MiniRBT", targets: ["MiniRBT"]),
        .library(name: "Kafka", targets: ["Kafka"]),
    ],
    // Exact versions: Package.resolved is not committed (these machines' package copies have their own
    // commit ids), so pinning here is what keeps builds, CI and the image on the same dependencies.
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", exact: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", exact: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", exact: "2.13.0"),
        .package(url: "https://github.com/apple/swift-collections", exact: "1.6.0"),
        .package(url: "https://github.com/apple/swift-metrics", exact: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", exact: "2.4.1"),
        .package(url: "https://github.com/apple/swift-nio", exact: "2.101.3"),
        .package(url: "https://github.com/apple/swift-crypto", exact: "3.12.3"),
    ],
    targets: [
        // C shims over system libraries.
        .systemLibrary(name: "CDNNL", path: "Sources/CDNNL"),
        .systemLibrary(name: "CRdKafka", path: "Sources/CRdKafka", pkgConfig: "rdkafka",
                       providers: [.apt(["librdkafka-dev"])]),

        // The engine's C kernels (element-wise loops, int8 products), built per instruction-set level and
        // dispatched at load time. Optimised in every configuration: the tests run debug builds, and
        // intrinsics at -O0 are slower than the scalar code they replace.
        .target(name: "CVectorMath", cSettings: [.unsafeFlags(["-O2"])]),

        // `withTimeout`: the one way to bound a wait, in the service and in the tests.
        .target(name: "Timeouts"),

        // Model runtime: tokenizer, checkpoints, encoder, heads. Knows nothing of Kafka.
        .target(name: "MiniRBT", dependencies: ["CDNNL", "CVectorMath"]),

        // Kafka layer: typed configuration, producer, consumer, admin. Knows nothing of models.
        .target(name: "Kafka",
                dependencies: ["CRdKafka", .product(name: "Logging", package: "swift-log")],
                linkerSettings: rdkafkaRPath),

        // Model control plane: registry, manifests, signed control messages, status heartbeats.
        .target(name: "ModelControl",
                dependencies: ["MiniRBT", "Kafka", "Timeouts",
                               .product(name: "Crypto", package: "swift-crypto"),
                               .product(name: "Logging", package: "swift-log")]),

        // The streaming service: consumer loop → router → shards → publishers → offset book → commits.
        .target(name: "StreamPipeline",
                dependencies: ["MiniRBT", "Kafka", "ModelControl", "Timeouts",
                               .product(name: "DequeModule", package: "swift-collections"),
                               .product(name: "Crypto", package: "swift-crypto"),
                               .product(name: "CoreMetrics", package: "swift-metrics"),
                               .product(name: "NIOCore", package: "swift-nio"),
                               .product(name: "NIOPosix", package: "swift-nio"),
                               .product(name: "NIOHTTP1", package: "swift-nio"),
                               .product(name: "Logging", package: "swift-log"),
                               .product(name: "ServiceLifecycle", package: "swift-service-lifecycle")]),

        // The command-line front end of minirbt-stream, a library so tests can drive it.
        .target(name: "StreamCLI",
                dependencies: ["MiniRBT", "Kafka", "ModelControl", "StreamPipeline",
                               .product(name: "Prometheus", package: "swift-prometheus"),
                               .product(name: "Metrics", package: "swift-metrics"),
                               .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                               .product(name: "ArgumentParser", package: "swift-argument-parser"),
                               .product(name: "Logging", package: "swift-log")]),
        .executableTarget(name: "MiniRBTStream", dependencies: ["StreamCLI"], linkerSettings: rdkafkaRPath),
        // The command-line front end of minirbt-admin, a library so tests can drive it.
        .target(name: "AdminCLI",
                dependencies: ["MiniRBT", "Kafka", "ModelControl", "Timeouts",
                               .product(name: "ArgumentParser", package: "swift-argument-parser"),
                               .product(name: "Logging", package: "swift-log")]),
        .executableTarget(name: "MiniRBTAdmin",
                          dependencies: ["AdminCLI", .product(name: "ArgumentParser", package: "swift-argument-parser")],
                          linkerSettings: rdkafkaRPath),
        .executableTarget(name: "MiniRBTDemo",
                          dependencies: ["Kafka", .product(name: "ArgumentParser", package: "swift-argument-parser")],
                          linkerSettings: rdkafkaRPath),
        .executableTarget(name: "MiniRBTBench",
                          dependencies: ["MiniRBT", .product(name: "ArgumentParser", package: "swift-argument-parser")],
                          path: "bench/Sources/MiniRBTBench"),

        .testTarget(name: "MiniRBTTests", dependencies: ["MiniRBT", "KafkaTestSupport"], resources: [.copy("Fixtures")],
                    linkerSettings: rdkafkaRPath),
        // What every test target shares: the shared data's location, the test run's broker, withDeadline.
        .target(name: "KafkaTestSupport", dependencies: ["Kafka", "Timeouts", .product(name: "Logging", package: "swift-log")],
                path: "Tests/KafkaTestSupport"),
        .testTarget(name: "KafkaTests", dependencies: ["Kafka", "KafkaTestSupport"], linkerSettings: rdkafkaRPath),
        .testTarget(name: "StreamPipelineTests",
                    dependencies: ["StreamPipeline", "KafkaTestSupport", .product(name: "Crypto", package: "swift-crypto")],
                    linkerSettings: rdkafkaRPath),
        .testTarget(name: "StreamCLITests", dependencies: ["StreamCLI", "Kafka", "KafkaTestSupport", "MiniRBT"], linkerSettings: rdkafkaRPath),
        .testTarget(name: "ModelControlTests", dependencies: ["ModelControl", "StreamPipeline", "KafkaTestSupport",
                                                              .product(name: "Crypto", package: "swift-crypto")],
                    linkerSettings: rdkafkaRPath),
        .testTarget(name: "AdminCLITests", dependencies: ["AdminCLI"], linkerSettings: rdkafkaRPath),
        .testTarget(name: "ServiceProcessTests",
                    dependencies: ["Kafka", "KafkaTestSupport", "ModelControl", "StreamPipeline", "Timeouts",
                                   .product(name: "Crypto", package: "swift-crypto")],
                    linkerSettings: rdkafkaRPath),
    ],
    swiftLanguageModes: [.v6]
)

// MARK: - Fuzzing (scripts/fuzz.sh, Fuzz/README.md)
//
// Declared only when MINIRBT_FUZZ=1, so an ordinary `swift build` / `swift build --build-tests` never sees
// them: the fuzz executables take their `main` from libFuzzer, which only a `-sanitize=fuzzer` link provides.
// The parsers under test (MiniRBT, ModelControl, StreamPipeline) are compiled with coverage instrumentation
// and AddressSanitizer; their dependencies are not (faster builds, and coverage that counts only our code).
// Build with a separate scratch path so the normal .build is untouched:
//   MINIRBT_FUZZ=1 swift build --scratch-path .build-fuzz --product fuzz-<name>
if environment["MINIRBT_FUZZ"] == "1" {
    let sanitize: [String] = ["-sanitize=" + (environment["MINIRBT_FUZZ_SANITIZERS"] ?? "fuzzer,address")]
    for target in package.targets where ["MiniRBT", "ModelControl", "StreamPipeline"].contains(target.name) {
        target.swiftSettings = (target.swiftSettings ?? []) + [.unsafeFlags(sanitize)]
    }
    package.targets.append(.target(name: "CLibFuzzer", path: "Fuzz/CLibFuzzer"))
    package.targets.append(.target(name: "FuzzSupport", dependencies: ["CLibFuzzer"], path: "Fuzz/Support"))
    let fuzzTargets: [(name: String, dependencies: [Target.Dependency])] = [
        ("event", ["StreamPipeline"]),
        ("tokenizer", ["MiniRBT"]),
        ("safetensors", ["MiniRBT"]),
        ("torch", ["MiniRBT"]),
        ("pickle", ["MiniRBT"]),
        ("control", ["ModelControl", .product(name: "Crypto", package: "swift-crypto")]),
        ("manifest", ["ModelControl", "MiniRBT"]),
        ("config", ["MiniRBT"]),
    ]
    for (name, dependencies) in fuzzTargets {
        let module = "Fuzz" + name.prefix(1).uppercased() + name.dropFirst()
        package.targets.append(.executableTarget(
            name: module, dependencies: dependencies + ["FuzzSupport"], path: "Fuzz/Targets/\(name)",
            swiftSettings: [.unsafeFlags(sanitize)], linkerSettings: [.unsafeFlags(sanitize)] + rdkafkaRPath))
        package.products.append(.executable(name: "fuzz-\(name)", targets: [module]))
    }
}
