/* The deterministic scoring loop of `smoecast evaluate` for one variable: model forecasts are
 * fed one field at a time (init time, lead) and scored beside the baselines computed from the
 * truth (persistence, climatology, damped anomaly persistence) on exactly the same sample,
 * per lead time and region. The caller (the CLI) reads files and writes the scores NetCDF with
 * dims (metric, variable, lead_time[, region]); this module does the arithmetic only.
 *
 * The truth is one (T, H, W) series with strictly ascending times (hours since 1970) covering
 * the training period (for the baselines) and the verification period. */
#ifndef SMOECAST_EVAL_EVALUATE_H
#define SMOECAST_EVAL_EVALUATE_H

#include "eval/baselines.h"
#include "eval/regions.h"
#include "eval/scores.h"

/* Sources, in the order of the output array. */
typedef enum {
    EVAL_SRC_MODEL = 0,
    EVAL_SRC_PERSISTENCE,
    EVAL_SRC_CLIMATOLOGY,
    EVAL_SRC_DAMPED,
    EVAL_SRC_COUNT
} eval_source;

/* Metrics, in the order of the output array; names as on the scores NetCDF `metric` axis. */
typedef enum {
    EVAL_M_RMSE = 0,       /* headline: time mean before the root */
    EVAL_M_RMSE_MEAN_FC,   /* mean over forecasts of per-forecast RMSE */
    EVAL_M_ACC,
    EVAL_M_BIAS,
    EVAL_M_MAE,
    EVAL_M_COUNT
} eval_metric;

const char *eval_source_name(eval_source s);   /* "model", "persistence", "climatology", "damped_persistence" */
const char *eval_metric_name(eval_metric m);   /* "rmse", "rmse_mean_fc", "acc", "bias", "mae" */

typedef struct {
    const double *times;     /* T */
    const float *data;       /* (T, H, W) */
    int T, h, w;
    const double *lat;       /* H latitudes (regions); NULL only if every region is global/land/sea */
    const double *wlat;      /* H row weights, NULL = 1 */
    const float *lsm;        /* H*W land-sea mask, NULL if none */
    double train_start, train_end;   /* training period, inclusive, hours since 1970 */
    eval_clim_opts clim;     /* climatology options (baselines.h) */
    int damped_per_point;    /* damped persistence alpha per grid point (1) or global (0) */
} eval_truth;

typedef struct eval_session eval_session;

/* Fits the climatology on the training period and damped-persistence alpha for every lead.
 * regions: n_region region ids (EVAL_REGION_GLOBAL for the whole domain). The truth arrays
 * must stay valid until eval_session_free. Errors: no training time, a region that needs an
 * absent land-sea mask or latitudes, a lead with no training pair (SM_ERR_USAGE). */
int eval_session_create(const eval_truth *truth, const double *lead_hours, int n_lead,
                        const eval_region *regions, int n_region, eval_session **out);
void eval_session_free(eval_session *s);
/* Scores one model field (H x W) for init time `init` and lead index `lead`. Points where the
 * model field is NaN are left out of every source, so all sources share one sample. When the
 * init or the valid time is not in the truth, the field is not scored, *skipped (nullable)
 * is set to 1 and SM_OK returned; the CLI reports the count. */
int eval_session_add(eval_session *s, double init, int lead, const float *field, int *skipped);
/* out[((src * n_lead + lead) * n_region + region) * EVAL_M_COUNT + metric]; NaN where a
 * score is undefined. n_fc (nullable) receives per lead the number of forecasts scored. */
void eval_session_finish(const eval_session *s, double *out, long *n_fc);
/* Fitted damped-persistence alpha of a lead: 1 value, or H*W with damped_per_point. */
const double *eval_session_alpha(const eval_session *s, int lead);

#endif
