import CDNNL
import CVectorMath
import Foundation

/// What the math libraries loaded at run time are, which instruction set they dispatch to on this CPU,
/// and what each ``Precision`` runs on here.
///
/// One variable caps every kernel, for testing lower levels on a better machine:
/// `MINIRBT_MAX_CPU_ISA` (oneDNN's names: `SSE41`, `AVX2`, `AVX512_CORE`, …, or `baseline`) caps the
/// engine's own C kernels and, unless `ONEDNN_MAX_CPU_ISA`/`DNNL_MAX_CPU_ISA` say otherwise, oneDNN too.
/// Without it the C kernels follow oneDNN's variables, so either spelling caps both.
public enum RuntimeInfo {
    /// The variable that caps the instruction set of every kernel.
    public static let instructionSetCapVariable = "MINIRBT_MAX_CPU_ISA"

    /// oneDNN's version, e.g. `2.6.3`.
    public static var oneDNNVersion: String {
        guard let version = dnnl_version() else { return "unknown" }
        return "\(version.pointee.major).\(version.pointee.minor).\(version.pointee.patch)"
    }

    /// The most capable CPU instruction set oneDNN uses here (it chooses at run time; nothing is hard-coded).
    public static var instructionSet: String {
        applyCap()
        let isa = dnnl_get_effective_cpu_isa()
        return isaNames[isa.rawValue] ?? "isa \(isa.rawValue)"
    }

    /// The level the engine's own C kernels (element-wise loops, int8 products) run at: `AVX-512`, `AVX2`
    /// or `baseline`.
    public static var kernelLevel: String {
        String(cString: cpu_level_name(cpu_kernel_level()))
    }

    /// What `precision`'s matrix products run on here, or why it has no fast path on this CPU (then
    /// sessions asking for it are served in fp32).
    public static func kernel(for precision: Precision) -> Result<String, KernelError> {
        switch precision {
        case .int8:
            return Int8Backend.selected.map(\.description)
        case .fp32, .bf16:
            do {
                let probe = try LinearPrimitive(LinearPrimitive.Key(inputs: 256, outputs: 256, rows: 128, precision: precision,
                                                                    epilogue: .bias), weightsLayout: nil)
                return .success("oneDNN \(probe.primitive.implementation)")
            } catch {
                return .failure(error)
            }
        }
    }

    /// The precision ``Precision/default`` stands for on this CPU (see there for the measurements).
    public static let fastestPrecision: Precision = {
        applyCap()
        let amx = dnnl_cpu_isa_avx512_core_amx.rawValue
        if dnnl_get_effective_cpu_isa().rawValue & amx == amx, case .success = kernel(for: .bf16) { return .bf16 }
        guard case let .success(int8) = Int8Backend.selected else { return .fp32 }
        // The engine's own int8 kernel beats fp32 where fp32 is oneDNN's generic gemm (AVX2), not where it
        // is oneDNN's AVX-512 brgemm (AVX-512 without VNNI).
        if case .native = int8, case let .success(fp32) = kernel(for: .fp32), fp32.contains("brg:") { return .fp32 }
        return .int8
    }()

    /// Sets oneDNN's cap from `MINIRBT_MAX_CPU_ISA` before its first dispatch, when oneDNN's own
    /// variables are unset. Runs once; every path into oneDNN's kernels passes through here first.
    static func applyCap() { _ = capApplied }

    private static let capApplied: Bool = {
        let environment = ProcessInfo.processInfo.environment
        guard environment["ONEDNN_MAX_CPU_ISA"] == nil, environment["DNNL_MAX_CPU_ISA"] == nil,
              let cap = environment[instructionSetCapVariable]?.uppercased(), let isa = oneDNNCaps[cap] else { return false }
        return dnnl_set_max_cpu_isa(isa) == dnnl_success
    }()

    private static let oneDNNCaps: [String: dnnl_cpu_isa_t] = [
        "BASELINE": dnnl_cpu_isa_sse41, "SSE41": dnnl_cpu_isa_sse41, "AVX": dnnl_cpu_isa_avx, "AVX2": dnnl_cpu_isa_avx2,
        "AVX2_VNNI": dnnl_cpu_isa_avx2_vnni, "AVX512": dnnl_cpu_isa_avx512_core, "AVX512_CORE": dnnl_cpu_isa_avx512_core,
        "AVX512_CORE_VNNI": dnnl_cpu_isa_avx512_core_vnni, "AVX512_CORE_BF16": dnnl_cpu_isa_avx512_core_bf16,
        "AVX512_CORE_AMX": dnnl_cpu_isa_avx512_core_amx, "ALL": dnnl_cpu_isa_all,
    ]

    private static let isaNames: [UInt32: String] = [
        dnnl_cpu_isa_all.rawValue: "all",
        dnnl_cpu_isa_sse41.rawValue: "SSE4.1",
        dnnl_cpu_isa_avx.rawValue: "AVX",
        dnnl_cpu_isa_avx2.rawValue: "AVX2",
        dnnl_cpu_isa_avx512_mic.rawValue: "AVX-512 (MIC)",
        dnnl_cpu_isa_avx512_mic_4ops.rawValue: "AVX-512 (MIC 4ops)",
        dnnl_cpu_isa_avx512_core.rawValue: "AVX-512",
        dnnl_cpu_isa_avx512_core_vnni.rawValue: "AVX-512 VNNI",
        dnnl_cpu_isa_avx512_core_bf16.rawValue: "AVX-512 BF16",
        dnnl_cpu_isa_avx512_core_amx.rawValue: "AVX-512 with AMX",
        dnnl_cpu_isa_avx2_vnni.rawValue: "AVX2 VNNI",
    ]
}
