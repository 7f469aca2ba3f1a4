/* Sample-similarity regulariser and gate distillation (see moe_similarity.h). */
#include "moe/moe_similarity.h"

#include <math.h>

static inline size_t at(const moe_layout *l, size_t t, int n)
{
    size_t o = t / l->inner, i = t % l->inner;
    return (o * (size_t)l->n + (size_t)n) * l->inner + i;
}

void moe_similarity_sample_pairs(size_t n_tokens, int n_pairs, rng_t *rng, int32_t *pairs)
{
    for (int i = 0; i < n_pairs; i++) {
        uint32_t a = rng_below(rng, (uint32_t)n_tokens), b = a;
        if (n_tokens > 1) {
            b = rng_below(rng, (uint32_t)(n_tokens - 1));
            if (b >= a) b++;
        }
        pairs[2 * i] = (int32_t)a;
        pairs[2 * i + 1] = (int32_t)b;
    }
}

static double token_dist(const moe_layout *l, int c, const float *x, size_t t, size_t u)
{
    size_t ot = t / l->inner, it = t % l->inner, ou = u / l->inner, iu = u % l->inner;
    double s = 0;
    for (int k = 0; k < c; k++) {
        double d = (double)x[(ot * c + k) * l->inner + it] - x[(ou * c + k) * l->inner + iu];
        s += d * d;
    }
    return sqrt(s);
}

double moe_similarity_loss(const moe_layout *l, const float *p, int c, const float *x,
                           int n_pairs, const int32_t *pairs, float beta_same, float beta_diff,
                           float *d_p, double s_out[2])
{
    const int M = l->n;
    if (n_pairs < 1) {
        if (s_out) s_out[0] = s_out[1] = 0;
        return 0;
    }
    double dmax = 0;
    for (int i = 0; i < n_pairs; i++) {
        double d = token_dist(l, c, x, (size_t)pairs[2 * i], (size_t)pairs[2 * i + 1]);
        if (d > dmax) dmax = d;
    }
    double same = 0, diff = 0;
    const double ks = 1.0 / ((double)M * n_pairs);
    const double kd = M > 1 ? 1.0 / ((double)M * (M - 1) * n_pairs) : 0.0;
    for (int i = 0; i < n_pairs; i++) {
        size_t t = (size_t)pairs[2 * i], u = (size_t)pairs[2 * i + 1];
        double d = dmax > 0 ? token_dist(l, c, x, t, u) / dmax : 0;
        double st = 0, su = 0, dot = 0;
        for (int e = 0; e < M; e++) {
            double a = p[at(l, t, e)], b = p[at(l, u, e)];
            st += a;
            su += b;
            dot += a * b;
        }
        same += ks * dot * d;
        diff += kd * (st * su - dot) * d;
        if (d_p)
            for (int e = 0; e < M; e++) {
                double a = p[at(l, t, e)], b = p[at(l, u, e)];
                d_p[at(l, t, e)] += (float)(d * (beta_same * ks * b - beta_diff * kd * (su - b)));
                d_p[at(l, u, e)] += (float)(d * (beta_same * ks * a - beta_diff * kd * (st - a)));
            }
    }
    if (s_out) {
        s_out[0] = same;
        s_out[1] = diff;
    }
    return beta_same * same - beta_diff * diff;
}

size_t moe_similarity_scratch_doubles(int c, int n_experts, int n_pairs)
{
    return n_pairs > 0 ? (size_t)n_pairs * 2 * (size_t)(c + n_experts) : 0;
}

