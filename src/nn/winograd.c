/* Winograd F(m x m, r x r) convolution: transforms and GEMMs of one work item (see winograd.h).
 *
 * The transforms are separable: a 2-D transform of a tile is a 1-D transform of its columns
 * followed by a 1-D transform of its rows. Each 1-D transform is a small constant matrix
 * (B^T, A^T or their transposes) applied to alpha (or m) vectors whose lanes are the tiles of
 * one tile row, so every operation is a vector operation over tiles. The matrices are
 * compile-time constants: wt_apply() is inlined into one function per matrix, its loops are
 * unrolled and zero / +-1 coefficients fold away. These functions are compiled for AVX-512,
 * AVX2 and baseline x86-64 (picked at load time); they only multiply by constants and add, in
 * the same order in every version (no contraction: ISO C mode), so all versions agree bit for
 * bit. */
#include "nn/winograd.h"
#include "nn/nn_internal.h"

#include <cblas.h>
#include <string.h>

/* ------------------------------------------------------------------ matrices
 * Cook-Toom with points 0, 1, -1, 2, -2, 1/2, -1/2 (as many as alpha - 1 needs) and infinity;
 * generated exactly (rational arithmetic) and checked: A^T[(G g) .* (B^T d)] is the
 * correlation of d with g. B^T depends on alpha only. B^T and A^T entries are exact in float;
 * G (weights only) is applied in double. */
static const float BT4[4][4] = {{1, 0, -1, 0}, {0, 1, 1, 0}, {0, -1, 1, 0}, {0, -1, 0, 1}};
static const float AT2_4[2][4] = {{1, 1, 1, 0}, {0, 1, -1, 1}};
static const double G2_3[4][3] = {{1, 0, 0}, {0.5, 0.5, 0.5}, {0.5, -0.5, 0.5}, {0, 0, 1}};

static const float BT6[6][6] = {{4, 0, -5, 0, 1, 0},  {0, -4, -4, 1, 1, 0}, {0, 4, -4, -1, 1, 0},
                                {0, -2, -1, 2, 1, 0}, {0, 2, -1, -2, 1, 0}, {0, 4, 0, -5, 0, 1}};
static const float AT4_6[4][6] = {
    {1, 1, 1, 1, 1, 0}, {0, 1, -1, 2, -2, 0}, {0, 1, 1, 4, 4, 0}, {0, 1, -1, 8, -8, 1}};
static const double G4_3[6][3] = {{1.0 / 4, 0, 0},
                                  {-1.0 / 6, -1.0 / 6, -1.0 / 6},
                                  {-1.0 / 6, 1.0 / 6, -1.0 / 6},
                                  {1.0 / 24, 1.0 / 12, 1.0 / 6},
                                  {1.0 / 24, -1.0 / 12, 1.0 / 6},
                                  {0, 0, 1}};
static const float AT2_6[2][6] = {{1, 1, 1, 1, 1, 0}, {0, 1, -1, 2, -2, 1}};
static const double G2_5[6][5] = {{1.0 / 4, 0, 0, 0, 0},
                                  {-1.0 / 6, -1.0 / 6, -1.0 / 6, -1.0 / 6, -1.0 / 6},
                                  {-1.0 / 6, 1.0 / 6, -1.0 / 6, 1.0 / 6, -1.0 / 6},
                                  {1.0 / 24, 1.0 / 12, 1.0 / 6, 1.0 / 3, 2.0 / 3},
                                  {1.0 / 24, -1.0 / 12, 1.0 / 6, -1.0 / 3, 2.0 / 3},
                                  {0, 0, 0, 0, 1}};

static const float BT8[8][8] = {{1, 0, -21.0f / 4, 0, 21.0f / 4, 0, -1, 0},
                                {0, 1, 1, -17.0f / 4, -17.0f / 4, 1, 1, 0},
                                {0, -1, 1, 17.0f / 4, -17.0f / 4, -1, 1, 0},
                                {0, 0.5f, 0.25f, -2.5f, -1.25f, 2, 1, 0},
                                {0, -0.5f, 0.25f, 2.5f, -1.25f, -2, 1, 0},
                                {0, 2, 4, -2.5f, -5, 0.5f, 1, 0},
                                {0, -2, 4, 2.5f, -5, -0.5f, 1, 0},
                                {0, -1, 0, 21.0f / 4, 0, -21.0f / 4, 0, 1}};
