/* Spatial Mixture-of-Experts layer: gate, top-k routing, straight-through backward, RC loss,
 * damping (see smoe.h). */
#include "moe/smoe.h"

#include <math.h>
#include <string.h>

#include "core/log.h"
#include "moe/moe_balance.h"
#include "moe/rc_loss.h"
#include "moe/smoe_expert.h"

void smoe_shape_defaults(smoe_shape *s)
{
    s->kernel = 3;
    s->pad = PAD_ZERO;
    s->gate = SMOE_GATE_LATENT;
    s->weighted = 1;
    s->softmax = 0;
    s->noise = 0;
    s->rc_loss = 0;
    s->rc_quantile = 0.7f;
    s->rc_error_scale = 1.0f;
    s->damping = 0;
    s->damping_factor = 0.0f;
    s->rc_absolute = SMOE_RC_AUTO;
    s->rc_tol_correct = SMOE_RC_TOL_CORRECT_DEFAULT;
    s->rc_tol_damp = SMOE_RC_TOL_DAMP_DEFAULT;
}

int smoe_rc_is_absolute(const smoe_shape *s)
{
    if (s->rc_absolute == SMOE_RC_AUTO) return s->rc_error_scale != 1.0f;
    return s->rc_absolute == SMOE_RC_ABSOLUTE;
}

int smoe_check(const smoe_shape *s)
{
    if (s->batch < 1 || s->c_in < 1 || s->h < 1 || s->w < 1)
        return sm_fail(SM_ERR_USAGE, "smoe: shape: batch %d, c_in %d, h %d, w %d must be >= 1",
                       s->batch, s->c_in, s->h, s->w);
    if (s->n_experts < 1 || s->k < 1 || s->k > s->n_experts)
        return sm_fail(SM_ERR_USAGE, "model.moe: k = %d with experts = %d; need 1 <= k <= experts",
                       s->k, s->n_experts);
    if (s->n_experts > SMOE_MAX_EXPERTS)
        return sm_fail(SM_ERR_USAGE, "model.moe.experts: %d; at most %d experts per SMoE layer",
                       s->n_experts, SMOE_MAX_EXPERTS);
    if (s->kernel < 1 || s->kernel % 2 == 0)
        return sm_fail(SM_ERR_USAGE, "smoe: kernel %d must be odd and >= 1", s->kernel);
    if (s->pad < PAD_ZERO || s->pad > PAD_REPLICATE)
        return sm_fail(SM_ERR_USAGE, "smoe: unknown pad mode %d", s->pad);
    if (s->gate < SMOE_GATE_LATENT || s->gate > SMOE_GATE_CONV1X1)
        return sm_fail(SM_ERR_USAGE, "model.moe.gate: unknown SMoE gate %d", (int)s->gate);
    if (!(s->rc_quantile >= 0.0f && s->rc_quantile <= 1.0f))
        return sm_fail(SM_ERR_USAGE, "model.moe.rc_loss.quantile: %g not in [0, 1]",
                       (double)s->rc_quantile);
    if (s->gate != SMOE_GATE_LATENT) {
        conv2d_shape gs = {s->batch, s->c_in, s->h, s->w, s->n_experts,
                           s->gate == SMOE_GATE_CONV1X1 ? 1 : 3, 1, s->pad, 0};
        if (!conv2d_shape_valid(&gs))
            return sm_fail(SM_ERR_USAGE, "model.moe.gate: conv gate unsupported for a %dx%d grid",
                           s->h, s->w);
    }
    if (s->rc_absolute < SMOE_RC_AUTO || s->rc_absolute > SMOE_RC_ABSOLUTE)
        return sm_fail(SM_ERR_USAGE, "smoe: rc_absolute %d must be -1 (auto), 0 or 1", s->rc_absolute);
    if (!(s->rc_tol_correct >= 0.0f) || !(s->rc_tol_damp >= 0.0f))
        return sm_fail(SM_ERR_USAGE, "smoe: RC tolerances %g / %g must be >= 0",
                       (double)s->rc_tol_correct, (double)s->rc_tol_damp);
    if (!(s->rc_error_scale > 0.0f))
        return sm_fail(SM_ERR_USAGE, "smoe: rc_error_scale %g must be > 0", (double)s->rc_error_scale);
    return SM_OK;
}

static int gate_kernel(const smoe_shape *s) { return s->gate == SMOE_GATE_CONV1X1 ? 1 : 3; }

static smoe_expert_shape expert_shape(const smoe_shape *s)
{
    smoe_expert_shape e = {s->batch, s->c_in, s->h, s->w, s->n_experts, s->k, s->kernel, s->pad};
    return e;
}

/* A conv gate is a dense C_in -> N convolution without bias (nn/conv2d). */
static conv2d_shape gate_shape(const smoe_shape *s)
{
    conv2d_shape c = {s->batch, s->c_in, s->h, s->w, s->n_experts, gate_kernel(s), 1, s->pad, 0};
    return c;
}

