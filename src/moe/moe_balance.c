/* Balancing losses on gate tensors (see moe_balance.h). */
#include "moe/moe_balance.h"

#include <math.h>
#include <stdlib.h>

#define CV_EPS 1e-10
#define MAX_EXPERTS_STACK 256

static inline size_t at(const moe_layout *l, int o, int n, size_t i)
{
    return ((size_t)o * l->n + n) * l->inner + i;
}

double moe_cv2(const double *v, int n, double *dv)
{
    if (n < 2) {
        if (dv)
            for (int i = 0; i < n; i++) dv[i] = 0;
        return 0;
    }
    double m = 0;
    for (int i = 0; i < n; i++) m += v[i];
    m /= n;
    double var = 0;
    for (int i = 0; i < n; i++) var += (v[i] - m) * (v[i] - m);
    var /= (n - 1);
    double den = m * m + CV_EPS;
    if (dv)
        for (int i = 0; i < n; i++)
            dv[i] = 2.0 * (v[i] - m) / (n - 1) / den - var / (den * den) * 2.0 * m / n;
    return var / den;
}

void moe_reduce_sum(moe_reduce *r, double *buf, size_t n)
{
    if (!r || !r->sum) return;
    int st = r->sum(buf, n, r->arg);
    if (st && !r->status) r->status = st;
}

static double grad_scale(const moe_reduce *r) { return r && r->sum ? r->grad_scale : 1.0; }

double moe_importance_cv2(const moe_layout *l, const float *g, float *d_g, float weight)
{
    return moe_importance_cv2_r(l, g, d_g, weight, NULL);
}

double moe_importance_cv2_r(const moe_layout *l, const float *g, float *d_g, float weight,
                            moe_reduce *r)
{
    const int N = l->n;
    double imp[MAX_EXPERTS_STACK] = {0}, dimp[MAX_EXPERTS_STACK];
    if (N > MAX_EXPERTS_STACK) return 0;
    for (int o = 0; o < l->outer; o++)
        for (int n = 0; n < N; n++)
            for (size_t i = 0; i < l->inner; i++) imp[n] += g[at(l, o, n, i)];
    moe_reduce_sum(r, imp, (size_t)N);
    double L = moe_cv2(imp, N, dimp);
    const double w = weight * grad_scale(r);
    if (d_g)
        for (int o = 0; o < l->outer; o++)
            for (int n = 0; n < N; n++)
                for (size_t i = 0; i < l->inner; i++) d_g[at(l, o, n, i)] += (float)(w * dimp[n]);
    return L;
}

static double norm_cdf(double z) { return 0.5 * erfc(-z / sqrt(2.0)); }
static double norm_pdf(double z) { return exp(-0.5 * z * z) * 0.3989422804014327; /* 1/sqrt(2 pi) */ }

/* Indices of the k-th and (k+1)-th largest noisy values of one token (ties: lower index first). */
static void kth_two(const moe_layout *l, const float *noisy, int o, size_t i, int k, int *ik,
                    int *ik1)
{
    int sel[MAX_EXPERTS_STACK];
    int ns = 0;
    for (int j = 0; j <= k && j < l->n; j++) {
        int best = -1;
        float bv = 0;
        for (int n = 0; n < l->n; n++) {
            int dup = 0;
            for (int s = 0; s < ns; s++) dup |= sel[s] == n;
            if (dup) continue;
            float v = noisy[at(l, o, n, i)];
            if (best < 0 || v > bv) {
                best = n;
                bv = v;
            }
        }
        sel[ns++] = best;
    }
    *ik = sel[k - 1];
    *ik1 = sel[k];
}

double moe_load_cv2(const moe_layout *l, int k, const float *clean, const float *noisy,
                    const float *std, float std_const, float *d_clean, float *d_std, float weight)
{
    return moe_load_cv2_r(l, k, clean, noisy, std, std_const, d_clean, d_std, weight, NULL);
}

double moe_load_cv2_r(const moe_layout *l, int k, const float *clean, const float *noisy,
                      const float *std, float std_const, float *d_clean, float *d_std, float weight,
                      moe_reduce *r)
{
    const int N = l->n;
    if (N <= k || k < 1 || N > MAX_EXPERTS_STACK) return 0;
    double load[MAX_EXPERTS_STACK] = {0}, dload[MAX_EXPERTS_STACK];
    for (int o = 0; o < l->outer; o++)
        for (size_t i = 0; i < l->inner; i++) {
            int ik, ik1;
            kth_two(l, noisy, o, i, k, &ik, &ik1);
            float t_in = noisy[at(l, o, ik1, i)], t_out = noisy[at(l, o, ik, i)];
            for (int n = 0; n < N; n++) {
                size_t q = at(l, o, n, i);
                double sd = std ? std[q] : std_const;
                double thr = noisy[q] > t_in ? t_in : t_out;
                load[n] += norm_cdf((clean[q] - thr) / sd);
            }
        }
    moe_reduce_sum(r, load, (size_t)N);
    double L = moe_cv2(load, N, dload);
    if (!d_clean) return L;
    const double w = weight * grad_scale(r);
    for (int o = 0; o < l->outer; o++)
        for (size_t i = 0; i < l->inner; i++) {
            int ik, ik1;
            kth_two(l, noisy, o, i, k, &ik, &ik1);
            float t_in = noisy[at(l, o, ik1, i)], t_out = noisy[at(l, o, ik, i)];
            for (int n = 0; n < N; n++) {
                size_t q = at(l, o, n, i);
                double sd = std ? std[q] : std_const;
                int in = noisy[q] > t_in;
                int m = in ? ik1 : ik;
                double thr = in ? t_in : t_out;
                double z = (clean[q] - thr) / sd;
                double dP = w * dload[n] * norm_pdf(z) / sd; /* dL/dclean_n */
                size_t qm = at(l, o, m, i);
                d_clean[q] += (float)dP;
                d_clean[qm] -= (float)dP;            /* threshold = noisy_m = clean_m + eps*std_m */
                if (std && d_std) {
                    d_std[q] += (float)(-dP * z);
                    double eps_m = (noisy[qm] - clean[qm]) / std[qm];
                    d_std[qm] -= (float)(dP * eps_m);
                }
            }
        }
    return L;
}

