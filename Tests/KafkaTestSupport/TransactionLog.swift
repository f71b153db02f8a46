import Foundation
import Glibc

/// How a record's transaction ended, as the partition's log records it.
public enum TransactionOutcome: Sendable, Equatable {
    /// Written outside any transaction.
    case notTransactional
    /// Its producer's next transaction marker on the partition is a commit.
    case committed
    /// Its producer's next transaction marker on the partition is an abort.
    case aborted
    /// No marker of its producer follows it (the transaction is still open).
    case open
}

/// Where a record sits.
public struct RecordPosition: Sendable, Hashable {
    public let topic: String
    public let partition: Int32
    public let offset: Int64

    public init(topic: String, partition: Int32, offset: Int64) {
        self.topic = topic
        self.partition = partition
        self.offset = offset
    }
}

/// The transaction outcome of every record of some topics, read from the log itself with raw Fetch requests.
///
/// A broker that filters aborted transactions hides their records from `read_committed` readers; Tansu 0.6
/// serves them. librdkafka never hands control records (the commit and abort markers) to the application,
/// so tests that must count what a `read_committed` reader of Kafka would see read the record batches here:
/// a transactional batch belongs to the transaction its producer's next marker on the partition ends.
/// Uncompressed batches only (the service's producers do not compress unless configured to).
public struct TransactionLog: Sendable {
    public private(set) var outcomes: [RecordPosition: TransactionOutcome] = [:]
    /// Markers read, by kind.
    public private(set) var commits = 0
    public private(set) var aborts = 0

    public func outcome(of position: RecordPosition) -> TransactionOutcome? { outcomes[position] }

    /// Reads every partition of `topics` (name → partition count) from offset 0 to the end, from the broker at
    /// `bootstrap` ("host:port"; the test broker is every partition's leader).
    public static func read(topics: [String: Int32], bootstrap: String = TestBroker.bootstrapServers) throws -> TransactionLog {
        let connection = try BrokerConnection(address: bootstrap)
        defer { connection.close() }
        var log = TransactionLog()
        for (topic, partitions) in topics.sorted(by: { $0.key < $1.key }) {
            for partition in 0..<partitions {
                try log.readPartition(topic: topic, partition: partition, over: connection)
            }
        }
        return log
    }

    private mutating func readPartition(topic: String, partition: Int32, over connection: BrokerConnection) throws {
        var pending: [Int64: [RecordPosition]] = [:]  // producer id → records of its transaction in progress
        var offset: Int64 = 0
        while true {
            let batches = try connection.fetch(topic: topic, partition: partition, offset: offset)
            // Tansu's high watermark is unreliable for multi-record batches: read until nothing more comes.
            guard let last = batches.last, last.lastOffset >= offset else { break }
            for batch in batches where batch.lastOffset >= offset {
                if batch.isControl {
                    guard let marker = batch.markerIsCommit else { continue }
                    marker ? (commits += 1) : (aborts += 1)
                    for position in pending.removeValue(forKey: batch.producerID) ?? [] {
                        outcomes[position] = marker ? .committed : .aborted
                    }
                    continue
                }
                for recordOffset in batch.recordOffsets where recordOffset >= offset {
                    let position = RecordPosition(topic: topic, partition: partition, offset: recordOffset)
                    if batch.isTransactional {
                        outcomes[position] = .open
                        pending[batch.producerID, default: []].append(position)
                    } else {
                        outcomes[position] = .notTransactional
                    }
                }
            }
            offset = last.lastOffset + 1
        }
    }
}

/// One record batch (magic 2) as far as transactions are concerned.
private struct RecordBatch {
    let baseOffset: Int64
    let lastOffset: Int64
    let producerID: Int64
    let isTransactional: Bool
    let isControl: Bool
    /// The offsets of the records the batch still holds (compaction may have removed some).
    let recordOffsets: [Int64]
    /// For a control batch: true for a commit marker, false for an abort, nil for an unknown control type.
    let markerIsCommit: Bool?
}

/// A blocking connection to one broker speaking just enough of the Kafka protocol for `TransactionLog`.
private final class BrokerConnection {
    private let fd: Int32
    private var correlation: Int32 = 0

