import Foundation

/// What a pickle may ask of the program loading it. The machine never imports or calls anything
/// itself: globals, calls (REDUCE) and persistent ids all go through the host, which decides.
protocol PickleHost {
    /// Resolves a GLOBAL / STACK_GLOBAL; throws `PickleRejection.refusedGlobal` for anything not allowed.
    func resolveGlobal(module: String, name: String) throws -> PickleValue
    /// Applies REDUCE: `callable` is whatever the pickle put on the stack, `arguments` the tuple's items.
    func call(_ callable: PickleValue, arguments: [PickleValue]) throws -> PickleValue
    /// Resolves BINPERSID.
    func persistentLoad(_ id: PickleValue) throws -> PickleValue
}

/// Host refusals, turned into `WeightFileError`s carrying the file name and the opcode's offset.
enum PickleRejection: Error {
    case refusedGlobal(module: String, name: String)
    case invalid(String)
}

/// A restricted interpreter for the pickle opcodes `torch.save` emits (protocol 2, plus the protocol 4
/// framing and memo opcodes newer Pythons write). It only builds plain data; everything with an
/// effect is delegated to a `PickleHost`.
///
/// Hostile input is bounded: reads are checked against the end of the pickle, and the stack, the memo
/// and every container have a size limit, so a corrupt pickle fails with an error instead of a crash
/// or an unbounded allocation. The machine is iterative, and containers may nest at most
/// `maximumNestingDepth` deep (a state dict needs about five), so neither building a value nor releasing
/// it (which recurses through the nesting) can overflow the call stack; a container cannot contain itself.
struct PickleMachine {
    static let protoOpcode: UInt8 = 0x80

    /// Far above what a state dict needs (a few entries per tensor), far below memory trouble.
    static let maximumStackDepth = 1 << 20
    static let maximumMemoEntries = 1 << 20
    static let maximumContainerItems = 1 << 22
    static let maximumGlobalLineLength = 256
    static let maximumNestingDepth = 100

    /// A value on the stack or in the memo with its nesting depth (0 for anything that is not a container).
    /// Lists and dicts keep their own depth, since they can grow after being pushed.
    private struct Entry {
        var value: PickleValue
        var depth: Int

        var currentDepth: Int {
            switch value {
            case let .list(list): return list.depth
            case let .dict(dict): return dict.depth
            default: return depth
            }
        }
    }

    private let reader: ByteReader
    private let fileName: String
    private var position = 0
    /// Start of the opcode being executed, for error messages.
    private var opcodeOffset = 0
    private var stack: [Entry] = []
    private var marks: [Int] = []
    private var memo: [Int: Entry] = [:]

    init(_ data: Data, fileName: String) {
        self.reader = ByteReader(data)
        self.fileName = fileName
    }

    /// Runs the pickle to its STOP opcode and returns the value it leaves.
    mutating func run(host: some PickleHost) throws -> PickleValue {
        while true {
            opcodeOffset = position
            let opcode = try readByte()
            do {
                if let result = try execute(opcode, host: host) { return result }
            } catch let rejection as PickleRejection {
                switch rejection {
                case let .refusedGlobal(module, name):
                    throw WeightFileError.refusedGlobal(file: fileName, module: module, name: name)
                case let .invalid(detail):
                    throw malformed(detail)
                }
            }
        }
    }

