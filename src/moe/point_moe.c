/* Point-gated MoE layer: dense conv-block experts, token gates (noisy top-k softmax, Laplace,
 * hierarchical, attention), gate-weighted sum, auxiliary losses (see point_moe.h). */
#include "moe/point_moe.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/log.h"
#include "moe/moe_balance.h"
#include "moe/moe_similarity.h"
#include "nn/conv2d.h"
#include "nn/nn_internal.h"
#include "nn/threads.h"

void pmoe_shape_defaults(pmoe_shape *s)
{
    s->hidden = 16;
    s->attn_hidden = 16;
    s->kernel = 3;
    s->pad = PAD_ZERO;
    s->gate = PMOE_SOFTMAX_TOPK;
    s->noisy = 1;
    s->capacity_factor = 0.0f;
    s->laplace_bias = 0;
    s->groups = 2;
    s->experts_per_group = 4;
    s->k_outer = 1;
    s->k_inner = 2;
    s->outer_kind = MOE_GATE_LAPLACE;
    s->inner_kind = MOE_GATE_LAPLACE;
    s->sim_pairs = 0;
    s->distill = 0;
    s->distill_check = 0;
}

static int P_of(const pmoe_shape *s) { return s->h * s->w; }
static int A_of(const pmoe_shape *s) { return s->attn_hidden > 0 ? s->attn_hidden : s->hidden; }

static moe_gate_shape single_gate(const pmoe_shape *s)
{
    moe_gate_shape g = {s->batch, s->c_in, P_of(s), s->n_experts, s->k,
                        s->gate == PMOE_LAPLACE ? MOE_GATE_LAPLACE : MOE_GATE_SOFTMAX,
                        s->noisy, s->laplace_bias, s->capacity_factor};
    return g;
}

/* The distillation student: an ordinary softmax top-k gate over the layer input. No noise (it
 * does not route in training, so there is nothing to explore) and no capacity (evaluation
 * routing is plain top-k anyway). */
static moe_gate_shape student_gate(const pmoe_shape *s)
{
    moe_gate_shape g = {s->batch, s->c_in, P_of(s), s->n_experts, s->k, MOE_GATE_SOFTMAX, 0, 0, 0.0f};
    return g;
}

static moe_gate_shape outer_gate(const pmoe_shape *s)
{
    moe_gate_shape g = {s->batch, s->c_in, P_of(s), s->groups, s->k_outer, s->outer_kind,
                        s->noisy, s->laplace_bias, 0.0f};
    return g;
}

static moe_gate_shape inner_gate(const pmoe_shape *s)
{
    moe_gate_shape g = {s->batch, s->c_in, P_of(s), s->experts_per_group, s->k_inner,
                        s->inner_kind, s->noisy, s->laplace_bias, 0.0f};
    return g;
}

static conv2d_shape conv1(const pmoe_shape *s)
{
    conv2d_shape c = {s->batch, s->c_in, s->h, s->w, s->n_experts * s->hidden, s->kernel, 1,
                      s->pad, 1};
    return c;
}

int pmoe_check(const pmoe_shape *s)
{
    if (s->batch < 1 || s->c_in < 1 || s->h < 1 || s->w < 1 || s->c_out < 1 || s->hidden < 1)
        return sm_fail(SM_ERR_USAGE, "point moe: batch %d, c_in %d, %dx%d, c_out %d, hidden %d must be >= 1",
                       s->batch, s->c_in, s->h, s->w, s->c_out, s->hidden);
    if (s->attn_hidden < 0)
        return sm_fail(SM_ERR_USAGE, "model.moe.attention.hidden: %d must be >= 1", s->attn_hidden);
    if (s->gate < PMOE_SOFTMAX_TOPK || s->gate > PMOE_ATTENTION)
        return sm_fail(SM_ERR_USAGE, "model.moe.gate: unknown point gate %d", (int)s->gate);
    if (s->distill && s->gate != PMOE_ATTENTION)
        return sm_fail(SM_ERR_USAGE, "model.moe.attention.distill: needs model.moe.gate attention");
    conv2d_shape c = conv1(s);
    if (!conv2d_shape_valid(&c))
        return sm_fail(SM_ERR_USAGE, "point moe: expert kernel %d unsupported for a %dx%d grid",
                       s->kernel, s->h, s->w);
    if (s->gate == PMOE_HMOE) {
        if (s->groups < 1 || s->groups > PMOE_MAX_GROUPS || s->experts_per_group < 1 ||
            s->n_experts != s->groups * s->experts_per_group)
            return sm_fail(SM_ERR_USAGE, "model.moe.hmoe: groups %d x experts_per_group %d must equal experts %d (groups <= %d)",
                           s->groups, s->experts_per_group, s->n_experts, PMOE_MAX_GROUPS);
        moe_gate_shape o = outer_gate(s), i = inner_gate(s);
        if (s->k_outer < 1 || s->k_outer > s->groups || s->k_inner < 1 || s->k_inner > s->experts_per_group)
            return sm_fail(SM_ERR_USAGE, "model.moe.hmoe: k_outer %d / k_inner %d out of range",
                           s->k_outer, s->k_inner);
        int rc = moe_gate_check(&o);
        if (rc) return rc;
        return moe_gate_check(&i);
    }
    if (s->n_experts < 1 || s->k < 1 || s->k > s->n_experts)
        return sm_fail(SM_ERR_USAGE, "model.moe: k = %d with experts = %d; need 1 <= k <= experts",
                       s->k, s->n_experts);
    if (s->gate != PMOE_ATTENTION) {
        moe_gate_shape g = single_gate(s);
        return moe_gate_check(&g);
    }
    if (s->distill) {
        moe_gate_shape g = student_gate(s);
        return moe_gate_check(&g);
    }
    return SM_OK;
}

int pmoe_param_count(const pmoe_shape *s)
{
    if (s->gate == PMOE_HMOE) {
        moe_gate_shape o = outer_gate(s), i = inner_gate(s);
        return 4 + moe_gate_params(&o, NULL) + s->groups * moe_gate_params(&i, NULL);
    }
    if (s->gate == PMOE_ATTENTION) {
        moe_gate_shape st = student_gate(s);
        return 8 + (s->distill ? moe_gate_params(&st, NULL) : 0);
    }
    moe_gate_shape g = single_gate(s);
    return 4 + moe_gate_params(&g, NULL);
}

/* Appends gate g's tensors with a name prefix. */
static size_t add_gate(const moe_gate_shape *g, const char *prefix, moe_param_info *info, int *n,
                       size_t off)
{
    moe_param_info sub[3];
    int m = moe_gate_params(g, sub);
    for (int j = 0; j < m; j++) {
        if (info) {
            info[*n] = sub[j];
            if (snprintf(info[*n].name, sizeof info[*n].name, "%s%s", prefix, sub[j].name) < 0)
                info[*n].name[0] = '\0';
            info[*n].offset = off + sub[j].offset;
        }
        (*n)++;
    }
    return off + moe_gate_param_floats(g);
}

