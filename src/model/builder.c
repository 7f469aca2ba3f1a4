/* Architectures from the config and MoE insertion (see builder.h). */
#include "model/builder.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/log.h"

typedef struct {
    sm_model *m;
    const model_config *mc;
    pad_mode pad;
    act_kind act;
    float alpha;
    int kernel;
    int bias;
    int batchnorm;
    float dropout;
    /* MoE insertion */
    int counting;      /* pass 1: only count the replaceable convs */
    int n_conv;        /* replaceable convs seen so far */
    int total_conv;    /* from pass 1 */
    int in_decoder;
    int moe_on;
    int placement;     /* 0 last, 1 decoder, 2 all */
    int n_replaced;
} bctx;

static int parse_gate(const char *name, smoe_gate_type *g)
{
    if (strcmp(name, "latent") == 0) *g = SMOE_GATE_LATENT;
    else if (strcmp(name, "conv") == 0) *g = SMOE_GATE_CONV;
    else if (strcmp(name, "conv1x1") == 0) *g = SMOE_GATE_CONV1X1;
    else return -1;
    return 0;
}

/* Point-gated family: softmax_topk, laplace, hmoe, attention. */
static int parse_point_gate(const char *name, pmoe_gate_type *g)
{
    if (strcmp(name, "softmax_topk") == 0) *g = PMOE_SOFTMAX_TOPK;
    else if (strcmp(name, "laplace") == 0) *g = PMOE_LAPLACE;
    else if (strcmp(name, "hmoe") == 0) *g = PMOE_HMOE;
    else if (strcmp(name, "attention") == 0) *g = PMOE_ATTENTION;
    else return -1;
    return 0;
}

static pmoe_shape pmoe_template(const model_config *mc, int c_out, pad_mode pad)
{
    const moe_config *e = &mc->moe;
    pmoe_shape s;
    memset(&s, 0, sizeof s);
    pmoe_shape_defaults(&s);
    s.c_out = c_out;
    parse_point_gate(e->gate, &s.gate);
    s.n_experts = e->experts;
    s.k = e->k;
    s.hidden = e->expert_hidden;
    s.attn_hidden = e->attention.hidden;
    s.distill = e->attention.distill;
    s.kernel = e->expert_kernel;
    s.pad = pad;
    s.noisy = e->noise;
    s.capacity_factor = isnan(e->capacity_factor) ? 0.0f : (float)e->capacity_factor;
    s.groups = e->hmoe.groups;
    s.experts_per_group = e->hmoe.experts_per_group;
    s.k_outer = e->hmoe.k_outer;
    s.k_inner = e->hmoe.k_inner;
    if (s.gate == PMOE_HMOE) {
        s.n_experts = s.groups * s.experts_per_group;
        s.k = s.k_outer * s.k_inner;
        s.outer_kind = e->hmoe.levels[0] == 'S' ? MOE_GATE_SOFTMAX : MOE_GATE_LAPLACE;
        s.inner_kind = e->hmoe.levels[1] == 'S' ? MOE_GATE_SOFTMAX : MOE_GATE_LAPLACE;
    }
    const similarity_config *sim = &e->aux.similarity;
    s.sim_pairs = (sim->beta_same != 0 || sim->beta_diff != 0) ? sim->pairs : 0;
    return s;
}

static smoe_shape smoe_template(const model_config *mc, int c_out, pad_mode pad)
{
    const moe_config *e = &mc->moe;
    smoe_shape s;
    memset(&s, 0, sizeof s);
    smoe_shape_defaults(&s);
    s.k = c_out;
    long n = lround((double)c_out * e->experts / (e->k > 0 ? e->k : 1));
    s.n_experts = (int)(n < c_out ? c_out : n);
    s.kernel = e->expert_kernel;
    s.pad = (int)pad;
    parse_gate(e->gate, &s.gate);
    s.weighted = e->weighted;
    s.softmax = e->softmax;
    s.noise = e->noise;
    s.rc_loss = e->rc_loss.enabled;
    s.rc_quantile = (float)e->rc_loss.quantile;
    s.damping = e->damping.enabled;
    s.damping_factor = (float)e->damping.factor;
    return s;
}

