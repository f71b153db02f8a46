#include "vector_math.h"

#include "cpu_level.h"

#include <math.h>
#include <string.h>

// Each loop is written once, as an always-inlined body, and built three times by thin wrappers: for
// AVX-512, for AVX2+FMA and plain; the compiler vectorises the inlined body for each wrapper's target. The
// public function picks one by cpu_kernel_level(), so MINIRBT_MAX_CPU_ISA (or ONEDNN_MAX_CPU_ISA) can cap
// the level for tests, which the loader's target_clones dispatch (by CPU alone) could not.
#define BODY static inline __attribute__((always_inline))

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define TARGET_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma")))
#define TARGET_AVX2 __attribute__((target("avx2,fma")))

// The three builds of a body returning nothing, and the public function that dispatches among them.
#define DISPATCHED_VOID(name, parameters, arguments)                                                            \
    TARGET_AVX512 static void name##_avx512 parameters { name##_body arguments; }                               \
    TARGET_AVX2 static void name##_avx2 parameters { name##_body arguments; }                                   \
    static void name##_plain parameters { name##_body arguments; }                                              \
    void name parameters {                                                                                      \
        switch (cpu_kernel_level()) {                                                                           \
        case CPU_LEVEL_AVX512: name##_avx512 arguments; return;                                                 \
        case CPU_LEVEL_AVX2: name##_avx2 arguments; return;                                                     \
        default: name##_plain arguments; return;                                                                \
        }                                                                                                       \
    }
#define DISPATCHED(type, name, parameters, arguments)                                                           \
    TARGET_AVX512 static type name##_avx512 parameters { return name##_body arguments; }                        \
    TARGET_AVX2 static type name##_avx2 parameters { return name##_body arguments; }                            \
    static type name##_plain parameters { return name##_body arguments; }                                       \
    type name parameters {                                                                                      \
        switch (cpu_kernel_level()) {                                                                           \
        case CPU_LEVEL_AVX512: return name##_avx512 arguments;                                                  \
        case CPU_LEVEL_AVX2: return name##_avx2 arguments;                                                      \
        default: return name##_plain arguments;                                                                 \
        }                                                                                                       \
    }
#else
#define DISPATCHED_VOID(name, parameters, arguments)                                                            \
    void name parameters { name##_body arguments; }
#define DISPATCHED(type, name, parameters, arguments)                                                           \
    type name parameters { return name##_body arguments; }
#endif

// Float reductions only vectorise when reordering the additions is allowed; this says it is.
#define REORDERABLE _Pragma("clang loop vectorize(enable) interleave(enable)")

BODY void vm_layer_norm_body(float *x, size_t rows, size_t columns, size_t row_stride,
                             const float *gamma, const float *beta, float epsilon) {
    for (size_t r = 0; r < rows; r++) {
        float *row = x + r * row_stride;
        float sum = 0;
        REORDERABLE
        for (size_t i = 0; i < columns; i++) sum += row[i];
        const float mean = sum / (float)columns;

        float squares = 0;
        REORDERABLE
        for (size_t i = 0; i < columns; i++) {
            const float centred = row[i] - mean;
            squares += centred * centred;
        }
        const float inverse_deviation = 1.0f / sqrtf(squares / (float)columns + epsilon);

        for (size_t i = 0; i < columns; i++) row[i] = (row[i] - mean) * inverse_deviation * gamma[i] + beta[i];
    }
}

BODY float vm_maximum_magnitude_body(const float *x, size_t count) {
    // Non-negative floats order like their bit patterns, so the reduction runs on integers: exact, and
    // free of the NaN rules that keep float max loops scalar.
    uint32_t largest = 0;
    for (size_t i = 0; i < count; i++) {
        uint32_t bits;
        memcpy(&bits, x + i, sizeof bits);
        bits &= 0x7FFFFFFFu;
        largest = bits > largest ? bits : largest;
    }
    float result;
    memcpy(&result, &largest, sizeof result);
    return result;
}

BODY void vm_quantize_s8_body(const float *x, size_t count, float inverse_scale, int8_t *out) {
    // Adding 1.5·2²³ leaves round(v) (the FPU rounds to nearest even) in the low mantissa bits for
    // |v| ≤ 2²², so the low byte is the two's-complement int8: plain adds, which vectorise.
    const float shifter = 12582912.0f;
    for (size_t i = 0; i < count; i++) {
        float scaled = x[i] * inverse_scale;
        scaled = scaled > 127.0f ? 127.0f : scaled;
        scaled = scaled < -127.0f ? -127.0f : scaled;
        const float shifted = scaled + shifter;
        uint32_t bits;
        memcpy(&bits, &shifted, sizeof bits);
        out[i] = (int8_t)(uint8_t)bits;
    }
}

BODY void vm_convert_bf16_body(const float *x, size_t count, uint16_t *out) {
    for (size_t i = 0; i < count; i++) {
        uint32_t bits;
        memcpy(&bits, x + i, sizeof bits);
        out[i] = (uint16_t)((bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16);
    }
}

// A head is a few vectors: a constant size lets the compiler emit them as straight loads and stores.
BODY void copy_head(const float *restrict from, float *restrict to, size_t head_size) {
    switch (head_size) {
    case 32: for (size_t j = 0; j < 32; j++) to[j] = from[j]; break;
    case 64: for (size_t j = 0; j < 64; j++) to[j] = from[j]; break;
    default: for (size_t j = 0; j < head_size; j++) to[j] = from[j]; break;
    }
}

BODY void vm_split_query_key_body(const float *restrict qkv, size_t length, size_t heads, size_t head_size,
                                  size_t qkv_stride, float *restrict query, float *restrict key) {
    const size_t hidden = heads * head_size;
    for (size_t t = 0; t < length; t++) {
        const float *row = qkv + t * qkv_stride;
        for (size_t h = 0; h < heads; h++) {
            copy_head(row + h * head_size, query + (h * length + t) * head_size, head_size);
            copy_head(row + hidden + h * head_size, key + (h * length + t) * head_size, head_size);
        }
    }
}

DISPATCHED_VOID(vm_layer_norm,
                (float *x, size_t rows, size_t columns, size_t row_stride, const float *gamma, const float *beta,
                 float epsilon),
                (x, rows, columns, row_stride, gamma, beta, epsilon))
DISPATCHED(float, vm_maximum_magnitude, (const float *x, size_t count), (x, count))
DISPATCHED_VOID(vm_quantize_s8, (const float *x, size_t count, float inverse_scale, int8_t *out),
                (x, count, inverse_scale, out))
DISPATCHED_VOID(vm_convert_bf16, (const float *x, size_t count, uint16_t *out), (x, count, out))
DISPATCHED_VOID(vm_split_query_key,
                (const float *restrict qkv, size_t length, size_t heads, size_t head_size, size_t qkv_stride,
                 float *restrict query, float *restrict key),
                (qkv, length, heads, head_size, qkv_stride, query, key))