int pmoe_params(const pmoe_shape *s, moe_param_info *info)
{
    const int N = s->n_experts, H = s->hidden, K = s->kernel;
    int n = 0;
    size_t off = 0;
#define ADD(name, nd, a, b, c, d) \
    do { off = moe_param_set(info ? &info[n] : NULL, name, off, nd, a, b, c, d); n++; } while (0)
    ADD("expert_w1", 4, N * H, s->c_in, K, K);
    ADD("expert_b1", 1, N * H, 0, 0, 0);
    ADD("expert_w2", 3, N, s->c_out, H, 0);
    ADD("expert_b2", 2, N, s->c_out, 0, 0);
    if (s->gate == PMOE_ATTENTION) {
        const int A = A_of(s);
        ADD("attn_trunk_w", 2, A, s->c_in, 0, 0);
        ADD("attn_trunk_b", 1, A, 0, 0, 0);
        ADD("attn_wq", 2, A, A, 0, 0);
        ADD("attn_wk", 2, A, H, 0, 0);
        if (s->distill) {
            moe_gate_shape st = student_gate(s);
            off = add_gate(&st, "student_", info, &n, off);
        }
    } else if (s->gate == PMOE_HMOE) {
        moe_gate_shape o = outer_gate(s), i = inner_gate(s);
        off = add_gate(&o, "outer_", info, &n, off);
        for (int g = 0; g < s->groups; g++) {
            char pre[24];
            if (snprintf(pre, sizeof pre, "inner%d_", g) < 0) pre[0] = '\0';
            off = add_gate(&i, pre, info, &n, off);
        }
    } else {
        moe_gate_shape g = single_gate(s);
        off = add_gate(&g, "gate_", info, &n, off);
    }
#undef ADD
    return n;
}

size_t pmoe_param_floats(const pmoe_shape *s)
{
    int n = pmoe_param_count(s);
    moe_param_info info[4 + 3 + 3 * PMOE_MAX_GROUPS];
    pmoe_params(s, info);
    return info[n - 1].offset + info[n - 1].count;
}

static void ufill(float *p, size_t n, double a, rng_t *rng)
{
    for (size_t i = 0; i < n; i++) p[i] = (float)((2.0 * rng_uniform(rng) - 1.0) * a);
}

void pmoe_init(const pmoe_shape *s, float *params, rng_t *rng)
{
    moe_param_info info[4 + 3 + 3 * PMOE_MAX_GROUPS];
    int n = pmoe_params(s, info);
    memset(params, 0, pmoe_param_floats(s) * sizeof(float));
    ufill(params + info[0].offset, info[0].count, sqrt(6.0 / ((double)s->c_in * s->kernel * s->kernel)), rng);
    ufill(params + info[2].offset, info[2].count, sqrt(3.0 / s->hidden), rng);
    if (s->gate == PMOE_ATTENTION) {
        ufill(params + info[4].offset, info[4].count, sqrt(6.0 / s->c_in), rng);
        ufill(params + info[6].offset, info[6].count, sqrt(3.0 / A_of(s)), rng);
        ufill(params + info[7].offset, info[7].count, sqrt(3.0 / s->hidden), rng);
        if (s->distill) {
            moe_gate_shape st = student_gate(s);
            moe_gate_init(&st, params + info[8].offset, rng);
        }
    } else if (s->gate == PMOE_HMOE) {
        moe_gate_shape o = outer_gate(s), i = inner_gate(s);
        size_t off = info[4].offset;
        moe_gate_init(&o, params + off, rng);
        off += moe_gate_param_floats(&o);
        for (int g = 0; g < s->groups; g++, off += moe_gate_param_floats(&i))
            moe_gate_init(&i, params + off, rng);
    } else {
        moe_gate_shape g = single_gate(s);
        moe_gate_init(&g, params + info[4].offset, rng);
    }
    (void)n;
}

/* ---- state and workspace layout ---- */

typedef struct {
    size_t h, e, g, rp, gate, student, pairs, stats, total; /* state offsets */
    size_t w_conv, w_dh, w_de, w_dg, w_dcl, w_dsd, w_dpf, w_dg1, w_dg2, w_gate, w_dq, w_dk,
        w_dhg, w_sgate, w_dst, w_sparse, wtotal;                  /* workspace offsets */
    size_t sparse_per_thread;                                /* sparse evaluation, per thread */
    int sparse_threads;
    size_t gate_state, inner_state;                          /* per-gate state sizes */
} pmoe_layout;

static pmoe_layout lay(const pmoe_shape *s)
{
    pmoe_layout L;
    const size_t B = (size_t)s->batch, N = (size_t)s->n_experts, P = (size_t)P_of(s),
                 H = (size_t)s->hidden, Co = (size_t)s->c_out, A = (size_t)A_of(s);
    size_t gate_state = 0, gate_ws = 0;
    L.inner_state = 0;
    if (s->gate == PMOE_ATTENTION) {
        gate_state = 2 * B * A * P + B * N * A * P + 2 * B * N * P; /* hg, Q, K, a, kept */
    } else if (s->gate == PMOE_HMOE) {
        moe_gate_shape o = outer_gate(s), i = inner_gate(s);
        L.inner_state = moe_gate_state_floats(&i);
        gate_state = moe_gate_state_floats(&o) + (size_t)s->groups * L.inner_state;
        gate_ws = moe_gate_workspace_floats(&o);
        if (moe_gate_workspace_floats(&i) > gate_ws) gate_ws = moe_gate_workspace_floats(&i);
    } else {
        moe_gate_shape g = single_gate(s);
        gate_state = moe_gate_state_floats(&g);
        gate_ws = moe_gate_workspace_floats(&g);
    }
    L.gate_state = gate_state;
    moe_gate_shape st = student_gate(s);
    const int D = s->distill;
    const size_t CKK = (size_t)s->c_in * s->kernel * s->kernel;
    size_t o = 0;
    L.h = o; o += B * N * H * P;
    L.e = o; o += B * N * Co * P;
    L.g = o; o += B * N * P;
    L.rp = o; o += B * N * P;
    L.gate = o; o += gate_state;
    L.student = o; o += D ? moe_gate_state_floats(&st) : 0;
    L.pairs = o; o += 2 * (size_t)(s->sim_pairs > 0 ? s->sim_pairs : 0);
    L.stats = o; o += PMOE_NSTAT;
    L.total = o;
    conv2d_shape c = conv1(s);
    o = 0;
    L.w_conv = o; o += conv2d_workspace_floats(&c);
    L.w_dh = o; o += B * N * H * P;
    L.w_de = o; o += Co * P;
    L.w_dg = o; o += B * N * P;
    L.w_dcl = o; o += B * N * P;
    L.w_dsd = o; o += B * N * P;
    L.w_dpf = o; o += B * N * P;
    L.w_dg1 = o; o += B * N * P;
    L.w_dg2 = o; o += B * N * P;
    L.w_gate = o; o += gate_ws;
    L.w_dq = o; o += B * A * P;
    L.w_dk = o; o += A * P;
    L.w_dhg = o; o += B * A * P;
    /* distillation: the student's gate workspace and logit gradient; per thread of the sparse
     * evaluation (sparse_block) the im2col of one sample, its gathered columns for one
     * expert, that expert's hidden features and outputs, and the gathered pixel indices */
    L.w_sgate = o; o += D ? moe_gate_workspace_floats(&st) : 0;
    L.w_dst = o; o += D ? B * N * P : 0;
    L.sparse_threads = nn_get_threads() < (int)B ? nn_get_threads() : (int)B;
    if (L.sparse_threads < 1) L.sparse_threads = 1;
    L.sparse_per_thread = D ? 2 * CKK * P + H * P + Co * P + P : 0;
    L.w_sparse = o; o += (size_t)L.sparse_threads * L.sparse_per_thread;
    L.wtotal = o;
    return L;
}

