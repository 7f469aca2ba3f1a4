/* Network graph, arena planning and the forward/backward passes (see model.h). */
#include "model/model.h"

#include <math.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "moe/point_moe.h"
#include "nn/conv_transpose.h"
#include "nn/dropout.h"
#include "nn/init.h"
#include "nn/norm.h"
#include "nn/pool.h"
#include "nn/tensor_ops.h"
#include "nn/threads.h"
#include "nn/upsample.h"

#define NAME_MAX_LEN 96
#define ALIGN_FLOATS 16
#define BN_MOMENTUM 0.1f
#define BN_EPS 1e-5f

typedef struct {
    layer_kind kind;
    char name[NAME_MAX_LEN];
    int in0, in1, out;          /* slots; in1 = -1 unless add/concat */
    int c_out, kernel, stride, bias;
    pad_mode pad;
    init_mode init;
    act_kind act;
    float alpha;                /* activation parameter / dropout probability */
    int flag;                   /* max pool; bilinear upsampling */
    int pid[4];                 /* param ids (weight, bias) / (gamma, beta, mean, var) /
                                   (expert, gate) */
    smoe_shape smoe;            /* template: batch set per pass */
    pmoe_shape pmoe;            /* point-gated layer template */
    pmoe_aux_weights paux;
    moe_param_info *minfo;      /* MoE parameter tensors in the packed block */
    int *mpid;                  /* their param_store ids */
    int n_minfo;
    size_t mfloats;             /* packed MoE parameter block */
    int contiguous;             /* the store's tensors already form the packed block */
    size_t state_off;           /* BatchNorm save / dropout mask / SMoE state (floats) */
    size_t pack_off, pgrad_off; /* packed SMoE parameters and gradients */
    smoe_aux_weights aux;       /* SMoE auxiliary-loss weights */
    int has_aux;
    size_t dgate_off;           /* (B, N, H, W) gradient of the aux losses w.r.t. R */
    double aux_value;           /* weighted aux losses of the last backward */
} layer;

typedef struct {
    int c, h, w;
    int producer;               /* layer index, -1 for the input */
    int last_consumer;          /* highest consuming layer index, -1 if none */
    size_t act_off, grad_off;
    int has_grad;
} slot;

struct sm_model {
    layer *layers;
    int n_layers, cap_layers;
    slot *slots;
    int n_slots, cap_slots;
    int output;                 /* output slot, -1 = last layer's */
    param_store *store;
    int error;                  /* first construction error (sm_status) */
    int finalized;
    /* plan */
    int max_batch, batch, with_grads;
    int plan_threads;           /* nn thread count the workspace was sized for */
    float *arena;
    size_t arena_floats;
    float *ws;
    size_t ws_floats;
    int last_training;
    int forwarded;
    int64_t sample_first;       /* >= 0: per-sample dropout streams (model_set_sample_offset) */
    norm_reduce_fn bn_reduce;   /* synchronised BatchNorm (model_set_batchnorm_sync) */
    void *bn_arg;
    double *bn_scratch;
    /* data-parallel MoE layers (model_set_dist / model_set_shard) */
    int dist_on, dist_max_global, global_batch, last_dist, dist_rank, dist_size;
    norm_reduce_fn dist_reduce;
    void *dist_arg;
    double *dist_scratch;
    model_grad_ready_fn grad_ready;   /* model_set_grad_ready */
    void *grad_ready_arg;
    size_t *grad_lo;
    int profile;                /* accumulate per-layer times */
    int distill_check;          /* model_set_distill_check */
    double *t_fwd, *t_bwd;      /* n_layers each (allocated by model_set_profile) */
    long n_fwd, n_bwd;
};

static size_t align_up(size_t n) { return (n + ALIGN_FLOATS - 1) / ALIGN_FLOATS * ALIGN_FLOATS; }

sm_model *model_create(int c_in, int h, int w)
{
    sm_model *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    m->store = param_store_create();
    m->cap_slots = 16;
    m->sample_first = -1;
    m->slots = calloc((size_t)m->cap_slots, sizeof *m->slots);
    if (!m->store || !m->slots) {
        model_free(m);
        return NULL;
    }
    m->output = -1;
    if (c_in < 1 || h < 1 || w < 1)
        m->error = sm_fail(SM_ERR_USAGE, "model: input shape %d x %d x %d must be positive", c_in, h, w);
    m->slots[0] = (slot){c_in, h, w, -1, -1, 0, 0, 0};
    m->n_slots = 1;
    return m;
}

void model_free(sm_model *m)
{
    if (!m) return;
    param_store_free(m->store);
    for (int i = 0; i < m->n_layers; i++) {
        free(m->layers[i].minfo);
        free(m->layers[i].mpid);
    }
    free(m->layers);
    free(m->slots);
    free(m->arena);
    free(m->ws);
    free(m->bn_scratch);
    free(m->dist_scratch);
    free(m->grad_lo);
    free(m->t_fwd);
    free(m->t_bwd);
    free(m);
}

/* ---------------------------------------------------------------- construction ---- */

static int check_slot(sm_model *m, int s, const char *what)
{
    if (m->error) return 0;
    if (m->finalized) {
        m->error = sm_fail(SM_ERR_USAGE, "model: %s added after model_finalize", what);
        return 0;
    }
    if (s < 0 || s >= m->n_slots) {
        m->error = sm_fail(SM_ERR_USAGE, "model: %s reads slot %d, which does not exist", what, s);
        return 0;
    }
    return 1;
}

static layer *new_layer(sm_model *m, layer_kind kind, const char *name, int in0, int in1)
{
    if (m->n_layers == m->cap_layers) {
        int cap = m->cap_layers ? 2 * m->cap_layers : 16;
        layer *nl = realloc(m->layers, (size_t)cap * sizeof *nl);
        if (!nl) {
            m->error = sm_fail(SM_ERR_NUMERIC, "model: out of memory adding a layer");
            return NULL;
        }
        m->layers = nl;
        m->cap_layers = cap;
    }
    if (m->n_slots == m->cap_slots) {
        int cap = 2 * m->cap_slots;
        slot *ns = realloc(m->slots, (size_t)cap * sizeof *ns);
        if (!ns) {
            m->error = sm_fail(SM_ERR_NUMERIC, "model: out of memory adding a layer");
            return NULL;
        }
        m->slots = ns;
        m->cap_slots = cap;
    }
    layer *l = &m->layers[m->n_layers];
    memset(l, 0, sizeof *l);
    l->kind = kind;
    if (name && *name)
        snprintf(l->name, sizeof l->name, "%s", name);
    else
        snprintf(l->name, sizeof l->name, "%s%d", layer_kind_name(kind), m->n_layers);
    l->in0 = in0;
    l->in1 = in1;
    for (int i = 0; i < 4; i++) l->pid[i] = -1;
    return l;
}

/* Commit the layer just prepared by new_layer with output shape (c, h, w). */
static int push_layer(sm_model *m, int c, int h, int w)
{
    layer *l = &m->layers[m->n_layers];
    int s = m->n_slots++;
    m->slots[s] = (slot){c, h, w, m->n_layers, -1, 0, 0, 1};
    l->out = s;
    m->n_layers++;
    return s;
}

static int declare(sm_model *m, layer *l, const char *suffix, int ndim, int d0, int d1, int d2,
                   int d3, unsigned flags)
{
    if (m->error) return -1;
    char name[PARAM_NAME_MAX];
    int shape[4] = {d0, d1, d2, d3};
    snprintf(name, sizeof name, "%s.%s", l->name, suffix);
    int id = param_store_declare(m->store, name, ndim, shape, flags);
    if (id < 0) m->error = SM_ERR_USAGE;
    return id;
}

