/* BatchNorm2d and GroupNorm forward/backward. */
#include "nn/norm.h"
#include "nn/nn_internal.h"

#include <math.h>
#include <stddef.h>

/* Sums in blocks of 1024: eight float accumulators inside a block (vectorisable), the block
 * sums added in double. Fixed order, so results do not depend on the thread count. */
#define NN_BLOCK 1024

static double sum_f(const float *x, size_t n)
{
    double total = 0.0;
    for (size_t b = 0; b < n; b += NN_BLOCK) {
        size_t e = b + NN_BLOCK < n ? b + NN_BLOCK : n, i = b;
        float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        for (; i + 8 <= e; i += 8)
            for (int j = 0; j < 8; j++) acc[j] += x[i + j];
        float part = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
        for (; i < e; i++) part += x[i];
        total += part;
    }
    return total;
}

/* sum of (x - m)^2 */
static double sumsq_dev(const float *x, size_t n, float m)
{
    double total = 0.0;
    for (size_t b = 0; b < n; b += NN_BLOCK) {
        size_t e = b + NN_BLOCK < n ? b + NN_BLOCK : n, i = b;
        float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        for (; i + 8 <= e; i += 8)
            for (int j = 0; j < 8; j++) {
                float d = x[i + j] - m;
                acc[j] += d * d;
            }
        float part = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
        for (; i < e; i++) part += (x[i] - m) * (x[i] - m);
        total += part;
    }
    return total;
}

/* sum of a * (x - m) */
static double dot_dev(const float *a, const float *x, size_t n, float m)
{
    double total = 0.0;
    for (size_t b = 0; b < n; b += NN_BLOCK) {
        size_t e = b + NN_BLOCK < n ? b + NN_BLOCK : n, i = b;
        float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        for (; i + 8 <= e; i += 8)
            for (int j = 0; j < 8; j++) acc[j] += a[i + j] * (x[i + j] - m);
        float part = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
        for (; i < e; i++) part += a[i] * (x[i] - m);
        total += part;
    }
    return total;
}

void batchnorm2d_forward(const norm_shape *s, float *out, const float *in, const float *gamma,
                         const float *beta, float *running_mean, float *running_var,
                         float momentum, float eps, int training, float *save)
{
    const size_t hw = (size_t)s->h * s->w, cs = (size_t)s->c * hw;
    const double n = (double)s->batch * (double)hw;
    float *save_mean = save, *save_rstd = save + s->c;
#pragma omp parallel for schedule(static) if((long long)s->batch * s->c * s->h * s->w >= NN_PAR_MIN)
    for (int c = 0; c < s->c; c++) {
        double mean, var;
        if (training) {
            double sum = 0.0;
            for (int b = 0; b < s->batch; b++) sum += sum_f(in + b * cs + c * hw, hw);
            mean = sum / n;
            /* deviations from the float mean, corrected to the exact mean (shift formula) */
            const float mf = (float)mean;
            const double dm = mean - (double)mf;
            double sq = 0.0;
            for (int b = 0; b < s->batch; b++) sq += sumsq_dev(in + b * cs + c * hw, hw, mf);
            sq -= n * dm * dm;
            if (sq < 0.0) sq = 0.0;
            var = sq / n;
            if (running_mean) running_mean[c] = (float)((1.0 - momentum) * running_mean[c] + momentum * mean);
            if (running_var) {
                double unbiased = n > 1 ? sq / (n - 1) : sq;
                running_var[c] = (float)((1.0 - momentum) * running_var[c] + momentum * unbiased);
            }
        } else {
            mean = running_mean[c];
            var = running_var[c];
        }
        float rstd = (float)(1.0 / sqrt(var + eps));
        save_mean[c] = (float)mean;
        save_rstd[c] = rstd;
        float g = gamma ? gamma[c] : 1.0f, bt = beta ? beta[c] : 0.0f;
        float scale = g * rstd, shift = bt - (float)mean * scale;
        for (int b = 0; b < s->batch; b++) {
            const float *x = in + b * cs + c * hw;
            float *o = out + b * cs + c * hw;
            for (size_t i = 0; i < hw; i++) o[i] = x[i] * scale + shift;
        }
    }
}

