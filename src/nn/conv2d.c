/* conv2d: im2col + OpenBLAS sgemm, three padding modes, accumulate-style backward. */
#include "nn/conv2d.h"

#include <cblas.h>
#include <string.h>

/* Fold samples into one GEMM until it has at least this many columns. */
#define CONV_MIN_COLS 1024

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
           (s->pad == PAD_ZERO || s->pad == PAD_PERIODIC_LON || s->pad == PAD_REPLICATE) &&
           s->h + 2 * (s->kernel / 2) >= s->kernel && s->w + 2 * (s->kernel / 2) >= s->kernel;
}

static int is_pointwise(const conv2d_shape *s)
{
    return s->kernel == 1 && s->stride == 1;
}

/* Samples per GEMM chunk. */
static int conv_chunk(const conv2d_shape *s)
{
    size_t ohw = (size_t)conv2d_out_h(s) * conv2d_out_w(s);
    if (is_pointwise(s)) return 1;
    size_t nb = (CONV_MIN_COLS + ohw - 1) / ohw;
    if (nb > (size_t)s->batch) nb = (size_t)s->batch;
    return nb < 1 ? 1 : (int)nb;
}

size_t conv2d_workspace_floats(const conv2d_shape *s)
{
    size_t ohw = (size_t)conv2d_out_h(s) * conv2d_out_w(s);
    size_t ckk = (size_t)s->c_in * s->kernel * s->kernel;
    size_t nb = (size_t)conv_chunk(s);
    if (is_pointwise(s)) return 1;
    /* col (ckk x cols) + d_col (ckk x cols) + gathered out/d_out (c_out x cols) when nb > 1 */
    return 2 * ckk * nb * ohw + (nb > 1 ? (size_t)s->c_out * nb * ohw : 0);
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
#pragma omp parallel for schedule(static)
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
#pragma omp parallel for schedule(static)
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

void conv2d_forward(const conv2d_shape *s, float *out, const float *in, const float *weight,
                    const float *bias, float *workspace)
{
    const int oh = conv2d_out_h(s), ow = conv2d_out_w(s), k = s->kernel, p = k / 2;
    const size_t ohw = (size_t)oh * ow, hw = (size_t)s->h * s->w;
    const int ckk = s->c_in * k * k;
    const int nb = conv_chunk(s);
    for (int b0 = 0; b0 < s->batch; b0 += nb) {
        int n = s->batch - b0 < nb ? s->batch - b0 : nb;
        size_t cols = (size_t)n * ohw, ld = (size_t)nb * ohw;
        const float *colp;
        if (is_pointwise(s)) {
            colp = in + (size_t)b0 * s->c_in * hw;
            ld = ohw;
        } else {
            for (int j = 0; j < n; j++)
                nn_im2col(in + (size_t)(b0 + j) * s->c_in * hw, s->c_in, s->h, s->w, k, s->stride, p,
                          s->pad, oh, ow, workspace + j * ohw, ld);
            colp = workspace;
        }
        if (nb == 1) {
            float *o = out + (size_t)b0 * s->c_out * ohw;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, s->c_out, (int)ohw, ckk, 1.0f,
                        weight, ckk, colp, (int)ld, 0.0f, o, (int)ohw);
            if (bias) {
#pragma omp parallel for schedule(static)
                for (int co = 0; co < s->c_out; co++) {
                    float bv = bias[co];
                    float *oc = o + (size_t)co * ohw;
                    for (size_t i = 0; i < ohw; i++) oc[i] += bv;
                }
            }
        } else {
            float *tmp = workspace + 2 * (size_t)ckk * nb * ohw;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, s->c_out, (int)cols, ckk, 1.0f,
                        weight, ckk, colp, (int)ld, 0.0f, tmp, (int)ld);
#pragma omp parallel for collapse(2) schedule(static)
            for (int j = 0; j < n; j++) {
                for (int co = 0; co < s->c_out; co++) {
                    float bv = bias ? bias[co] : 0.0f;
                    const float *src = tmp + (size_t)co * ld + (size_t)j * ohw;
                    float *dst = out + ((size_t)(b0 + j) * s->c_out + co) * ohw;
                    for (size_t i = 0; i < ohw; i++) dst[i] = src[i] + bv;
                }
            }
        }
    }
}

void conv2d_backward(const conv2d_shape *s, float *d_in, float *d_weight, float *d_bias,
                     const float *d_out, const float *in, const float *weight, float *workspace)
{
    const int oh = conv2d_out_h(s), ow = conv2d_out_w(s), k = s->kernel, p = k / 2;
    const size_t ohw = (size_t)oh * ow, hw = (size_t)s->h * s->w;
    const int ckk = s->c_in * k * k;
    const int nb = conv_chunk(s);

    if (d_bias) {
#pragma omp parallel for schedule(static)
        for (int co = 0; co < s->c_out; co++) {
            double acc = 0.0;
            for (int b = 0; b < s->batch; b++) {
                const float *g = d_out + ((size_t)b * s->c_out + co) * ohw;
                float part = 0.0f;
                for (size_t i = 0; i < ohw; i++) part += g[i];
                acc += part;
            }
            d_bias[co] += (float)acc;
        }
    }

    for (int b0 = 0; b0 < s->batch; b0 += nb) {
        int n = s->batch - b0 < nb ? s->batch - b0 : nb;
        size_t cols = (size_t)n * ohw, ld = (size_t)nb * ohw;
        if (is_pointwise(s)) {
            const float *x = in + (size_t)b0 * s->c_in * hw;
            const float *g = d_out + (size_t)b0 * s->c_out * ohw;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, s->c_out, ckk, (int)ohw, 1.0f,
                        g, (int)ohw, x, (int)ohw, 1.0f, d_weight, ckk);
            if (d_in)
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, ckk, (int)ohw, s->c_out, 1.0f,
                            weight, ckk, g, (int)ohw, 1.0f, d_in + (size_t)b0 * s->c_in * hw, (int)ohw);
            continue;
        }
        float *col = workspace, *dcol = workspace + (size_t)ckk * nb * ohw;
        for (int j = 0; j < n; j++)
            nn_im2col(in + (size_t)(b0 + j) * s->c_in * hw, s->c_in, s->h, s->w, k, s->stride, p,
                      s->pad, oh, ow, col + j * ohw, ld);
        const float *g;
        if (nb == 1) {
            g = d_out + (size_t)b0 * s->c_out * ohw;
        } else {
            float *gt = workspace + 2 * (size_t)ckk * nb * ohw;
#pragma omp parallel for collapse(2) schedule(static)
            for (int j = 0; j < n; j++)
                for (int co = 0; co < s->c_out; co++)
                    memcpy(gt + (size_t)co * ld + (size_t)j * ohw,
                           d_out + ((size_t)(b0 + j) * s->c_out + co) * ohw, sizeof(float) * ohw);
            g = gt;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, s->c_out, ckk, (int)cols, 1.0f,
                    g, (int)ld, col, (int)ld, 1.0f, d_weight, ckk);
        if (d_in) {
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, ckk, (int)cols, s->c_out, 1.0f,
                        weight, ckk, g, (int)ld, 0.0f, dcol, (int)ld);
            for (int j = 0; j < n; j++)
                nn_col2im(dcol + j * ohw, ld, s->c_in, s->h, s->w, k, s->stride, p, s->pad, oh, ow,
                          d_in + (size_t)(b0 + j) * s->c_in * hw);
        }
    }
}