static const float AT4_8[4][8] = {{1, 1, 1, 1, 1, 1, 1, 0},
                                  {0, 1, -1, 2, -2, 0.5f, -0.5f, 0},
                                  {0, 1, 1, 4, 4, 0.25f, 0.25f, 0},
                                  {0, 1, -1, 8, -8, 0.125f, -0.125f, 1}};
static const double G4_5[8][5] = {{1, 0, 0, 0, 0},
                                  {-2.0 / 9, -2.0 / 9, -2.0 / 9, -2.0 / 9, -2.0 / 9},
                                  {-2.0 / 9, 2.0 / 9, -2.0 / 9, 2.0 / 9, -2.0 / 9},
                                  {1.0 / 90, 1.0 / 45, 2.0 / 45, 4.0 / 45, 8.0 / 45},
                                  {1.0 / 90, -1.0 / 45, 2.0 / 45, -4.0 / 45, 8.0 / 45},
                                  {32.0 / 45, 16.0 / 45, 8.0 / 45, 4.0 / 45, 2.0 / 45},
                                  {32.0 / 45, -16.0 / 45, 8.0 / 45, -4.0 / 45, 2.0 / 45},
                                  {0, 0, 0, 0, 1}};

/* ------------------------------------------------------------------ 1-D transform kernels
 * out[i][x] (+)= sum_k C[i][k] in[k][x] for i < R, k < K, x < n; C = mat (R x K) or, with tr,
 * the transpose of mat (mat is K x R). Lanes run 16, then 8, then 1 at a time. With acc the result is added to
 * out[i] (the output vectors of one call must not overlap each other or the inputs). */
typedef float v16f __attribute__((vector_size(64)));
typedef float v8f __attribute__((vector_size(32)));
/* unaligned, aliasing views for loads and stores */
typedef float v16u __attribute__((vector_size(64), aligned(4), may_alias));
typedef float v8u __attribute__((vector_size(32), aligned(4), may_alias));

#define WT_INLINE static inline __attribute__((always_inline))
#define ld16(p) (*(const v16u *)(p))
#define st16(p, v) (*(v16u *)(p) = (v))
#define ld8(p) (*(const v8u *)(p))
#define st8(p, v) (*(v8u *)(p) = (v))
#define ld1(p) (*(p))
#define st1(p, v) (*(p) = (v))

#define WT_BODY(T, LD, ST)                                                                    \
    {                                                                                         \
        T v_[8];                                                                              \
        _Pragma("GCC unroll 8") for (int k = 0; k < K; k++) v_[k] = LD(in[k] + x);           \
        _Pragma("GCC unroll 8") for (int i = 0; i < R; i++)                                  \
        {                                                                                     \
            T a_ = v_[0];                                                                     \
            int first_ = 1;                                                                   \
            _Pragma("GCC unroll 8") for (int k = 0; k < K; k++)                              \
            {                                                                                 \
                const float c_ = tr ? mat[k * R + i] : mat[i * K + k];                        \
                if (c_ == 0.0f) continue;                                                     \
                T t_ = c_ == 1.0f ? v_[k] : c_ == -1.0f ? -v_[k] : c_ * v_[k];                \
                a_ = first_ ? t_ : a_ + t_;                                                   \
                first_ = 0;                                                                   \
            }                                                                                 \
            if (acc) a_ = LD(out[i] + x) + a_;                                                \
            ST(out[i] + x, a_);                                                               \
        }                                                                                     \
    }

WT_INLINE void wt_apply(const float *mat, const int R, const int K, const int tr,
                        const float *const *in, float *const *out, int n, int acc)
{
    int x = 0;
    for (; x + 16 <= n; x += 16) WT_BODY(v16f, ld16, st16)
    if (x + 8 <= n) {
        WT_BODY(v8f, ld8, st8)
        x += 8;
    }
    for (; x < n; x++) WT_BODY(float, ld1, st1)
}

typedef void (*wt_fn)(const float *const *in, float *const *out, int n, int acc);