size_t pmoe_state_floats(const pmoe_shape *s) { return lay(s).total; }
size_t pmoe_workspace_floats(const pmoe_shape *s) { return lay(s).wtotal; }

const float *pmoe_gate_weights(const pmoe_shape *s, const float *state) { return state + lay(s).g; }
const float *pmoe_routing_probs(const pmoe_shape *s, const float *state) { return state + lay(s).rp; }
const float *pmoe_expert_outputs(const pmoe_shape *s, const float *state) { return state + lay(s).e; }
float *pmoe_stats(const pmoe_shape *s, float *state) { return state + lay(s).stats; }
const float *pmoe_expert_hidden(const pmoe_shape *s, const float *state) { return state + lay(s).h; }

static void gate_param_offsets(const pmoe_shape *s, size_t *gate_off)
{
    moe_param_info info[4 + 3 + 3 * PMOE_MAX_GROUPS];
    pmoe_params(s, info);
    *gate_off = info[4].offset;
}

/* Top-k of a (ties to the lower index), softmax over the kept entries -> g, kept. */
static void topk_softmax(int N, int k, size_t P, const float *a, float *g, float *kept)
{
    for (size_t p = 0; p < P; p++) {
        for (int n = 0; n < N; n++) kept[(size_t)n * P + p] = 0;
        for (int j = 0; j < k; j++) {
            int best = -1;
            for (int n = 0; n < N; n++) {
                if (kept[(size_t)n * P + p] != 0) continue;
                if (best < 0 || a[(size_t)n * P + p] > a[(size_t)best * P + p]) best = n;
            }
            kept[(size_t)best * P + p] = 1;
        }
        float m = -INFINITY;
        for (int n = 0; n < N; n++)
            if (kept[(size_t)n * P + p] != 0) m = fmaxf(m, a[(size_t)n * P + p]);
        double sum = 0;
        for (int n = 0; n < N; n++)
            if (kept[(size_t)n * P + p] != 0) sum += exp((double)a[(size_t)n * P + p] - m);
        for (int n = 0; n < N; n++) {
            size_t i = (size_t)n * P + p;
            g[i] = kept[i] != 0 ? (float)(exp((double)a[i] - m) / sum) : 0.0f;
        }
    }
}

static void softmax_all(int N, size_t P, const float *a, float *out)
{
    for (size_t p = 0; p < P; p++) {
        float m = a[p];
        for (int n = 1; n < N; n++) m = fmaxf(m, a[(size_t)n * P + p]);
        double sum = 0;
        for (int n = 0; n < N; n++) sum += exp((double)a[(size_t)n * P + p] - m);
        for (int n = 0; n < N; n++)
            out[(size_t)n * P + p] = (float)(exp((double)a[(size_t)n * P + p] - m) / sum);
    }
}

/* ---- data-parallel gates ---- */

#define DIST_LEVEL_STRIDE 0x9E3779B97F4A7C15ull
#define DIST_PAIR_STREAM 0x51u

size_t pmoe_dist_scratch_doubles(const pmoe_shape *s)
{
    return moe_similarity_scratch_doubles(s->c_in, s->n_experts, s->sim_pairs) + 1;
}

/* The selection with a capacity over the global batch, whose tokens are split over the
 * processes in rank order: for each pass j, the ranks take their turn in order; rank q runs
 * the pass over its tokens with the counts left by the tokens before them, and the count
 * increments (plus dropped / re-routed) are summed over processes, so each rank sees the
 * counts of all earlier tokens: the result is that of one process on the global batch, for
 * k * size reductions of N + 2 doubles (none without a capacity or with one process). A rank
 * without tokens (batch 0) takes part too. */
static void select_global(const moe_gate_shape *gs, int cap, const float *logits, float *kept, pmoe_dist *d,
                          double *dropped, double *rerouted)
{
    const int B = gs->batch, N = gs->n;
    int count[MOE_GATE_MAX_EXPERTS] = {0};
    double buf[MOE_GATE_MAX_EXPERTS + 2];
    if (B > 0) memset(kept, 0, (size_t)B * N * gs->hw * sizeof(float));
    *dropped = *rerouted = 0;
    if (cap == 0 || d->size == 1) {
        /* no coupling between the ranks' tokens (or one rank): no reductions */
        for (int j = 0; j < gs->k && B > 0; j++) moe_gate_select_pass(gs, cap, logits, kept, count, dropped, rerouted);
        return;
    }
    for (int j = 0; j < gs->k; j++)
        for (int q = 0; q < d->size; q++) {
            memset(buf, 0, sizeof(double) * (size_t)(N + 2));
            if (q == d->rank && B > 0) {
                int work[MOE_GATE_MAX_EXPERTS];
                memcpy(work, count, sizeof(int) * (size_t)N);
                moe_gate_select_pass(gs, cap, logits, kept, work, &buf[N], &buf[N + 1]);
                for (int n = 0; n < N; n++) buf[n] = work[n] - count[n];
            }
            moe_reduce_sum(&d->red, buf, (size_t)(N + 2));
            for (int n = 0; n < N; n++) count[n] += (int)lround(buf[n]);
            *dropped += buf[N];
            *rerouted += buf[N + 1];
        }
}

/* One token gate level in data-parallel mode: moe_gate_forward without noise or capacity,
 * then per-sample noise and the selection over the global batch (capacity) or the local one. */