int model_add_conv(sm_model *m, const char *name, int in, int c_out, int kernel, int stride,
                   pad_mode pad, int bias, init_mode init)
{
    if (!check_slot(m, in, "conv")) return -1;
    const slot xs = m->slots[in], *x = &xs; /* copy: new_layer may move slots */
    conv2d_shape cs = {1, x->c, x->h, x->w, c_out, kernel, stride, pad, bias};
    if (!conv2d_shape_valid(&cs)) {
        m->error = sm_fail(SM_ERR_USAGE,
                           "model: conv %s: unsupported shape (c_in %d, %dx%d, c_out %d, kernel %d, "
                           "stride %d); kernels must be odd, stride 1 or 2",
                           name ? name : "", x->c, x->h, x->w, c_out, kernel, stride);
        return -1;
    }
    layer *l = new_layer(m, LAYER_CONV, name, in, -1);
    if (!l) return -1;
    l->c_out = c_out;
    l->kernel = kernel;
    l->stride = stride;
    l->pad = pad;
    l->bias = bias;
    l->init = init;
    l->pid[0] = declare(m, l, "weight", 4, c_out, x->c, kernel, kernel, PARAM_DEFAULT);
    if (bias) l->pid[1] = declare(m, l, "bias", 1, c_out, 1, 1, 1, PARAM_NO_DECAY);
    if (m->error) return -1;
    return push_layer(m, c_out, conv2d_out_h(&cs), conv2d_out_w(&cs));
}

int model_add_conv_transpose(sm_model *m, const char *name, int in, int c_out, int kernel,
                             int stride, int bias, init_mode init)
{
    if (!check_slot(m, in, "conv_transpose")) return -1;
    const slot xs = m->slots[in], *x = &xs; /* copy: new_layer may move slots */
    conv_transpose_shape cs = {1, x->c, x->h, x->w, c_out, kernel, stride, 0, 0, bias};
    if (!conv_transpose_shape_valid(&cs)) {
        m->error = sm_fail(SM_ERR_USAGE, "model: conv_transpose %s: unsupported shape",
                           name ? name : "");
        return -1;
    }
    layer *l = new_layer(m, LAYER_CONV_T, name, in, -1);
    if (!l) return -1;
    l->c_out = c_out;
    l->kernel = kernel;
    l->stride = stride;
    l->bias = bias;
    l->init = init;
    l->pid[0] = declare(m, l, "weight", 4, x->c, c_out, kernel, kernel, PARAM_DEFAULT);
    if (bias) l->pid[1] = declare(m, l, "bias", 1, c_out, 1, 1, 1, PARAM_NO_DECAY);
    if (m->error) return -1;
    return push_layer(m, c_out, conv_transpose_out_h(&cs), conv_transpose_out_w(&cs));
}

int model_add_batchnorm(sm_model *m, const char *name, int in)
{
    if (!check_slot(m, in, "batchnorm")) return -1;
    slot x = m->slots[in];
    layer *l = new_layer(m, LAYER_BATCHNORM, name, in, -1);
    if (!l) return -1;
    l->pid[0] = declare(m, l, "weight", 1, x.c, 1, 1, 1, PARAM_NO_DECAY);
    l->pid[1] = declare(m, l, "bias", 1, x.c, 1, 1, 1, PARAM_NO_DECAY);
    l->pid[2] = declare(m, l, "running_mean", 1, x.c, 1, 1, 1, PARAM_BUFFER);
    l->pid[3] = declare(m, l, "running_var", 1, x.c, 1, 1, 1, PARAM_BUFFER);
    if (m->error) return -1;
    return push_layer(m, x.c, x.h, x.w);
}

int model_add_act(sm_model *m, int in, act_kind kind, float alpha)
{
    if (!check_slot(m, in, "activation")) return -1;
    slot x = m->slots[in];
    layer *l = new_layer(m, LAYER_ACT, NULL, in, -1);
    if (!l) return -1;
    snprintf(l->name, sizeof l->name, "%s%d", activation_name(kind), m->n_layers);
    l->act = kind;
    l->alpha = alpha;
    return push_layer(m, x.c, x.h, x.w);
}

int model_add_dropout(sm_model *m, int in, float p)
{
    if (!check_slot(m, in, "dropout")) return -1;
    if (!(p >= 0.0f && p < 1.0f)) {
        m->error = sm_fail(SM_ERR_USAGE, "model.dropout: %g not in [0, 1)", (double)p);
        return -1;
    }
    slot x = m->slots[in];
    layer *l = new_layer(m, LAYER_DROPOUT, NULL, in, -1);
    if (!l) return -1;
    l->alpha = p;
    return push_layer(m, x.c, x.h, x.w);
}

int model_add_pool(sm_model *m, int in, int max_pool)
{
    if (!check_slot(m, in, "pool")) return -1;
    slot x = m->slots[in];
    if (x.h < 2 || x.w < 2) {
        m->error = sm_fail(SM_ERR_USAGE, "model: cannot pool a %dx%d field (too many levels for the grid)",
                           x.h, x.w);
        return -1;
    }
    layer *l = new_layer(m, max_pool ? LAYER_MAXPOOL : LAYER_AVGPOOL, NULL, in, -1);
    if (!l) return -1;
    l->flag = max_pool;
    return push_layer(m, x.c, x.h / 2, x.w / 2);
}

int model_add_upsample(sm_model *m, int in, int bilinear)
{
    if (!check_slot(m, in, "upsample")) return -1;
    slot x = m->slots[in];
    layer *l = new_layer(m, LAYER_UPSAMPLE, NULL, in, -1);
    if (!l) return -1;
    l->flag = bilinear;
    return push_layer(m, x.c, 2 * x.h, 2 * x.w);
}

int model_add_add(sm_model *m, int a, int b)
{
    if (!check_slot(m, a, "add") || !check_slot(m, b, "add")) return -1;
    slot x = m->slots[a], y = m->slots[b];
    if (x.c != y.c || x.h != y.h || x.w != y.w) {
        m->error = sm_fail(SM_ERR_USAGE, "model: residual add of %dx%dx%d and %dx%dx%d", x.c, x.h,
                           x.w, y.c, y.h, y.w);
        return -1;
    }
    if (!new_layer(m, LAYER_ADD, NULL, a, b)) return -1;
    return push_layer(m, x.c, x.h, x.w);
}

int model_add_concat(sm_model *m, int a, int b)
{
    if (!check_slot(m, a, "concat") || !check_slot(m, b, "concat")) return -1;
    slot x = m->slots[a], y = m->slots[b];
    if (x.h != y.h || x.w != y.w) {
        m->error = sm_fail(SM_ERR_USAGE, "model: concat of %dx%d and %dx%d fields (grid size must "
                           "be divisible by 2^(levels-1))", x.h, x.w, y.h, y.w);
        return -1;
    }
    if (!new_layer(m, LAYER_CONCAT, NULL, a, b)) return -1;
    return push_layer(m, x.c + y.c, x.h, x.w);
}

int model_add_bias(sm_model *m, const char *name, int in)
{
    if (!check_slot(m, in, "bias")) return -1;
    slot x = m->slots[in];
    layer *l = new_layer(m, LAYER_BIAS, name, in, -1);
    if (!l) return -1;
    l->pid[0] = declare(m, l, "bias", 1, x.c, 1, 1, 1, PARAM_NO_DECAY);
    if (m->error) return -1;
    return push_layer(m, x.c, x.h, x.w);
}

/* Room for n MoE tensor descriptors (freed by model_free once the layer is pushed; on failure
 * here the layer is not pushed and the arrays are released at once). */
static int declare_moe(sm_model *m, layer *l, int n)
{
    l->minfo = calloc((size_t)n, sizeof *l->minfo);
    l->mpid = calloc((size_t)n, sizeof *l->mpid);
    l->n_minfo = n;
    if (!l->minfo || !l->mpid) {
        free(l->minfo);
        free(l->mpid);
        l->minfo = NULL;
        l->mpid = NULL;
        m->error = sm_fail(SM_ERR_NUMERIC, "model: out of memory adding layer %s", l->name);
        return -1;
    }
    return 0;
}

static int declare_moe_tensors(sm_model *m, layer *l)
{
    for (int i = 0; i < l->n_minfo; i++) {
        const moe_param_info *pi = &l->minfo[i];
        int d[4] = {1, 1, 1, 1};
        for (int j = 0; j < pi->ndim; j++) d[j] = pi->shape[j];
        /* weights decay; gate tensors, biases and latent maps do not */
        int decay = pi->ndim >= 2 && strstr(pi->name, "gate") == NULL;
        /* every tensor that is not an expert's routes (latent map, gate conv, point-gated gate
         * and attention weights): it gets the gate learning rate (training.gate_lr_scale) */
        unsigned gate = strncmp(pi->name, "expert", 6) != 0 ? PARAM_GATE : 0u;
        l->mpid[i] = declare(m, l, pi->name, pi->ndim, d[0], d[1], d[2], d[3],
                             (decay ? PARAM_DEFAULT : PARAM_NO_DECAY) | gate);
    }
    if (m->error) {
        free(l->minfo);
        free(l->mpid);
        l->minfo = NULL;
        l->mpid = NULL;
        return -1;
    }
    return 0;
}