/* NAME applies MAT (R outputs x K inputs) or, with TR, its transpose (MAT is K x R) */
#define WT_KERNEL(NAME, MAT, R, K, TR)                                                        \
    NN_VEC_CLONES static void NAME(const float *const *in, float *const *out, int n, int acc) \
    {                                                                                         \
        wt_apply(&MAT[0][0], R, K, TR, in, out, n, acc);                                      \
    }

WT_KERNEL(wt_bt4, BT4, 4, 4, 0)
WT_KERNEL(wt_b4, BT4, 4, 4, 1)
WT_KERNEL(wt_at2_4, AT2_4, 2, 4, 0)
WT_KERNEL(wt_a2_4, AT2_4, 4, 2, 1)
WT_KERNEL(wt_bt6, BT6, 6, 6, 0)
WT_KERNEL(wt_b6, BT6, 6, 6, 1)
WT_KERNEL(wt_at4_6, AT4_6, 4, 6, 0)
WT_KERNEL(wt_a4_6, AT4_6, 6, 4, 1)
WT_KERNEL(wt_at2_6, AT2_6, 2, 6, 0)
WT_KERNEL(wt_a2_6, AT2_6, 6, 2, 1)
WT_KERNEL(wt_bt8, BT8, 8, 8, 0)
WT_KERNEL(wt_b8, BT8, 8, 8, 1)
WT_KERNEL(wt_at4_8, AT4_8, 4, 8, 0)
WT_KERNEL(wt_a4_8, AT4_8, 8, 4, 1)

typedef struct {
    int m, r;
    wt_fn bt, b;  /* B^T (input transform), B (its adjoint) */
    wt_fn at, a;  /* A^T (output transform), A (its adjoint) */
    const double *g; /* G, alpha x r */
} wino_variant;

static const wino_variant VARIANTS[] = {
    {2, 3, wt_bt4, wt_b4, wt_at2_4, wt_a2_4, &G2_3[0][0]},
    {4, 3, wt_bt6, wt_b6, wt_at4_6, wt_a4_6, &G4_3[0][0]},
    {2, 5, wt_bt6, wt_b6, wt_at2_6, wt_a2_6, &G2_5[0][0]},
    {4, 5, wt_bt8, wt_b8, wt_at4_8, wt_a4_8, &G4_5[0][0]},
};

static const wino_variant *variant_of(int m, int r)
{
    for (size_t i = 0; i < sizeof VARIANTS / sizeof VARIANTS[0]; i++)
        if (VARIANTS[i].m == m && VARIANTS[i].r == r) return &VARIANTS[i];
    return NULL;
}

int wino_supported(int m, int r) { return variant_of(m, r) != NULL; }

/* ------------------------------------------------------------------ plan */

wino_plan wino_plan_make(const conv2d_shape *s, int m, int chunk, int rows)
{
    wino_plan P;
    memset(&P, 0, sizeof P);
    P.m = m;
    P.r = s->kernel;
    P.alpha = m + P.r - 1;
    P.p = P.r / 2;
    P.c_in = s->c_in;
    P.c_out = s->c_out;
    P.h = s->h;
    P.w = s->w;
    P.pad = s->pad;
    P.th = (s->h + m - 1) / m;
    P.tw = (s->w + m - 1) / m;
    P.nt = P.th * P.tw;
    P.chunk = chunk;
    P.trb = chunk > 1 || rows < 1 || rows > P.th ? P.th : rows;
    P.nblk = (P.th + P.trb - 1) / P.trb;
    P.bt = P.trb * P.tw;
    P.hp = m * P.trb + 2 * P.p;
    P.ws = (m * P.tw + 2 * P.p + m - 1) / m;
    P.rl = m * P.ws;
    P.ldt = (size_t)chunk * P.bt;
    /* 16 floats more than a plane, so that the alpha^2 streams written together do not all
     * map to the same cache sets */
    P.vc = (size_t)P.alpha * P.alpha * P.ldt + 16;
    P.vx = P.ldt;
    P.mc = P.vc;
    P.mx = P.ldt;
    const size_t a2 = (size_t)P.alpha * P.alpha, al = (size_t)P.alpha;
    const size_t mtw = (size_t)m * P.tw;
    size_t o = 0;
    P.o_v = o;
    o += (size_t)P.c_in * P.vc;
    P.o_m = o;
    o += (size_t)P.c_out * P.mc;
    P.o_du = o;
    o += a2 * (size_t)P.c_out * P.c_in;
    P.o_pad = o;
    o += (size_t)P.hp * P.rl;
    P.o_tmp = o;
    /* row temporaries: R / dR (alpha x rl), one padded row (rl), W (alpha x tw),
     * S / Z (alpha x m tw), Y / D (m x m tw) */
    o += al * P.rl + P.rl + al * P.tw + al * mtw + (size_t)m * mtw + 64;
    P.total = (o + 15) & ~(size_t)15;
    return P;
}

