/* Forecast samples drawn from a dataset: which fields form the input and target channels, the
 * normalisation statistics (computed over the training period only), the train / validation /
 * test initialisation times, and batch assembly into the model's input and target buffers.
 *
 * Channel layout (C_in), for an initialisation time t and model step s:
 *   for h = 0 .. history-1: every prognostic variable at t - h * dt   (dt = data.history_step if
 *                           given, else the dataset time step; the model step for
 *                           autoregressive models, data.step)
 *   data.recent_days = D > 0: every prognostic variable as the mean of its D most recent fields at
 *                           the hour of day of t, then the same at the hour of t + s, counting only
 *                           fields at or before the information time (the forecast's initial time;
 *                           t itself for a training sample) and at least a day before the hour
 *   every forcing field from the dataset (time-dependent at t + s, static as is)
 *   computed forcings: hour_of_day -> sin, cos at t and at t + s; day_of_year -> the same
 *   computed static maps of a lat-lon grid (after the phases, in config order), which let a
 *   translation-invariant convolution tell places apart: latitude -> sin(lat);
 *   longitude -> sin(lon), cos(lon)
 *   multi-lead direct models (data.leads): one more channel, the lead divided by the longest lead
 * Targets (C_out): prognostic variables at t + s, then diagnostic variables at t + s.
 *   With data.tendency, a prognostic target is (x(t+s) - x(t)) / tend_std (the forecast adds
 *   it back); otherwise and for diagnostics (x(t+s) - mean) / std.
 * With data.relative_inputs the prognostic history channels carry no absolute level: h = 0 is
 *   (x(t) - its domain mean) / std, h > 0 and the recent-day means are (x - x(t)) / tend_std.
 * Other inputs are (x - mean) / std with the statistics of the training period: per variable
 * (`global`: mean over time and space; std = the time standard deviation averaged over space,
 * as WeatherBench) or per grid point. NaN inputs are an error naming variable and time; NaN
 * targets stay NaN (the losses mask them).
 *
 * Multi-lead direct models (data.leads, no data.step) learn every listed lead with one network:
 * the step s of a sample is its own lead. Training samples cover every (init, lead) pair and are
 * encoded as idx = t + (j + 1) * ntimes for lead j; a plain time index idx < ntimes means the
 * primary lead (data.lead_time = step_hours). Validation and test splits hold every (init, lead)
 * pair too (encoded the same way; samples_decode gives a sample's time and lead), so that early
 * stopping weighs every lead. The tendency scale tend_std is the one of the primary lead for
 * every lead, unless data.lead_tendency_scale gives each lead its own (tend_std_lead;
 * samples_tendency_scale picks the one of a sample). */
#ifndef SMOECAST_DATA_SAMPLES_H
#define SMOECAST_DATA_SAMPLES_H

#include "core/config.h"
#include "data/dataset.h"

#include <stddef.h>
#include <stdint.h>

#define SAMPLES_MAX_VARS 32
#define SAMPLES_MAX_LEADS 16
#define SAMPLES_MAX_RECENT_DAYS 14

typedef enum { FORCING_FIELD = 0, FORCING_HOUR_OF_DAY, FORCING_DAY_OF_YEAR, FORCING_LATITUDE, FORCING_LONGITUDE } forcing_kind;

/* Per-variable normalisation statistics, stored in checkpoints by variable name. */
typedef struct {
    int nvars;
    int npts;                            /* 1 (global) or H * W (per point) */
    char names[SAMPLES_MAX_VARS][80];
    float *mean;                         /* nvars * npts */
    float *std;                          /* nvars * npts */
    float tend_std[SAMPLES_MAX_VARS];    /* std of the one-step change (prognostic variables) */
    /* data.lead_tendency_scale: std of the change over lead j of prognostic i at
     * [j * n_prog + i] (contiguous n_leads x n_prog, as stored in checkpoints) */
    float tend_std_lead[SAMPLES_MAX_LEADS * SAMPLES_MAX_VARS];
} norm_stats;

typedef struct {
    /* variables (indices into the dataset) */
    int n_prog, n_diag, n_forc;
    int prog_var[SAMPLES_MAX_VARS], diag_var[SAMPLES_MAX_VARS];
    forcing_kind forc_kind[SAMPLES_MAX_VARS];
    int forc_var[SAMPLES_MAX_VARS];      /* dataset index for FORCING_FIELD, else -1 */
    int history;
    double step_hours;                   /* model step: lead (direct) or base step (autoregressive) */
    double lead_hours;                   /* configured lead time */
    double dt_hours;                     /* spacing of history inputs: the dataset time step for
                                            direct models, the model step for autoregressive ones */
    int tendency;
    int lead_tendency;                   /* data.lead_tendency_scale (multi-lead models only) */
    int relative_inputs;                 /* data.relative_inputs: level-free prognostic inputs */
    int recent_days;                     /* data.recent_days: days in the recent diurnal means (0 = off) */
    int n_leads;                         /* multi-lead direct model: number of leads (0 = off) */
    double leads[SAMPLES_MAX_LEADS];     /* its leads in hours (one of them is lead_hours) */
    int c_in, c_out, h, w;
    int n_coord;                         /* channels of coords: 1 per latitude, 2 per longitude forcing */
    float *coords;                       /* latitude / longitude channels in forcing order */
    norm_stats stats;                    /* names: prognostic, diagnostic, forcing fields */
} sample_layout;

