/* conv2d: four GEMM strategies on OpenBLAS sgemm, three padding modes, accumulate-style
 * backward.
 *
 *  - Winograd F(2x2, 3x3) (kernel 3, stride 1, c_in >= SHIFT_MIN_CIN): see the section below;
 *    16 GEMMs (c_out x c_in) x (c_in x tiles) replace the 9-tap convolution.
 *  - shift (stride 1, kernel 5, 7, ..., c_in >= SHIFT_MIN_CIN): the input is copied once into a
 *    padded plane of width Wp = w + 2p; for every kernel tap (ki, kj) the shifted padded input
 *    is then a plain (c_in x h*Wp) matrix with leading dimension (h+2p)*Wp, so the convolution
 *    is a sum of k*k GEMMs without any im2col copy (the 2p extra columns per row are computed
 *    and discarded). Weight gradient: k*k GEMMs with K = h*Wp. Input gradient: k*k GEMMs into
 *    a padded gradient plane, folded back according to the padding mode.
 *  - im2col (stride 2, few input channels): classic im2col + one GEMM per chunk of samples
 *    (small images fold several samples into N).
 *  - pointwise (1x1, stride 1): GEMM directly on the input.
 *
 * Threads: with T = min(nn threads, work items) > 1, samples (or sample chunks) are split
 * into T contiguous blocks, one per OpenMP thread, and every sgemm runs single-threaded
 * (OpenBLAS is set to 1 thread for the duration of the call and restored after). Each thread
 * accumulates its weight gradient in a private buffer; the buffers are summed in thread
 * order afterwards. With T == 1 the samples run in order and OpenBLAS uses all nn threads.
 * So results are bit-identical for a fixed thread count. The workspace holds T per-thread
 * buffers: size it (conv2d_workspace_floats) after nn_set_threads(). */
#include "nn/conv2d.h"
#include "nn/nn_internal.h"

#include "nn/threads.h"

#include <cblas.h>
#include <omp.h>
#include <string.h>

/* The elementwise transform loops are compiled for AVX-512 and AVX2 as well as the baseline
 * and picked at load time (GCC function multiversioning). They only add, subtract and move
 * floats elementwise across tiles, so every version gives bit-identical results. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define NN_VEC_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define NN_VEC_CLONES
#endif

/* Fold samples into one im2col GEMM until it has at least this many columns. */
#define CONV_MIN_COLS 1024
/* Fewer input channels than this: im2col (K = c_in*k*k) beats k*k GEMMs with K = c_in. */
#define SHIFT_MIN_CIN 8
/* Winograd: fold samples until a GEMM has at least this many tiles. */
#define WINO_MIN_TILES 512
/* Stride between the 16 transform planes of V / M: 16 floats more than the plane, so that
 * the 16 streams written together do not all map to the same cache sets. */
#define WINO_PLANE(rows, ld) ((size_t)(rows) * (ld) + 16)

int conv2d_out_h(const conv2d_shape *s)
{
    int p = s->kernel / 2;
    return (s->h + 2 * p - s->kernel) / s->stride + 1;
}

int conv2d_out_w(const conv2d_shape *s)
{
    int p = s->kernel / 2;
    return (s->w + 2 * p - s->kernel) / s->stride + 1;
}

int conv2d_shape_valid(const conv2d_shape *s)
{
    return s->batch > 0 && s->c_in > 0 && s->h > 0 && s->w > 0 && s->c_out > 0 &&
           s->kernel > 0 && (s->kernel % 2) == 1 && (s->stride == 1 || s->stride == 2) &&
           (s->pad == PAD_ZERO || s->pad == PAD_PERIODIC_LON || s->pad == PAD_REPLICATE);
}

typedef enum { PATH_POINTWISE, PATH_SHIFT, PATH_WINOGRAD, PATH_IM2COL } conv_path;

static conv_path conv_path_of(const conv2d_shape *s)
{
    if (s->kernel == 1 && s->stride == 1) return PATH_POINTWISE;
    if (s->stride == 1 && s->kernel == 3 && s->c_in >= SHIFT_MIN_CIN) return PATH_WINOGRAD;
    if (s->stride == 1 && s->c_in >= SHIFT_MIN_CIN) return PATH_SHIFT;
    return PATH_IM2COL;
}

/* Samples per work item (im2col folds small images). */
static int conv_chunk(const conv2d_shape *s)
{
    if (conv_path_of(s) == PATH_WINOGRAD) {
        size_t nt = (size_t)((s->h + 1) / 2) * ((s->w + 1) / 2);
        size_t nb = (WINO_MIN_TILES + nt - 1) / nt;
        if (nb > (size_t)s->batch) nb = (size_t)s->batch;
        return nb < 1 ? 1 : (int)nb;
    }
    if (conv_path_of(s) != PATH_IM2COL) return 1;
    size_t ohw = (size_t)conv2d_out_h(s) * conv2d_out_w(s);
    size_t nb = (CONV_MIN_COLS + ohw - 1) / ohw;
    if (nb > (size_t)s->batch) nb = (size_t)s->batch;
    return nb < 1 ? 1 : (int)nb;
}

static int conv_items(const conv2d_shape *s)
{
    int nb = conv_chunk(s);
    return (s->batch + nb - 1) / nb;
}

/* Threads for the sample loop: 1 for small convolutions (below CONV_PAR_MIN_MACS
 * multiply-adds a parallel region costs more than it saves). */
#define CONV_PAR_MIN_MACS (1L << 18)

static int conv_threads(const conv2d_shape *s)
{
    long macs = (long)s->batch * s->c_out * s->c_in * s->kernel * s->kernel *
                conv2d_out_h(s) * conv2d_out_w(s);
    if (macs < CONV_PAR_MIN_MACS) return 1;
    int t = nn_get_threads(), items = conv_items(s);
    if (t > items) t = items;
    return t < 1 ? 1 : t;
}

/* Workspace layout: [shared | thread 0 | thread 1 | ...]. */
typedef struct {
    size_t shared, per_thread;
    /* offsets inside a thread block */
    size_t o_a, o_b, o_c, o_dw, o_t;
} conv_ws;

