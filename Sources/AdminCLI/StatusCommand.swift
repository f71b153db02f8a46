import ArgumentParser
import Foundation
import ModelControl

struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show the live minirbt-stream instances: partitions, versions, errors, throughput, lag, drift.")

    @Option(help: "Only instances of this deployment.")
    var deployment: String?

    @Flag(help: "Include instances whose last heartbeat is older than three intervals.")
    var all = false

    @OptionGroup var cluster: ClusterOptions

    func run() async throws {
        let watcher = FleetWatcher(kafka: try cluster.kafka(), topic: cluster.statusTopic, logger: AdminLog.logger)
        let fleet = try await watcher.snapshot()
        let now = Date()
        let instances = all
            ? fleet.latest.values.filter { deployment == nil || $0.deployment == deployment }.sorted { $0.instance < $1.instance }
            : fleet.live(at: now, deployment: deployment)
        print(Self.table(instances, now: now))
    }

    static func table(_ instances: [InstanceHeartbeat], now: Date) -> String {
        var rows = [["INSTANCE", "DEPLOYMENT", "PARTITIONS", "ACTIVE", "CANDIDATE", "LOADING", "EVENTS/S", "LAG", "AGREEMENT", "DRIFT", "SEEN", "LAST ERROR"]]
        for heartbeat in instances {
            let candidate = heartbeat.candidate.map { "\($0) (\(heartbeat.mode)\(heartbeat.canaryPercent.map { " \($0)%" } ?? ""))" }
            rows.append([heartbeat.instance, heartbeat.deployment,
                         heartbeat.assignedPartitions.isEmpty ? "-" : heartbeat.assignedPartitions.joined(separator: ","),
                         heartbeat.active?.description ?? "-", candidate ?? "-", heartbeat.loading?.description ?? "-",
                         String(format: "%.1f", heartbeat.eventsPerSecond), heartbeat.lag.map(String.init) ?? "-",
                         agreement(heartbeat.shadow), DriftDescription.summary(heartbeat.drift),
                         "\(Int(now.timeIntervalSince(heartbeat.at)))s ago", heartbeat.lastError ?? "-"])
        }
        if instances.isEmpty { return TextTable.render(rows) + "\n(no live instances)" }
        return TextTable.render(rows)
    }

    /// The shadow verdict cell: `97.3%/766,Δ0.012` (share of compared events with the candidate's label
    /// equal to the primary's, events compared, mean |top score difference|); `-` outside shadow mode.
    static func agreement(_ shadow: ShadowComparison?) -> String {
        guard let shadow else { return "-" }
        guard let agreement = shadow.agreement else { return "0/0" }
        return String(format: "%.1f%%/%d,Δ%.3f", agreement * 100, shadow.compared, shadow.meanScoreDifference)
    }
}
