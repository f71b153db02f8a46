// int8 matrix product with per-row activation scales and per-column weight scales, for the encoder's
// Linear layers.
//
// oneDNN has no fast int8 path on AVX2 machines without VNNI (its int8 gemm there runs no faster than its
// fp32 one), so this is our own. `vpmaddubsw` multiplies |w| (unsigned) by a·sign(w) (signed) into int16
// pair sums that cannot saturate while |w| ≤ 63 and |a| ≤ 127, small enough that two quads' sums are added
// in int16 before one `vpmaddwd` widens them: 3 integer multiplies per 64 products, which matters on AMD
// Zen 2/3, where vector integer multiplies have one pipe and FMAs two. It runs the AVX2 kernel when
// cpu_kernel_level() (cpu_level.h) is at least AVX2, else a plain C reference that is exact but slow.
//
// Typical use for y = x·Wᵀ + b with W quantised per output channel:
//   pack once:   i8_pack_weights(w_s8, k, n, packed)          (packed: i8_packed_size(k, n) bytes)
//   per batch:   i8_quantize_rows(x, m, k, ldx, q, k, row_scale)
//                i8_gemm_s32(q, m, k, k, packed, n, acc, n)
//                i8_dequantize(acc, m, n, n, row_scale, w_scale, b, I8_EPILOGUE_BIAS, y, n)
//
// Nothing here allocates on the heap or starts threads; all functions accept zero sizes.
#ifndef MINIRBT_INT8_GEMM_H
#define MINIRBT_INT8_GEMM_H

#include <stddef.h>
#include <stdint.h>

/// Columns per panel of the packed weights. Column ranges that start on a multiple of it split the work
/// of i8_gemm_s32_columns without computing any panel twice.
#define I8_PANEL_COLUMNS 16

/// The int8 kernel in use after the CPU check and the cap of cpu_kernel_level(): 0 = none (the plain C
/// reference: exact, not fast), 2 = AVX2. An AVX-512 machine also runs the AVX2 kernel.
int i8_kernel_level(void);

/// Largest |weight| the kernel in use accepts without int16 saturation: 63 for the AVX2 kernel (weights
/// quantised to 7 bits per output channel, so four products 127·63·4 = 32004 fit in int16), 127 for the
/// reference. Larger weights are not checked: on AVX2 they give wrong sums.
int i8_weight_limit(void);

/// Bytes needed to pack a weight matrix of `n` outputs × `k` inputs: 2 per weight (w and |w|) with k
/// rounded up to a multiple of 8 and n to one of 16; 0 when n is 0. The packed layout is the same whatever
/// the kernel level.
size_t i8_packed_size(size_t k, size_t n);

/// Packs s8 weights `w[n*k]` in PyTorch's Linear layout (row j = output channel j, k inputs, row-major)
/// into `packed` (i8_packed_size(k, n) bytes; any alignment works, 64 bytes is best). |w| must be
/// ≤ i8_weight_limit(). The packed weights are read-only afterwards and may be shared by any number of
/// threads.
void i8_pack_weights(const int8_t *w, size_t k, size_t n, void *packed);

/// c[r][j] (int32, row stride `ldc`) = Σₖ a[r][k] · w[j][k] for r < m, j < n, exactly (wrapping int32
/// arithmetic, so exact whenever the true sum fits in int32: always for k < 268 000, as |a·w| ≤ 127·63).
/// `a` is s8 activations with row stride `lda`, values in [−127, 127] (−128 gives wrong sums on AVX2;
/// i8_quantize_rows never produces it); `packed` comes from i8_pack_weights with the same k and n.
/// Reads nothing past a[m−1][k−1] and writes only the m × n outputs, so strides may equal k and n and
/// nothing needs padding or alignment.
///
/// Runs on the calling thread. Calls on disjoint outputs may run concurrently: split rows by passing
/// `a + r0·lda`, `c + r0·ldc` and the row count, or split columns with i8_gemm_s32_columns. Uses about
/// 4 KiB of stack.
void i8_gemm_s32(const int8_t *a, size_t m, size_t k, size_t lda, const void *packed, size_t n,
                 int32_t *c, size_t ldc);

/// i8_gemm_s32 restricted to output columns [n_begin, n_end) of the n the weights were packed with;
/// `c` still points at column 0 and columns outside the range are not written. For splitting one product
/// across threads by columns (the useful split when m is small); ranges starting on a multiple of
/// I8_PANEL_COLUMNS waste nothing. An empty or out-of-range interval writes nothing.
void i8_gemm_s32_columns(const int8_t *a, size_t m, size_t k, size_t lda, const void *packed, size_t n,
                         size_t n_begin, size_t n_end, int32_t *c, size_t ldc);

typedef enum {
    /// out = v
    I8_EPILOGUE_BIAS = 0,
    /// out = GELU(v) = 0.5·v·(1 + erf(v/√2)), relative error below 1e-6 wherever the result is a normal float
    I8_EPILOGUE_GELU_ERF = 1,
    /// out += v (the residual connection)
    I8_EPILOGUE_RESIDUAL = 2,
} i8_epilogue;

/// For r < rows, j < cols: v = (float)acc[r][j] · row_scale[r] · col_scale[j] + bias[j] (rounded in that
/// order, no fused multiply-add), then `out[r][j]` gets v as `kind` says. `bias` may be NULL (no bias).
/// For BIAS and GELU_ERF, `acc` may be the same memory as `out` (converts in place; then ld_acc must equal
/// ld_out); for RESIDUAL it must not overlap `out`. Results are bit-identical at every kernel level.
void i8_dequantize(const int32_t *acc, size_t rows, size_t cols, size_t ld_acc, const float *row_scale,
                   const float *col_scale, const float *bias, i8_epilogue kind, float *out, size_t ld_out);

/// Per-row symmetric quantisation: for each row r, row_scale[r] = max|x[r][:]| / 127 (1 when that is 0,
/// i.e. an all-zero row) and q[r][j] = round(x[r][j] / row_scale[r]) (ties to even) clamped to ±127.
/// Non-finite inputs give unspecified (but in-range) bytes, never a trap. Bit-identical at every level.
void i8_quantize_rows(const float *x, size_t rows, size_t cols, size_t ld_x, int8_t *q, size_t ld_q,
                      float *row_scale);

#endif
