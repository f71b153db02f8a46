#include "cpu_level.h"

#include <stdlib.h>
#include <strings.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>

// The OS must save the wider registers on a context switch (XCR0), not only the CPU have them:
// a kernel built without that support faults on the first AVX instruction.
static unsigned long long extended_control_register(void) {
    unsigned int low, high;
    __asm__ volatile("xgetbv" : "=a"(low), "=d"(high) : "c"(0));
    return ((unsigned long long)high << 32) | low;
}

static cpu_level detect(void) {
    unsigned int eax, ebx, ecx, edx;
    if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return CPU_LEVEL_BASELINE;
    const int has_fma = (ecx >> 12) & 1, has_osxsave = (ecx >> 27) & 1, has_avx = (ecx >> 28) & 1;
    if (!has_osxsave || !has_avx || !has_fma) return CPU_LEVEL_BASELINE;
    const unsigned long long xcr0 = extended_control_register();
    if ((xcr0 & 0x6) != 0x6) return CPU_LEVEL_BASELINE;  // XMM and YMM state

    if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) return CPU_LEVEL_BASELINE;
    if (!((ebx >> 5) & 1)) return CPU_LEVEL_BASELINE;  // AVX2
    const int avx512 = ((ebx >> 16) & 1)     // F
                       && ((ebx >> 17) & 1)  // DQ
                       && ((ebx >> 30) & 1)  // BW
                       && ((ebx >> 31) & 1)  // VL
                       && (xcr0 & 0xE6) == 0xE6;  // opmask and all 32 ZMM registers
    return avx512 ? CPU_LEVEL_AVX512 : CPU_LEVEL_AVX2;
}
#else
static cpu_level detect(void) { return CPU_LEVEL_BASELINE; }
#endif

// The cap a variable asks for, or -1 for none. Names are oneDNN's (dnnl_cpu_isa_t without the prefix).
static int cap_from(const char *value) {
    if (strncasecmp(value, "AVX512", 6) == 0 || strncasecmp(value, "AVX-512", 7) == 0) return CPU_LEVEL_AVX512;
    if (strncasecmp(value, "AVX2", 4) == 0) return CPU_LEVEL_AVX2;
    if (strcasecmp(value, "AVX") == 0 || strncasecmp(value, "SSE", 3) == 0 || strcasecmp(value, "BASELINE") == 0)
        return CPU_LEVEL_BASELINE;
    return -1;  // ALL, or a name from a later oneDNN: no cap, as oneDNN does for ALL
}

static int requested_cap(void) {
    static const char *const names[] = {"MINIRBT_MAX_CPU_ISA", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA"};
    for (unsigned i = 0; i < sizeof names / sizeof names[0]; i++) {
        const char *value = getenv(names[i]);
        if (value && *value) return cap_from(value);
    }
    return -1;
}

// -1 until decided. Racing first callers compute the same value, so a relaxed store of an int suffices.
static int detected_level = -1, kernel_level = -1;

cpu_level cpu_detected_level(void) {
    int level = __atomic_load_n(&detected_level, __ATOMIC_RELAXED);
    if (level < 0) {
        level = (int)detect();
        __atomic_store_n(&detected_level, level, __ATOMIC_RELAXED);
    }
    return (cpu_level)level;
}

cpu_level cpu_kernel_level(void) {
    int level = __atomic_load_n(&kernel_level, __ATOMIC_RELAXED);
    if (level < 0) {
        level = (int)cpu_detected_level();
        const int cap = requested_cap();
        if (cap >= 0 && cap < level) level = cap;
        // The first value stored wins, so no caller ever sees the level change even if the environment
        // changed between two racing first calls.
        int expected = -1;
        if (!__atomic_compare_exchange_n(&kernel_level, &expected, level, 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
            level = expected;
    }
    return (cpu_level)level;
}

const char *cpu_level_name(cpu_level level) {
    switch (level) {
    case CPU_LEVEL_BASELINE: return "baseline";
    case CPU_LEVEL_AVX2: return "AVX2";
    case CPU_LEVEL_AVX512: return "AVX-512";
    }
    return "unknown";
}