void batchnorm2d_backward(const norm_shape *s, float *d_in, float *d_gamma, float *d_beta,
                          const float *d_out, const float *in, const float *gamma,
                          const float *save, int training)
{
    const size_t hw = (size_t)s->h * s->w, cs = (size_t)s->c * hw;
    const double n = (double)s->batch * (double)hw;
    const float *save_mean = save, *save_rstd = save + s->c;
#pragma omp parallel for schedule(static) if((long long)s->batch * s->c * s->h * s->w >= NN_PAR_MIN)
    for (int c = 0; c < s->c; c++) {
        const float mean = save_mean[c], rstd = save_rstd[c];
        double sum_g = 0.0, sum_gx = 0.0;
        for (int b = 0; b < s->batch; b++) {
            const float *x = in + b * cs + c * hw, *g = d_out + b * cs + c * hw;
            sum_g += sum_f(g, hw);
            sum_gx += dot_dev(g, x, hw, mean);
        }
        sum_gx *= rstd;
        if (d_gamma) d_gamma[c] += (float)sum_gx;
        if (d_beta) d_beta[c] += (float)sum_g;
        if (!d_in) continue;
        const float gm = gamma ? gamma[c] : 1.0f, k = gm * rstd;
        if (training) {
            const float mg = (float)(sum_g / n), mgx = (float)(sum_gx / n);
            for (int b = 0; b < s->batch; b++) {
                const float *x = in + b * cs + c * hw, *g = d_out + b * cs + c * hw;
                float *dx = d_in + b * cs + c * hw;
                for (size_t i = 0; i < hw; i++) {
                    float xh = (x[i] - mean) * rstd;
                    dx[i] += k * (g[i] - mg - xh * mgx);
                }
            }
        } else {
            for (int b = 0; b < s->batch; b++) {
                const float *g = d_out + b * cs + c * hw;
                float *dx = d_in + b * cs + c * hw;
                for (size_t i = 0; i < hw; i++) dx[i] += k * g[i];
            }
        }
    }
}

int batchnorm2d_forward_sync(const norm_shape *s, float *out, const float *in, const float *gamma,
                             const float *beta, float *running_mean, float *running_var, float momentum,
                             float eps, int training, float *save, norm_reduce_fn reduce, void *arg,
                             double *scratch)
{
    if (!training) {
        batchnorm2d_forward(s, out, in, gamma, beta, running_mean, running_var, momentum, eps, training, save);
        return 0;
    }
    const size_t hw = (size_t)s->h * s->w, cs = (size_t)s->c * hw;
    float *save_mean = save, *save_rstd = save + s->c;
    double *sum = scratch, *sq = scratch + s->c + 1;
#pragma omp parallel for schedule(static) if((long long)s->batch * s->c * s->h * s->w >= NN_PAR_MIN)
    for (int c = 0; c < s->c; c++) {
        double t = 0.0;
        for (int b = 0; b < s->batch; b++) t += sum_f(in + b * cs + c * hw, hw);
        sum[c] = t;
    }
    sum[s->c] = (double)s->batch * (double)hw;
    int st = reduce(sum, (size_t)s->c + 1, arg);
    if (st) return st;
    const double n = sum[s->c];
#pragma omp parallel for schedule(static) if((long long)s->batch * s->c * s->h * s->w >= NN_PAR_MIN)
    for (int c = 0; c < s->c; c++) {
        const float mf = (float)(n > 0 ? sum[c] / n : 0.0);
        double t = 0.0;
        for (int b = 0; b < s->batch; b++) t += sumsq_dev(in + b * cs + c * hw, hw, mf);
        sq[c] = t;
    }
    if ((st = reduce(sq, (size_t)s->c, arg))) return st;
#pragma omp parallel for schedule(static) if((long long)s->batch * s->c * s->h * s->w >= NN_PAR_MIN)
    for (int c = 0; c < s->c; c++) {
        const double mean = n > 0 ? sum[c] / n : 0.0;
        const double dm = mean - (double)(float)mean;
        double q = sq[c] - n * dm * dm;
        if (q < 0.0) q = 0.0;
        const double var = n > 0 ? q / n : 0.0;
        if (running_mean) running_mean[c] = (float)((1.0 - momentum) * running_mean[c] + momentum * mean);
        if (running_var) {
            double unbiased = n > 1 ? q / (n - 1) : q;
            running_var[c] = (float)((1.0 - momentum) * running_var[c] + momentum * unbiased);
        }
        float rstd = (float)(1.0 / sqrt(var + eps));
        save_mean[c] = (float)mean;
        save_rstd[c] = rstd;
        float g = gamma ? gamma[c] : 1.0f, bt = beta ? beta[c] : 0.0f;
        float scale = g * rstd, shift = bt - (float)mean * scale;
        for (int b = 0; b < s->batch; b++) {
            const float *x = in + b * cs + c * hw;
            float *o = out + b * cs + c * hw;
            for (size_t i = 0; i < hw; i++) o[i] = x[i] * scale + shift;
        }
    }
    return 0;
}

