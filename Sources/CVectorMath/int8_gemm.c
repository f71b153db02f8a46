#include "int8_gemm.h"

#include "cpu_level.h"

#include <string.h>

// Every float operation below is rounded on its own, never fused into an FMA, so the AVX2 and the plain
// builds of the same loop give bit-identical results.
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define I8_X86 1
#include <immintrin.h>
#define I8_AVX2 __attribute__((target("avx2,fma")))
#else
#define I8_X86 0
#endif

#define ALWAYS_INLINE inline __attribute__((always_inline))

// ---------------------------------------------------------------------------------------------------------
// Packed weights: panels of 16 columns. For every group of 4 k values ("quad") a panel holds 128 bytes:
// w of columns 0–7, w of columns 8–15, then |w| of the same, each column its 4 consecutive weights, so one
// 32-bit broadcast of 4 activation bytes meets 8 columns' quads in one 256-bit register. K is padded to a
// multiple of 8 (the kernel takes quads in pairs) and n to a multiple of 16, with zero weights.

#define PANEL 16
#define QUAD_BYTES (8 * PANEL)

static size_t padded_k(size_t k) { return (k + 7) & ~(size_t)7; }
static size_t panel_bytes(size_t k) { return padded_k(k) / 4 * QUAD_BYTES; }
static size_t panel_count(size_t n) { return (n + PANEL - 1) / PANEL; }

size_t i8_packed_size(size_t k, size_t n) { return panel_count(n) * panel_bytes(k); }

void i8_pack_weights(const int8_t *w, size_t k, size_t n, void *packed) {
    for (size_t p = 0; p < panel_count(n); p++) {
        int8_t *panel = (int8_t *)packed + p * panel_bytes(k);
        memset(panel, 0, panel_bytes(k));
        for (size_t j = 0; j < PANEL && p * PANEL + j < n; j++) {
            const int8_t *row = w + (p * PANEL + j) * k;
            int8_t *slot = panel + (j / 8) * 32 + (j % 8) * 4;
            for (size_t i = 0; i < k; i++) {
                slot[(i / 4) * QUAD_BYTES + i % 4] = row[i];
                // |w| as a byte: |−128| = 128 is stored as 0x80, which is what the unsigned operand wants
                slot[(i / 4) * QUAD_BYTES + 64 + i % 4] = (int8_t)(uint8_t)(row[i] < 0 ? -row[i] : row[i]);
            }
        }
    }
}

static int8_t packed_weight(const void *packed, size_t k, size_t column, size_t i) {
    const int8_t *panel = (const int8_t *)packed + (column / PANEL) * panel_bytes(k);
    const size_t j = column % PANEL;
    return panel[(i / 4) * QUAD_BYTES + (j / 8) * 32 + (j % 8) * 4 + i % 4];
}

// The reference: plain sums over the same packed layout. Unsigned arithmetic wraps like the vector adds.
static void gemm_reference(const int8_t *a, size_t m, size_t k, size_t lda, const void *packed,
                           size_t n_begin, size_t n_end, int32_t *c, size_t ldc) {
    for (size_t r = 0; r < m; r++) {
        for (size_t j = n_begin; j < n_end; j++) {
            uint32_t sum = 0;
            for (size_t i = 0; i < k; i++)
                sum += (uint32_t)((int32_t)a[r * lda + i] * (int32_t)packed_weight(packed, k, j, i));
            c[r * ldc + j] = (int32_t)sum;
        }
    }
}

#if I8_X86
// ---------------------------------------------------------------------------------------------------------
// AVX2 kernel.
//
// On Zen 2/3 every vector integer multiply (vpmaddubsw, vpmaddwd) issues on one pipe, while FMAs have two,
// so the textbook sequence vpmaddubsw → vpmaddwd(ones) → vpaddd (2 multiplies per 32 products) runs no
// faster than fp32 FMAs. We spend 3 multiplies per 64 products instead: vpmaddubsw takes |w| (packed) as
// its unsigned operand and a with w's sign (vpsignb) as its signed one, so each int16 pair sum is at most
// 2·63·127 = 16002 and the pair sums of two quads can be added in int16 (≤ 32004, no saturation) before
// the one vpmaddwd that widens them. The products are exact a·w; a must not be −128 (a·sign(w) must fit
// in s8), and |w| ≤ 63.
//
// A block of up to MR rows is copied into a stack buffer with the constant row stride KC_MAX, so the
// micro-kernel reaches all its rows from one pointer with constant offsets; the buffer stays in L1 while
// the panels of the current column block stream past it. K beyond KC_MAX is done in blocks that add into
// c; column blocks keep the weights one row block reads within L2.