int smoe_params(const smoe_shape *s, moe_param_info info[2])
{
    const int N = s->n_experts, C = s->c_in, K = s->kernel;
    size_t off = moe_param_set(info ? &info[0] : NULL, "expert_weight", 0, 4, N, C, K, K);
    if (s->gate == SMOE_GATE_LATENT)
        moe_param_set(info ? &info[1] : NULL, "gate_latent", off, 3, N, s->h, s->w, 0);
    else
        moe_param_set(info ? &info[1] : NULL, "gate_weight", off, 4, N, C, gate_kernel(s),
                      gate_kernel(s));
    return 2;
}

size_t smoe_param_floats(const smoe_shape *s)
{
    moe_param_info info[2];
    smoe_params(s, info);
    return info[1].offset + info[1].count;
}

static void uniform_fill(float *p, size_t n, double a, rng_t *rng)
{
    for (size_t i = 0; i < n; i++) p[i] = (float)((2.0 * rng_uniform(rng) - 1.0) * a);
}

void smoe_init(const smoe_shape *s, float *params, rng_t *rng)
{
    moe_param_info info[2];
    smoe_params(s, info);
    double fan_in = (double)s->c_in * s->kernel * s->kernel;
    uniform_fill(params + info[0].offset, info[0].count, sqrt(6.0 / fan_in), rng);
    if (s->gate == SMOE_GATE_LATENT) {
        uniform_fill(params + info[1].offset, info[1].count,
                     sqrt(3.0 * s->n_experts / (double)s->k), rng);
    } else {
        double gfan = (double)s->c_in * gate_kernel(s) * gate_kernel(s);
        uniform_fill(params + info[1].offset, info[1].count, sqrt(6.0 / gfan), rng);
    }
}

static size_t bnhw(const smoe_shape *s) { return (size_t)s->batch * s->n_experts * s->h * s->w; }
static size_t bkhw(const smoe_shape *s) { return (size_t)s->batch * s->k * s->h * s->w; }

size_t smoe_state_floats(const smoe_shape *s)
{
    return 3 * bnhw(s) + 2 * bkhw(s) + SMOE_NSTAT;
}

smoe_state_view smoe_state(const smoe_shape *s, float *state)
{
    smoe_state_view v;
    v.gate_raw = state;
    v.gate_noisy = v.gate_raw + bnhw(s);
    v.gate_route = v.gate_noisy + bnhw(s);
    v.idx = (int32_t *)(v.gate_route + bnhw(s));
    v.esel = (float *)(v.idx + bkhw(s));
    v.stats = v.esel + bkhw(s);
    return v;
}

size_t smoe_workspace_floats(const smoe_shape *s)
{
    smoe_expert_shape es = expert_shape(s);
    conv2d_shape gs = gate_shape(s);
    size_t conv = smoe_expert_workspace_floats(&es);
    size_t g = s->gate == SMOE_GATE_LATENT ? 0 : conv2d_workspace_floats(&gs);
    if (g > conv) conv = g;
    size_t hw = (size_t)s->h * s->w;
    /* conv scratch, d_esel, e_s, quantile scratch, qb, d_raw, labels, two thresholds */
    return conv + 2 * bkhw(s) + (size_t)s->k * hw + (size_t)s->batch + 2 * bnhw(s) +
           2 * (size_t)s->batch + 64;
}

void smoe_topk(int n_experts, int k, size_t hw, const float *r, int32_t *idx)
{
    float val[SMOE_MAX_EXPERTS];
    int32_t id[SMOE_MAX_EXPERTS];
    for (size_t p = 0; p < hw; p++) {
        /* insertion into a list kept sorted by value; only a strictly larger value moves up,
         * so equal values keep the lower expert index first. The first k experts always
         * enter (a NaN stays behind every number), so the k indices are distinct and valid. */
        int m = 0;
        for (int n = 0; n < n_experts; n++) {
            const float x = r[(size_t)n * hw + p];
            int pos;
            if (m < k) {
                pos = m++;
            } else if (x > val[k - 1]) {
                pos = k - 1;
            } else {
                continue;
            }
            while (pos > 0 && x > val[pos - 1]) {
                val[pos] = val[pos - 1];
                id[pos] = id[pos - 1];
                pos--;
            }
            val[pos] = x;
            id[pos] = n;
        }
        for (int j = 0; j < k; j++) idx[(size_t)j * hw + p] = id[j];
    }
}

