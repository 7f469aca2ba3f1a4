/* Spatial Mixture-of-Experts layer: gate, top-k routing, straight-through backward, RC loss,
 * damping (see smoe.h). */
#include "moe/smoe.h"

#include <math.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

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
/* Threads for the elementwise loops: 1 below 64 Ki gate values (a parallel region costs more). */
static int par_threads(const smoe_shape *s) { return bnhw(s) < (1u << 16) ? 1 : moe_threads(); }
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

void smoe_topk(int n_experts, int k, size_t npix, size_t stride, const float *r, int32_t *idx)
{
    float val[SMOE_MAX_EXPERTS];
    int32_t id[SMOE_MAX_EXPERTS];
    for (size_t p = 0; p < npix; p++) {
        /* insertion into a list kept sorted by value; only a strictly larger value moves up,
         * so equal values keep the lower expert index first. The first k experts always
         * enter and every comparison with a NaN is false (a NaN keeps its place, as in a
         * first-maximum scan), so the k indices are distinct and valid. */
        int m = 0;
        for (int n = 0; n < n_experts; n++) {
            const float x = r[(size_t)n * stride + p];
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
        for (int j = 0; j < k; j++) idx[(size_t)j * stride + p] = id[j];
    }
}

/* Softmax over the N planes (stride apart) of npix pixels: z -> pz. */
static void softmax_pixels(int N, size_t npix, size_t stride, const float *z, float *pz)
{
    for (size_t p = 0; p < npix; p++) {
        float m = z[p];
        for (int n = 1; n < N; n++) m = fmaxf(m, z[(size_t)n * stride + p]);
        double sum = 0;
        for (int n = 0; n < N; n++) sum += exp((double)z[(size_t)n * stride + p] - m);
        for (int n = 0; n < N; n++)
            pz[(size_t)n * stride + p] = (float)(exp((double)z[(size_t)n * stride + p] - m) / sum);
    }
}

/* dst[n * stride + i] = src[n * stride + i] for n < planes, i < npix (elements of elem bytes). */
static void copy_planes(int planes, size_t npix, size_t stride, const void *src, void *dst,
                        size_t elem)
{
    for (int n = 0; n < planes; n++)
        memcpy((char *)dst + (size_t)n * stride * elem, (const char *)src + (size_t)n * stride * elem,
               npix * elem);
}

static int thread_index(void)
{
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

void smoe_forward(const smoe_shape *s, float *out, const float *in, const float *params,
                  float *state, float *workspace, rng_t *noise_rng)
{
    const int B = s->batch, N = s->n_experts, k = s->k, H = s->h, W = s->w;
    const size_t hw = (size_t)H * W, nhw = (size_t)N * hw, khw = (size_t)k * hw;
    moe_param_info info[2];
    smoe_params(s, info);
    smoe_state_view v = smoe_state(s, state);
    const int latent = s->gate == SMOE_GATE_LATENT;
    const float *g = params + info[1].offset;
    const int noisy = s->noise && noise_rng;
    /* With a latent gate and no noise every sample has the same routing: softmax and top-k are
     * computed once (into sample 0) and copied. */
    const int shared = latent && !noisy;

    /* Serial part: the conv gate (its own parallel region), the noise stream (in order) and the
     * shared routing. gate_noisy holds the noise alone here; the gate is added below. */
    if (!latent) {
        conv2d_shape gs = gate_shape(s);
        conv2d_forward(&gs, v.gate_raw, in, params + info[1].offset, NULL, workspace);
    }
    if (noisy) {
        const double sd = 1.0 / N;
        for (size_t i = 0; i < bnhw(s); i++) v.gate_noisy[i] = (float)(sd * rng_normal(noise_rng));
    }
    if (shared) {
        const float *route0 = g;
        if (s->softmax) {
            softmax_pixels(N, hw, hw, g, v.gate_route);
            route0 = v.gate_route;
        }
        smoe_topk(N, k, hw, hw, route0, v.idx);
    }
    smoe_expert_shape es = expert_shape(s);
    smoe_expert_prepare(&es, params, workspace);

    /* One parallel region over (sample, band of rows) items, no barrier inside: gate values,
     * routing, selected experts and output of the item's rows (dynamic schedule; each item
     * writes only its rows). */
    const int nt = smoe_expert_threads(&es);
    const int bands = smoe_expert_bands(&es, nt);
    const int items = B * bands;
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1)
    for (int it = 0; it < items; it++) {
        const int b = it / bands, band = it % bands;
        const int h0 = (int)((long)H * band / bands), h1 = (int)((long)H * (band + 1) / bands);
        const size_t p0 = (size_t)h0 * W, np = (size_t)(h1 - h0) * W;
        float *raw = v.gate_raw + (size_t)b * nhw + p0;
        float *nz = v.gate_noisy + (size_t)b * nhw + p0;
        float *route = v.gate_route + (size_t)b * nhw + p0;
        int32_t *idx = v.idx + (size_t)b * khw + p0;
        if (latent) copy_planes(N, np, hw, g + p0, raw, sizeof(float));
        if (noisy) {
            for (int n = 0; n < N; n++)
                for (size_t i = 0; i < np; i++) nz[(size_t)n * hw + i] += raw[(size_t)n * hw + i];
        } else {
            copy_planes(N, np, hw, raw, nz, sizeof(float));
        }
        if (shared) {
            if (s->softmax) {
                if (b > 0) copy_planes(N, np, hw, v.gate_route + p0, route, sizeof(float));
            } else {
                copy_planes(N, np, hw, nz, route, sizeof(float));
            }
            if (b > 0) copy_planes(k, np, hw, v.idx + p0, idx, sizeof(int32_t));
        } else {
            if (s->softmax) softmax_pixels(N, np, hw, nz, route);
            else copy_planes(N, np, hw, nz, route, sizeof(float));
            smoe_topk(N, k, np, hw, route, idx);
        }
        smoe_expert_forward_rows(&es, b, h0, h1, v.esel, v.idx, in, workspace, thread_index());
        for (int j = 0; j < k; j++)
            for (size_t p = p0; p < p0 + np; p++) {
                const size_t o = ((size_t)b * k + j) * hw + p;
                const float e = v.esel[o];
                out[o] = s->weighted ? v.gate_route[(size_t)b * nhw + (size_t)v.idx[o] * hw + p] * e : e;
            }
    }
    for (int i = 0; i < SMOE_NSTAT; i++) v.stats[i] = 0;
}

/* Straight-through expert gradient of sample b: d_esel = d_out * (weighted ? R_sel : 1). */
static void d_esel_sample(const smoe_shape *s, const smoe_state_view *v, int b, const float *d_out,
                          float *d_esel)
{
    const size_t hw = (size_t)s->h * s->w, nhw = (size_t)s->n_experts * hw;
    for (int j = 0; j < s->k; j++)
        for (size_t p = 0; p < hw; p++) {
            const size_t o = ((size_t)b * s->k + j) * hw + p;
            const float r = v->gate_route[(size_t)b * nhw + (size_t)v->idx[o] * hw + p];
            d_esel[o] = d_out[o] * (s->weighted ? r : 1.0f);
        }
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

    const int nt = par_threads(s);
    const int need_q = s->rc_loss || s->damping;
    const int fast_gate = s->gate == SMOE_GATE_LATENT && !s->rc_loss && !s->softmax && !d_gate_extra;
    for (int i = 0; i < SMOE_NSTAT; i++) v.stats[i] = 0;
    /* 1. expert gradient at the selected outputs */
    if (need_q) {
#pragma omp parallel for num_threads(nt) schedule(static)
        for (int b = 0; b < B; b++) d_esel_sample(s, &v, b, d_out, d_esel);
        /* 2. error signal, per-sample quantile */
        for (size_t o = 0; o < bkhw(s); o++) {
            float e = s->weighted ? d_out[o] * v.esel[o] : d_out[o];
            e_s[o] = fabsf(e) * s->rc_error_scale;
        }
        rc_sample_quantiles(B, khw, e_s, s->rc_quantile, qb, scratch);
        const int abs_thr = smoe_rc_is_absolute(s);
        rc_thresholds(B, qb, abs_thr, abs_thr ? s->rc_tol_correct : RC_CORRECT_REL, thr_c);
        rc_thresholds(B, qb, abs_thr, abs_thr ? s->rc_tol_damp : RC_DAMP_REL, thr_d);
        /* 3. damping */
        if (s->damping) {
            size_t nd = rc_damp_thr(B, khw, e_s, thr_d, s->damping_factor, d_esel);
            v.stats[SMOE_STAT_DAMPED_FRAC] = (float)((double)nd / (double)bkhw(s));
        }
    }
    /* 4. experts, one sample per item (and 5. the latent gate's straight-through gradient, in
     * chunks of pixels; it does not wait for the experts) in one parallel region. Dynamic
     * schedules (a thread that is descheduled on a loaded machine does not hold the others
     * back); every item writes its own outputs, so results do not depend on the schedule. */
    smoe_expert_prepare(&es, params, workspace);
    int ent = smoe_expert_threads(&es);
    if (ent > B) ent = B;
    smoe_expert_backward_begin(&es, workspace);
    float *dg = d_params + info[1].offset;
#pragma omp parallel num_threads(ent)
    {
        const int tid = thread_index();
#pragma omp for schedule(dynamic, 1) nowait
        for (int b = 0; b < B; b++) {
            if (!need_q) d_esel_sample(s, &v, b, d_out, d_esel);
            smoe_expert_backward_sample(&es, b, d_in, d_esel, v.idx, in, workspace, tid);
        }
        if (fast_gate) {
            /* dG[idx, p] += d_out * (weighted ? E : 1), summed over the batch in sample order,
             * in chunks of pixels */
            const int nchunk = 16 * ent;
#pragma omp for schedule(dynamic, 1)
            for (int ch = 0; ch < nchunk; ch++) {
                const size_t p0 = hw * ch / nchunk, p1 = hw * (ch + 1) / nchunk;
                for (int b = 0; b < B; b++)
                    for (int j = 0; j < k; j++) {
                        const size_t o = ((size_t)b * k + j) * hw;
                        for (size_t p = p0; p < p1; p++)
                            dg[(size_t)v.idx[o + p] * hw + p] +=
                                d_out[o + p] * (s->weighted ? v.esel[o + p] : 1.0f);
                    }
            }
        }
    }
    smoe_expert_backward_end(&es, d_params + info[0].offset, workspace);
    if (fast_gate) return;
    /* gradient w.r.t. the raw output R */
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int b = 0; b < B; b++) memset(d_raw + (size_t)b * nhw, 0, nhw * sizeof(float));
    if (!s->rc_loss) {
        /* straight-through main-loss gradient w.r.t. the routed values */
#pragma omp parallel for num_threads(nt) schedule(static)
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
#pragma omp parallel for num_threads(nt) schedule(static)
        for (size_t i = 0; i < nhw; i++) {
            float a = dg[i];
            for (int b = 0; b < B; b++) a += d_raw[(size_t)b * nhw + i];
            dg[i] = a;
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