#define MR 4
#define KC_MAX 1024
#define L2_WEIGHT_BYTES (192 * 1024)

// One row's share of one pair of quads for all 16 columns: broadcast the row's two activation quads, give
// them the weights' signs, multiply with |w| into int16 pair sums, add the two quads' sums (still exact in
// int16), widen with ones and accumulate. Written in assembly because, in C, the compiler keeps the four
// signed weight vectors in registers (it sees them reused by every row) and then has to spill accumulators;
// as memory operands of vpsignb they cost only loads, and the 4 rows × 16 columns block fits in the 16
// registers: 8 accumulators, 4 |w|, 4 temporaries. (AT&T order: source operands first, destination last;
// the "memory" clobber stands for the activation and weight bytes it reads through `ap` and `w`.)
#define ROW_STEP(OFFSET, ACC0, ACC1)                                                                             \
    __asm__("vpbroadcastd %c[o0](%[ap]), %[t]\n\t"                                                               \
            "vpsignb (%[w]), %[t], %[p0]\n\t"                                                                   \
            "vpmaddubsw %[p0], %[m00], %[p0]\n\t"                                                               \
            "vpsignb 32(%[w]), %[t], %[p1]\n\t"                                                                 \
            "vpmaddubsw %[p1], %[m01], %[p1]\n\t"                                                               \
            "vpbroadcastd %c[o1](%[ap]), %[t]\n\t"                                                               \
            "vpsignb 128(%[w]), %[t], %[q]\n\t"                                                                 \
            "vpmaddubsw %[q], %[m10], %[q]\n\t"                                                                 \
            "vpaddw %[q], %[p0], %[p0]\n\t"                                                                     \
            "vpsignb 160(%[w]), %[t], %[q]\n\t"                                                                 \
            "vpmaddubsw %[q], %[m11], %[q]\n\t"                                                                 \
            "vpaddw %[q], %[p1], %[p1]\n\t"                                                                     \
            "vpmaddwd %[ones], %[p0], %[p0]\n\t"                                                                \
            "vpmaddwd %[ones], %[p1], %[p1]\n\t"                                                                \
            "vpaddd %[p0], %[acc0], %[acc0]\n\t"                                                                \
            "vpaddd %[p1], %[acc1], %[acc1]"                                                                    \
            : [acc0] "+x"(ACC0), [acc1] "+x"(ACC1), [t] "=&x"(t), [p0] "=&x"(p0), [p1] "=&x"(p1), [q] "=&x"(q)   \
            : [ap] "r"(ap), [w] "r"(w), [o0] "i"(OFFSET), [o1] "i"((OFFSET) + 4), [m00] "x"(m00),             \
              [m01] "x"(m01), [m10] "x"(m10), [m11] "x"(m11), [ones] "m"(ones)                                 \
            : "memory")