void smoe_forward(const smoe_shape *s, float *out, const float *in, const float *params,
                  float *state, float *workspace, rng_t *noise_rng)
{
    const int B = s->batch, N = s->n_experts, k = s->k;
    const size_t hw = (size_t)s->h * s->w, nhw = (size_t)N * hw, khw = (size_t)k * hw;
    moe_param_info info[2];
    smoe_params(s, info);
    smoe_state_view v = smoe_state(s, state);

    /* 1. gate */
    if (s->gate == SMOE_GATE_LATENT) {
        for (int b = 0; b < B; b++)
            memcpy(v.gate_raw + (size_t)b * nhw, params + info[1].offset, nhw * sizeof(float));
    } else {
        conv2d_shape gs = gate_shape(s);
        conv2d_forward(&gs, v.gate_raw, in, params + info[1].offset, NULL, workspace);
    }
    /* With a latent gate and no noise every sample has the same routing: softmax and top-k
     * are computed for sample 0 and copied. */
    const int noisy = s->noise && noise_rng;
    const int nroute = s->gate == SMOE_GATE_LATENT && !noisy ? 1 : B;
    /* 2. noise, 3. softmax */
    memcpy(v.gate_noisy, v.gate_raw, bnhw(s) * sizeof(float));
    if (noisy) {
        const double sd = 1.0 / N;
        for (size_t i = 0; i < bnhw(s); i++) v.gate_noisy[i] += (float)(sd * rng_normal(noise_rng));
    }
    if (s->softmax) {
        for (int b = 0; b < nroute; b++) {
            const float *z = v.gate_noisy + (size_t)b * nhw;
            float *pz = v.gate_route + (size_t)b * nhw;
            for (size_t p = 0; p < hw; p++) {
                float m = z[p];
                for (int n = 1; n < N; n++) m = fmaxf(m, z[(size_t)n * hw + p]);
                double sum = 0;
                for (int n = 0; n < N; n++) sum += exp((double)z[(size_t)n * hw + p] - m);
                for (int n = 0; n < N; n++)
                    pz[(size_t)n * hw + p] = (float)(exp((double)z[(size_t)n * hw + p] - m) / sum);
            }
        }
        for (int b = nroute; b < B; b++)
            memcpy(v.gate_route + (size_t)b * nhw, v.gate_route, nhw * sizeof(float));
    } else {
        memcpy(v.gate_route, v.gate_noisy, bnhw(s) * sizeof(float));
    }
    /* 4. top-k, descending, ties to the lower expert index */
    for (int b = 0; b < nroute; b++)
        smoe_topk(N, k, hw, v.gate_route + (size_t)b * nhw, v.idx + (size_t)b * khw);
    for (int b = nroute; b < B; b++) memcpy(v.idx + (size_t)b * khw, v.idx, khw * sizeof(int32_t));
    /* 5. selected experts only */
    smoe_expert_shape es = expert_shape(s);
    smoe_expert_forward(&es, v.esel, v.idx, in, params, workspace);
    /* 6. output */
    for (int b = 0; b < B; b++)
        for (int j = 0; j < k; j++)
            for (size_t p = 0; p < hw; p++) {
                size_t o = ((size_t)b * k + j) * hw + p;
                float e = v.esel[o];
                out[o] = s->weighted ? v.gate_route[(size_t)b * nhw + (size_t)v.idx[o] * hw + p] * e : e;
            }
    for (int i = 0; i < SMOE_NSTAT; i++) v.stats[i] = 0;
}

