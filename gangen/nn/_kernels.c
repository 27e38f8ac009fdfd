/* Batched float32 matrix products for the ensemble engine (gangen.nn.native), AVX-512.
 *
 * Why: torch's float32 CPU matmul (MKL) takes its AVX2 path on AMD processors, so on an
 * AVX-512 machine it runs at half the FMA throughput the cores have. These kernels are
 * plain register-blocked loops: for each member of the batch, an output panel of R rows x
 * (16 NV) columns stays in R * NV zmm accumulators while the reduction index runs; one
 * row of the right operand is loaded per step and every row of the panel broadcasts its
 * left operand. Columns beyond N are masked, so any shape works.
 *
 * Every output element is a sequential sum over the reduction index, started from the
 * bias (or from C when accumulating): the arithmetic of a member does not depend on the
 * other members of the batch.
 *
 * Compiled at first use by gangen/nn/native.py with the system C compiler; the kernels
 * carry target("avx512f") so the file compiles anywhere on x86-64, and the caller runs
 * them only when gangen_cpu_has_avx512() says the processor has AVX-512F.
 */
#include <stddef.h>
#include <stdlib.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

int gangen_cpu_has_avx512(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") ? 1 : 0;
}

#define TGT __attribute__((target("avx512f,fma")))
#define FULL ((__mmask16)0xFFFF)

/* Activation codes of the fused epilogues (gangen.nn.native.ACTIVATIONS). */
#define ACT_NONE 0
#define ACT_RELU 1
#define ACT_LEAKY 2

/* z -> relu(z) = max(z, 0), or leaky(z) = z > 0 ? z : slope z (torch's definitions; NaN stays
 * NaN: max_ps returns its second operand when either is NaN). */
TGT static inline __m512 activate(__m512 z, int act, __m512 slope) {
    if (act == ACT_RELU) return _mm512_max_ps(_mm512_setzero_ps(), z);
    if (act == ACT_LEAKY)
        return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(z, _mm512_setzero_ps(), _CMP_GT_OQ),
                                    _mm512_mul_ps(z, slope), z);
    return z;
}

/* d -> d * act'(z) written from the stored output a = act(z), as torch does it: relu passes d
 * unless a <= 0 (threshold_backward; a NaN passes d), leaky_relu passes d where a > 0 and
 * slope d elsewhere (leaky_relu_backward with the result as input). */
TGT static inline __m512 activation_backward(__m512 d, __m512 a, int act, __m512 slope) {
    if (act == ACT_NONE) return d;
    if (act == ACT_RELU) return _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(a, _mm512_setzero_ps(), _CMP_NLE_UQ), d);
    __mmask16 pos = _mm512_cmp_ps_mask(a, _mm512_setzero_ps(), _CMP_GT_OQ);
    return _mm512_mask_blend_ps(pos, _mm512_mul_ps(d, slope), d);
}

/* The register-blocked panel of every product: for output rows r < rows,
 *   C[r, :] = act(init + sum_k A[r * a_row + k * a_step] * B[k, :]),
 * init = C (acc), the bias row, or 0, the sum sequential in k. A @ B reads A by rows
 * (a_row = lda, a_step = 1); A^T @ G reads A by columns (a_row = 1, a_step = lda).
 * Columns: NV vectors of 16, the last one masked by m. */
