/* Parsing of the `model.moe` YAML section and conversion to layer shapes (see moe_config.h). */
#include "moe/moe_config.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"

void moe_config_defaults(moe_config *c)
{
    memset(c, 0, sizeof *c);
    snprintf(c->gate, sizeof c->gate, "latent");
    c->family = MOE_FAMILY_SMOE;
    c->experts = 3;
    c->k = 1;
    c->weighted = 1;
    c->rc_quantile = 0.7f;
    c->rc_error_scale = 1.0f;
    c->sim_pairs = 4096;
    c->hmoe_groups = 2;
    c->hmoe_experts_per_group = 4;
    c->hmoe_k_outer = 1;
    c->hmoe_k_inner = 2;
    snprintf(c->hmoe_levels, sizeof c->hmoe_levels, "LL");
    c->kernel = 3;
    c->expert_hidden = 8;
    c->expert_kernel = 3;
}

static int is_null(const ynode *n)
{
    return n->kind == YNODE_SCALAR && !n->quoted &&
           (!n->value || !strcmp(n->value, "null") || !strcmp(n->value, "~") || !n->value[0]);
}

static int bad(const char *file, const ynode *n, const char *path, const char *what)
{
    return sm_fail(SM_ERR_USAGE, "%s:%d: model.moe.%s: %s, got '%s'", file, n->line, path, what,
                   n->kind == YNODE_SCALAR && n->value ? n->value : "(map or list)");
}

static int get_bool(const char *file, const ynode *n, const char *path, int *out)
{
    if (n->kind == YNODE_SCALAR && n->value) {
        const char *v = n->value;
        if (!strcmp(v, "true") || !strcmp(v, "yes") || !strcmp(v, "on")) { *out = 1; return SM_OK; }
        if (!strcmp(v, "false") || !strcmp(v, "no") || !strcmp(v, "off")) { *out = 0; return SM_OK; }
    }
    return bad(file, n, path, "expected true or false");
}

static int get_float(const char *file, const ynode *n, const char *path, double lo, double hi,
                     float *out)
{
    if (n->kind == YNODE_SCALAR && n->value && n->value[0]) {
        char *end;
        errno = 0;
        double v = strtod(n->value, &end);
        if (!*end && !errno && isfinite(v) && v >= lo && v <= hi) {
            *out = (float)v;
            return SM_OK;
        }
    }
    char what[96];
    snprintf(what, sizeof what, "expected a number in [%g, %g]", lo, hi);
    return bad(file, n, path, what);
}

static int get_int(const char *file, const ynode *n, const char *path, long lo, long hi, int *out)
{
    if (n->kind == YNODE_SCALAR && n->value && n->value[0]) {
        char *end;
        errno = 0;
        long v = strtol(n->value, &end, 10);
        if (!*end && !errno && v >= lo && v <= hi) {
            *out = (int)v;
            return SM_OK;
        }
    }
    char what[96];
    snprintf(what, sizeof what, "expected an integer in [%ld, %ld]", lo, hi);
    return bad(file, n, path, what);
}

static int need_map(const char *file, const ynode *n, const char *path)
{
    if (n->kind != YNODE_MAP) return bad(file, n, path, "expected a map");
    return SM_OK;
}

static int unknown(const char *file, const ynode *n, const char *parent)
{
    return sm_fail(SM_ERR_USAGE, "%s:%d: model.moe.%s%s: unknown key (see docs/moe.md)", file,
                   n->line, parent, n->key ? n->key : "?");
}

#define FLOAT(path, lo, hi, dst) rc = get_float(file, it, path, lo, hi, &(dst))
#define INT(path, lo, hi, dst) rc = get_int(file, it, path, lo, hi, &(dst))
#define BOOL(path, dst) rc = get_bool(file, it, path, &(dst))

static int parse_similarity(const ynode *m, const char *file, moe_config *c)
{
    int rc = need_map(file, m, "aux.similarity");
    for (size_t i = 0; !rc && i < m->n_items; i++) {
        const ynode *it = m->items[i];
        if (!strcmp(it->key, "beta_same")) FLOAT("aux.similarity.beta_same", 0, 1e9, c->sim_beta_same);
        else if (!strcmp(it->key, "beta_diff")) FLOAT("aux.similarity.beta_diff", 0, 1e9, c->sim_beta_diff);
        else if (!strcmp(it->key, "pairs")) INT("aux.similarity.pairs", 0, 100000000, c->sim_pairs);
        else rc = unknown(file, it, "aux.similarity.");
    }
    return rc;
}