    /// Executes one opcode; returns the result on STOP.
    private mutating func execute(_ opcode: UInt8, host: some PickleHost) throws -> PickleValue? {
        switch opcode {
        case 0x80: // PROTO
            let version = try readByte()
            guard version <= 5 else { throw malformed("pickle protocol \(version) is newer than 5") }
        case 0x95: // FRAME: framing is advisory; the opcodes inside are read in sequence anyway.
            _ = try readInteger(byteCount: 8)
        case UInt8(ascii: "."): // STOP
            return try pop().value

        case UInt8(ascii: "N"): try push(.none)
        case 0x88: try push(.bool(true))  // NEWTRUE
        case 0x89: try push(.bool(false)) // NEWFALSE
        case UInt8(ascii: "K"): try push(.int(Int(try readInteger(byteCount: 1))))       // BININT1
        case UInt8(ascii: "M"): try push(.int(Int(try readInteger(byteCount: 2))))       // BININT2
        case UInt8(ascii: "J"): try push(.int(Int(Int32(truncatingIfNeeded: try readInteger(byteCount: 4))))) // BININT
        case 0x8A: try push(.int(try readLong(lengthBytes: 1))) // LONG1
        case 0x8B: try push(.int(try readLong(lengthBytes: 4))) // LONG4
        case UInt8(ascii: "G"): // BINFLOAT, the one big-endian field in pickle.
            try push(.float(Double(bitPattern: UInt64(bigEndian: UInt64(littleEndian: try readInteger(byteCount: 8))))))

        case 0x8C: try push(.string(try readString(lengthBytes: 1)))    // SHORT_BINUNICODE
        case UInt8(ascii: "X"): try push(.string(try readString(lengthBytes: 4))) // BINUNICODE
        case 0x8D: try push(.string(try readString(lengthBytes: 8)))    // BINUNICODE8
        case UInt8(ascii: "C"): try push(.bytes(try readBytes(lengthBytes: 1))) // SHORT_BINBYTES
        case UInt8(ascii: "B"): try push(.bytes(try readBytes(lengthBytes: 4))) // BINBYTES
        case 0x8E: try push(.bytes(try readBytes(lengthBytes: 8)))      // BINBYTES8

        case UInt8(ascii: "("): // MARK
            guard marks.count < Self.maximumStackDepth else { throw malformed("more than \(Self.maximumStackDepth) marks") }
            marks.append(stack.count)
        case UInt8(ascii: ")"): try push(.tuple([]), depth: 1) // EMPTY_TUPLE
        case UInt8(ascii: "]"): try push(.list(PickleList())) // EMPTY_LIST
        case UInt8(ascii: "}"): try push(.dict(PickleDict())) // EMPTY_DICT
        case UInt8(ascii: "t"): try pushTuple(try popToMark()) // TUPLE
        case 0x85: try pushTuple(try pop(count: 1)) // TUPLE1
        case 0x86: try pushTuple(try pop(count: 2)) // TUPLE2
        case 0x87: try pushTuple(try pop(count: 3)) // TUPLE3
        case UInt8(ascii: "l"): // LIST
            let items = try popToMark()
            let list = PickleList()
            list.depth = try depth(nesting: items)
            list.items = items.map(\.value)
            try push(.list(list))
        case UInt8(ascii: "d"): // DICT
            let dict = PickleDict()
            try insert(pairsFrom: try popToMark(), into: dict, for: "DICT")
            try push(.dict(dict))

        case UInt8(ascii: "a"): // APPEND
            let item = try pop()
            try append([item], to: try top())
        case UInt8(ascii: "e"): // APPENDS
            let items = try popToMark()
            try append(items, to: try top())
        case UInt8(ascii: "s"): // SETITEM
            let pair = try pop(count: 2)
            try insert(pairsFrom: pair, into: try dictionary(try top(), for: "SETITEM"), for: "SETITEM")
        case UInt8(ascii: "u"): // SETITEMS
            let items = try popToMark()
            try insert(pairsFrom: items, into: try dictionary(try top(), for: "SETITEMS"), for: "SETITEMS")

        case UInt8(ascii: "0"): _ = try pop() // POP
        case UInt8(ascii: "1"): _ = try popToMark() // POP_MARK
        case UInt8(ascii: "2"): try push(try topEntry()) // DUP

        case UInt8(ascii: "q"): try store(at: Int(try readInteger(byteCount: 1))) // BINPUT
        case UInt8(ascii: "r"): try store(at: Int(try readInteger(byteCount: 4))) // LONG_BINPUT
        case 0x94: try store(at: memo.count) // MEMOIZE
        case UInt8(ascii: "h"): try push(try fetch(Int(try readInteger(byteCount: 1)))) // BINGET
        case UInt8(ascii: "j"): try push(try fetch(Int(try readInteger(byteCount: 4)))) // LONG_BINGET

        case UInt8(ascii: "c"): // GLOBAL
            let module = try readLine(), name = try readLine()
            try push(try host.resolveGlobal(module: module, name: name))
        case 0x93: // STACK_GLOBAL
            let operands = try pop(count: 2).map(\.value)
            guard case let .string(module) = operands[0], case let .string(name) = operands[1] else {
                throw malformed("STACK_GLOBAL needs two str operands, got \(operands[0].kind) and \(operands[1].kind)")
            }
            try push(try host.resolveGlobal(module: module, name: name))
        case UInt8(ascii: "R"): // REDUCE
            let arguments = try pop().value
            let callable = try pop().value
            guard case let .tuple(items) = arguments else {
                throw malformed("REDUCE needs an argument tuple, got \(arguments.kind)")
            }
            try push(try host.call(callable, arguments: items))
        case UInt8(ascii: "Q"): // BINPERSID
            try push(try host.persistentLoad(try pop().value))
        case UInt8(ascii: "b"): // BUILD
            let state = try pop().value
            // HF state dicts carry `_metadata` as OrderedDict instance state; it means nothing to inference.
            guard case .dict = try top() else {
                throw malformed("BUILD sets state only on an OrderedDict here, not on \(try top().kind) (state \(state.kind))")
            }

        default:
            throw WeightFileError.unsupportedOpcode(file: fileName, opcode: opcode, offset: opcodeOffset)
        }
        return nil
    }