static void gate_forward_dist(const moe_gate_shape *gs, const float *x, const float *params,
                              float *st, int training, pmoe_dist *d, int level)
{
    moe_gate_shape plain = *gs;
    plain.capacity_factor = 0.0f;
    moe_gate_forward(&plain, x, params, st, training, NULL);
    if (!training) return;
    moe_gate_shape glob = *gs;
    glob.batch = d->global_batch;
    const int cap = moe_gate_capacity(&glob);
    if (!gs->noisy && cap == 0) return; /* plain top-k of the clean logits: nothing is random */
    const size_t NP = (size_t)gs->n * gs->hw;
    moe_gate_view v = moe_gate_state(gs, st);
    if (gs->noisy)
        for (int b = 0; b < gs->batch; b++) {
            rng_t r;
            rng_seed(&r, d->key + (uint64_t)level * DIST_LEVEL_STRIDE, (uint64_t)(d->first + b));
            for (size_t i = (size_t)b * NP; i < (size_t)(b + 1) * NP; i++)
                v.noisy[i] = v.clean[i] + (float)rng_normal(&r) * v.std[i];
        }
    /* the selection over the local tokens, in turn with the other ranks when a capacity
     * couples them */
    double dropped, rerouted;
    select_global(gs, cap, v.noisy, v.kept, d, &dropped, &rerouted);
    v.stats[0] = (float)dropped;
    v.stats[1] = (float)rerouted;
    moe_gate_kept_softmax(gs, v.noisy, v.kept, v.g);
}

static void gate_forward_any(const moe_gate_shape *gs, const float *x, const float *params,
                             float *st, int training, rng_t *rng, pmoe_dist *d, int level)
{
    if (d)
        gate_forward_dist(gs, x, params, st, training, d, level);
    else
        moe_gate_forward(gs, x, params, st, training, rng);
}

/* Fraction of the B*P tokens whose top-1 expert (ties to the lower index, as the top-k
 * selections) is the same under logits a and b, both (B, N, P). */
static double top1_agreement(int B, int N, size_t P, const float *a, const float *b)
{
    size_t same = 0;
    for (int i = 0; i < B; i++)
        for (size_t p = 0; p < P; p++) {
            size_t q = (size_t)i * N * P + p;
            int ba = 0, bb = 0;
            for (int n = 1; n < N; n++) {
                if (a[q + (size_t)n * P] > a[q + (size_t)ba * P]) ba = n;
                if (b[q + (size_t)n * P] > b[q + (size_t)bb * P]) bb = n;
            }
            same += ba == bb;
        }
    return B > 0 && P > 0 ? (double)same / ((double)B * P) : 0.0;
}

static size_t student_param_offset(const pmoe_shape *s)
{
    moe_param_info info[4 + 3 + 3 * PMOE_MAX_GROUPS];
    pmoe_params(s, info);
    return info[8].offset;
}

/* Runs the student gate on `in` (its state at L.student). */
static moe_gate_view student_forward(const pmoe_shape *s, const pmoe_layout *L, const float *in, const float *params,
                                     float *state)
{
    moe_gate_shape ss = student_gate(s);
    float *sst = state + L->student;
    moe_gate_forward(&ss, in, params + student_param_offset(s), sst, 0, NULL);
    return moe_gate_state(&ss, sst);
}

/* The student's top-k weights and softmax become the layer's routing (G and the routing
 * probabilities), as in evaluation. */
static void route_with_student(const pmoe_shape *s, const pmoe_layout *L, const moe_gate_view *sv, float *state)
{
    const size_t BNP = (size_t)s->batch * s->n_experts * P_of(s);
    memcpy(state + L->g, sv->g, BNP * sizeof(float));
    memcpy(state + L->rp, sv->pfull, BNP * sizeof(float));
}

typedef struct {
    const pmoe_shape *s;
    float *out;
    const float *in, *params, *G, *kept;
    float *workspace;
    pmoe_layout L;
} sparse_ctx;

/* Samples [lo, hi) of the sparse evaluation, with thread t's buffers. */
static void sparse_block(int t, int lo, int hi, void *arg)
{
    const sparse_ctx *x = arg;
    const pmoe_shape *s = x->s;
    const int N = s->n_experts, H = s->hidden, Co = s->c_out, C = s->c_in, K = s->kernel;
    const size_t P = (size_t)P_of(s), CKK = (size_t)C * K * K;
    moe_param_info info[4 + 3 + 3 * PMOE_MAX_GROUPS];
    pmoe_params(s, info);
    const float *w1 = x->params + info[0].offset, *b1 = x->params + info[1].offset;
    const float *w2 = x->params + info[2].offset, *b2 = x->params + info[3].offset;
    const float *in = x->in, *G = x->G;
    float *out = x->out;
    float *cols = x->workspace + x->L.w_sparse + (size_t)t * x->L.sparse_per_thread, *gcol = cols + CKK * P;
    float *sh = gcol + CKK * P, *so = sh + (size_t)H * P;
    int32_t *idx = (int32_t *)(so + (size_t)Co * P);
    for (int b = lo; b < hi; b++) {
        nn_im2col(in + (size_t)b * C * P, C, s->h, s->w, K, 1, K / 2, s->pad, s->h, s->w, cols, P);
        for (int e = 0; e < N; e++) {
            const float *kept = x->kept + ((size_t)b * N + e) * P, *Ge = G + ((size_t)b * N + e) * P;
            int n = 0;
            for (size_t p = 0; p < P; p++)
                if (kept[p] != 0.0f) idx[n++] = (int32_t)p;
            if (n == 0) continue;
            for (size_t r = 0; r < CKK; r++)
                for (int j = 0; j < n; j++) gcol[r * n + j] = cols[r * P + (size_t)idx[j]];
            for (int c = 0; c < H; c++)
                for (int j = 0; j < n; j++) sh[(size_t)c * n + j] = b1[(size_t)e * H + c];
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, H, n, (int)CKK, 1.0f,
                        w1 + (size_t)e * H * CKK, (int)CKK, gcol, n, 1.0f, sh, n);
            for (size_t i = 0; i < (size_t)H * n; i++) sh[i] = sh[i] > 0 ? sh[i] : 0;
            for (int co = 0; co < Co; co++)
                for (int j = 0; j < n; j++) so[(size_t)co * n + j] = b2[(size_t)e * Co + co];
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Co, n, H, 1.0f,
                        w2 + (size_t)e * Co * H, H, sh, n, 1.0f, so, n);
            for (int co = 0; co < Co; co++) {
                float *yb = out + ((size_t)b * Co + co) * P;
                for (int j = 0; j < n; j++) yb[idx[j]] += Ge[idx[j]] * so[(size_t)co * n + j];
            }
        }
    }
}

