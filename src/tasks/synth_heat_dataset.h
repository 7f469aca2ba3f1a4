/* The heat-diffusion data of `smoecast synth heat` as a smoecast dataset (data/dataset.h), so
 * that `smoecast train` reads it like any other: variable temperature(time, y, x), static
 * categorical `region` (the true region map) and `diffusivity`, on the unit-square cell centres
 * (grids/heat64.yaml for 64 x 64). Run r, step s is stored at
 *   time = 2000-01-01T00 + r * (steps + 28) + s hours,
 * so consecutive steps are one hour apart and no one-hour sample pair crosses two runs. The
 * global attributes smoecast_train_period / smoecast_val_period / smoecast_test_period
 * ("START/END", ISO) cover the training, validation and test runs (the default splits of
 * data/samples.h). */
#ifndef SMOECAST_TASKS_SYNTH_HEAT_DATASET_H
#define SMOECAST_TASKS_SYNTH_HEAT_DATASET_H

#include "tasks/synth.h"

#include <stdint.h>

/* Hours between the starts of two runs: steps + 28. */
#define SYNTH_HEAT_RUN_GAP_HOURS 28

/* Hours since 1970-01-01 of run `run`, step `step`. */
double synth_heat_time_hours(const synth_heat_opts *o, int run, int step);

/* Writes `path` (temp + rename). SM_ERR_USAGE for invalid options, SM_ERR_IO on write errors. */
int synth_heat_write_dataset(const synth_heat_opts *o, const char *path);

#endif