int model_add_smoe(sm_model *m, const char *name, int in, const smoe_shape *tmpl,
                   const smoe_aux_weights *aux)
{
    if (!check_slot(m, in, "smoe")) return -1;
    slot x = m->slots[in];
    smoe_shape s = *tmpl;
    s.batch = 1;
    s.c_in = x.c;
    s.h = x.h;
    s.w = x.w;
    int rc = smoe_check(&s);
    if (rc) {
        m->error = rc;
        return -1;
    }
    layer *l = new_layer(m, LAYER_SMOE, name, in, -1);
    if (!l) return -1;
    l->smoe = s;
    l->init = INIT_KAIMING_RELU;
    if (aux) {
        l->aux = *aux;
        l->has_aux = aux->importance != 0.0f || aux->load != 0.0f || aux->agreement != 0.0f;
    }
    int n = smoe_params(&s, NULL);
    if (declare_moe(m, l, n)) return -1;
    smoe_params(&s, l->minfo);
    l->mfloats = smoe_param_floats(&s);
    if (declare_moe_tensors(m, l)) return -1;
    l->pid[0] = l->mpid[0];
    l->pid[1] = l->mpid[1];
    return push_layer(m, s.k, x.h, x.w);
}

int model_add_pmoe(sm_model *m, const char *name, int in, const pmoe_shape *tmpl,
                   const pmoe_aux_weights *aux)
{
    if (!check_slot(m, in, "point-gated MoE")) return -1;
    slot x = m->slots[in];
    pmoe_shape s = *tmpl;
    s.batch = 1;
    s.c_in = x.c;
    s.h = x.h;
    s.w = x.w;
    int rc = pmoe_check(&s);
    if (rc) {
        m->error = rc;
        return -1;
    }
    layer *l = new_layer(m, LAYER_PMOE, name, in, -1);
    if (!l) return -1;
    l->pmoe = s;
    if (aux) l->paux = *aux;
    l->init = INIT_KAIMING_RELU;
    int n = pmoe_param_count(&s);
    if (declare_moe(m, l, n)) return -1;
    pmoe_params(&s, l->minfo);
    l->mfloats = pmoe_param_floats(&s);
    if (declare_moe_tensors(m, l)) return -1;
    return push_layer(m, s.c_out, x.h, x.w);
}

int model_distills(const sm_model *m)
{
    for (int i = 0; i < m->n_layers; i++)
        if (m->layers[i].kind == LAYER_PMOE && m->layers[i].pmoe.distill) return 1;
    return 0;
}

void model_set_distill_check(sm_model *m, int on) { m->distill_check = on != 0; }

int model_set_output(sm_model *m, int s)
{
    if (!check_slot(m, s, "output")) return m->error ? m->error : SM_ERR_USAGE;
    m->output = s;
    return SM_OK;
}

/* ---------------------------------------------------------------- planning ---- */

static int out_slot(const sm_model *m)
{
    return m->output >= 0 ? m->output : m->layers[m->n_layers - 1].out;
}

static size_t slot_floats(const slot *s, int batch) { return (size_t)batch * s->c * s->h * s->w; }

static conv2d_shape conv_shape(const sm_model *m, const layer *l)
{
    const slot *x = &m->slots[l->in0];
    conv2d_shape cs = {m->batch, x->c, x->h, x->w, l->c_out, l->kernel, l->stride, l->pad, l->bias};
    return cs;
}

static conv_transpose_shape convt_shape(const sm_model *m, const layer *l)
{
    const slot *x = &m->slots[l->in0];
    conv_transpose_shape cs = {m->batch, x->c, x->h, x->w, l->c_out, l->kernel, l->stride, 0, 0,
                               l->bias};
    return cs;
}

static smoe_shape moe_shape(const sm_model *m, const layer *l)
{
    smoe_shape s = l->smoe;
    s.batch = m->batch;
    if (l->out == out_slot(m)) {
        /* RC error rescaling under a mean-reduced loss head (METHODS.md section 2, step 2). */
        s.rc_error_scale = (float)(slot_floats(&m->slots[l->out], m->batch) / 2.0);
        if (!(s.rc_error_scale > 0.0f)) s.rc_error_scale = 1.0f;
    }
    return s;
}

static pmoe_shape pmoe_shape_now(const sm_model *m, const layer *l)
{
    pmoe_shape s = l->pmoe;
    s.batch = m->batch;
    s.distill_check = s.distill && m->distill_check;
    return s;
}

static int is_moe(const layer *l) { return l->kind == LAYER_SMOE || l->kind == LAYER_PMOE; }

static size_t layer_state_floats(const sm_model *m, const layer *l)
{
    const slot *x = &m->slots[l->in0];
    switch (l->kind) {
    case LAYER_BATCHNORM: return 2 * (size_t)x->c;
    case LAYER_DROPOUT: return (slot_floats(x, m->batch) + 3) / 4;
    case LAYER_SMOE: {
        smoe_shape s = moe_shape(m, l);
        return smoe_state_floats(&s);
    }
    case LAYER_PMOE: {
        pmoe_shape s = pmoe_shape_now(m, l);
        return pmoe_state_floats(&s);
    }
    default: return 0;
    }
}

static size_t layer_ws_floats(const sm_model *m, const layer *l)
{
    switch (l->kind) {
    case LAYER_CONV: {
        conv2d_shape cs = conv_shape(m, l);
        return conv2d_workspace_floats(&cs);
    }
    case LAYER_CONV_T: {
        conv_transpose_shape cs = convt_shape(m, l);
        return conv_transpose_workspace_floats(&cs);
    }
    case LAYER_SMOE: {
        smoe_shape s = moe_shape(m, l);
        return smoe_workspace_floats(&s);
    }
    case LAYER_PMOE: {
        pmoe_shape s = pmoe_shape_now(m, l);
        return pmoe_workspace_floats(&s);
    }
    default: return 0;
    }
}

/* Gradient buffers: slot s is live in backward from the step of its last consumer to the step
 * of its producer; slots whose intervals do not overlap share a region (best fit). */
typedef struct {
    size_t size;
    int free_after;  /* step after which it is free again (-2 = free) */
} region;

static int plan_grads(sm_model *m, size_t base, size_t *total)
{
    const int L = m->n_layers, S = m->n_slots;
    region *reg = calloc((size_t)S, sizeof *reg);
    int *reg_of = calloc((size_t)S, sizeof *reg_of);
    if (!reg || !reg_of) {
        free(reg);
        free(reg_of);
        return sm_fail(SM_ERR_NUMERIC, "model: out of memory planning the arena");
    }
    int nreg = 0;
    const int out = out_slot(m);
    /* step t processes layer L-1-t; the output's gradient is born at t = -1. */
    for (int t = -1; t < L; t++) {
        for (int s = 1; s < S; s++) {
            slot *sl = &m->slots[s];
            int birth = (s == out) ? -1 : L - 1 - sl->last_consumer;
            if (birth != t) continue;
            int death = L - 1 - sl->producer;
            size_t need = align_up(slot_floats(sl, m->max_batch));
            int best = -1;
            for (int r = 0; r < nreg; r++) {
                if (reg[r].free_after >= t) continue; /* still in use */
                if (reg[r].size < need) continue;
                if (best < 0 || reg[r].size < reg[best].size) best = r;
            }
            if (best < 0) {
                /* grow the largest free region rather than adding one, if any is free */
                for (int r = 0; r < nreg; r++)
                    if (reg[r].free_after < t && (best < 0 || reg[r].size > reg[best].size)) best = r;
                if (best >= 0)
                    reg[best].size = need;
                else {
                    best = nreg++;
                    reg[best].size = need;
                }
            }
            reg[best].free_after = death;
            reg_of[s] = best;
        }
    }
    size_t *roff = calloc((size_t)(nreg ? nreg : 1), sizeof *roff);
    if (!roff) {
        free(reg);
        free(reg_of);
        return sm_fail(SM_ERR_NUMERIC, "model: out of memory planning the arena");
    }
    size_t off = base;
    for (int r = 0; r < nreg; r++) {
        roff[r] = off;
        off += reg[r].size;
    }
    for (int s = 1; s < S; s++) m->slots[s].grad_off = roff[reg_of[s]];
    *total = off;
    free(roff);
    free(reg);
    free(reg_of);
    return SM_OK;
}

