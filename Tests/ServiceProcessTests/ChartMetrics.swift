import Foundation
import KafkaTestSupport

/// The metrics the Helm chart's dashboard and PrometheusRule query, and whether a running replica exports
/// them. A series exists only in the mode that produces it, so each mode is checked by a test whose replica
/// runs in it.
enum ChartMetrics {
    /// What a replica must be doing for a queried series to exist.
    enum Mode: CustomStringConvertible {
        /// Any replica that has served a version published with a baseline (drift) and dead-lettered an event.
        case serving
        /// Shadowing a candidate (`deploy --shadow`): the agreement counts and gauges.
        case shadow
        /// Running a teacher lane (`--teacher`, with `--soft-label-topic` for the soft-label counts).
        case teacher

        var description: String {
            switch self {
            case .serving: "serving"
            case .shadow: "shadow"
            case .teacher: "teacher"
            }
        }

        /// The mode whose replicas export `name`.
        init(of name: String) {
            if name.hasPrefix("minirbt_teacher_") || name.hasPrefix("minirbt_soft_labels_") {
                self = .teacher
            } else if name.hasPrefix("minirbt_shadow_") && name != "minirbt_shadow_failures_total" {
                // Shadow failures are counted from start; the comparisons only while shadowing.
                self = .shadow
            } else {
                self = .serving
            }
        }
    }

    /// Metric names (histograms by their `_bucket`/`_sum`/`_count` series) the dashboard JSON and the
    /// PrometheusRule template query, in `mode`.
    static func queried(_ mode: Mode) throws -> Set<String> {
        let chart = E2EFixtures.repositoryRoot.appendingPathComponent("helm/minirbt-stream")
        var names = Set<String>()
        for file in ["dashboards/minirbt-stream.json", "templates/prometheusrule.yaml"] {
            let text = try String(contentsOf: chart.appendingPathComponent(file), encoding: .utf8)
            let pattern = try Regex("minirbt_[a-z0-9_]+")
            names.formUnion(text.matches(of: pattern).map { String(text[$0.range]) })
        }
        return names.filter { Mode(of: $0) == mode }
    }

    /// Sample names in the `/metrics` of the replica on `port`.
    static func exported(port: UInt16) throws -> Set<String> {
        guard let response = Loopback.httpStatus(port: port, path: "/metrics"), response.code == 200 else {
            throw TestFailure("GET /metrics on port \(port) did not answer 200")
        }
        return Set(response.body.split(separator: "\n").compactMap { line -> String? in
            guard !line.hasPrefix("#") else { return nil }
            return line.split(whereSeparator: { $0 == "{" || $0 == " " }).first.map(String.init)
        })
    }

    /// The names queried in `mode` that the replica on `port` does not export, after checking that the chart
    /// queries `expected` in that mode (so an empty answer means something).
    static func missing(_ mode: Mode, port: UInt16, expected: Set<String>) throws -> [String] {
        let queried = try queried(mode)
        guard expected.isSubset(of: queried) else {
            throw TestFailure("the chart no longer queries \(expected.subtracting(queried).sorted()) in \(mode) mode")
        }
        return queried.subtracting(try exported(port: port)).sorted()
    }
}