    // MARK: - Stack, marks, memo

    private mutating func push(_ value: PickleValue, depth: Int = 0) throws {
        try push(Entry(value: value, depth: depth))
    }

    private mutating func push(_ entry: Entry) throws {
        guard stack.count < Self.maximumStackDepth else {
            throw malformed("stack exceeds \(Self.maximumStackDepth) entries")
        }
        stack.append(entry)
    }

    private mutating func pushTuple(_ items: [Entry]) throws {
        try push(.tuple(items.map(\.value)), depth: try depth(nesting: items))
    }

    private mutating func pop() throws -> Entry {
        guard stack.count > (marks.last ?? 0), let entry = stack.popLast() else {
            throw malformed("stack underflow")
        }
        return entry
    }

    private mutating func pop(count: Int) throws -> [Entry] {
        guard stack.count - (marks.last ?? 0) >= count else {
            throw malformed("needs \(count) stack entries, \(stack.count - (marks.last ?? 0)) available")
        }
        defer { stack.removeLast(count) }
        return Array(stack.suffix(count))
    }

    private func topEntry() throws -> Entry {
        guard stack.count > (marks.last ?? 0), let entry = stack.last else {
            throw malformed("stack underflow")
        }
        return entry
    }

    private func top() throws -> PickleValue { try topEntry().value }

    private mutating func popToMark() throws -> [Entry] {
        guard let mark = marks.popLast() else { throw malformed("no MARK to pop to") }
        defer { stack.removeSubrange(mark...) }
        return Array(stack[mark...])
    }

    private mutating func store(at index: Int) throws {
        guard memo.count < Self.maximumMemoEntries || memo[index] != nil else {
            throw malformed("memo exceeds \(Self.maximumMemoEntries) entries")
        }
        memo[index] = try topEntry()
    }

    private func fetch(_ index: Int) throws -> Entry {
        guard let entry = memo[index] else { throw malformed("memo has no entry \(index)") }
        return entry
    }

    // MARK: - Containers

    /// The depth of a container holding `items`, which are sealed by being nested; throws past the limit.
    private func depth(nesting items: [Entry]) throws -> Int {
        var deepest = 0
        for item in items {
            deepest = max(deepest, item.currentDepth)
            switch item.value {
            case let .list(list): list.isSealed = true
            case let .dict(dict): dict.isSealed = true
            default: break
            }
        }
        guard deepest < Self.maximumNestingDepth else {
            throw malformed("containers nest deeper than \(Self.maximumNestingDepth) levels")
        }
        return deepest + 1
    }

    private func append(_ items: [Entry], to target: PickleValue) throws {
        guard case let .list(list) = target else {
            throw malformed("APPEND(S) needs a list, got \(target.kind)")
        }
        guard !list.isSealed else { throw malformed("APPEND(S) to a list already nested in another container") }
        guard list.items.count + items.count <= Self.maximumContainerItems else {
            throw malformed("list exceeds \(Self.maximumContainerItems) items")
        }
        for item in items {
            if case let .list(other) = item.value, other === list { throw malformed("a list cannot contain itself") }
        }
        list.depth = max(list.depth, try depth(nesting: items))
        list.items.append(contentsOf: items.map(\.value))
    }

    private func dictionary(_ target: PickleValue, for opcode: String) throws -> PickleDict {
        guard case let .dict(dict) = target else { throw malformed("\(opcode) needs a dict, got \(target.kind)") }
        return dict
    }