static int add_smoe_bias(bctx *c, const char *name, int x, int c_out, int bias)
{
    const aux_config *a = &c->mc->moe.aux;
    smoe_aux_weights w = {(float)a->importance, (float)a->load, (float)a->spatial_agreement};
    if (c_out > 1 && strcmp(c->mc->moe.outputs, "per_channel") == 0) {
        /* one SMoE layer (N = experts, k = 1, own gate) per output channel, concatenated */
        smoe_shape t = smoe_template(c->mc, 1, c->pad);
        char cn[128];
        int y = -1;
        for (int j = 0; j < c_out; j++) {
            snprintf(cn, sizeof cn, "%s_ch%d", name, j);
            int z = model_add_smoe(c->m, cn, x, &t, &w);
            y = j == 0 ? z : model_add_concat(c->m, y, z);
        }
        x = y;
    } else {
        smoe_shape t = smoe_template(c->mc, c_out, c->pad);
        x = model_add_smoe(c->m, name, x, &t, &w);
    }
    if (bias) {
        char bn[128];
        snprintf(bn, sizeof bn, "%s_bias", name);
        x = model_add_bias(c->m, bn, x);
    }
    return x;
}

static int add_pmoe(bctx *c, const char *name, int x, int c_out)
{
    pmoe_shape t = pmoe_template(c->mc, c_out, c->pad);
    const aux_config *a = &c->mc->moe.aux;
    pmoe_aux_weights w = {(float)a->importance, (float)a->load, (float)a->switch_loss,
                          (float)a->entropy, (float)a->similarity.beta_same,
                          (float)a->similarity.beta_diff, (float)c->mc->moe.attention.distill_weight};
    return model_add_pmoe(c->m, name, x, &t, &w);
}

/* A replaceable convolution: an ordinary conv, or an MoE layer when MoE insertion picks it. */
static int conv(bctx *c, const char *name, int x, int c_out, int kernel, int bias, init_mode init)
{
    int idx = c->n_conv++;
    int replace = 0;
    if (c->moe_on && !c->counting) {
        if (c->placement == 2) replace = 1;
        else if (c->placement == 1) replace = c->in_decoder;
        else replace = idx >= c->total_conv - c->mc->moe.layers;
    }
    if (!replace) return model_add_conv(c->m, name, x, c_out, kernel, 1, c->pad, bias, init);
    c->n_replaced++;
    pmoe_gate_type pg;
    if (parse_point_gate(c->mc->moe.gate, &pg) == 0) return add_pmoe(c, name, x, c_out);
    return add_smoe_bias(c, name, x, c_out, bias);
}

/* conv -> BatchNorm -> activation -> dropout */
static int unit(bctx *c, const char *name, int x, int c_out, int kernel)
{
    char nm[128];
    x = conv(c, name, x, c_out, kernel, c->bias, INIT_TORCH_DEFAULT);
    if (c->batchnorm) {
        snprintf(nm, sizeof nm, "%s_bn", name);
        x = model_add_batchnorm(c->m, nm, x);
    }
    x = model_add_act(c->m, x, c->act, c->alpha);
    if (c->dropout > 0.0f) x = model_add_dropout(c->m, x, c->dropout);
    return x;
}

static int channels_at(const model_config *mc, int i) { return (int)mc->channels.items[i]; }

static void build_cnn(bctx *c, int c_out)
{
    int x = 0;
    char nm[64];
    for (int i = 0; i < c->mc->channels.n; i++) {
        snprintf(nm, sizeof nm, "conv%d", i);
        x = unit(c, nm, x, channels_at(c->mc, i), c->kernel);
    }
    snprintf(nm, sizeof nm, "conv%d", c->mc->channels.n);
    conv(c, nm, x, c_out, c->kernel, c->bias, INIT_TORCH_DEFAULT);
}

static void build_mlp(bctx *c, int c_out)
{
    int x = 0;
    char nm[64];
    for (int i = 0; i < c->mc->channels.n; i++) {
        snprintf(nm, sizeof nm, "fc%d", i);
        x = unit(c, nm, x, channels_at(c->mc, i), 1);
    }
    snprintf(nm, sizeof nm, "fc%d", c->mc->channels.n);
    conv(c, nm, x, c_out, 1, c->bias, INIT_TORCH_DEFAULT);
}