typedef struct {
    int64_t *idx;                        /* dataset time indices of the initialisation times */
    int64_t n;
    double start, end;                   /* hours since 1970-01-01 (inclusive) */
} sample_split;

/* Parses "6h", "1d", "30m", "90" (hours) into hours. SM_ERR_USAGE naming `key` otherwise. */
int samples_parse_duration(const char *text, const char *key, double *hours);

/* The layout for a config and dataset: resolves variable names (naming the config key and
 * listing the dataset's variables when one is missing), lead/step, channel counts. */
int samples_layout_init(sample_layout *L, const data_config *dc, const dataset *ds);
void samples_layout_free(sample_layout *L);

/* Split boundaries from the config (ISO times), else from the dataset's global attributes
 * smoecast_{train,val,test}_period ("START/END"), else 80/10/10 % of the time axis. Only
 * initialisation times whose inputs and target all lie inside the split are kept. */
int samples_splits(const sample_layout *L, const data_config *dc, const dataset *ds, sample_split *train,
                   sample_split *val, sample_split *test);
void samples_split_free(sample_split *s);
/* Initialisation times usable by a model step inside [start, end] (used for forecasting too). */
int samples_valid_inits(const sample_layout *L, const dataset *ds, double start, double end, sample_split *out);

/* A cache of raw fields (physical units) read from the dataset on first use. */
typedef struct sample_cache sample_cache;

/* Normalisation statistics over every dataset time inside the training period; per_point 1 =
 * per grid point, 0 = per variable, -1 = none (mean 0, std 1). */
int samples_compute_stats(sample_layout *L, sample_cache *cache, const sample_split *train, int per_point);
int sample_cache_create(const dataset *ds, sample_cache **out);
void sample_cache_free(sample_cache *c);
/* Field (var, t) of ds->nlat * ds->nlon floats; NULL after sm_fail on a read error. */
const float *sample_cache_get(sample_cache *c, int var, int t);

/* Fills `input` (n, C_in, H, W) and `target` (n, C_out, H, W; may be NULL) for the
 * initialisation time indices `inits`. SM_ERR_IO on read errors or NaN inputs. */
int samples_assemble(const sample_layout *L, sample_cache *cache, const int64_t *inits, int n, float *input,
                     float *target);

/* One input (C_in, H, W) at time t0 (hours) from raw prognostic fields given as pointers
 * prog_hist[h * n_prog + i] (history h, variable i), e.g. the previous step of an autoregressive
 * forecast; forcings come from the dataset at t0 + step. t_info is the time of the last analysed
 * state (the rollout's initial time; t0 for the first step): the recent-day means read no field
 * after it. */
int samples_assemble_state(const sample_layout *L, sample_cache *cache, double t0, double t_info, const float *const *prog_hist,
                           float *input);

/* The same at lead `lead_hours` of a multi-lead direct model (forcings at t0 + lead_hours). */
int samples_assemble_state_lead(const sample_layout *L, sample_cache *cache, double t0, double lead_hours,
                                const float *const *prog_hist, float *input);
/* Index of `hours` in L->leads, -1 when the model was not trained for it (or is not multi-lead). */
int samples_lead_index(const sample_layout *L, double hours);
/* Splits a sample index into the dataset time index and the sample's lead (see above). */
void samples_decode(const sample_layout *L, const dataset *ds, int64_t idx, int64_t *t, double *lead_hours);

/* Raw prognostic fields of the history of an initialisation time index (checked for NaN). */
int samples_prognostic_history(const sample_layout *L, sample_cache *cache, int64_t init, const float **prog_hist);

/* Comma-separated input variables (prognostic then forcing names) and output variables
 * (prognostic then diagnostic), as stored in checkpoints and checked when they are loaded. */
void samples_variable_lists(const sample_layout *L, const dataset *ds, char *inputs, size_t in_len, char *outputs, size_t out_len);

/* Hour-of-day / day-of-year phase features at `hours` in the dataset calendar. */
void samples_time_features(double hours, const char *calendar, double *hour_phase, double *doy_phase);

/* Converts normalised model outputs of one sample (C_out, H, W) into physical fields, given the
 * raw prognostic state at the initialisation time (n_prog, H, W) for tendencies. */
void samples_denormalise(const sample_layout *L, const float *output, const float *state0, float *physical);
/* The same for a sample at lead `lead_hours` (multi-lead models with per-lead tendency scales). */
void samples_denormalise_lead(const sample_layout *L, const float *output, const float *state0, double lead_hours,
                              float *physical);
/* Tendency scale of prognostic variable i for a sample at lead `lead_hours`. */
float samples_tendency_scale(const sample_layout *L, int i, double lead_hours);
/* Autoregressive rollout: shifts a raw prognostic history (history x n_prog fields, newest
 * first) back by one step and puts the new state (n_prog, H, W) in front. */
void samples_push_state(const sample_layout *L, float *history, const float *state);

#endif