#define DEF_PANEL(R, NV)                                                                           \
    TGT static void panel_##R##_##NV(int rows, const float *A, long a_row, long a_step,              \
                                     const float *B, long ldb, const float *bias, float *C,         \
                                     long ldc, long K, __mmask16 m, int acc, int act,               \
                                     __m512 slope) {                                                \
        __m512 c[R][NV];                                                                           \
        _Pragma("GCC unroll 32") for (int r = 0; r < R; r++) {                                     \
            _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++) {                                 \
                __mmask16 mv = (v == NV - 1) ? m : FULL;                                           \
                if (acc && r < rows)                                                               \
                    c[r][v] = _mm512_maskz_loadu_ps(mv, C + r * ldc + 16 * v);                     \
                else if (bias)                                                                     \
                    c[r][v] = _mm512_maskz_loadu_ps(mv, bias + 16 * v);                            \
                else                                                                               \
                    c[r][v] = _mm512_setzero_ps();                                                 \
            }                                                                                      \
        }                                                                                          \
        for (long k = 0; k < K; k++) {                                                             \
            __m512 b[NV];                                                                          \
            const float *ak = A + k * a_step;                                                      \
            _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++)                                   \
                b[v] = _mm512_maskz_loadu_ps((v == NV - 1) ? m : FULL, B + k * ldb + 16 * v);      \
            _Pragma("GCC unroll 32") for (int r = 0; r < R; r++) {                                 \
                if (r < rows) {                                                                    \
                    __m512 a = _mm512_set1_ps(ak[r * a_row]);                                      \
                    _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++)                           \
                        c[r][v] = _mm512_fmadd_ps(a, b[v], c[r][v]);                               \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
        _Pragma("GCC unroll 32") for (int r = 0; r < R; r++) {                                     \
            if (r < rows) {                                                                        \
                _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++)                               \
                    _mm512_mask_storeu_ps(C + r * ldc + 16 * v, (v == NV - 1) ? m : FULL,          \
                                          activate(c[r][v], act, slope));                          \
            }                                                                                      \
        }                                                                                          \
    }

/* register blocks: R rows x NV vectors, R * NV <= 24 accumulators (of 32 zmm registers) */
DEF_PANEL(6, 4)
DEF_PANEL(8, 3)
DEF_PANEL(12, 2)
DEF_PANEL(24, 1)

/* The panel for NV vectors (1..4), with its row count rows_for(NV). */
TGT static void panel(int nv, int rows, const float *A, long a_row, long a_step, const float *B, long ldb,
                      const float *bias, float *C, long ldc, long K, __mmask16 m, int acc, int act,
                      __m512 slope) {
    switch (nv) {
    case 4: panel_6_4(rows, A, a_row, a_step, B, ldb, bias, C, ldc, K, m, acc, act, slope); break;
    case 3: panel_8_3(rows, A, a_row, a_step, B, ldb, bias, C, ldc, K, m, acc, act, slope); break;
    case 2: panel_12_2(rows, A, a_row, a_step, B, ldb, bias, C, ldc, K, m, acc, act, slope); break;
    default: panel_24_1(rows, A, a_row, a_step, B, ldb, bias, C, ldc, K, m, acc, act, slope); break;
    }
}

static int rows_for(int nv) { return nv == 4 ? 6 : nv == 3 ? 8 : nv == 2 ? 12 : 24; }

static __mmask16 lanes(long n) { /* the first min(n, 16) lanes of a vector, n >= 1 */
    return n >= 16 ? FULL : (__mmask16)((1u << n) - 1u);
}

static __mmask16 last_mask(long cols) { /* cols in 1..64 of the panel; mask of its last vector */
    return lanes(cols - 16 * ((cols - 1) / 16));
}

/* One member: C (M x N) = act([bias +] A (M x K) @ B (K x N)), or C = act(C + A @ B) (acc). */
TGT static void nn_member(long M, long K, long N, const float *A, long lda, const float *B, long ldb,
                          const float *bias, float *C, long ldc, int acc, int act, float slope) {
    __m512 vslope = _mm512_set1_ps(slope);
    for (long j0 = 0; j0 < N; j0 += 64) {
        long cols = N - j0 < 64 ? N - j0 : 64;
        int nv = (int)((cols + 15) / 16), R = rows_for(nv);
        __mmask16 m = last_mask(cols);
        const float *bj = bias ? bias + j0 : NULL;
        for (long i0 = 0; i0 < M; i0 += R) {
            int rows = (int)(M - i0 < R ? M - i0 : R);
            const float *a = A + i0 * lda;
            float *c = C + i0 * ldc + j0;
            panel(nv, rows, a, lda, 1, B + j0, ldb, bj, c, ldc, K, m, acc, act, vslope);
        }
    }
}

