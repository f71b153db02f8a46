import Foundation
import Kafka
import Logging
import ModelControl

/// Reads the status topic: a snapshot of the fleet, or a wait until the fleet applied a control message.
struct FleetWatcher {
    let kafka: KafkaConfiguration
    let topic: String
    let logger: Logger

    /// The latest heartbeat of every instance that ever reported.
    func snapshot() async throws -> FleetStatus {
        let follower = try await openFollower()
        defer { Task { await follower.close() } }
        var fleet = FleetStatus()
        for record in try await follower.readToEnd() { Self.decode(record).map { fleet.record($0) } }
        return fleet
    }

    /// Every heartbeat still on the status topic, in topic order (after compaction: the latest per instance).
    func heartbeats() async throws -> [InstanceHeartbeat] {
        let follower = try await openFollower()
        let records: [ConsumerRecord]
        do {
            records = try await follower.readToEnd()
        } catch {
            await follower.close()
            throw error
        }
        await follower.close()
        return records.compactMap(Self.decode)
    }

    /// Returns when every live instance of `deployment` applied `sequence` (or a later message); throws
    /// when one reports that `sequence` failed or that it rejected `record` (the message's
    /// `controlRecordDigest`), or after `timeout`.
    func waitUntilApplied(deployment: String, sequence: Int64, record: String, timeout: Duration,
                          progress: @escaping @Sendable (String) -> Void) async throws -> [InstanceHeartbeat] {
        let follower = try await openFollower()
        defer { Task { await follower.close() } }
        var fleet = FleetStatus()
        for record in try await follower.readToEnd() { Self.decode(record).map { fleet.record($0) } }
        let initial = fleet
        let topic = topic
        return try await withThrowingTaskGroup(of: [InstanceHeartbeat]?.self) { group in
            group.addTask {
                var fleet = initial
                if let done = try Self.evaluate(fleet, deployment: deployment, sequence: sequence, record: record) { return done }
                for try await event in follower.events {
                    guard case .message(let status) = event, let heartbeat = Self.decode(status) else { continue }
                    fleet.record(heartbeat)
                    if heartbeat.deployment == deployment {
                        progress("\(heartbeat.instance): active \(heartbeat.active?.description ?? "-")"
                                 + (heartbeat.loading.map { ", loading \($0)" } ?? ""))
                    }
                    if let done = try Self.evaluate(fleet, deployment: deployment, sequence: sequence, record: record) { return done }
                }
                return nil
            }
            group.addTask {
                try await Task.sleep(for: timeout)
                return nil
            }
            defer { group.cancelAll() }
            guard let first = try await group.next(), let done = first else {
                throw AdminFailure("timed out after \(timeout) waiting for every live instance of \(deployment) on \(topic) to apply control message #\(sequence)")
            }
            return done
        }
    }

    /// `nil` while waiting; the live instances once all applied `sequence`.
    static func evaluate(_ fleet: FleetStatus, deployment: String, sequence: Int64, record: String,
                         now: Date = Date()) throws -> [InstanceHeartbeat]? {
        let live = fleet.live(at: now, deployment: deployment)
        if let failed = live.first(where: { $0.failedSequence == sequence }) {
            throw AdminFailure("\(failed.instance) failed to apply control message #\(sequence): \(failed.lastError ?? "no reason reported")")
        }
        if let rejecting = live.first(where: { $0.rejectedRecord == record }) {
            throw AdminFailure("\(rejecting.instance) rejected control message #\(sequence): \(rejecting.lastError ?? "no reason reported")"
                               + " (does --key match a public key the instances trust with --verify-key?)")
        }
        guard !live.isEmpty, live.allSatisfy({ ($0.appliedSequence ?? .min) >= sequence }) else { return nil }
        return live
    }

    private func openFollower() async throws -> TopicFollower {
        let admin = try KafkaAdmin(configuration: kafka, logger: logger)
        try await ControlTopics.ensure(topic, admin: admin)
        return try TopicFollower(topic: topic, kafka: kafka, logger: logger)
    }

    static func decode(_ record: ConsumerRecord) -> InstanceHeartbeat? {
        guard let value = record.value else { return nil }
        return try? JSONDecoder.control.decode(InstanceHeartbeat.self, from: Data(value))
    }
}