static conv_ws conv_ws_layout(const conv2d_shape *s)
{
    conv_ws L = {0, 0, 0, 0, 0, 0, 0};
    const int k = s->kernel, p = k / 2;
    const size_t kk = (size_t)k * k, nw = (size_t)s->c_out * s->c_in * kk;
    const size_t ohw = (size_t)conv2d_out_h(s) * conv2d_out_w(s);
    switch (conv_path_of(s)) {
    case PATH_POINTWISE:
        L.o_dw = 0;
        L.per_thread = nw;
        break;
    case PATH_SHIFT: {
        size_t wp = (size_t)s->w + 2 * p, plane = ((size_t)s->h + 2 * p) * wp;
        size_t xpad = (size_t)s->c_in * plane + (size_t)k + 16;
        L.shared = nw;                     /* weights repacked (kk, c_out, c_in) */
        L.o_a = 0;                         /* padded input */
        L.o_b = xpad;                      /* padded output / gradient (c_out, h, Wp) */
        L.o_c = L.o_b + (size_t)s->c_out * s->h * wp; /* padded input gradient */
        L.o_dw = L.o_c + xpad;             /* weight gradient (kk, c_out, c_in) */
        L.per_thread = L.o_dw + nw;
        break;
    }
    case PATH_WINOGRAD: {
        size_t hp = (size_t)(2 * ((s->h + 1) / 2) + 2), wp = (size_t)(2 * ((s->w + 1) / 2) + 2);
        size_t T = (size_t)conv_chunk(s) * ((s->h + 1) / 2) * ((s->w + 1) / 2);
        L.shared = 16 * (size_t)s->c_out * s->c_in;       /* U */
        L.o_a = 0;                                        /* padded sample / its gradient */
        L.o_t = (size_t)s->c_in * hp * wp;                /* row temporaries */
        L.o_b = L.o_t + 8 * wp;                           /* V / dV (16 x c_in x T) */
        L.o_c = L.o_b + 16 * WINO_PLANE(s->c_in, T);      /* M / dM (16 x c_out x T) */
        L.o_dw = L.o_c + 16 * WINO_PLANE(s->c_out, T);    /* dU (16 x c_out x c_in) */
        L.per_thread = L.o_dw + 16 * (size_t)s->c_out * s->c_in;
        break;
    }
    case PATH_IM2COL: {
        size_t cols = (size_t)conv_chunk(s) * ohw, ckk = (size_t)s->c_in * kk;
        L.o_a = 0;                         /* col */
        L.o_b = ckk * cols;                /* d_col */
        L.o_c = 2 * ckk * cols;            /* gathered out / d_out (c_out, cols) */
        L.o_dw = L.o_c + (size_t)s->c_out * cols;
        L.per_thread = L.o_dw + nw;
        break;
    }
    }
    /* keep thread blocks 64-byte apart */
    L.shared = (L.shared + 15) & ~(size_t)15;
    L.per_thread = (L.per_thread + 15) & ~(size_t)15;
    return L;
}

size_t conv2d_workspace_floats(const conv2d_shape *s)
{
    conv_ws L = conv_ws_layout(s);
    return L.shared + (size_t)conv_threads(s) * L.per_thread;
}

static inline int wrap(int i, int n)
{
    i %= n;
    return i < 0 ? i + n : i;
}

static inline int clampi(int i, int n)
{
    return i < 0 ? 0 : (i >= n ? n - 1 : i);
}

/* Range [lo, hi) of output x (or y) whose input index x*st - p + kk lies inside [0, n). */
static void valid_range(int n, int out_n, int st, int p, int kk, int *lo, int *hi)
{
    int off = kk - p; /* input = o*st + off */
    int l = off >= 0 ? 0 : (-off + st - 1) / st;
    int h = (n - 1 - off) < 0 ? 0 : (n - 1 - off) / st + 1;
    if (l > out_n) l = out_n;
    if (h > out_n) h = out_n;
    if (h < l) h = l;
    *lo = l;
    *hi = h;
}

void nn_im2col(const float *img, int c, int h, int w, int k, int st, int p, pad_mode pad,
               int oh, int ow, float *col, size_t ld)
{
    int rows = c * k * k;
#pragma omp parallel for schedule(static) if((long long)rows * oh * ow >= NN_PAR_MIN)
    for (int r = 0; r < rows; r++) {
        int ch = r / (k * k), ki = (r / k) % k, kj = r % k;
        const float *src_c = img + (size_t)ch * h * w;
        float *dst = col + (size_t)r * ld;
        int xlo, xhi;
        valid_range(w, ow, st, p, kj, &xlo, &xhi);
        for (int oy = 0; oy < oh; oy++, dst += ow) {
            int iy = oy * st - p + ki;
            if (iy < 0 || iy >= h) {
                if (pad == PAD_REPLICATE) {
                    iy = clampi(iy, h);
                } else {
                    memset(dst, 0, sizeof(float) * (size_t)ow);
                    continue;
                }
            }
            const float *src = src_c + (size_t)iy * w;
            for (int ox = 0; ox < xlo; ox++) {
                int ix = ox * st - p + kj;
                dst[ox] = pad == PAD_ZERO ? 0.0f
                          : pad == PAD_PERIODIC_LON ? src[wrap(ix, w)] : src[clampi(ix, w)];
            }
            if (st == 1) {
                if (xhi > xlo) memcpy(dst + xlo, src + xlo - p + kj, sizeof(float) * (size_t)(xhi - xlo));
            } else {
                for (int ox = xlo; ox < xhi; ox++) dst[ox] = src[ox * st - p + kj];
            }
            for (int ox = xhi; ox < ow; ox++) {
                int ix = ox * st - p + kj;
                dst[ox] = pad == PAD_ZERO ? 0.0f
                          : pad == PAD_PERIODIC_LON ? src[wrap(ix, w)] : src[clampi(ix, w)];
            }
        }
    }
}