// mr rows × the 16 columns of one panel. `columns_from`/`columns_to` (0 ≤ from < to ≤ 16) say which of its
// columns to store; when `first`, the accumulators start at zero, else from what c holds (an earlier k
// block).
I8_AVX2 static ALWAYS_INLINE void micro_kernel(int mr, const int8_t *abuf, const int8_t *w, size_t octets,
                                               int first, int32_t *c, size_t ldc, unsigned columns_from,
                                               unsigned columns_to) {
    const __m256i ones = _mm256_set1_epi16(1);
    const int full = columns_from == 0 && columns_to == PANEL;
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i from = _mm256_set1_epi32((int)columns_from), to = _mm256_set1_epi32((int)columns_to);
    __m256i mask[2];
    for (int h = 0; h < 2; h++) {  // lane i of half h is column 8h+i: stored when from ≤ 8h+i < to
        const __m256i column = _mm256_add_epi32(lane, _mm256_set1_epi32(8 * h));
        mask[h] = _mm256_andnot_si256(_mm256_cmpgt_epi32(from, column), _mm256_cmpgt_epi32(to, column));
    }

    __m256i acc[MR][2];
    for (int r = 0; r < mr; r++) {
        for (int h = 0; h < 2; h++) {
            if (first)
                acc[r][h] = _mm256_setzero_si256();
            else if (full)
                acc[r][h] = _mm256_loadu_si256((const __m256i *)(c + r * ldc + 8 * h));
            else
                acc[r][h] = _mm256_maskload_epi32(c + r * ldc + 8 * h, mask[h]);
        }
    }

    const int8_t *ap = abuf;
    for (size_t o = 0; o < octets; o++) {
        const __m256i m00 = _mm256_loadu_si256((const __m256i *)(w + 64));
        const __m256i m01 = _mm256_loadu_si256((const __m256i *)(w + 96));
        const __m256i m10 = _mm256_loadu_si256((const __m256i *)(w + QUAD_BYTES + 64));
        const __m256i m11 = _mm256_loadu_si256((const __m256i *)(w + QUAD_BYTES + 96));
        __m256i t, p0, p1, q;
        ROW_STEP(0, acc[0][0], acc[0][1]);
        if (mr > 1) ROW_STEP(KC_MAX, acc[1][0], acc[1][1]);
        if (mr > 2) ROW_STEP(2 * KC_MAX, acc[2][0], acc[2][1]);
        if (mr > 3) ROW_STEP(3 * KC_MAX, acc[3][0], acc[3][1]);
        ap += 8;
        w += 2 * QUAD_BYTES;
    }

    for (int r = 0; r < mr; r++) {
        for (int h = 0; h < 2; h++) {
            if (full)
                _mm256_storeu_si256((__m256i *)(c + r * ldc + 8 * h), acc[r][h]);
            else
                _mm256_maskstore_epi32(c + r * ldc + 8 * h, mask[h], acc[r][h]);
        }
    }
}

// One instance per row count, so the accumulators are registers, not an array indexed at run time.
#define MICRO_KERNEL_INSTANCE(R)                                                                                \
    I8_AVX2 __attribute__((noinline)) static void micro_kernel_##R(const int8_t *abuf, const int8_t *w,          \
                                                                   size_t octets, int first, int32_t *c,        \
                                                                   size_t ldc, unsigned from, unsigned to) {    \
        micro_kernel(R, abuf, w, octets, first, c, ldc, from, to);                                             \
    }
typedef void (*micro_kernel_fn)(const int8_t *, const int8_t *, size_t, int, int32_t *, size_t, unsigned,
                                unsigned);
MICRO_KERNEL_INSTANCE(1)
MICRO_KERNEL_INSTANCE(2)
MICRO_KERNEL_INSTANCE(3)
MICRO_KERNEL_INSTANCE(4)
static const micro_kernel_fn micro_kernels[MR + 1] = {NULL, micro_kernel_1, micro_kernel_2, micro_kernel_3,
                                                      micro_kernel_4};

// Rows [0, mr) of `a`, columns [k0, k0 + kc), into the buffer, zero up to the next multiple of 8.
static void fill_rows(const int8_t *a, size_t lda, int mr, size_t k0, size_t kc, size_t kc_padded, int8_t *abuf) {
    for (int r = 0; r < mr; r++) {
        int8_t *row = abuf + (size_t)r * KC_MAX;
        memcpy(row, a + (size_t)r * lda + k0, kc);
        memset(row + kc, 0, kc_padded - kc);
    }
}

I8_AVX2 static void gemm_avx2(const int8_t *a, size_t m, size_t k, size_t lda, const void *packed,
                              size_t n_begin, size_t n_end, int32_t *c, size_t ldc) {
    _Alignas(64) int8_t abuf[MR * KC_MAX];
    const size_t stride = panel_bytes(k);
    const size_t first_panel = n_begin / PANEL, end_panel = (n_end + PANEL - 1) / PANEL;
    // k = 0 still runs one (empty) block, which stores zeros.
    size_t k0 = 0;
    do {
        const size_t kc = k - k0 < KC_MAX ? k - k0 : KC_MAX;
        const size_t kc_padded = (kc + 7) & ~(size_t)7;
        const int first = k0 == 0;
        size_t panels_per_block = L2_WEIGHT_BYTES / (kc_padded / 4 * QUAD_BYTES + 1);
        if (panels_per_block == 0) panels_per_block = 1;
        for (size_t block = first_panel; block < end_panel; block += panels_per_block) {
            const size_t block_end = block + panels_per_block < end_panel ? block + panels_per_block : end_panel;
            for (size_t r0 = 0; r0 < m; r0 += MR) {
                const int mr = m - r0 < MR ? (int)(m - r0) : MR;
                fill_rows(a + r0 * lda, lda, mr, k0, kc, kc_padded, abuf);
                const micro_kernel_fn kernel = micro_kernels[mr];
                for (size_t p = block; p < block_end; p++) {
                    const size_t column0 = p * PANEL;
                    const unsigned from = n_begin > column0 ? (unsigned)(n_begin - column0) : 0;
                    const unsigned to = n_end - column0 < PANEL ? (unsigned)(n_end - column0) : PANEL;
                    kernel(abuf, (const int8_t *)packed + p * stride + k0 / 4 * QUAD_BYTES, kc_padded / 8, first,
                           c + r0 * ldc + column0, ldc, from, to);
                }
            }
        }
        k0 += kc;
    } while (k0 < k);
}
#endif

