#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int under_ci(void)
{
    const char *ci = getenv("CI");
    return ci && strcmp(ci, "true") == 0;
}

void testutil_skip_or_fail(const char *why)
{
    if (under_ci()) fail_msg("CI=true forbids skipping: %s", why);
    print_message("skipping: %s\n", why);
    skip();
}

const char *testutil_shared_data(const char *name, char *buf, size_t len)
{
    const char *dir = getenv("SMOECAST_SHARED_DATA");
    if (!dir) dir = SMOECAST_SOURCE_DIR "/../shared/data";
    snprintf(buf, len, "%s/%s", dir, name);
    if (access(buf, R_OK) == 0) return buf;
    if (under_ci()) fail_msg("CI=true but shared data file %s is missing", buf);
    return NULL;
}

const char *testutil_source_path(const char *rel, char *buf, size_t len)
{
    snprintf(buf, len, "%s/%s", SMOECAST_SOURCE_DIR, rel);
    return buf;
}

const char *testutil_tmpdir(const char *name, char *buf, size_t len)
{
    snprintf(buf, len, "tmp_%s_%ld", name, (long)getpid());
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", buf);
    if (system(cmd) != 0) fail_msg("cannot clean %s", buf);
    if (mkdir(buf, 0755) != 0) fail_msg("cannot create %s", buf);
    return buf;
}

double testutil_rel_l2(const float *a, const float *b, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - (double)b[i];
        num += d * d;
        den += (double)b[i] * b[i];
    }
    return sqrt(num) / (sqrt(den) + 1e-30);
}

#include <netcdf.h>

float *testutil_golden_load(const char *file, const char *var, size_t *n, int *ndim, size_t *shape)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/tests/golden/%s", SMOECAST_SOURCE_DIR, file);
    int nc, vid, nd, dims[8];
    if (nc_open(path, NC_NOWRITE, &nc) != NC_NOERR) fail_msg("cannot open golden file %s", path);
    if (nc_inq_varid(nc, var, &vid) != NC_NOERR) fail_msg("%s: no variable '%s'", path, var);
    nc_inq_varndims(nc, vid, &nd);
    if (nd > 8) fail_msg("%s: %s has more than 8 dims", path, var);
    nc_inq_vardimid(nc, vid, dims);
    size_t total = 1;
    for (int d = 0; d < nd; d++) {
        size_t len;
        nc_inq_dimlen(nc, dims[d], &len);
        if (shape) shape[d] = len;
        total *= len;
    }
    float *buf = malloc((total ? total : 1) * sizeof *buf);
    if (nc_get_var_float(nc, vid, buf) != NC_NOERR) fail_msg("%s: cannot read %s", path, var);
    nc_close(nc);
    if (n) *n = total;
    if (ndim) *ndim = nd;
    return buf;
}
