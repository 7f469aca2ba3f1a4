/* Learning-rate schedules (constant, step, cosine with warm-up, plateau, one-cycle) and early
 * stopping. */
#include "nn/schedule.h"

#include "core/log.h"

#include <math.h>
#include <string.h>

#define PI_D 3.14159265358979323846
#define PLATEAU_EPS 1e-8 /* torch ReduceLROnPlateau eps */

lr_schedule_config lr_schedule_default_config(lr_kind kind, double base_lr)
{
    lr_schedule_config c;
    memset(&c, 0, sizeof c);
    c.kind = kind;
    c.unit = kind == LR_PLATEAU ? LR_UNIT_EPOCH : LR_UNIT_STEP;
    c.base_lr = base_lr;
    c.gamma = 0.1;
    c.factor = 0.1;
    c.patience = 10;
    c.threshold = 1e-4;
    c.pct_start = 0.3;
    c.div_factor = 25.0;
    c.final_div_factor = 1e4;
    return c;
}

static const char *const lr_names[] = {"constant", "step", "cosine", "plateau", "onecycle"};
#define LR_KINDS ((int)(sizeof lr_names / sizeof lr_names[0]))

int lr_kind_from_name(const char *name, lr_kind *kind)
{
    for (int k = 0; name && k < LR_KINDS; k++) {
        if (strcmp(name, lr_names[k]) == 0) {
            *kind = (lr_kind)k;
            return SM_OK;
        }
    }
    return sm_fail(SM_ERR_USAGE, "lr schedule '%s': unknown; use constant, step, cosine, "
                   "plateau or onecycle", name ? name : "(null)");
}

const char *lr_kind_name(lr_kind kind)
{
    return (int)kind >= 0 && (int)kind < LR_KINDS ? lr_names[kind] : "unknown";
}

int lr_schedule_config_from_training(const training_config *t, int64_t steps_per_epoch,
                                     lr_schedule_config *out)
{
    lr_kind kind = LR_CONSTANT;
    int st = lr_kind_from_name(t->lr_scheduler, &kind);
    if (st) return sm_fail_keep(st, "training.lr_scheduler: '%s' unknown", t->lr_scheduler);
    lr_schedule_config c = lr_schedule_default_config(kind, t->lr);
    c.unit = LR_UNIT_EPOCH;
    c.step_size = t->step_size;
    c.gamma = t->gamma;
    c.warmup = t->warmup_epochs;
    c.total = t->epochs;
    c.warmup_start_factor = 1.0 / (double)(t->warmup_epochs + 1);
    c.min_lr = 0.0;
    c.factor = t->plateau_factor;
    c.patience = t->plateau_patience;
    if (kind == LR_ONECYCLE) {
        c.unit = LR_UNIT_STEP;
        c.total = (int64_t)t->epochs * steps_per_epoch;
        c.pct_start = t->onecycle_pct_start;
        c.div_factor = t->onecycle_div_factor;
        c.final_div_factor = t->onecycle_final_div_factor;
    }
    *out = c;
    return SM_OK;
}

static int check(const lr_schedule_config *c)
{
    if ((int)c->kind < 0 || (int)c->kind >= LR_KINDS)
        return sm_fail(SM_ERR_USAGE, "lr schedule: unknown kind %d", (int)c->kind);
    const char *n = lr_kind_name(c->kind);
    if (!(c->base_lr >= 0) || !isfinite(c->base_lr))
        return sm_fail(SM_ERR_USAGE, "lr schedule %s: base lr %g must be >= 0", n, c->base_lr);
    if (c->unit != LR_UNIT_STEP && c->unit != LR_UNIT_EPOCH)
        return sm_fail(SM_ERR_USAGE, "lr schedule %s: unit must be step or epoch", n);
    switch (c->kind) {
    case LR_CONSTANT:
        break;
    case LR_STEP:
        if (c->step_size < 1)
            return sm_fail(SM_ERR_USAGE, "lr schedule step: step_size %lld must be >= 1",
                           (long long)c->step_size);
        if (!(c->gamma >= 0) || !isfinite(c->gamma))
            return sm_fail(SM_ERR_USAGE, "lr schedule step: gamma %g must be >= 0", c->gamma);
        break;
    case LR_COSINE:
        if (c->warmup < 0 || c->total <= c->warmup)
            return sm_fail(SM_ERR_USAGE, "lr schedule cosine: need 0 <= warmup (%lld) < total "
                           "(%lld)", (long long)c->warmup, (long long)c->total);
        if (!(c->warmup_start_factor >= 0 && c->warmup_start_factor <= 1))
            return sm_fail(SM_ERR_USAGE, "lr schedule cosine: warmup_start_factor %g must be in "
                           "[0, 1]", c->warmup_start_factor);
        if (!(c->min_lr >= 0 && c->min_lr <= c->base_lr))
            return sm_fail(SM_ERR_USAGE, "lr schedule cosine: min_lr %g must be in [0, base lr "
                           "%g]", c->min_lr, c->base_lr);
        break;
    case LR_ONECYCLE:
        if (!(c->pct_start > 0 && c->pct_start < 1))
            return sm_fail(SM_ERR_USAGE, "lr schedule onecycle: pct_start %g must be in (0, 1)",
                           c->pct_start);
        if (!(c->div_factor >= 1) || !isfinite(c->div_factor) || !(c->final_div_factor >= 1) ||
            !isfinite(c->final_div_factor))
            return sm_fail(SM_ERR_USAGE, "lr schedule onecycle: div_factor %g and final_div_factor "
                           "%g must be >= 1", c->div_factor, c->final_div_factor);
        /* the rise needs a step, E = pct T - 1 >= 1 (the fall, T - 1 - E = (1 - pct) T, then has one) */
        if (c->pct_start * (double)c->total - 1.0 < 1.0)
            return sm_fail(SM_ERR_USAGE, "lr schedule onecycle: %lld steps are too few for pct_start %g "
                           "(each phase needs at least one step); train more epochs or steps",
                           (long long)c->total, c->pct_start);
        break;
    case LR_PLATEAU:
        if (c->unit != LR_UNIT_EPOCH)
            return sm_fail(SM_ERR_USAGE, "lr schedule plateau: unit must be epoch");
        if (!(c->factor >= 0 && c->factor < 1))
            return sm_fail(SM_ERR_USAGE, "lr schedule plateau: factor %g must be in [0, 1)",
                           c->factor);
        if (c->patience < 0 || c->cooldown < 0)
            return sm_fail(SM_ERR_USAGE, "lr schedule plateau: patience %d and cooldown %d must "
                           "be >= 0", c->patience, c->cooldown);
        if (!(c->threshold >= 0) || !isfinite(c->threshold))
            return sm_fail(SM_ERR_USAGE, "lr schedule plateau: threshold %g must be >= 0",
                           c->threshold);
        if (!(c->min_lr >= 0))
            return sm_fail(SM_ERR_USAGE, "lr schedule plateau: min_lr %g must be >= 0", c->min_lr);
        break;
    }
    return SM_OK;
}