void smoe_backward(const smoe_shape *s, float *d_in, float *d_params, const float *d_out,
                   const float *d_gate_extra, const float *in, const float *params, float *state,
                   float *workspace)
{
    const int B = s->batch, N = s->n_experts, k = s->k;
    const size_t hw = (size_t)s->h * s->w, nhw = (size_t)N * hw, khw = (size_t)k * hw;
    moe_param_info info[2];
    smoe_params(s, info);
    smoe_state_view v = smoe_state(s, state);
    smoe_expert_shape es = expert_shape(s);
    conv2d_shape gs = gate_shape(s);
    size_t conv = smoe_expert_workspace_floats(&es);
    size_t g = s->gate == SMOE_GATE_LATENT ? 0 : conv2d_workspace_floats(&gs);
    if (g > conv) conv = g;
    float *d_esel = workspace + conv;
    float *e_s = d_esel + bkhw(s);
    float *scratch = e_s + bkhw(s);
    float *qb = scratch + khw;
    float *d_raw = qb + B;
    float *labels = d_raw + bnhw(s);
    float *thr_c = labels + bnhw(s), *thr_d = thr_c + B;

    /* 1. expert gradient at the selected outputs */
    for (int b = 0; b < B; b++)
        for (int j = 0; j < k; j++)
            for (size_t p = 0; p < hw; p++) {
                size_t o = ((size_t)b * k + j) * hw + p;
                float r = v.gate_route[(size_t)b * nhw + (size_t)v.idx[o] * hw + p];
                d_esel[o] = d_out[o] * (s->weighted ? r : 1.0f);
            }
    /* 2. error signal, per-sample quantile */
    const int need_q = s->rc_loss || s->damping;
    for (int i = 0; i < SMOE_NSTAT; i++) v.stats[i] = 0;
    if (need_q) {
        for (size_t o = 0; o < bkhw(s); o++) {
            float e = s->weighted ? d_out[o] * v.esel[o] : d_out[o];
            e_s[o] = fabsf(e) * s->rc_error_scale;
        }
        rc_sample_quantiles(B, khw, e_s, s->rc_quantile, qb, scratch);
        const int abs_thr = smoe_rc_is_absolute(s);
        rc_thresholds(B, qb, abs_thr, abs_thr ? s->rc_tol_correct : RC_CORRECT_REL, thr_c);
        rc_thresholds(B, qb, abs_thr, abs_thr ? s->rc_tol_damp : RC_DAMP_REL, thr_d);
    }
    /* 3. damping */
    if (s->damping) {
        size_t nd = rc_damp_thr(B, khw, e_s, thr_d, s->damping_factor, d_esel);
        v.stats[SMOE_STAT_DAMPED_FRAC] = (float)((double)nd / (double)bkhw(s));
    }
    /* 4. experts */
    smoe_expert_backward(&es, d_in, d_params + info[0].offset, d_esel, v.idx, in, params, workspace);
    /* 5. gate gradient w.r.t. the raw output R */
    memset(d_raw, 0, bnhw(s) * sizeof(float));
    if (!s->rc_loss) {
        /* straight-through main-loss gradient w.r.t. the routed values */
        for (int b = 0; b < B; b++)
            for (int j = 0; j < k; j++)
                for (size_t p = 0; p < hw; p++) {
                    size_t o = ((size_t)b * k + j) * hw + p;
                    d_raw[(size_t)b * nhw + (size_t)v.idx[o] * hw + p] +=
                        d_out[o] * (s->weighted ? v.esel[o] : 1.0f);
                }
        if (s->softmax) {
            for (int b = 0; b < B; b++) {
                const float *pz = v.gate_route + (size_t)b * nhw;
                float *dz = d_raw + (size_t)b * nhw;
                for (size_t p = 0; p < hw; p++) {
                    double dot = 0;
                    for (int n = 0; n < N; n++) dot += (double)pz[(size_t)n * hw + p] * dz[(size_t)n * hw + p];
                    for (int n = 0; n < N; n++) {
                        size_t q = (size_t)n * hw + p;
                        dz[q] = (float)(pz[q] * (dz[q] - dot));
                    }
                }
            }
        }
    } else {
        rc_labels_thr(B, N, k, hw, e_s, v.idx, thr_c, labels);
        v.stats[SMOE_STAT_RC_LOSS] =
            (float)rc_bce_with_logits(B, nhw, v.gate_raw, nhw, labels, d_raw);
        size_t nc = 0;
        for (int b = 0; b < B; b++) {
            const float thr = thr_c[b];
            for (size_t i = 0; i < khw; i++) nc += e_s[(size_t)b * khw + i] <= thr;
        }
        v.stats[SMOE_STAT_CORRECT_FRAC] = (float)((double)nc / (double)bkhw(s));
    }
    if (d_gate_extra)
        for (size_t i = 0; i < bnhw(s); i++) d_raw[i] += d_gate_extra[i];
    /* 6. gate parameters */
    if (s->gate == SMOE_GATE_LATENT) {
        float *dg = d_params + info[1].offset;
        for (int b = 0; b < B; b++) {
            const float *src = d_raw + (size_t)b * nhw;
            for (size_t i = 0; i < nhw; i++) dg[i] += src[i];
        }
    } else {
        conv2d_backward(&gs, d_in, d_params + info[1].offset, NULL, d_raw, in,
                        params + info[1].offset, workspace);
    }
}

double smoe_aux_losses(const smoe_shape *s, float *state, const smoe_aux_weights *w,
                       float *d_gate, double values[3])
{
    smoe_state_view v = smoe_state(s, state);
    moe_layout l = {s->batch, s->n_experts, (size_t)s->h * s->w};
    double li = 0, ll = 0, la = 0;
    if (w->importance != 0) li = moe_importance_cv2(&l, v.gate_raw, d_gate, w->importance);
    if (w->load != 0)
        ll = moe_load_cv2(&l, s->k, v.gate_raw, v.gate_noisy, NULL, 1.0f / s->n_experts, d_gate,
                          NULL, w->load);
    if (w->agreement != 0)
        la = smoe_spatial_agreement(s->batch, s->n_experts, l.inner, v.gate_raw, d_gate,
                                    w->agreement);
    if (values) {
        values[0] = li;
        values[1] = ll;
        values[2] = la;
    }
    return w->importance * li + w->load * ll + w->agreement * la;
}