size_t wino_u_floats(const wino_plan *P) { return (size_t)P->alpha * P->alpha * P->c_out * P->c_in; }

/* ------------------------------------------------------------------ weights */

/* Both run over blocks of WB (c_out, c_in) pairs with the pairs as vector lanes, in double. */
#define WB 32

NN_VEC_CLONES static void weight_transform_block(const double *G, int al, int r, int nb,
                                                 const float *w, float *u, size_t plane)
{
    double g[25][WB], t[8][5][WB];
    const int rr = r * r;
    for (int l = 0; l < nb; l++)
        for (int e = 0; e < rr; e++) g[e][l] = w[(size_t)l * rr + e];
    for (int i = 0; i < al; i++) /* t = G g (alpha x r) */
        for (int b = 0; b < r; b++) {
            for (int l = 0; l < nb; l++) t[i][b][l] = G[i * r] * g[b][l];
            for (int a = 1; a < r; a++)
                for (int l = 0; l < nb; l++) t[i][b][l] += G[i * r + a] * g[a * r + b][l];
        }
    for (int i = 0; i < al; i++) /* U = t G^T */
        for (int j = 0; j < al; j++) {
            double acc[WB];
            for (int l = 0; l < nb; l++) acc[l] = t[i][0][l] * G[j * r];
            for (int b = 1; b < r; b++)
                for (int l = 0; l < nb; l++) acc[l] += t[i][b][l] * G[j * r + b];
            float *ud = u + (size_t)(i * al + j) * plane;
            for (int l = 0; l < nb; l++) ud[l] = (float)acc[l];
        }
}

void wino_weight_transform(const wino_plan *P, const float *weight, float *u)
{
    const wino_variant *V = variant_of(P->m, P->r);
    const size_t plane = (size_t)P->c_out * P->c_in;
    for (size_t oc = 0; oc < plane; oc += WB) {
        int nb = plane - oc < WB ? (int)(plane - oc) : WB;
        weight_transform_block(V->g, P->alpha, P->r, nb, weight + oc * P->r * P->r, u + oc, plane);
    }
}

NN_VEC_CLONES static void weight_adjoint_block(const double *G, int al, int r, int nb,
                                               const float *du, size_t plane, float *dw)
{
    double t[5][8][WB], res[25][WB];
    const int rr = r * r;
    for (int a = 0; a < r; a++) /* t = G^T dU (r x alpha) */
        for (int j = 0; j < al; j++) {
            for (int l = 0; l < nb; l++) t[a][j][l] = G[a] * du[(size_t)j * plane + l];
            for (int i = 1; i < al; i++) {
                const float *d = du + (size_t)(i * al + j) * plane;
                for (int l = 0; l < nb; l++) t[a][j][l] += G[i * r + a] * d[l];
            }
        }
    for (int a = 0; a < r; a++) /* t G */
        for (int b = 0; b < r; b++) {
            for (int l = 0; l < nb; l++) res[a * r + b][l] = t[a][0][l] * G[b];
            for (int j = 1; j < al; j++)
                for (int l = 0; l < nb; l++) res[a * r + b][l] += t[a][j][l] * G[j * r + b];
        }
    for (int l = 0; l < nb; l++)
        for (int e = 0; e < rr; e++) dw[(size_t)l * rr + e] += (float)res[e][l];
}