void nn_col2im(const float *col, size_t ld, int c, int h, int w, int k, int st, int p,
               pad_mode pad, int oh, int ow, float *img)
{
    /* Parallel over channels: each thread owns one channel plane of img, and the order of
     * additions inside a plane is fixed, so the result does not depend on the thread count. */
#pragma omp parallel for schedule(static) if((long long)c * k * k * oh * ow >= NN_PAR_MIN)
    for (int ch = 0; ch < c; ch++) {
        float *dst_c = img + (size_t)ch * h * w;
        for (int ki = 0; ki < k; ki++) {
            for (int kj = 0; kj < k; kj++) {
                const float *src = col + ((size_t)(ch * k + ki) * k + kj) * ld;
                int xlo, xhi;
                valid_range(w, ow, st, p, kj, &xlo, &xhi);
                for (int oy = 0; oy < oh; oy++, src += ow) {
                    int iy = oy * st - p + ki;
                    if (iy < 0 || iy >= h) {
                        if (pad == PAD_REPLICATE) iy = clampi(iy, h);
                        else continue;
                    }
                    float *dst = dst_c + (size_t)iy * w;
                    if (pad != PAD_ZERO) {
                        for (int ox = 0; ox < xlo; ox++) {
                            int ix = ox * st - p + kj;
                            dst[pad == PAD_PERIODIC_LON ? wrap(ix, w) : clampi(ix, w)] += src[ox];
                        }
                    }
                    if (st == 1) {
                        for (int ox = xlo; ox < xhi; ox++) dst[ox - p + kj] += src[ox];
                    } else {
                        for (int ox = xlo; ox < xhi; ox++) dst[ox * st - p + kj] += src[ox];
                    }
                    if (pad != PAD_ZERO) {
                        for (int ox = xhi; ox < ow; ox++) {
                            int ix = ox * st - p + kj;
                            dst[pad == PAD_PERIODIC_LON ? wrap(ix, w) : clampi(ix, w)] += src[ox];
                        }
                    }
                }
            }
        }
    }
}


/* ------------------------------------------------------------------ shift path helpers */

/* Padded copy of one sample into planes of hpt x wpt (>= h+2p x w+2p): the border of width
 * p follows the padding mode, rows/columns beyond h+2p / w+2p are zero. */
static void pad_sample(const float *src, int c, int h, int w, int p, pad_mode pad, float *dst,
                       int hpt, int wpt)
{
    const int wp = w + 2 * p;
    for (int ch = 0; ch < c; ch++) {
        const float *sc = src + (size_t)ch * h * w;
        float *dc = dst + (size_t)ch * hpt * wpt;
        for (int yp = 0; yp < hpt; yp++) {
            float *d = dc + (size_t)yp * wpt;
            int iy = yp - p;
            if (iy < 0 || iy >= h) {
                if (pad != PAD_REPLICATE || yp >= h + 2 * p) {
                    memset(d, 0, sizeof(float) * (size_t)wpt);
                    continue;
                }
                iy = clampi(iy, h);
            }
            const float *r = sc + (size_t)iy * w;
            memcpy(d + p, r, sizeof(float) * (size_t)w);
            for (int j = 0; j < p; j++) {
                int il = j - p, ir = w + j;
                d[j] = pad == PAD_ZERO ? 0.0f : pad == PAD_PERIODIC_LON ? r[wrap(il, w)] : r[0];
                d[p + w + j] = pad == PAD_ZERO ? 0.0f : pad == PAD_PERIODIC_LON ? r[wrap(ir, w)] : r[w - 1];
            }
            for (int x = wp; x < wpt; x++) d[x] = 0.0f;
        }
    }
}

/* Adjoint of pad_sample: d_src += fold(d_pad). */
static void unpad_sample_acc(const float *dpad, int c, int h, int w, int p, pad_mode pad,
                             float *dsrc, int hpt, int wpt)
{
    const int hp = h + 2 * p;
    for (int ch = 0; ch < c; ch++) {
        float *sc = dsrc + (size_t)ch * h * w;
        const float *dc = dpad + (size_t)ch * hpt * wpt;
        for (int yp = 0; yp < hp; yp++) {
            const float *d = dc + (size_t)yp * wpt;
            int iy = yp - p;
            if (iy < 0 || iy >= h) {
                if (pad != PAD_REPLICATE) continue;
                iy = clampi(iy, h);
            }
            float *r = sc + (size_t)iy * w;
            for (int x = 0; x < w; x++) r[x] += d[p + x];
            if (pad == PAD_ZERO) continue;
            for (int j = 0; j < p; j++) {
                int il = j - p, ir = w + j;
                if (pad == PAD_PERIODIC_LON) {
                    r[wrap(il, w)] += d[j];
                    r[wrap(ir, w)] += d[p + w + j];
                } else {
                    r[0] += d[j];
                    r[w - 1] += d[p + w + j];
                }
            }
        }
    }
}

/* (c_out, c_in, k, k) -> (k*k, c_out, c_in) */
static void repack_weight(const float *w, int co, int ci, int kk, float *wk)
{
    for (int o = 0; o < co; o++)
        for (int i = 0; i < ci; i++)
            for (int t = 0; t < kk; t++) wk[((size_t)t * co + o) * ci + i] = w[((size_t)o * ci + i) * kk + t];
}

static void shift_forward_sample(const conv2d_shape *s, float *out_b, const float *in_b,
                                 const float *wk, const float *bias, float *tb, const conv_ws *L)
{
    const int k = s->kernel, p = k / 2, wp = s->w + 2 * p, hp = s->h + 2 * p;
    const int n = s->h * wp, plane = hp * wp;
    float *xpad = tb + L->o_a, *opad = tb + L->o_b;
    pad_sample(in_b, s->c_in, s->h, s->w, p, s->pad, xpad, hp, wp);
    /* the shifted views of the last channel read up to k - 2 floats past the planes: those
     * only meet discarded columns or zero gradients, but must not hold NaN from earlier use */
    memset(xpad + (size_t)s->c_in * plane, 0, sizeof(float) * (L->o_b - (size_t)s->c_in * plane));
    for (int t = 0; t < k * k; t++) {
        int off = (t / k) * wp + t % k;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, s->c_out, n, s->c_in, 1.0f,
                    wk + (size_t)t * s->c_out * s->c_in, s->c_in, xpad + off, plane,
                    t ? 1.0f : 0.0f, opad, n);
    }
    const size_t hw = (size_t)s->h * s->w;
    for (int co = 0; co < s->c_out; co++) {
        float bv = bias ? bias[co] : 0.0f;
        for (int y = 0; y < s->h; y++) {
            const float *src = opad + (size_t)co * n + (size_t)y * wp;
            float *dst = out_b + co * hw + (size_t)y * s->w;
            for (int x = 0; x < s->w; x++) dst[x] = src[x] + bv;
        }
    }
}