int batchnorm2d_backward_sync(const norm_shape *s, float *d_in, float *d_gamma, float *d_beta,
                              const float *d_out, const float *in, const float *gamma,
                              const float *save, int training, norm_reduce_fn reduce, void *arg,
                              double *scratch)
{
    if (!training) {
        batchnorm2d_backward(s, d_in, d_gamma, d_beta, d_out, in, gamma, save, training);
        return 0;
    }
    const size_t hw = (size_t)s->h * s->w, cs = (size_t)s->c * hw;
    const float *save_mean = save, *save_rstd = save + s->c;
    double *sg = scratch, *sgx = scratch + s->c; /* sg[c], sgx[c], then the count */
#pragma omp parallel for schedule(static) if((long long)s->batch * s->c * s->h * s->w >= NN_PAR_MIN)
    for (int c = 0; c < s->c; c++) {
        double a = 0.0, bx = 0.0;
        for (int b = 0; b < s->batch; b++) {
            const float *x = in + b * cs + c * hw, *g = d_out + b * cs + c * hw;
            a += sum_f(g, hw);
            bx += dot_dev(g, x, hw, save_mean[c]);
        }
        bx *= save_rstd[c];
        if (d_gamma) d_gamma[c] += (float)bx;
        if (d_beta) d_beta[c] += (float)a;
        sg[c] = a;
        sgx[c] = bx;
    }
    scratch[2 * s->c] = (double)s->batch * (double)hw;
    int st = reduce(scratch, 2 * (size_t)s->c + 1, arg);
    if (st || !d_in) return st;
    const double n = scratch[2 * s->c];
#pragma omp parallel for schedule(static) if((long long)s->batch * s->c * s->h * s->w >= NN_PAR_MIN)
    for (int c = 0; c < s->c; c++) {
        const float mean = save_mean[c], rstd = save_rstd[c];
        const float gm = gamma ? gamma[c] : 1.0f, k = gm * rstd;
        const float mg = (float)(sg[c] / n), mgx = (float)(sgx[c] / n);
        for (int b = 0; b < s->batch; b++) {
            const float *x = in + b * cs + c * hw, *g = d_out + b * cs + c * hw;
            float *dx = d_in + b * cs + c * hw;
            for (size_t i = 0; i < hw; i++) {
                float xh = (x[i] - mean) * rstd;
                dx[i] += k * (g[i] - mg - xh * mgx);
            }
        }
    }
    return 0;
}

