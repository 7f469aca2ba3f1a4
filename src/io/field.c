/* Field records: variable selectors and source-geometry helpers shared by the readers. */
#include "io/field.h"
#include "core/log.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int var_selector_parse(const char *text, var_selector *out)
{
    memset(out, 0, sizeof *out);
    out->level = NAN;
    if (!text || !*text) return sm_fail(SM_ERR_USAGE, "empty variable selector; use NAME or NAME:LEVEL (e.g. 2t, z:500)");
    const char *eq = strchr(text, '=');
    if (eq) {
        /* OUT=SELECTOR: the dataset variable is named OUT */
        size_t olen = (size_t)(eq - text);
        if (olen == 0 || olen >= sizeof out->out_name)
            return sm_fail(SM_ERR_USAGE, "variable selector '%s': the name before '=' must be 1-%zu characters", text, sizeof out->out_name - 1);
        int st = var_selector_parse(eq + 1, out);
        if (st) return st;
        memcpy(out->out_name, text, olen);
        out->out_name[olen] = '\0';
        return SM_OK;
    }
    const char *colon = strchr(text, ':');
    size_t nlen = colon ? (size_t)(colon - text) : strlen(text);
    if (nlen == 0 || nlen >= sizeof out->select)
        return sm_fail(SM_ERR_USAGE, "variable selector '%s': name must be 1-%zu characters", text, sizeof out->select - 1);
    memcpy(out->select, text, nlen);
    out->select[nlen] = '\0';
    int digits = 1;
    for (size_t i = 0; i < nlen; i++)
        if (!isdigit((unsigned char)out->select[i])) digits = 0;
    if (digits) out->param_id = strtol(out->select, NULL, 10);
    const char *lev = "";
    if (colon) {
        lev = colon + 1;
        char *end;
        errno = 0;
        double v = strtod(lev, &end);
        if (!*lev || *end || errno || !isfinite(v))
            return sm_fail(SM_ERR_USAGE, "variable selector '%s': level '%s' is not a number", text, lev);
        out->has_level = 1;
        out->level = v;
    }
    if (snprintf(out->out_name, sizeof out->out_name, "%s%s", out->select, lev) >= (int)sizeof out->out_name)
        return sm_fail(SM_ERR_USAGE, "variable selector '%s' is too long", text);
    for (char *p = out->out_name; *p; p++)
        if (*p == '.' || *p == '-') *p = '_';
    return SM_OK;
}

int var_selector_match(const var_selector *sel, const field_meta *m)
{
    if (sel->param_id > 0) {
        if (m->param_id != sel->param_id) return 0;
    } else if (strcmp(sel->select, m->short_name) != 0) {
        return 0;
    }
    if (sel->has_level && !(fabs(m->level - sel->level) < 1e-9)) return 0;
    return 1;
}

/* The grid module owns the geometry and its validation; readers add what the source called it. */
static int with_type(int st, const char *grid_type, src_geometry **out)
{
    if (st == SM_OK) snprintf((*out)->grid_type, sizeof (*out)->grid_type, "%s", grid_type);
    return st;
}

int io_geometry_regular(int nlat, const double *lat, int nlon, double lon0, double dlon,
                        const char *grid_type, src_geometry **out)
{
    return with_type(geometry_create_regular(nlat, lat, nlon, lon0, dlon, out), grid_type, out);
}

int io_geometry_rows(int nrows, const double *lat, const int *row_len, const double *lon0,
                     const double *dlon, const char *grid_type, src_geometry **out)
{
    return with_type(geometry_create_rows(nrows, lat, row_len, lon0, dlon, out), grid_type, out);
}

double io_lon0_canonical(double lon0, int n, double dlon)
{
    if (lon0 + (n - 1) * dlon >= 360.0 - 1e-9 && lon0 >= 180.0) return lon0 - 360.0;
    return lon0;
}

