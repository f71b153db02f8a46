import CRdKafka

/// Facts about the librdkafka actually loaded at run time (which may differ from the headers built against).
public enum KafkaLibrary {
    /// `rd_kafka_version_str()`, e.g. "2.8.0".
    public static var version: String { String(cString: rd_kafka_version_str()) }

    /// `rd_kafka_version()` as (major, minor, patch), for minimum-version checks.
    public static var versionComponents: (major: Int, minor: Int, patch: Int) {
        let raw = Int(rd_kafka_version())  // 0xMMmmrrpp
        return ((raw >> 24) & 0xff, (raw >> 16) & 0xff, (raw >> 8) & 0xff)
    }
}
