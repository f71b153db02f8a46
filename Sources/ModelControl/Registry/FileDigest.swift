import Crypto
import Foundation
import Glibc

/// SHA-256 of files, and the reads and copies behind it. Only regular files are read: a symbolic link, a
/// device (`/dev/zero` never ends), a FIFO (blocks) or a directory is refused before any byte is read.
enum FileDigest {
    static let chunkSize = 4 << 20

    /// Why a file could not be read as a regular file.
    enum Failure: Error {
        case missing
        /// A symbolic link (when links are not followed) or a special file; `kind` says which.
        case notRegular(kind: String)
        /// Size, modification time or inode changed between the start and the end of the read.
        case changedWhileReading
        case io(operation: String, reason: String)
    }

    /// An open regular file and its status at opening.
    struct OpenFile {
        let descriptor: Int32
        let status: stat

        /// - Parameter followLinks: false for bundle files, which must be regular files themselves.
        init(path: String, followLinks: Bool) throws(Failure) {
            // O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused right after.
            let flags = O_RDONLY | O_NONBLOCK | O_CLOEXEC | (followLinks ? 0 : O_NOFOLLOW)
            let descriptor = open(path, flags)
            guard descriptor >= 0 else {
                let code = errno
                if code == ENOENT { throw .missing }
                if code == ELOOP { throw .notRegular(kind: "a symbolic link") }
                throw .io(operation: "opening", reason: String(cString: strerror(code)))
            }
            var status = stat()
            guard fstat(descriptor, &status) == 0 else {
                let reason = String(cString: strerror(errno))
                Glibc.close(descriptor)
                throw .io(operation: "inspecting", reason: reason)
            }
            guard status.st_mode & S_IFMT == S_IFREG else {
                Glibc.close(descriptor)
                throw .notRegular(kind: FileDigest.kind(of: status.st_mode))
            }
            self.descriptor = descriptor
            self.status = status
        }

        func close() { _ = Glibc.close(descriptor) }

        var size: Int64 { Int64(status.st_size) }

        /// Reads the whole file into memory, handing each chunk to `consume` as well; fails if the file
        /// is not the same before and after (so the bytes returned are one consistent version of it).
        func readAll(consume: (UnsafeRawBufferPointer) -> Void = { _ in }) throws(Failure) -> Data {
            guard let expected = Int(exactly: status.st_size) else { throw .changedWhileReading }
            var data = Data(count: expected)
            // `withUnsafeMutableBytes` rethrows untyped errors; carry the typed one out by hand.
            let failure: Failure? = data.withUnsafeMutableBytes { buffer in
                do throws(Failure) {
                    try readChunks(expected: expected, into: { filled, count in
                        UnsafeMutableRawBufferPointer(rebasing: buffer[filled..<(filled + count)])
                    }, consume: consume)
                    return nil
                } catch {
                    return error
                }
            }
            if let failure { throw failure }
            return data
        }

        /// Streams the file through `consume` in chunks without keeping it, with the same consistency check.
        func stream(consume: (UnsafeRawBufferPointer) -> Void) throws(Failure) {
            guard let expected = Int(exactly: status.st_size) else { throw .changedWhileReading }
            let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: max(1, min(FileDigest.chunkSize, expected)), alignment: 16)
            defer { chunk.deallocate() }
            try readChunks(expected: expected, into: { _, count in
                UnsafeMutableRawBufferPointer(rebasing: chunk[0..<min(count, chunk.count)])
            }, consume: consume)
        }

        /// `destination(filled, wanted)` gives the buffer the next read fills.
        private func readChunks(expected: Int, into destination: (Int, Int) -> UnsafeMutableRawBufferPointer,
                                consume: (UnsafeRawBufferPointer) -> Void) throws(Failure) {
            var filled = 0
            while filled < expected {
                let target = destination(filled, min(FileDigest.chunkSize, expected - filled))
                guard let base = target.baseAddress else { break }
                let count = read(descriptor, base, target.count)
                if count < 0 {
                    if errno == EINTR { continue }
                    throw .io(operation: "reading", reason: String(cString: strerror(errno)))
                }
                if count == 0 { break }
                consume(UnsafeRawBufferPointer(start: base, count: count))
                filled += count
            }
            // Shrunk (short read), grew (a byte past the end), or rewritten (status moved on): not one version.
            var extra: UInt8 = 0
            let grew = read(descriptor, &extra, 1) > 0
            var after = stat()
            guard filled == expected, !grew, fstat(descriptor, &after) == 0, Self.sameVersion(status, after) else {
                throw .changedWhileReading
            }
        }

        static func sameVersion(_ a: stat, _ b: stat) -> Bool {
            a.st_dev == b.st_dev && a.st_ino == b.st_ino && a.st_size == b.st_size
                && a.st_mtim.tv_sec == b.st_mtim.tv_sec && a.st_mtim.tv_nsec == b.st_mtim.tv_nsec
                && a.st_ctim.tv_sec == b.st_ctim.tv_sec && a.st_ctim.tv_nsec == b.st_ctim.tv_nsec
        }
    }

    static func kind(of mode: mode_t) -> String {
        switch mode & S_IFMT {
        case S_IFLNK: return "a symbolic link"
        case S_IFDIR: return "a directory"
        case S_IFCHR: return "a character device"
        case S_IFBLK: return "a block device"
        case S_IFIFO: return "a FIFO"
        case S_IFSOCK: return "a socket"
        default: return "not a regular file"
        }
    }

    /// Hex SHA-256 and size of the regular file at `url` (a symbolic link is refused, not followed).
    static func sha256(of url: URL) throws(RegistryError) -> (hex: String, size: Int64) {
        do throws(Failure) {
            let file = try OpenFile(path: url.path, followLinks: false)
            defer { file.close() }
            var hasher = SHA256()
            try file.stream { hasher.update(bufferPointer: $0) }
            return (hex(hasher.finalize()), file.size)
        } catch {
            throw registryError(error, path: url.path)
        }
    }

    /// Copies the bytes of `source` (following symbolic links, as a checkpoint directory such as an HF
    /// cache snapshot links its blobs) into a new regular file at `destination`. The target must be a
    /// regular file. The destination must not exist.
    static func copyRegularFile(from source: URL, to destination: URL) throws(RegistryError) {
        let data: Data
        do throws(Failure) {
            let file = try OpenFile(path: source.path, followLinks: true)
            defer { file.close() }
            data = try file.readAll()
        } catch {
            throw registryError(error, path: source.path)
        }
        do {
            try data.write(to: destination, options: .withoutOverwriting)
        } catch {
            throw .io(operation: "writing", path: destination.path, reason: "\(error.localizedDescription)")
        }
    }

    static func registryError(_ failure: Failure, path: String) -> RegistryError {
        switch failure {
        case .missing: return .io(operation: "opening", path: path, reason: "no such file")
        case .notRegular(let kind): return .io(operation: "reading", path: path, reason: "\(kind), expected a regular file")
        case .changedWhileReading: return .io(operation: "reading", path: path, reason: "the file changed while it was read")
        case let .io(operation, reason): return .io(operation: operation, path: path, reason: reason)
        }
    }

    static func hex(_ digest: some Sequence<UInt8>) -> String {
        digest.map { byte in
            let text = String(byte, radix: 16)
            return byte < 16 ? "0" + text : text
        }.joined()
    }
}