double moe_similarity_loss_r(const moe_layout *l, const float *p, int c, const float *x,
                             int n_pairs, const int32_t *pairs, int64_t token_first,
                             float beta_same, float beta_diff, float *d_p, double s_out[2],
                             moe_reduce *r, double *scratch)
{
    const int M = l->n;
    if (n_pairs < 1) {
        if (s_out) s_out[0] = s_out[1] = 0;
        return 0;
    }
    /* per pair: x_t (c), x_u (c), p_t (M), p_u (M); zero except for this process's tokens */
    const size_t stride = 2 * (size_t)(c + M), T = (size_t)l->outer * l->inner;
    for (size_t i = 0; i < (size_t)n_pairs * stride; i++) scratch[i] = 0;
    for (int i = 0; i < n_pairs && T > 0; i++)
        for (int side = 0; side < 2; side++) {
            int64_t t = (int64_t)pairs[2 * i + side] - token_first;
            if (t < 0 || (size_t)t >= T) continue;
            size_t o = (size_t)t / l->inner, in = (size_t)t % l->inner;
            double *row = scratch + (size_t)i * stride;
            for (int k = 0; k < c; k++) row[(size_t)side * c + k] = x[(o * c + k) * l->inner + in];
            for (int e = 0; e < M; e++) row[2 * (size_t)c + (size_t)side * M + e] = p[at(l, (size_t)t, e)];
        }
    moe_reduce_sum(r, scratch, (size_t)n_pairs * stride);
    double dmax = 0;
    for (int i = 0; i < n_pairs; i++) {
        const double *row = scratch + (size_t)i * stride;
        double s = 0;
        for (int k = 0; k < c; k++) {
            double d = row[k] - row[c + k];
            s += d * d;
        }
        if (sqrt(s) > dmax) dmax = sqrt(s);
    }
    double same = 0, diff = 0;
    const double ks = 1.0 / ((double)M * n_pairs);
    const double kd = M > 1 ? 1.0 / ((double)M * (M - 1) * n_pairs) : 0.0;
    const double gs = r && r->sum ? r->grad_scale : 1.0;
    for (int i = 0; i < n_pairs; i++) {
        const double *row = scratch + (size_t)i * stride, *pt = row + 2 * (size_t)c, *pu = pt + M;
        double s2 = 0;
        for (int k = 0; k < c; k++) {
            double d = row[k] - row[c + k];
            s2 += d * d;
        }
        double d = dmax > 0 ? sqrt(s2) / dmax : 0;
        double st = 0, su = 0, dot = 0;
        for (int e = 0; e < M; e++) {
            st += pt[e];
            su += pu[e];
            dot += pt[e] * pu[e];
        }
        same += ks * dot * d;
        diff += kd * (st * su - dot) * d;
        if (!d_p || T == 0) continue;
        int64_t t = (int64_t)pairs[2 * i] - token_first, u = (int64_t)pairs[2 * i + 1] - token_first;
        int t_here = t >= 0 && (size_t)t < T, u_here = u >= 0 && (size_t)u < T;
        for (int e = 0; e < M; e++) {
            if (t_here)
                d_p[at(l, (size_t)t, e)] += (float)(gs * d * (beta_same * ks * pu[e] - beta_diff * kd * (su - pu[e])));
            if (u_here)
                d_p[at(l, (size_t)u, e)] += (float)(gs * d * (beta_same * ks * pt[e] - beta_diff * kd * (st - pt[e])));
        }
    }
    if (s_out) {
        s_out[0] = same;
        s_out[1] = diff;
    }
    return beta_same * same - beta_diff * diff;
}

double moe_distill_loss(const moe_layout *l, const float *p_teacher, const float *student_logits,
                        float *d_logits, float weight)
{
    const size_t T = (size_t)l->outer * l->inner;
    double loss = 0;
    for (size_t t = 0; t < T; t++) {
        double m = student_logits[at(l, t, 0)];
        for (int e = 1; e < l->n; e++) m = fmax(m, student_logits[at(l, t, e)]);
        double s = 0;
        for (int e = 0; e < l->n; e++) s += exp(student_logits[at(l, t, e)] - m);
        double lse = m + log(s);
        for (int e = 0; e < l->n; e++) {
            size_t q = at(l, t, e);
            loss -= p_teacher[q] * (student_logits[q] - lse);
            if (d_logits)
                d_logits[q] += (float)(weight * (exp(student_logits[q] - lse) - p_teacher[q]) / (double)T);
        }
    }
    return loss / (double)T;
}