static void shift_backward_sample(const conv2d_shape *s, float *d_in_b, const float *d_out_b,
                                  const float *in_b, const float *wk, float *tb, const conv_ws *L)
{
    const int k = s->kernel, p = k / 2, wp = s->w + 2 * p, hp = s->h + 2 * p;
    const int n = s->h * wp, plane = hp * wp;
    float *xpad = tb + L->o_a, *gpad = tb + L->o_b, *dxpad = tb + L->o_c, *dwk = tb + L->o_dw;
    const size_t hw = (size_t)s->h * s->w, xpad_n = L->o_b;
    pad_sample(in_b, s->c_in, s->h, s->w, p, s->pad, xpad, hp, wp);
    /* the shifted views of the last channel read up to k - 2 floats past the planes: those
     * only meet discarded columns or zero gradients, but must not hold NaN from earlier use */
    memset(xpad + (size_t)s->c_in * plane, 0, sizeof(float) * (L->o_b - (size_t)s->c_in * plane));
    for (int co = 0; co < s->c_out; co++) {
        for (int y = 0; y < s->h; y++) {
            float *dst = gpad + (size_t)co * n + (size_t)y * wp;
            memcpy(dst, d_out_b + co * hw + (size_t)y * s->w, sizeof(float) * (size_t)s->w);
            memset(dst + s->w, 0, sizeof(float) * (size_t)(wp - s->w));
        }
    }
    for (int t = 0; t < k * k; t++) {
        int off = (t / k) * wp + t % k;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, s->c_out, s->c_in, n, 1.0f, gpad, n,
                    xpad + off, plane, 1.0f, dwk + (size_t)t * s->c_out * s->c_in, s->c_in);
    }
    if (!d_in_b) return;
    memset(dxpad, 0, sizeof(float) * xpad_n);
    for (int t = 0; t < k * k; t++) {
        int off = (t / k) * wp + t % k;
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, s->c_in, n, s->c_out, 1.0f,
                    wk + (size_t)t * s->c_out * s->c_in, s->c_in, gpad, n, 1.0f, dxpad + off, plane);
    }
    unpad_sample_acc(dxpad, s->c_in, s->h, s->w, p, s->pad, d_in_b, hp, wp);
}

/* ------------------------------------------------------------------ Winograd F(2x2, 3x3)
 * For 3x3 stride-1 convolutions: each 2x2 output tile is A^T [ (G g G^T) .* (B^T d B) ] A
 * over its 4x4 padded input tile d, with
 *   B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1], G = [1 0 0; .5 .5 .5; .5 -.5 .5; 0 0 1],
 *   A^T = [1 1 1 0; 0 1 -1 -1].
 * The 16 elementwise products over channels become 16 GEMMs (c_out x c_in) x (c_in x tiles):
 * 2.25x fewer multiply-adds than direct convolution. Transforms work on whole rows of tiles
 * (contiguous, vectorisable). Backward uses the adjoint transforms: dM = A dY A^T,
 * dU += dM V^T, dV = U^T dM, d tile = B dV B^T (overlapping tiles accumulate in a fixed
 * order), dW = G^T dU G.
 * Layouts: V[xi][ci][tile], M[xi][co][tile] (xi = 4 * row + column of the 4x4 transform),
 * U[xi][co][ci]; tile = sample_in_chunk * th * tw + ty * tw + tx. */

static const float WG[4][3] = {{1, 0, 0}, {0.5f, 0.5f, 0.5f}, {0.5f, -0.5f, 0.5f}, {0, 0, 1}};

static int wino_th(const conv2d_shape *s) { return (s->h + 1) / 2; }
static int wino_tw(const conv2d_shape *s) { return (s->w + 1) / 2; }
static int wino_hp(const conv2d_shape *s) { return 2 * wino_th(s) + 2; }
static int wino_wp(const conv2d_shape *s) { return 2 * wino_tw(s) + 2; }

static void wino_weight_transform(const float *w, int co, int ci, float *u)
{
    const size_t plane = (size_t)co * ci;
    for (int o = 0; o < co; o++)
        for (int i = 0; i < ci; i++) {
            const float *g = w + ((size_t)o * ci + i) * 9;
            float t[4][3];
            for (int a = 0; a < 4; a++)
                for (int b = 0; b < 3; b++)
                    t[a][b] = WG[a][0] * g[b] + WG[a][1] * g[3 + b] + WG[a][2] * g[6 + b];
            for (int a = 0; a < 4; a++)
                for (int b = 0; b < 4; b++)
                    u[(size_t)(a * 4 + b) * plane + (size_t)o * ci + i] =
                        t[a][0] * WG[b][0] + t[a][1] * WG[b][1] + t[a][2] * WG[b][2];
        }
}

/* dw (3x3) += G^T dU G; the 16 entries of dU are `plane` floats apart. */
static void wino_weight_adjoint(const float *du, size_t plane, float *dw)
{
    float t[3][4];
    for (int a = 0; a < 3; a++)
        for (int b = 0; b < 4; b++) {
            float acc = 0.0f;
            for (int k = 0; k < 4; k++) acc += WG[k][a] * du[(size_t)(k * 4 + b) * plane];
            t[a][b] = acc;
        }
    for (int a = 0; a < 3; a++)
        for (int b = 0; b < 3; b++) {
            float acc = 0.0f;
            for (int k = 0; k < 4; k++) acc += t[a][k] * WG[k][b];
            dw[a * 3 + b] += acc;
        }
}

/* V[xi][ch][col0 + ty*tw + tx] = (B^T d B)[xi] for every channel of one padded sample.
 * ldv = tiles per V row; tmp holds 8 * wp floats. */