void wino_weight_adjoint(const wino_plan *P, const float *du, float *d_weight)
{
    const wino_variant *V = variant_of(P->m, P->r);
    const size_t plane = (size_t)P->c_out * P->c_in;
    for (size_t oc = 0; oc < plane; oc += WB) {
        int nb = plane - oc < WB ? (int)(plane - oc) : WB;
        weight_adjoint_block(V->g, P->alpha, P->r, nb, du + oc, plane, d_weight + oc * P->r * P->r);
    }
}

/* ------------------------------------------------------------------ phases
 * deinterleave: d[q * ld + t] = s[m t + q]; interleave_add: d[m t + q] = s[q * ld + t] + add
 * (t < n, q < m), with m a compile-time constant in the common cases. */
WT_INLINE void deint_m(const int m, const float *s, float *d, size_t ld, int n)
{
    for (int t = 0; t < n; t++)
        for (int q = 0; q < m; q++) d[(size_t)q * ld + t] = s[m * t + q];
}

WT_INLINE void int_m(const int m, const float *s, size_t ld, float *d, int n, float add)
{
    for (int t = 0; t < n; t++)
        for (int q = 0; q < m; q++) d[m * t + q] = s[(size_t)q * ld + t] + add;
}

WT_INLINE void deinterleave(int m, const float *s, float *d, size_t ld, int n)
{
    if (m == 4) deint_m(4, s, d, ld, n);
    else if (m == 2) deint_m(2, s, d, ld, n);
    else deint_m(m, s, d, ld, n);
}

WT_INLINE void interleave_add(int m, const float *s, size_t ld, float *d, int n, float add)
{
    if (m == 4) int_m(4, s, ld, d, n, add);
    else if (m == 2) int_m(2, s, ld, d, n, add);
    else int_m(m, s, ld, d, n, add);
}

/* ------------------------------------------------------------------ padding */

static inline int wrap(int i, int n)
{
    i %= n;
    return i < 0 ? i + n : i;
}

static inline int clampi(int i, int n) { return i < 0 ? 0 : (i >= n ? n - 1 : i); }

/* One channel (h x w) -> padded plane of the tile rows [ty0, ty0 + nty): padded rows m ty0 to
 * m (ty0 + nty) + 2p, each m phases of ws floats (padded column x at (x % m) * ws + x / m).
 * Rows / columns beyond h + 2p / w + 2p are zero. row: rl floats. */
NN_VEC_CLONES static void pad_channel(const wino_plan *P, const float *src, float *plane, float *row,
                                      int ty0, int nty)
{
    const int m = P->m, p = P->p, w = P->w, h = P->h, ws = P->ws, rl = P->rl;
    for (int yr = 0; yr < m * nty + 2 * p; yr++) {
        float *d = plane + (size_t)yr * rl;
        int yp = m * ty0 + yr, iy = yp - p;
        if (yp >= h + 2 * p || ((iy < 0 || iy >= h) && P->pad != PAD_REPLICATE)) {
            memset(d, 0, sizeof(float) * (size_t)rl);
            continue;
        }
        const float *sr = src + (size_t)clampi(iy, h) * w;
        for (int j = 0; j < p; j++) {
            int il = j - p, ir = w + j;
            row[j] = P->pad == PAD_ZERO ? 0.0f : P->pad == PAD_PERIODIC_LON ? sr[wrap(il, w)] : sr[0];
            row[p + w + j] = P->pad == PAD_ZERO ? 0.0f
                             : P->pad == PAD_PERIODIC_LON ? sr[wrap(ir, w)] : sr[w - 1];
        }
        memcpy(row + p, sr, sizeof(float) * (size_t)w);
        for (int x = w + 2 * p; x < rl; x++) row[x] = 0.0f;
        deinterleave(m, row, d, (size_t)ws, ws);
    }
}

