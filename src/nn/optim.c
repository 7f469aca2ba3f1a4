/* SGD (momentum, nesterov), Adam, AdamW and gradient clipping over a param_store. */
#include "nn/optim.h"

#include "core/log.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Elementwise loops over tensors at least this long use the OpenMP team (static schedule:
 * every element is computed the same way whatever the thread count). */
#define OPTIM_PAR_MIN 32768

optim_config optim_default_config(optim_kind kind)
{
    optim_config c;
    memset(&c, 0, sizeof c);
    c.kind = kind;
    c.lr = 1e-3;
    c.beta1 = 0.9;
    c.beta2 = 0.999;
    c.eps = 1e-8;
    c.weight_decay = kind == OPTIM_ADAMW ? 1e-2 : 0.0;
    c.gate_lr_scale = 1.0;
    return c;
}

static const char *const kind_names[] = {"sgd", "adam", "adamw"};

int optim_kind_from_name(const char *name, optim_kind *kind)
{
    for (int k = 0; name && k < 3; k++) {
        if (strcmp(name, kind_names[k]) == 0) {
            *kind = (optim_kind)k;
            return SM_OK;
        }
    }
    return sm_fail(SM_ERR_USAGE, "optimizer '%s': unknown; use sgd, adam or adamw",
                   name ? name : "(null)");
}

const char *optim_kind_name(optim_kind kind)
{
    return (unsigned)kind < 3 ? kind_names[kind] : "unknown";
}

int optim_config_from_training(const training_config *t, optim_config *out)
{
    optim_kind kind = OPTIM_ADAM;
    int st = optim_kind_from_name(t->optimizer, &kind);
    if (st) return sm_fail_keep(st, "training.optimizer: '%s' unknown", t->optimizer);
    optim_config c = optim_default_config(kind);
    c.lr = t->lr;
    c.weight_decay = t->weight_decay;
    c.momentum = kind == OPTIM_SGD ? t->momentum : 0.0;
    c.beta1 = t->beta1;
    c.beta2 = t->beta2;
    c.eps = t->eps;
    c.gate_lr_scale = t->gate_lr_scale;
    *out = c;
    return SM_OK;
}

static int check_config(const optim_config *c)
{
    if ((unsigned)c->kind > OPTIM_ADAMW)
        return sm_fail(SM_ERR_USAGE, "optimizer: unknown kind %d", (int)c->kind);
    const char *name = optim_kind_name(c->kind);
    if (!(c->lr >= 0) || !isfinite(c->lr))
        return sm_fail(SM_ERR_USAGE, "optimizer %s: lr %g must be a finite number >= 0", name, c->lr);
    if (!(c->gate_lr_scale >= 0) || !isfinite(c->gate_lr_scale))
        return sm_fail(SM_ERR_USAGE, "optimizer %s: gate_lr_scale %g must be a finite number >= 0",
                       name, c->gate_lr_scale);
    if (!(c->weight_decay >= 0) || !isfinite(c->weight_decay))
        return sm_fail(SM_ERR_USAGE, "optimizer %s: weight_decay %g must be >= 0", name,
                       c->weight_decay);
    if (c->kind == OPTIM_SGD) {
        if (!(c->momentum >= 0) || !isfinite(c->momentum))
            return sm_fail(SM_ERR_USAGE, "optimizer sgd: momentum %g must be >= 0", c->momentum);
        if (!(c->dampening >= 0 && c->dampening <= 1))
            return sm_fail(SM_ERR_USAGE, "optimizer sgd: dampening %g must be in [0, 1]",
                           c->dampening);
        if (c->nesterov && (c->momentum <= 0 || c->dampening != 0))
            return sm_fail(SM_ERR_USAGE, "optimizer sgd: nesterov needs momentum > 0 and "
                           "dampening 0 (momentum %g, dampening %g)", c->momentum, c->dampening);
    } else {
        if (!(c->beta1 >= 0 && c->beta1 < 1))
            return sm_fail(SM_ERR_USAGE, "optimizer %s: beta1 %g must be in [0, 1)", name, c->beta1);
        if (!(c->beta2 >= 0 && c->beta2 < 1))
            return sm_fail(SM_ERR_USAGE, "optimizer %s: beta2 %g must be in [0, 1)", name, c->beta2);
        if (!(c->eps >= 0) || !isfinite(c->eps))
            return sm_fail(SM_ERR_USAGE, "optimizer %s: eps %g must be >= 0", name, c->eps);
    }
    return SM_OK;
}

int optim_create(optim **out, param_store *store, const optim_config *cfg)
{
    *out = NULL;
    if (!param_store_is_finalized(store))
        return sm_fail(SM_ERR_USAGE, "optimizer: the parameter store is not finalized");
    int st = check_config(cfg);
    if (st) return st;
    optim *o = calloc(1, sizeof *o);
    if (!o) return sm_fail(SM_ERR_NUMERIC, "optimizer: out of memory");
    o->cfg = *cfg;
    o->store = store;
    o->size = param_store_size(store);
    size_t n = o->size ? o->size : 1;
    int need_m = cfg->kind != OPTIM_SGD || cfg->momentum != 0;
    int need_v = cfg->kind != OPTIM_SGD;
    if (need_m) o->m = calloc(n, sizeof(float));
    if (need_v) o->v = calloc(n, sizeof(float));
    if ((need_m && !o->m) || (need_v && !o->v)) {
        size_t size = o->size;
        optim_free(o);
        return sm_fail(SM_ERR_NUMERIC, "optimizer: out of memory for state of %zu parameters",
                       size);
    }
    *out = o;
    return SM_OK;
}

