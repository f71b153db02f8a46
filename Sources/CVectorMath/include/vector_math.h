// Element-wise loops of the inference engine that run on every activation of every layer.
//
// They live in C for one reason: Swift compiles for the baseline x86-64 (SSE2) and has no per-function
// target attribute, while C builds each loop for AVX-512, AVX2 and the baseline; each call runs the build
// for cpu_kernel_level() (cpu_level.h): the CPU's best, or lower under MINIRBT_MAX_CPU_ISA. Nothing here
// assumes an instruction set.
#ifndef MINIRBT_VECTOR_MATH_H
#define MINIRBT_VECTOR_MATH_H

#include <stddef.h>
#include <stdint.h>

/// In place, for each of `rows` rows of `columns` floats (`row_stride` apart):
/// `x = (x − mean) / √(variance + epsilon) · gamma + beta`, mean first, then the biased variance of the
/// centred values (two passes, as torch computes it).
void vm_layer_norm(float *x, size_t rows, size_t columns, size_t row_stride,
                   const float *gamma, const float *beta, float epsilon);

/// The largest |x[i]| of `count` floats (0 for none).
float vm_maximum_magnitude(const float *x, size_t count);

/// `out[i] = round(x[i] · inverse_scale)` (ties to even) clamped to [−127, 127].
void vm_quantize_s8(const float *x, size_t count, float inverse_scale, int8_t *out);

/// float32 → bfloat16, round to nearest even (finite inputs).
void vm_convert_bf16(const float *x, size_t count, uint16_t *out);

/// Copies one text's query and key heads out of its `length` rows of fused query|key|value (each
/// `heads` × `head_size` columns, `qkv_stride` floats per row) into contiguous [heads][length][head_size]
/// matrices, the layout oneDNN's fast batched matmul kernels read.
void vm_split_query_key(const float *qkv, size_t length, size_t heads, size_t head_size, size_t qkv_stride,
                        float *query, float *key);

#endif
