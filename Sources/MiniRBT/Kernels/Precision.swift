/// The number format the encoder's linear layers compute in.
///
/// Attention, LayerNorm and the heads always run in float32; only the weight-heavy matrix products
/// (QKV, attention output, feed-forward) change format, which is where the time goes.
public enum Precision: String, Sendable, CaseIterable, CustomStringConvertible {
    /// float32 throughout: matches transformers to ~1e-6.
    case fp32
    /// bfloat16 weights and activations into the products, float32 accumulation and outputs.
    case bf16
    /// int8 weights (one scale per output channel; 7 bits on AVX2, whose kernel sums products in int16)
    /// and activations (one symmetric scale per row, so per text), exact int32 accumulation, float32
    /// outputs.
    case int8

    public var description: String { rawValue }
}

extension Precision {
    /// What `infer` and `run` use unless told otherwise: fp32, the format that reproduces transformers and
    /// gives a text the same result whatever batch it shares. int8 is ~2× faster (bench/README.md) but
    /// scales activations per batch, so a near-tie label can depend on the batch: an explicit choice.
    public static let `default` = Precision.fp32
}
