/* GRIB reader: ecCodes handles one field at a time, geometry from the grid keys, values
 * canonicalised to rows west -> east. */
#include "io/grib_reader.h"
#include "core/log.h"
#include "io/cf_time.h"

#include <eccodes.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ecCodes evaluates paramId, shortName, name, units and typeOfLevel through "concepts", which
 * costs more than decoding a small field. They are cached per reader, keyed on the raw keys the
 * concepts are defined from (edition, centre, tables, parameter numbers, level/surface types,
 * statistical processing); grib_reader_set_concept_cache(r, 0) turns the cache off (tests compare
 * both). */
#define CONCEPT_KEYS 16
#define CONCEPT_CACHE 128

typedef struct {
    long key[CONCEPT_KEYS];
    long param_id;
    char short_name[64], name[128], units[64], type_of_level[48];
} concept_entry;

struct grib_reader {
    char path[4096];
    FILE *f;
    codes_handle *h;
    int msg;              /* number of the current field (1-based) */
    int nfields_ok;       /* fields read successfully so far */
    int nbroken;
    double *raw;          /* decoded values in scan order */
    double *values;       /* canonical layout */
    size_t cap;
    src_geometry *geom;
    int geom_valid;       /* geometry built for the current field */
    int fatal;            /* the file has no GRIB messages: every further call reports the end */
    int use_cache;
    concept_entry *cache;
    int ncache;
    /* canonicalisation of the current field */
    int ni, nj, ineg, jcons, alt, reduced;
};

int grib_file_looks_like_grib(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    char b[4] = {0};
    size_t n = fread(b, 1, 4, f);
    fclose(f);
    return n == 4 && memcmp(b, "GRIB", 4) == 0;
}