void optim_free(optim *opt)
{
    if (!opt) return;
    free(opt->m);
    free(opt->v);
    free(opt);
}

void optim_set_lr(optim *opt, double lr)
{
    opt->cfg.lr = lr;
}

double optim_get_lr(const optim *opt)
{
    return opt->cfg.lr;
}

void optim_reset(optim *opt)
{
    if (opt->m) memset(opt->m, 0, opt->size * sizeof(float));
    if (opt->v) memset(opt->v, 0, opt->size * sizeof(float));
    opt->step = 0;
}

static void sgd_tensor(const optim *o, float *p, const float *g, float *buf, size_t n, float wd,
                       int first, double group_lr)
{
    const optim_config *c = &o->cfg;
    const float lr = (float)group_lr, mom = (float)c->momentum, damp = (float)(1.0 - c->dampening);
    const int nesterov = c->nesterov;
#pragma omp parallel for schedule(static) if (n >= OPTIM_PAR_MIN)
    for (size_t k = 0; k < n; k++) {
        float d = g[k];
        if (wd != 0.0f) d += wd * p[k];
        if (buf) {
            float b = first ? d : mom * buf[k] + damp * d;
            buf[k] = b;
            d = nesterov ? d + mom * b : b;
        }
        p[k] -= lr * d;
    }
}

static void adam_tensor(const optim *o, float *p, const float *g, float *m, float *v, size_t n,
                        float l2, float decoupled, float step_size, float bc2_sqrt)
{
    const float b1 = (float)o->cfg.beta1, b2 = (float)o->cfg.beta2;
    const float a1 = (float)(1.0 - o->cfg.beta1), a2 = (float)(1.0 - o->cfg.beta2);
    const float eps = (float)o->cfg.eps;
#pragma omp parallel for schedule(static) if (n >= OPTIM_PAR_MIN)
    for (size_t k = 0; k < n; k++) {
        float pk = p[k];
        float gk = g[k];
        if (decoupled != 1.0f) pk *= decoupled;
        if (l2 != 0.0f) gk += l2 * p[k];
        float mk = m[k] * b1 + a1 * gk;
        float vk = v[k] * b2 + a2 * gk * gk;
        m[k] = mk;
        v[k] = vk;
        float denom = sqrtf(vk) / bc2_sqrt + eps;
        p[k] = pk - step_size * (mk / denom);
    }
}

void optim_step(optim *opt)
{
    param_store *s = opt->store;
    const optim_config *c = &opt->cfg;
    float *data = param_store_data_all(s), *grad = param_store_grad_all(s);
    int count = param_store_count(s);
    int first = opt->step == 0;
    opt->step++;
    double t = (double)opt->step;
    double bc1 = 1.0 - pow(c->beta1, t), bc2 = 1.0 - pow(c->beta2, t);
    float bc2_sqrt = (float)sqrt(bc2);
    for (int id = 0; id < count; id++) {
        const param_view *pv = param_store_view(s, id);
        if (!(pv->flags & PARAM_TRAINABLE)) continue;
        int decay = (pv->flags & PARAM_DECAY) && c->weight_decay != 0;
        /* the tensor's param group: gates at lr * gate_lr_scale, everything else at lr */
        double lr = (pv->flags & PARAM_GATE) ? c->lr * c->gate_lr_scale : c->lr;
        float step_size = (float)(lr / bc1);
        float *p = data + pv->offset;
        const float *g = grad + pv->offset;
        switch (c->kind) {
        case OPTIM_SGD:
            sgd_tensor(opt, p, g, opt->m ? opt->m + pv->offset : NULL, pv->numel,
                       decay ? (float)c->weight_decay : 0.0f, first, lr);
            break;
        case OPTIM_ADAM:
            adam_tensor(opt, p, g, opt->m + pv->offset, opt->v + pv->offset, pv->numel,
                        decay ? (float)c->weight_decay : 0.0f, 1.0f, step_size, bc2_sqrt);
            break;
        case OPTIM_ADAMW:
            adam_tensor(opt, p, g, opt->m + pv->offset, opt->v + pv->offset, pv->numel, 0.0f,
                        decay ? (float)(1.0 - lr * c->weight_decay) : 1.0f, step_size,
                        bc2_sqrt);
            break;
        }
    }
}

double optim_grad_norm(param_store *store)
{
    const float *grad = param_store_grad_all(store);
    if (!grad) return 0.0;
    double ss = 0.0;
    int count = param_store_count(store);
    for (int id = 0; id < count; id++) {
        const param_view *pv = param_store_view(store, id);
        if (!(pv->flags & PARAM_TRAINABLE)) continue;
        const float *g = grad + pv->offset;
        for (size_t k = 0; k < pv->numel; k++) ss += (double)g[k] * g[k];
    }
    return sqrt(ss);
}

double optim_clip_grad_norm(param_store *store, double max_norm)
{
    double total = optim_grad_norm(store);
    if (!isfinite(total)) return total;
    double coef = max_norm / (total + 1e-6);
    if (coef >= 1.0) return total;
    float cf = (float)coef;
    float *grad = param_store_grad_all(store);
    int count = param_store_count(store);
    for (int id = 0; id < count; id++) {
        const param_view *pv = param_store_view(store, id);
        if (!(pv->flags & PARAM_TRAINABLE)) continue;
        float *g = grad + pv->offset;
        for (size_t k = 0; k < pv->numel; k++) g[k] *= cf;
    }
    return total;
}
