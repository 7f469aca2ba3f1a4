/* Sparse SMoE expert evaluation (see smoe_expert.h).
 *
 * Each sample is streamed row by row through a ring of K padded pixel-major (NHWC) input rows
 * of (w + 2p) x c_in floats: when output row h is computed, the ring holds padded input rows
 * h .. h + K - 1 (the padding mode applied when a row is filled, by 8 x 8 block transposes of
 * the NCHW planes), so the K*c_in inputs of one filter row at output pixel (h, w) are one
 * contiguous run and a selected expert costs K dot products of length K*c_in. The ring
 * (K x 33 KB at c_in = 64, w = 128) stays in cache: the input is read from memory once per call
 * and no padded copy of the whole batch (nor an im2col matrix) is built.
 *
 * Forward: per pixel, the selected ranks two at a time (one input load serves two experts).
 * Weight gradient: per output row, the selected (pixel, rank) pairs are grouped by expert
 * (counting sort) and each expert's filter row is accumulated in registers over its pixels.
 * Input gradient, gather form: each padded input row is computed at once as the sum over the
 * taps of d(output pixel) * W_e[tap] (channels in registers, two columns at a time), then folded
 * back onto the NCHW gradient under the padding mode (pad columns onto their source columns;
 * with replicate padding the pad rows are gathered into the first / last row). No scatter, so
 * no read-modify-write of a gradient buffer per selected pixel. With few channels (c_in < 16,
 * at most 16 experts) the padded gradient row is built channel-major instead, vectorised over
 * 16 output pixels with a per-lane lookup of each pixel's expert weight, and needs no transpose.
 *
 * Threads: forward splits (sample, band of rows) items over the team; backward splits samples
 * (a sample's d_in and its own weight-gradient buffer; the buffers are summed in sample order).
 * Items go to threads dynamically (robust to a descheduled thread on a loaded machine) and
 * results do not depend on which thread ran which item, nor on the thread count. The
 * inner loops use GCC vector extensions (16 floats), compiled for x86-64-v4 (AVX-512), v3
 * (AVX2, FMA) and baseline x86-64 and picked at load time; the v3/v4 versions contract
 * multiply-adds into FMAs, so they agree with the baseline to rounding, not bit for bit. */
#include "moe/smoe_expert.h"

#include <string.h>

#include "moe/moe_param.h"

#ifdef _OPENMP
#include <omp.h>
#endif

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && defined(__linux__) && \
    !defined(__SANITIZE_ADDRESS__)
#define MOE_CLONES                                                                              \
    __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default"),                  \
                   optimize("fp-contract=fast")))
#else
#define MOE_CLONES
#endif

typedef float v16 __attribute__((vector_size(64)));
typedef int v16i __attribute__((vector_size(64)));
/* NCHW rows prefetched ahead by the block transposes */
#define SMOE_PF_ROWS 2
#define VL 16
#define LD(p) ({ v16 v_; memcpy(&v_, (p), sizeof v_); v_; })
#define ST(p, v) do { v16 v_ = (v); memcpy((p), &v_, sizeof v_); } while (0)

/* Threads for a kernel call: 1 below ~1 MFLOP, where a parallel region costs more than it saves. */
static int threads_for(const smoe_expert_shape *s)
{
    double work = 2.0 * s->batch * s->h * s->w * s->k * s->c_in * s->kernel * s->kernel;
    return work < 1e6 ? 1 : moe_threads();
}

static inline int wp_of(const smoe_expert_shape *s) { return s->w + 2 * (s->kernel / 2); }
static inline size_t row_floats(const smoe_expert_shape *s) { return (size_t)wp_of(s) * s->c_in; }
static inline size_t wsize_of(const smoe_expert_shape *s)
{
    return (size_t)s->n_experts * s->kernel * s->kernel * s->c_in;
}
/* Per-thread block: weight gradient, input ring, one padded gradient row, the per-row expert
 * lists (counters, pixel, gradient); each rounded up to 16 floats. */
static inline size_t up16(size_t n) { return (n + 15) & ~(size_t)15; }
static inline size_t ring_floats(const smoe_expert_shape *s) { return up16((size_t)s->kernel * row_floats(s)); }
/* Few channels (c_in < 16, at most 16 experts): the input gradient is computed channel-major,
 * vectorised over 16 output pixels, with a per-lane expert lookup in a table of 16-float
 * vectors (lane n = expert n's weight at one tap and channel). */
static inline int small_c(const smoe_expert_shape *s) { return s->c_in < 16 && s->n_experts <= 16; }
static inline size_t table_floats(const smoe_expert_shape *s)
{
    return small_c(s) ? (size_t)s->kernel * s->kernel * s->c_in * 16 : 0;
}
/* row stride of the channel-major padded gradient row (16 floats of slack for the last chunk) */
static inline size_t cm_ld(const smoe_expert_shape *s) { return up16((size_t)wp_of(s)) + 16; }
static inline size_t rbuf_floats(const smoe_expert_shape *s)
{
    size_t a = up16(row_floats(s)), b = small_c(s) ? (size_t)s->c_in * cm_ld(s) : 0;
    return a > b ? a : b;
}
static inline size_t thread_floats(const smoe_expert_shape *s)
{
    return ring_floats(s) + rbuf_floats(s) + up16((size_t)s->n_experts + 1) +
           2 * up16((size_t)s->k * s->w);
}