int model_plan(sm_model *m, int max_batch, int with_grads)
{
    if (m->error) return m->error;
    if (!m->finalized) return sm_fail(SM_ERR_USAGE, "model: model_plan before model_finalize");
    if (max_batch < 1) return sm_fail(SM_ERR_USAGE, "model: batch size %d must be >= 1", max_batch);
    free(m->arena);
    free(m->ws);
    m->arena = NULL;
    m->ws = NULL;
    m->max_batch = m->batch = max_batch;
    m->with_grads = with_grads;
    m->plan_threads = nn_get_threads();
    m->forwarded = 0;

    size_t off = 0;
    for (int s = 0; s < m->n_slots; s++) {
        m->slots[s].act_off = off;
        off += align_up(slot_floats(&m->slots[s], max_batch));
    }
    size_t ws = 0;
    for (int i = 0; i < m->n_layers; i++) {
        layer *l = &m->layers[i];
        l->state_off = off;
        off += align_up(layer_state_floats(m, l));
        if (is_moe(l) && !l->contiguous) {
            l->pack_off = off;
            off += align_up(l->mfloats);
            l->pgrad_off = off;
            off += align_up(l->mfloats);
        }
        if (l->kind == LAYER_SMOE && l->has_aux && with_grads) {
            l->dgate_off = off;
            off += align_up((size_t)max_batch * l->smoe.n_experts * l->smoe.h * l->smoe.w);
        }
        size_t w = layer_ws_floats(m, l);
        if (w > ws) ws = w;
    }
    if (with_grads) {
        int rc = plan_grads(m, off, &off);
        if (rc) return rc;
    }
    m->arena_floats = off;
    m->ws_floats = ws;
    size_t bytes = (off ? off : ALIGN_FLOATS) * sizeof(float);
    m->arena = aligned_alloc(64, (bytes + 63) / 64 * 64);
    size_t wbytes = (ws ? ws : ALIGN_FLOATS) * sizeof(float);
    m->ws = aligned_alloc(64, (wbytes + 63) / 64 * 64);
    if (!m->arena || !m->ws)
        return sm_fail(SM_ERR_NUMERIC, "model: out of memory for the activation arena (%zu MB)",
                       bytes >> 20);
    memset(m->arena, 0, (bytes + 63) / 64 * 64);
    return SM_OK;
}

int model_finalize(sm_model *m, int max_batch, int with_grads)
{
    if (m->error) return m->error;
    if (m->finalized) return sm_fail(SM_ERR_USAGE, "model: model_finalize called twice");
    if (m->n_layers == 0) return sm_fail(SM_ERR_USAGE, "model: the graph has no layers");
    for (int s = 0; s < m->n_slots; s++) m->slots[s].last_consumer = -1;
    for (int i = 0; i < m->n_layers; i++) {
        const layer *l = &m->layers[i];
        m->slots[l->in0].last_consumer = i;
        if (l->in1 >= 0) m->slots[l->in1].last_consumer = i;
    }
    const int out = out_slot(m);
    for (int s = 1; s < m->n_slots; s++)
        if (m->slots[s].last_consumer < 0 && s != out)
            return m->error = sm_fail(SM_ERR_USAGE, "model: output of layer %s is never used",
                                      m->layers[m->slots[s].producer].name);
    int rc = param_store_finalize(m->store);
    if (rc) return m->error = rc;
    m->finalized = 1;
    for (int i = 0; i < m->n_layers; i++) {
        layer *l = &m->layers[i];
        if (!is_moe(l)) continue;
        const float *base = param_data(m->store, l->mpid[0]);
        l->contiguous = 1;
        for (int t = 0; t < l->n_minfo; t++)
            if (base + l->minfo[t].offset != param_data(m->store, l->mpid[t])) l->contiguous = 0;
    }
    return model_plan(m, max_batch, with_grads);
}

int model_set_batch(sm_model *m, int batch)
{
    if (!m->arena) return sm_fail(SM_ERR_USAGE, "model: model_set_batch before model_finalize");
    if (batch < 1 || batch > m->max_batch)
        return sm_fail(SM_ERR_USAGE, "model: batch %d outside 1..%d planned (call model_plan)",
                       batch, m->max_batch);
    int keep = m->batch;
    m->batch = batch;
    for (int i = 0; i < m->n_layers; i++)
        if (layer_ws_floats(m, &m->layers[i]) > m->ws_floats) {
            m->batch = keep;
            return sm_fail(SM_ERR_USAGE, "model: batch %d needs a larger workspace than planned; "
                           "call model_plan(%d)", batch, batch);
        }
    m->forwarded = 0;
    return SM_OK;
}

int model_batch(const sm_model *m) { return m->batch; }
void model_set_sample_offset(sm_model *m, int64_t first) { m->sample_first = first; }

void model_set_shard(sm_model *m, int64_t first, int global_batch)
{
    m->sample_first = first;
    m->global_batch = global_batch;
}

int model_set_dist(sm_model *m, norm_reduce_fn reduce, void *arg, int rank, int size, int max_global_batch)
{
    free(m->dist_scratch);
    m->dist_scratch = NULL;
    m->dist_on = 0;
    m->dist_reduce = NULL;
    m->dist_arg = NULL;
    m->dist_max_global = 0;
    if (max_global_batch <= 0) return SM_OK;
    size_t need = 1;
    for (int i = 0; i < m->n_layers; i++) {
        if (m->layers[i].kind != LAYER_PMOE) continue;
        /* the sample-similarity regulariser reduces its pair statistics here */
        size_t n = pmoe_dist_scratch_doubles(&m->layers[i].pmoe);
        if (n > need) need = n;
    }
    m->dist_scratch = malloc(need * sizeof(double));
    if (!m->dist_scratch) return sm_fail(SM_ERR_NUMERIC, "out of memory");
    m->dist_on = 1;
    m->dist_reduce = reduce;
    m->dist_arg = arg;
    m->dist_max_global = max_global_batch;
    m->dist_rank = reduce && size > 1 ? rank : 0;
    m->dist_size = reduce && size > 1 ? size : 1;
    return SM_OK;
}

/* The data-parallel context of point-gated layer i for the current batch. */
static pmoe_dist dist_ctx(const sm_model *m, int i, uint64_t key, int batch)
{
    pmoe_dist d;
    memset(&d, 0, sizeof d);
    int global = m->global_batch > 0 ? m->global_batch : batch;
    if ((int64_t)global < m->sample_first + batch) global = (int)(m->sample_first + batch);
    d.red.sum = m->dist_reduce;
    d.red.arg = m->dist_arg;
    d.red.grad_scale = batch > 0 ? (double)global / batch : 1.0;
    d.rank = m->dist_rank;
    d.size = m->dist_size;
    d.first = m->sample_first > 0 ? m->sample_first : 0;
    d.global_batch = global;
    d.key = key + (uint64_t)i * 0x9E3779B97F4A7C15ull;
    d.scratch = m->dist_scratch;
    return d;
}

static int dist_check_global(const sm_model *m)
{
    int global = m->global_batch > 0 ? m->global_batch : m->batch;
    if ((int64_t)global < m->sample_first + m->batch) global = (int)(m->sample_first + m->batch);
    if (global > m->dist_max_global)
        return sm_fail(SM_ERR_USAGE, "model: global batch %d larger than the %d given to model_set_dist", global,
                       m->dist_max_global);
    return SM_OK;
}

int model_set_batchnorm_sync(sm_model *m, norm_reduce_fn reduce, void *arg)
{
    free(m->bn_scratch);
    m->bn_scratch = NULL;
    m->bn_reduce = NULL;
    if (!reduce) return SM_OK;
    int cmax = 0;
    for (int i = 0; i < m->n_layers; i++)
        if (m->layers[i].kind == LAYER_BATCHNORM && m->slots[m->layers[i].in0].c > cmax) cmax = m->slots[m->layers[i].in0].c;
    m->bn_scratch = calloc((size_t)(2 * cmax + 1), sizeof(double));
    if (!m->bn_scratch) return sm_fail(SM_ERR_NUMERIC, "out of memory");
    m->bn_reduce = reduce;
    m->bn_arg = arg;
    return SM_OK;
}

