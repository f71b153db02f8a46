import Foundation
import Kafka
import Logging
import ModelControl
import Timeouts

/// Reads the status topic: a snapshot of the fleet, or a wait until the fleet applied a control message.
struct FleetWatcher {
    let kafka: KafkaConfiguration
    let topic: String
    let logger: Logger

    /// The latest heartbeat of every instance that ever reported.
    func snapshot() async throws -> FleetStatus {
        try await withFollower { follower in
            var fleet = FleetStatus()
            for record in try await follower.readToEnd() { Self.decode(record).map { fleet.record($0) } }
            return fleet
        }
    }

    /// Every heartbeat still on the status topic, in topic order (after compaction: the latest per instance).
    func heartbeats() async throws -> [InstanceHeartbeat] {
        try await withFollower { try await $0.readToEnd().compactMap(Self.decode) }
    }

    /// Returns when every live instance of `deployment` applied `sequence` (or a later message); throws
    /// when one reports that `sequence` failed or that it rejected `record` (the message's
    /// `controlRecordDigest`), or after `timeout`.
    func waitUntilApplied(deployment: String, sequence: Int64, record: String, timeout: Duration,
                          progress: @escaping @Sendable (String) -> Void) async throws -> [InstanceHeartbeat] {
        try await withFollower { follower in
            var fleet = FleetStatus()
            for record in try await follower.readToEnd() { Self.decode(record).map { fleet.record($0) } }
            let initial = fleet
            let waited = try await withTimeout(timeout) { () async throws -> [InstanceHeartbeat]? in
                var fleet = initial
                if let done = try Self.evaluate(fleet, deployment: deployment, sequence: sequence, record: record) { return done }
                for try await event in follower.events {
                    guard case .record(let status) = event, let heartbeat = Self.decode(status) else { continue }
                    fleet.record(heartbeat)
                    if heartbeat.deployment == deployment {
                        progress("\(heartbeat.instance): active \(heartbeat.active?.description ?? "-")"
                                 + (heartbeat.loading.map { ", loading \($0)" } ?? ""))
                    }
                    if let done = try Self.evaluate(fleet, deployment: deployment, sequence: sequence, record: record) { return done }
                }
                return nil
            }
            guard let done = waited ?? nil else {
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

    /// Runs `body` with a follower of the status topic (created if absent), closed afterwards either way.
    private func withFollower<Value>(_ body: (TopicFollower) async throws -> Value) async throws -> Value {
        let admin = try KafkaAdmin(configuration: kafka, logger: logger)
        try await ControlTopics.ensure(topic, admin: admin)
        let follower = try TopicFollower(topic: topic, kafka: kafka, logger: logger)
        do {
            let value = try await body(follower)
            await follower.close()
            return value
        } catch {
            await follower.close()
            throw error
        }
    }

    static func decode(_ record: ConsumerRecord) -> InstanceHeartbeat? {
        guard let value = record.value else { return nil }
        return try? JSONDecoder.control.decode(InstanceHeartbeat.self, from: Data(value))
    }
}
