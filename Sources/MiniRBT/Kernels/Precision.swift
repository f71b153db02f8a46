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
    /// The spelling (`--precision auto`, `MINIRBT_PRECISION=auto`) that asks for ``default``: whatever is
    /// fastest on the CPU the process runs on, so one setting serves a fleet of mixed machines.
    public static let automatic = "auto"

    /// What `infer` and `run` use unless told otherwise: the fastest precision on this CPU that gives a text
    /// the same result whatever batch it shares and agrees with fp32 on the shared dev reviews (bf16 and int8
    /// both: 766 of 766 labels). Measured in bench/README.md, which names the CPUs:
    /// - **bf16** where its products run on AMX tiles (1.2–1.6× int8 there: int8 pays separate quantise and
    ///   dequantise passes that bf16's fused epilogues do not);
    /// - **int8** on every other CPU with AVX-512 VNNI (oneDNN's kernels), or with AVX2 but no AVX-512 (the
    ///   engine's own kernel): about 1.2–1.5× bf16 with AVX-512 BF16 but no AMX, 1.16–1.30× fp32 on AVX2 alone;
    /// - **fp32** on AVX-512 without VNNI, where fp32's AVX-512 kernels are as fast as the engine's int8 kernel
    ///   (measured capped to that level), and below AVX2, where neither reduced precision has a fast kernel.
    /// Decided once per process, under `MINIRBT_MAX_CPU_ISA`. A model that fails the agreement check at load
    /// is still served in fp32 with a warning; fp32, one flag away, stays the parity reference.
    public static var `default`: Precision { RuntimeInfo.fastestPrecision }
}
