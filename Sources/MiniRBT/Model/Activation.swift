/// The feed-forward nonlinearity (`hidden_act`), plus `tanh` for the pooler.
public enum Activation: String, Sendable, CaseIterable {
    /// Exact GELU with erf: HF's `"gelu"` (BERT's default).
    case gelu
    /// GELU's tanh approximation: HF's `"gelu_new"`, `"gelu_pytorch_tanh"`, `"gelu_fast"`.
    case geluTanh
    /// `x · sigmoid(1.702 x)`: HF's `"quick_gelu"`.
    case quickGelu
    case relu
    /// `x · sigmoid(x)`: HF's `"silu"` / `"swish"`.
    case silu
    case tanh

    /// The activation HF's `ACT2FN` maps `name` to, or nil if this runtime does not implement it.
    public init?(huggingFaceName name: String) {
        switch name {
        case "gelu", "gelu_python": self = .gelu
        case "gelu_new", "gelu_pytorch_tanh", "gelu_fast": self = .geluTanh
        case "quick_gelu": self = .quickGelu
        case "relu": self = .relu
        case "silu", "swish": self = .silu
        case "tanh": self = .tanh
        default: return nil
        }
    }

    /// The `hidden_act` names accepted by `init(huggingFaceName:)`, for error messages.
    public static let huggingFaceNames = [
        "gelu", "gelu_python", "gelu_new", "gelu_pytorch_tanh", "gelu_fast", "quick_gelu", "relu", "silu", "swish", "tanh",
    ]
}