/* Evaluation of a distilled layer: the student routes (top-k of its logits, softmax over the
 * kept) and only the selected experts are computed at each token, which is what distilling
 * buys: k of N expert blocks per token instead of all N for the attention teacher. Per sample
 * and expert: gather the im2col columns of the pixels that selected the expert, two GEMMs
 * (KxK conv as C*K*K -> hidden, ReLU, 1x1 hidden -> C_out), scatter G * E into the output.
 * Experts are added in index order, as the dense sum, so both agree to the GEMMs' rounding.
 * Samples run on the threads of nn_run_blocks, each with its own buffers. */
static void forward_student_sparse(const pmoe_shape *s, float *out, const float *in, const float *params,
                                   float *state, float *workspace)
{
    const int B = s->batch, Co = s->c_out;
    const size_t P = (size_t)P_of(s);
    pmoe_layout L = lay(s);
    float *stats = state + L.stats;
    moe_gate_view sv = student_forward(s, &L, in, params, state);
    route_with_student(s, &L, &sv, state);
    memset(out, 0, (size_t)B * Co * P * sizeof(float));
    sparse_ctx ctx = {s, out, in, params, state + L.g, sv.kept, workspace, L};
    nn_run_blocks(L.sparse_threads, B, 1, sparse_block, &ctx);
    for (int i = 0; i < PMOE_NSTAT; i++) stats[i] = 0;
    stats[PMOE_STAT_DISTILL] = stats[PMOE_STAT_AGREE] = NAN; /* no teacher ran */
}

static void forward_impl(const pmoe_shape *s, float *out, const float *in, const float *params,
                         float *state, float *workspace, int training, rng_t *rng, pmoe_dist *d)
{
    if (s->distill && !training && !s->distill_check) {
        forward_student_sparse(s, out, in, params, state, workspace);
        return;
    }
    const int B = s->batch, N = s->n_experts, H = s->hidden, Co = s->c_out, C = s->c_in;
    const size_t P = (size_t)P_of(s);
    pmoe_layout L = lay(s);
    moe_param_info info[4 + 3 + 3 * PMOE_MAX_GROUPS];
    pmoe_params(s, info);
    float *h = state + L.h, *E = state + L.e, *G = state + L.g, *rp = state + L.rp;
    float *gst = state + L.gate, *stats = state + L.stats;
    const float *w1 = params + info[0].offset, *b1 = params + info[1].offset;
    const float *w2 = params + info[2].offset, *b2 = params + info[3].offset;
    size_t goff;
    gate_param_offsets(s, &goff);
    /* experts, densely */
    conv2d_shape c = conv1(s);
    conv2d_forward(&c, h, in, w1, b1, workspace + L.w_conv);
    for (size_t i = 0; i < (size_t)B * N * H * P; i++) h[i] = h[i] > 0 ? h[i] : 0;
    for (int b = 0; b < B; b++)
        for (int e = 0; e < N; e++) {
            float *Ebe = E + ((size_t)b * N + e) * Co * P;
            for (int co = 0; co < Co; co++)
                for (size_t p = 0; p < P; p++) Ebe[(size_t)co * P + p] = b2[(size_t)e * Co + co];
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Co, (int)P, H, 1.0f,
                        w2 + (size_t)e * Co * H, H, h + ((size_t)b * N + e) * H * P, (int)P, 1.0f,
                        Ebe, (int)P);
        }
    /* gate */
    if (s->gate == PMOE_SOFTMAX_TOPK || s->gate == PMOE_LAPLACE) {
        moe_gate_shape gs = single_gate(s);
        gate_forward_any(&gs, in, params + goff, gst, training, rng, d, 0);
        moe_gate_view v = moe_gate_state(&gs, gst);
        memcpy(G, v.g, (size_t)B * N * P * sizeof(float));
        memcpy(rp, v.pfull, (size_t)B * N * P * sizeof(float));
    } else if (s->gate == PMOE_HMOE) {
        moe_gate_shape os = outer_gate(s), is = inner_gate(s);
        const int M = s->experts_per_group;
        gate_forward_any(&os, in, params + goff, gst, training, rng, d, 0);
        moe_gate_view ov = moe_gate_state(&os, gst);
        size_t poff = goff + moe_gate_param_floats(&os);
        float *ist = gst + moe_gate_state_floats(&os);
        for (int g = 0; g < s->groups; g++) {
            float *sg = ist + (size_t)g * L.inner_state;
            gate_forward_any(&is, in, params + poff + (size_t)g * moe_gate_param_floats(&is), sg,
                             training, rng, d, 1 + g);
            moe_gate_view iv = moe_gate_state(&is, sg);
            for (int b = 0; b < B; b++)
                for (int m = 0; m < M; m++)
                    for (size_t p = 0; p < P; p++)
                        G[((size_t)b * N + (size_t)g * M + m) * P + p] =
                            ov.g[((size_t)b * s->groups + g) * P + p] * iv.g[((size_t)b * M + m) * P + p];
        }
        memcpy(rp, G, (size_t)B * N * P * sizeof(float));
    } else {
        const int A = A_of(s);
        float *hg = gst, *Q = hg + (size_t)B * A * P, *K = Q + (size_t)B * A * P;
        float *a = K + (size_t)B * N * A * P, *kept = a + (size_t)B * N * P;
        const float *wt = params + goff, *bt = wt + (size_t)A * C, *wq = bt + A, *wk = wq + (size_t)A * A;
        const float inv = 1.0f / sqrtf((float)A);
        for (int b = 0; b < B; b++) {
            float *hgb = hg + (size_t)b * A * P, *Qb = Q + (size_t)b * A * P;
            for (int d = 0; d < A; d++)
                for (size_t p = 0; p < P; p++) hgb[(size_t)d * P + p] = bt[d];
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, A, (int)P, C, 1.0f, wt, C,
                        in + (size_t)b * C * P, (int)P, 1.0f, hgb, (int)P);
            for (size_t i = 0; i < (size_t)A * P; i++) hgb[i] = hgb[i] > 0 ? hgb[i] : 0;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, A, (int)P, A, 1.0f, wq, A, hgb,
                        (int)P, 0.0f, Qb, (int)P);
            for (int e = 0; e < N; e++) {
                float *Kbe = K + ((size_t)b * N + e) * A * P;
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, A, (int)P, H, 1.0f, wk, H,
                            h + ((size_t)b * N + e) * H * P, (int)P, 0.0f, Kbe, (int)P);
                float *ab = a + ((size_t)b * N + e) * P;
                for (size_t p = 0; p < P; p++) {
                    double acc = 0;
                    for (int d = 0; d < A; d++) acc += (double)Qb[(size_t)d * P + p] * Kbe[(size_t)d * P + p];
                    ab[p] = (float)(acc * inv);
                }
            }
            topk_softmax(N, s->k, P, a + (size_t)b * N * P, G + (size_t)b * N * P,
                         kept + (size_t)b * N * P);
            softmax_all(N, P, a + (size_t)b * N * P, rp + (size_t)b * N * P);
        }
    }
    double distill_loss = NAN, agree = NAN;
    if (s->distill) {
        /* the student sees what the teacher routed: its loss and top-1 agreement for the
         * stats; in evaluation (distill_check) it routes, as in the sparse evaluation */
        const int A = A_of(s);
        const float *a = gst + 2 * (size_t)B * A * P + (size_t)B * N * A * P;
        moe_gate_view sv = student_forward(s, &L, in, params, state);
        moe_layout lg = {B, N, P};
        distill_loss = moe_distill_loss(&lg, rp, sv.clean, NULL, 0.0f);
        agree = top1_agreement(B, N, P, a, sv.clean);
        if (!training) route_with_student(s, &L, &sv, state);
    }
    /* output */
    for (int b = 0; b < B; b++)
        for (int co = 0; co < Co; co++) {
            float *yb = out + ((size_t)b * Co + co) * P;
            for (size_t p = 0; p < P; p++) yb[p] = 0;
            for (int e = 0; e < N; e++) {
                const float *Ge = G + ((size_t)b * N + e) * P;
                const float *Ee = E + (((size_t)b * N + e) * Co + co) * P;
                for (size_t p = 0; p < P; p++) yb[p] += Ge[p] * Ee[p];
            }
        }
    for (int i = 0; i < PMOE_NSTAT; i++) stats[i] = 0;
    stats[PMOE_STAT_DISTILL] = (float)distill_loss;
    stats[PMOE_STAT_AGREE] = (float)agree;
    if (s->sim_pairs > 0 && training && d) {
        /* pairs over the global batch's tokens, the same on every process */
        rng_t r;
        rng_seed(&r, d->key, DIST_PAIR_STREAM);
        moe_similarity_sample_pairs((size_t)d->global_batch * P, s->sim_pairs, &r, (int32_t *)(state + L.pairs));
        stats[PMOE_NSTAT - 1] = (float)s->sim_pairs;
    } else if (s->sim_pairs > 0 && training && rng) {
        moe_similarity_sample_pairs((size_t)B * P, s->sim_pairs, rng, (int32_t *)(state + L.pairs));
        stats[PMOE_NSTAT - 1] = (float)s->sim_pairs;
    }
}