/* The reductions of layer i in one training pass (forward 0, backward 1) with no sample. */
static int idle_layer(sm_model *m, int i, int pass)
{
    if (m->layers[i].kind == LAYER_PMOE && m->dist_on && m->dist_reduce) {
        pmoe_dist d = dist_ctx(m, i, 0, 0);
        pmoe_dist_idle(&m->layers[i].pmoe, &m->layers[i].paux, pass, &d);
        return d.red.status;
    }
    if (m->layers[i].kind != LAYER_BATCHNORM || !m->bn_reduce) return SM_OK;
    const size_t c = (size_t)m->slots[m->layers[i].in0].c;
    int st;
    memset(m->bn_scratch, 0, (2 * c + 1) * sizeof(double));
    if (pass == 1) return m->bn_reduce(m->bn_scratch, 2 * c + 1, m->bn_arg);
    /* forward: the global sums, and the running statistics updated as on the ranks with
     * samples (batchnorm2d_forward_sync), so that every rank keeps the same buffers */
    double *sum = m->bn_scratch, *sq = m->bn_scratch + c + 1;
    if ((st = m->bn_reduce(sum, c + 1, m->bn_arg))) return st;
    if ((st = m->bn_reduce(sq, c, m->bn_arg))) return st;
    const layer *l = &m->layers[i];
    float *rmean = param_data(m->store, l->pid[2]), *rvar = param_data(m->store, l->pid[3]);
    const double n = sum[c];
    for (size_t k = 0; k < c; k++) {
        const double mean = n > 0 ? sum[k] / n : 0.0;
        const double dm = mean - (double)(float)mean;
        double q = sq[k] - n * dm * dm;
        if (q < 0.0) q = 0.0;
        rmean[k] = (float)((1.0 - BN_MOMENTUM) * rmean[k] + BN_MOMENTUM * mean);
        rvar[k] = (float)((1.0 - BN_MOMENTUM) * rvar[k] + BN_MOMENTUM * (n > 1 ? q / (n - 1) : q));
    }
    return SM_OK;
}

int model_sync_idle(sm_model *m)
{
    for (int pass = 0; pass < 2; pass++)
        for (int j = 0; j < m->n_layers; j++) {
            int i = pass == 0 ? j : m->n_layers - 1 - j;
            int st = idle_layer(m, i, pass);
            if (!st && pass == 1 && m->grad_ready) st = m->grad_ready(m->grad_lo[i], m->grad_ready_arg);
            if (st) return st;
        }
    return SM_OK;
}

int model_set_grad_ready(sm_model *m, model_grad_ready_fn fn, void *arg)
{
    free(m->grad_lo);
    m->grad_lo = NULL;
    m->grad_ready = NULL;
    m->grad_ready_arg = NULL;
    if (!fn) return SM_OK;
    if (!m->finalized) return sm_fail(SM_ERR_USAGE, "model: model_set_grad_ready before model_finalize");
    m->grad_lo = malloc(sizeof(size_t) * (size_t)(m->n_layers > 0 ? m->n_layers : 1));
    if (!m->grad_lo) return sm_fail(SM_ERR_NUMERIC, "out of memory");
    /* lowest store offset of each layer's tensors, then the minimum over the layers from i to
     * the last: after layer i's backward, every gradient from there on is final */
    size_t lo = param_store_size(m->store);
    for (int i = m->n_layers - 1; i >= 0; i--) {
        const layer *l = &m->layers[i];
        const int *ids = is_moe(l) ? l->mpid : l->pid;
        const int nid = is_moe(l) ? l->n_minfo : 4;
        for (int t = 0; t < nid; t++)
            if (ids[t] >= 0 && param_store_view(m->store, ids[t])->offset < lo) lo = param_store_view(m->store, ids[t])->offset;
        m->grad_lo[i] = lo;
    }
    m->grad_ready = fn;
    m->grad_ready_arg = arg;
    return SM_OK;
}
int model_max_batch(const sm_model *m) { return m->max_batch; }

/* ---------------------------------------------------------------- init ---- */

void model_init_params(sm_model *m, rng_t *rng)
{
    if (!m->finalized) return;
    for (int i = 0; i < m->n_layers; i++) {
        layer *l = &m->layers[i];
        const slot *x = &m->slots[l->in0];
        switch (l->kind) {
        case LAYER_CONV:
        case LAYER_CONV_T: {
            const param_view *v = param_store_view(m->store, l->pid[0]);
            float *w = param_data(m->store, l->pid[0]);
            double fan_in = init_fan_in(v->ndim, v->shape);
            if (l->init == INIT_KAIMING_RELU)
                init_weight_kaiming_relu(w, v->ndim, v->shape, rng);
            else
                init_weight_default(w, v->ndim, v->shape, rng);
            if (l->bias) {
                float *b = param_data(m->store, l->pid[1]);
                if (l->init == INIT_KAIMING_RELU)
                    init_zeros(b, (size_t)l->c_out);
                else
                    init_bias_default(b, (size_t)l->c_out, fan_in, rng);
            }
            break;
        }
        case LAYER_BATCHNORM:
            init_norm_affine(param_data(m->store, l->pid[0]), param_data(m->store, l->pid[1]),
                             (size_t)x->c);
            init_zeros(param_data(m->store, l->pid[2]), (size_t)x->c);
            init_constant(param_data(m->store, l->pid[3]), (size_t)x->c, 1.0f);
            break;
        case LAYER_BIAS:
            init_zeros(param_data(m->store, l->pid[0]), (size_t)x->c);
            break;
        case LAYER_SMOE:
        case LAYER_PMOE: {
            float *pack = l->contiguous ? param_data(m->store, l->mpid[0]) : m->arena + l->pack_off;
            if (l->kind == LAYER_SMOE) {
                smoe_shape s = moe_shape(m, l);
                smoe_init(&s, pack, rng);
            } else {
                pmoe_shape s = pmoe_shape_now(m, l);
                pmoe_init(&s, pack, rng);
            }
            if (!l->contiguous)
                for (int t = 0; t < l->n_minfo; t++)
                    memcpy(param_data(m->store, l->mpid[t]), pack + l->minfo[t].offset,
                           l->minfo[t].count * sizeof(float));
            break;
        }
        default: break;
        }
    }
}

/* ---------------------------------------------------------------- passes ---- */

float *model_input(sm_model *m) { return m->arena ? m->arena + m->slots[0].act_off : NULL; }
float *model_output(sm_model *m) { return m->arena ? m->arena + m->slots[out_slot(m)].act_off : NULL; }
float *model_output_grad(sm_model *m)
{
    return (m->arena && m->with_grads) ? m->arena + m->slots[out_slot(m)].grad_off : NULL;
}

