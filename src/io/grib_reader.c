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

/* Per-message cost. Creating the ecCodes handle is the floor (a bare decode loop pays it too);
 * everything read on top of it is kept to cheap integer keys, with per-reader caches for what is
 * expensive in ecCodes:
 * - concepts (paramId, shortName, name, units, typeOfLevel; about 2.4 M instructions each), keyed
 *   on the raw keys the concepts are defined from (edition, centre, tables, parameter numbers,
 *   level/surface types, statistical processing);
 * - packingType (a concept too), keyed on the GRIB1 data flags / the GRIB2 representation template;
 * - the GRIB1 forecast period (validityDate/Time evaluate the stepType concept), keyed on the
 *   keys the step is defined from; valid time = reference time + period;
 * - which optional keys a message layout has at all (a lookup of a key that is absent scans
 *   every accessor of the handle), keyed on edition, centre, sub-centre, section 1 length, local
 *   definition and the GRIB2 product / representation templates; only keys whose presence
 *   follows from those (template fields, not keys defined under a condition on a value);
 * - geometry, keyed on the bytes of the grid section, so a file on one grid builds it once.
 * grib_reader_set_cache(r, 0) turns every cache off (the tests compare both ways field by field). */
#define CONCEPT_KEYS 16
#define CONCEPT_CACHE 128
#define SMALL_CACHE 64
#define GEOM_CACHE 8

typedef struct {
    long key[CONCEPT_KEYS];
    long param_id;
    char short_name[64], name[128], units[64], type_of_level[48];
    int have_param_id, have_short_name;
    int described; /* name, units and type_of_level evaluated too */
} concept_entry;

/* optional keys whose presence is remembered per layout (bit i of layout_entry.present) */
enum {
    OPT_LDN, OPT_NFCE, OPT_LEVEL, OPT_MVM, OPT_CAT, OPT_NUM, OPT_TFFS, OPT_SFFFS, OPT_SVFFS, OPT_TSFS, OPT_SFSFS, OPT_SVSFS,
    OPT_TOSP, OPT_CONST, OPT_COUNT
};
static const char *const opt_key[OPT_COUNT] = {"localDefinitionNumber", "numberOfForecastsInEnsemble", "level",
                                               "missingValueManagementUsed", "parameterCategory", "parameterNumber",
                                               "typeOfFirstFixedSurface", "scaleFactorOfFirstFixedSurface",
                                               "scaledValueOfFirstFixedSurface", "typeOfSecondFixedSurface",
                                               "scaleFactorOfSecondFixedSurface", "scaledValueOfSecondFixedSurface",
                                               "typeOfStatisticalProcessing", "constituentType"};

#define LAYOUT_SIG 6
typedef struct {
    long sig[LAYOUT_SIG];
    unsigned present;
} layout_entry;

typedef struct {
    long key[4];
    char packing[48];
} packing_entry;

typedef struct {
    long key[8];
    long minutes;
} period_entry;

typedef struct {
    unsigned char *bytes; /* the grid section */
    size_t len;
    long edition;
    size_t npoints;
    src_geometry *geom;
    int ni, nj, ineg, jcons, alt, reduced;
} geom_entry;