NN_VEC_CLONES static void wino_input_transform(const float *xpad, int c, int th, int tw, int hp, int wp,
                                 float *v, size_t ldv, size_t col0, float *tmp)
{
    const size_t plane = WINO_PLANE(c, ldv);
    float *R[4] = {tmp, tmp + wp, tmp + 2 * wp, tmp + 3 * wp};
    for (int ch = 0; ch < c; ch++) {
        const float *xc = xpad + (size_t)ch * hp * wp;
        for (int ty = 0; ty < th; ty++) {
            const float *r0 = xc + (size_t)(2 * ty) * wp, *r1 = r0 + wp, *r2 = r1 + wp, *r3 = r2 + wp;
            for (int x = 0; x < wp; x++) {
                R[0][x] = r0[x] - r2[x];
                R[1][x] = r1[x] + r2[x];
                R[2][x] = r2[x] - r1[x];
                R[3][x] = r1[x] - r3[x];
            }
            float *vrow = v + (size_t)ch * ldv + col0 + (size_t)ty * tw;
            for (int i = 0; i < 4; i++) {
                const float *Ri = R[i];
                float *d0 = vrow + (size_t)(i * 4) * plane, *d1 = d0 + plane, *d2 = d1 + plane, *d3 = d2 + plane;
                for (int tx = 0; tx < tw; tx++) {
                    float a = Ri[2 * tx], b = Ri[2 * tx + 1], c2 = Ri[2 * tx + 2], d = Ri[2 * tx + 3];
                    d0[tx] = a - c2;
                    d1[tx] = b + c2;
                    d2[tx] = c2 - b;
                    d3[tx] = b - d;
                }
            }
        }
    }
}

/* out (one sample, c_out x h x w) = A^T M A (+ bias) */
NN_VEC_CLONES static void wino_output_transform(const conv2d_shape *s, const float *m, size_t ldm,
                                  size_t col0, const float *bias, float *out_b)
{
    const int th = wino_th(s), tw = wino_tw(s), h = s->h, w = s->w;
    const size_t plane = WINO_PLANE(s->c_out, ldm);
    for (int co = 0; co < s->c_out; co++) {
        const float bv = bias ? bias[co] : 0.0f;
        float *oc = out_b + (size_t)co * h * w;
        for (int ty = 0; ty < th; ty++) {
            const float *mr = m + (size_t)co * ldm + col0 + (size_t)ty * tw;
            const float *M[16];
            for (int xi = 0; xi < 16; xi++) M[xi] = mr + (size_t)xi * plane;
            float *y0 = oc + (size_t)(2 * ty) * w;
            float *y1 = 2 * ty + 1 < h ? y0 + w : NULL;
            for (int tx = 0; tx < tw; tx++) {
                float s0[4], s1[4];
                for (int j = 0; j < 4; j++) {
                    s0[j] = M[j][tx] + M[4 + j][tx] + M[8 + j][tx];
                    s1[j] = M[4 + j][tx] - M[8 + j][tx] - M[12 + j][tx];
                }
                int x0 = 2 * tx;
                y0[x0] = s0[0] + s0[1] + s0[2] + bv;
                if (x0 + 1 < w) y0[x0 + 1] = s0[1] - s0[2] - s0[3] + bv;
                if (y1) {
                    y1[x0] = s1[0] + s1[1] + s1[2] + bv;
                    if (x0 + 1 < w) y1[x0 + 1] = s1[1] - s1[2] - s1[3] + bv;
                }
            }
        }
    }
}

/* dM[xi][co][col0 + tile] = (A dY A^T)[xi] for one sample's output gradient.
 * tmp: 6 * tw floats. */
NN_VEC_CLONES static void wino_output_adjoint(const conv2d_shape *s, const float *dy_b, float *dm, size_t ldm,
                                size_t col0, float *tmp)
{
    const int th = wino_th(s), tw = wino_tw(s), h = s->h, w = s->w;
    const size_t plane = WINO_PLANE(s->c_out, ldm);
    float *G0 = tmp, *G1 = tmp + 2 * tw, *Z = tmp + 4 * tw;
    for (int co = 0; co < s->c_out; co++) {
        const float *gc = dy_b + (size_t)co * h * w;
        for (int ty = 0; ty < th; ty++) {
            /* the two gradient rows of this tile row, zero beyond the image */
            memcpy(G0, gc + (size_t)(2 * ty) * w, sizeof(float) * (size_t)w);
            if (2 * ty + 1 < h) memcpy(G1, gc + (size_t)(2 * ty + 1) * w, sizeof(float) * (size_t)w);
            else memset(G1, 0, sizeof(float) * (size_t)w);
            if (w < 2 * tw) G0[w] = G1[w] = 0.0f;
            float *D = dm + (size_t)co * ldm + col0 + (size_t)ty * tw;
            /* rows of A dY: z0 = g0, z1 = g0 + g1, z2 = g0 - g1, z3 = -g1; then columns */
            for (int i = 0; i < 4; i++) {
                for (int x = 0; x < 2 * tw; x++) {
                    float g0 = G0[x], g1 = G1[x];
                    Z[x] = i == 0 ? g0 : i == 1 ? g0 + g1 : i == 2 ? g0 - g1 : -g1;
                }
                float *d0 = D + (size_t)(i * 4) * plane, *d1 = d0 + plane, *d2 = d1 + plane, *d3 = d2 + plane;
                for (int tx = 0; tx < tw; tx++) {
                    float a = Z[2 * tx], b = Z[2 * tx + 1];
                    d0[tx] = a;
                    d1[tx] = a + b;
                    d2[tx] = a - b;
                    d3[tx] = -b;
                }
            }
        }
    }
}

/* dxpad (c planes hp x wp, zeroed by the caller) += B dV B^T over all tiles of one sample.
 * Tiles overlap by two rows/columns; contributions are added in a fixed order.
 * tmp: 6 * tw floats. */