int grib_reader_open(const char *path, grib_reader **out)
{
    struct stat st;
    if (stat(path, &st) != 0) return sm_fail(SM_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    if (S_ISDIR(st.st_mode)) return sm_fail(SM_ERR_IO, "%s: is a directory, not a GRIB file", path);
    if (st.st_size == 0) return sm_fail(SM_ERR_IO, "%s: file is empty", path);
    FILE *f = fopen(path, "rb");
    if (!f) return sm_fail(SM_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    grib_reader *r = calloc(1, sizeof *r);
    if (!r) {
        fclose(f);
        return sm_fail(SM_ERR_NUMERIC, "%s: out of memory", path);
    }
    snprintf(r->path, sizeof r->path, "%s", path);
    r->f = f;
    r->use_cache = 1;
    codes_grib_multi_support_on(NULL);
    *out = r;
    return SM_OK;
}

const char *grib_reader_path(const grib_reader *r) { return r->path; }
int grib_reader_recoverable(const grib_reader *r) { return !r->fatal; }
void grib_reader_set_concept_cache(grib_reader *r, int on) { r->use_cache = on; }

void grib_reader_close(grib_reader *r)
{
    if (!r) return;
    if (r->h) codes_handle_delete(r->h);
    if (r->f) {
        codes_grib_multi_support_reset_file(NULL, r->f);
        fclose(r->f);
    }
    free(r->raw);
    free(r->values);
    free(r->cache);
    geometry_free(r->geom);
    free(r);
}

static long get_long(codes_handle *h, const char *key, long dflt)
{
    long v;
    if (codes_get_long(h, key, &v) != 0) return dflt;
    return v;
}

static double get_double(codes_handle *h, const char *key, double dflt)
{
    double v;
    if (codes_get_double(h, key, &v) != 0) return dflt;
    return v;
}

static void get_string(codes_handle *h, const char *key, char *buf, size_t len)
{
    size_t n = len;
    if (codes_get_string(h, key, buf, &n) != 0) buf[0] = '\0';
    buf[len - 1] = '\0';
    if (!strcmp(buf, "unknown") && strcmp(key, "units") != 0) buf[0] = '\0';
}

static double date_time_hours(long date, long time)
{
    cf_date d = {(int)(date / 10000), (int)(date / 100 % 100), (int)(date % 100), (int)(time / 100), (int)(time % 100), 0};
    return cf_date_to_hours(&d, CAL_PROLEPTIC);
}

/* CF standard names for the common ECMWF parameters. */
static const char *standard_name_for(long param_id)
{
    switch (param_id) {
    case 167: return "air_temperature";
    case 130: return "air_temperature";
    case 129: return "geopotential";
    case 156: return "geopotential_height";
    case 131: return "eastward_wind";
    case 132: return "northward_wind";
    case 165: return "eastward_wind";
    case 166: return "northward_wind";
    case 151: return "air_pressure_at_mean_sea_level";
    case 260074: return "air_pressure_at_mean_sea_level";
    case 134: return "surface_air_pressure";
    case 168: return "dew_point_temperature";
    case 235: return "surface_temperature";
    case 172: return "land_binary_mask";
    case 157: return "relative_humidity";
    case 133: return "specific_humidity";
    case 60: return "ertel_potential_vorticity";
    default: return "";
    }
}

static void concepts_uncached(codes_handle *h, concept_entry *e)
{
    e->param_id = get_long(h, "paramId", 0);
    get_string(h, "shortName", e->short_name, sizeof e->short_name);
    get_string(h, "name", e->name, sizeof e->name);
    get_string(h, "units", e->units, sizeof e->units);
    get_string(h, "typeOfLevel", e->type_of_level, sizeof e->type_of_level);
}

static void get_concepts(grib_reader *r, field_meta *m)
{
    codes_handle *h = r->h;
    concept_entry e;
    memset(&e, 0, sizeof e);
    static const char *const k1[] = {"centre", "subCentre", "table2Version", "indicatorOfParameter", "indicatorOfTypeOfLevel",
                                     "level", "timeRangeIndicator", "localDefinitionNumber", NULL};
    static const char *const k2[] = {"centre", "discipline", "parameterCategory", "parameterNumber", "productDefinitionTemplateNumber",
                                     "typeOfFirstFixedSurface", "scaleFactorOfFirstFixedSurface", "scaledValueOfFirstFixedSurface",
                                     "typeOfSecondFixedSurface", "scaleFactorOfSecondFixedSurface", "scaledValueOfSecondFixedSurface",
                                     "typeOfStatisticalProcessing", "tablesVersion", "localTablesVersion", "constituentType", NULL};
    long edition = get_long(h, "editionNumber", 0);
    e.key[0] = edition;
    const char *const *keys = edition == 1 ? k1 : k2;
    for (int i = 0; keys[i] && i + 1 < CONCEPT_KEYS; i++) e.key[i + 1] = get_long(h, keys[i], -999999);
    concept_entry *hit = NULL;
    if (r->use_cache)
        for (int i = 0; i < r->ncache && !hit; i++)
            if (!memcmp(r->cache[i].key, e.key, sizeof e.key)) hit = &r->cache[i];
    if (!hit) {
        concepts_uncached(h, &e);
        if (r->use_cache) {
            if (!r->cache) r->cache = calloc(CONCEPT_CACHE, sizeof *r->cache);
            if (r->cache) {
                hit = &r->cache[r->ncache < CONCEPT_CACHE ? r->ncache++ : CONCEPT_CACHE - 1];
                *hit = e;
            }
        }
        if (!hit) hit = &e;
    }
    m->param_id = hit->param_id;
    snprintf(m->short_name, sizeof m->short_name, "%s", hit->short_name);
    snprintf(m->name, sizeof m->name, "%s", hit->name);
    snprintf(m->units, sizeof m->units, "%s", hit->units);
    snprintf(m->type_of_level, sizeof m->type_of_level, "%s", hit->type_of_level);
}

int grib_reader_next(grib_reader *r, field_meta *m, int *done)
{
    *done = 0;
    if (r->h) {
        codes_handle_delete(r->h);
        r->h = NULL;
    }
    r->geom_valid = 0;
    int err = 0;
    long before = ftell(r->f);
    codes_handle *h = codes_handle_new_from_file(NULL, r->f, PRODUCT_GRIB, &err);
    if (!h) {
        if (err == 0 || (err == CODES_END_OF_FILE && ftell(r->f) == before)) {
            if (r->msg == 0 && !r->fatal) {
                r->fatal = 1;
                return sm_fail(SM_ERR_IO, "%s: no GRIB message found (not a GRIB file, or not GRIB1/GRIB2)", r->path);
            }
            *done = 1;
            return SM_OK;
        }
        r->msg++;
        r->nbroken++;
        if (err == CODES_END_OF_FILE || err == CODES_PREMATURE_END_OF_FILE)
            return sm_fail(SM_ERR_IO, "%s: message %d: truncated GRIB message (the file ends inside it): %s", r->path,
                           r->msg, codes_get_error_message(err));
        return sm_fail(SM_ERR_IO, "%s: message %d: broken GRIB message: %s (use --skip-bad to ingest the other messages)",
                       r->path, r->msg, codes_get_error_message(err));
    }
    r->h = h;
    r->msg++;
    memset(m, 0, sizeof *m);
    m->msg = r->msg;
    get_concepts(r, m);
    snprintf(m->standard_name, sizeof m->standard_name, "%s", standard_name_for(m->param_id));
    m->level = get_double(h, "level", NAN);
    m->member = -1;
    if (get_long(h, "numberOfForecastsInEnsemble", 0) > 0) m->member = (int)get_long(h, "number", -1);
    m->has_time = 1;
    long dd = get_long(h, "dataDate", 0), dt = get_long(h, "dataTime", 0);
    long vd = get_long(h, "validityDate", dd), vt = get_long(h, "validityTime", dt);
    m->reference_time = date_time_hours(dd, dt);
    m->valid_time = date_time_hours(vd, vt);
    m->forecast_period = m->valid_time - m->reference_time;
    snprintf(m->calendar, sizeof m->calendar, "proleptic_gregorian");
    get_string(h, "packingType", m->packing, sizeof m->packing);
    m->bits_per_value = (int)get_long(h, "bitsPerValue", 0);
    m->edition = (int)get_long(h, "editionNumber", 0);
    size_t n = 0;
    if (codes_get_size(h, "values", &n) != 0)
        return sm_fail(SM_ERR_IO, "%s: message %d: field has no values", r->path, r->msg);
    m->npoints = (int64_t)n;
    r->nfields_ok++;
    return SM_OK;
}

static int build_geometry(grib_reader *r)
{
    codes_handle *h = r->h;
    char gt[64];
    get_string(h, "gridType", gt, sizeof gt);
    geometry_free(r->geom);
    r->geom = NULL;
    size_t n = 0;
    codes_get_size(h, "values", &n);
    r->ineg = (int)get_long(h, "iScansNegatively", 0);
    int jpos = (int)get_long(h, "jScansPositively", 0);
    r->jcons = (int)get_long(h, "jPointsAreConsecutive", 0);
    r->alt = (int)get_long(h, "alternativeRowScanning", 0);
    double lat1 = get_double(h, "latitudeOfFirstGridPointInDegrees", NAN);
    double lat2 = get_double(h, "latitudeOfLastGridPointInDegrees", NAN);
    double lon1 = get_double(h, "longitudeOfFirstGridPointInDegrees", NAN);
    double lon2 = get_double(h, "longitudeOfLastGridPointInDegrees", NAN);
    long nj = get_long(h, "Nj", 0);
    (void)jpos;
    int st = SM_OK;
    if (!strcmp(gt, "regular_ll") || !strcmp(gt, "regular_gg")) {
        long ni = get_long(h, "Ni", 0);
        if (ni < 1 || nj < 1 || (size_t)(ni * nj) != n)
            return sm_fail(SM_ERR_IO, "%s: message %d: %s grid %ld x %ld does not match %zu values", r->path, r->msg, gt, ni, nj, n);
        r->ni = (int)ni;
        r->nj = (int)nj;
        r->reduced = 0;
        double west = r->ineg ? lon2 : lon1, east = r->ineg ? lon1 : lon2;
        double dlon;
        if (ni == 1) {
            dlon = get_double(h, "iDirectionIncrementInDegrees", 360.0);
            if (!(dlon > 0)) dlon = 360.0;
        } else {
            double span = east - west;
            while (span < 0) span += 360.0;
            while (span > 360.0) span -= 360.0;
            if (span < 1e-9) span = 360.0 - 360.0 / ni;
            dlon = span / (double)(ni - 1);
            if (fabs((360.0 - span) - dlon) < 1e-3) dlon = 360.0 / (double)ni; /* global: snap exactly */
        }
        double *lat = malloc((size_t)nj * sizeof *lat);
        if (!lat) return sm_fail(SM_ERR_NUMERIC, "%s: out of memory", r->path);
        if (!strcmp(gt, "regular_gg")) {
            size_t nd = 0;
            codes_get_size(h, "distinctLatitudes", &nd);
            double *dl = nd ? malloc(nd * sizeof *dl) : NULL;
            if (!dl || nd != (size_t)nj || codes_get_double_array(h, "distinctLatitudes", dl, &nd) != 0) {
                free(dl);
                free(lat);
                return sm_fail(SM_ERR_IO, "%s: message %d: cannot read the Gaussian latitudes", r->path, r->msg);
            }
            /* rows follow the scanning direction, whatever order distinctLatitudes come in */
            int north_first = lat1 > lat2, dl_desc = dl[0] > dl[nj - 1];
            for (long j = 0; j < nj; j++) lat[j] = north_first == dl_desc ? dl[j] : dl[nj - 1 - j];
            free(dl);
        } else {
            for (long j = 0; j < nj; j++) lat[j] = nj > 1 ? lat1 + (lat2 - lat1) * (double)j / (double)(nj - 1) : lat1;
        }
        st = io_geometry_regular((int)nj, lat, (int)ni, west, dlon, gt, &r->geom);
        free(lat);
    } else if (!strcmp(gt, "reduced_gg") || !strcmp(gt, "reduced_ll")) {
        size_t npl = 0;
        if (codes_get_size(h, "pl", &npl) != 0 || npl < 1)
            return sm_fail(SM_ERR_IO, "%s: message %d: %s grid without a pl array", r->path, r->msg, gt);
        if (r->ineg || r->jcons || r->alt)
            return sm_fail(SM_ERR_IO, "%s: message %d: %s grid with an unsupported scanning mode", r->path, r->msg, gt);
        long *pl = malloc(npl * sizeof *pl);
        double *lat = malloc(npl * sizeof *lat), *l0 = malloc(npl * sizeof *l0), *dl = malloc(npl * sizeof *dl);
        int *len = malloc(npl * sizeof *len);
        double *glat = NULL;
        if (!pl || !lat || !l0 || !dl || !len) {
            st = sm_fail(SM_ERR_NUMERIC, "%s: out of memory", r->path);
            goto reduced_done;
        }
        size_t got = npl;
        codes_get_long_array(h, "pl", pl, &got);
        long maxpl = 0, total = 0;
        for (size_t j = 0; j < npl; j++) {
            if (pl[j] > maxpl) maxpl = pl[j];
            total += pl[j];
        }
        if ((size_t)total != n) {
            st = sm_fail(SM_ERR_IO, "%s: message %d: %s pl array sums to %ld points but the field has %zu", r->path, r->msg, gt, total, n);
            goto reduced_done;
        }
        double span = lon2 - lon1;
        while (span < 0) span += 360.0;
        int global = maxpl > 0 && fabs(span - (360.0 - 360.0 / (double)maxpl)) < 0.5 * 360.0 / (double)maxpl;
        if (!strcmp(gt, "reduced_gg")) {
            size_t nd = 0;
            codes_get_size(h, "distinctLatitudes", &nd);
            glat = nd ? malloc(nd * sizeof *glat) : NULL;
            if (!glat || nd != npl || codes_get_double_array(h, "distinctLatitudes", glat, &nd) != 0) {
                st = sm_fail(SM_ERR_IO, "%s: message %d: reduced Gaussian sub-areas are not supported (only global grids)", r->path, r->msg);
                goto reduced_done;
            }
        }
        int north_first = lat1 > lat2;
        for (size_t j = 0; j < npl; j++) {
            if (glat) lat[j] = north_first == (glat[0] > glat[npl - 1]) ? glat[j] : glat[npl - 1 - j];
            else lat[j] = npl > 1 ? lat1 + (lat2 - lat1) * (double)j / (double)(npl - 1) : lat1;
            len[j] = (int)pl[j];
            l0[j] = lon1;
            if (global || pl[j] < 2) dl[j] = pl[j] > 0 ? 360.0 / (double)pl[j] : 360.0;
            else dl[j] = span / (double)(pl[j] - 1);
        }
        r->reduced = 1;
        r->nj = (int)npl;
        st = io_geometry_rows((int)npl, lat, len, l0, dl, gt, &r->geom);
    reduced_done:
        free(pl);
        free(lat);
        free(l0);
        free(dl);
        free(len);
        free(glat);
    } else {
        return sm_fail(SM_ERR_IO, "%s: message %d: gridType '%s' is not supported (regular_ll, regular_gg, reduced_gg, reduced_ll)",
                       r->path, r->msg, gt[0] ? gt : "unknown");
    }
    if (st) return sm_fail_keep(st, "%s: message %d: invalid grid", r->path, r->msg);
    r->geom_valid = 1;
    return SM_OK;
}

int grib_reader_geometry(grib_reader *r, const src_geometry **geom)
{
    if (!r->h) return sm_fail(SM_ERR_IO, "%s: no current GRIB field", r->path);
    if (!r->geom_valid) {
        int st = build_geometry(r);
        if (st) return st;
    }
    *geom = r->geom;
    return SM_OK;
}

int grib_reader_decode(grib_reader *r, const double **values, const src_geometry **geom)
{
    const src_geometry *g = NULL;
    int st = grib_reader_geometry(r, &g);
    if (st) return st;
    codes_handle *h = r->h;
    size_t n = 0;
    codes_get_size(h, "values", &n);
    if (n > r->cap) {
        free(r->raw);
        free(r->values);
        r->raw = malloc(n * sizeof *r->raw);
        r->values = malloc(n * sizeof *r->values);
        if (!r->raw || !r->values) {
            r->cap = 0;
            return sm_fail(SM_ERR_NUMERIC, "%s: message %d: out of memory for %zu values", r->path, r->msg, n);
        }
        r->cap = n;
    }
    size_t got = n;
    int err = codes_get_double_array(h, "values", r->raw, &got);
    if (err || got != n)
        return sm_fail(SM_ERR_IO, "%s: message %d: cannot decode the values: %s", r->path, r->msg, codes_get_error_message(err));
    long bitmap = get_long(h, "bitmapPresent", 0);
    long mvm = get_long(h, "missingValueManagementUsed", 0);
    if (bitmap || mvm) {
        double mv = get_double(h, "missingValue", 9999.0);
        for (size_t i = 0; i < n; i++)
            if (r->raw[i] == mv) r->raw[i] = NAN;
    }
    if (r->reduced) {
        memcpy(r->values, r->raw, n * sizeof *r->values);
    } else {
        int ni = r->ni, nj = r->nj;
        for (int k = 0; k < nj; k++) {
            double *dst = r->values + (size_t)k * ni;
            int flip = r->ineg ^ (r->alt && (k & 1));
            for (int i = 0; i < ni; i++) {
                int c = flip ? ni - 1 - i : i;
                size_t src = r->jcons ? (size_t)c * nj + k : (size_t)k * ni + c;
                dst[i] = r->raw[src];
            }
        }
    }
    *values = r->values;
    *geom = g;
    return SM_OK;
}