void pmoe_forward(const pmoe_shape *s, float *out, const float *in, const float *params,
                  float *state, float *workspace, int training, rng_t *rng)
{
    forward_impl(s, out, in, params, state, workspace, training, rng, NULL);
}

void pmoe_forward_dist(const pmoe_shape *s, float *out, const float *in, const float *params,
                       float *state, float *workspace, int training, pmoe_dist *d)
{
    forward_impl(s, out, in, params, state, workspace, training, NULL, d);
}

/* Aux losses of one token gate level (importance on g, load, switch/entropy on pfull):
 * adds gradients into d_g, and zeroed d_clean/d_std/d_pfull buffers. */
static void level_aux(const moe_gate_shape *gs, const moe_gate_view *v, const pmoe_aux_weights *aux,
                      int with_switch, float *d_g, float *dcl, float *dsd, float *dpf, float *stats,
                      double *total, moe_reduce *r)
{
    moe_layout l = {gs->batch, gs->n, (size_t)gs->hw};
    size_t n = (size_t)gs->batch * gs->n * gs->hw;
    memset(dcl, 0, n * sizeof(float));
    memset(dsd, 0, n * sizeof(float));
    memset(dpf, 0, n * sizeof(float));
    if (aux->importance != 0) {
        double li = moe_importance_cv2_r(&l, v->g, d_g, aux->importance, r);
        stats[PMOE_STAT_IMPORTANCE] += (float)li;
        *total += aux->importance * li;
    }
    if (aux->load != 0 && gs->n > gs->k) {
        double ll = moe_load_cv2_r(&l, gs->k, v->clean, v->noisy, gs->noisy ? v->std : NULL, 1.0f,
                                   dcl, dsd, aux->load, r);
        stats[PMOE_STAT_LOAD] += (float)ll;
        *total += aux->load * ll;
    }
    if (with_switch && aux->switch_loss != 0) {
        double ls = moe_switch_loss_r(&l, v->pfull, dpf, aux->switch_loss, r);
        stats[PMOE_STAT_SWITCH] += (float)ls;
        *total += aux->switch_loss * ls;
    }
    if (with_switch && aux->entropy != 0) {
        double le = moe_entropy_loss_r(&l, v->pfull, dpf, aux->entropy, r);
        stats[PMOE_STAT_ENTROPY] += (float)le;
        *total += aux->entropy * le;
    }
}

