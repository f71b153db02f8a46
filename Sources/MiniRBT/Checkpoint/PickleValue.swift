import Foundation

/// A value on the restricted pickle machine's stack or in its memo.
///
/// There is deliberately no case for "an arbitrary object": the only things a pickle can construct are
/// plain data, the few callables the host allows, and what those callables return.
enum PickleValue {
    case none
    case bool(Bool)
    case int(Int)
    case float(Double)
    case string(String)
    case bytes(Data)
    case tuple([PickleValue])
    /// Lists and dicts are references: the pickle mutates them after memoizing (APPEND, SETITEMS).
    case list(PickleList)
    case dict(PickleDict)
    /// A global the host's allow-list resolved.
    case global(TorchGlobal)
    case storage(TorchStorage)
    case tensor(TorchTensorView)

    /// A short name for error messages, never the value itself (which may be large or hostile).
    var kind: String {
        switch self {
        case .none: return "None"
        case .bool: return "bool"
        case .int: return "int"
        case .float: return "float"
        case .string: return "str"
        case .bytes: return "bytes"
        case let .tuple(items): return "tuple of \(items.count)"
        case .list: return "list"
        case .dict: return "dict"
        case let .global(global): return "global \(global.qualifiedName)"
        case .storage: return "storage"
        case .tensor: return "tensor"
        }
    }
}

/// Lists and dicts record how deeply they nest (1 when they hold no container) and whether they have
/// been put inside another container. A nested one is sealed: changing it could deepen its parents
/// behind their recorded depth, or make a cycle. `torch.save` fills every container before nesting it.
final class PickleList {
    var items: [PickleValue] = []
    var depth = 1
    var isSealed = false
}

/// Keys stay `PickleValue`s because pickle allows any; insertion order is kept like Python's dict.
final class PickleDict {
    var items: [(key: PickleValue, value: PickleValue)] = []
    var depth = 1
    var isSealed = false
}
