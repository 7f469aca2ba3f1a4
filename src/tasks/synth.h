/* The built-in synthetic data sets of `smoecast synth` (equations in docs/synthetic.md):
 *   heat            - the reference heat-diffusion task of METHODS.md section 2 (x/y grid)
 *   toy-atmosphere  - 6-hourly global z500/t850/t2m + land-sea mask on the 5.625 deg grid,
 *                     with dynamics that differ by land/sea and latitude band
 *   ensemble        - 10-member 48 h forecasts of the toy atmosphere with region-dependent bias
 *                     and under-dispersion, the verifying truth and a model climate.
 * Every generator is a pure function of its options and seed (core/rng.h, one stream per
 * purpose), so the same seed gives the same bytes. */
#ifndef SMOECAST_TASKS_SYNTH_H
#define SMOECAST_TASKS_SYNTH_H

#include "core/rng.h"

#include <stdint.h>

/* RNG stream identifiers (one per purpose). */
enum {
    SYNTH_STREAM_HEAT_MAP = 0x100,
    SYNTH_STREAM_HEAT_RUN = 0x10000, /* + run index */
    SYNTH_STREAM_LSM = 0x200,
    SYNTH_STREAM_ATMOS_NOISE = 0x210, /* + variable index */
    SYNTH_STREAM_ENS_INIT = 0x1000000, /* + init hours since 1970 / 6: member errors */
    SYNTH_STREAM_ENS_EMOS = 0x2000000  /* + init hours since 1970 / 6: EMOS-variant truth */
};

/* Unit-variance spatially correlated noise on the 32 x 64 grid: white N(0, 1) smoothed by two
 * 1-2-1 passes in each direction (periodic in longitude) and renormalised. */
void synth_smooth_noise(rng_t *rng, double *xi, double *tmp);

/* ================= heat ================= */

#define SYNTH_HEAT_REGIONS 3
extern const double synth_heat_diffusivity[SYNTH_HEAT_REGIONS]; /* 0.0025, 0.025, 0.25 */

typedef struct {
    uint64_t seed;
    int ny, nx;      /* 64 x 64 */
    int steps;       /* 100 time steps -> steps + 1 stored states per run */
    int runs_train;  /* reference 1000 */
    int runs_val;    /* reference 20 */
    int runs_test;   /* reference 20 */
} synth_heat_opts;

void synth_heat_defaults(synth_heat_opts *o);
/* Region map (ny * nx, values 0..nregions-1): one random seed cell per region, then every free
 * cell repeatedly takes the region of a random already-assigned 4-neighbour until full. */
int synth_heat_region_map(rng_t *rng, int ny, int nx, int nregions, int *region);
/* One explicit step: out = (1 - 4 d_c) u_c + d_c (u_n + u_s + u_w + u_e), d_c the centre cell's
 * diffusivity, zero outside the grid. */
void synth_heat_step(const float *u, float *out, const float *diff, int ny, int nx);
/* The region map and per-cell diffusivity of a seed (either may be NULL). */
int synth_heat_map(const synth_heat_opts *o, int *region, float *diffusivity);
/* Run `run` (0-based over train, val, test): (steps + 1) * ny * nx states. Independent of the
 * number of runs (each run has its own RNG stream). */
int synth_heat_run(const synth_heat_opts *o, const int *region, const float *diffusivity, int run, float *states);
/* Writes DIR/heat.nc. */
int synth_heat_write(const synth_heat_opts *o, const char *dir);

/* ================= toy atmosphere ================= */

#define SYNTH_NLAT 32
#define SYNTH_NLON 64
#define SYNTH_NPTS (SYNTH_NLAT * SYNTH_NLON)
#define SYNTH_NVARS 3 /* z500, t850, t2m */
#define SYNTH_DT_HOURS 6

