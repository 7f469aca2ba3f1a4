/* `smoecast inspect`: a one-screen summary of a GRIB file, a NetCDF file or a smoecast dataset:
 * variables (paramId, shortName, units, levels), grid type and size, latitude/longitude range and
 * direction, time range and step, members, missing fraction and packing. */
#ifndef SMOECAST_TASKS_INSPECT_H
#define SMOECAST_TASKS_INSPECT_H

#include <stdio.h>

/* Writes the summary of `path` to `out`. SM_ERR_IO when the file cannot be read at all (a file
 * with some broken GRIB messages is summarised, the broken messages listed). */
int inspect_file(const char *path, FILE *out);

#endif