NN_VEC_CLONES static void wino_input_adjoint(const float *dv, size_t ldv, size_t col0, int c, int th, int tw,
                               size_t plane_x, int wp, float *dxpad, float *tmp)
{
    const size_t plane = WINO_PLANE(c, ldv);
    float *P[4] = {tmp, tmp + tw, tmp + 2 * tw, tmp + 3 * tw};
    float *E = tmp + 4 * tw, *O = tmp + 5 * tw; /* column sums for even / odd offsets */
    for (int ch = 0; ch < c; ch++) {
        float *dc = dxpad + (size_t)ch * plane_x;
        for (int ty = 0; ty < th; ty++) {
            const float *X = dv + (size_t)ch * ldv + col0 + (size_t)ty * tw;
            for (int i = 0; i < 4; i++) {
                /* row i of B dV: P[j] = sum_k B[i][k] dV[k][j] */
                for (int j = 0; j < 4; j++) {
                    const float *x0 = X + (size_t)(0 * 4 + j) * plane, *x1 = X + (size_t)(1 * 4 + j) * plane;
                    const float *x2 = X + (size_t)(2 * 4 + j) * plane, *x3 = X + (size_t)(3 * 4 + j) * plane;
                    float *pj = P[j];
                    switch (i) {
                    case 0: for (int t = 0; t < tw; t++) pj[t] = x0[t]; break;
                    case 1: for (int t = 0; t < tw; t++) pj[t] = x1[t] - x2[t] + x3[t]; break;
                    case 2: for (int t = 0; t < tw; t++) pj[t] = -x0[t] + x1[t] + x2[t]; break;
                    default: for (int t = 0; t < tw; t++) pj[t] = -x3[t]; break;
                    }
                }
                /* columns: tile t adds c0 at 2t, c1 at 2t+1, c2 at 2t+2, c3 at 2t+3 */
                float *r = dc + (size_t)(2 * ty + i) * wp;
                for (int t = 0; t < tw; t++) {
                    float c0 = P[0][t], c1 = P[1][t] - P[2][t] + P[3][t];
                    E[t] = c0;
                    O[t] = c1;
                }
                for (int t = 0; t < tw; t++) {
                    r[2 * t] += E[t];
                    r[2 * t + 1] += O[t];
                }
                for (int t = 0; t < tw; t++) {
                    E[t] = -P[0][t] + P[1][t] + P[2][t];
                    O[t] = -P[3][t];
                }
                for (int t = 0; t < tw; t++) {
                    r[2 * t + 2] += E[t];
                    r[2 * t + 3] += O[t];
                }
            }
        }
    }
}

static void wino_forward_item(const conv2d_shape *s, int b0, int nsamp, float *out,
                              const float *in, const float *u, const float *bias, float *tb,
                              const conv_ws *L)
{
    const int th = wino_th(s), tw = wino_tw(s), hp = wino_hp(s), wp = wino_wp(s);
    const size_t nt = (size_t)th * tw, ldv = (size_t)conv_chunk(s) * nt, T = nsamp * nt;
    const size_t hw = (size_t)s->h * s->w;
    float *xpad = tb + L->o_a, *tmp = tb + L->o_t, *v = tb + L->o_b, *m = tb + L->o_c;
    for (int j = 0; j < nsamp; j++) {
        pad_sample(in + (size_t)(b0 + j) * s->c_in * hw, s->c_in, s->h, s->w, 1, s->pad, xpad, hp, wp);
        wino_input_transform(xpad, s->c_in, th, tw, hp, wp, v, ldv, j * nt, tmp);
    }
    for (int xi = 0; xi < 16; xi++)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, s->c_out, (int)T, s->c_in, 1.0f,
                    u + (size_t)xi * s->c_out * s->c_in, s->c_in, v + (size_t)xi * WINO_PLANE(s->c_in, ldv),
                    (int)ldv, 0.0f, m + (size_t)xi * WINO_PLANE(s->c_out, ldv), (int)ldv);
    for (int j = 0; j < nsamp; j++)
        wino_output_transform(s, m, ldv, j * nt, bias, out + (size_t)(b0 + j) * s->c_out * hw);
}

static void wino_backward_item(const conv2d_shape *s, int b0, int nsamp, float *d_in,
                               const float *d_out, const float *in, const float *u, float *tb,
                               const conv_ws *L)
{
    const int th = wino_th(s), tw = wino_tw(s), hp = wino_hp(s), wp = wino_wp(s);
    const size_t nt = (size_t)th * tw, ldv = (size_t)conv_chunk(s) * nt, T = nsamp * nt;
    const size_t hw = (size_t)s->h * s->w;
    float *xpad = tb + L->o_a, *tmp = tb + L->o_t, *v = tb + L->o_b, *m = tb + L->o_c;
    float *du = tb + L->o_dw;
    for (int j = 0; j < nsamp; j++) {
        pad_sample(in + (size_t)(b0 + j) * s->c_in * hw, s->c_in, s->h, s->w, 1, s->pad, xpad, hp, wp);
        wino_input_transform(xpad, s->c_in, th, tw, hp, wp, v, ldv, j * nt, tmp);
        wino_output_adjoint(s, d_out + (size_t)(b0 + j) * s->c_out * hw, m, ldv, j * nt, tmp);
    }
    for (int xi = 0; xi < 16; xi++)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, s->c_out, s->c_in, (int)T, 1.0f,
                    m + (size_t)xi * WINO_PLANE(s->c_out, ldv), (int)ldv, v + (size_t)xi * WINO_PLANE(s->c_in, ldv),
                    (int)ldv, 1.0f, du + (size_t)xi * s->c_out * s->c_in, s->c_in);
    if (!d_in) return;
    for (int xi = 0; xi < 16; xi++) /* dV overwrites V */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, s->c_in, (int)T, s->c_out, 1.0f,
                    u + (size_t)xi * s->c_out * s->c_in, s->c_in, m + (size_t)xi * WINO_PLANE(s->c_out, ldv),
                    (int)ldv, 0.0f, v + (size_t)xi * WINO_PLANE(s->c_in, ldv), (int)ldv);
    for (int j = 0; j < nsamp; j++) {
        memset(xpad, 0, sizeof(float) * (size_t)s->c_in * hp * wp);
        wino_input_adjoint(v, ldv, j * nt, s->c_in, th, tw, (size_t)hp * wp, wp, xpad, tmp);
        unpad_sample_acc(xpad, s->c_in, s->h, s->w, 1, s->pad, d_in + (size_t)(b0 + j) * s->c_in * hw, hp, wp);
    }
}

/* ------------------------------------------------------------------ im2col path */

