import Foundation

/// Reader for the safetensors format: an 8-byte little-endian header length, a JSON header mapping each
/// tensor name to `{dtype, shape, data_offsets}` (plus an optional `__metadata__` object), then the data
/// section the offsets index into.
///
/// Every declared size and offset is validated against the file before any tensor is converted (with
/// checked arithmetic, and no two tensors may share bytes), so a truncated or hostile file yields a
/// `WeightFileError` rather than a crash or an allocation beyond twice the file's size.
public enum SafeTensors {
    /// The format's own bound on the header; anything larger is corruption, not a big model.
    static let maximumHeaderSize = 100 * 1024 * 1024

    /// Reads every floating-point tensor (F32, F16, BF16 widened exactly; F64 rounded to nearest).
    /// Integer and bool tensors are validated and then skipped: they are buffers such as `position_ids`.
    public static func load(_ url: URL) throws -> [String: Tensor] {
        try decode(WeightFile.contents(of: url), fileName: url.lastPathComponent)
    }

    /// Decodes an in-memory safetensors image; `fileName` only labels errors.
    static func decode(_ data: Data, fileName: String) throws -> [String: Tensor] {
        let layouts = try parseHeader(data, fileName: fileName)
        return data.withUnsafeBytes { file in
            let dataSection = UnsafeRawBufferPointer(rebasing: file[(8 + layouts.headerSize)...])
            var tensors: [String: Tensor] = [:]
            tensors.reserveCapacity(layouts.tensors.count)
            for layout in layouts.tensors where layout.elementType.isFloatingPoint {
                let values = layout.elementType.floats(in: dataSection, atByte: layout.byteRange.lowerBound,
                                                       count: layout.elementCount)
                tensors[layout.name] = Tensor(shape: layout.shape, values: values)
            }
            return tensors
        }
    }

    // MARK: - Header

    struct TensorLayout {
        var name: String
        var elementType: ElementType
        var shape: [Int]
        var elementCount: Int
        /// Relative to the start of the data section.
        var byteRange: Range<Int>
    }

