import CRdKafka
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Facts about the librdkafka actually loaded at run time (which may differ from the headers built against).
public enum KafkaLibrary {
    /// `rd_kafka_version_str()`, e.g. "2.8.0".
    public static var version: String { String(cString: rd_kafka_version_str()) }

    /// `rd_kafka_version()` as (major, minor, patch), for minimum-version checks.
    public static var versionComponents: (major: Int, minor: Int, patch: Int) {
        let raw = Int(rd_kafka_version())  // 0xMMmmrrpp
        return ((raw >> 24) & 0xff, (raw >> 16) & 0xff, (raw >> 8) & 0xff)
    }

    /// Which kind of client `property` applies to, as the loaded librdkafka's own property table says
    /// (the C/P column of its CONFIGURATION.md). Unknown keys count as `.both`, so librdkafka itself
    /// reports them.
    public static func scope(ofProperty property: String) -> PropertyScope {
        propertyScopes[property] ?? .both
    }

    /// Whether the loaded librdkafka has a property of this name. When its table cannot be read every name
    /// counts as known, so librdkafka itself judges.
    public static func isKnownProperty(_ property: String) -> Bool {
        propertyScopes.isEmpty || propertyScopes[property] != nil
    }

    private static let propertyScopes: [String: PropertyScope] = {
        var buffer: UnsafeMutablePointer<CChar>?
        var size = 0
        guard let stream = open_memstream(&buffer, &size) else { return [:] }
        rd_kafka_conf_properties_show(stream)
        fclose(stream)
        defer { free(buffer) }
        guard let buffer else { return [:] }
        var scopes: [String: PropertyScope] = [:]
        // Rows look like "fetch.wait.max.ms    |  C  | 0 .. 300000 | ...".
        for line in String(cString: buffer).split(separator: "\n") {
            let cells = line.split(separator: "|", maxSplits: 2, omittingEmptySubsequences: false)
            guard cells.count == 3 else { continue }
            let name = cells[0].trimmingCharacters(in: " ")
            let scope: PropertyScope? = switch cells[1].trimmingCharacters(in: " ") {
            case "C": .consumer
            case "P": .producer
            case "*": .both
            default: nil
            }
            // Topic-level rows repeat some global names; a key either side uses counts for both.
            if let scope, !name.isEmpty {
                scopes[name] = scopes[name].map { $0 == scope ? scope : .both } ?? scope
            }
        }
        return scopes
    }()
}

/// The kinds of librdkafka client a configuration property applies to.
public enum PropertyScope: Sendable, Equatable {
    case both, consumer, producer
}

extension Substring {
    fileprivate func trimmingCharacters(in set: Character) -> String {
        String(drop { $0 == set }.reversed().drop { $0 == set }.reversed())
    }
}