    private func insert(pairsFrom flat: [Entry], into dict: PickleDict, for opcode: String) throws {
        guard flat.count.isMultiple(of: 2) else { throw malformed("odd number of items for key/value pairs") }
        guard !dict.isSealed else { throw malformed("\(opcode) on a dict already nested in another container") }
        guard dict.items.count + flat.count / 2 <= Self.maximumContainerItems else {
            throw malformed("dict exceeds \(Self.maximumContainerItems) items")
        }
        for item in flat {
            if case let .dict(other) = item.value, other === dict { throw malformed("a dict cannot contain itself") }
        }
        dict.depth = max(dict.depth, try depth(nesting: flat))
        for index in stride(from: 0, to: flat.count, by: 2) {
            dict.items.append((flat[index].value, flat[index + 1].value))
        }
    }

    // MARK: - Operands

    private mutating func readByte() throws -> UInt8 {
        try requireBytes(1, for: "an opcode")
        defer { position += 1 }
        return reader.uint8(at: position)
    }

    /// An unsigned little-endian integer of 1, 2, 4 or 8 bytes.
    private mutating func readInteger(byteCount: Int) throws -> UInt64 {
        try requireBytes(byteCount, for: "a \(byteCount)-byte operand")
        defer { position += byteCount }
        switch byteCount {
        case 1: return UInt64(reader.uint8(at: position))
        case 2: return UInt64(reader.uint16(at: position))
        case 4: return UInt64(reader.uint32(at: position))
        default: return reader.uint64(at: position)
        }
    }

    private mutating func readLength(lengthBytes: Int) throws -> Int {
        let length = try readInteger(byteCount: lengthBytes)
        guard let count = Int(exactly: length), count <= reader.count - position else {
            throw WeightFileError.truncated(file: fileName, structure: "pickle operand at byte \(opcodeOffset)",
                                            needed: Int(clamping: length), available: reader.count - position)
        }
        return count
    }

    /// LONG1 / LONG4: a little-endian two's-complement integer; state dicts never need more than 64 bits.
    private mutating func readLong(lengthBytes: Int) throws -> Int {
        let count = try readLength(lengthBytes: lengthBytes)
        guard count <= 8 else { throw malformed("integer of \(count) bytes exceeds 64 bits") }
        guard count > 0 else { return 0 }
        var value: UInt64 = 0
        for index in 0..<count {
            value |= UInt64(reader.uint8(at: position + index)) << (8 * UInt64(index))
        }
        position += count
        // Sign-extend from the top bit of the last byte.
        let unusedBits = UInt64(64 - 8 * count)
        return Int(Int64(bitPattern: value << unusedBits) >> Int64(unusedBits))
    }

    private mutating func readBytes(lengthBytes: Int) throws -> Data {
        let count = try readLength(lengthBytes: lengthBytes)
        defer { position += count }
        return reader.bytes(position..<(position + count))
    }

    private mutating func readString(lengthBytes: Int) throws -> String {
        let bytes = try readBytes(lengthBytes: lengthBytes)
        guard let string = String(data: bytes, encoding: .utf8) else { throw malformed("str is not valid UTF-8") }
        return string
    }

    /// GLOBAL's operands: newline-terminated ASCII, bounded so a missing newline cannot scan far.
    private mutating func readLine() throws -> String {
        let limit = min(reader.count, position + Self.maximumGlobalLineLength)
        var end = position
        while end < limit, reader.uint8(at: end) != UInt8(ascii: "\n") { end += 1 }
        guard end < limit else {
            throw malformed("GLOBAL operand has no newline within \(Self.maximumGlobalLineLength) bytes")
        }
        let line = reader.bytes(position..<end)
        position = end + 1
        guard let string = String(data: line, encoding: .utf8) else { throw malformed("GLOBAL operand is not UTF-8") }
        return string
    }

    private func requireBytes(_ count: Int, for what: String) throws {
        guard reader.count - position >= count else {
            throw WeightFileError.truncated(file: fileName, structure: "pickle \(what) at byte \(position)",
                                            needed: count, available: reader.count - position)
        }
    }

    private func malformed(_ detail: String) -> WeightFileError {
        .malformedPickle(file: fileName, offset: opcodeOffset, detail: detail)
    }
}