double moe_switch_loss(const moe_layout *l, const float *p, float *d_p, float weight)
{
    return moe_switch_loss_r(l, p, d_p, weight, NULL);
}

double moe_switch_loss_r(const moe_layout *l, const float *p, float *d_p, float weight, moe_reduce *r)
{
    const int N = l->n;
    if (N > MAX_EXPERTS_STACK) return 0;
    /* f_n (argmax counts), P_n (probability sums), token count: summed over processes */
    double buf[2 * MAX_EXPERTS_STACK + 1] = {0};
    double *f = buf, *P = buf + N;
    for (int o = 0; o < l->outer; o++)
        for (size_t i = 0; i < l->inner; i++) {
            int best = 0;
            for (int n = 0; n < N; n++) {
                float v = p[at(l, o, n, i)];
                P[n] += v;
                if (v > p[at(l, o, best, i)]) best = n;
            }
            f[best] += 1;
        }
    buf[2 * N] = (double)l->outer * l->inner;
    moe_reduce_sum(r, buf, (size_t)(2 * N + 1));
    const double T = buf[2 * N];
    if (!(T > 0)) return 0;
    double L = 0;
    for (int n = 0; n < N; n++) L += N * (f[n] / T) * (P[n] / T);
    const double w = weight * grad_scale(r);
    if (d_p)
        for (int o = 0; o < l->outer; o++)
            for (int n = 0; n < N; n++)
                for (size_t i = 0; i < l->inner; i++)
                    d_p[at(l, o, n, i)] += (float)(w * N * (f[n] / T) / T);
    return L;
}

#define ENT_EPS 1e-12

double moe_entropy_loss(const moe_layout *l, const float *p, float *d_p, float weight)
{
    return moe_entropy_loss_r(l, p, d_p, weight, NULL);
}

double moe_entropy_loss_r(const moe_layout *l, const float *p, float *d_p, float weight, moe_reduce *r)
{
    const int N = l->n;
    if (N > MAX_EXPERTS_STACK) return 0;
    /* sum_t p_t (N), sum_t H(p_t), token count: summed over processes */
    double buf[MAX_EXPERTS_STACK + 2] = {0}, pbar[MAX_EXPERTS_STACK];
    for (int o = 0; o < l->outer; o++)
        for (int n = 0; n < N; n++)
            for (size_t i = 0; i < l->inner; i++) {
                double v = p[at(l, o, n, i)];
                buf[n] += v;
                if (v > 0) buf[N] -= v * log(v);
            }
    buf[N + 1] = (double)l->outer * l->inner;
    moe_reduce_sum(r, buf, (size_t)(N + 2));
    const double T = buf[N + 1];
    if (!(T > 0)) return 0;
    const double htok = buf[N] / T;
    double hbar = 0;
    for (int n = 0; n < N; n++) {
        pbar[n] = buf[n] / T;
        if (pbar[n] > 0) hbar -= pbar[n] * log(pbar[n]);
    }
    const double w = weight * grad_scale(r);
    if (d_p)
        for (int o = 0; o < l->outer; o++)
            for (int n = 0; n < N; n++)
                for (size_t i = 0; i < l->inner; i++) {
                    double v = p[at(l, o, n, i)];
                    d_p[at(l, o, n, i)] +=
                        (float)(w * (log(fmax(pbar[n], ENT_EPS)) - log(fmax(v, ENT_EPS))) / T);
                }
    return htok - hbar;
}

double smoe_spatial_agreement(int batch, int n_experts, size_t hw, const float *r, float *d_r,
                              float weight)
{
    if (batch < 2) return 0;
    const size_t nhw = (size_t)n_experts * hw;
    double L = 0;
    for (size_t q = 0; q < nhw; q++) {
        double m = 0;
        for (int b = 0; b < batch; b++) m += r[(size_t)b * nhw + q];
        m /= batch;
        double var = 0;
        for (int b = 0; b < batch; b++) {
            double d = r[(size_t)b * nhw + q] - m;
            var += d * d;
        }
        double sd = sqrt(var / (batch - 1));
        L += sd / (double)hw;
        if (d_r && sd > 0)
            for (int b = 0; b < batch; b++)
                d_r[(size_t)b * nhw + q] +=
                    (float)(weight * (r[(size_t)b * nhw + q] - m) / ((batch - 1) * sd) / (double)hw);
    }
    return L;
}
