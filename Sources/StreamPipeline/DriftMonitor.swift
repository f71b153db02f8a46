import CoreMetrics
import DequeModule
import ModelControl
import Synchronization

/// The sliding window live drift is measured over.
public struct DriftSettings: Sendable, Equatable {
    /// Most recent predictions kept per version.
    public var windowEvents = 1000
    /// Predictions older than this leave the window, however few remain.
    public var windowDuration = Duration.seconds(600)
    /// The PSI is reported once the window holds this many predictions: fewer give a noisy index
    /// (about (bins − 1) / events even without drift).
    public var minimumEvents = 200

    public init() {}
}

/// Keeps, per serving version, a sliding window of what the model answered, and compares it with the
/// version's baseline (``DriftBaseline``, from its manifest): `minirbt_drift_psi{version,feature}` and the
/// drift part of heartbeats. Fed by the shards after every batch; thread-safe.
public final class DriftMonitor: Sendable {
    public let settings: DriftSettings
    private let factory: any MetricsFactory
    private let windows = Mutex<[String: Window]>([:])
    /// Versions whose gauges are exported, so that a version leaving the window loses its series.
    private let exported = Mutex<[String: Set<DriftBaseline.Feature>]>([:])

    private struct Window {
        var baseline: DriftBaseline?
        var entries = Deque<(at: ContinuousClock.Instant, observation: DriftBaseline.Observation)>()
    }

    public init(settings: DriftSettings = DriftSettings(), factory: (any MetricsFactory)? = nil) {
        self.settings = settings
        self.factory = factory ?? MetricsSystem.factory
    }

    /// Adds one batch of `model`'s predictions to its version's window.
    func observe(_ predictions: [Prediction], of model: LoadedModel, now: ContinuousClock.Instant = .now) {
        observe(predictions, version: model.identity.version, baseline: model.baseline, now: now)
    }

    func observe(_ predictions: [Prediction], version: String, baseline: DriftBaseline?, now: ContinuousClock.Instant) {
        guard !predictions.isEmpty, settings.windowEvents > 0 else { return }
        windows.withLock { windows in
            // Mutated in place through the subscript: a copy out and back would copy the whole window.
            windows[version, default: Window()].baseline = baseline
            for prediction in predictions {
                windows[version, default: Window()].entries.append((now, DriftBaseline.Observation(
                    label: prediction.label, score: prediction.score.map(Double.init),
                    tokens: prediction.tokens, unknownTokens: prediction.unknownTokens)))
            }
            Self.evict(&windows[version, default: Window()], settings: settings, now: now)
        }
    }

    /// Forgets the windows of versions that no longer serve (replaced by a rollout), so heartbeats and
    /// gauges describe only what answers now.
    public func retain(versions: Set<String>) {
        windows.withLock { windows in windows = windows.filter { versions.contains($0.key) } }
    }

    /// The drift of every version with predictions in its window, by version; updates the gauges.
    public func reports(now: ContinuousClock.Instant = .now) -> [VersionDrift] {
        let snapshot = windows.withLock { windows in
            for version in Array(windows.keys) {
                guard var window = windows[version] else { continue }
                Self.evict(&window, settings: settings, now: now)
                windows[version] = window.entries.isEmpty ? nil : window
            }
            return windows.map { ($0.key, $0.value.baseline, $0.value.entries.map { $0.observation }) }
        }
        let reports = snapshot.map { version, baseline, observations in
            VersionDrift.compare(observations, version: version, baseline: baseline, minimumEvents: settings.minimumEvents)
        }.sorted { $0.version < $1.version }
        export(reports)
        return reports
    }

    private static func evict(_ window: inout Window, settings: DriftSettings, now: ContinuousClock.Instant) {
        while window.entries.count > settings.windowEvents { window.entries.removeFirst() }
        while let first = window.entries.first, now - first.at > settings.windowDuration { window.entries.removeFirst() }
    }

    private func export(_ reports: [VersionDrift]) {
        exported.withLock { exported in
            var now: [String: Set<DriftBaseline.Feature>] = [:]
            for report in reports {
                for feature in report.features {
                    guard let psi = feature.psi else { continue }
                    gauge(report.version, feature.feature).record(psi)
                    now[report.version, default: []].insert(feature.feature)
                }
            }
            // A version that left the window (replaced), or a window back under the minimum, has no index.
            for (version, features) in exported {
                for feature in features.subtracting(now[version] ?? []) { gauge(version, feature).destroy() }
            }
            exported = now
        }
    }

    private func gauge(_ version: String, _ feature: DriftBaseline.Feature) -> Gauge {
        Gauge(label: "minirbt_drift_psi", dimensions: [("version", version), ("feature", feature.rawValue)], factory: factory)
    }
}
