import ArgumentParser
import Foundation
import StreamPipeline

/// Reads a file or standard input line by line as raw bytes, so invalid UTF-8 reaches the decoder (and its
/// error message) instead of failing the whole read.
struct LineReader: Sequence, IteratorProtocol {
    private let handle: FileHandle
    private var buffer: [UInt8] = []
    private var start = 0
    private var exhausted = false

    init(path: String?) throws {
        if let path, path != "-" {
            guard let handle = FileHandle(forReadingAtPath: path) else {
                throw CLIError.unreadableInput(path)
            }
            self.handle = handle
        } else {
            self.handle = .standardInput
        }
    }

    mutating func next() -> [UInt8]? {
        while true {
            if let newline = buffer[start...].firstIndex(of: UInt8(ascii: "\n")) {
                var line = Array(buffer[start..<newline])
                start = newline + 1
                if line.last == UInt8(ascii: "\r") { line.removeLast() }
                return line
            }
            if exhausted {
                guard start < buffer.count else { return nil }
                let line = Array(buffer[start...])
                start = buffer.count
                return line
            }
            buffer.removeFirst(start)
            start = 0
            let chunk = handle.readData(ofLength: 1 << 20)
            if chunk.isEmpty { exhausted = true } else { buffer.append(contentsOf: chunk) }
        }
    }
}

/// Writes JSON Lines to a file or standard output, buffered.
final class LineWriter {
    private let handle: FileHandle
    private var buffer = Data()

    init(path: String?) throws {
        if let path, path != "-" {
            // open(2) rather than FileManager.createFile, which writes a new file and renames it over `path`:
            // that replaced `--output /dev/null` (run as root) with a regular file, and a symlink with a copy.
            let descriptor = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
            guard descriptor >= 0 else { throw CLIError.unwritableOutput(path) }
            self.handle = FileHandle(fileDescriptor: descriptor, closeOnDealloc: true)
        } else {
            self.handle = .standardOutput
        }
    }

    func write(_ value: some Encodable) throws {
        buffer.append(try JSONEncoder.results.encode(value))
        buffer.append(UInt8(ascii: "\n"))
        if buffer.count > 1 << 16 { flush() }
    }

    func flush() {
        guard !buffer.isEmpty else { return }
        handle.write(buffer)
        buffer.removeAll(keepingCapacity: true)
    }

    deinit { flush() }
}

/// Where the offline commands read events and write their lines.
struct JSONLinesOptions: ParsableArguments {
    @Option(help: "JSON Lines input file ('-' for standard input).")
    var input: String = "-"

    @Option(help: "JSON Lines output file ('-' for standard output).")
    var output: String = "-"

    /// Decodes every non-blank input line as a JSON event and hands it to `body` with its 1-based line
    /// number; a line that cannot be decoded is handed over as its error, so callers keep input order.
    func forEachEvent(_ body: (Int, Result<TextEvent, EventDecodingError>) throws -> Void) throws {
        let format = EventFormat(kind: .json)
        var number = 0
        for line in try LineReader(path: input) {
            number += 1
            if line.allSatisfy({ $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") }) { continue }
            try body(number, format.decode(line))
        }
    }
}

/// The per-line error object of the offline commands: the run goes on after it.
struct LineError: Encodable {
    struct Reason: Encodable {
        var code: String
        var message: String
    }

    var line: Int
    var error: Reason

    init(line: Int, _ error: EventDecodingError) {
        self.line = line
        self.error = Reason(code: error.code.rawValue, message: error.message)
    }
}

enum CLIError: Error, CustomStringConvertible {
    case unreadableInput(String)
    case unwritableOutput(String)
    case invalidOption(String)

    var description: String {
        switch self {
        case .unreadableInput(let path): return "cannot read input file '\(path)'"
        case .unwritableOutput(let path): return "cannot create output file '\(path)'"
        case .invalidOption(let message): return message
        }
    }
}