int i8_kernel_level(void) {
#if I8_X86
    if (cpu_kernel_level() >= CPU_LEVEL_AVX2) return 2;
#endif
    return 0;
}

int i8_weight_limit(void) { return i8_kernel_level() >= 2 ? 63 : 127; }

void i8_gemm_s32_columns(const int8_t *a, size_t m, size_t k, size_t lda, const void *packed, size_t n,
                         size_t n_begin, size_t n_end, int32_t *c, size_t ldc) {
    if (n_end > n) n_end = n;
    if (m == 0 || n_begin >= n_end) return;
#if I8_X86
    if (i8_kernel_level() >= 2) {
        gemm_avx2(a, m, k, lda, packed, n_begin, n_end, c, ldc);
        return;
    }
#endif
    gemm_reference(a, m, k, lda, packed, n_begin, n_end, c, ldc);
}

void i8_gemm_s32(const int8_t *a, size_t m, size_t k, size_t lda, const void *packed, size_t n, int32_t *c,
                 size_t ldc) {
    i8_gemm_s32_columns(a, m, k, lda, packed, n, 0, n, c, ldc);
}

// ---------------------------------------------------------------------------------------------------------
// Epilogue and quantisation. Each loop is written once, as plain C on floats, and built twice (AVX2+FMA
// and plain) by thin wrappers; with contraction off both builds round every operation alike.

static ALWAYS_INLINE float float_from_bits(uint32_t bits) {
    float value;
    memcpy(&value, &bits, sizeof value);
    return value;
}

static ALWAYS_INLINE uint32_t bits_from_float(float value) {
    uint32_t bits;
    memcpy(&bits, &value, sizeof bits);
    return bits;
}

