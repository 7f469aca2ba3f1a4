/* conv2d: four GEMM strategies on OpenBLAS sgemm, three padding modes, accumulate-style
 * backward.
 *
 *  - Winograd F(m x m, r x r) (kernel 3 or 5, stride 1, c_in and c_out >= WINO_MIN_C):
 *    nn/winograd.c; alpha^2 GEMMs (c_out x c_in) x (c_in x tiles) replace the r*r-tap
 *    convolution, with the tiles of `chunk` samples side by side in each GEMM.
 *  - shift (other stride-1 kernels, c_in >= SHIFT_MIN_CIN): the input is copied once into a
 *    padded plane of width Wp = w + 2p; for every kernel tap (ki, kj) the shifted padded input
 *    is then a plain (c_in x h*Wp) matrix with leading dimension (h+2p)*Wp, so the convolution
 *    is a sum of k*k GEMMs without any im2col copy (the 2p extra columns per row are computed
 *    and discarded). Weight gradient: k*k GEMMs with K = h*Wp. Input gradient: k*k GEMMs into
 *    a padded gradient plane, folded back according to the padding mode.
 *  - im2col (stride 2, few input channels): classic im2col + one GEMM per chunk of samples
 *    (small images fold several samples into N).
 *  - pointwise (1x1, stride 1): GEMM directly on the input.
 * nn_conv2d_set_algo (nn_internal.h) forces one of them, for tests and benchmarks.
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
#include "nn/winograd.h"

#include "nn/threads.h"

#include <cblas.h>
#include <omp.h>
#include <string.h>

/* Fold samples into one im2col GEMM until it has at least this many columns. */
#define CONV_MIN_COLS 1024
/* Fewer input channels than this: im2col (K = c_in*k*k) beats k*k GEMMs with K = c_in. */
#define SHIFT_MIN_CIN 8
/* Winograd needs this many input and output channels (the transforms cost O(c) per tile, the
 * GEMMs O(c_in * c_out)). */
#define WINO_MIN_C 8
/* Winograd: fold samples until a GEMM has at least this many tiles; samples with at least
 * twice as many are split into blocks of tile rows with about this many, so that a block's
 * transformed input and output (alpha^2 x channels x tiles each) stay in the L2 cache. */
#define WINO_TILES 64

static nn_conv_algo g_algo = NN_CONV_AUTO;

void nn_conv2d_set_algo(nn_conv_algo a) { g_algo = a; }

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

/* Winograd output tile size m for the shape (0: no Winograd). */
static int wino_m_auto(const conv2d_shape *s)
{
    if (s->stride != 1 || s->c_in < WINO_MIN_C || s->c_out < WINO_MIN_C) return 0;
    if (s->kernel == 3 || s->kernel == 5) return 4;
    return 0;
}

static int wino_m_of(const conv2d_shape *s)
{
    if (s->stride != 1) return 0;
    switch (g_algo) {
    case NN_CONV_WINO2: return wino_supported(2, s->kernel) ? 2 : wino_m_auto(s);
    case NN_CONV_WINO4: return wino_supported(4, s->kernel) ? 4 : wino_m_auto(s);
    case NN_CONV_AUTO: return wino_m_auto(s);
    default: return 0;
    }
}

static conv_path conv_path_of(const conv2d_shape *s)
{
    if (g_algo == NN_CONV_IM2COL) return PATH_IM2COL;
    if (g_algo == NN_CONV_SHIFT && s->stride == 1) return PATH_SHIFT;
    if (wino_m_of(s)) return PATH_WINOGRAD;
    if (s->kernel == 1 && s->stride == 1) return PATH_POINTWISE;
    if (s->stride == 1 && s->c_in >= SHIFT_MIN_CIN) return PATH_SHIFT;
    return PATH_IM2COL;
}

/* Samples per work item (im2col and Winograd fold small images). */
static int conv_chunk(const conv2d_shape *s)
{
    size_t per, min;
    switch (conv_path_of(s)) {
    case PATH_WINOGRAD: {
        int m = wino_m_of(s);
        per = (size_t)((s->h + m - 1) / m) * ((s->w + m - 1) / m);
        min = WINO_TILES;
        break;
    }
    case PATH_IM2COL:
        per = (size_t)conv2d_out_h(s) * conv2d_out_w(s);
        min = CONV_MIN_COLS;
        break;
    default:
        return 1;
    }
    size_t nb = (min + per - 1) / per;
    if (nb > (size_t)s->batch) nb = (size_t)s->batch;
    return nb < 1 ? 1 : (int)nb;
}