/* The workspace's first 64-byte boundary: every buffer below starts a multiple of 16 floats
 * after it, so the 64-byte vector loads never straddle two cache lines. */
static inline float *aligned(float *workspace)
{
    uintptr_t a = (uintptr_t)workspace;
    return (float *)((a + 63) & ~(uintptr_t)63);
}

size_t smoe_expert_workspace_floats(const smoe_expert_shape *s)
{
    /* transposed weights, the small-c_in lookup table, one weight gradient per sample, then
     * one scratch block per thread */
    return up16(wsize_of(s)) + table_floats(s) + (size_t)s->batch * up16(wsize_of(s)) +
           (size_t)MOE_MAX_THREADS * thread_floats(s) + 64;
}

static inline float *table_of(const smoe_expert_shape *s, float *workspace)
{
    return aligned(workspace) + up16(wsize_of(s));
}

static inline float *dw_of(const smoe_expert_shape *s, float *workspace, int b)
{
    return table_of(s, workspace) + table_floats(s) + (size_t)b * up16(wsize_of(s));
}

static inline float *thread_block(const smoe_expert_shape *s, float *workspace, int tid)
{
    return dw_of(s, workspace, s->batch) + (size_t)tid * thread_floats(s);
}

static inline int wrapi(int i, int n)
{
    i %= n;
    return i < 0 ? i + n : i;
}

static inline int clampi(int i, int n) { return i < 0 ? 0 : (i >= n ? n - 1 : i); }

/* Source column of padded column wp (0 <= wp < Wp) under the pad mode, -1 for zero. */
static inline int src_col(const smoe_expert_shape *s, int wp)
{
    int w = wp - s->kernel / 2;
    if (w >= 0 && w < s->w) return w;
    if (s->pad == PAD_PERIODIC_LON) return wrapi(w, s->w);
    if (s->pad == PAD_REPLICATE) return clampi(w, s->w);
    return -1;
}

/* Source row of padded row hp, -1 for zero. */
static inline int src_row(const smoe_expert_shape *s, int hp)
{
    int h = hp - s->kernel / 2;
    if (h >= 0 && h < s->h) return h;
    if (s->pad == PAD_REPLICATE) return clampi(h, s->h);
    return -1;
}

typedef float v8 __attribute__((vector_size(32)));
typedef int v8i __attribute__((vector_size(32)));
#define SHUF(a, b, ...) __builtin_shuffle((a), (b), (v8i){__VA_ARGS__})

/* 8 x 8 block transpose: the 8 rows at src + i * ls (8 floats each) become the 8 rows at
 * dst + i * ld, i.e. dst[i][j] (+)= src[j][i]; acc: add instead of store. */
static inline __attribute__((always_inline)) void transpose8(const float *src, size_t ls, float *dst, size_t ld, int acc)
{
    v8 r[8], t[8], u[8], o[8];
    for (int i = 0; i < 8; i++) memcpy(&r[i], src + i * ls, sizeof r[i]);
    for (int i = 0; i < 8; i += 2) {
        t[i] = SHUF(r[i], r[i + 1], 0, 8, 1, 9, 4, 12, 5, 13);
        t[i + 1] = SHUF(r[i], r[i + 1], 2, 10, 3, 11, 6, 14, 7, 15);
    }
    for (int i = 0; i < 8; i += 4) {
        u[i] = SHUF(t[i], t[i + 2], 0, 1, 8, 9, 4, 5, 12, 13);
        u[i + 1] = SHUF(t[i], t[i + 2], 2, 3, 10, 11, 6, 7, 14, 15);
        u[i + 2] = SHUF(t[i + 1], t[i + 3], 0, 1, 8, 9, 4, 5, 12, 13);
        u[i + 3] = SHUF(t[i + 1], t[i + 3], 2, 3, 10, 11, 6, 7, 14, 15);
    }
    for (int i = 0; i < 4; i++) {
        o[i] = SHUF(u[i], u[i + 4], 0, 1, 2, 3, 8, 9, 10, 11);
        o[i + 4] = SHUF(u[i], u[i + 4], 4, 5, 6, 7, 12, 13, 14, 15);
    }
    for (int i = 0; i < 8; i++) {
        if (acc) {
            v8 d;
            memcpy(&d, dst + i * ld, sizeof d);
            o[i] += d;
        }
        memcpy(dst + i * ld, &o[i], sizeof o[i]);
    }
}

/* dst[j * ld + i] (+)= src[i * ls + j] for i < R, j < Cc: 8 x 8 blocks, scalars on the edges.
 * One side is a set of channel planes (the larger stride, often a power of two: planes map to
 * the same cache sets). The blocks are visited so that only 8 planes are live at a time, each
 * swept along its row; 16 x 16 blocks would overflow the ways of an L1 set. pf (floats, 0 =
 * none): while sweeping, prefetch the planes' lines pf floats ahead (a later row of the same
 * planes; the planes are too many short streams for the hardware prefetcher). */