static void build_resnet(bctx *c, int c_out)
{
    const int width = channels_at(c->mc, 0);
    char nm[64];
    int x = unit(c, "stem", 0, width, c->kernel);
    for (int b = 0; b < c->mc->blocks; b++) {
        snprintf(nm, sizeof nm, "block%d.conv0", b);
        int y = unit(c, nm, x, width, c->kernel);
        snprintf(nm, sizeof nm, "block%d.conv1", b);
        y = unit(c, nm, y, width, c->kernel);
        x = model_add_add(c->m, x, y);
    }
    conv(c, "head", x, c_out, c->kernel, c->bias, INIT_TORCH_DEFAULT);
}

static void build_unet(bctx *c, int c_out)
{
    const int L = c->mc->channels.n;
    int skips[CFG_LIST_MAX];
    char nm[64];
    int x = 0;
    for (int i = 0; i < L; i++) {
        if (i > 0) x = model_add_pool(c->m, x, 1);
        snprintf(nm, sizeof nm, "enc%d.conv0", i);
        x = unit(c, nm, x, channels_at(c->mc, i), c->kernel);
        snprintf(nm, sizeof nm, "enc%d.conv1", i);
        x = unit(c, nm, x, channels_at(c->mc, i), c->kernel);
        skips[i] = x;
    }
    for (int i = L - 2; i >= 0; i--) {
        const int ch = channels_at(c->mc, i);
        snprintf(nm, sizeof nm, "dec%d.up", i);
        x = model_add_conv_transpose(c->m, nm, x, ch, 2, 2, c->bias, INIT_TORCH_DEFAULT);
        x = model_add_concat(c->m, skips[i], x);
        c->in_decoder = 1;
        snprintf(nm, sizeof nm, "dec%d.conv0", i);
        x = unit(c, nm, x, ch, c->kernel);
        snprintf(nm, sizeof nm, "dec%d.conv1", i);
        x = unit(c, nm, x, ch, c->kernel);
        c->in_decoder = 0;
    }
    conv(c, "head", x, c_out, 1, c->bias, INIT_TORCH_DEFAULT);
}

static void build_smoe_net(bctx *c, int c_out)
{
    char nm[64];
    int x = 0;
    int width = model_c_in(c->m);
    for (int i = 0; i < c->mc->channels.n; i++) {
        const int block_in = x, ch = channels_at(c->mc, i);
        snprintf(nm, sizeof nm, "smoe%d", i);
        x = add_smoe_bias(c, nm, x, ch, c->bias);
        if (c->batchnorm) {
            snprintf(nm, sizeof nm, "smoe%d_bn", i);
            x = model_add_batchnorm(c->m, nm, x);
        }
        if (c->mc->residual) {
            int skip = block_in;
            if (width != ch) { /* the reference resizes the shortcut with a 1x1 conv + BN */
                snprintf(nm, sizeof nm, "smoe%d_res", i);
                skip = model_add_conv(c->m, nm, skip, ch, 1, 1, c->pad, 0, INIT_KAIMING_RELU);
                snprintf(nm, sizeof nm, "smoe%d_res_bn", i);
                skip = model_add_batchnorm(c->m, nm, skip);
            }
            x = model_add_add(c->m, skip, x);
        }
        width = ch;
        x = model_add_act(c->m, x, c->act, c->alpha);
        if (c->dropout > 0.0f) x = model_add_dropout(c->m, x, c->dropout);
    }
    snprintf(nm, sizeof nm, "smoe%d", c->mc->channels.n);
    add_smoe_bias(c, nm, x, c_out, c->bias);
}

static int pad_from_config(const model_config *mc, int periodic_lon, pad_mode *pad)
{
    const char *p = mc->padding;
    if (strcmp(p, "auto") == 0) *pad = periodic_lon ? PAD_PERIODIC_LON : PAD_ZERO;
    else if (strcmp(p, "periodic_lon") == 0) *pad = PAD_PERIODIC_LON;
    else if (strcmp(p, "zero") == 0) *pad = PAD_ZERO;
    else if (strcmp(p, "replicate") == 0) *pad = PAD_REPLICATE;
    else return sm_fail(SM_ERR_USAGE, "model.padding: unknown mode '%s' (auto|periodic_lon|zero|replicate)", p);
    return SM_OK;
}

