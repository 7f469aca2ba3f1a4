/* Deterministic scoring session: model vs persistence / climatology / damped persistence on
 * one shared sample, per lead and region; see evaluate.h. */
#include "eval/evaluate.h"

#include "core/log.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct eval_session {
    eval_truth truth;
    int n_lead, n_region;
    double *lead_hours;      /* n_lead */
    eval_region *regions;    /* n_region */
    uint8_t *masks;          /* (n_region, H*W) */
    eval_clim *clim;
    int alpha_n;             /* 1 or H*W */
    double *alpha;           /* (n_lead, alpha_n) */
    eval_det_acc *acc;       /* (EVAL_SRC_COUNT, n_lead, n_region) */
    long *n_fc;              /* n_lead */
    float *scratch;          /* 5 fields: obs-masked sources and climatologies */
};

static const char *const k_src[EVAL_SRC_COUNT] = {"model", "persistence", "climatology",
                                                  "damped_persistence"};
static const char *const k_met[EVAL_M_COUNT] = {"rmse", "rmse_mean_fc", "acc", "bias", "mae"};

const char *eval_source_name(eval_source s)
{
    return (s >= 0 && s < EVAL_SRC_COUNT) ? k_src[s] : "unknown";
}

const char *eval_metric_name(eval_metric m)
{
    return (m >= 0 && m < EVAL_M_COUNT) ? k_met[m] : "unknown";
}

void eval_session_free(eval_session *s)
{
    if (!s) return;
    free(s->lead_hours);
    free(s->regions);
    free(s->masks);
    eval_clim_free(s->clim);
    free(s->alpha);
    free(s->acc);
    free(s->n_fc);
    free(s->scratch);
    free(s);
}

int eval_session_create(const eval_truth *truth, const double *lead_hours, int n_lead,
                        const eval_region *regions, int n_region, eval_session **out)
{
    *out = NULL;
    if (n_lead < 1 || n_region < 1 || truth->T < 1)
        return sm_fail(SM_ERR_USAGE, "evaluate: need at least one lead, region and truth time "
                       "(got %d, %d, %d)", n_lead, n_region, truth->T);
    size_t hw = (size_t)truth->h * truth->w;
    eval_session *s = calloc(1, sizeof *s);
    if (!s) return sm_fail(SM_ERR_NUMERIC, "evaluate: out of memory");
    s->truth = *truth;
    s->n_lead = n_lead;
    s->n_region = n_region;
    s->alpha_n = truth->damped_per_point ? (int)hw : 1;
    s->lead_hours = malloc((size_t)n_lead * sizeof *s->lead_hours);
    s->regions = malloc((size_t)n_region * sizeof *s->regions);
    s->masks = malloc((size_t)n_region * hw);
    s->alpha = malloc((size_t)n_lead * s->alpha_n * sizeof *s->alpha);
    s->acc = malloc((size_t)EVAL_SRC_COUNT * n_lead * n_region * sizeof *s->acc);
    s->n_fc = calloc((size_t)n_lead, sizeof *s->n_fc);
    s->scratch = malloc(5 * hw * sizeof *s->scratch);
    if (!s->lead_hours || !s->regions || !s->masks || !s->alpha || !s->acc || !s->n_fc || !s->scratch) {
        eval_session_free(s);
        return sm_fail(SM_ERR_NUMERIC, "evaluate: out of memory");
    }
    memcpy(s->lead_hours, lead_hours, (size_t)n_lead * sizeof *lead_hours);
    memcpy(s->regions, regions, (size_t)n_region * sizeof *regions);
    for (int r = 0; r < n_region; r++) {
        int st;
        eval_region reg = regions[r];
        if (!truth->lat && reg != EVAL_REGION_GLOBAL && reg != EVAL_REGION_LAND && reg != EVAL_REGION_SEA)
            st = sm_fail(SM_ERR_USAGE, "evaluate: region '%s' needs latitudes (x/y grid?)",
                         eval_region_name(reg));
        else
            st = eval_region_mask(reg, truth->lat, truth->lsm, truth->h, truth->w, s->masks + r * hw);
        if (st != SM_OK) {
            eval_session_free(s);
            return st;
        }
    }
    for (size_t k = 0; k < (size_t)EVAL_SRC_COUNT * n_lead * n_region; k++) eval_det_init(&s->acc[k]);
    /* training slice */
    int i0 = 0, i1 = truth->T - 1;
    while (i0 < truth->T && truth->times[i0] < truth->train_start - 1e-3) i0++;
    while (i1 >= 0 && truth->times[i1] > truth->train_end + 1e-3) i1--;
    if (i1 < i0) {
        eval_session_free(s);
        return sm_fail(SM_ERR_USAGE, "evaluate: no truth time in the training period [%.1f, %.1f] "
                       "h since 1970; the baselines need training data", truth->train_start,
                       truth->train_end);
    }
    int nt = i1 - i0 + 1;
    const double *tt = truth->times + i0;
    const float *td = truth->data + (size_t)i0 * hw;
    int st = eval_clim_fit(tt, td, nt, truth->h, truth->w, &truth->clim, &s->clim);
    for (int l = 0; st == SM_OK && l < n_lead; l++)
        st = eval_damped_fit(s->clim, tt, td, nt, truth->h, truth->w, truth->wlat, lead_hours[l],
                             truth->damped_per_point, s->alpha + (size_t)l * s->alpha_n, NULL);
    if (st != SM_OK) {
        eval_session_free(s);
        return st;
    }
    *out = s;
    return SM_OK;
}