/* Adjoint of pad_channel: dsrc (h x w) += fold(dplane) by the padding mode. row: rl floats. */
NN_VEC_CLONES static void unpad_channel_acc(const wino_plan *P, const float *dplane, float *dsrc,
                                            float *row, int ty0, int nty)
{
    const int m = P->m, p = P->p, w = P->w, h = P->h, ws = P->ws, rl = P->rl;
    for (int yr = 0; yr < m * nty + 2 * p && m * ty0 + yr < h + 2 * p; yr++) {
        int iy = m * ty0 + yr - p;
        if (iy < 0 || iy >= h) {
            if (P->pad != PAD_REPLICATE) continue;
            iy = clampi(iy, h);
        }
        const float *d = dplane + (size_t)yr * rl;
        interleave_add(m, d, (size_t)ws, row, ws, 0.0f);
        float *r = dsrc + (size_t)iy * w;
        for (int x = 0; x < w; x++) r[x] += row[p + x];
        if (P->pad == PAD_ZERO) continue;
        for (int j = 0; j < p; j++) {
            int il = j - p, ir = w + j;
            if (P->pad == PAD_PERIODIC_LON) {
                r[wrap(il, w)] += row[j];
                r[wrap(ir, w)] += row[p + w + j];
            } else {
                r[0] += row[j];
                r[w - 1] += row[p + w + j];
            }
        }
    }
}

/* ------------------------------------------------------------------ tile transforms */

/* V[xi][.][col + ty * tw + t] = (B^T d B)[xi] for every tile of one padded channel plane;
 * v points at the channel's row of plane 0 (v + xi * vx is plane xi). */
NN_VEC_CLONES static void input_transform(const wino_plan *P, const wino_variant *V, const float *plane,
                            float *v, float *tmp, int nty)
{
    const int al = P->alpha, m = P->m, tw = P->tw, ws = P->ws, rl = P->rl;
    float *R = tmp;
    const float *in[8];
    float *out[8];
    for (int ty = 0; ty < nty; ty++) {
        /* columns: R[i] = sum_k B^T[i][k] row(m ty + k), over whole (phase-ordered) rows */
        for (int k = 0; k < al; k++) in[k] = plane + (size_t)(m * ty + k) * rl;
        for (int i = 0; i < al; i++) out[i] = R + (size_t)i * rl;
        V->bt(in, out, rl, 0);
        /* rows: tile t of row i needs padded columns m t + k = phase k % m, index t + k / m */
        float *vrow = v + (size_t)ty * tw;
        for (int i = 0; i < al; i++) {
            for (int k = 0; k < al; k++) in[k] = R + (size_t)i * rl + (size_t)(k % m) * ws + k / m;
            for (int j = 0; j < al; j++) out[j] = vrow + (size_t)(i * al + j) * P->vx;
            V->bt(in, out, tw, 0);
        }
    }
}

/* Adjoint of input_transform: dplane (zeroed by the caller) += B dV B^T over all tiles. */
NN_VEC_CLONES static void input_adjoint(const wino_plan *P, const wino_variant *V, const float *dv,
                          float *dplane, float *tmp, int nty)
{
    const int al = P->alpha, m = P->m, tw = P->tw, ws = P->ws, rl = P->rl;
    float *dR = tmp, *W = tmp + (size_t)al * rl;
    const float *in[8];
    float *out[8];
    for (int ty = 0; ty < nty; ty++) {
        const float *vrow = dv + (size_t)ty * tw;
        memset(dR, 0, sizeof(float) * (size_t)al * rl);
        for (int i = 0; i < al; i++) {
            for (int j = 0; j < al; j++) in[j] = vrow + (size_t)(i * al + j) * P->vx;
            for (int k = 0; k < al; k++) out[k] = W + (size_t)k * tw;
            V->b(in, out, tw, 0);
            float *ri = dR + (size_t)i * rl;
            for (int k = 0; k < al; k++) {
                float *d = ri + (size_t)(k % m) * ws + k / m;
                const float *wk = W + (size_t)k * tw;
                for (int t = 0; t < tw; t++) d[t] += wk[t];
            }
        }
        for (int i = 0; i < al; i++) in[i] = dR + (size_t)i * rl;
        for (int k = 0; k < al; k++) out[k] = dplane + (size_t)(m * ty + k) * rl;
        V->b(in, out, rl, 1);
    }
}