/* Winograd tile rows per block (0: whole samples). */
static int wino_rows(const conv2d_shape *s)
{
    int m = wino_m_of(s), th = (s->h + m - 1) / m, tw = (s->w + m - 1) / m;
    if ((long)th * tw < 2L * WINO_TILES) return 0;
    return (WINO_TILES + tw - 1) / tw;
}

static wino_plan wino_plan_of(const conv2d_shape *s)
{
    return wino_plan_make(s, wino_m_of(s), conv_chunk(s), wino_rows(s));
}

/* Work items per group: the items of a group (the tile-row blocks of one sample) must run on
 * one thread. */
static int conv_group(const conv2d_shape *s)
{
    if (conv_path_of(s) != PATH_WINOGRAD || conv_chunk(s) > 1) return 1;
    return wino_plan_of(s).nblk;
}

static int conv_items(const conv2d_shape *s)
{
    int nb = conv_chunk(s);
    return (s->batch + nb - 1) / nb * conv_group(s);
}

/* Threads for the sample loop: 1 for small convolutions (below CONV_PAR_MIN_MACS
 * multiply-adds a parallel region costs more than it saves). */
#define CONV_PAR_MIN_MACS (1L << 18)

static int conv_threads(const conv2d_shape *s)
{
    long macs = (long)s->batch * s->c_out * s->c_in * s->kernel * s->kernel *
                conv2d_out_h(s) * conv2d_out_w(s);
    if (macs < CONV_PAR_MIN_MACS) return 1;
    int t = nn_get_threads(), groups = conv_items(s) / conv_group(s);
    if (t > groups) t = groups;
    return t < 1 ? 1 : t;
}

/* Workspace layout: [shared | thread 0 | thread 1 | ...]. */
typedef struct {
    size_t shared, per_thread;
    /* offsets inside a thread block */
    size_t o_a, o_b, o_c, o_dw;
} conv_ws;

