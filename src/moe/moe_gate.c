/* Token gates: noisy top-k softmax and Laplace, with the capacity variant (see moe_gate.h). */
#include "moe/moe_gate.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

#include "core/log.h"


int moe_gate_check(const moe_gate_shape *s)
{
    if (s->batch < 1 || s->c_in < 1 || s->hw < 1)
        return sm_fail(SM_ERR_USAGE, "moe gate: batch %d, c_in %d, pixels %d must be >= 1",
                       s->batch, s->c_in, s->hw);
    if (s->n < 1 || s->n > MOE_GATE_MAX_EXPERTS || s->k < 1 || s->k > s->n)
        return sm_fail(SM_ERR_USAGE, "model.moe: k = %d with %d experts; need 1 <= k <= experts <= %d",
                       s->k, s->n, MOE_GATE_MAX_EXPERTS);
    if (s->kind != MOE_GATE_SOFTMAX && s->kind != MOE_GATE_LAPLACE)
        return sm_fail(SM_ERR_USAGE, "model.moe.gate: unknown token gate kind %d", (int)s->kind);
    return SM_OK;
}

int moe_gate_params(const moe_gate_shape *s, moe_param_info info[3])
{
    int n = 0;
    size_t off = moe_param_set(info ? &info[n] : NULL, "w_gate", 0, 2, s->n, s->c_in, 0, 0);
    n++;
    if (s->noisy) {
        off = moe_param_set(info ? &info[n] : NULL, "w_noise", off, 2, s->n, s->c_in, 0, 0);
        n++;
    }
    if (s->kind == MOE_GATE_LAPLACE && s->laplace_bias) {
        moe_param_set(info ? &info[n] : NULL, "b_gate", off, 1, s->n, 0, 0, 0);
        n++;
    }
    return n;
}

size_t moe_gate_param_floats(const moe_gate_shape *s)
{
    moe_param_info info[3];
    int n = moe_gate_params(s, info);
    return info[n - 1].offset + info[n - 1].count;
}

void moe_gate_init(const moe_gate_shape *s, float *params, rng_t *rng)
{
    memset(params, 0, moe_gate_param_floats(s) * sizeof(float));
    if (s->kind == MOE_GATE_LAPLACE)
        for (size_t i = 0; i < (size_t)s->n * s->c_in; i++)
            params[i] = (float)(2.0 * rng_uniform(rng) - 1.0);
}

int moe_gate_capacity(const moe_gate_shape *s)
{
    if (!(s->capacity_factor > 0)) return 0;
    double t = (double)s->batch * s->hw;
    return (int)ceil((double)s->k * t / s->n * s->capacity_factor);
}

static size_t bnp(const moe_gate_shape *s) { return (size_t)s->batch * s->n * s->hw; }

size_t moe_gate_state_floats(const moe_gate_shape *s) { return 7 * bnp(s) + 4; }

moe_gate_view moe_gate_state(const moe_gate_shape *s, float *state)
{
    moe_gate_view v;
    size_t n = bnp(s);
    v.clean = state;
    v.noisy = state + n;
    v.std = state + 2 * n;
    v.pfull = state + 3 * n;
    v.g = state + 4 * n;
    v.kept = state + 5 * n;
    v.dist = state + 6 * n;
    v.stats = state + 7 * n;
    return v;
}

size_t moe_gate_workspace_floats(const moe_gate_shape *s) { return 2 * bnp(s) + 4; }

static double softplus(double z) { return (z > 0 ? z : 0) + log1p(exp(-fabs(z))); }

/* Best expert of token q (base index, stride hw) among those not kept and not full. */
static int best_free(const moe_gate_shape *s, const float *h, const float *kept, size_t q,
                     const int *count, int cap)
{
    int best = -1;
    float bv = 0;
    for (int n = 0; n < s->n; n++) {
        size_t i = q + (size_t)n * s->hw;
        if (kept[i] != 0.0f) continue;
        if (cap > 0 && count[n] >= cap) continue;
        if (best < 0 || h[i] > bv) {
            best = n;
            bv = h[i];
        }
    }
    return best;
}