const double *eval_session_alpha(const eval_session *s, int lead)
{
    return s->alpha + (size_t)lead * s->alpha_n;
}

int eval_session_add(eval_session *s, double init, int lead, const float *field, int *skipped)
{
    if (skipped) *skipped = 0;
    if (lead < 0 || lead >= s->n_lead)
        return sm_fail(SM_ERR_USAGE, "evaluate: lead index %d out of range (0..%d)", lead, s->n_lead - 1);
    const eval_truth *t = &s->truth;
    size_t hw = (size_t)t->h * t->w;
    int ki = eval_time_index(t->times, t->T, init);
    int kv = eval_time_index(t->times, t->T, init + s->lead_hours[lead]);
    if (ki < 0 || kv < 0) {
        if (skipped) *skipped = 1;
        return SM_OK;
    }
    const float *obs = t->data + (size_t)kv * hw, *x0 = t->data + (size_t)ki * hw;
    float *pers = s->scratch, *clim_v = pers + hw, *damp = clim_v + hw, *clim_i = damp + hw;
    float *clim_f = clim_i + hw;
    eval_clim_at(s->clim, init + s->lead_hours[lead], clim_v);
    eval_clim_at(s->clim, init, clim_i);
    const double *alpha = eval_session_alpha(s, lead);
    for (size_t p = 0; p < hw; p++) {
        int miss = isnan(field[p]);
        double a = s->alpha_n > 1 ? alpha[p] : alpha[0];
        pers[p] = miss ? NAN : x0[p];
        clim_f[p] = miss ? NAN : clim_v[p];
        damp[p] = miss ? NAN : (float)((double)clim_v[p] + a * ((double)x0[p] - clim_i[p]));
    }
    const float *src[EVAL_SRC_COUNT] = {field, pers, clim_f, damp};
    for (int k = 0; k < EVAL_SRC_COUNT; k++)
        for (int r = 0; r < s->n_region; r++) {
            eval_det_acc *acc = &s->acc[((size_t)k * s->n_lead + lead) * s->n_region + r];
            eval_det_add(acc, src[k], obs, clim_v, t->h, t->w, t->wlat, s->masks + r * hw);
        }
    s->n_fc[lead]++;
    return SM_OK;
}

void eval_session_finish(const eval_session *s, double *out, long *n_fc)
{
    for (int k = 0; k < EVAL_SRC_COUNT; k++)
        for (int l = 0; l < s->n_lead; l++)
            for (int r = 0; r < s->n_region; r++) {
                size_t idx = ((size_t)k * s->n_lead + l) * s->n_region + r;
                eval_det_result res;
                eval_det_finish(&s->acc[idx], &res);
                double *o = out + idx * EVAL_M_COUNT;
                o[EVAL_M_RMSE] = res.rmse;
                o[EVAL_M_RMSE_MEAN_FC] = res.rmse_mean_fc;
                o[EVAL_M_ACC] = res.acc;
                o[EVAL_M_BIAS] = res.bias;
                o[EVAL_M_MAE] = res.mae;
            }
    if (n_fc)
        for (int l = 0; l < s->n_lead; l++) n_fc[l] = s->n_fc[l];
}