MOE_CLONES
static void transpose_rc(const float *src, size_t ls, int R, int Cc, float *dst, size_t ld, int acc,
                         size_t pf)
{
    const int R8 = R & ~7, C8 = Cc & ~7;
    if (ls >= ld) {
        for (int i0 = 0; i0 < R8; i0 += 8)
            for (int j0 = 0; j0 < C8; j0 += 8) {
                if (pf && (j0 & 15) == 0)
                    for (int i = 0; i < 8; i++) __builtin_prefetch(src + (size_t)(i0 + i) * ls + j0 + pf, 0);
                transpose8(src + (size_t)i0 * ls + j0, ls, dst + (size_t)j0 * ld + i0, ld, acc);
            }
    } else {
        for (int j0 = 0; j0 < C8; j0 += 8)
            for (int i0 = 0; i0 < R8; i0 += 8) {
                if (pf && (i0 & 15) == 0)
                    for (int i = 0; i < 8; i++) __builtin_prefetch(dst + (size_t)(j0 + i) * ld + i0 + pf, 1);
                transpose8(src + (size_t)i0 * ls + j0, ls, dst + (size_t)j0 * ld + i0, ld, acc);
            }
    }
    for (int i = 0; i < R; i++)
        for (int j = (i < R8 ? C8 : 0); j < Cc; j++) {
            const float v = src[(size_t)i * ls + j];
            if (acc) dst[(size_t)j * ld + i] += v;
            else dst[(size_t)j * ld + i] = v;
        }
}

/* dst (Wp x C) = padded row hp of sample in_b (C x H x W). */
static void fill_row(const smoe_expert_shape *s, float *dst, const float *in_b, int hp)
{
    const int C = s->c_in, W = s->w, P = s->kernel / 2, Wp = wp_of(s);
    const size_t HW = (size_t)s->h * W;
    const int sh = src_row(s, hp);
    if (sh < 0) {
        memset(dst, 0, row_floats(s) * sizeof *dst);
        return;
    }
    float *d0 = dst + (size_t)P * C;
    transpose_rc(in_b + (size_t)sh * W, HW, C, W, d0, (size_t)C, 0,
                 sh + SMOE_PF_ROWS < s->h ? (size_t)SMOE_PF_ROWS * W : 0);
    for (int wp = 0; wp < Wp; wp++) {
        if (wp >= P && wp < W + P) continue;
        float *d = dst + (size_t)wp * C;
        int sw = src_col(s, wp);
        if (sw < 0) memset(d, 0, (size_t)C * sizeof *d);
        else memcpy(d, d0 + (size_t)sw * C, (size_t)C * sizeof *d);
    }
}

/* Folds the pad columns of padded gradient row r onto their source columns (in place). */
static void fold_cols(const smoe_expert_shape *s, float *r)
{
    const int C = s->c_in, W = s->w, P = s->kernel / 2, Wp = wp_of(s);
    if (s->pad == PAD_ZERO) return;
    for (int wp = 0; wp < Wp; wp++) {
        if (wp >= P && wp < W + P) continue;
        float *src = r + (size_t)wp * C, *dst = r + (size_t)(src_col(s, wp) + P) * C;
        for (int c = 0; c < C; c++) dst[c] += src[c];
    }
}

/* d_in_b (C x H x W) row sh += interior of padded gradient row r (pad columns folded first). */
static void flush_row(const smoe_expert_shape *s, float *d_in_b, float *r, int sh)
{
    const int C = s->c_in, W = s->w, P = s->kernel / 2;
    fold_cols(s, r);
    transpose_rc(r + (size_t)P * C, (size_t)C, W, C, d_in_b + (size_t)sh * W, (size_t)s->h * W, 1,
                 sh + SMOE_PF_ROWS < s->h ? (size_t)SMOE_PF_ROWS * W : 0);
}

/* wt[e][ky][kx][c] = weight[e][c][ky][kx] */
static void transpose_weight(const smoe_expert_shape *s, float *wt, const float *weight)
{
    const int C = s->c_in, K = s->kernel;
    for (int e = 0; e < s->n_experts; e++)
        for (int c = 0; c < C; c++)
            for (int ky = 0; ky < K; ky++)
                for (int kx = 0; kx < K; kx++)
                    wt[(((size_t)e * K + ky) * K + kx) * C + c] =
                        weight[(((size_t)e * C + c) * K + ky) * K + kx];
}

/* Output row h of one sample: esel[j * hw + w] for every rank j. ring: K padded rows, padded
 * row hp in slot hp % K. idx_row: idx of (sample, rank 0, row h), rank stride hw (NULL: dense).
 * Ranks are taken two at a time so that every input vector loaded serves two experts. */
static inline __attribute__((always_inline)) float hsum16(v16 a)
{
    /* pairwise tree in vector registers (fixed order, depth 4) */
    a += __builtin_shuffle(a, (v16i){8, 9, 10, 11, 12, 13, 14, 15, 8, 9, 10, 11, 12, 13, 14, 15});
    a += __builtin_shuffle(a, (v16i){4, 5, 6, 7, 4, 5, 6, 7, 4, 5, 6, 7, 4, 5, 6, 7});
    a += __builtin_shuffle(a, (v16i){2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3});
    a += __builtin_shuffle(a, (v16i){1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1});
    return a[0];
}

/* Tails shorter than 16 floats: full 16-float loads (the few floats past the end lie inside the
 * workspace or the weight copy) whose extra lanes are cleared after the multiply, so values
 * there (even Inf / NaN) never reach a result; only the n valid lanes are stored. */
#define LANE_MASK(n) ((v16i){0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15} < (n))
#define MASKED(v, m) ((v16)((v16i)(v) & (m)))

