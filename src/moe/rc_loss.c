/* Routing-classification loss and expert-error damping (see rc_loss.h). */
#include "moe/rc_loss.h"

#include <math.h>
#include <string.h>

static void swap_f(float *a, float *b)
{
    float t = *a;
    *a = *b;
    *b = t;
}

/* Reorders buf[0 .. n-1] so that buf[kth] holds the value a full sort would put there, with no
 * larger value before it and no smaller value after it (nth_element). In place, no allocation:
 * quickselect with a median-of-three pivot and Hoare partitioning. */
static void select_kth(float *buf, size_t n, size_t kth)
{
    size_t lo = 0, hi = n - 1;
    while (hi > lo) {
        size_t mid = lo + (hi - lo) / 2;
        if (buf[mid] < buf[lo]) swap_f(&buf[mid], &buf[lo]);
        if (buf[hi] < buf[lo]) swap_f(&buf[hi], &buf[lo]);
        if (buf[hi] < buf[mid]) swap_f(&buf[hi], &buf[mid]);
        if (hi - lo < 3) return; /* three or fewer values are now sorted */
        const float pivot = buf[mid];
        size_t i = lo, j = hi;
        for (;;) {
            do i++; while (buf[i] < pivot);
            do j--; while (pivot < buf[j]);
            if (i >= j) break;
            swap_f(&buf[i], &buf[j]);
        }
        /* buf[lo .. j] <= pivot <= buf[j+1 .. hi] */
        if (kth <= j) hi = j;
        else lo = j + 1;
    }
}

float rc_quantile(float *buf, size_t n, float q)
{
    if (n == 0) return 0.0f;
    double pos = (double)q * (double)(n - 1);
    size_t lo = q <= 0 ? 0 : q >= 1 ? n - 1 : (size_t)floor(pos);
    if (lo > n - 1) lo = n - 1;
    select_kth(buf, n, lo);
    if (q <= 0 || q >= 1 || lo == n - 1) return buf[lo];
    /* the next order statistic is the smallest value after buf[lo] */
    float next = buf[lo + 1];
    for (size_t i = lo + 2; i < n; i++)
        if (buf[i] < next) next = buf[i];
    float frac = (float)(pos - (double)lo);
    return buf[lo] + frac * (next - buf[lo]);
}

void rc_sample_quantiles(int batch, size_t per_sample, const float *e_s, float q, float *qb,
                         float *scratch)
{
    for (int b = 0; b < batch; b++) {
        memcpy(scratch, e_s + (size_t)b * per_sample, per_sample * sizeof *scratch);
        qb[b] = rc_quantile(scratch, per_sample, q);
    }
}

void rc_thresholds(int batch, const float *qb, int absolute, float tol, float *thr)
{
    for (int b = 0; b < batch; b++) thr[b] = absolute ? qb[b] + tol : qb[b] * (1.0f + tol);
}

void rc_labels_thr(int batch, int n_experts, int k, size_t hw, const float *e_s, const int32_t *idx,
                   const float *thr_correct, float *labels)
{
    const int N = n_experts;
    const float unsel = N > k ? 1.0f / (float)(N - k) : 0.0f;
    for (int b = 0; b < batch; b++) {
        const float thr = thr_correct[b];
        float *lb = labels + (size_t)b * N * hw;
        for (size_t p = 0; p < hw; p++) {
            int wrong = 0;
            for (int j = 0; j < k; j++) {
                size_t o = ((size_t)b * k + j) * hw + p;
                if (!(e_s[o] <= thr)) wrong++;
            }
            float fill = (float)wrong * unsel;
            for (int n = 0; n < N; n++) lb[(size_t)n * hw + p] = fill;
            for (int j = 0; j < k; j++) {
                size_t o = ((size_t)b * k + j) * hw + p;
                lb[(size_t)idx[o] * hw + p] = e_s[o] <= thr ? 1.0f : 0.0f;
            }
        }
    }
}

void rc_labels(int batch, int n_experts, int k, size_t hw, const float *e_s, const int32_t *idx,
               const float *qb, float *labels)
{
    for (int b = 0; b < batch; b++) {
        float thr = qb[b] * (1.0f + RC_CORRECT_REL);
        rc_labels_thr(1, n_experts, k, hw, e_s + (size_t)b * k * hw, idx + (size_t)b * k * hw, &thr,
                      labels + (size_t)b * n_experts * hw);
    }
}

double rc_bce_with_logits(int batch, size_t per_sample, const float *logits, size_t logits_stride,
                          const float *labels, float *d_logits)
{
    const double inv = 1.0 / ((double)batch * (double)per_sample);
    double loss = 0;
    for (int b = 0; b < batch; b++) {
        const float *z = logits + (size_t)b * logits_stride;
        const float *y = labels + (size_t)b * per_sample;
        float *dz = d_logits ? d_logits + (size_t)b * logits_stride : NULL;
        for (size_t i = 0; i < per_sample; i++) {
            double zi = z[i], yi = y[i];
            loss += (zi > 0 ? zi : 0) - zi * yi + log1p(exp(-fabs(zi)));
            if (dz) {
                double sig = zi >= 0 ? 1.0 / (1.0 + exp(-zi)) : exp(zi) / (1.0 + exp(zi));
                dz[i] += (float)((sig - yi) * inv);
            }
        }
    }
    return loss * inv;
}

size_t rc_damp_thr(int batch, size_t per_sample, const float *e_s, const float *thr_damp, float factor,
                   float *d_esel)
{
    size_t n = 0;
    for (int b = 0; b < batch; b++) {
        const float thr = thr_damp[b];
        for (size_t i = 0; i < per_sample; i++) {
            size_t o = (size_t)b * per_sample + i;
            if (e_s[o] > thr) {
                d_esel[o] *= factor;
                n++;
            }
        }
    }
    return n;
}

size_t rc_damp(int batch, size_t per_sample, const float *e_s, const float *qb, float factor,
               float *d_esel)
{
    size_t n = 0;
    for (int b = 0; b < batch; b++) {
        float thr = qb[b] * (1.0f + RC_DAMP_REL);
        n += rc_damp_thr(1, per_sample, e_s + (size_t)b * per_sample, &thr, factor,
                         d_esel + (size_t)b * per_sample);
    }
    return n;
}
