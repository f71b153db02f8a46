/// The globals a `torch.save` state dict needs, and nothing else. A pickle naming any other global is
/// refused before anything is constructed, which is what makes loading an untrusted checkpoint safe.
enum TorchGlobal: Equatable {
    /// `collections.OrderedDict`: the container `state_dict()` returns.
    case orderedDict
    /// `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks[, metadata])`.
    case rebuildTensor
    /// `torch._utils._rebuild_parameter(tensor, requires_grad, hooks)`: an `nn.Parameter` saved directly.
    case rebuildParameter
    /// `torch.<Type>Storage`, named in persistent ids to give a storage its element type.
    case storageClass(ElementType, name: String)

    init?(module: String, name: String) {
        switch (module, name) {
        case ("collections", "OrderedDict"): self = .orderedDict
        case ("torch._utils", "_rebuild_tensor_v2"): self = .rebuildTensor
        case ("torch._utils", "_rebuild_parameter"): self = .rebuildParameter
        case ("torch", _):
            guard let elementType = ElementType(torchStorageClass: name) else { return nil }
            self = .storageClass(elementType, name: name)
        default: return nil
        }
    }

    var qualifiedName: String {
        switch self {
        case .orderedDict: return "collections.OrderedDict"
        case .rebuildTensor: return "torch._utils._rebuild_tensor_v2"
        case .rebuildParameter: return "torch._utils._rebuild_parameter"
        case let .storageClass(_, name): return "torch.\(name)"
        }
    }
}

/// A typed storage: one `data/<key>` entry of the archive, shared by every tensor viewing it.
struct TorchStorage: Equatable {
    var key: String
    var elementType: ElementType
    var elementCount: Int
}

/// A tensor as `_rebuild_tensor_v2` describes it: a strided view into a storage. Not yet checked
/// against the storage; that happens when the state dict is materialised and the tensor has a name.
struct TorchTensorView {
    var storage: TorchStorage
    var storageOffset: Int
    var shape: [Int]
    var strides: [Int]
}