// 0.5·x·(1 + erf(x/√2)) = 0.5·x·erfc(−x/√2), computed through erfc(z), z = |x|/√2 ≥ 0, which keeps its
// relative accuracy in the far negative tail where 1 + erf cancels:
//   erfc(z) = t·P(t)·exp(−z²),  t = 1/(1 + 0.3·z),
// P of degree 8 fitted (minimax relative, our own fit) on z ∈ [0, 10]: error below 2e-8 before rounding.
// exp(−z²) = exp(−x²/2) is taken from x itself, split into a 12-bit head and a tail so that the head's
// square is exact: rounding z² would cost 2z²·2⁻²⁴ relative (1e-5 at z = 9). No branches, so it vectorises.
static ALWAYS_INLINE float gelu_erf(float x) {
    const float ax_raw = float_from_bits(bits_from_float(x) & 0x7FFFFFFFu);
    // Past |x| = 14.2 erfc(z) < 2e-45 is 0 in float; clamping keeps the arithmetic finite (also for ±inf).
    const float ax = ax_raw < 14.2f ? ax_raw : 14.2f;
    const float t = 1.0f / (1.0f + 0.212132034f * ax);  // 0.3/√2
    // Estrin's scheme rather than Horner's: the same work in a third of the dependency depth, which is what
    // limits this loop (each step is a multiply and an add, not fused, to round alike at every level).
    const float t2 = t * t, t4 = t2 * t2;
    const float p01 = 1.691880226e-01f + 1.707151383e-01f * t, p23 = 1.483398825e-01f + 2.149233222e-01f * t;
    const float p45 = -9.464427084e-02f + 5.477105975e-01f * t, p67 = -5.122697353e-01f + 4.855591059e-01f * t;
    const float p03 = p01 + p23 * t2, p47 = p45 + p67 * t2;
    const float p = p03 + t4 * (p47 + t4 * -1.295220554e-01f);

    // −x²/2 = −head²/2 − tail·(ax + head)/2 with head²/2 exact.
    const float head = float_from_bits(bits_from_float(ax) & 0xFFFFF000u);
    const float tail = ax - head;
    const float big = -0.5f * (head * head);
    const float small = -0.5f * (tail * (ax + head));
    // exp(big + small) = 2ⁿ·exp(ρ): n = round((big + small)/ln 2) (rounded by the 1.5·2²³ shifter),
    // ρ by Cody–Waite with ln 2 = 0.693359375 − 2.12194440e-4, whose head times n (≤ 146) is exact.
    const float shifter = 12582912.0f;
    const float nf = ((big + small) * 1.44269504f + shifter) - shifter;
    const float rho = ((big - nf * 0.693359375f) - nf * -2.12194440e-4f) + small;
    // exp on [−0.347, 0.347]: minimax relative, degree 6, also by Estrin.
    const float r2 = rho * rho, r4 = r2 * r2;
    const float e01 = 1.0f + 1.0f * rho, e23 = 4.999999106e-01f + 1.666641980e-01f * rho;
    const float e45 = 4.166822508e-02f + 8.374825120e-03f * rho;
    const float e = (e01 + e23 * r2) + r4 * (e45 + r2 * 1.383684692e-03f);
    // 2ⁿ in two factors (n ≥ −147 here) so that results in the subnormal range are still scaled right.
    const int32_t n = (int32_t)nf;
    const int32_t n1 = n / 2, n2 = n - n1;
    const float scale1 = float_from_bits((uint32_t)(n1 + 127) << 23);
    const float scale2 = float_from_bits((uint32_t)(n2 + 127) << 23);
    float erfc_z = ((t * p) * (e * scale1)) * scale2;
    erfc_z = ax_raw < 14.2f ? erfc_z : 0.0f;
    // x ≥ 0: 0.5·x·(2 − erfc(z)); x < 0: 0.5·x·erfc(z). NaN x stays NaN through the product.
    const float factor = x < 0.0f ? erfc_z : 2.0f - erfc_z;
    // −inf would give −inf·0; the limit is 0.
    return x < -14.2f ? -0.0f : (0.5f * x) * factor;
}

#define EPILOGUE_CHUNK 64

// The chunk is computed into a local array first, so that `out` may be `acc` itself (in place) and the
// compiler needs no overlap checks to vectorise.
static ALWAYS_INLINE void dequantize_body(const int32_t *acc, size_t rows, size_t cols, size_t ld_acc,
                                          const float *row_scale, const float *col_scale, const float *bias,
                                          int has_bias, i8_epilogue kind, float *out, size_t ld_out) {
    for (size_t r = 0; r < rows; r++) {
        const int32_t *source = acc + r * ld_acc;
        float *target = out + r * ld_out;
        const float scale = row_scale[r];
        for (size_t c0 = 0; c0 < cols; c0 += EPILOGUE_CHUNK) {
            const size_t count = cols - c0 < EPILOGUE_CHUNK ? cols - c0 : EPILOGUE_CHUNK;
            float value[EPILOGUE_CHUNK];
            for (size_t j = 0; j < count; j++) {
                float v = ((float)source[c0 + j] * scale) * col_scale[c0 + j];
                if (has_bias) v = v + bias[c0 + j];
                value[j] = v;
            }
            // Its long dependency chains (division, two polynomials) need several vectors in flight.
            if (kind == I8_EPILOGUE_GELU_ERF) {
                _Pragma("clang loop interleave_count(4)")
                for (size_t j = 0; j < count; j++) value[j] = gelu_erf(value[j]);
            }
            if (kind == I8_EPILOGUE_RESIDUAL)
                for (size_t j = 0; j < count; j++) target[c0 + j] = target[c0 + j] + value[j];
            else
                for (size_t j = 0; j < count; j++) target[c0 + j] = value[j];
        }
    }
}