/* Profile clock: process CPU time (all threads), steadier than wall time on a shared machine. */
static double prof_clock(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static float *act(sm_model *m, int s) { return m->arena + m->slots[s].act_off; }
static float *grad(sm_model *m, int s)
{
    return (s > 0 && m->slots[s].has_grad) ? m->arena + m->slots[s].grad_off : NULL;
}
static float *P(sm_model *m, int id) { return id >= 0 ? param_data(m->store, id) : NULL; }
static float *G(sm_model *m, int id) { return id >= 0 ? param_grad(m->store, id) : NULL; }

static float *moe_pack(sm_model *m, layer *l)
{
    if (l->contiguous) return P(m, l->mpid[0]);
    float *pack = m->arena + l->pack_off;
    for (int t = 0; t < l->n_minfo; t++)
        memcpy(pack + l->minfo[t].offset, P(m, l->mpid[t]), l->minfo[t].count * sizeof(float));
    return pack;
}

/* conv2d's workspace grows with the thread count (nn/threads.h). */
static int check_threads(const sm_model *m)
{
    int t = nn_get_threads();
    if (t > m->plan_threads)
        return sm_fail(SM_ERR_USAGE, "model: %d threads, but the workspace was planned for %d; call "
                       "nn_set_threads before building the model (or model_plan again)", t, m->plan_threads);
    return SM_OK;
}

int model_forward(sm_model *m, int training, rng_t *rng)
{
    if (!m->arena) return sm_fail(SM_ERR_USAGE, "model: model_forward before model_finalize");
    int trc = check_threads(m);
    if (trc) return trc;
    const int B = m->batch;
    /* Per-sample mode: one draw from `rng` per forward gives the key of this step; sample b's
     * dropout mask in layer i comes from the stream (key + i, sample_first + b), so it does
     * not depend on how the global batch is split over ranks. */
    uint64_t key = 0;
    if (training && rng && m->sample_first >= 0) key = ((uint64_t)rng_u32(rng) << 32) | rng_u32(rng);
    double t0 = m->profile ? prof_clock() : 0.0;
    for (int i = 0; i < m->n_layers; i++) {
        if (m->profile) {
            double t1 = prof_clock();
            if (i > 0) m->t_fwd[i - 1] += t1 - t0;
            t0 = t1;
        }
        layer *l = &m->layers[i];
        const slot *x = &m->slots[l->in0];
        float *in = act(m, l->in0), *out = act(m, l->out);
        float *state = m->arena + l->state_off;
        size_t n = slot_floats(x, B), hw = (size_t)x->h * x->w;
        switch (l->kind) {
        case LAYER_CONV: {
            conv2d_shape cs = conv_shape(m, l);
            conv2d_forward(&cs, out, in, P(m, l->pid[0]), P(m, l->pid[1]), m->ws);
            break;
        }
        case LAYER_CONV_T: {
            conv_transpose_shape cs = convt_shape(m, l);
            conv_transpose_forward(&cs, out, in, P(m, l->pid[0]), P(m, l->pid[1]), m->ws);
            break;
        }
        case LAYER_BATCHNORM: {
            norm_shape ns = {B, x->c, x->h, x->w};
            if (training && m->bn_reduce) {
                int st = batchnorm2d_forward_sync(&ns, out, in, P(m, l->pid[0]), P(m, l->pid[1]), P(m, l->pid[2]),
                                                  P(m, l->pid[3]), BN_MOMENTUM, BN_EPS, training, state, m->bn_reduce,
                                                  m->bn_arg, m->bn_scratch);
                if (st) return st;
            } else {
                batchnorm2d_forward(&ns, out, in, P(m, l->pid[0]), P(m, l->pid[1]), P(m, l->pid[2]),
                                    P(m, l->pid[3]), BN_MOMENTUM, BN_EPS, training, state);
            }
            break;
        }
        case LAYER_ACT: activation_forward(l->act, l->alpha, n, out, in); break;
        case LAYER_DROPOUT:
            if (training && l->alpha > 0.0f && !rng)
                return sm_fail(SM_ERR_USAGE, "model: training forward with dropout needs an rng");
            if (training && l->alpha > 0.0f && m->sample_first >= 0) {
                size_t per = n / (size_t)B;
                for (int b = 0; b < B; b++) {
                    rng_t r;
                    rng_seed(&r, key + (uint64_t)i * 0x9E3779B97F4A7C15ull, (uint64_t)(m->sample_first + b));
                    dropout_forward(l->alpha, training, per, out + b * per, in + b * per, (uint8_t *)state + b * per, &r);
                }
            } else {
                dropout_forward(l->alpha, training, n, out, in, (uint8_t *)state, rng);
            }
            break;
        case LAYER_MAXPOOL:
        case LAYER_AVGPOOL: {
            pool_shape ps = {B, x->c, x->h, x->w};
            if (l->flag)
                maxpool2x2_forward(&ps, out, in);
            else
                avgpool2x2_forward(&ps, out, in);
            break;
        }
        case LAYER_UPSAMPLE: {
            upsample_shape us = {B, x->c, x->h, x->w};
            if (l->flag)
                upsample_bilinear2x_forward(&us, out, in);
            else
                upsample_nearest2x_forward(&us, out, in);
            break;
        }
        case LAYER_ADD: tensor_add_forward(n, out, in, act(m, l->in1)); break;
        case LAYER_CONCAT:
            channel_concat_forward(B, x->c, m->slots[l->in1].c, hw, out, in, act(m, l->in1));
            break;
        case LAYER_BIAS: {
            const float *b = P(m, l->pid[0]);
            const int C = x->c;
#pragma omp parallel for schedule(static)
            for (long bc = 0; bc < (long)B * C; bc++) {
                const float bv = b[bc % C];
                const float *src = in + (size_t)bc * hw;
                float *dst = out + (size_t)bc * hw;
                for (size_t p = 0; p < hw; p++) dst[p] = src[p] + bv;
            }
            break;
        }
        case LAYER_SMOE: {
            smoe_shape s = moe_shape(m, l);
            if (training && s.noise && !rng)
                return sm_fail(SM_ERR_USAGE, "model: training forward with gate noise needs an rng");
            if (training && s.noise && m->dist_on && m->sample_first >= 0) {
                /* sample b's noise is block first + b of this step's stream: skip the blocks of
                 * the samples before this batch, so the draws do not depend on the split */
                rng_t r;
                rng_seed(&r, key + (uint64_t)i * 0x9E3779B97F4A7C15ull, 0x5304u);
                size_t skip = (size_t)m->sample_first * s.n_experts * s.h * s.w;
                for (size_t j = 0; j < skip; j++) (void)rng_normal(&r);
                smoe_forward(&s, out, in, moe_pack(m, l), state, m->ws, &r);
            } else {
                smoe_forward(&s, out, in, moe_pack(m, l), state, m->ws, (training && s.noise) ? rng : NULL);
            }
            break;
        }
        case LAYER_PMOE: {
            pmoe_shape s = pmoe_shape_now(m, l);
            if (training && (s.noisy || s.sim_pairs > 0) && !rng)
                return sm_fail(SM_ERR_USAGE, "model: training forward with gate noise needs an rng");
            if (training && m->dist_on && m->sample_first >= 0) {
                int st = dist_check_global(m);
                if (st) return st;
                pmoe_dist d = dist_ctx(m, i, key, B);
                pmoe_forward_dist(&s, out, in, moe_pack(m, l), state, m->ws, training, &d);
                if (d.red.status) return d.red.status;
            } else {
                pmoe_forward(&s, out, in, moe_pack(m, l), state, m->ws, training, rng);
            }
            break;
        }
        default: break;
        }
    }
    if (m->profile) {
        m->t_fwd[m->n_layers - 1] += prof_clock() - t0;
        m->n_fwd++;
    }
    m->last_training = training;
    m->last_dist = training && m->dist_on && m->sample_first >= 0;
    m->forwarded = 1;
    return SM_OK;
}

void model_zero_grad(sm_model *m) { param_store_zero_grad(m->store); }

/* Packed MoE gradients back into the store (+=); nothing to do when the store's tensors are
 * the packed block. */
static void moe_unpack_grad(sm_model *m, const layer *l, const float *pgrad)
{
    if (l->contiguous) return;
    for (int t = 0; t < l->n_minfo; t++) {
        float *g = G(m, l->mpid[t]);
        const float *src = pgrad + l->minfo[t].offset;
        for (size_t e = 0; e < l->minfo[t].count; e++) g[e] += src[e];
    }
}

int model_backward(sm_model *m)
{
    if (!m->arena || !m->with_grads)
        return sm_fail(SM_ERR_USAGE, "model: model_backward needs an arena planned with gradients");
    if (!m->forwarded) return sm_fail(SM_ERR_USAGE, "model: model_backward without a forward pass");
    int trc = check_threads(m);
    if (trc) return trc;
    const int B = m->batch, training = m->last_training;
    if (!training && model_distills(m))
        return sm_fail(SM_ERR_USAGE, "model: model_backward after an evaluation forward: a distilled "
                       "point-gated layer routes with its student there and computes only its selected "
                       "experts; backward needs a training forward");
    double t0 = m->profile ? prof_clock() : 0.0;
    for (int i = m->n_layers - 1; i >= 0; i--) {
        if (m->profile) {
            double t1 = prof_clock();
            if (i < m->n_layers - 1) m->t_bwd[i + 1] += t1 - t0;
            t0 = t1;
        }
        layer *l = &m->layers[i];
        const slot *x = &m->slots[l->in0];
        /* gradients born here (this layer is their last consumer) start at zero */
        int ins[2] = {l->in0, l->in1};
        for (int j = 0; j < 2; j++) {
            int s = ins[j];
            if (s <= 0 || m->slots[s].last_consumer != i) continue;
            if (j == 1 && s == l->in0) continue;
            memset(grad(m, s), 0, slot_floats(&m->slots[s], B) * sizeof(float));
        }
        float *in = act(m, l->in0), *out = act(m, l->out);
        float *d_in = grad(m, l->in0), *d_out = grad(m, l->out);
        float *state = m->arena + l->state_off;
        size_t n = slot_floats(x, B), hw = (size_t)x->h * x->w;
        switch (l->kind) {
        case LAYER_CONV: {
            conv2d_shape cs = conv_shape(m, l);
            conv2d_backward(&cs, d_in, G(m, l->pid[0]), G(m, l->pid[1]), d_out, in,
                            P(m, l->pid[0]), m->ws);
            break;
        }
        case LAYER_CONV_T: {
            conv_transpose_shape cs = convt_shape(m, l);
            conv_transpose_backward(&cs, d_in, G(m, l->pid[0]), G(m, l->pid[1]), d_out, in,
                                    P(m, l->pid[0]), m->ws);
            break;
        }
        case LAYER_BATCHNORM: {
            norm_shape ns = {B, x->c, x->h, x->w};
            if (training && m->bn_reduce) {
                int st = batchnorm2d_backward_sync(&ns, d_in, G(m, l->pid[0]), G(m, l->pid[1]), d_out, in,
                                                   P(m, l->pid[0]), state, training, m->bn_reduce, m->bn_arg,
                                                   m->bn_scratch);
                if (st) return st;
            } else {
                batchnorm2d_backward(&ns, d_in, G(m, l->pid[0]), G(m, l->pid[1]), d_out, in,
                                     P(m, l->pid[0]), state, training);
            }
            break;
        }
        case LAYER_ACT:
            if (d_in) activation_backward(l->act, l->alpha, n, d_in, d_out, in, out);
            break;
        case LAYER_DROPOUT:
            if (d_in) dropout_backward(l->alpha, training, n, d_in, d_out, (const uint8_t *)state);
            break;
        case LAYER_MAXPOOL:
        case LAYER_AVGPOOL: {
            pool_shape ps = {B, x->c, x->h, x->w};
            if (!d_in) break;
            if (l->flag)
                maxpool2x2_backward(&ps, d_in, d_out, in);
            else
                avgpool2x2_backward(&ps, d_in, d_out);
            break;
        }
        case LAYER_UPSAMPLE: {
            upsample_shape us = {B, x->c, x->h, x->w};
            if (!d_in) break;
            if (l->flag)
                upsample_bilinear2x_backward(&us, d_in, d_out);
            else
                upsample_nearest2x_backward(&us, d_in, d_out);
            break;
        }
        case LAYER_ADD: tensor_add_backward(n, d_in, grad(m, l->in1), d_out); break;
        case LAYER_CONCAT:
            channel_concat_backward(B, x->c, m->slots[l->in1].c, hw, d_in, grad(m, l->in1), d_out);
            break;
        case LAYER_BIAS: {
            const int C = x->c;
            float *db = G(m, l->pid[0]);
#pragma omp parallel for schedule(static)
            for (int c = 0; c < C; c++) {
                double s = 0.0;
                for (int b = 0; b < B; b++) {
                    const float *g = d_out + ((size_t)b * C + c) * hw;
                    for (size_t p = 0; p < hw; p++) s += g[p];
                }
                db[c] += (float)s;
            }
            if (d_in) tensor_add_backward(n, d_in, NULL, d_out);
            break;
        }
        case LAYER_SMOE: {
            smoe_shape s = moe_shape(m, l);
            float *pack = l->contiguous ? P(m, l->mpid[0]) : m->arena + l->pack_off;
            float *pgrad = l->contiguous ? G(m, l->mpid[0]) : m->arena + l->pgrad_off;
            if (!l->contiguous) memset(pgrad, 0, l->mfloats * sizeof(float));
            float *dgate = NULL;
            l->aux_value = 0.0;
            if (l->has_aux) {
                dgate = m->arena + l->dgate_off;
                memset(dgate, 0, (size_t)B * s.n_experts * s.h * s.w * sizeof(float));
                l->aux_value = smoe_aux_losses(&s, state, &l->aux, dgate, NULL);
            }
            smoe_backward(&s, d_in, pgrad, d_out, dgate, in, pack, state, m->ws);
            moe_unpack_grad(m, l, pgrad);
            break;
        }
        case LAYER_PMOE: {
            pmoe_shape s = pmoe_shape_now(m, l);
            float *pack = l->contiguous ? P(m, l->mpid[0]) : m->arena + l->pack_off;
            float *pgrad = l->contiguous ? G(m, l->mpid[0]) : m->arena + l->pgrad_off;
            if (!l->contiguous) memset(pgrad, 0, l->mfloats * sizeof(float));
            if (m->last_dist) {
                pmoe_dist d = dist_ctx(m, i, 0, B);
                pmoe_backward_dist(&s, d_in, pgrad, d_out, &l->paux, in, pack, state, m->ws, &d);
                if (d.red.status) return d.red.status;
            } else {
                pmoe_backward(&s, d_in, pgrad, d_out, &l->paux, in, pack, state, m->ws);
            }
            l->aux_value = pmoe_stats(&s, state)[PMOE_STAT_AUX_TOTAL];
            moe_unpack_grad(m, l, pgrad);
            break;
        }
        default: break;
        }
        if (m->grad_ready) {
            int st = m->grad_ready(m->grad_lo[i], m->grad_ready_arg);
            if (st) return st;
        }
    }
    if (m->profile) {
        m->t_bwd[0] += prof_clock() - t0;
        m->n_bwd++;
    }
    return SM_OK;
}

int model_set_profile(sm_model *m, int on)
{
    if (on && !m->t_fwd) {
        m->t_fwd = calloc((size_t)(m->n_layers ? m->n_layers : 1), sizeof(double));
        m->t_bwd = calloc((size_t)(m->n_layers ? m->n_layers : 1), sizeof(double));
        if (!m->t_fwd || !m->t_bwd) return sm_fail(SM_ERR_NUMERIC, "model: out of memory for the profile");
    }
    if (on && m->t_fwd) {
        memset(m->t_fwd, 0, (size_t)m->n_layers * sizeof(double));
        memset(m->t_bwd, 0, (size_t)m->n_layers * sizeof(double));
        m->n_fwd = m->n_bwd = 0;
    }
    m->profile = on;
    return SM_OK;
}

void model_profile_print(const sm_model *m, FILE *f)
{
    if (!m->t_fwd) return;
    double tf = 0.0, tb = 0.0;
    for (int i = 0; i < m->n_layers; i++) {
        tf += m->t_fwd[i];
        tb += m->t_bwd[i];
    }
    const double nf = m->n_fwd ? (double)m->n_fwd : 1.0, nb = m->n_bwd ? (double)m->n_bwd : 1.0;
    fprintf(f, "%-4s %-24s %-15s %12s %12s %7s\n", "#", "layer", "kind", "fwd cpu ms", "bwd cpu ms", "share");
    for (int i = 0; i < m->n_layers; i++) {
        double a = 1e3 * m->t_fwd[i] / nf, b = 1e3 * m->t_bwd[i] / nb;
        fprintf(f, "%-4d %-24s %-15s %12.3f %12.3f %6.1f%%\n", i, m->layers[i].name,
                layer_kind_name(m->layers[i].kind), a, b,
                100.0 * (a + b) / (1e3 * (tf / nf + tb / nb) + 1e-30));
    }
    fprintf(f, "total: forward %.3f ms, backward %.3f ms process CPU per pass (%ld / %ld passes)\n",
            1e3 * tf / nf, 1e3 * tb / nb, m->n_fwd, m->n_bwd);
}

double model_aux_loss(const sm_model *m)
{
    double s = 0.0;
    if (!m->arena) return 0.0;
    for (int i = 0; i < m->n_layers; i++) {
        const layer *l = &m->layers[i];
        if (l->kind == LAYER_PMOE) s += l->aux_value;
        if (l->kind != LAYER_SMOE) continue;
        smoe_shape sh = moe_shape(m, l);
        smoe_state_view v = smoe_state(&sh, m->arena + l->state_off);
        s += v.stats[SMOE_STAT_RC_LOSS] + l->aux_value;
    }
    return s;
}

/* ---------------------------------------------------------------- inspection ---- */

param_store *model_params(sm_model *m) { return m->store; }
const param_store *model_params_const(const sm_model *m) { return m->store; }
int model_c_in(const sm_model *m) { return m->slots[0].c; }
int model_h(const sm_model *m) { return m->slots[0].h; }
int model_w(const sm_model *m) { return m->slots[0].w; }
int model_c_out(const sm_model *m) { return m->n_layers ? m->slots[out_slot(m)].c : 0; }
int model_out_h(const sm_model *m) { return m->n_layers ? m->slots[out_slot(m)].h : 0; }
int model_out_w(const sm_model *m) { return m->n_layers ? m->slots[out_slot(m)].w : 0; }
int model_layer_count(const sm_model *m) { return m->n_layers; }
layer_kind model_layer_kind(const sm_model *m, int i) { return m->layers[i].kind; }
const char *model_layer_name(const sm_model *m, int i) { return m->layers[i].name; }

const char *layer_kind_name(layer_kind kind)
{
    static const char *names[LAYER_KIND_COUNT] = {
        "conv", "conv_transpose", "batchnorm", "activation", "dropout", "maxpool",
        "avgpool", "upsample", "add", "concat", "bias", "smoe", "point_moe"};
    return (kind >= 0 && kind < LAYER_KIND_COUNT) ? names[kind] : "?";
}

size_t model_layer_param_count(const sm_model *m, int i)
{
    size_t n = 0;
    const layer *l = &m->layers[i];
    const int *ids = is_moe(l) ? l->mpid : l->pid;
    const int nid = is_moe(l) ? l->n_minfo : 4;
    for (int t = 0; t < nid; t++) {
        int id = ids[t];
        if (id < 0) continue;
        const param_view *v = param_store_view(m->store, id);
        if (v && (v->flags & PARAM_TRAINABLE)) n += v->numel;
    }
    return n;
}

size_t model_param_count(const sm_model *m) { return param_store_numel(m->store, 1); }
size_t model_arena_bytes(const sm_model *m) { return m->arena_floats * sizeof(float); }
size_t model_workspace_bytes(const sm_model *m) { return m->ws_floats * sizeof(float); }

void model_summary(const sm_model *m, FILE *f)
{
    fprintf(f, "%-4s %-24s %-15s %-22s %-22s %10s\n", "#", "layer", "kind", "input", "output",
            "params");
    for (int i = 0; i < m->n_layers; i++) {
        const layer *l = &m->layers[i];
        const slot *x = &m->slots[l->in0], *y = &m->slots[l->out];
        char a[48], b[48];
        if (l->in1 >= 0) {
            const slot *x2 = &m->slots[l->in1];
            snprintf(a, sizeof a, "%dx%dx%d+%dx%dx%d", x->c, x->h, x->w, x2->c, x2->h, x2->w);
        } else {
            snprintf(a, sizeof a, "%dx%dx%d", x->c, x->h, x->w);
        }
        snprintf(b, sizeof b, "%dx%dx%d", y->c, y->h, y->w);
        char kind[32];
        if (l->kind == LAYER_SMOE)
            snprintf(kind, sizeof kind, "smoe N%d k%d", l->smoe.n_experts, l->smoe.k);
        else if (l->kind == LAYER_PMOE)
            snprintf(kind, sizeof kind, "pmoe N%d k%d", l->pmoe.n_experts, l->pmoe.k);
        else
            snprintf(kind, sizeof kind, "%s", layer_kind_name(l->kind));
        fprintf(f, "%-4d %-24s %-15s %-22s %-22s %10zu\n", i, l->name, kind, a, b,
                model_layer_param_count(m, i));
    }
    fprintf(f, "trainable parameters: %zu\n", model_param_count(m));
    if (m->arena)
        fprintf(f, "arena: %.1f MB for batch %d (activations, gradients, saved state); "
                "workspace: %.1f MB\n", (double)model_arena_bytes(m) / 1048576.0, m->max_batch,
                (double)model_workspace_bytes(m) / 1048576.0);
}

int model_moe_count(const sm_model *m)
{
    int n = 0;
    for (int i = 0; i < m->n_layers; i++) n += is_moe(&m->layers[i]);
    return n;
}

int model_moe_get(const sm_model *m, int i, model_moe_info *out)
{
    int n = 0;
    for (int li = 0; li < m->n_layers; li++) {
        const layer *l = &m->layers[li];
        if (!is_moe(l)) continue;
        if (n++ != i) continue;
        memset(out, 0, sizeof *out);
        out->layer = li;
        out->name = l->name;
        out->kind = l->kind;
        out->param_first = l->mpid[0];
        out->n_params = l->n_minfo;
        out->h = m->slots[l->in0].h;
        out->w = m->slots[l->in0].w;
        if (l->kind == LAYER_SMOE) {
            out->shape = moe_shape(m, l);
            out->n_experts = out->shape.n_experts;
            out->k = out->shape.k;
            out->param_expert = l->mpid[0];
            out->param_gate = l->mpid[1];
            if (m->arena) {
                smoe_state_view v = smoe_state(&out->shape, m->arena + l->state_off);
                out->gate_raw = v.gate_raw;
                out->gate_route = v.gate_route;
                out->idx = v.idx;
                out->stats = v.stats;
            }
        } else {
            out->pshape = pmoe_shape_now(m, l);
            out->n_experts = out->pshape.n_experts;
            out->k = out->pshape.k;
            out->param_expert = l->mpid[0];
            out->param_gate = -1;
            for (int t = 0; t < l->n_minfo; t++)
                if (out->param_gate < 0 && strncmp(l->minfo[t].name, "expert", 6) != 0)
                    out->param_gate = l->mpid[t];
            if (m->arena) {
                float *st = m->arena + l->state_off;
                out->gate_weights = pmoe_gate_weights(&out->pshape, st);
                out->routing_probs = pmoe_routing_probs(&out->pshape, st);
                out->stats = pmoe_stats(&out->pshape, st);
            }
        }
        return SM_OK;
    }
    return sm_fail(SM_ERR_USAGE, "model: MoE layer %d does not exist (the model has %d)", i, n);
}

int model_moe_routing_metrics(const sm_model *m, int i, const int32_t *labels,
                              int labels_per_sample, moe_routing_metrics *out)
{
    model_moe_info info;
    int rc = model_moe_get(m, i, &info);
    if (rc) return rc;
    if (!m->forwarded)
        return sm_fail(SM_ERR_USAGE, "model: routing metrics of %s need a forward pass first", info.name);
    const int H = m->slots[m->layers[info.layer].in0].h, W = m->slots[m->layers[info.layer].in0].w;
    moe_layout lay = {m->batch, info.n_experts, (size_t)H * W};
    size_t n = (size_t)m->batch * info.n_experts * H * W;
    float *p = malloc((n ? n : 1) * sizeof(float));
    if (!p) return sm_fail(SM_ERR_NUMERIC, "model: out of memory for routing metrics");
    if (info.kind == LAYER_SMOE)
        moe_softmax_experts(&lay, info.gate_raw, p);
    else
        memcpy(p, info.routing_probs, n * sizeof(float));
    int r = moe_routing_metrics_compute(&lay, p, labels, labels_per_sample, out);
    free(p);
    if (r != 0)
        return sm_fail(SM_ERR_USAGE, "model: routing metrics of %s: more than %d experts or a negative "
                       "label", info.name, MOE_METRICS_MAX_EXPERTS);
    /* a distilled layer's comparison with its teacher, when the last forward ran both gates */
    if (info.kind == LAYER_PMOE && info.pshape.distill && isfinite(info.stats[PMOE_STAT_AGREE])) {
        out->has_distill = 1;
        out->distill_loss = info.stats[PMOE_STAT_DISTILL];
        out->agreement = info.stats[PMOE_STAT_AGREE];
    }
    return SM_OK;
}

int model_first_nonfinite_layer(const sm_model *m)
{
    if (!m->arena || !m->forwarded) return -1;
    for (int i = 0; i < m->n_layers; i++) {
        const slot *y = &m->slots[m->layers[i].out];
        const float *a = m->arena + y->act_off;
        size_t n = slot_floats(y, m->batch);
        for (size_t e = 0; e < n; e++)
            if (!isfinite(a[e])) return i;
    }
    return -1;
}

int model_param_layer(const sm_model *m, int param_id)
{
    for (int i = 0; i < m->n_layers; i++) {
        const layer *l = &m->layers[i];
        const int *ids = is_moe(l) ? l->mpid : l->pid;
        const int nid = is_moe(l) ? l->n_minfo : 4;
        for (int t = 0; t < nid; t++)
            if (ids[t] == param_id) return i;
    }
    return -1;
}