static int parse_aux(const ynode *m, const char *file, moe_config *c)
{
    int rc = need_map(file, m, "aux");
    for (size_t i = 0; !rc && i < m->n_items; i++) {
        const ynode *it = m->items[i];
        if (!strcmp(it->key, "importance")) FLOAT("aux.importance", 0, 1e9, c->aux_importance);
        else if (!strcmp(it->key, "load")) FLOAT("aux.load", 0, 1e9, c->aux_load);
        else if (!strcmp(it->key, "switch")) FLOAT("aux.switch", 0, 1e9, c->aux_switch);
        else if (!strcmp(it->key, "entropy")) FLOAT("aux.entropy", -1e9, 1e9, c->aux_entropy);
        else if (!strcmp(it->key, "agreement")) FLOAT("aux.agreement", 0, 1e9, c->aux_agreement);
        else if (!strcmp(it->key, "similarity")) rc = parse_similarity(it, file, c);
        else rc = unknown(file, it, "aux.");
    }
    return rc;
}

static int parse_hmoe(const ynode *m, const char *file, moe_config *c)
{
    int rc = need_map(file, m, "hmoe");
    for (size_t i = 0; !rc && i < m->n_items; i++) {
        const ynode *it = m->items[i];
        if (!strcmp(it->key, "groups")) INT("hmoe.groups", 1, PMOE_MAX_GROUPS, c->hmoe_groups);
        else if (!strcmp(it->key, "experts_per_group")) INT("hmoe.experts_per_group", 1, 256, c->hmoe_experts_per_group);
        else if (!strcmp(it->key, "k_outer")) INT("hmoe.k_outer", 1, 256, c->hmoe_k_outer);
        else if (!strcmp(it->key, "k_inner")) INT("hmoe.k_inner", 1, 256, c->hmoe_k_inner);
        else if (!strcmp(it->key, "levels")) {
            const char *v = it->kind == YNODE_SCALAR ? it->value : NULL;
            if (v && (!strcmp(v, "SS") || !strcmp(v, "SL") || !strcmp(v, "LL")))
                snprintf(c->hmoe_levels, sizeof c->hmoe_levels, "%s", v);
            else
                rc = bad(file, it, "hmoe.levels", "expected SS, SL or LL");
        } else rc = unknown(file, it, "hmoe.");
    }
    return rc;
}

static int parse_switch_map(const ynode *m, const char *file, const char *name, int *enabled,
                            float *value, const char *vkey, double lo, double hi, float *scale)
{
    char path[64];
    int rc = need_map(file, m, name);
    for (size_t i = 0; !rc && i < m->n_items; i++) {
        const ynode *it = m->items[i];
        snprintf(path, sizeof path, "%s.%s", name, it->key);
        if (!strcmp(it->key, "enabled")) rc = get_bool(file, it, path, enabled);
        else if (!strcmp(it->key, vkey)) rc = get_float(file, it, path, lo, hi, value);
        else if (scale && !strcmp(it->key, "error_scale")) rc = get_float(file, it, path, 1e-30, 1e30, scale);
        else {
            char parent[48];
            snprintf(parent, sizeof parent, "%s.", name);
            rc = unknown(file, it, parent);
        }
    }
    return rc;
}

int moe_config_parse(const ynode *moe, const char *file, moe_config *c)
{
    moe_config_defaults(c);
    if (!moe) return SM_OK;
    int rc = need_map(file, moe, "");
    for (size_t i = 0; !rc && i < moe->n_items; i++) {
        const ynode *it = moe->items[i];
        const char *k = it->key;
        if (!strcmp(k, "gate")) {
            static const char *names[] = {"latent", "conv", "conv1x1", "softmax_topk", "laplace",
                                          "hmoe", "attention"};
            int found = -1;
            for (int g = 0; g < 7; g++)
                if (it->kind == YNODE_SCALAR && it->value && !strcmp(it->value, names[g])) found = g;
            if (found < 0)
                rc = bad(file, it, "gate", "expected latent, conv, conv1x1, softmax_topk, laplace, hmoe or attention");
            else {
                snprintf(c->gate, sizeof c->gate, "%s", names[found]);
                c->family = found < 3 ? MOE_FAMILY_SMOE : MOE_FAMILY_POINT;
            }
        } else if (!strcmp(k, "experts")) INT("experts", 1, 256, c->experts);
        else if (!strcmp(k, "k")) INT("k", 1, 256, c->k);
        else if (!strcmp(k, "weighted")) BOOL("weighted", c->weighted);
        else if (!strcmp(k, "softmax_before_topk")) BOOL("softmax_before_topk", c->softmax_before_topk);
        else if (!strcmp(k, "noise")) { BOOL("noise", c->noise); c->noise_given = 1; }
        else if (!strcmp(k, "rc_loss"))
            rc = parse_switch_map(it, file, "rc_loss", &c->rc_enabled, &c->rc_quantile, "quantile",
                                  0, 1, &c->rc_error_scale);
        else if (!strcmp(k, "damping"))
            rc = parse_switch_map(it, file, "damping", &c->damping_enabled, &c->damping_factor,
                                  "factor", 0, 1e9, NULL);
        else if (!strcmp(k, "aux")) rc = parse_aux(it, file, c);
        else if (!strcmp(k, "capacity_factor")) {
            if (is_null(it)) c->capacity_factor = 0;
            else FLOAT("capacity_factor", 1e-6, 1e6, c->capacity_factor);
        } else if (!strcmp(k, "hmoe")) rc = parse_hmoe(it, file, c);
        else if (!strcmp(k, "kernel")) INT("kernel", 1, 31, c->kernel);
        else if (!strcmp(k, "expert_hidden")) INT("expert_hidden", 1, 65536, c->expert_hidden);
        else if (!strcmp(k, "expert_kernel")) INT("expert_kernel", 1, 31, c->expert_kernel);
        else if (!strcmp(k, "laplace_bias")) BOOL("laplace_bias", c->laplace_bias);
        else rc = unknown(file, it, "");
    }
    if (rc) return rc;
    if (!c->noise_given) c->noise = c->family == MOE_FAMILY_POINT;
    if (!strcmp(c->gate, "hmoe")) c->experts = c->hmoe_groups * c->hmoe_experts_per_group;
    if (strcmp(c->gate, "hmoe") && c->k > c->experts)
        return sm_fail(SM_ERR_USAGE, "%s:%d: model.moe.k: %d is larger than experts = %d", file,
                       moe->line, c->k, c->experts);
    if (c->family == MOE_FAMILY_SMOE && (c->kernel % 2) == 0)
        return sm_fail(SM_ERR_USAGE, "%s:%d: model.moe.kernel: %d must be odd", file, moe->line, c->kernel);
    return SM_OK;
}

