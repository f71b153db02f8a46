import Foundation

/// Entry point for reading a weight file whose format is not known in advance.
public enum WeightFile {
    /// Reads all floating-point tensors of a weight file, widened to float32.
    ///
    /// The format is chosen by content: a zip archive or a pickle is a `torch.save` checkpoint
    /// (`pytorch_model.bin`), a length-prefixed JSON header is safetensors. When the content is
    /// ambiguous (typically because it is damaged) the extension decides, so the error comes from the
    /// reader of the format the file claims to be.
    public static func load(_ url: URL) throws -> [String: Tensor] {
        try decode(contents(of: url), fileName: url.lastPathComponent)
    }

    /// The same for bytes already read (and, in a registry, verified): the tensors come from exactly these
    /// bytes. `fileName` labels errors and, through its extension, decides an ambiguous format.
    public static func decode(_ data: Data, fileName: String) throws -> [String: Tensor] {
        switch Format(sniffing: data) ?? Format(pathExtension: (fileName as NSString).pathExtension) {
        case .safeTensors?:
            return try SafeTensors.decode(data, fileName: fileName)
        case .torch?:
            return try PyTorchCheckpoint.decode(data, fileName: fileName)
        case nil:
            throw WeightFileError.unrecognizedFormat(file: fileName, leadingBytes: Array(data.prefix(8)))
        }
    }

    private enum Format {
        case safeTensors, torch

        init?(sniffing data: Data) {
            let bytes = Array(data.prefix(9))
            // A safetensors header length can begin with any byte, 0x80 included, so its JSON brace decides
            // first; a pickle's PROTO opcode is followed by a protocol number torch actually writes (2...5).
            if bytes.count == 9, bytes[8] == UInt8(ascii: "{") {
                self = .safeTensors
            } else if bytes.starts(with: ZipArchive.localHeaderMagic)
                        || (bytes.count >= 2 && bytes[0] == PickleMachine.protoOpcode && (2...5).contains(bytes[1])) {
                self = .torch
            } else {
                return nil
            }
        }

        init?(pathExtension: String) {
            switch pathExtension.lowercased() {
            case "safetensors": self = .safeTensors
            case "bin", "pt", "pth": self = .torch
            default: return nil
            }
        }
    }

    /// The whole file, memory-mapped so multi-hundred-megabyte checkpoints are not copied before parsing.
    static func contents(of url: URL) throws -> Data {
        do {
            return try Data(contentsOf: url, options: .alwaysMapped)
        } catch {
            throw WeightFileError.unreadable(file: url.lastPathComponent, reason: error.localizedDescription)
        }
    }
}