static void im2col_forward_item(const conv2d_shape *s, int b0, int nsamp, float *out,
                                const float *in, const float *weight, const float *bias,
                                float *tb, const conv_ws *L)
{
    const int oh = conv2d_out_h(s), ow = conv2d_out_w(s), k = s->kernel, p = k / 2;
    const size_t ohw = (size_t)oh * ow, hw = (size_t)s->h * s->w;
    const int ckk = s->c_in * k * k, nb = conv_chunk(s);
    const size_t ld = (size_t)nb * ohw;
    float *col = tb + L->o_a;
    for (int j = 0; j < nsamp; j++)
        nn_im2col(in + (size_t)(b0 + j) * s->c_in * hw, s->c_in, s->h, s->w, k, s->stride, p,
                  s->pad, oh, ow, col + j * ohw, ld);
    if (nb == 1) {
        float *o = out + (size_t)b0 * s->c_out * ohw;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, s->c_out, (int)ohw, ckk, 1.0f,
                    weight, ckk, col, (int)ld, 0.0f, o, (int)ohw);
        if (bias)
            for (int co = 0; co < s->c_out; co++) {
                float bv = bias[co];
                float *oc = o + (size_t)co * ohw;
                for (size_t i = 0; i < ohw; i++) oc[i] += bv;
            }
        return;
    }
    float *tmp = tb + L->o_c;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, s->c_out, (int)(nsamp * ohw), ckk,
                1.0f, weight, ckk, col, (int)ld, 0.0f, tmp, (int)ld);
    for (int j = 0; j < nsamp; j++)
        for (int co = 0; co < s->c_out; co++) {
            float bv = bias ? bias[co] : 0.0f;
            const float *src = tmp + (size_t)co * ld + (size_t)j * ohw;
            float *dst = out + ((size_t)(b0 + j) * s->c_out + co) * ohw;
            for (size_t i = 0; i < ohw; i++) dst[i] = src[i] + bv;
        }
}

static void im2col_backward_item(const conv2d_shape *s, int b0, int nsamp, float *d_in,
                                 const float *d_out, const float *in, const float *weight,
                                 float *tb, const conv_ws *L)
{
    const int oh = conv2d_out_h(s), ow = conv2d_out_w(s), k = s->kernel, p = k / 2;
    const size_t ohw = (size_t)oh * ow, hw = (size_t)s->h * s->w;
    const int ckk = s->c_in * k * k, nb = conv_chunk(s);
    const size_t ld = (size_t)nb * ohw, cols = (size_t)nsamp * ohw;
    float *col = tb + L->o_a, *dcol = tb + L->o_b, *dw = tb + L->o_dw;
    for (int j = 0; j < nsamp; j++)
        nn_im2col(in + (size_t)(b0 + j) * s->c_in * hw, s->c_in, s->h, s->w, k, s->stride, p,
                  s->pad, oh, ow, col + j * ohw, ld);
    const float *g;
    if (nb == 1) {
        g = d_out + (size_t)b0 * s->c_out * ohw;
    } else {
        float *gt = tb + L->o_c;
        for (int j = 0; j < nsamp; j++)
            for (int co = 0; co < s->c_out; co++)
                memcpy(gt + (size_t)co * ld + (size_t)j * ohw,
                       d_out + ((size_t)(b0 + j) * s->c_out + co) * ohw, sizeof(float) * ohw);
        g = gt;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, s->c_out, ckk, (int)cols, 1.0f, g,
                (int)ld, col, (int)ld, 1.0f, dw, ckk);
    if (!d_in) return;
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, ckk, (int)cols, s->c_out, 1.0f, weight,
                ckk, g, (int)ld, 0.0f, dcol, (int)ld);
    for (int j = 0; j < nsamp; j++)
        nn_col2im(dcol + j * ohw, ld, s->c_in, s->h, s->w, k, s->stride, p, s->pad, oh, ow,
                  d_in + (size_t)(b0 + j) * s->c_in * hw);
}

/* ------------------------------------------------------------------ drivers */

/* Runs fn over the work items on T threads with single-threaded BLAS (T > 1), or in order
 * with multi-threaded BLAS (T == 1). Returns the number of threads that ran. */
typedef void (*item_fn)(const conv2d_shape *s, int item, float *tb, void *ctx);

static int run_items(const conv2d_shape *s, float *thread_ws, size_t per_thread, item_fn fn,
                     void *ctx, int zero_dw_off_plus1, size_t nw)
{
    const int T = conv_threads(s), items = conv_items(s);
    int used = 1;
    if (T == 1) {
        if (zero_dw_off_plus1) memset(thread_ws + zero_dw_off_plus1 - 1, 0, nw * sizeof(float));
        for (int i = 0; i < items; i++) fn(s, i, thread_ws, ctx);
        return 1;
    }
    int blas_threads = openblas_get_num_threads();
    openblas_set_num_threads(1);
#pragma omp parallel num_threads(T)
    {
        const int nt = omp_get_num_threads(), t = omp_get_thread_num();
#pragma omp single
        used = nt;
        float *tb = thread_ws + (size_t)t * per_thread;
        if (zero_dw_off_plus1) memset(tb + zero_dw_off_plus1 - 1, 0, nw * sizeof(float));
        int lo = (int)((long)items * t / nt), hi = (int)((long)items * (t + 1) / nt);
        for (int i = lo; i < hi; i++) fn(s, i, tb, ctx);
    }
    openblas_set_num_threads(blas_threads);
    return used;
}

typedef struct {
    float *out, *d_in;
    const float *in, *weight, *bias, *d_out, *wk;
    const conv_ws *L;
} conv_ctx;

