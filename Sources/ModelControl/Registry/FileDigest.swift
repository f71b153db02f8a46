import Crypto
import Foundation

/// SHA-256 of files, read in chunks so a large weight file never sits in memory twice.
enum FileDigest {
    static let chunkSize = 4 << 20

    /// Hex SHA-256 and size of the file at `url`.
    static func sha256(of url: URL) throws(RegistryError) -> (hex: String, size: Int64) {
        let handle: FileHandle
        do {
            handle = try FileHandle(forReadingFrom: url)
        } catch {
            throw .io(operation: "opening", path: url.path, reason: "\(error.localizedDescription)")
        }
        defer { try? handle.close() }
        var hasher = SHA256()
        var size: Int64 = 0
        while true {
            let chunk: Data?
            do {
                chunk = try handle.read(upToCount: chunkSize)
            } catch {
                throw .io(operation: "reading", path: url.path, reason: "\(error.localizedDescription)")
            }
            guard let chunk, !chunk.isEmpty else { break }
            hasher.update(data: chunk)
            size += Int64(chunk.count)
        }
        return (hex(hasher.finalize()), size)
    }

    static func hex(_ digest: some Sequence<UInt8>) -> String {
        digest.map { byte in
            let text = String(byte, radix: 16)
            return byte < 16 ? "0" + text : text
        }.joined()
    }
}
