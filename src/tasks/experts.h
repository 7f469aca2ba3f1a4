/* `smoecast experts`: expert-location maps of every MoE layer of a checkpoint as CF-1.8 NetCDF,
 * and per-expert statistics.
 *
 * Per MoE layer: the argmax expert map (integer with flag_values / flag_meanings), the ranked
 * experts when k > 1, expert_weight(expert, latitude, longitude) = softmax over the N raw gate
 * values (comparable across gates), the gate entropy (bits) and confidence (top-1 minus top-2
 * weight). A latent gate gives one static map; an input-dependent gate gives one map per time
 * (from a dataset) plus the frequency with which each expert owns each point. A model with one
 * MoE layer uses the plain names (expert_map, expert_weight, ...); with several, each name gets
 * the suffix _<layer>. A layer on a coarser grid (inside a U-Net) gets its own coordinates.
 *
 * Statistics per expert: cos-latitude-weighted area share, mean absolute forecast error inside
 * the expert's region (given a forecast and the truth), and the mutual information (bits) of
 * the expert map with a land-sea mask and with 30-degree latitude bands, and the adjusted Rand
 * index and mutual information against any categorical reference map (e.g. true regions). */
#ifndef SMOECAST_TASKS_EXPERTS_H
#define SMOECAST_TASKS_EXPERTS_H

#include "model/model.h"
#include "io/cf_output.h"

typedef struct {
    const char *checkpoint;
    const char *out;          /* experts NetCDF (nullable when only statistics are wanted) */
    const char *dataset;      /* inputs for input-dependent gates (nullable for latent gates) */
    const char *times;        /* "all", ISO times or START/END ranges (with dataset) */
    const char *stats_csv;    /* nullable */
    const char *forecast;     /* forecast file for the per-expert error (nullable) */
    const char *truth;        /* truth dataset for the per-expert error (nullable) */
    const char *lsm;          /* "FILE:VAR" land-sea mask (nullable; regridded by nearest) */
    const char *labels;       /* "FILE:VAR" categorical reference map, e.g. the heat task's true
                                 regions: ARI and MI of each expert map against it (nullable) */
    const char *history;
} experts_opts;

int experts_run(const experts_opts *o);

/* Appends the static expert maps of every MoE layer of `m` (after a forward pass for
 * input-dependent gates: maps of batch element 0 .. n-1 as `time` entries are not written here;
 * only latent gates are static) to an open NetCDF file in define mode. Used by
 * `smoecast forecast --write-experts`. Returns SM_OK or SM_ERR_IO. */
int experts_append_static(int ncid, const char *path, const sm_model *m, const cf_grid *g);

#endif