static int check_config(const model_config *mc, int *arch)
{
    static const char *archs[] = {"cnn", "resnet", "unet", "smoe_net", "mlp"};
    *arch = -1;
    for (int i = 0; i < 5; i++)
        if (strcmp(mc->architecture, archs[i]) == 0) *arch = i;
    if (*arch < 0)
        return sm_fail(SM_ERR_USAGE, "model.architecture: unknown '%s' (cnn|resnet|unet|smoe_net|mlp)",
                       mc->architecture);
    if (mc->channels.n < 1 && *arch != 0 && *arch != 4)
        return sm_fail(SM_ERR_USAGE, "model.channels: needs at least one entry for %s", mc->architecture);
    for (int i = 0; i < mc->channels.n; i++) {
        double v = mc->channels.items[i];
        if (!(v >= 1 && v == floor(v)))
            return sm_fail(SM_ERR_USAGE, "model.channels[%d]: %g is not a positive integer", i, v);
    }
    if (mc->kernel < 1 || mc->kernel % 2 == 0)
        return sm_fail(SM_ERR_USAGE, "model.kernel: %d must be odd", mc->kernel);
    if (mc->residual && *arch != 3)
        return sm_fail(SM_ERR_USAGE, "model.residual: applies to smoe_net only (resnet always has residual "
                       "blocks); remove it or set model.architecture: smoe_net");
    if (*arch == 2 && mc->channels.n < 2)
        return sm_fail(SM_ERR_USAGE, "model.channels: unet needs at least 2 levels, got %d", mc->channels.n);
    const moe_config *e = &mc->moe;
    int uses_moe = (*arch == 3) || e->enabled;
    if (uses_moe) {
        smoe_gate_type g;
        pmoe_gate_type pg;
        int smoe_gate = parse_gate(e->gate, &g) == 0;
        int point_gate = parse_point_gate(e->gate, &pg) == 0;
        if (!smoe_gate && !point_gate)
            return sm_fail(SM_ERR_USAGE, "model.moe.gate: unknown '%s'", e->gate);
        if (*arch == 3 && !smoe_gate)
            return sm_fail(SM_ERR_USAGE, "model.moe.gate: smoe_net is built from SMoE layers; gate '%s' "
                           "selects the point-gated layer (use latent, conv or conv1x1, or insert it into "
                           "cnn/resnet/unet/mlp with model.moe.enabled)", e->gate);
        if (e->attention.distill && (!point_gate || pg != PMOE_ATTENTION))
            return sm_fail(SM_ERR_USAGE, "model.moe.attention.distill: distils the attention gate; needs "
                           "model.moe.gate attention (got '%s')", e->gate);
        if (smoe_gate && (e->aux.switch_loss != 0 || e->aux.entropy != 0 ||
                          e->aux.similarity.beta_same != 0 || e->aux.similarity.beta_diff != 0))
            return sm_fail(SM_ERR_USAGE, "model.moe.aux: switch, entropy and similarity losses apply to "
                           "the point-gated layer only; with gate '%s' set them to 0", e->gate);
        if (point_gate && e->aux.spatial_agreement != 0)
            return sm_fail(SM_ERR_USAGE, "model.moe.aux.spatial_agreement: applies to the SMoE layer only; "
                           "with gate '%s' set it to 0", e->gate);
        if ((!point_gate || pg != PMOE_HMOE) && (e->k < 1 || e->k > e->experts))
            return sm_fail(SM_ERR_USAGE, "model.moe.k: %d with model.moe.experts = %d; need 1 <= k <= experts",
                           e->k, e->experts);
        if (smoe_gate && strcmp(e->outputs, "per_channel") == 0 && e->k != 1)
            return sm_fail(SM_ERR_USAGE, "model.moe.outputs: per_channel gives every output channel its own "
                           "SMoE layer with one selected expert; set model.moe.k to 1 (got %d)", e->k);
        if (e->expert_kernel < 1 || e->expert_kernel % 2 == 0)
            return sm_fail(SM_ERR_USAGE, "model.moe.expert_kernel: %d must be odd", e->expert_kernel);
    }
    if (e->enabled && *arch != 3) {
        if (strcmp(e->placement, "decoder") == 0 && *arch != 2)
            return sm_fail(SM_ERR_USAGE, "model.moe.placement: 'decoder' needs model.architecture unet, not %s",
                           mc->architecture);
    }
    return SM_OK;
}