MOE_CLONES
static void fwd_row(int W, int C, int K, int k, int h, size_t hw, const float *ring, size_t rowsz,
                    const float *wt, const int32_t *idx_row, float *esel_row)
{
    const int L = K * C, L16 = L & ~(VL - 1);
    const v16i m = LANE_MASK(L - L16);
    for (int w = 0; w < W; w++) {
        int j = 0;
        for (; j + 2 <= k; j += 2) {
            const int e0 = idx_row ? idx_row[(size_t)j * hw + w] : j;
            const int e1 = idx_row ? idx_row[(size_t)(j + 1) * hw + w] : j + 1;
            v16 a0 = {0}, a1 = {0}, b0 = {0}, b1 = {0};
            for (int ky = 0; ky < K; ky++) {
                const float *x = ring + (size_t)((h + ky) % K) * rowsz + (size_t)w * C;
                const float *f = wt + ((size_t)e0 * K + ky) * L, *g = wt + ((size_t)e1 * K + ky) * L;
                int i = 0;
                for (; i + 2 * VL <= L; i += 2 * VL) {
                    const v16 x0 = LD(x + i), x1 = LD(x + i + VL);
                    a0 += x0 * LD(f + i);
                    a1 += x1 * LD(f + i + VL);
                    b0 += x0 * LD(g + i);
                    b1 += x1 * LD(g + i + VL);
                }
                for (; i + VL <= L; i += VL) {
                    const v16 x0 = LD(x + i);
                    a0 += x0 * LD(f + i);
                    b0 += x0 * LD(g + i);
                }
                if (i < L) {
                    const v16 x0 = LD(x + i);
                    a1 += MASKED(x0 * LD(f + i), m);
                    b1 += MASKED(x0 * LD(g + i), m);
                }
            }
            esel_row[(size_t)j * hw + w] = hsum16(a0 + a1);
            esel_row[(size_t)(j + 1) * hw + w] = hsum16(b0 + b1);
        }
        if (j < k) {
            const int e = idx_row ? idx_row[(size_t)j * hw + w] : j;
            v16 a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
            for (int ky = 0; ky < K; ky++) {
                const float *x = ring + (size_t)((h + ky) % K) * rowsz + (size_t)w * C;
                const float *f = wt + ((size_t)e * K + ky) * L;
                int i = 0;
                for (; i + 4 * VL <= L; i += 4 * VL) {
                    a0 += LD(x + i) * LD(f + i);
                    a1 += LD(x + i + VL) * LD(f + i + VL);
                    a2 += LD(x + i + 2 * VL) * LD(f + i + 2 * VL);
                    a3 += LD(x + i + 3 * VL) * LD(f + i + 3 * VL);
                }
                for (; i + VL <= L; i += VL) a0 += LD(x + i) * LD(f + i);
                if (i < L) a1 += MASKED(LD(x + i) * LD(f + i), m);
            }
            esel_row[(size_t)j * hw + w] = hsum16((a0 + a1) + (a2 + a3));
        }
    }
}

/* Weight gradient of output row h of one sample. The selected (pixel, rank) pairs of the row
 * are first grouped by expert (counting sort into list_w / list_d, 1 + n_experts counters in
 * cnt); then for every expert and filter row ky, chunks of 64 floats of dw[e][ky] are held in
 * registers while the expert's pixels are summed in: dw[e][ky] += d * x(row h + ky, from w). */