void moe_gate_select_pass(const moe_gate_shape *s, int cap, const float *logits, float *kept, int *count,
                          double *dropped, double *rerouted)
{
    const int N = s->n, P = s->hw;
    for (int b = 0; b < s->batch; b++)
        for (int p = 0; p < P; p++) {
            size_t q = (size_t)b * N * P + p;
            int e = best_free(s, logits, kept, q, count, cap);
            if (cap > 0 && e != best_free(s, logits, kept, q, count, 0)) *rerouted += 1;
            if (e < 0) {
                *dropped += 1;
                continue;
            }
            kept[q + (size_t)e * P] = 1.0f;
            count[e]++;
        }
}

void moe_gate_kept_softmax(const moe_gate_shape *s, const float *logits, const float *kept, float *g)
{
    const int N = s->n, P = s->hw;
    for (int b = 0; b < s->batch; b++)
        for (int p = 0; p < P; p++) {
            size_t q = (size_t)b * N * P + p;
            float m = -INFINITY;
            for (int n = 0; n < N; n++)
                if (kept[q + (size_t)n * P] != 0.0f) m = fmaxf(m, logits[q + (size_t)n * P]);
            double sum = 0;
            for (int n = 0; n < N; n++)
                if (kept[q + (size_t)n * P] != 0.0f) sum += exp((double)logits[q + (size_t)n * P] - m);
            for (int n = 0; n < N; n++) {
                size_t i = q + (size_t)n * P;
                g[i] = kept[i] != 0.0f ? (float)(exp((double)logits[i] - m) / sum) : 0.0f;
            }
        }
}

void moe_gate_forward(const moe_gate_shape *s, const float *x, const float *params, float *state,
                      int training, rng_t *rng)
{
    const int B = s->batch, C = s->c_in, N = s->n, P = s->hw;
    moe_gate_view v = moe_gate_state(s, state);
    moe_param_info info[3];
    int np = moe_gate_params(s, info);
    const float *wg = params;
    const float *wn = s->noisy ? params + info[1].offset : NULL;
    const float *bg = (s->kind == MOE_GATE_LAPLACE && s->laplace_bias) ? params + info[np - 1].offset : NULL;
    for (int b = 0; b < B; b++) {
        const float *xb = x + (size_t)b * C * P;
        float *cl = v.clean + (size_t)b * N * P;
        if (s->kind == MOE_GATE_SOFTMAX) {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, P, C, 1.0f, wg, C, xb, P,
                        0.0f, cl, P);
        } else {
            float *ds = v.dist + (size_t)b * N * P;
            for (int n = 0; n < N; n++)
                for (int p = 0; p < P; p++) {
                    double acc = 0;
                    for (int c = 0; c < C; c++) {
                        double d = (double)xb[(size_t)c * P + p] - wg[(size_t)n * C + c];
                        acc += d * d;
                    }
                    ds[(size_t)n * P + p] = (float)sqrt(acc);
                    cl[(size_t)n * P + p] = -ds[(size_t)n * P + p] + (bg ? bg[n] : 0.0f);
                }
        }
        float *sd = v.std + (size_t)b * N * P;
        if (wn) {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, P, C, 1.0f, wn, C, xb, P,
                        0.0f, sd, P);
            for (size_t i = 0; i < (size_t)N * P; i++) sd[i] = (float)softplus(sd[i]);
        } else {
            for (size_t i = 0; i < (size_t)N * P; i++) sd[i] = 1.0f;
        }
    }
    memcpy(v.noisy, v.clean, bnp(s) * sizeof(float));
    if (training && s->noisy && rng)
        for (size_t i = 0; i < bnp(s); i++) v.noisy[i] += (float)rng_normal(rng) * v.std[i];
    /* full softmax of the clean logits */
    for (int b = 0; b < B; b++)
        for (int p = 0; p < P; p++) {
            size_t q = (size_t)b * N * P + p;
            float m = v.clean[q];
            for (int n = 1; n < N; n++) m = fmaxf(m, v.clean[q + (size_t)n * P]);
            double sum = 0;
            for (int n = 0; n < N; n++) sum += exp((double)v.clean[q + (size_t)n * P] - m);
            for (int n = 0; n < N; n++)
                v.pfull[q + (size_t)n * P] = (float)(exp((double)v.clean[q + (size_t)n * P] - m) / sum);
        }
    /* selection */
    memset(v.kept, 0, bnp(s) * sizeof(float));
    int count[MOE_GATE_MAX_EXPERTS] = {0};
    const int cap = training ? moe_gate_capacity(s) : 0;
    double dropped = 0, rerouted = 0;
    for (int j = 0; j < s->k; j++) moe_gate_select_pass(s, cap, v.noisy, v.kept, count, &dropped, &rerouted);
    v.stats[0] = (float)dropped;
    v.stats[1] = (float)rerouted;
    moe_gate_kept_softmax(s, v.noisy, v.kept, v.g);
}