    /// Parses and validates the header; on return every layout's byte range lies inside the data section.
    static func parseHeader(_ data: Data, fileName: String) throws -> (headerSize: Int, tensors: [TensorLayout]) {
        guard data.count >= 8 else {
            throw WeightFileError.truncated(file: fileName, structure: "the 8-byte header length", needed: 8,
                                            available: data.count)
        }
        let declaredHeaderSize = data.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) }
        guard declaredHeaderSize <= UInt64(maximumHeaderSize) else {
            throw WeightFileError.malformedHeader(
                file: fileName, detail: "header length \(declaredHeaderSize) exceeds the format's limit of \(maximumHeaderSize) bytes")
        }
        let headerSize = Int(declaredHeaderSize)
        guard headerSize <= data.count - 8 else {
            throw WeightFileError.truncated(file: fileName, structure: "the JSON header", needed: headerSize,
                                            available: data.count - 8)
        }
        let headerStart = data.startIndex + 8
        let json = data[headerStart..<(headerStart + headerSize)]
        let header: Header
        do {
            header = try JSONDecoder().decode(Header.self, from: json)
        } catch let error as DecodingError {
            throw WeightFileError.malformedHeader(file: fileName, detail: Self.describe(error))
        } catch {
            throw WeightFileError.malformedHeader(file: fileName, detail: "\(error)")
        }

        let dataSectionSize = data.count - 8 - headerSize
        let tensors = try header.entries.map { name, entry in
            try validate(entry, named: name, dataSectionSize: dataSectionSize, fileName: fileName)
        }
        // Tensors are converted (copied) one by one, so tensors sharing bytes would multiply the allocation
        // past the file's size; the format lays them out without overlap.
        var previous: TensorLayout?
        for layout in tensors.filter({ !$0.byteRange.isEmpty }).sorted(by: { $0.byteRange.lowerBound < $1.byteRange.lowerBound }) {
            if let previous, layout.byteRange.lowerBound < previous.byteRange.upperBound {
                throw WeightFileError.overlappingTensors(file: fileName, first: previous.name, second: layout.name)
            }
            previous = layout
        }
        return (headerSize, tensors)
    }

    private static func validate(_ entry: Header.Entry, named name: String, dataSectionSize: Int,
                                 fileName: String) throws -> TensorLayout {
        guard let elementType = ElementType(safetensorsName: entry.dtype) else {
            throw WeightFileError.unsupportedDType(file: fileName, tensor: name, dtype: entry.dtype)
        }
        guard entry.dataOffsets.count == 2 else {
            throw WeightFileError.malformedHeader(
                file: fileName, detail: "tensor '\(name)': data_offsets must be [begin, end], got \(entry.dataOffsets)")
        }
        let begin = entry.dataOffsets[0], end = entry.dataOffsets[1]
        guard begin >= 0, begin <= end else {
            throw WeightFileError.malformedHeader(
                file: fileName, detail: "tensor '\(name)': data_offsets \(entry.dataOffsets) are not an ascending pair of non-negative offsets")
        }
        guard let elementCount = checkedProduct(entry.shape) else {
            throw WeightFileError.malformedHeader(
                file: fileName, detail: "tensor '\(name)': shape \(entry.shape) has a negative dimension or overflows")
        }
        let (expectedBytes, overflow) = elementCount.multipliedReportingOverflow(by: elementType.byteSize)
        guard !overflow else {
            throw WeightFileError.malformedHeader(
                file: fileName, detail: "tensor '\(name)': shape \(entry.shape) of \(entry.dtype) overflows a byte count")
        }
        guard end <= dataSectionSize else {
            throw WeightFileError.tensorOutOfBounds(file: fileName, tensor: name, range: begin..<end,
                                                    dataSectionSize: dataSectionSize)
        }
        guard end - begin == expectedBytes else {
            throw WeightFileError.tensorSizeMismatch(file: fileName, tensor: name, shape: entry.shape, dtype: entry.dtype,
                                                     expectedBytes: expectedBytes, declaredBytes: end - begin)
        }
        return TensorLayout(name: name, elementType: elementType, shape: entry.shape, elementCount: elementCount,
                            byteRange: begin..<end)
    }

    /// The header as JSON: tensor entries keyed by name; `__metadata__` (free-form strings) is ignored.
    private struct Header: Decodable {
        struct Entry: Decodable {
            var dtype: String
            var shape: [Int]
            var dataOffsets: [Int]

            enum CodingKeys: String, CodingKey {
                case dtype, shape
                case dataOffsets = "data_offsets"
            }

            init(from decoder: any Decoder) throws {
                let container = try decoder.container(keyedBy: CodingKeys.self)
                dtype = try container.decode(String.self, forKey: .dtype)
                shape = try container.decode([Integer].self, forKey: .shape).map(\.value)
                dataOffsets = try container.decode([Integer].self, forKey: .dataOffsets).map(\.value)
            }
        }

        /// An integer that names the offending number when it is not one; Foundation's own failure for
        /// `2.5` decoded as `Int` is an uninformative "not valid JSON".
        struct Integer: Decodable {
            var value: Int

            init(from decoder: any Decoder) throws {
                let container = try decoder.singleValueContainer()
                if let integer = try? container.decode(Int.self) {
                    value = integer
                } else if let number = try? container.decode(Double.self) {
                    throw DecodingError.dataCorruptedError(in: container, debugDescription: "\(number) is not an integer")
                } else {
                    value = try container.decode(Int.self)
                }
            }
        }

        struct Name: CodingKey {
            var stringValue: String
            var intValue: Int? { nil }
            init(stringValue: String) { self.stringValue = stringValue }
            init?(intValue: Int) { nil }
        }

        var entries: [(name: String, entry: Entry)] = []

        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: Name.self)
            for key in container.allKeys where key.stringValue != "__metadata__" {
                entries.append((key.stringValue, try container.decode(Entry.self, forKey: key)))
            }
        }
    }

    private static func describe(_ error: DecodingError) -> String {
        func path(_ context: DecodingError.Context) -> String {
            let rendered = context.codingPath.reduce(into: "") { path, key in
                if let index = key.intValue {
                    path += "[\(index)]"
                } else {
                    path += (path.isEmpty ? "" : ".") + key.stringValue
                }
            }
            return rendered.isEmpty ? "top level" : rendered
        }
        switch error {
        case let .typeMismatch(type, context):
            return "at \(path(context)): expected \(type): \(context.debugDescription)"
        case let .valueNotFound(type, context):
            return "at \(path(context)): expected \(type), found null"
        case let .keyNotFound(key, context):
            return "at \(path(context)): missing key '\(key.stringValue)'"
        case let .dataCorrupted(context):
            return "at \(path(context)): \(context.debugDescription)"
        @unknown default:
            return "\(error)"
        }
    }
}

/// The product of non-negative dimensions, or nil if one is negative or the product overflows `Int`.
func checkedProduct(_ dimensions: [Int]) -> Int? {
    var product = 1
    for dimension in dimensions {
        guard dimension >= 0 else { return nil }
        let (next, overflow) = product.multipliedReportingOverflow(by: dimension)
        guard !overflow else { return nil }
        product = next
    }
    return product
}