static void fwd_item(const conv2d_shape *s, int item, float *tb, void *vctx)
{
    conv_ctx *c = vctx;
    const size_t ohw = (size_t)conv2d_out_h(s) * conv2d_out_w(s), hw = (size_t)s->h * s->w;
    switch (conv_path_of(s)) {
    case PATH_POINTWISE: {
        float *o = c->out + (size_t)item * s->c_out * ohw;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, s->c_out, (int)hw, s->c_in, 1.0f,
                    c->weight, s->c_in, c->in + (size_t)item * s->c_in * hw, (int)hw, 0.0f, o, (int)hw);
        if (c->bias)
            for (int co = 0; co < s->c_out; co++) {
                float bv = c->bias[co];
                float *oc = o + (size_t)co * hw;
                for (size_t i = 0; i < hw; i++) oc[i] += bv;
            }
        break;
    }
    case PATH_SHIFT:
        shift_forward_sample(s, c->out + (size_t)item * s->c_out * ohw,
                             c->in + (size_t)item * s->c_in * hw, c->wk, c->bias, tb, c->L);
        break;
    case PATH_WINOGRAD: {
        int nb = conv_chunk(s), b0 = item * nb;
        int n = s->batch - b0 < nb ? s->batch - b0 : nb;
        wino_forward_item(s, b0, n, c->out, c->in, c->wk, c->bias, tb, c->L);
        break;
    }
    case PATH_IM2COL: {
        int nb = conv_chunk(s), b0 = item * nb;
        int n = s->batch - b0 < nb ? s->batch - b0 : nb;
        im2col_forward_item(s, b0, n, c->out, c->in, c->weight, c->bias, tb, c->L);
        break;
    }
    }
}

static void bwd_item(const conv2d_shape *s, int item, float *tb, void *vctx)
{
    conv_ctx *c = vctx;
    const size_t ohw = (size_t)conv2d_out_h(s) * conv2d_out_w(s), hw = (size_t)s->h * s->w;
    switch (conv_path_of(s)) {
    case PATH_POINTWISE: {
        const float *x = c->in + (size_t)item * s->c_in * hw;
        const float *g = c->d_out + (size_t)item * s->c_out * ohw;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, s->c_out, s->c_in, (int)hw, 1.0f, g,
                    (int)hw, x, (int)hw, 1.0f, tb + c->L->o_dw, s->c_in);
        if (c->d_in)
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, s->c_in, (int)hw, s->c_out, 1.0f,
                        c->weight, s->c_in, g, (int)hw, 1.0f, c->d_in + (size_t)item * s->c_in * hw,
                        (int)hw);
        break;
    }
    case PATH_SHIFT:
        shift_backward_sample(s, c->d_in ? c->d_in + (size_t)item * s->c_in * hw : NULL,
                              c->d_out + (size_t)item * s->c_out * ohw,
                              c->in + (size_t)item * s->c_in * hw, c->wk, tb, c->L);
        break;
    case PATH_WINOGRAD: {
        int nb = conv_chunk(s), b0 = item * nb;
        int n = s->batch - b0 < nb ? s->batch - b0 : nb;
        wino_backward_item(s, b0, n, c->d_in, c->d_out, c->in, c->wk, tb, c->L);
        break;
    }
    case PATH_IM2COL: {
        int nb = conv_chunk(s), b0 = item * nb;
        int n = s->batch - b0 < nb ? s->batch - b0 : nb;
        im2col_backward_item(s, b0, n, c->d_in, c->d_out, c->in, c->weight, tb, c->L);
        break;
    }
    }
}

void conv2d_forward(const conv2d_shape *s, float *out, const float *in, const float *weight,
                    const float *bias, float *workspace)
{
    conv_ws L = conv_ws_layout(s);
    const int kk = s->kernel * s->kernel;
    conv_ctx c = {out, NULL, in, weight, bias, NULL, NULL, &L};
    if (conv_path_of(s) == PATH_SHIFT) {
        repack_weight(weight, s->c_out, s->c_in, kk, workspace);
        c.wk = workspace;
    } else if (conv_path_of(s) == PATH_WINOGRAD) {
        wino_weight_transform(weight, s->c_out, s->c_in, workspace);
        c.wk = workspace;
    }
    run_items(s, workspace + L.shared, L.per_thread, fwd_item, &c, 0, 0);
}

void conv2d_backward(const conv2d_shape *s, float *d_in, float *d_weight, float *d_bias,
                     const float *d_out, const float *in, const float *weight, float *workspace)
{
    const int oh = conv2d_out_h(s), ow = conv2d_out_w(s), kk = s->kernel * s->kernel;
    const size_t ohw = (size_t)oh * ow, nw = (size_t)s->c_out * s->c_in * kk;
    conv_ws L = conv_ws_layout(s);

    if (d_bias) nn_bias_backward(s->batch, s->c_out, ohw, d_out, d_bias);

    conv_ctx c = {NULL, d_in, in, weight, NULL, d_out, NULL, &L};
    const int shift = conv_path_of(s) == PATH_SHIFT, wino = conv_path_of(s) == PATH_WINOGRAD;
    if (shift) {
        repack_weight(weight, s->c_out, s->c_in, kk, workspace);
        c.wk = workspace;
    } else if (wino) {
        wino_weight_transform(weight, s->c_out, s->c_in, workspace);
        c.wk = workspace;
    }
    float *tw = workspace + L.shared;
    int used = run_items(s, tw, L.per_thread, bwd_item, &c, (int)L.o_dw + 1,
                         wino ? 16 * (size_t)s->c_out * s->c_in : nw);
    if (wino) {
        /* sum the private dU in thread order into thread 0's, then dW += G^T dU G */
        const size_t nu = 16 * (size_t)s->c_out * s->c_in, plane = (size_t)s->c_out * s->c_in;
        float *du0 = tw + L.o_dw;
        for (int t = 1; t < used; t++) {
            const float *dut = tw + (size_t)t * L.per_thread + L.o_dw;
            for (size_t i = 0; i < nu; i++) du0[i] += dut[i];
        }
        for (size_t oc = 0; oc < plane; oc++) wino_weight_adjoint(du0 + oc, plane, d_weight + oc * 9);
        return;
    }

    /* d_weight += sum over threads (in thread order) of the private gradients */
    const long long nwl = (long long)nw;
#pragma omp parallel for schedule(static) if(nwl * used >= NN_PAR_MIN)
    for (long long i = 0; i < nwl; i++) {
        size_t src = (size_t)i;
        if (shift) { /* torch index (o, ci, t) <- private index (t, o, ci) */
            size_t t = (size_t)i % kk, oc = (size_t)i / kk;
            src = t * (size_t)s->c_out * s->c_in + oc;
        }
        float acc = 0.0f;
        for (int t = 0; t < used; t++) acc += tw[(size_t)t * L.per_thread + L.o_dw + src];
        d_weight[i] += acc;
    }
}
