/* Routing metrics (see routing_metrics.h). */
#include "moe/routing_metrics.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static inline size_t at(const moe_layout *l, int o, int n, size_t i)
{
    return ((size_t)o * l->n + n) * l->inner + i;
}

void moe_softmax_experts(const moe_layout *l, const float *in, float *out)
{
    for (int o = 0; o < l->outer; o++)
        for (size_t i = 0; i < l->inner; i++) {
            float m = in[at(l, o, 0, i)];
            for (int n = 1; n < l->n; n++) m = fmaxf(m, in[at(l, o, n, i)]);
            double s = 0;
            for (int n = 0; n < l->n; n++) s += exp((double)in[at(l, o, n, i)] - m);
            for (int n = 0; n < l->n; n++)
                out[at(l, o, n, i)] = (float)(exp((double)in[at(l, o, n, i)] - m) / s);
        }
}

void moe_argmax_experts(const moe_layout *l, const float *p, int32_t *expert)
{
    for (int o = 0; o < l->outer; o++)
        for (size_t i = 0; i < l->inner; i++) {
            int best = 0;
            for (int n = 1; n < l->n; n++)
                if (p[at(l, o, n, i)] > p[at(l, o, best, i)]) best = n;
            expert[(size_t)o * l->inner + i] = best;
        }
}

static double ent_bits(const double *cnt, size_t n, double total)
{
    double h = 0;
    for (size_t i = 0; i < n; i++)
        if (cnt[i] > 0) {
            double q = cnt[i] / total;
            h -= q * log2(q);
        }
    return h;
}

double moe_mutual_information(size_t n, const int32_t *a, int na, const int32_t *b, int nb)
{
    if (n == 0 || na < 1 || nb < 1) return 0;
    double *joint = calloc((size_t)na * nb + na + nb, sizeof(double));
    if (!joint) return -1;
    double *ca = joint + (size_t)na * nb, *cb = ca + na;
    for (size_t i = 0; i < n; i++) {
        if (a[i] < 0 || a[i] >= na || b[i] < 0 || b[i] >= nb) {
            free(joint);
            return -1;
        }
        joint[(size_t)a[i] * nb + b[i]] += 1;
        ca[a[i]] += 1;
        cb[b[i]] += 1;
    }
    double mi = ent_bits(ca, (size_t)na, (double)n) + ent_bits(cb, (size_t)nb, (double)n) -
                ent_bits(joint, (size_t)na * nb, (double)n);
    free(joint);
    return mi < 0 ? 0 : mi;
}

static double choose2(double x) { return x * (x - 1) / 2; }

double moe_adjusted_rand_index(size_t n, const int32_t *a, int na, const int32_t *b, int nb)
{
    if (na < 1 || nb < 1) return NAN;
    double *joint = calloc((size_t)na * nb + na + nb, sizeof(double));
    if (!joint) return NAN;
    double *ca = joint + (size_t)na * nb, *cb = ca + na;
    for (size_t i = 0; i < n; i++) {
        if (a[i] < 0 || a[i] >= na || b[i] < 0 || b[i] >= nb) {
            free(joint);
            return NAN;
        }
        joint[(size_t)a[i] * nb + b[i]] += 1;
        ca[a[i]] += 1;
        cb[b[i]] += 1;
    }
    double idx = 0, sa = 0, sb = 0;
    for (size_t i = 0; i < (size_t)na * nb; i++) idx += choose2(joint[i]);
    for (int i = 0; i < na; i++) sa += choose2(ca[i]);
    for (int j = 0; j < nb; j++) sb += choose2(cb[j]);
    free(joint);
    double total = choose2((double)n);
    double expected = total > 0 ? sa * sb / total : 0;
    double maxi = 0.5 * (sa + sb);
    if (maxi == expected) return 1.0;
    return (idx - expected) / (maxi - expected);
}

int moe_routing_metrics_compute(const moe_layout *l, const float *p, const int32_t *labels,
                                int labels_per_sample, moe_routing_metrics *m)
{
    const int N = l->n;
    if (N > MOE_METRICS_MAX_EXPERTS || N < 1) return -1;
    memset(m, 0, sizeof *m);
    m->n_experts = N;
    const size_t T = (size_t)l->outer * l->inner;
    double imp[MOE_METRICS_MAX_EXPERTS] = {0}, cnt[MOE_METRICS_MAX_EXPERTS] = {0};
    double hs = 0;
    int32_t *arg = malloc((T ? T : 1) * sizeof *arg);
    int32_t *lab = NULL;
    if (!arg) return -1;
    moe_argmax_experts(l, p, arg);
    for (int o = 0; o < l->outer; o++)
        for (size_t i = 0; i < l->inner; i++) {
            for (int n = 0; n < N; n++) {
                double v = p[at(l, o, n, i)];
                imp[n] += v;
                if (v > 0) hs -= v * log2(v);
            }
            cnt[arg[(size_t)o * l->inner + i]] += 1;
        }
    for (int n = 0; n < N; n++) m->load_frac[n] = cnt[n] / (double)T;
    m->cv_importance = sqrt(moe_cv2(imp, N, NULL));
    m->h_s = hs / (double)T;
    m->h_u = ent_bits(imp, (size_t)N, (double)T);
    int rc = 0;
    if (labels) {
        lab = malloc(T * sizeof *lab);
        if (!lab) {
            free(arg);
            return -1;
        }
        /* tokens without a label (-1, e.g. missing values of the map) are left out */
        int ny = 0;
        size_t kept = 0;
        for (size_t t = 0; t < T; t++) {
            int32_t y = labels_per_sample ? labels[t] : labels[t % l->inner];
            if (y < 0) continue;
            arg[kept] = arg[t];
            lab[kept++] = y;
            if (y + 1 > ny) ny = y + 1;
        }
        if (kept > 0) {
            m->has_labels = 1;
            m->mi = moe_mutual_information(kept, arg, N, lab, ny);
            m->ari = moe_adjusted_rand_index(kept, arg, N, lab, ny);
        }
    }
    free(arg);
    free(lab);
    return rc;
}

int moe_labels_from_values(const float *values, size_t n, int max_categories, int32_t *labels)
{
    float seen[MOE_METRICS_MAX_EXPERTS * 4];
    if (max_categories > (int)(sizeof seen / sizeof seen[0])) max_categories = (int)(sizeof seen / sizeof seen[0]);
    int k = 0;
    for (size_t i = 0; i < n; i++) {
        if (isnan(values[i])) {
            labels[i] = -1;
            continue;
        }
        int c = 0;
        while (c < k && seen[c] != values[i]) c++;
        if (c == k) {
            if (k == max_categories) return -1;
            seen[k++] = values[i];
        }
        labels[i] = c;
    }
    int rank[MOE_METRICS_MAX_EXPERTS * 4];
    for (int c = 0; c < k; c++) {
        rank[c] = 0;
        for (int q = 0; q < k; q++) rank[c] += seen[q] < seen[c];
    }
    for (size_t i = 0; i < n; i++)
        if (labels[i] >= 0) labels[i] = rank[labels[i]];
    return k;
}

void moe_latitude_band_labels(const double *lat, int h, int w, int32_t *labels)
{
    for (int j = 0; j < h; j++) {
        int band = lat ? (int)floor((lat[j] + 90.0) / 30.0) : (int)((double)j * 6 / h);
        band = band < 0 ? 0 : band > 5 ? 5 : band;
        for (int i = 0; i < w; i++) labels[(size_t)j * w + i] = band;
    }
}