MOE_CLONES
static void dw_row(int W, int C, int K, int k, int N, int h, size_t hw, const float *ring,
                   size_t rowsz, float *dw, const int32_t *idx_row, const float *d_row,
                   int *cnt, int *list_w, float *list_d)
{
    const int L = K * C;
    memset(cnt, 0, (size_t)(N + 1) * sizeof *cnt);
    for (int j = 0; j < k; j++)
        for (int w = 0; w < W; w++)
            if (d_row[(size_t)j * hw + w] != 0.0f) cnt[1 + (idx_row ? idx_row[(size_t)j * hw + w] : j)]++;
    for (int e = 0; e < N; e++) cnt[e + 1] += cnt[e];
    /* cnt[e] is now the start of expert e's list; advance it while filling */
    for (int j = 0; j < k; j++)
        for (int w = 0; w < W; w++) {
            const float d = d_row[(size_t)j * hw + w];
            if (d == 0.0f) continue;
            const int e = idx_row ? idx_row[(size_t)j * hw + w] : j;
            list_w[cnt[e]] = w;
            list_d[cnt[e]++] = d;
        }
    /* after filling, cnt[e] is the end of list e (= start of list e + 1) */
    for (int e = 0; e < N; e++) {
        const int i0 = e ? cnt[e - 1] : 0, i1 = cnt[e];
        if (i0 == i1) continue;
        for (int ky = 0; ky < K; ky++) {
            const float *xr = ring + (size_t)((h + ky) % K) * rowsz;
            float *g = dw + ((size_t)e * K + ky) * L;
            int c = 0;
            for (; c + 8 * VL <= L; c += 8 * VL) {
                v16 a0 = LD(g + c), a1 = LD(g + c + VL), a2 = LD(g + c + 2 * VL), a3 = LD(g + c + 3 * VL);
                v16 a4 = LD(g + c + 4 * VL), a5 = LD(g + c + 5 * VL), a6 = LD(g + c + 6 * VL),
                    a7 = LD(g + c + 7 * VL);
                for (int i = i0; i < i1; i++) {
                    const float *x = xr + (size_t)list_w[i] * C + c;
                    const v16 dv = (v16){0} + list_d[i];
                    a0 += dv * LD(x);
                    a1 += dv * LD(x + VL);
                    a2 += dv * LD(x + 2 * VL);
                    a3 += dv * LD(x + 3 * VL);
                    a4 += dv * LD(x + 4 * VL);
                    a5 += dv * LD(x + 5 * VL);
                    a6 += dv * LD(x + 6 * VL);
                    a7 += dv * LD(x + 7 * VL);
                }
                ST(g + c, a0);
                ST(g + c + VL, a1);
                ST(g + c + 2 * VL, a2);
                ST(g + c + 3 * VL, a3);
                ST(g + c + 4 * VL, a4);
                ST(g + c + 5 * VL, a5);
                ST(g + c + 6 * VL, a6);
                ST(g + c + 7 * VL, a7);
            }
            for (; c + 4 * VL <= L; c += 4 * VL) {
                v16 a0 = LD(g + c), a1 = LD(g + c + VL), a2 = LD(g + c + 2 * VL), a3 = LD(g + c + 3 * VL);
                for (int i = i0; i < i1; i++) {
                    const float *x = xr + (size_t)list_w[i] * C + c;
                    const v16 dv = (v16){0} + list_d[i];
                    a0 += dv * LD(x);
                    a1 += dv * LD(x + VL);
                    a2 += dv * LD(x + 2 * VL);
                    a3 += dv * LD(x + 3 * VL);
                }
                ST(g + c, a0);
                ST(g + c + VL, a1);
                ST(g + c + 2 * VL, a2);
                ST(g + c + 3 * VL, a3);
            }
            for (; c + VL <= L; c += VL) {
                v16 a0 = LD(g + c);
                for (int i = i0; i < i1; i++)
                    a0 += ((v16){0} + list_d[i]) * LD(xr + (size_t)list_w[i] * C + c);
                ST(g + c, a0);
            }
            if (c < L) {
                const v16i m = LANE_MASK(L - c);
                v16 a0 = {0};
                for (int i = i0; i < i1; i++)
                    a0 += MASKED(((v16){0} + list_d[i]) * LD(xr + (size_t)list_w[i] * C + c), m);
                for (int q = 0; q < L - c; q++) g[c + q] += a0[q];
            }
        }
    }
}

/* Input gradient at padded row hp of one sample, gather form: for every padded column wp,
 * r[wp] += sum over taps (ky, kx) and ranks j of d(h, w) * W_e[ky][kx] with (h, w) =
 * (hp - ky, wp - kx) a valid output pixel and e its rank-j expert. d_b / idx_b: sample b's
 * (k, H, W) planes (idx_b NULL: dense). Channels are held in registers, in chunks of 64; two
 * neighbouring columns are summed together where both have every kx tap (independent
 * accumulator chains for the FMA pipes). */
typedef struct {
    int H, W, C, K, k, hp, ky0, ky1;
    size_t hw;
    const float *wt, *d_b;
    const int32_t *idx_b;
} dx_ctx;

/* Channels [c, C) of column wp, taps kx0 .. kx1-1. */
static inline __attribute__((always_inline)) void dx_col(const dx_ctx *x, int wp, int kx0, int kx1,
                                                         int c, float *dst)
{
    const int C = x->C, K = x->K;
    for (; c + 4 * VL <= C; c += 4 * VL) {
        v16 a0 = LD(dst + c), a1 = LD(dst + c + VL), a2 = LD(dst + c + 2 * VL), a3 = LD(dst + c + 3 * VL);
        for (int ky = x->ky0; ky < x->ky1; ky++)
            for (int kx = kx0; kx < kx1; kx++) {
                const size_t p = (size_t)(x->hp - ky) * x->W + (wp - kx);
                for (int j = 0; j < x->k; j++) {
                    const float d = x->d_b[(size_t)j * x->hw + p];
                    if (d == 0.0f) continue;
                    const int e = x->idx_b ? x->idx_b[(size_t)j * x->hw + p] : j;
                    const float *f = x->wt + (((size_t)e * K + ky) * K + kx) * C + c;
                    const v16 dv = (v16){0} + d;
                    a0 += dv * LD(f);
                    a1 += dv * LD(f + VL);
                    a2 += dv * LD(f + 2 * VL);
                    a3 += dv * LD(f + 3 * VL);
                }
            }
        ST(dst + c, a0);
        ST(dst + c + VL, a1);
        ST(dst + c + 2 * VL, a2);
        ST(dst + c + 3 * VL, a3);
    }
    for (; c + VL <= C; c += VL) {
        v16 a0 = LD(dst + c);
        for (int ky = x->ky0; ky < x->ky1; ky++)
            for (int kx = kx0; kx < kx1; kx++) {
                const size_t p = (size_t)(x->hp - ky) * x->W + (wp - kx);
                for (int j = 0; j < x->k; j++) {
                    const float d = x->d_b[(size_t)j * x->hw + p];
                    if (d == 0.0f) continue;
                    const int e = x->idx_b ? x->idx_b[(size_t)j * x->hw + p] : j;
                    a0 += ((v16){0} + d) * LD(x->wt + (((size_t)e * K + ky) * K + kx) * C + c);
                }
            }
        ST(dst + c, a0);
    }
    if (c < C) {
        const v16i m = LANE_MASK(C - c);
        v16 a0 = {0};
        for (int ky = x->ky0; ky < x->ky1; ky++)
            for (int kx = kx0; kx < kx1; kx++) {
                const size_t p = (size_t)(x->hp - ky) * x->W + (wp - kx);
                for (int j = 0; j < x->k; j++) {
                    const float d = x->d_b[(size_t)j * x->hw + p];
                    if (d == 0.0f) continue;
                    const int e = x->idx_b ? x->idx_b[(size_t)j * x->hw + p] : j;
                    a0 += MASKED(((v16){0} + d) * LD(x->wt + (((size_t)e * K + ky) * K + kx) * C + c), m);
                }
            }
        for (int q = 0; q < C - c; q++) dst[c + q] += a0[q];
    }
}

