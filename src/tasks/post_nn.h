/* Neural post-processing methods (mlp, unet, smoe): networks on the per-point ensemble
 * features (post/ens_data.h) with the ENS-10 head mu = o0 * s_ens + m_ens,
 * sigma = exp(o1) * s_ens (s_ens, m_ens: raw ensemble std and mean of the target), trained
 * with the Gaussian CRPS through the shared training engine (tasks/train_engine.h):
 * checkpoints best.nc / last.nc, --resume, progress, metrics.jsonl in output.dir. */
#ifndef SMOECAST_TASKS_POST_NN_H
#define SMOECAST_TASKS_POST_NN_H

#include "core/config.h"
#include "post/ens_data.h"

typedef struct post_nn post_nn;

/* Trains method cfg->postprocess.method on E (predictor 0 = target) against truth (T, npts);
 * returns the best model (for scoring) in *out. */
int post_nn_fit(const sm_config *cfg, int resume, const ens_data *E, const float *truth, const ens_split *train,
                const ens_split *val, post_nn **out);
/* predict_fn for the fit's scores: mu, sigma (npts) of time t of the E given to post_nn_fit. */
int post_nn_predict(void *nn, int t, float *mu, float *sigma);
void post_nn_free(post_nn *nn);

/* Loads a checkpoint written by post_nn_fit for `postprocess apply`. */
int post_nn_load(const char *path, post_nn **out);
const char *post_nn_target(const post_nn *nn);
const char *post_nn_method(const post_nn *nn);
const char *post_nn_period(const post_nn *nn);
double post_nn_sigma_floor(const post_nn *nn);
/* Predictor names (target first); returns their number. */
int post_nn_predictors(const post_nn *nn, char names[][80]);
int post_nn_check_grid(post_nn *nn, const ens_data *E, const char *path);
/* mu, sigma (npts) of time t of E with sigma >= floor. */
int post_nn_apply(post_nn *nn, const ens_data *E, int t, double floor, float *mu, float *sigma);

#endif