/* Batched C[b] = act([bias[b] +] A[b] @ B[b]) (acc = 0) or C[b] = act(C[b] + A[b] @ B[b]) (acc = 1).
 * A[b] is M x K with row stride lda, B[b] K x N (ldb), C[b] M x N (ldc), bias[b] a row of N
 * (may be NULL); sX are the batch strides, all in floats; columns are contiguous.
 * act: ACT_NONE, ACT_RELU or ACT_LEAKY (negative slope ``slope``). */
TGT void gangen_bmm_nn(long batch, long M, long K, long N, const float *A, long sA, long lda,
                       const float *B, long sB, long ldb, const float *bias, long sbias, float *C,
                       long sC, long ldc, int acc, int act, float slope) {
    for (long b = 0; b < batch; b++)
        nn_member(M, K, N, A + b * sA, lda, B + b * sB, ldb, bias ? bias + b * sbias : NULL,
                  C + b * sC, ldc, acc, act, slope);
}

/* Batched C[b] (K x N) = A[b]^T @ G[b] (acc = 0) or C[b] += A[b]^T @ G[b] (acc = 1), with
 * A[b] M x K (lda), G[b] M x N (ldg): the weight gradient of a layer. If gb is not NULL it
 * also writes (acc = 0) or adds (acc = 1) the column sums of G[b], the bias gradient, to the
 * row gb + b * sgb (a sequential sum over the M rows). */
TGT void gangen_bmm_tn(long batch, long M, long K, long N, const float *A, long sA, long lda,
                       const float *G, long sG, long ldg, float *C, long sC, long ldc, float *gb,
                       long sgb, int acc) {
    __m512 zero = _mm512_setzero_ps();
    for (long b = 0; b < batch; b++) {
        const float *Ab = A + b * sA, *Gb = G + b * sG;
        float *Cb = C + b * sC;
        for (long j0 = 0; j0 < N; j0 += 64) {
            long cols = N - j0 < 64 ? N - j0 : 64;
            int nv = (int)((cols + 15) / 16), R = rows_for(nv);
            __mmask16 m = last_mask(cols);
            for (long a0 = 0; a0 < K; a0 += R) {
                int rows = (int)(K - a0 < R ? K - a0 : R);
                const float *a = Ab + a0;
                const float *g = Gb + j0;
                float *c = Cb + a0 * ldc + j0;
                panel(nv, rows, a, 1, lda, g, ldg, NULL, c, ldc, M, m, acc, ACT_NONE, zero);
            }
        }
        if (gb) {
            float *out = gb + b * sgb;
            for (long j0 = 0; j0 < N; j0 += 16) {
                __mmask16 m = lanes(N - j0);
                __m512 s = acc ? _mm512_maskz_loadu_ps(m, out + j0) : _mm512_setzero_ps();
                for (long i = 0; i < M; i++) s = _mm512_add_ps(s, _mm512_maskz_loadu_ps(m, Gb + i * ldg + j0));
                _mm512_mask_storeu_ps(out + j0, m, s);
            }
        }
    }
}

/* Batched C[b] (M x K) = (G[b] (M x N) @ W[b]^T) * act'(Z[b]), W[b] K x N (ldw): the gradient with
 * respect to a layer's input, times the derivative of the activation that produced it, written
 * from that activation's stored output Hact[b] (M x K, ldh; ignored when act = ACT_NONE).
 * W[b] is transposed into a scratch buffer first (K N floats, small next to the M K N
 * multiply-adds). Returns 0, or -1 if the scratch allocation fails. */
