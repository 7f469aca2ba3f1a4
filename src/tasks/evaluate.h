/* `smoecast evaluate`: reads forecast files, scores them against a truth dataset beside the
 * baselines computed from that truth, prints a table and writes a scores NetCDF
 * (docs/evaluate.md describes the layout).
 *
 * Inputs (detected from the first forecast file):
 *   deterministic  fields (forecast_reference_time, forecast_period, lat, lon) as written by
 *                  `smoecast forecast`, or (time, lat, lon) with forecast_reference_time scalar or
 *                  (time) and forecast_period scalar or (time) (`--split-by init` files);
 *                  scored with eval/evaluate.h (model, persistence, climatology, damped
 *                  persistence on one shared sample);
 *   gaussian       `<var>_mu` and `<var>_sigma` in either layout (post-processed output);
 *   ensemble       variables with a `realization` dimension (a smoecast dataset of ensemble
 *                  forecasts: time = valid time, lead = forecast_period or opts.lead_hours).
 * The probabilistic inputs are scored with eval/prob_scores.h (CRPS, spread-skill, histograms,
 * coverage, EECRPS with a model climate). */
#ifndef SMOECAST_TASKS_EVALUATE_H
#define SMOECAST_TASKS_EVALUATE_H

#define EVALUATE_MAX_FILES 4096

typedef struct {
    const char **forecasts;     /* forecast files */
    int n_forecasts;
    const char *truth;          /* smoecast dataset */
    const char *baselines;      /* comma list of persistence, climatology, damped-persistence,
                                   or "none"; NULL = all three (deterministic) / none (probabilistic) */
    const char *vars;           /* comma list; NULL = every field of the forecast */
    const char *regions;        /* comma list of region names (eval/regions.h); NULL = global only,
                                   written without a region dimension */
    const char *lsm;            /* "FILE:VAR" land-sea mask; NULL = the truth's static mask */
    const char *train_period;   /* "START/END" (inclusive); NULL = from the forecast's checkpoint */
    const char *climate;        /* model-climate ensemble dataset for the EFI / EECRPS */
    const char *ensemble;       /* raw ensemble dataset giving the EFI of Gaussian forecasts */
    double lead_hours;          /* lead of ensemble datasets without forecast_period; 0 = none */
    const char *out;            /* scores NetCDF (nullable) */
    const char *history;        /* command line */
} evaluate_opts;

typedef struct {
    int n_vars, n_leads, n_regions;
    long n_scored;              /* forecast fields scored (per variable, summed over variables) */
    long n_skipped;             /* forecasts whose init or valid time is not in the truth */
    int probabilistic;          /* 0 deterministic, 1 gaussian, 2 ensemble */
} evaluate_result;

int evaluate_run(const evaluate_opts *o, evaluate_result *result);

#endif