MOE_CLONES
static void dx_row(int H, int W, int C, int K, int k, int hp, const float *wt, const int32_t *idx_b,
                   const float *d_b, float *r)
{
    dx_ctx x = {H, W, C, K, k, hp, hp - (H - 1) > 0 ? hp - (H - 1) : 0, hp + 1 < K ? hp + 1 : K,
                (size_t)H * W, wt, d_b, idx_b};
    const int Wp = W + K - 1;
    for (int wp = 0; wp < Wp;) {
        if (wp >= K - 1 && wp + 1 <= W - 1 && C >= 4 * VL) {
            /* columns wp and wp + 1, every tap valid for both */
            float *d0 = r + (size_t)wp * C, *d1 = d0 + C;
            int c = 0;
            for (; c + 4 * VL <= C; c += 4 * VL) {
                v16 a0 = LD(d0 + c), a1 = LD(d0 + c + VL), a2 = LD(d0 + c + 2 * VL), a3 = LD(d0 + c + 3 * VL);
                v16 b0 = LD(d1 + c), b1 = LD(d1 + c + VL), b2 = LD(d1 + c + 2 * VL), b3 = LD(d1 + c + 3 * VL);
                for (int ky = x.ky0; ky < x.ky1; ky++)
                    for (int kx = 0; kx < K; kx++) {
                        const size_t p = (size_t)(hp - ky) * W + (wp - kx);
                        for (int j = 0; j < k; j++) {
                            const size_t q = (size_t)j * x.hw + p;
                            const float da = d_b[q], db = d_b[q + 1];
                            const int ea = idx_b ? idx_b[q] : j, eb = idx_b ? idx_b[q + 1] : j;
                            const size_t tap = ((size_t)ky * K + kx) * C + c;
                            if (da != 0.0f) {
                                const float *f = wt + (size_t)ea * K * K * C + tap;
                                const v16 dv = (v16){0} + da;
                                a0 += dv * LD(f);
                                a1 += dv * LD(f + VL);
                                a2 += dv * LD(f + 2 * VL);
                                a3 += dv * LD(f + 3 * VL);
                            }
                            if (db != 0.0f) {
                                const float *f = wt + (size_t)eb * K * K * C + tap;
                                const v16 dv = (v16){0} + db;
                                b0 += dv * LD(f);
                                b1 += dv * LD(f + VL);
                                b2 += dv * LD(f + 2 * VL);
                                b3 += dv * LD(f + 3 * VL);
                            }
                        }
                    }
                ST(d0 + c, a0);
                ST(d0 + c + VL, a1);
                ST(d0 + c + 2 * VL, a2);
                ST(d0 + c + 3 * VL, a3);
                ST(d1 + c, b0);
                ST(d1 + c + VL, b1);
                ST(d1 + c + 2 * VL, b2);
                ST(d1 + c + 3 * VL, b3);
            }
            if (c < C) {
                dx_col(&x, wp, 0, K, c, d0);
                dx_col(&x, wp + 1, 0, K, c, d1);
            }
            wp += 2;
        } else {
            dx_col(&x, wp, wp - (W - 1) > 0 ? wp - (W - 1) : 0, wp + 1 < K ? wp + 1 : K, 0,
                   r + (size_t)wp * C);
            wp++;
        }
    }
}

/* Input gradient at padded row hp, channel-major: rp[c * ld + wp] += sum over taps (ky, kx)
 * and ranks j of d(h, w) * W_e[ky][kx][c], (h, w) = (hp - ky, wp - kx), vectorised over 16
 * output pixels w; the expert of each lane is looked up in tab (lane n = expert n's weight at
 * the tap and channel). Lanes past the row carry d = 0. */