int lr_schedule_init(lr_schedule *s, const lr_schedule_config *cfg)
{
    int st = check(cfg);
    if (st) return st;
    memset(s, 0, sizeof *s);
    s->cfg = *cfg;
    s->best = INFINITY;
    s->lr = cfg->kind == LR_PLATEAU ? cfg->base_lr : lr_schedule_at(s, 0);
    return SM_OK;
}

double lr_schedule_lr(const lr_schedule *s)
{
    return s->lr;
}

/* from a to b as x goes 0 -> 1 (torch's _annealing_cos) */
static double cos_anneal(double a, double b, double x)
{
    return b + (a - b) * (1.0 + cos(PI_D * x)) / 2.0;
}

double lr_schedule_at(const lr_schedule *s, int64_t t)
{
    const lr_schedule_config *c = &s->cfg;
    if (t < 0) t = 0;
    switch (c->kind) {
    case LR_CONSTANT:
        return c->base_lr;
    case LR_STEP:
        return c->base_lr * pow(c->gamma, (double)(t / c->step_size));
    case LR_COSINE:
        if (t < c->warmup) {
            double f0 = c->warmup_start_factor;
            return c->base_lr * (f0 + (1.0 - f0) * (double)t / (double)c->warmup);
        }
        if (t >= c->total) return c->min_lr;
        return cos_anneal(c->base_lr, c->min_lr, (double)(t - c->warmup) / (double)(c->total - c->warmup));
    case LR_ONECYCLE: {
        double top = c->base_lr, start = top / c->div_factor, end = start / c->final_div_factor;
        double rise_end = c->pct_start * (double)c->total - 1.0, last = (double)(c->total - 1);
        double x = (double)t;
        if (x <= rise_end) return cos_anneal(start, top, x / rise_end);
        if (x >= last) return end;
        return cos_anneal(top, end, (x - rise_end) / (last - rise_end));
    }
    case LR_PLATEAU:
        return s->lr;
    }
    return s->lr;
}

static int plateau_better(const lr_schedule *s, double metric)
{
    if (isnan(metric)) return 0;
    if (s->cfg.threshold_abs) return metric < s->best - s->cfg.threshold;
    return metric < s->best * (1.0 - s->cfg.threshold);
}

double lr_schedule_step(lr_schedule *s, double metric)
{
    s->t++;
    if (s->cfg.kind != LR_PLATEAU) {
        s->lr = lr_schedule_at(s, s->t);
        return s->lr;
    }
    if (plateau_better(s, metric)) {
        s->best = metric;
        s->num_bad = 0;
    } else {
        s->num_bad++;
    }
    if (s->cooldown_counter > 0) {
        s->cooldown_counter--;
        s->num_bad = 0;
    }
    if (s->num_bad > s->cfg.patience) {
        double nl = fmax(s->lr * s->cfg.factor, s->cfg.min_lr);
        if (s->lr - nl > PLATEAU_EPS) s->lr = nl;
        s->cooldown_counter = s->cfg.cooldown;
        s->num_bad = 0;
    }
    return s->lr;
}

int early_stop_init(early_stop *es, int patience, double min_delta)
{
    if (patience < 1)
        return sm_fail(SM_ERR_USAGE, "early stopping: patience %d must be >= 1", patience);
    if (!(min_delta >= 0) || !isfinite(min_delta))
        return sm_fail(SM_ERR_USAGE, "early stopping: min_delta %g must be >= 0", min_delta);
    memset(es, 0, sizeof *es);
    es->patience = patience;
    es->min_delta = min_delta;
    es->best = INFINITY;
    es->best_epoch = -1;
    return SM_OK;
}

int early_stop_update(early_stop *es, double metric, int *improved)
{
    int imp = !isnan(metric) && metric < es->best - es->min_delta;
    if (imp) {
        es->best = metric;
        es->best_epoch = es->epoch;
        es->wait = 0;
    } else {
        es->wait++;
    }
    es->epoch++;
    if (es->wait >= es->patience) es->stopped = 1;
    if (improved) *improved = imp;
    return es->stopped;
}
