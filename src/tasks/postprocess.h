/* `smoecast postprocess fit` / `apply`: ensemble post-processing (METHODS.md section 5,
 * docs/postprocess.md).
 *
 * fit: reads the ensemble forecast dataset (postprocess.forecast, members on `realization`)
 *   and the truth dataset (postprocess.truth), splits the valid times (data.train_* / val_* /
 *   test_*), fits the method and writes into output.dir:
 *     raw   nothing is fitted; only the scores of the raw ensemble
 *     emos  emos.nc (emos_file.h), global or per grid point (postprocess.emos_scope)
 *   and scores_<method>.json: the probabilistic scores on the test times (the validation
 *   times when there is no test time), with EECRPS when postprocess.climate is given.
 * apply: calibrates an ensemble dataset with a fitted model and writes the CF output of
 *   post/post_output.h. */
#ifndef SMOECAST_TASKS_POSTPROCESS_H
#define SMOECAST_TASKS_POSTPROCESS_H

#include "core/config.h"

typedef struct {
    double crps, crps_fair, rmse, spread, ssr, coverage80, eecrps;
    long n_times;
} postprocess_scores;

/* history: the command line (nullable). scores (nullable) receives the test scores. */
int postprocess_fit(const sm_config *cfg, int resume, const char *history, postprocess_scores *scores);

typedef struct {
    const char *model;        /* emos.nc or a neural checkpoint */
    const char *forecast;     /* ensemble dataset */
    const char *out;
    const char *var;          /* forecast variable to calibrate (NULL: the model's target) */
    const char *quantiles;    /* "10,50,90" or NULL */
    int members;              /* calibrated members (0: none) */
    double lead_hours;        /* NaN: from the dataset */
    double sigma_floor;       /* NaN: the model's */
    const char *history;
    int threads;
} postprocess_apply_opts;

int postprocess_apply(const postprocess_apply_opts *o);

#endif