// Kind and bias become constants in each expansion, so each inner loop is branch-free.
static ALWAYS_INLINE void dequantize_dispatch(const int32_t *acc, size_t rows, size_t cols, size_t ld_acc,
                                              const float *row_scale, const float *col_scale, const float *bias,
                                              i8_epilogue kind, float *out, size_t ld_out) {
#define DEQUANTIZE_CASE(KIND)                                                                                   \
    if (bias)                                                                                                   \
        dequantize_body(acc, rows, cols, ld_acc, row_scale, col_scale, bias, 1, KIND, out, ld_out);             \
    else                                                                                                        \
        dequantize_body(acc, rows, cols, ld_acc, row_scale, col_scale, bias, 0, KIND, out, ld_out);
    switch (kind) {
    case I8_EPILOGUE_GELU_ERF: DEQUANTIZE_CASE(I8_EPILOGUE_GELU_ERF) break;
    case I8_EPILOGUE_RESIDUAL: DEQUANTIZE_CASE(I8_EPILOGUE_RESIDUAL) break;
    default: DEQUANTIZE_CASE(I8_EPILOGUE_BIAS) break;
    }
#undef DEQUANTIZE_CASE
}

static ALWAYS_INLINE void quantize_body(const float *x, size_t rows, size_t cols, size_t ld_x, int8_t *q,
                                        size_t ld_q, float *row_scale) {
    for (size_t r = 0; r < rows; r++) {
        const float *source = x + r * ld_x;
        int8_t *target = q + r * ld_q;
        // Non-negative floats order like their bit patterns: an integer max, exact and vectorisable.
        uint32_t largest = 0;
        for (size_t j = 0; j < cols; j++) {
            const uint32_t bits = bits_from_float(source[j]) & 0x7FFFFFFFu;
            largest = bits > largest ? bits : largest;
        }
        float scale = float_from_bits(largest) / 127.0f;
        if (scale == 0.0f) scale = 1.0f;  // all zero (or too small for max/127 to be non-zero)
        row_scale[r] = scale;
        // Adding 1.5·2²³ rounds to nearest even and leaves the integer's low byte in the low mantissa bits.
        const float shifter = 12582912.0f;
        for (size_t j = 0; j < cols; j++) {
            float v = source[j] / scale;
            v = v > 127.0f ? 127.0f : v;
            v = v < -127.0f ? -127.0f : v;
            target[j] = (int8_t)(uint8_t)bits_from_float(v + shifter);
        }
    }
}

#if I8_X86
I8_AVX2 static void dequantize_avx2(const int32_t *acc, size_t rows, size_t cols, size_t ld_acc,
                                    const float *row_scale, const float *col_scale, const float *bias,
                                    i8_epilogue kind, float *out, size_t ld_out) {
    dequantize_dispatch(acc, rows, cols, ld_acc, row_scale, col_scale, bias, kind, out, ld_out);
}

I8_AVX2 static void quantize_avx2(const float *x, size_t rows, size_t cols, size_t ld_x, int8_t *q, size_t ld_q,
                                  float *row_scale) {
    quantize_body(x, rows, cols, ld_x, q, ld_q, row_scale);
}
#endif

static void dequantize_plain(const int32_t *acc, size_t rows, size_t cols, size_t ld_acc, const float *row_scale,
                             const float *col_scale, const float *bias, i8_epilogue kind, float *out,
                             size_t ld_out) {
    dequantize_dispatch(acc, rows, cols, ld_acc, row_scale, col_scale, bias, kind, out, ld_out);
}

static void quantize_plain(const float *x, size_t rows, size_t cols, size_t ld_x, int8_t *q, size_t ld_q,
                           float *row_scale) {
    quantize_body(x, rows, cols, ld_x, q, ld_q, row_scale);
}

void i8_dequantize(const int32_t *acc, size_t rows, size_t cols, size_t ld_acc, const float *row_scale,
                   const float *col_scale, const float *bias, i8_epilogue kind, float *out, size_t ld_out) {
    if (rows == 0 || cols == 0) return;
#if I8_X86
    if (cpu_kernel_level() >= CPU_LEVEL_AVX2) {
        dequantize_avx2(acc, rows, cols, ld_acc, row_scale, col_scale, bias, kind, out, ld_out);
        return;
    }
#endif
    dequantize_plain(acc, rows, cols, ld_acc, row_scale, col_scale, bias, kind, out, ld_out);
}

void i8_quantize_rows(const float *x, size_t rows, size_t cols, size_t ld_x, int8_t *q, size_t ld_q,
                      float *row_scale) {
    if (rows == 0) return;
#if I8_X86
    if (cpu_kernel_level() >= CPU_LEVEL_AVX2) {
        quantize_avx2(x, rows, cols, ld_x, q, ld_q, row_scale);
        return;
    }
#endif
    quantize_plain(x, rows, cols, ld_x, q, ld_q, row_scale);
}