struct grib_reader {
    char path[4096];
    FILE *f;
    codes_handle *h;
    int msg;              /* number of the current field (1-based) */
    int nfields_ok;       /* fields read successfully so far */
    int nbroken;
    double *raw;          /* decoded values in scan order (only when they need reordering) */
    double *values;       /* canonical layout */
    size_t cap;
    size_t npoints;       /* values in the current field */
    long edition;
    const layout_entry *layout; /* the current field's layout (NULL: caches off) */
    geom_entry *cur;      /* geometry of the current field (valid when geom_valid) */
    geom_entry own;       /* the geometry when it is not cached */
    int geom_valid;       /* geometry built for the current field */
    int fatal;            /* the file has no GRIB messages: every further call reports the end */
    int use_cache;
    concept_entry *cache;
    int ncache;
    int lazy;             /* GRIB_DESCRIBE_*: what next() evaluates, the rest in grib_reader_describe */
    concept_entry own_concepts; /* the current field's concepts when they are not cached */
    concept_entry *concepts;    /* the current field's concepts */
    layout_entry layouts[SMALL_CACHE];
    int nlayouts;
    packing_entry packings[SMALL_CACHE];
    int npackings;
    period_entry periods[SMALL_CACHE];
    int nperiods;
    geom_entry geoms[GEOM_CACHE];
    int ngeoms, geom_next;
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

static void geom_entry_clear(geom_entry *e)
{
    free(e->bytes);
    geometry_free(e->geom);
    memset(e, 0, sizeof *e);
}

void grib_reader_set_cache(grib_reader *r, int on)
{
    r->use_cache = on;
    r->ncache = r->nlayouts = r->npackings = r->nperiods = 0;
    for (int i = 0; i < r->ngeoms; i++) geom_entry_clear(&r->geoms[i]);
    r->ngeoms = r->geom_next = 0;
    r->geom_valid = 0;
    r->cur = NULL;
    r->layout = NULL;
    r->concepts = NULL;
}

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
    geom_entry_clear(&r->own);
    for (int i = 0; i < r->ngeoms; i++) geom_entry_clear(&r->geoms[i]);
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

/* An optional key: skipped without a lookup when the layout says the message does not have it. */
static long opt_long(const grib_reader *r, int k, long dflt)
{
    if (r->layout && !(r->layout->present & (1u << k))) return dflt;
    return get_long(r->h, opt_key[k], dflt);
}

static double opt_double(const grib_reader *r, int k, double dflt)
{
    if (r->layout && !(r->layout->present & (1u << k))) return dflt;
    return get_double(r->h, opt_key[k], dflt);
}

/* The layout entry for signature `sig`, probing every optional key on first sight. */
static const layout_entry *layout_for(grib_reader *r, const long sig[LAYOUT_SIG])
{
    for (int i = 0; i < r->nlayouts; i++)
        if (!memcmp(r->layouts[i].sig, sig, sizeof r->layouts[i].sig)) return &r->layouts[i];
    layout_entry *e = &r->layouts[r->nlayouts < SMALL_CACHE ? r->nlayouts++ : SMALL_CACHE - 1];
    memcpy(e->sig, sig, sizeof e->sig);
    e->present = 0;
    for (int k = 0; k < OPT_COUNT; k++)
        if (codes_is_defined(r->h, opt_key[k])) e->present |= 1u << k;
    return e;
}

/* Which optional keys the current message has: the local definition number first (its presence
 * depends on edition, centre, sub-centre and the section 1 length or the GRIB2 local section),
 * then everything else from the layout including its value and the GRIB2 templates. */
static void find_layout(grib_reader *r, long centre, long sub_centre)
{
    r->layout = NULL;
    if (!r->use_cache) return;
    codes_handle *h = r->h;
    long sig[LAYOUT_SIG] = {r->edition, centre, sub_centre, 0, 0, -3};
    if (r->edition == 1) {
        sig[3] = get_long(h, "section1Length", -1);
    } else {
        sig[3] = get_long(h, "productDefinitionTemplateNumber", -1);
        sig[4] = get_long(h, "dataRepresentationTemplateNumber", -1);
        sig[5] = -3 - get_long(h, "localUsePresent", 0);
    }
    const layout_entry *pre = layout_for(r, sig);
    sig[5] = (pre->present & (1u << OPT_LDN)) ? get_long(h, "localDefinitionNumber", -1) : -1;
    r->layout = layout_for(r, sig);
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

static void concepts_ids(codes_handle *h, concept_entry *e, int param_id, int short_name)
{
    if (param_id && !e->have_param_id) {
        e->param_id = get_long(h, "paramId", 0);
        e->have_param_id = 1;
    }
    if (short_name && !e->have_short_name) {
        get_string(h, "shortName", e->short_name, sizeof e->short_name);
        e->have_short_name = 1;
    }
}

static void concepts_describe(codes_handle *h, concept_entry *e)
{
    concepts_ids(h, e, 1, 1);
    get_string(h, "name", e->name, sizeof e->name);
    get_string(h, "units", e->units, sizeof e->units);
    get_string(h, "typeOfLevel", e->type_of_level, sizeof e->type_of_level);
    e->described = 1;
}

static void copy_concepts(const concept_entry *e, field_meta *m)
{
    m->param_id = e->param_id;
    memcpy(m->short_name, e->short_name, sizeof m->short_name);
    snprintf(m->standard_name, sizeof m->standard_name, "%s", standard_name_for(e->param_id));
    if (!e->described) return;
    memcpy(m->name, e->name, sizeof m->name);
    memcpy(m->units, e->units, sizeof m->units);
    memcpy(m->type_of_level, e->type_of_level, sizeof m->type_of_level);
}

/* Concepts from the raw keys they are defined from; key[] is left filled (GRIB1: edition, centre,
 * subCentre, table2Version, indicatorOfParameter, indicatorOfTypeOfLevel, level,
 * timeRangeIndicator, localDefinitionNumber) for the forecast period key. */
static void get_concepts(grib_reader *r, field_meta *m, long centre, long sub_centre, long key[CONCEPT_KEYS])
{
    codes_handle *h = r->h;
    const long NA = -999999;
    memset(key, 0, CONCEPT_KEYS * sizeof *key);
    key[0] = r->edition;
    key[1] = centre;
    if (r->edition == 1) {
        key[2] = sub_centre;
        key[3] = get_long(h, "table2Version", NA);
        key[4] = get_long(h, "indicatorOfParameter", NA);
        key[5] = get_long(h, "indicatorOfTypeOfLevel", NA);
        key[6] = opt_long(r, OPT_LEVEL, NA);
        key[7] = get_long(h, "timeRangeIndicator", NA);
        key[8] = opt_long(r, OPT_LDN, NA);
    } else {
        key[2] = get_long(h, "discipline", NA);
        key[3] = opt_long(r, OPT_CAT, NA);
        key[4] = opt_long(r, OPT_NUM, NA);
        key[5] = get_long(h, "productDefinitionTemplateNumber", NA);
        for (int k = OPT_TFFS; k <= OPT_TOSP; k++) key[6 + k - OPT_TFFS] = opt_long(r, k, NA);
        key[13] = get_long(h, "tablesVersion", NA);
        key[14] = get_long(h, "localTablesVersion", NA);
        key[15] = opt_long(r, OPT_CONST, NA);
    }
    concept_entry *hit = NULL;
    if (r->use_cache)
        for (int i = 0; i < r->ncache && !hit; i++)
            if (!memcmp(r->cache[i].key, key, sizeof r->cache[i].key)) hit = &r->cache[i];
    if (!hit) {
        if (r->use_cache && !r->cache) r->cache = calloc(CONCEPT_CACHE, sizeof *r->cache);
        hit = r->use_cache && r->cache ? &r->cache[r->ncache < CONCEPT_CACHE ? r->ncache++ : CONCEPT_CACHE - 1] : &r->own_concepts;
        memset(hit, 0, sizeof *hit);
        memcpy(hit->key, key, sizeof hit->key);
    }
    if (r->lazy == GRIB_DESCRIBE_ALL) {
        if (!hit->described) concepts_describe(h, hit);
    } else {
        concepts_ids(h, hit, r->lazy != GRIB_DESCRIBE_SHORT_NAME, r->lazy != GRIB_DESCRIBE_PARAM_ID);
    }
    r->concepts = hit;
    copy_concepts(hit, m);
}

void grib_reader_set_lazy(grib_reader *r, int mode) { r->lazy = mode; }

int grib_reader_describe(grib_reader *r, field_meta *m)
{
    if (!r->h || !r->concepts) return sm_fail(SM_ERR_IO, "%s: no current GRIB field", r->path);
    if (!r->concepts->described) concepts_describe(r->h, r->concepts);
    copy_concepts(r->concepts, m);
    return SM_OK;
}

/* packingType: GRIB1 from the data flags (and the extended flags of second-order packing), GRIB2
 * from the representation template, except the templates whose name depends on further keys. */
static void get_packing(grib_reader *r, char *buf, size_t len)
{
    codes_handle *h = r->h;
    long key[4] = {r->edition, -1, -1, -1};
    int cacheable = r->use_cache;
    if (cacheable && r->edition == 1) {
        key[1] = get_long(h, "dataFlag", -1);
        if (get_long(h, "complexPacking", 0) && !get_long(h, "sphericalHarmonics", 0)) key[2] = get_long(h, "extendedFlag", -1);
    } else if (cacheable && r->edition == 2) {
        key[1] = get_long(h, "dataRepresentationTemplateNumber", -1);
        cacheable = key[1] >= 0 && key[1] != 50 && key[1] != 51 && key[1] != 53 && key[1] != 50001 && key[1] != 50002;
    } else {
        cacheable = 0;
    }
    if (cacheable)
        for (int i = 0; i < r->npackings; i++)
            if (!memcmp(r->packings[i].key, key, sizeof key)) {
                snprintf(buf, len, "%s", r->packings[i].packing);
                return;
            }
    get_string(h, "packingType", buf, len);
    if (cacheable) {
        packing_entry *e = &r->packings[r->npackings < SMALL_CACHE ? r->npackings++ : SMALL_CACHE - 1];
        memcpy(e->key, key, sizeof key);
        snprintf(e->packing, sizeof e->packing, "%s", buf);
    }
}

/* Minutes from the reference time (dataDate, dataTime) to the validity time, as ecCodes computes
 * them. For GRIB1 that goes through the stepType concept; the period depends only on the step keys
 * (P1, P2, unitOfTimeRange, timeRangeIndicator and, through local stepType concepts, centre,
 * table2Version and indicatorOfParameter), so it is cached on them. */
static long period_minutes(grib_reader *r, long dd, long dt, const long ckey[CONCEPT_KEYS])
{
    codes_handle *h = r->h;
    long key[8] = {0};
    int cacheable = r->use_cache && r->edition == 1;
    if (cacheable) {
        key[0] = ckey[1]; /* centre */
        key[1] = ckey[2]; /* subCentre */
        key[2] = ckey[3]; /* table2Version */
        key[3] = ckey[4]; /* indicatorOfParameter */
        key[4] = ckey[7]; /* timeRangeIndicator */
        key[5] = get_long(h, "unitOfTimeRange", -1);
        key[6] = get_long(h, "P1", -1);
        key[7] = get_long(h, "P2", -1);
        for (int i = 0; i < r->nperiods; i++)
            if (!memcmp(r->periods[i].key, key, sizeof key)) return r->periods[i].minutes;
    }
    long vd = get_long(h, "validityDate", dd), vt = get_long(h, "validityTime", dt);
    long minutes = lround(60.0 * (date_time_hours(vd, vt) - date_time_hours(dd, dt)));
    if (cacheable) {
        period_entry *e = &r->periods[r->nperiods < SMALL_CACHE ? r->nperiods++ : SMALL_CACHE - 1];
        memcpy(e->key, key, sizeof key);
        e->minutes = minutes;
    }
    return minutes;
}

int grib_reader_next(grib_reader *r, field_meta *m, int *done)
{
    *done = 0;
    if (r->h) {
        codes_handle_delete(r->h);
        r->h = NULL;
    }
    r->geom_valid = 0;
    r->layout = NULL;
    r->concepts = NULL;
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
    r->edition = get_long(h, "editionNumber", 0);
    long centre = get_long(h, "centre", -999999), sub_centre = get_long(h, "subCentre", -999999);
    find_layout(r, centre, sub_centre);
    long ckey[CONCEPT_KEYS];
    get_concepts(r, m, centre, sub_centre, ckey);
    m->level = opt_double(r, OPT_LEVEL, NAN);
    m->member = -1;
    /* `number` is read directly: some local definitions define it only for some values (centre 214
     * local 1: only when perturbationNumber != 0), so its presence is not a property of the layout */
    if (opt_long(r, OPT_NFCE, 0) > 0) m->member = (int)get_long(h, "number", -1);
    m->has_time = 1;
    long dd = get_long(h, "dataDate", 0), dt = get_long(h, "dataTime", 0);
    long minutes = period_minutes(r, dd, dt, ckey);
    m->reference_time = date_time_hours(dd, dt);
    m->forecast_period = (double)minutes / 60.0;
    m->valid_time = m->reference_time + m->forecast_period;
    snprintf(m->calendar, sizeof m->calendar, "proleptic_gregorian");
    get_packing(r, m->packing, sizeof m->packing);
    m->bits_per_value = (int)get_long(h, "bitsPerValue", 0);
    m->edition = (int)r->edition;
    size_t n = 0;
    if (codes_get_size(h, "values", &n) != 0)
        return sm_fail(SM_ERR_IO, "%s: message %d: field has no values", r->path, r->msg);
    r->npoints = n;
    m->npoints = (int64_t)n;
    r->nfields_ok++;
    return SM_OK;
}

/* Builds the geometry of the current field into `e` (its geometry and canonicalisation). */
static int build_geometry(grib_reader *r, geom_entry *e)
{
    codes_handle *h = r->h;
    char gt[64];
    get_string(h, "gridType", gt, sizeof gt);
    size_t n = r->npoints;
    e->npoints = n;
    e->edition = r->edition;
    e->ineg = (int)get_long(h, "iScansNegatively", 0);
    e->jcons = (int)get_long(h, "jPointsAreConsecutive", 0);
    e->alt = (int)get_long(h, "alternativeRowScanning", 0);
    double lat1 = get_double(h, "latitudeOfFirstGridPointInDegrees", NAN);
    double lat2 = get_double(h, "latitudeOfLastGridPointInDegrees", NAN);
    double lon1 = get_double(h, "longitudeOfFirstGridPointInDegrees", NAN);
    double lon2 = get_double(h, "longitudeOfLastGridPointInDegrees", NAN);
    long nj = get_long(h, "Nj", 0);
    int st = SM_OK;
    if (!strcmp(gt, "regular_ll") || !strcmp(gt, "regular_gg")) {
        long ni = get_long(h, "Ni", 0);
        if (ni < 1 || nj < 1 || (size_t)(ni * nj) != n)
            return sm_fail(SM_ERR_IO, "%s: message %d: %s grid %ld x %ld does not match %zu values", r->path, r->msg, gt, ni, nj, n);
        e->ni = (int)ni;
        e->nj = (int)nj;
        e->reduced = 0;
        double west = e->ineg ? lon2 : lon1, east = e->ineg ? lon1 : lon2;
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
        st = io_geometry_regular((int)nj, lat, (int)ni, west, dlon, gt, &e->geom);
        free(lat);
    } else if (!strcmp(gt, "reduced_gg") || !strcmp(gt, "reduced_ll")) {
        size_t npl = 0;
        if (codes_get_size(h, "pl", &npl) != 0 || npl < 1)
            return sm_fail(SM_ERR_IO, "%s: message %d: %s grid without a pl array", r->path, r->msg, gt);
        if (e->ineg || e->jcons || e->alt)
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
        e->reduced = 1;
        e->nj = (int)npl;
        st = io_geometry_rows((int)npl, lat, len, l0, dl, gt, &e->geom);
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
    return SM_OK;
}

/* The bytes of the current message's grid section (GRIB1 section 2, GRIB2 section 3), or NULL
 * when there is none (a GRIB1 message on a catalogued grid without a grid section). */
static const unsigned char *grid_section(grib_reader *r, size_t *len)
{
    codes_handle *h = r->h;
    long off = -1, l = -1;
    if (r->edition == 1) {
        if (!get_long(h, "gridDescriptionSectionPresent", 0)) return NULL;
        off = get_long(h, "offsetSection2", -1);
        l = get_long(h, "section2Length", -1);
    } else if (r->edition == 2) {
        off = get_long(h, "offsetSection3", -1);
        l = get_long(h, "section3Length", -1);
    }
    const void *msg = NULL;
    size_t size = 0;
    if (off < 0 || l <= 0 || codes_get_message(h, &msg, &size) != 0 || !msg || (size_t)off + (size_t)l > size) return NULL;
    *len = (size_t)l;
    return (const unsigned char *)msg + off;
}

int grib_reader_geometry(grib_reader *r, const src_geometry **geom)
{
    if (!r->h) return sm_fail(SM_ERR_IO, "%s: no current GRIB field", r->path);
    if (!r->geom_valid) {
        size_t len = 0;
        const unsigned char *sec = r->use_cache ? grid_section(r, &len) : NULL;
        geom_entry *e = NULL;
        if (sec) {
            for (int i = 0; i < r->ngeoms && !e; i++) {
                geom_entry *c = &r->geoms[i];
                if (c->geom && c->edition == r->edition && c->npoints == r->npoints && c->len == len && !memcmp(c->bytes, sec, len)) e = c;
            }
        }
        if (!e) {
            if (sec) {
                e = &r->geoms[r->ngeoms < GEOM_CACHE ? r->ngeoms++ : r->geom_next++ % GEOM_CACHE];
                if (e == r->cur) r->cur = NULL;
            } else {
                e = &r->own;
            }
            geom_entry_clear(e);
            int st = build_geometry(r, e);
            if (st == SM_OK && sec) {
                e->bytes = malloc(len);
                if (e->bytes) {
                    memcpy(e->bytes, sec, len);
                    e->len = len;
                } else {
                    st = sm_fail(SM_ERR_NUMERIC, "%s: out of memory", r->path);
                }
            }
            if (st) {
                geom_entry_clear(e);
                return st;
            }
        }
        r->cur = e;
        r->geom_valid = 1;
    }
    *geom = r->cur->geom;
    return SM_OK;
}

int grib_reader_decode(grib_reader *r, const double **values, const src_geometry **geom)
{
    const src_geometry *g = NULL;
    int st = grib_reader_geometry(r, &g);
    if (st) return st;
    const geom_entry *e = r->cur;
    codes_handle *h = r->h;
    size_t n = r->npoints;
    int reorder = !e->reduced && (e->ineg || e->jcons || e->alt);
    if (n > r->cap) {
        free(r->raw);
        free(r->values);
        r->raw = NULL;
        r->values = malloc(n * sizeof *r->values);
        if (!r->values) {
            r->cap = 0;
            return sm_fail(SM_ERR_NUMERIC, "%s: message %d: out of memory for %zu values", r->path, r->msg, n);
        }
        r->cap = n;
    }
    if (reorder && !r->raw) {
        r->raw = malloc(r->cap * sizeof *r->raw);
        if (!r->raw) return sm_fail(SM_ERR_NUMERIC, "%s: message %d: out of memory for %zu values", r->path, r->msg, n);
    }
    /* values in scan order; straight into the output when that is already the canonical layout */
    double *dst = reorder ? r->raw : r->values;
    size_t got = n;
    int err = codes_get_double_array(h, "values", dst, &got);
    if (err || got != n)
        return sm_fail(SM_ERR_IO, "%s: message %d: cannot decode the values: %s", r->path, r->msg, codes_get_error_message(err));
    long bitmap = get_long(h, "bitmapPresent", 0);
    long mvm = opt_long(r, OPT_MVM, 0);
    if (bitmap || mvm) {
        double mv = get_double(h, "missingValue", 9999.0);
        for (size_t i = 0; i < n; i++)
            if (dst[i] == mv) dst[i] = NAN;
    }
    if (reorder) {
        int ni = e->ni, nj = e->nj;
        for (int k = 0; k < nj; k++) {
            double *out = r->values + (size_t)k * ni;
            int flip = e->ineg ^ (e->alt && (k & 1));
            for (int i = 0; i < ni; i++) {
                int c = flip ? ni - 1 - i : i;
                size_t src = e->jcons ? (size_t)c * nj + k : (size_t)k * ni + c;
                out[i] = r->raw[src];
            }
        }
    }
    *values = r->values;
    *geom = g;
    return SM_OK;
}
