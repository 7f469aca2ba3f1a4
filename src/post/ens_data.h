/* Ensemble post-processing data (METHODS.md section 5): per-point ensemble mean and standard
 * deviation of every predictor read from a smoecast dataset with a `realization` dimension,
 * the verifying truth matched by valid time, the train / validation / test split, the
 * per-point feature normalisation and the optional latitude/longitude features.
 *
 * Conventions (docs/postprocess.md):
 *   - predictors: the target first, then the other configured predictors in order (duplicates
 *     dropped), so predictor 0 is always the target;
 *   - moments: mean over members and standard deviation with divisor M - 1 (the unbiased
 *     member variance, as EMOS and the synthetic generator use); M >= 2 is required;
 *   - a member whose whole field is NaN at some time is an error naming the file, variable,
 *     time and member (an ensemble must have the same members at every time: this is how a
 *     different member count across times or a missing member appears after ingest); a point
 *     that is NaN in some members only gives NaN moments at that point (bitmaps);
 *   - features: channel 2p = mean of predictor p, 2p + 1 = its standard deviation, each
 *     normalised per grid point as (x - time mean) / (time std + 0.1) with the statistics of
 *     the training times; optionally three more channels sin(lat), cos(lat) sin(lon),
 *     cos(lat) cos(lon). */
#ifndef SMOECAST_POST_ENS_DATA_H
#define SMOECAST_POST_ENS_DATA_H

#include "core/config.h"
#include "data/dataset.h"

#include <stddef.h>
#include <stdint.h>

#define ENS_MAX_VARS 16
#define ENS_FEATURE_EPS 0.1   /* (x - mean) / (std + ENS_FEATURE_EPS), METHODS.md 5 */

typedef struct {
    dataset *ds;              /* owned */
    int P;                    /* predictors (0 = target) */
    int var[ENS_MAX_VARS];    /* dataset variable indices */
    char names[ENS_MAX_VARS][80];
    int M;                    /* members */
    int H, W;
    size_t npts;
    int T;                    /* dataset times */
    float *mom;               /* (T, P, 2, npts): mean, standard deviation in physical units */
} ens_data;

/* Ordered predictor list: target first, then `predictors` without duplicates. */
int ens_predictor_list(const char *target, const cfg_strlist *predictors, int *P, char names[][80]);

/* Opens `path` and computes the moments of the P named variables at every time.
 * SM_ERR_IO naming file/variable/time/member for missing variables, variables without members,
 * fewer than 2 members or a missing member. */
int ens_data_load(const char *path, int P, const char names[][80], ens_data *E);
void ens_data_free(ens_data *E);
/* Moments of predictor p at time t: mean / sd pointers (npts each). */
static inline const float *ens_mean(const ens_data *E, int t, int p)
{
    return E->mom + ((size_t)t * E->P + p) * 2 * E->npts;
}
static inline const float *ens_sd(const ens_data *E, int t, int p)
{
    return E->mom + (((size_t)t * E->P + p) * 2 + 1) * E->npts;
}
/* Reads the M members of dataset variable `var` at time t into ens (M, npts), checking for
 * missing members as above. */
int ens_read_members(const dataset *ds, int var, int t, float *ens);

/* Truth of `target` at every valid time of E (T, npts; NaN rows where the truth file has no
 * such time); *n_matched counts the matched times. SM_ERR_IO when the variable is absent
 * (the message lists the file's variables), the grid differs, or no time matches. */
int ens_truth_load(const char *path, const char *target, const ens_data *E, float **truth, int *n_matched);

/* Splits of the time indices of E: config data.{train,val,test}_{start,end} (ISO times,
 * inclusive) when data.train_end is set, else the first 80 % / next 10 % / last 10 % of the
 * times. Only times whose `has_truth[t]` is set are kept (has_truth nullable = all). */
typedef struct {
    int64_t *idx;
    int64_t n;
} ens_split;
int ens_splits(const ens_data *E, const data_config *dc, const uint8_t *has_truth, ens_split *train, ens_split *val,
               ens_split *test);
void ens_split_free(ens_split *s);

/* Feature normalisation: mean, std (2P, npts) over the training times. */
typedef struct {
    int C;                    /* 2P */
    size_t npts;
    float *mean, *std;
} ens_norm;
int ens_norm_compute(const ens_data *E, const int64_t *times, int64_t n, ens_norm *N);
void ens_norm_free(ens_norm *N);

/* Input channels: 2P (+ 3 with latlon). */
static inline int ens_feature_channels(int P, int latlon) { return 2 * P + (latlon ? 3 : 0); }
/* Features of time t into out (C, npts). lat/lon (degrees, H and W values) needed with latlon. */
void ens_features(const ens_data *E, const ens_norm *N, int t, int latlon, const double *lat, const double *lon,
                  float *out);

#endif