typedef struct {
    uint64_t seed;
    int start_year; /* first stored time: start_year-01-01 00Z (default 2000) */
    int years;      /* default 3 */
    int days;       /* > 0: store only the first `days` days from start_year-01-01 (overrides years) */
    int spinup_steps; /* steps run before the first stored time (default 120 = 30 days) */
} synth_atmos_opts;

void synth_atmos_defaults(synth_atmos_opts *o);

typedef struct synth_atmos synth_atmos;
/* Builds the grid, land-sea mask, and spins the anomalies up to the first stored time. */
int synth_atmos_create(const synth_atmos_opts *o, synth_atmos **out);
void synth_atmos_free(synth_atmos *a);
int64_t synth_atmos_nsteps(const synth_atmos *a);  /* stored times */
int64_t synth_atmos_hours(const synth_atmos *a);   /* current time, hours since 1970 */
void synth_atmos_advance(synth_atmos *a);          /* one 6-hour step */
/* Current full fields (SYNTH_NVARS * SYNTH_NPTS: z500, t850, t2m). */
void synth_atmos_fields(const synth_atmos *a, float *out);
/* Climatology of variable v (0..2) at time `hours` (SYNTH_NPTS values). */
void synth_atmos_climatology(const synth_atmos *a, int v, int64_t hours, double *out);
const float *synth_atmos_lsm(const synth_atmos *a);
const double *synth_atmos_lat(const synth_atmos *a);
const double *synth_atmos_lon(const synth_atmos *a);
/* Region 0..5: 3 * land + band, band 0 tropics (|lat| < 25), 1 mid-latitudes (< 60), 2 polar. */
int synth_region(double lat, float lsm);
extern const char *const synth_region_meanings;

/* Writes DIR/toy-atmosphere.nc and DIR/toy-atmosphere.grib2. */
int synth_atmos_write(const synth_atmos_opts *o, const char *dir);

/* ================= ensemble ================= */

typedef struct {
    synth_atmos_opts atmos; /* forecasts are initialised in atmos.start_year .. + years - 1 */
    int members;            /* default 10 */
    int lead_hours;         /* 48 */
    int clim_years;         /* model-climate years before start_year (default 2) */
    int emos_truth;         /* 1: truth drawn from N(a + b mean, c + d var) with known a, b, c, d */
} synth_ens_opts;

void synth_ens_defaults(synth_ens_opts *o);
/* The EMOS-variant coefficients of variable v: a, b, c, d. */
void synth_ens_emos_coefficients(int v, double coef[4]);
/* Initialisation times (hours since 1970): Mondays and Thursdays 00Z in [h0, h1) whose valid
 * time (init + lead) is also before h1. Returns the count; `out` may be NULL to count only. */
int synth_ens_inits(int64_t h0, int64_t h1, int lead_hours, int64_t *out);
/* The forecast period [h0, h1) of the options (start_year-01-01 for `years` years or `days` days)
 * and the model-climate inits: every Monday/Thursday of the clim_years years before start_year,
 * or with days < 365 only those in the same calendar window (first `days` days) of each year. */
void synth_ens_period(const synth_ens_opts *o, int64_t *h0, int64_t *h1);
int synth_ens_climate_inits(const synth_ens_opts *o, int64_t *out);
/* Members (layout [var][member][pt]) of the forecast initialised at `init_hours` from the truth
 * fields at its valid time (layout [var][pt]; `a` supplies the climatology); docs/synthetic.md. */
int synth_ens_members(const synth_ens_opts *o, const synth_atmos *a, int64_t init_hours, const float *truth,
                       float *members);
/* EMOS-variant truth from members (layout [var][member][pt]) -> truth [var][pt]. */
void synth_ens_emos_truth(const synth_ens_opts *o, int64_t init_hours, const float *members, float *truth);

/* Writes DIR/ensemble.nc, DIR/ensemble_truth.nc, DIR/ensemble_climate.nc and the matching
 * .grib2 files. */
int synth_ens_write(const synth_ens_opts *o, const char *dir);

#endif