MOE_CLONES
static void dx_row_cm(int H, int W, int C, int K, int k, int hp, const float *tab,
                      const int32_t *idx_b, const float *d_b, float *rp, size_t ld)
{
    const size_t hw = (size_t)H * W;
    const int ky0 = hp - (H - 1) > 0 ? hp - (H - 1) : 0, ky1 = hp + 1 < K ? hp + 1 : K;
    for (int ky = ky0; ky < ky1; ky++) {
        const int h = hp - ky;
        for (int j = 0; j < k; j++) {
            const float *dr = d_b + (size_t)j * hw + (size_t)h * W;
            const int32_t *er = idx_b ? idx_b + (size_t)j * hw + (size_t)h * W : NULL;
            for (int w0 = 0; w0 < W; w0 += VL) {
                v16 dv;
                v16i ev;
                if (w0 + VL <= W) {
                    dv = LD(dr + w0);
                    if (er) memcpy(&ev, er + w0, sizeof ev);
                    else ev = (v16i){0} + j;
                } else {
                    float dt[VL] = {0};
                    int32_t et[VL] = {0};
                    for (int q = 0; q < W - w0; q++) {
                        dt[q] = dr[w0 + q];
                        et[q] = er ? er[w0 + q] : j;
                    }
                    memcpy(&dv, dt, sizeof dv);
                    memcpy(&ev, et, sizeof ev);
                }
                for (int kx = 0; kx < K; kx++) {
                    const float *tk = tab + (size_t)(ky * K + kx) * C * VL;
                    for (int c = 0; c < C; c++) {
                        const v16 wv = __builtin_shuffle(LD(tk + (size_t)c * VL), ev);
                        float *dst = rp + (size_t)c * ld + w0 + kx;
                        ST(dst, LD(dst) + dv * wv);
                    }
                }
            }
        }
    }
}

/* d_in_b row sh += channel-major padded gradient row rp (pad columns folded first). */
static void flush_row_cm(const smoe_expert_shape *s, float *d_in_b, float *rp, size_t ld, int sh)
{
    const int C = s->c_in, W = s->w, P = s->kernel / 2, Wp = wp_of(s);
    const size_t HW = (size_t)s->h * W;
    for (int c = 0; c < C; c++) {
        float *row = rp + (size_t)c * ld;
        if (s->pad != PAD_ZERO)
            for (int wp = 0; wp < Wp; wp++) {
                if (wp >= P && wp < W + P) continue;
                row[src_col(s, wp) + P] += row[wp];
            }
        float *dst = d_in_b + (size_t)c * HW + (size_t)sh * W;
        for (int w = 0; w < W; w++) dst[w] += row[P + w];
    }
}

MOE_CLONES
static void add_rows(float *dst, const float *src, size_t n)
{
    size_t i = 0;
    for (; i + VL <= n; i += VL) ST(dst + i, LD(dst + i) + LD(src + i));
    for (; i < n; i++) dst[i] += src[i];
}

static int thread_id(void)
{
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

int smoe_expert_threads(const smoe_expert_shape *s) { return threads_for(s); }

int smoe_expert_bands(const smoe_expert_shape *s, int nthreads)
{
    int bands = (2 * nthreads + s->batch - 1) / s->batch;
    if (bands > s->h) bands = s->h;
    return bands < 1 ? 1 : bands;
}

void smoe_expert_prepare(const smoe_expert_shape *s, const float *weight, float *workspace)
{
    float *wt = aligned(workspace);
    transpose_weight(s, wt, weight);
    if (small_c(s)) {
        const int C = s->c_in, K = s->kernel;
        float *tab = table_of(s, workspace);
        memset(tab, 0, table_floats(s) * sizeof(float));
        for (int tap = 0; tap < K * K; tap++)
            for (int c = 0; c < C; c++)
                for (int n = 0; n < s->n_experts; n++)
                    tab[((size_t)tap * C + c) * 16 + n] = wt[((size_t)n * K * K + tap) * C + c];
    }
}

void smoe_expert_forward_rows(const smoe_expert_shape *s, int b, int h0, int h1, float *esel,
                              const int32_t *idx, const float *in, float *workspace, int tid)
{
    const int C = s->c_in, H = s->h, W = s->w, K = s->kernel, k = s->k;
    const size_t HW = (size_t)H * W, rowsz = row_floats(s);
    const float *wt = aligned(workspace);
    float *ring = thread_block(s, workspace, tid);
    const float *in_b = in + (size_t)b * C * HW;
    for (int hp = h0; hp < h0 + K - 1; hp++) fill_row(s, ring + (size_t)(hp % K) * rowsz, in_b, hp);
    for (int h = h0; h < h1; h++) {
        const int hp = h + K - 1;
        fill_row(s, ring + (size_t)(hp % K) * rowsz, in_b, hp);
        const size_t o = (size_t)b * k * HW + (size_t)h * W;
        fwd_row(W, C, K, k, h, HW, ring, rowsz, wt, idx ? idx + o : NULL, esel + o);
    }
}

void smoe_expert_forward(const smoe_expert_shape *s, float *esel, const int32_t *idx,
                         const float *in, const float *weight, float *workspace)
{
    const int H = s->h;
    smoe_expert_prepare(s, weight, workspace);
    const int nt = threads_for(s);
    const int bands = smoe_expert_bands(s, nt);
    const int items = s->batch * bands;
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1)
    for (int it = 0; it < items; it++) {
        const int b = it / bands, band = it % bands;
        smoe_expert_forward_rows(s, b, (int)((long)H * band / bands), (int)((long)H * (band + 1) / bands),
                                 esel, idx, in, workspace, thread_id());
    }
}

void smoe_expert_backward_begin(const smoe_expert_shape *s, float *workspace)
{
    for (int b = 0; b < s->batch; b++) memset(dw_of(s, workspace, b), 0, wsize_of(s) * sizeof(float));
}

