/* Reading smoecast/CF forecast files (for `smoecast evaluate`), in both layouts:
 *   (forecast_reference_time, forecast_period, [realization,] lat, lon) as `smoecast forecast`
 *   writes it, or
 *   (time, [realization,] lat, lon) with forecast_reference_time and forecast_period scalar or
 *   per time (`--split-by init` files, post-processed output, ensemble datasets); a missing
 *   lead comes from valid - init or from the caller's lead override.
 * Every record carries its initialisation (hours since 1970) and lead (hours); fields are read
 * one record at a time with fill values as NaN. */
#ifndef SMOECAST_TASKS_FORECAST_FILE_H
#define SMOECAST_TASKS_FORECAST_FILE_H

#include <limits.h>
#include <stddef.h>

typedef struct {
    char path[PATH_MAX];
    int ncid;
    int layout;          /* 0: (forecast_reference_time, forecast_period, ...), 1: (time, ...) */
    int dim_t0, dim_t1;  /* layout 0: frt and fp dims; layout 1: time dim and -1 */
    int dim_y, dim_x, dim_m;
    size_t n0, n1;       /* layout 0 sizes (n1 = 1 for layout 1) */
    size_t nrec;
    double *init, *lead; /* per record, hours since 1970 / hours */
    int nlat, nlon, nmem;
    double *lat, *lon;
    char checkpoint[PATH_MAX]; /* global attribute smoecast_checkpoint, "" when absent */
} forecast_file;

/* Opens `path` and reads its grid and per-record times. lead_override (hours, > 0) is the lead
 * of one-time-axis files without forecast_period; 0 = none. Call forecast_file_close even when
 * it fails. */
int forecast_file_open(const char *path, double lead_override, forecast_file *f);
void forecast_file_close(forecast_file *f);

/* Whether variable `varid` is a forecast field (time axis first, y and x last, optionally the
 * member dimension between); *has_members tells which. */
int forecast_file_is_field(const forecast_file *f, int varid, int *has_members);
/* The same by name: 0 when the variable is missing. */
int forecast_file_has_field(const forecast_file *f, const char *name, int *has_members);

/* Reads record `rec` of variable `name` (all members when it has them: (nmem, nlat, nlon)) into
 * out; fill values become NaN. */
int forecast_file_read(const forecast_file *f, const char *name, size_t rec, float *out);

/* SM_ERR_USAGE when the same (initialisation, lead) stands twice among the files (it would be
 * scored twice). */
int forecast_file_check_duplicates(const forecast_file *files, int n);

#endif