static conv_ws conv_ws_layout(const conv2d_shape *s)
{
    conv_ws L = {0, 0, 0, 0, 0, 0};
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
        wino_plan P = wino_plan_of(s);
        L.shared = wino_u_floats(&P);      /* U */
        L.o_dw = P.o_du;                   /* dU */
        L.per_thread = P.total;
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

typedef struct {
    const conv2d_shape *s;
    float *thread_ws;
    size_t per_thread, nw;
    int zero_dw_off_plus1;
    item_fn fn;
    void *ctx;
} items_run;

static void run_block(int t, int lo, int hi, void *vr)
{
    const items_run *r = vr;
    float *tb = r->thread_ws + (size_t)t * r->per_thread;
    if (r->zero_dw_off_plus1) memset(tb + r->zero_dw_off_plus1 - 1, 0, r->nw * sizeof(float));
    for (int i = lo; i < hi; i++) r->fn(r->s, i, tb, r->ctx);
}

static int run_items(const conv2d_shape *s, float *thread_ws, size_t per_thread, item_fn fn,
                     void *ctx, int zero_dw_off_plus1, size_t nw)
{
    items_run r = {s, thread_ws, per_thread, nw, zero_dw_off_plus1, fn, ctx};
    return nn_run_blocks(conv_threads(s), conv_items(s), conv_group(s), run_block, &r);
}

typedef struct {
    float *out, *d_in;
    const float *in, *weight, *bias, *d_out, *wk;
    const conv_ws *L;
    const wino_plan *wp;
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
        int nb = c->wp->chunk, nbl = c->wp->nblk, b0 = item / nbl * nb;
        int n = s->batch - b0 < nb ? s->batch - b0 : nb;
        wino_forward(c->wp, n, item % nbl, c->out + (size_t)b0 * s->c_out * ohw,
                     c->in + (size_t)b0 * s->c_in * hw, c->wk, c->bias, tb);
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
        int nb = c->wp->chunk, nbl = c->wp->nblk, b0 = item / nbl * nb;
        int n = s->batch - b0 < nb ? s->batch - b0 : nb;
        wino_backward(c->wp, n, item % nbl, c->d_in ? c->d_in + (size_t)b0 * s->c_in * hw : NULL,
                      c->d_out + (size_t)b0 * s->c_out * ohw, c->in + (size_t)b0 * s->c_in * hw,
                      c->wk, tb);
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

/* Sum of g[0..n) in 16 float lanes (vectorised; lanes combined in a fixed order). */
NN_VEC_CLONES static float sum_lanes(const float *g, size_t n)
{
    float l[16] = {0};
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int k = 0; k < 16; k++) l[k] += g[i + k];
    float part = 0.0f;
    for (int k = 0; k < 16; k++) part += l[k];
    for (; i < n; i++) part += g[i];
    return part;
}

/* d_bias[co] += sum over the batch and the ohw pixels of d_out; per-sample float sums added up
 * in double. */
static void conv_bias_backward(int batch, int c_out, size_t ohw, const float *d_out, float *d_bias)
{
#pragma omp parallel for schedule(static) if((long long)batch * c_out * ohw >= 4 * NN_PAR_MIN)
    for (int co = 0; co < c_out; co++) {
        double acc = 0.0;
        for (int b = 0; b < batch; b++) acc += sum_lanes(d_out + ((size_t)b * c_out + co) * ohw, ohw);
        d_bias[co] += (float)acc;
    }
}

void conv2d_forward(const conv2d_shape *s, float *out, const float *in, const float *weight,
                    const float *bias, float *workspace)
{
    conv_ws L = conv_ws_layout(s);
    const int kk = s->kernel * s->kernel;
    wino_plan P;
    conv_ctx c = {out, NULL, in, weight, bias, NULL, NULL, &L, NULL};
    if (conv_path_of(s) == PATH_SHIFT) {
        repack_weight(weight, s->c_out, s->c_in, kk, workspace);
        c.wk = workspace;
    } else if (conv_path_of(s) == PATH_WINOGRAD) {
        P = wino_plan_of(s);
        wino_weight_transform(&P, weight, workspace);
        c.wk = workspace;
        c.wp = &P;
    }
    run_items(s, workspace + L.shared, L.per_thread, fwd_item, &c, 0, 0);
}

void conv2d_backward(const conv2d_shape *s, float *d_in, float *d_weight, float *d_bias,
                     const float *d_out, const float *in, const float *weight, float *workspace)
{
    const int oh = conv2d_out_h(s), ow = conv2d_out_w(s), kk = s->kernel * s->kernel;
    const size_t ohw = (size_t)oh * ow, nw = (size_t)s->c_out * s->c_in * kk;
    conv_ws L = conv_ws_layout(s);

    if (d_bias) conv_bias_backward(s->batch, s->c_out, ohw, d_out, d_bias);

    wino_plan P;
    conv_ctx c = {NULL, d_in, in, weight, NULL, d_out, NULL, &L, NULL};
    const int shift = conv_path_of(s) == PATH_SHIFT, wino = conv_path_of(s) == PATH_WINOGRAD;
    size_t nu = nw;
    if (shift) {
        repack_weight(weight, s->c_out, s->c_in, kk, workspace);
        c.wk = workspace;
    } else if (wino) {
        P = wino_plan_of(s);
        wino_weight_transform(&P, weight, workspace);
        c.wk = workspace;
        c.wp = &P;
        nu = wino_u_floats(&P);
    }
    float *tw = workspace + L.shared;
    int used = run_items(s, tw, L.per_thread, bwd_item, &c, (int)L.o_dw + 1, nu);
    if (wino) {
        /* sum the private dU in thread order into thread 0's, then dW += G^T dU G */
        float *du0 = tw + L.o_dw;
        for (int t = 1; t < used; t++) {
            const float *dut = tw + (size_t)t * L.per_thread + L.o_dw;
            for (size_t i = 0; i < nu; i++) du0[i] += dut[i];
        }
        wino_weight_adjoint(&P, du0, d_weight);
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