/* out (one output channel, h x w) = A^T M A (+ bias); mrow: the channel's row of plane 0. */
NN_VEC_CLONES static void output_transform(const wino_plan *P, const wino_variant *V, const float *mrow,
                             float bias, float *outc, float *tmp, int ty0, int nty)
{
    const int al = P->alpha, m = P->m, tw = P->tw, h = P->h, w = P->w;
    const size_t mtw = (size_t)m * tw;
    float *S = tmp, *Y = tmp + (size_t)al * mtw;
    const float *in[8];
    float *out[8];
    for (int ty = 0; ty < nty; ty++) {
        const float *mr = mrow + (size_t)ty * tw;
        /* rows: S[i][q][t] = sum_j A^T[q][j] M[i al + j][t] */
        for (int i = 0; i < al; i++) {
            for (int j = 0; j < al; j++) in[j] = mr + (size_t)(i * al + j) * P->mx;
            for (int q = 0; q < m; q++) out[q] = S + (size_t)i * mtw + (size_t)q * tw;
            V->at(in, out, tw, 0);
        }
        /* columns: Y[p][q][t] = sum_i A^T[p][i] S[i][q][t] */
        for (int i = 0; i < al; i++) in[i] = S + (size_t)i * mtw;
        for (int p = 0; p < m; p++) out[p] = Y + (size_t)p * mtw;
        V->at(in, out, (int)mtw, 0);
        for (int p = 0; p < m && m * (ty0 + ty) + p < h; p++) {
            float *o = outc + (size_t)(m * (ty0 + ty) + p) * w;
            const float *y = Y + (size_t)p * mtw;
            const int nf = w / m; /* full tiles, then the partial one */
            interleave_add(m, y, (size_t)tw, o, nf, bias);
            for (int x = m * nf; x < w; x++) o[x] = y[(size_t)(x - m * nf) * tw + nf] + bias;
        }
    }
}

/* Adjoint of output_transform: dM[xi][.][ty * tw + t] = (A dY A^T)[xi] for one output channel
 * of the gradient; dmrow: the channel's row of plane 0. */
NN_VEC_CLONES static void output_adjoint(const wino_plan *P, const wino_variant *V, const float *dyc,
                           float *dmrow, float *tmp, int ty0, int nty)
{
    const int al = P->alpha, m = P->m, tw = P->tw, h = P->h, w = P->w;
    const size_t mtw = (size_t)m * tw;
    float *Z = tmp, *D = tmp + (size_t)al * mtw;
    const float *in[8];
    float *out[8];
    for (int ty = 0; ty < nty; ty++) {
        /* D[p][q][t] = dY[m ty + p][m t + q], zero beyond the image */
        for (int p = 0; p < m; p++) {
            float *d = D + (size_t)p * mtw;
            int y = m * (ty0 + ty) + p;
            if (y >= h) {
                memset(d, 0, sizeof(float) * mtw);
                continue;
            }
            const float *g = dyc + (size_t)y * w;
            const int nf = w / m;
            deinterleave(m, g, d, (size_t)tw, nf);
            if (nf < tw)
                for (int q = 0; q < m; q++) d[(size_t)q * tw + nf] = m * nf + q < w ? g[m * nf + q] : 0.0f;
        }
        /* columns: Z[i][q][t] = sum_p A^T[p][i] D[p][q][t] */
        for (int p = 0; p < m; p++) in[p] = D + (size_t)p * mtw;
        for (int i = 0; i < al; i++) out[i] = Z + (size_t)i * mtw;
        V->a(in, out, (int)mtw, 0);
        /* rows: dM[i al + j][t] = sum_q A^T[q][j] Z[i][q][t] */
        float *dr = dmrow + (size_t)ty * tw;
        for (int i = 0; i < al; i++) {
            for (int q = 0; q < m; q++) in[q] = Z + (size_t)i * mtw + (size_t)q * tw;
            for (int j = 0; j < al; j++) out[j] = dr + (size_t)(i * al + j) * P->mx;
            V->a(in, out, tw, 0);
        }
    }
}

/* ------------------------------------------------------------------ work items */

static void transform_inputs(const wino_plan *P, const wino_variant *V, int nsamp, int ty0, int nty,
                             const float *in, float *tb)
{
    const size_t hw = (size_t)P->h * P->w;
    float *v = tb + P->o_v, *plane = tb + P->o_pad, *tmp = tb + P->o_tmp;
    float *row = tmp + (size_t)P->alpha * P->rl;
    for (int j = 0; j < nsamp; j++)
        for (int ch = 0; ch < P->c_in; ch++) {
            pad_channel(P, in + ((size_t)j * P->c_in + ch) * hw, plane, row, ty0, nty);
            input_transform(P, V, plane, v + (size_t)ch * P->vc + (size_t)j * P->bt, tmp, nty);
        }
}