static void backward_impl(const pmoe_shape *s, float *d_in, float *d_params, const float *d_out,
                          const pmoe_aux_weights *aux, const float *in, const float *params,
                          float *state, float *workspace, pmoe_dist *d)
{
    static const pmoe_aux_weights none = {0, 0, 0, 0, 0, 0, 0};
    if (!aux) aux = &none;
    moe_reduce *r = d ? &d->red : NULL;
    const int B = s->batch, N = s->n_experts, H = s->hidden, Co = s->c_out, C = s->c_in;
    const size_t P = (size_t)P_of(s), BNP = (size_t)B * N * P;
    pmoe_layout L = lay(s);
    moe_param_info info[4 + 3 + 3 * PMOE_MAX_GROUPS];
    pmoe_params(s, info);
    float *h = state + L.h, *E = state + L.e, *G = state + L.g, *rp = state + L.rp;
    float *gst = state + L.gate, *stats = state + L.stats;
    const float *w1 = params + info[0].offset, *w2 = params + info[2].offset;
    float *dw1 = d_params + info[0].offset, *db1 = d_params + info[1].offset;
    float *dw2 = d_params + info[2].offset, *db2 = d_params + info[3].offset;
    float *dh = workspace + L.w_dh, *dE = workspace + L.w_de, *dG = workspace + L.w_dg;
    float *dcl = workspace + L.w_dcl, *dsd = workspace + L.w_dsd, *dpf = workspace + L.w_dpf;
    float *gws = workspace + L.w_gate;
    size_t goff;
    gate_param_offsets(s, &goff);
    memset(dh, 0, (size_t)B * N * H * P * sizeof(float));
    /* output -> experts and gate weights */
    for (int b = 0; b < B; b++)
        for (int e = 0; e < N; e++) {
            const float *Ge = G + ((size_t)b * N + e) * P;
            float *dGe = dG + ((size_t)b * N + e) * P;
            for (size_t p = 0; p < P; p++) dGe[p] = 0;
            for (int co = 0; co < Co; co++) {
                const float *dy = d_out + ((size_t)b * Co + co) * P;
                const float *Ee = E + (((size_t)b * N + e) * Co + co) * P;
                float *dEc = dE + (size_t)co * P;
                float sb = 0;
                for (size_t p = 0; p < P; p++) {
                    dGe[p] += dy[p] * Ee[p];
                    dEc[p] = Ge[p] * dy[p];
                    sb += dEc[p];
                }
                db2[(size_t)e * Co + co] += sb;
            }
            const float *hbe = h + ((size_t)b * N + e) * H * P;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Co, H, (int)P, 1.0f, dE, (int)P,
                        hbe, (int)P, 1.0f, dw2 + (size_t)e * Co * H, H);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, H, (int)P, Co, 1.0f,
                        w2 + (size_t)e * Co * H, H, dE, (int)P, 1.0f, dh + ((size_t)b * N + e) * H * P,
                        (int)P);
        }
    /* aux losses on G (the forward's distillation stats stay) */
    for (int i = 0; i <= PMOE_STAT_AUX_TOTAL; i++) stats[i] = 0;
    double total = 0;
    moe_layout lg = {B, N, P};
    if (s->gate != PMOE_HMOE && aux->importance != 0) {
        double li = moe_importance_cv2_r(&lg, G, dG, aux->importance, r);
        stats[PMOE_STAT_IMPORTANCE] += (float)li;
        total += aux->importance * li;
    }
    int npairs = (int)stats[PMOE_NSTAT - 1];
    if (npairs > 0 && (aux->sim_same != 0 || aux->sim_diff != 0)) {
        double so[2];
        double ls = d ? moe_similarity_loss_r(&lg, G, C, in, npairs, (const int32_t *)(state + L.pairs),
                                              d->first * (int64_t)P, aux->sim_same, aux->sim_diff, dG, so, r,
                                              d->scratch)
                      : moe_similarity_loss(&lg, G, C, in, npairs, (const int32_t *)(state + L.pairs),
                                            aux->sim_same, aux->sim_diff, dG, so);
        stats[PMOE_STAT_SIM_SAME] = (float)so[0];
        stats[PMOE_STAT_SIM_DIFF] = (float)so[1];
        total += ls;
    }
    /* gate */
    if (s->gate == PMOE_SOFTMAX_TOPK || s->gate == PMOE_LAPLACE) {
        moe_gate_shape gs = single_gate(s);
        moe_gate_view v = moe_gate_state(&gs, gst);
        pmoe_aux_weights a2 = *aux;
        a2.importance = 0;
        level_aux(&gs, &v, &a2, 1, dG, dcl, dsd, dpf, stats, &total, r);
        moe_gate_backward(&gs, d_in, d_params + goff, dG, dpf, dcl, dsd, in, params + goff, gst, gws);
    } else if (s->gate == PMOE_HMOE) {
        moe_gate_shape os = outer_gate(s), is = inner_gate(s);
        const int M = s->experts_per_group, Gr = s->groups;
        float *dG1 = workspace + L.w_dg1, *dG2 = workspace + L.w_dg2;
        moe_gate_view ov = moe_gate_state(&os, gst);
        float *ist = gst + moe_gate_state_floats(&os);
        size_t poff = goff + moe_gate_param_floats(&os);
        memset(dG1, 0, (size_t)B * Gr * P * sizeof(float));
        for (int g = 0; g < Gr; g++) {
            float *sg = ist + (size_t)g * L.inner_state;
            moe_gate_view iv = moe_gate_state(&is, sg);
            for (int b = 0; b < B; b++)
                for (int m = 0; m < M; m++)
                    for (size_t p = 0; p < P; p++) {
                        float d = dG[((size_t)b * N + (size_t)g * M + m) * P + p];
                        dG1[((size_t)b * Gr + g) * P + p] += d * iv.g[((size_t)b * M + m) * P + p];
                        dG2[((size_t)b * M + m) * P + p] = d * ov.g[((size_t)b * Gr + g) * P + p];
                    }
            level_aux(&is, &iv, aux, 0, dG2, dcl, dsd, dpf, stats, &total, r);
            size_t ip = poff + (size_t)g * moe_gate_param_floats(&is);
            moe_gate_backward(&is, d_in, d_params + ip, dG2, NULL, dcl, dsd, in, params + ip, sg, gws);
        }
        level_aux(&os, &ov, aux, 1, dG1, dcl, dsd, dpf, stats, &total, r);
        moe_gate_backward(&os, d_in, d_params + goff, dG1, dpf, dcl, dsd, in, params + goff, gst, gws);
    } else {
        const int A = A_of(s);
        float *hg = gst, *Q = hg + (size_t)B * A * P, *K = Q + (size_t)B * A * P;
        float *kept = K + (size_t)B * N * A * P + BNP;
        const float *wt = params + goff, *wq = wt + (size_t)A * C + A, *wk = wq + (size_t)A * A;
        float *dwt = d_params + goff, *dbt = dwt + (size_t)A * C, *dwq = dbt + A, *dwk = dwq + (size_t)A * A;
        float *da = dcl, *dQ = workspace + L.w_dq, *dK = workspace + L.w_dk, *dhg = workspace + L.w_dhg;
        memset(dpf, 0, BNP * sizeof(float));
        if (aux->switch_loss != 0) {
            double v = moe_switch_loss_r(&lg, rp, dpf, aux->switch_loss, r);
            stats[PMOE_STAT_SWITCH] += (float)v;
            total += aux->switch_loss * v;
        }
        if (aux->entropy != 0) {
            double v = moe_entropy_loss_r(&lg, rp, dpf, aux->entropy, r);
            stats[PMOE_STAT_ENTROPY] += (float)v;
            total += aux->entropy * v;
        }
        const float inv = 1.0f / sqrtf((float)A);
        memset(dQ, 0, (size_t)B * A * P * sizeof(float));
        for (int b = 0; b < B; b++)
            for (size_t p = 0; p < P; p++) {
                size_t q = (size_t)b * N * P + p;
                double dot = 0, dotf = 0;
                for (int n = 0; n < N; n++) {
                    dot += (double)G[q + (size_t)n * P] * dG[q + (size_t)n * P];
                    dotf += (double)rp[q + (size_t)n * P] * dpf[q + (size_t)n * P];
                }
                for (int n = 0; n < N; n++) {
                    size_t i = q + (size_t)n * P;
                    da[i] = (kept[i] != 0 ? (float)(G[i] * (dG[i] - dot)) : 0.0f) +
                            (float)(rp[i] * (dpf[i] - dotf));
                }
            }
        for (int b = 0; b < B; b++) {
            float *Qb = Q + (size_t)b * A * P, *dQb = dQ + (size_t)b * A * P;
            for (int e = 0; e < N; e++) {
                const float *Kbe = K + ((size_t)b * N + e) * A * P;
                const float *dab = da + ((size_t)b * N + e) * P;
                for (int d = 0; d < A; d++)
                    for (size_t p = 0; p < P; p++) {
                        float g = dab[p] * inv;
                        dQb[(size_t)d * P + p] += g * Kbe[(size_t)d * P + p];
                        dK[(size_t)d * P + p] = g * Qb[(size_t)d * P + p];
                    }
                const float *hbe = h + ((size_t)b * N + e) * H * P;
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, A, H, (int)P, 1.0f, dK, (int)P,
                            hbe, (int)P, 1.0f, dwk, H);
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, H, (int)P, A, 1.0f, wk, H, dK,
                            (int)P, 1.0f, dh + ((size_t)b * N + e) * H * P, (int)P);
            }
            const float *hgb = hg + (size_t)b * A * P;
            float *dhgb = dhg + (size_t)b * A * P;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, A, A, (int)P, 1.0f, dQb, (int)P,
                        hgb, (int)P, 1.0f, dwq, A);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, A, (int)P, A, 1.0f, wq, A, dQb,
                        (int)P, 0.0f, dhgb, (int)P);
            for (size_t i = 0; i < (size_t)A * P; i++) {
                if (!(hgb[i] > 0)) dhgb[i] = 0;
            }
            for (int d = 0; d < A; d++)
                for (size_t p = 0; p < P; p++) dbt[d] += dhgb[(size_t)d * P + p];
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, A, C, (int)P, 1.0f, dhgb, (int)P,
                        in + (size_t)b * C * P, (int)P, 1.0f, dwt, C);
            if (d_in)
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, C, (int)P, A, 1.0f, wt, C,
                            dhgb, (int)P, 1.0f, d_in + (size_t)b * C * P, (int)P);
        }
    }
    if (s->distill && aux->distill != 0) {
        /* The student imitates the teacher's routing distribution rp = softmax(a), a constant
         * here: this loss moves the student's parameters only, not the experts or the teacher
         * (the method's "freeze the experts"), and passes nothing to d_in, so the layers below
         * do not learn to make the teacher easy to imitate. In data-parallel mode it is the
         * local mean, like the main loss (each process's gradient is weighted by its share). */
        moe_gate_shape ss = student_gate(s);
        float *sst = state + L.student, *dsl = workspace + L.w_dst;
        moe_gate_view sv = moe_gate_state(&ss, sst);
        size_t soff = student_param_offset(s);
        memset(dsl, 0, BNP * sizeof(float));
        double v = moe_distill_loss(&lg, rp, sv.clean, dsl, aux->distill);
        total += aux->distill * v;
        moe_gate_backward(&ss, NULL, d_params + soff, NULL, NULL, dsl, NULL, in, params + soff, sst,
                          workspace + L.w_sgate);
    }
    stats[PMOE_STAT_AUX_TOTAL] = (float)total;
    /* experts' first layer */
    for (size_t i = 0; i < (size_t)B * N * H * P; i++)
        if (!(h[i] > 0)) dh[i] = 0;
    conv2d_shape c = conv1(s);
    conv2d_backward(&c, d_in, dw1, db1, dh, in, w1, workspace + L.w_conv);
}