void groupnorm_forward(const norm_shape *s, int groups, float *out, const float *in,
                       const float *gamma, const float *beta, float eps, float *save)
{
    const size_t hw = (size_t)s->h * s->w;
    const int cg = s->c / groups, pairs = s->batch * groups;
    const size_t m = (size_t)cg * hw;
    float *save_mean = save, *save_rstd = save + pairs;
#pragma omp parallel for schedule(static) if((long long)s->batch * s->c * s->h * s->w >= NN_PAR_MIN)
    for (int bg = 0; bg < pairs; bg++) {
        const int g = bg % groups;
        const float *x = in + (size_t)bg * m; /* groups are contiguous channel blocks */
        float *o = out + (size_t)bg * m;
        double mean = sum_f(x, m) / (double)m;
        const float mf = (float)mean;
        const double dm = mean - (double)mf;
        double sq = sumsq_dev(x, m, mf) - (double)m * dm * dm;
        if (sq < 0.0) sq = 0.0;
        float rstd = (float)(1.0 / sqrt(sq / (double)m + eps));
        save_mean[bg] = (float)mean;
        save_rstd[bg] = rstd;
        for (int cc = 0; cc < cg; cc++) {
            int c = g * cg + cc;
            float gm = gamma ? gamma[c] : 1.0f, bt = beta ? beta[c] : 0.0f;
            float scale = gm * rstd, shift = bt - (float)mean * scale;
            const float *xc = x + (size_t)cc * hw;
            float *oc = o + (size_t)cc * hw;
            for (size_t i = 0; i < hw; i++) oc[i] = xc[i] * scale + shift;
        }
    }
}

void groupnorm_backward(const norm_shape *s, int groups, float *d_in, float *d_gamma,
                        float *d_beta, const float *d_out, const float *in, const float *gamma,
                        const float *save)
{
    const size_t hw = (size_t)s->h * s->w, cs = (size_t)s->c * hw;
    const int cg = s->c / groups, pairs = s->batch * groups;
    const size_t m = (size_t)cg * hw;
    const float *save_mean = save, *save_rstd = save + pairs;
    if (d_gamma || d_beta) {
#pragma omp parallel for schedule(static) if((long long)s->batch * s->c * s->h * s->w >= NN_PAR_MIN)
        for (int c = 0; c < s->c; c++) {
            const int g = c / cg;
            double sg = 0.0, sgx = 0.0;
            for (int b = 0; b < s->batch; b++) {
                const float mean = save_mean[b * groups + g], rstd = save_rstd[b * groups + g];
                const float *x = in + b * cs + c * hw, *dy = d_out + b * cs + c * hw;
                sg += sum_f(dy, hw);
                sgx += rstd * dot_dev(dy, x, hw, mean);
            }
            if (d_gamma) d_gamma[c] += (float)sgx;
            if (d_beta) d_beta[c] += (float)sg;
        }
    }
    if (!d_in) return;
#pragma omp parallel for schedule(static) if((long long)s->batch * s->c * s->h * s->w >= NN_PAR_MIN)
    for (int bg = 0; bg < pairs; bg++) {
        const int g = bg % groups;
        const float mean = save_mean[bg], rstd = save_rstd[bg];
        const float *x = in + (size_t)bg * m, *dy = d_out + (size_t)bg * m;
        float *dx = d_in + (size_t)bg * m;
        double s1 = 0.0, s2 = 0.0; /* sum of dxhat, sum of dxhat * xhat */
        for (int cc = 0; cc < cg; cc++) {
            float gm = gamma ? gamma[g * cg + cc] : 1.0f;
            s1 += gm * sum_f(dy + cc * hw, hw);
            s2 += gm * rstd * dot_dev(dy + cc * hw, x + cc * hw, hw, mean);
        }
        const float m1 = (float)(s1 / (double)m), m2 = (float)(s2 / (double)m);
        for (int cc = 0; cc < cg; cc++) {
            const float gm = gamma ? gamma[g * cg + cc] : 1.0f;
            const float *xc = x + cc * hw, *gc = dy + cc * hw;
            float *dc = dx + cc * hw;
            for (size_t i = 0; i < hw; i++) {
                float xh = (xc[i] - mean) * rstd;
                dc[i] += rstd * (gc[i] * gm - m1 - xh * m2);
            }
        }
    }
}
