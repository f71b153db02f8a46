#include "vector_math.h"

#include <math.h>
#include <string.h>

// One build per instruction-set level, chosen by the loader (ifunc) from the CPU it runs on.
#if defined(__x86_64__) && defined(__ELF__)
#define VECTORIZED __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define VECTORIZED
#endif

// Float reductions only vectorise when reordering the additions is allowed; this says it is.
#define REORDERABLE _Pragma("clang loop vectorize(enable) interleave(enable)")

VECTORIZED
void vm_layer_norm(float *x, size_t rows, size_t columns, size_t row_stride,
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

VECTORIZED
float vm_maximum_magnitude(const float *x, size_t count) {
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

VECTORIZED
void vm_quantize_s8(const float *x, size_t count, float inverse_scale, int8_t *out) {
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

VECTORIZED
void vm_convert_bf16(const float *x, size_t count, uint16_t *out) {
    for (size_t i = 0; i < count; i++) {
        uint32_t bits;
        memcpy(&bits, x + i, sizeof bits);
        out[i] = (uint16_t)((bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16);
    }
}

// A head is a few vectors: a constant size lets the compiler emit them as straight loads and stores.
static inline void copy_head(const float *restrict from, float *restrict to, size_t head_size) {
    switch (head_size) {
    case 32: for (size_t j = 0; j < 32; j++) to[j] = from[j]; break;
    case 64: for (size_t j = 0; j < 64; j++) to[j] = from[j]; break;
    default: for (size_t j = 0; j < head_size; j++) to[j] = from[j]; break;
    }
}

VECTORIZED
void vm_split_query_key(const float *restrict qkv, size_t length, size_t heads, size_t head_size, size_t qkv_stride,
                        float *restrict query, float *restrict key) {
    const size_t hidden = heads * head_size;
    for (size_t t = 0; t < length; t++) {
        const float *row = qkv + t * qkv_stride;
        for (size_t h = 0; h < heads; h++) {
            copy_head(row + h * head_size, query + (h * length + t) * head_size, head_size);
            copy_head(row + hidden + h * head_size, key + (h * length + t) * head_size, head_size);
        }
    }
}
