/* `smoecast forecast`: runs a trained checkpoint on a dataset (any dataset on the same grid with
 * the same variables, e.g. another year) and writes CF-1.8 NetCDF forecasts in physical units.
 *
 * Layout (default): every output variable has dims (forecast_reference_time, forecast_period,
 * latitude, longitude) with `time` (valid time) as a 2-D auxiliary coordinate. With
 * split_by_init, one file per initialisation whose only time axis is `time` (valid time), with
 * forecast_reference_time as a scalar coordinate and forecast_period(time): the layout CDO
 * handles best. Leads beyond the model step are reached by autoregressive rollout. */
#ifndef SMOECAST_TASKS_FORECAST_H
#define SMOECAST_TASKS_FORECAST_H

#include <stdint.h>

typedef struct {
    const char *checkpoint;
    const char *dataset;
    const char *inits;        /* "all", comma list of ISO times, ranges "START/END" */
    const char *leads;        /* comma list of durations: "6h,24h", "1d,3d,5d" */
    const char *out;          /* output file (split_by_init: a name with {init}, or a base name) */
    int split_by_init;
    int write_experts;        /* add expert maps of MoE layers (see tasks/experts.h) */
    int threads;              /* 0: OMP_NUM_THREADS / all cores */
    const char *history;      /* command line for the history attribute (nullable) */
} forecast_opts;

typedef struct {
    int n_inits, n_leads, n_files;
} forecast_result;

int forecast_run(const forecast_opts *o, forecast_result *result);

/* Parses a comma-separated list of durations into hours (at most max). */
int forecast_parse_leads(const char *text, double *hours, int max, int *n);

#endif
