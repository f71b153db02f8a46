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
    /// What `infer` and `run` use unless told otherwise: int8, the fastest format that gives a text the same
    /// result whatever batch it shares (each text's activations are scaled on their own) and agrees with
    /// fp32 on the shared dev reviews (766 of 766 labels, logits within 0.02). Measured in bench/README.md:
    /// 1.16–1.30× fp32 at one thread per shard on AVX2-only CPUs, about 2× with AVX-512 VNNI or AMX. A model
    /// that fails the agreement check at load, or a CPU without a fast int8 kernel, is served in fp32 with a
    /// warning. fp32, one flag away, stays the parity reference (transformers' logits to ~1e-6).
    public static let `default` = Precision.int8
}