    init(address: String) throws {
        let parts = address.split(separator: ",")[0].split(separator: ":")
        guard parts.count == 2, let port = UInt16(parts[1]) else { throw TestFailure("not a host:port address: \(address)") }
        var hints = addrinfo()
        hints.ai_family = AF_INET
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var found: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(String(parts[0]), String(port), &hints, &found) == 0, let info = found else {
            throw TestFailure("cannot resolve \(address)")
        }
        defer { freeaddrinfo(found) }
        fd = socket(info.pointee.ai_family, info.pointee.ai_socktype, 0)
        guard fd >= 0 else { throw TestFailure("socket() failed: errno \(errno)") }
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        _ = setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        _ = setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        guard Glibc.connect(fd, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0 else {
            let failure = errno
            Glibc.close(fd)
            throw TestFailure("cannot connect to \(address): errno \(failure)")
        }
    }

    func close() { Glibc.close(fd) }

    /// Fetch v4 (record batches, isolation level, not yet flexible) of one partition from `offset`, read
    /// uncommitted so that open and aborted transactions are included.
    func fetch(topic: String, partition: Int32, offset: Int64) throws -> [RecordBatch] {
        correlation += 1
        var request = Writer()
        request.int16(1)  // Fetch
        request.int16(4)
        request.int32(correlation)
        request.string("minirbt-transaction-log")
        request.int32(-1)  // replica id: a consumer
        request.int32(100)  // max wait ms
        request.int32(0)  // min bytes: answer at once
        request.int32(64 << 20)  // max bytes
        request.int8(0)  // read_uncommitted
        request.int32(1)
        request.string(topic)
        request.int32(1)
        request.int32(partition)
        request.int64(offset)
        request.int32(64 << 20)
        try send(request.bytes)

        var response = Reader(try receive())
        guard try response.int32() == correlation else { throw TestFailure("Fetch: unexpected correlation id") }
        _ = try response.int32()  // throttle
        var batches: [RecordBatch] = []
        for _ in 0..<(try response.count()) {
            _ = try response.string()
            for _ in 0..<(try response.count()) {
                _ = try response.int32()
                let error = try response.int16()
                guard error == 0 else { throw TestFailure("Fetch \(topic)[\(partition)] at \(offset): error code \(error)") }
                _ = try response.int64()  // high watermark
                _ = try response.int64()  // last stable offset
                for _ in 0..<(try response.count()) { _ = try response.int64(); _ = try response.int64() }
                let size = try response.int32()
                guard size > 0 else { continue }
                var records = Reader(try response.bytes(Int(size)))
                while let batch = try Self.batch(from: &records, topic: topic) { batches.append(batch) }
            }
        }
        return batches
    }

    /// The next complete batch, or nil at the end (a batch cut off by the size limit is dropped).
    private static func batch(from reader: inout Reader, topic: String) throws -> RecordBatch? {
        guard reader.remaining >= 12 else { return nil }
        let baseOffset = try reader.int64()
        let length = try reader.int32()
        guard length >= 49, reader.remaining >= Int(length) else { return nil }
        var batch = Reader(try reader.bytes(Int(length)))
        _ = try batch.int32()  // partition leader epoch
        let magic = try batch.int8()
        guard magic == 2 else { throw TestFailure("\(topic): record batch of magic \(magic), expected 2") }
        _ = try batch.int32()  // crc
        let attributes = try batch.int16()
        let lastOffsetDelta = try batch.int32()
        _ = try batch.int64()  // base timestamp
        _ = try batch.int64()  // max timestamp
        let producerID = try batch.int64()
        _ = try batch.int16()  // producer epoch
        _ = try batch.int32()  // base sequence
        let count = try batch.int32()
        let isControl = attributes & 0x20 != 0
        guard attributes & 0x07 == 0 else { throw TestFailure("\(topic): compressed record batch; TransactionLog reads uncompressed ones only") }
        var offsets: [Int64] = []
        var markerIsCommit: Bool?
        for _ in 0..<max(0, count) {
            _ = try batch.varint()  // record length
            _ = try batch.int8()  // attributes
            _ = try batch.varint()  // timestamp delta
            let offsetDelta = try batch.varint()
            let keyLength = try batch.varint()
            let key = keyLength >= 0 ? try batch.bytes(Int(keyLength)) : []
            let valueLength = try batch.varint()
            if valueLength > 0 { _ = try batch.bytes(Int(valueLength)) }
            for _ in 0..<max(0, try batch.varint()) {
                _ = try batch.bytes(Int(max(0, try batch.varint())))
                let headerValue = try batch.varint()
                if headerValue > 0 { _ = try batch.bytes(Int(headerValue)) }
            }
            offsets.append(baseOffset + offsetDelta)
            if isControl, key.count >= 4 {
                // Control record key: version (int16), type (int16: 0 abort, 1 commit).
                let type = Int16(key[2]) << 8 | Int16(key[3])
                markerIsCommit = type == 1 ? true : type == 0 ? false : nil
            }
        }
        return RecordBatch(baseOffset: baseOffset, lastOffset: baseOffset + Int64(lastOffsetDelta), producerID: producerID,
                           isTransactional: attributes & 0x10 != 0, isControl: isControl, recordOffsets: offsets,
                           markerIsCommit: markerIsCommit)
    }

    private func send(_ payload: [UInt8]) throws {
        var framed = Writer()
        framed.int32(Int32(payload.count))
        let bytes = framed.bytes + payload
        var sent = 0
        while sent < bytes.count {
            let count = bytes[sent...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            guard count > 0 else { throw TestFailure("write to the broker failed: errno \(errno)") }
            sent += count
        }
    }

    private func receive() throws -> [UInt8] {
        var size = Reader(try receive(count: 4))
        let length = try size.int32()
        guard length >= 0, length < 256 << 20 else { throw TestFailure("implausible response size \(length)") }
        return try receive(count: Int(length))
    }

    private func receive(count: Int) throws -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: count)
        var received = 0
        while received < count {
            let n = buffer[received...].withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            guard n > 0 else { throw TestFailure("read from the broker failed after \(received) of \(count) bytes: errno \(errno)") }
            received += n
        }
        return buffer
    }
}

