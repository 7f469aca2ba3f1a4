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