TGT int gangen_bmm_nt(long batch, long M, long N, long K, const float *G, long sG, long ldg,
                      const float *W, long sW, long ldw, float *C, long sC, long ldc,
                      const float *H, long sH, long ldh, int act, float slope) {
    float *Wt = (float *)malloc((size_t)(K * N > 0 ? K * N : 1) * sizeof(float));
    if (!Wt) return -1;
    __m512 vslope = _mm512_set1_ps(slope);
    for (long b = 0; b < batch; b++) {
        const float *Wb = W + b * sW;
        for (long a = 0; a < K; a++)
            for (long c = 0; c < N; c++) Wt[c * K + a] = Wb[a * ldw + c];
        float *Cb = C + b * sC;
        nn_member(M, N, K, G + b * sG, ldg, Wt, K, NULL, Cb, ldc, 0, ACT_NONE, 0.0f);
        if (act != ACT_NONE) {
            const float *Hb = H + b * sH;
            for (long i = 0; i < M; i++)
                for (long j0 = 0; j0 < K; j0 += 16) {
                    __mmask16 m = lanes(K - j0);
                    __m512 d = _mm512_maskz_loadu_ps(m, Cb + i * ldc + j0);
                    __m512 h = _mm512_maskz_loadu_ps(m, Hb + i * ldh + j0);
                    _mm512_mask_storeu_ps(Cb + i * ldc + j0, m, activation_backward(d, h, act, vslope));
                }
        }
    }
    free(Wt);
    return 0;
}

/* Batched o[b] (M x 1) = H[b] (M x K, ldh) @ w[b] (K floats, contiguous) [+ bias[b]]: the
 * single-output layer. Each row is a dot product over K (16 lanes, then a lane reduction). */
TGT void gangen_bmv(long batch, long M, long K, const float *H, long sH, long ldh, const float *w,
                    long sw, const float *bias, long sbias, float *o, long so, long ldo) {
    for (long b = 0; b < batch; b++) {
        const float *Hb = H + b * sH, *wb = w + b * sw;
        float c = bias ? bias[b * sbias] : 0.0f;
        for (long i = 0; i < M; i++) {
            const float *h = Hb + i * ldh;
            __m512 acc = _mm512_setzero_ps();
            for (long k = 0; k < K; k += 16) {
                __mmask16 m = lanes(K - k);
                acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, h + k), _mm512_maskz_loadu_ps(m, wb + k), acc);
            }
            o[b * so + i * ldo] = _mm512_reduce_add_ps(acc) + c;
        }
    }
}

/* One Adam step over n floats, torch.optim.Adam's formulas written out (equal up to float32
 * rounding: the compiler may fuse a multiply and an add):
 * m <- m + (1 - beta1) (g - m); v <- beta2 v + (1 - beta2) g^2;
 * p <- p - step_size m / (sqrt(v) / bc2_sqrt + eps). */
TGT void gangen_adam(long n, float *p, const float *g, float *m, float *v, float step_size,
                     float beta1, float beta2, float bc2_sqrt, float eps) {
    __m512 w1 = _mm512_set1_ps(1.0f - beta1), b2 = _mm512_set1_ps(beta2), w2 = _mm512_set1_ps(1.0f - beta2);
    __m512 s = _mm512_set1_ps(step_size), c2 = _mm512_set1_ps(bc2_sqrt), e = _mm512_set1_ps(eps);
    for (long i = 0; i < n; i += 16) {
        __mmask16 k = lanes(n - i);
        __m512 gi = _mm512_maskz_loadu_ps(k, g + i), mi = _mm512_maskz_loadu_ps(k, m + i);
        __m512 vi = _mm512_maskz_loadu_ps(k, v + i), pi = _mm512_maskz_loadu_ps(k, p + i);
        mi = _mm512_add_ps(mi, _mm512_mul_ps(w1, _mm512_sub_ps(gi, mi)));
        vi = _mm512_add_ps(_mm512_mul_ps(vi, b2), _mm512_mul_ps(w2, _mm512_mul_ps(gi, gi)));
        __m512 denom = _mm512_add_ps(_mm512_div_ps(_mm512_sqrt_ps(vi), c2), e);
        pi = _mm512_sub_ps(pi, _mm512_mul_ps(s, _mm512_div_ps(mi, denom)));
        _mm512_mask_storeu_ps(m + i, k, mi);
        _mm512_mask_storeu_ps(v + i, k, vi);
        _mm512_mask_storeu_ps(p + i, k, pi);
    }
}

#else /* not x86-64 with GCC/Clang: the library loads, reports no AVX-512, and is never called */
int gangen_cpu_has_avx512(void) { return 0; }
#endif