/// Big-endian request encoding.
private struct Writer {
    var bytes: [UInt8] = []
    mutating func int8(_ value: Int8) { bytes.append(UInt8(bitPattern: value)) }
    mutating func int16(_ value: Int16) { withUnsafeBytes(of: value.bigEndian) { bytes += $0 } }
    mutating func int32(_ value: Int32) { withUnsafeBytes(of: value.bigEndian) { bytes += $0 } }
    mutating func int64(_ value: Int64) { withUnsafeBytes(of: value.bigEndian) { bytes += $0 } }
    mutating func string(_ value: String) {
        int16(Int16(value.utf8.count))
        bytes += value.utf8
    }
}

/// Big-endian response decoding that throws, never traps, on a short or malformed response.
private struct Reader {
    private let bytes: [UInt8]
    private var position = 0
    init(_ bytes: [UInt8]) { self.bytes = bytes }

    var remaining: Int { bytes.count - position }

    mutating func bytes(_ count: Int) throws -> [UInt8] {
        guard count >= 0, count <= remaining else { throw TestFailure("Kafka response: \(count) bytes wanted, \(remaining) left") }
        defer { position += count }
        return Array(bytes[position..<position + count])
    }

    private mutating func integer<T: FixedWidthInteger>(_: T.Type) throws -> T {
        try bytes(MemoryLayout<T>.size).reduce(T.zero) { $0 << 8 | T(truncatingIfNeeded: $1) }
    }

    mutating func int8() throws -> Int8 { try integer(Int8.self) }
    mutating func int16() throws -> Int16 { try integer(Int16.self) }
    mutating func int32() throws -> Int32 { try integer(Int32.self) }
    mutating func int64() throws -> Int64 { try integer(Int64.self) }
    mutating func string() throws -> String { String(decoding: try bytes(Int(max(0, try int16()))), as: UTF8.self) }
    /// An array's element count (-1, a null array, counts as empty).
    mutating func count() throws -> Int { Int(max(0, try int32())) }

    /// A zigzag-encoded variable-length integer (records' varint and varlong).
    mutating func varint() throws -> Int64 {
        var raw: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            let byte = try bytes(1)[0]
            guard shift < 64 else { throw TestFailure("Kafka response: varint too long") }
            raw |= UInt64(byte & 0x7f) << shift
            if byte & 0x80 == 0 { break }
            shift += 7
        }
        return Int64(bitPattern: raw >> 1) ^ -Int64(bitPattern: raw & 1)
    }
}
