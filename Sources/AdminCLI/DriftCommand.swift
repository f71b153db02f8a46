import ArgumentParser
import Foundation
import ModelControl

struct DriftCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "drift",
        abstract: "Show each live instance's drift from the serving versions' baselines (PSI of label mix, confidence, length).",
        discussion: """
            Population Stability Index per feature over each instance's sliding window, against the baseline
            published with the version (publish --baseline). Verdicts: stable below 0.1, moderate below 0.25,
            significant at or above 0.25. A version published without a baseline shows "drift off".
            """)

    @Argument(help: "Deployment name.")
    var deployment: String

    @Flag(help: "Print JSON (one object per instance and version) instead of a table.")
    var json = false

    @OptionGroup var cluster: ClusterOptions

    func run() async throws {
        let watcher = FleetWatcher(kafka: try cluster.kafka(), topic: cluster.statusTopic, logger: AdminLog.logger)
        let instances = try await watcher.snapshot().live(at: Date(), deployment: deployment)
        print(json ? try Self.json(instances) : Self.table(instances))
    }

    /// One row per instance, version and feature.
    static func table(_ instances: [InstanceHeartbeat]) -> String {
        var rows = [["INSTANCE", "VERSION", "FEATURE", "BASELINE", "WINDOW", "PSI", "VERDICT"]]
        for heartbeat in instances {
            guard let drift = heartbeat.drift, !drift.isEmpty else {
                rows.append([heartbeat.instance, heartbeat.active?.version ?? "-", "-", "-", "-", "-",
                             heartbeat.drift == nil ? "not reported" : "no predictions yet"])
                continue
            }
            for version in drift {
                guard let samples = version.baselineSamples else {
                    rows.append([heartbeat.instance, version.version, "-", "-", "\(version.windowEvents) events", "-",
                                 "drift off (no baseline)"])
                    continue
                }
                for feature in version.features {
                    rows.append([heartbeat.instance, version.version, feature.feature.rawValue,
                                 feature.baseline, feature.window,
                                 feature.psi.map { String(format: "%.3f", $0) } ?? "-",
                                 feature.verdict?.rawValue ?? "warming up (\(version.windowEvents) events)"])
                }
                rows.append([heartbeat.instance, version.version, "[UNK] share",
                             DriftDescription.percent(version.baselineUnknownTokenRate),
                             DriftDescription.percent(version.windowUnknownTokenRate), "-",
                             "baseline \(samples) texts, window \(version.windowEvents) events"])
            }
        }
        if instances.isEmpty { return TextTable.render(rows) + "\n(no live instances)" }
        return TextTable.render(rows)
    }

    static func json(_ instances: [InstanceHeartbeat]) throws -> String {
        struct Row: Encodable {
            let instance: String
            let drift: VersionDrift
        }
        let rows = instances.flatMap { heartbeat in (heartbeat.drift ?? []).map { Row(instance: heartbeat.instance, drift: $0) } }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(rows), as: UTF8.self)
    }
}

/// How drift reads in `publish`, `list` and `status`.
enum DriftDescription {
    static func baseline(_ baseline: DriftBaseline?) -> String {
        guard let baseline else { return "drift baseline: none (drift is off for this version; publish with --baseline)" }
        return "drift baseline: \(baseline.samples) texts of \(baseline.source) (sha256 \(baseline.sourceSHA256.prefix(12))…), "
            + "labels \(zip(baseline.labels, baseline.labelCounts).map { "\($0) \($1)" }.joined(separator: ", ")), "
            + "[UNK] share \(percent(baseline.unknownTokenRate))"
    }

    /// The worst feature per serving version, for the status table: `v2 0.031 stable`, `v2 off`.
    static func summary(_ drift: [VersionDrift]?) -> String {
        guard let drift, !drift.isEmpty else { return "-" }
        return drift.map { version in
            guard version.baselineSamples != nil else { return "\(version.version) off" }
            guard let worst = version.features.filter({ $0.psi != nil }).max(by: { $0.psi ?? 0 < $1.psi ?? 0 }),
                  let psi = worst.psi else { return "\(version.version) warming up" }
            return "\(version.version) \(worst.feature.rawValue) \(String(format: "%.3f", psi)) \(worst.verdict?.rawValue ?? "")"
        }.joined(separator: "; ")
    }

    static func percent(_ share: Double?) -> String {
        guard let share else { return "-" }
        return String(format: "%.2f%%", share * 100)
    }
}