void pmoe_backward(const pmoe_shape *s, float *d_in, float *d_params, const float *d_out,
                   const pmoe_aux_weights *aux, const float *in, const float *params,
                   float *state, float *workspace)
{
    backward_impl(s, d_in, d_params, d_out, aux, in, params, state, workspace, NULL);
}

void pmoe_backward_dist(const pmoe_shape *s, float *d_in, float *d_params, const float *d_out,
                        const pmoe_aux_weights *aux, const float *in, const float *params,
                        float *state, float *workspace, pmoe_dist *d)
{
    backward_impl(s, d_in, d_params, d_out, aux, in, params, state, workspace, d);
}

/* The reductions of level_aux with no local token. */
static void level_aux_idle(const moe_gate_shape *gs, const pmoe_aux_weights *aux, int with_switch,
                           moe_reduce *r)
{
    moe_layout l = {0, gs->n, (size_t)gs->hw};
    if (aux->importance != 0) moe_importance_cv2_r(&l, NULL, NULL, aux->importance, r);
    if (aux->load != 0 && gs->n > gs->k) moe_load_cv2_r(&l, gs->k, NULL, NULL, NULL, 1.0f, NULL, NULL, aux->load, r);
    if (with_switch && aux->switch_loss != 0) moe_switch_loss_r(&l, NULL, NULL, aux->switch_loss, r);
    if (with_switch && aux->entropy != 0) moe_entropy_loss_r(&l, NULL, NULL, aux->entropy, r);
}

void pmoe_dist_idle(const pmoe_shape *s, const pmoe_aux_weights *aux, int backward, pmoe_dist *d)
{
    static const pmoe_aux_weights none = {0, 0, 0, 0, 0, 0, 0};
    if (!aux) aux = &none;
    const size_t P = (size_t)P_of(s);
    moe_reduce *r = &d->red;
    if (!backward) {
        /* the capacity gather of the single gate (HMOE levels have no capacity) */
        if (s->gate != PMOE_SOFTMAX_TOPK && s->gate != PMOE_LAPLACE) return;
        moe_gate_shape glob = single_gate(s);
        glob.batch = d->global_batch;
        int cap = moe_gate_capacity(&glob);
        if (cap == 0) return;
        moe_gate_shape idle = single_gate(s);
        idle.batch = 0;
        double dropped, rerouted;
        select_global(&idle, cap, NULL, NULL, d, &dropped, &rerouted);
        return;
    }
    moe_layout lg = {0, s->n_experts, P};
    if (s->gate != PMOE_HMOE && aux->importance != 0) moe_importance_cv2_r(&lg, NULL, NULL, aux->importance, r);
    if (s->sim_pairs > 0 && (aux->sim_same != 0 || aux->sim_diff != 0)) {
        moe_similarity_loss_r(&lg, NULL, s->c_in, NULL, s->sim_pairs, NULL, 0, aux->sim_same, aux->sim_diff, NULL,
                              NULL, r, d->scratch);
    }
    if (s->gate == PMOE_SOFTMAX_TOPK || s->gate == PMOE_LAPLACE) {
        moe_gate_shape gs = single_gate(s);
        pmoe_aux_weights a2 = *aux;
        a2.importance = 0;
        level_aux_idle(&gs, &a2, 1, r);
    } else if (s->gate == PMOE_HMOE) {
        moe_gate_shape os = outer_gate(s), is = inner_gate(s);
        for (int g = 0; g < s->groups; g++) level_aux_idle(&is, aux, 0, r);
        level_aux_idle(&os, aux, 1, r);
    } else {
        if (aux->switch_loss != 0) moe_switch_loss_r(&lg, NULL, NULL, aux->switch_loss, r);
        if (aux->entropy != 0) moe_entropy_loss_r(&lg, NULL, NULL, aux->entropy, r);
    }
}
