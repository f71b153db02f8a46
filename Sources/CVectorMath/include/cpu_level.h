// The instruction-set level the C kernels of this target run at, decided once per process.
//
// The loader alone cannot cap what it picks, but tests and benchmarks need to run the AVX2 or the baseline
// code on a machine that has more, the way oneDNN's ONEDNN_MAX_CPU_ISA caps oneDNN. So every kernel with
// several builds asks `cpu_kernel_level()` and switches on it.
#ifndef MINIRBT_CPU_LEVEL_H
#define MINIRBT_CPU_LEVEL_H

typedef enum {
    /// Plain C as the target's flags compile it (SSE2 on x86-64; also every non-x86 machine).
    CPU_LEVEL_BASELINE = 0,
    /// AVX2 and FMA.
    CPU_LEVEL_AVX2 = 2,
    /// AVX-512 F, BW, VL and DQ (with AVX2 and FMA).
    CPU_LEVEL_AVX512 = 4,
} cpu_level;

/// The level the kernels use: the best the CPU and the operating system support, capped by the first of
/// the environment variables MINIRBT_MAX_CPU_ISA, ONEDNN_MAX_CPU_ISA, DNNL_MAX_CPU_ISA that is set and not
/// empty. The value is read case-insensitively with oneDNN's names: anything starting with AVX512 (or
/// AVX-512) caps at AVX-512, anything starting with AVX2 (AVX2, AVX2_VNNI) at AVX2, and SSE41, AVX or
/// BASELINE at the baseline; ALL or a name it does not know sets no cap. A cap never raises the level
/// above what the CPU has.
///
/// Decided on the first call and fixed for the life of the process (later changes to the environment are
/// not seen); safe to call from any thread. MINIRBT_MAX_CPU_ISA caps only these kernels; ONEDNN_MAX_CPU_ISA
/// and DNNL_MAX_CPU_ISA also cap oneDNN itself, which reads them on its own.
cpu_level cpu_kernel_level(void);

/// The best level the CPU and the operating system support, before any cap (for logs).
cpu_level cpu_detected_level(void);

/// "baseline", "AVX2" or "AVX-512" (and "unknown" for a value outside the enum).
const char *cpu_level_name(cpu_level level);

#endif