void smoe_expert_backward_sample(const smoe_expert_shape *s, int b, float *d_in,
                                 const float *d_esel, const int32_t *idx, const float *in,
                                 float *workspace, int tid)
{
    const int C = s->c_in, H = s->h, W = s->w, K = s->kernel, k = s->k, P = K / 2, N = s->n_experts;
    const int Hp = H + 2 * P;
    const size_t HW = (size_t)H * W, rowsz = row_floats(s);
    const float *wt = aligned(workspace);
    float *dw = dw_of(s, workspace, b);
    float *ring = thread_block(s, workspace, tid);
    float *r = ring + ring_floats(s);
    int *cnt = (int *)(r + rbuf_floats(s));
    int *list_w = cnt + up16((size_t)N + 1);
    float *list_d = (float *)(list_w + up16((size_t)k * W));
    const float *in_b = in + (size_t)b * C * HW;
    const int32_t *idx_b = idx ? idx + (size_t)b * k * HW : NULL;
    const float *d_b = d_esel + (size_t)b * k * HW;
    /* weight gradient: input rows streamed through the ring */
    for (int hp = 0; hp < K - 1; hp++) fill_row(s, ring + (size_t)(hp % K) * rowsz, in_b, hp);
    for (int h = 0; h < H; h++) {
        const int hn = h + K - 1;
        fill_row(s, ring + (size_t)(hn % K) * rowsz, in_b, hn);
        dw_row(W, C, K, k, N, h, HW, ring, rowsz, dw, idx_b ? idx_b + (size_t)h * W : NULL,
               d_b + (size_t)h * W, cnt, list_w, list_d);
    }
    if (!d_in) return;
    /* input gradient: one padded gradient row per input row (with replicate padding the pad
     * rows that fold onto the first / last row are gathered into it too) */
    const int rep = s->pad == PAD_REPLICATE;
    float *d_in_b = d_in + (size_t)b * C * HW;
    if (small_c(s)) {
        const float *tab = table_of(s, workspace);
        const size_t ld = cm_ld(s);
        for (int sh = 0; sh < H; sh++) {
            memset(r, 0, (size_t)C * ld * sizeof(float));
            dx_row_cm(H, W, C, K, k, sh + P, tab, idx_b, d_b, r, ld);
            if (rep && sh == 0)
                for (int hp = 0; hp < P; hp++) dx_row_cm(H, W, C, K, k, hp, tab, idx_b, d_b, r, ld);
            if (rep && sh == H - 1)
                for (int hp = H + P; hp < Hp; hp++) dx_row_cm(H, W, C, K, k, hp, tab, idx_b, d_b, r, ld);
            flush_row_cm(s, d_in_b, r, ld, sh);
        }
        return;
    }
    for (int sh = 0; sh < H; sh++) {
        memset(r, 0, rowsz * sizeof(float));
        dx_row(H, W, C, K, k, sh + P, wt, idx_b, d_b, r);
        if (rep && sh == 0)
            for (int hp = 0; hp < P; hp++) dx_row(H, W, C, K, k, hp, wt, idx_b, d_b, r);
        if (rep && sh == H - 1)
            for (int hp = H + P; hp < Hp; hp++) dx_row(H, W, C, K, k, hp, wt, idx_b, d_b, r);
        flush_row(s, d_in_b, r, sh);
    }
}

void smoe_expert_backward_end(const smoe_expert_shape *s, float *d_weight, float *workspace)
{
    const int C = s->c_in, K = s->kernel;
    const size_t wsize = wsize_of(s);
    float *dw0 = dw_of(s, workspace, 0);
    for (int b = 1; b < s->batch; b++) add_rows(dw0, dw_of(s, workspace, b), wsize);
    for (int e = 0; e < s->n_experts; e++)
        for (int c = 0; c < C; c++)
            for (int ky = 0; ky < K; ky++)
                for (int kx = 0; kx < K; kx++)
                    d_weight[(((size_t)e * C + c) * K + ky) * K + kx] +=
                        dw0[(((size_t)e * K + ky) * K + kx) * C + c];
}

void smoe_expert_backward(const smoe_expert_shape *s, float *d_in, float *d_weight,
                          const float *d_esel, const int32_t *idx, const float *in,
                          const float *weight, float *workspace)
{
    smoe_expert_prepare(s, weight, workspace);
    int nt = threads_for(s);
    if (nt > s->batch) nt = s->batch;
    smoe_expert_backward_begin(s, workspace);
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1)
    for (int b = 0; b < s->batch; b++)
        smoe_expert_backward_sample(s, b, d_in, d_esel, idx, in, workspace, thread_id());
    smoe_expert_backward_end(s, d_weight, workspace);
}

void smoe_expert_dense_forward(const smoe_expert_shape *s, float *e, const float *in,
                               const float *weight)
{
    const int C = s->c_in, H = s->h, W = s->w, K = s->kernel, N = s->n_experts;
    for (int b = 0; b < s->batch; b++)
        for (int n = 0; n < N; n++)
            for (int h = 0; h < H; h++)
                for (int w = 0; w < W; w++) {
                    double acc = 0;
                    for (int c = 0; c < C; c++)
                        for (int ky = 0; ky < K; ky++)
                            for (int kx = 0; kx < K; kx++) {
                                int sh = src_row(s, h + ky), sw = src_col(s, w + kx);
                                if (sh < 0 || sw < 0) continue;
                                acc += (double)weight[(((size_t)n * C + c) * K + ky) * K + kx] *
                                       in[(((size_t)b * C + c) * H + sh) * W + sw];
                            }
                    e[(((size_t)b * N + n) * H + h) * W + w] = (float)acc;
                }
}