int model_build_dims(const model_config *mc, int c_in, int c_out, int h, int w, int periodic_lon,
                     int batch, int with_grads, uint64_t seed, sm_model **out)
{
    *out = NULL;
    int arch;
    int rc = check_config(mc, &arch);
    if (rc) return rc;
    if (c_in < 1 || c_out < 1)
        return sm_fail(SM_ERR_USAGE, "model: %d input and %d output channels; need at least one of each",
                       c_in, c_out);
    bctx c;
    memset(&c, 0, sizeof c);
    c.mc = mc;
    rc = pad_from_config(mc, periodic_lon, &c.pad);
    if (rc) return rc;
    const char *act_name = mc->activation;
    if (arch == 3 && strcmp(mc->activation, "elu") == 0) act_name = "relu"; /* reference default */
    if (activation_parse(act_name, &c.act) != 0)
        return sm_fail(SM_ERR_USAGE, "model.activation: unknown '%s'", mc->activation);
    c.alpha = activation_default_alpha(c.act);
    c.kernel = mc->kernel;
    c.bias = mc->bias;
    c.batchnorm = mc->batchnorm;
    c.dropout = (float)mc->dropout;
    c.moe_on = mc->moe.enabled && arch != 3;
    c.placement = strcmp(mc->moe.placement, "all") == 0 ? 2
                  : strcmp(mc->moe.placement, "decoder") == 0 ? 1 : 0;
    if (arch == 2) {
        int f = 1 << (mc->channels.n - 1);
        if (h % f || w % f)
            return sm_fail(SM_ERR_USAGE, "model.channels: a %d-level unet needs H and W divisible by %d; "
                           "the grid is %d x %d", mc->channels.n, f, h, w);
    }
    typedef void (*build_fn)(bctx *, int);
    static const build_fn fns[] = {build_cnn, build_resnet, build_unet, build_smoe_net, build_mlp};
    /* pass 1: count the replaceable convolutions */
    if (c.moe_on) {
        c.counting = 1;
        c.m = model_create(c_in, h, w);
        if (!c.m) return sm_fail(SM_ERR_NUMERIC, "model: out of memory");
        fns[arch](&c, c_out);
        model_free(c.m);
        c.total_conv = c.n_conv;
        c.n_conv = 0;
        c.counting = 0;
        if (c.placement == 0 && mc->moe.layers > c.total_conv)
            return sm_fail(SM_ERR_USAGE, "model.moe.layers: %d, but %s has only %d convolutions",
                           mc->moe.layers, mc->architecture, c.total_conv);
    }
    c.m = model_create(c_in, h, w);
    if (!c.m) return sm_fail(SM_ERR_NUMERIC, "model: out of memory");
    fns[arch](&c, c_out);
    rc = model_finalize(c.m, batch, with_grads);
    if (rc) {
        model_free(c.m);
        return rc;
    }
    rng_t rng;
    rng_seed(&rng, seed, MODEL_RNG_STREAM_INIT);
    model_init_params(c.m, &rng);
    if (mc->moe.latent_init_scale != 1.0) {
        /* model.moe.latent_init_scale: shrink (or widen) the latent gates' initial range */
        param_store *ps = model_params(c.m);
        for (int i = 0; i < model_moe_count(c.m); i++) {
            model_moe_info mi;
            if (model_moe_get(c.m, i, &mi) || mi.kind != LAYER_SMOE || mi.shape.gate != SMOE_GATE_LATENT) continue;
            float *g = param_data(ps, mi.param_gate);
            size_t n = param_store_view(ps, mi.param_gate)->numel;
            for (size_t j = 0; j < n; j++) g[j] = (float)(g[j] * mc->moe.latent_init_scale);
        }
    }
    *out = c.m;
    return SM_OK;
}

int model_build(const model_config *mc, int c_in, int c_out, const grid *g, int batch,
                int with_grads, uint64_t seed, sm_model **out)
{
    if (!g) return sm_fail(SM_ERR_USAGE, "model: no grid given");
    return model_build_dims(mc, c_in, c_out, g->nlat, g->nlon, g->periodic_lon, batch, with_grads,
                            seed, out);
}