int moe_config_smoe_shape(const moe_config *c, int batch, int c_in, int h, int w, pad_mode pad,
                          smoe_shape *s)
{
    if (c->family != MOE_FAMILY_SMOE)
        return sm_fail(SM_ERR_USAGE, "model.moe.gate: %s is a point gate, not an SMoE gate", c->gate);
    memset(s, 0, sizeof *s);
    s->batch = batch;
    s->c_in = c_in;
    s->h = h;
    s->w = w;
    s->n_experts = c->experts;
    s->k = c->k;
    smoe_shape_defaults(s);
    s->kernel = c->kernel;
    s->pad = pad;
    s->gate = !strcmp(c->gate, "latent") ? SMOE_GATE_LATENT
            : !strcmp(c->gate, "conv") ? SMOE_GATE_CONV : SMOE_GATE_CONV1X1;
    s->weighted = c->weighted;
    s->softmax = c->softmax_before_topk;
    s->noise = c->noise;
    s->rc_loss = c->rc_enabled;
    s->rc_quantile = c->rc_quantile;
    s->rc_error_scale = c->rc_error_scale;
    s->damping = c->damping_enabled;
    s->damping_factor = c->damping_factor;
    return smoe_check(s);
}

int moe_config_pmoe_shape(const moe_config *c, int batch, int c_in, int h, int w, int c_out,
                          pad_mode pad, pmoe_shape *s)
{
    if (c->family != MOE_FAMILY_POINT)
        return sm_fail(SM_ERR_USAGE, "model.moe.gate: %s is an SMoE gate, not a point gate", c->gate);
    memset(s, 0, sizeof *s);
    s->batch = batch;
    s->c_in = c_in;
    s->h = h;
    s->w = w;
    s->c_out = c_out;
    s->n_experts = c->experts;
    s->k = c->k;
    pmoe_shape_defaults(s);
    s->hidden = c->expert_hidden;
    s->kernel = c->expert_kernel;
    s->pad = pad;
    s->gate = !strcmp(c->gate, "softmax_topk") ? PMOE_SOFTMAX_TOPK
            : !strcmp(c->gate, "laplace") ? PMOE_LAPLACE
            : !strcmp(c->gate, "hmoe") ? PMOE_HMOE : PMOE_ATTENTION;
    s->noisy = c->noise;
    s->capacity_factor = c->capacity_factor;
    s->laplace_bias = c->laplace_bias;
    s->groups = c->hmoe_groups;
    s->experts_per_group = c->hmoe_experts_per_group;
    s->k_outer = c->hmoe_k_outer;
    s->k_inner = c->hmoe_k_inner;
    s->outer_kind = c->hmoe_levels[0] == 'L' ? MOE_GATE_LAPLACE : MOE_GATE_SOFTMAX;
    s->inner_kind = c->hmoe_levels[1] == 'L' ? MOE_GATE_LAPLACE : MOE_GATE_SOFTMAX;
    s->sim_pairs = (c->sim_beta_same != 0 || c->sim_beta_diff != 0) ? c->sim_pairs : 0;
    return pmoe_check(s);
}

smoe_aux_weights moe_config_smoe_aux(const moe_config *c)
{
    smoe_aux_weights a = {c->aux_importance, c->aux_load, c->aux_agreement};
    return a;
}

pmoe_aux_weights moe_config_pmoe_aux(const moe_config *c)
{
    pmoe_aux_weights a = {c->aux_importance, c->aux_load, c->aux_switch, c->aux_entropy,
                          c->sim_beta_same, c->sim_beta_diff};
    return a;
}