void wino_forward(const wino_plan *P, int nsamp, int blk, float *out, const float *in,
                  const float *u, const float *bias, float *tb)
{
    const wino_variant *V = variant_of(P->m, P->r);
    const int ty0 = blk * P->trb, nty = P->th - ty0 < P->trb ? P->th - ty0 : P->trb;
    /* the tiles in use: a partial last block leaves the rest of V / M stale */
    const size_t hw = (size_t)P->h * P->w, T = (size_t)(nsamp - 1) * P->bt + (size_t)nty * P->tw;
    const int a2 = P->alpha * P->alpha;
    float *v = tb + P->o_v, *mm = tb + P->o_m, *tmp = tb + P->o_tmp;
    transform_inputs(P, V, nsamp, ty0, nty, in, tb);
    for (int xi = 0; xi < a2; xi++)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, P->c_out, (int)T, P->c_in, 1.0f,
                    u + (size_t)xi * P->c_out * P->c_in, P->c_in, v + (size_t)xi * P->vx,
                    (int)P->vc, 0.0f, mm + (size_t)xi * P->mx, (int)P->mc);
    for (int j = 0; j < nsamp; j++)
        for (int co = 0; co < P->c_out; co++)
            output_transform(P, V, mm + (size_t)co * P->mc + (size_t)j * P->bt, bias ? bias[co] : 0.0f,
                             out + ((size_t)j * P->c_out + co) * hw, tmp, ty0, nty);
}

void wino_backward(const wino_plan *P, int nsamp, int blk, float *d_in, const float *d_out,
                   const float *in, const float *u, float *tb)
{
    const wino_variant *V = variant_of(P->m, P->r);
    const int ty0 = blk * P->trb, nty = P->th - ty0 < P->trb ? P->th - ty0 : P->trb;
    /* the tiles in use: a partial last block leaves the rest of V / M stale */
    const size_t hw = (size_t)P->h * P->w, T = (size_t)(nsamp - 1) * P->bt + (size_t)nty * P->tw;
    const int a2 = P->alpha * P->alpha;
    float *v = tb + P->o_v, *mm = tb + P->o_m, *du = tb + P->o_du;
    float *plane = tb + P->o_pad, *tmp = tb + P->o_tmp;
    float *row = tmp + (size_t)P->alpha * P->rl;
    transform_inputs(P, V, nsamp, ty0, nty, in, tb);
    for (int j = 0; j < nsamp; j++)
        for (int co = 0; co < P->c_out; co++)
            output_adjoint(P, V, d_out + ((size_t)j * P->c_out + co) * hw,
                           mm + (size_t)co * P->mc + (size_t)j * P->bt, tmp, ty0, nty);
    for (int xi = 0; xi < a2; xi++)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, P->c_out, P->c_in, (int)T, 1.0f,
                    mm + (size_t)xi * P->mx, (int)P->mc, v + (size_t)xi * P->vx,
                    (int)P->vc, 1.0f, du + (size_t)xi * P->c_out * P->c_in, P->c_in);
    if (!d_in) return;
    for (int xi = 0; xi < a2; xi++) /* dV overwrites V */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, P->c_in, (int)T, P->c_out, 1.0f,
                    u + (size_t)xi * P->c_out * P->c_in, P->c_in, mm + (size_t)xi * P->mx,
                    (int)P->mc, 0.0f, v + (size_t)xi * P->vx, (int)P->vc);
    for (int j = 0; j < nsamp; j++)
        for (int ch = 0; ch < P->c_in; ch++) {
            memset(plane, 0, sizeof(float) * (size_t)(P->m * nty + 2 * P->p) * P->rl);
            input_adjoint(P, V, v + (size_t)ch * P->vc + (size_t)j * P->bt, plane, tmp, nty);
            unpad_channel_acc(P, plane, d_in + ((size_t)j * P->c_in + ch) * hw, row, ty0, nty);
        }
}
