import Foundation
import KafkaTestSupport
#if canImport(Glibc)
import Glibc
#endif

/// A network namespace (iproute2's `ip netns`) joined to the host by two veth pairs: the Kafka link, which a
/// fault test cuts and restores, and a probe link, which stays up so the test can read the status server of a
/// service inside while the Kafka link is down. Nothing else connects the namespace: no default route, so with
/// the Kafka link down the broker (listening on ``hostKafkaAddress``) is unreachable from inside.
///
/// Needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN). The namespace and the links are removed by ``remove()``, and by a
/// shell watchdog holding a pipe from this process if the test process dies first (as ``TansuProcess`` does
/// for its broker): no test run leaves a namespace behind.
final class NetworkNamespace: Sendable {
    let name: String
    /// The host's end of the Kafka link: a broker listening here is reachable from the namespace while the link is up.
    let hostKafkaAddress: String
    /// The namespace's end of the probe link: a status server bound here is reachable from the host.
    let probeAddress: String
    private let hostKafkaLink: String
    private let hostProbeLink: String
    private let watchdog: Process
    private let lifeline: Pipe

    /// Why namespaces cannot be used here, or `nil` when a trial namespace with its veth pairs could be made.
    /// Written to stderr once when they cannot, as the skip's trait can only give a fixed comment.
    static let unavailableReason: String? = {
        let reason: String?
        if geteuid() != 0 {
            reason = "not root (euid \(geteuid()))"
        } else if ipTool == nil {
            reason = "no iproute2 `ip` in /usr/sbin, /sbin, /usr/bin or /bin"
        } else {
            do {
                try NetworkNamespace().remove()
                reason = nil
            } catch {
                reason = "a trial namespace with veth pairs failed: \(error)"
            }
        }
        if let reason {
            FileHandle.standardError.write(Data("[NetworkNamespace] network namespace tests skipped: \(reason)\n".utf8))
        }
        return reason
    }()

    static var isAvailable: Bool { unavailableReason == nil }

    private static let ipTool: String? = ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"]
        .first { FileManager.default.isExecutableFile(atPath: $0) }

    /// Creates the namespace and both links, up, on a random pair of /30 subnets of 10.200.0.0/13.
    init() throws {
        guard let ip = Self.ipTool else { throw TestFailure("iproute2's ip is not installed") }
        let tag = String(UInt32.random(in: 0..<0xFF_FFFF), radix: 16)
        name = "minirbt-\(tag)"
        // Interface names stay below the kernel's 15 characters.
        hostKafkaLink = "mrk\(tag)h"
        hostProbeLink = "mrp\(tag)h"
        let (kafkaInside, probeInside) = ("mrk\(tag)n", "mrp\(tag)n")
        let subnet = "10.\(Int.random(in: 200...207)).\(Int.random(in: 0...255))"
        let block = Int.random(in: 0...31) * 8
        hostKafkaAddress = "\(subnet).\(block + 1)"
        let kafkaInsideAddress = "\(subnet).\(block + 2)"
        let hostProbeAddress = "\(subnet).\(block + 5)"
        probeAddress = "\(subnet).\(block + 6)"

        // The watchdog first, so that whatever the steps below create is removed even if one of them fails.
        watchdog = Process()
        watchdog.executableURL = URL(fileURLWithPath: "/bin/sh")
        watchdog.arguments = ["-c", """
            cat >/dev/null
            "$0" link del "$2" 2>/dev/null
            "$0" link del "$3" 2>/dev/null
            "$0" netns del "$1" 2>/dev/null
            exit 0
            """, ip, name, hostKafkaLink, hostProbeLink]
        lifeline = Pipe()
        watchdog.standardInput = lifeline
        watchdog.standardOutput = FileHandle.nullDevice
        watchdog.standardError = FileHandle.nullDevice
        try watchdog.run()
        do {
            try Self.ip(["netns", "add", name])
            try Self.ip(["-n", name, "link", "set", "lo", "up"])
            for (host, inside, hostAddress, insideAddress) in [
                (hostKafkaLink, kafkaInside, hostKafkaAddress, kafkaInsideAddress),
                (hostProbeLink, probeInside, hostProbeAddress, probeAddress),
            ] {
                try Self.ip(["link", "add", host, "type", "veth", "peer", "name", inside])
                try Self.ip(["link", "set", inside, "netns", name])
                try Self.ip(["addr", "add", "\(hostAddress)/30", "dev", host])
                try Self.ip(["link", "set", host, "up"])
                try Self.ip(["-n", name, "addr", "add", "\(insideAddress)/30", "dev", inside])
                try Self.ip(["-n", name, "link", "set", inside, "up"])
            }
        } catch {
            remove()
            throw error
        }
    }

    /// Cuts the Kafka link at the host's end: packets from the namespace to the broker are dropped silently
    /// (connections time out, nothing is refused), as in a network partition. The broker stays reachable from
    /// the host (its address is local), and the probe link stays up.
    func cutKafkaLink() throws { try Self.ip(["link", "set", hostKafkaLink, "down"]) }

    func restoreKafkaLink() throws { try Self.ip(["link", "set", hostKafkaLink, "up"]) }

    /// `ip netns exec <name> executable arguments…`: the command line of a program run inside the namespace.
    func command(_ executable: URL, _ arguments: [String]) -> (executable: URL, arguments: [String]) {
        (URL(fileURLWithPath: Self.ipTool ?? "/usr/sbin/ip"), ["netns", "exec", name, executable.path] + arguments)
    }

    /// Removes the links and the namespace (the watchdog does it) and waits until they are gone. Never
    /// throws: for `defer`. Processes still inside keep the namespace alive until they end, unnamed.
    func remove() {
        try? lifeline.fileHandleForWriting.close()
        watchdog.waitUntilExit()
    }

    private static func ip(_ arguments: [String]) throws {
        guard let tool = ipTool else { throw TestFailure("iproute2's ip is not installed") }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: tool)
        process.arguments = arguments
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        let message = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw TestFailure("ip \(arguments.joined(separator: " ")) failed (\(process.terminationStatus)): "
                              + message.trimmingCharacters(in: .whitespacesAndNewlines))
        }
    }
}
