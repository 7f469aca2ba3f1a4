/* The EMOS model file written by `smoecast postprocess fit --method emos` and read by
 * `smoecast postprocess apply` (IMPROVER-like split of fit and apply).
 *
 * Layout (NetCDF-4, CF-1.8; docs/postprocess.md):
 *   global   Conventions, title, institution, source, history, smoecast_model = "emos",
 *            smoecast_model_format_version, emos_scope ("global" | "per_point"), target,
 *            target_units, target_standard_name, target_long_name, sigma_floor, members,
 *            training_period, training_samples, training_crps, points_failed, smoecast_config
 *            (the resolved YAML), smoecast_forecast / smoecast_truth ("<sha256>  <path>")
 *   global scope     a, b, c, d: scalar double variables
 *   per_point scope  a, b, c, d (latitude, longitude) [or (y, x)] double, NaN where a point
 *                    could not be fitted; latitude/longitude coordinates, crs grid mapping
 *   Each coefficient has long_name and units: a in target units, b "1", c target units
 *   squared, d "1"; predictive distribution N(a + b mean, c + d var) with var the unbiased
 *   member variance (divisor M - 1). */
#ifndef SMOECAST_POST_EMOS_FILE_H
#define SMOECAST_POST_EMOS_FILE_H

#include "post/emos.h"

#include <stddef.h>

#define EMOS_FILE_KIND "emos"
#define EMOS_FILE_VERSION 1

typedef struct {
    int per_point;
    char target[80], units[64], standard_name[96], long_name[128];
    int is_latlon, H, W;          /* grid (per_point; also recorded for global) */
    double *lat, *lon;            /* H, W values */
    emos_coef *coef;              /* 1 or H * W */
    double sigma_floor;
    int members;
    /* provenance (write: given; read: filled, "" when absent) */
    char training_period[128];
    double training_crps;
    long training_samples, points_failed;
    char *config_yaml, *forecast_src, *truth_src, *history;
} emos_model;

int emos_model_write(const char *path, const emos_model *m);
/* SM_ERR_IO naming the file when it is not an EMOS model file or is malformed. */
int emos_model_read(const char *path, emos_model *m);
void emos_model_free(emos_model *m);
/* 1 when `path` is a NetCDF file with smoecast_model = "emos". */
int emos_model_is(const char *path);

#endif
