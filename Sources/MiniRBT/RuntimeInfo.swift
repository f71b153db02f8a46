import CDNNL

/// What the math library loaded at run time is, and which instruction set it dispatches to on this CPU.
public enum RuntimeInfo {
    /// oneDNN's version, e.g. `2.6.3`.
    public static var oneDNNVersion: String {
        guard let version = dnnl_version() else { return "unknown" }
        return "\(version.pointee.major).\(version.pointee.minor).\(version.pointee.patch)"
    }

    /// The most capable CPU instruction set oneDNN uses here (it chooses at run time; nothing is hard-coded).
    public static var instructionSet: String {
        let isa = dnnl_get_effective_cpu_isa()
        return isaNames[isa.rawValue] ?? "isa \(isa.rawValue)"
    }

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