void moe_gate_backward(const moe_gate_shape *s, float *d_x, float *d_params, const float *d_g,
                       const float *d_pfull, const float *d_clean, const float *d_std,
                       const float *x, const float *params, float *state, float *workspace)
{
    const int B = s->batch, C = s->c_in, N = s->n, P = s->hw;
    moe_gate_view v = moe_gate_state(s, state);
    moe_param_info info[3];
    int np = moe_gate_params(s, info);
    float *dcl = workspace, *dsd = workspace + bnp(s);
    memset(workspace, 0, 2 * bnp(s) * sizeof(float));
    for (int b = 0; b < B; b++)
        for (int p = 0; p < P; p++) {
            size_t q = (size_t)b * N * P + p;
            if (d_g) {
                double dot = 0;
                for (int n = 0; n < N; n++) dot += (double)v.g[q + (size_t)n * P] * d_g[q + (size_t)n * P];
                for (int n = 0; n < N; n++) {
                    size_t i = q + (size_t)n * P;
                    if (v.kept[i] == 0.0f) continue;
                    float dh = (float)(v.g[i] * (d_g[i] - dot));
                    dcl[i] += dh;
                    if (s->noisy) dsd[i] += dh * (v.noisy[i] - v.clean[i]) / v.std[i];
                }
            }
            if (d_pfull) {
                double dot = 0;
                for (int n = 0; n < N; n++) dot += (double)v.pfull[q + (size_t)n * P] * d_pfull[q + (size_t)n * P];
                for (int n = 0; n < N; n++) {
                    size_t i = q + (size_t)n * P;
                    dcl[i] += (float)(v.pfull[i] * (d_pfull[i] - dot));
                }
            }
        }
    if (d_clean)
        for (size_t i = 0; i < bnp(s); i++) dcl[i] += d_clean[i];
    if (d_std && s->noisy)
        for (size_t i = 0; i < bnp(s); i++) dsd[i] += d_std[i];
    const float *wg = params;
    float *dwg = d_params;
    for (int b = 0; b < B; b++) {
        const float *xb = x + (size_t)b * C * P;
        float *dxb = d_x ? d_x + (size_t)b * C * P : NULL;
        float *dc = dcl + (size_t)b * N * P;
        if (s->kind == MOE_GATE_SOFTMAX) {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, C, P, 1.0f, dc, P, xb, P, 1.0f,
                        dwg, C);
            if (dxb)
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, C, P, N, 1.0f, wg, C, dc, P,
                            1.0f, dxb, P);
        } else {
            const float *ds = v.dist + (size_t)b * N * P;
            float *db = s->laplace_bias ? d_params + info[np - 1].offset : NULL;
            for (int n = 0; n < N; n++)
                for (int p = 0; p < P; p++) {
                    float g = dc[(size_t)n * P + p];
                    if (g == 0.0f) continue;
                    if (db) db[n] += g;
                    float dist = ds[(size_t)n * P + p];
                    if (!(dist > 0)) continue;
                    float a = g / dist; /* d(-dist)/dx = -(x - w)/dist */
                    for (int c = 0; c < C; c++) {
                        float diff = xb[(size_t)c * P + p] - wg[(size_t)n * C + c];
                        dwg[(size_t)n * C + c] += a * diff;
                        if (dxb) dxb[(size_t)c * P + p] -= a * diff;
                    }
                }
        }
        if (s->noisy) {
            const float *wn = params + info[1].offset;
            float *dwn = d_params + info[1].offset;
            float *dz = dsd + (size_t)b * N * P;
            const float *sd = v.std + (size_t)b * N * P;
            for (size_t i = 0; i < (size_t)N * P; i++) dz[i] *= (float)(1.0 - exp(-(double)sd[i]));
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, C, P, 1.0f, dz, P, xb, P, 1.0f,
                        dwn, C);
            if (dxb)
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, C, P, N, 1.0f, wn, C, dz, P,
                            1.0f, dxb, P);
        }
    }
}
