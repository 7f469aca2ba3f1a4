/* Target grids: grids/<name>.yaml definitions (parsed with core/yaml_tree), lookup by name or
 * path, coordinates stored latitude north -> south and longitude ascending, cos-lat weights. */
#include "grid/grid.h"
#include "core/log.h"
#include "core/yaml_tree.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define DEG2RAD (3.14159265358979323846 / 180.0)
#define MAX_AXIS 1000000

void grid_free(grid *g)
{
    if (!g) return;
    free(g->lat);
    free(g->lon);
    free(g->area_weight);
    free(g);
}

/* Equally spaced and n * d == 360 (within 1e-6 deg): the axis wraps around the globe. */
static int axis_is_global(int n, const double *lon)
{
    if (n < 2) return 0;
    double d = lon[1] - lon[0];
    if (!(d > 0)) return 0;
    for (int i = 1; i < n; i++)
        if (fabs((lon[i] - lon[i - 1]) - d) > 1e-6) return 0;
    return fabs(n * d - 360.0) < 1e-6;
}

static int grid_alloc(const char *name, grid_kind kind, int nlat, int nlon, grid **out)
{
    grid *g = calloc(1, sizeof *g);
    if (!g) return sm_fail(SM_ERR_NUMERIC, "grid %s: out of memory", name);
    snprintf(g->name, sizeof g->name, "%s", name ? name : "");
    g->kind = kind;
    g->nlat = nlat;
    g->nlon = nlon;
    g->lat = malloc((size_t)nlat * sizeof *g->lat);
    g->lon = malloc((size_t)nlon * sizeof *g->lon);
    g->area_weight = malloc((size_t)nlat * sizeof *g->area_weight);
    if (!g->lat || !g->lon || !g->area_weight) {
        grid_free(g);
        return sm_fail(SM_ERR_NUMERIC, "grid %s: out of memory", name);
    }
    *out = g;
    return SM_OK;
}

static void grid_set_weights(grid *g)
{
    if (g->kind == GRID_XY) {
        for (int j = 0; j < g->nlat; j++) g->area_weight[j] = 1.0;
        g->periodic_lon = 0;
        return;
    }
    double mean = 0;
    for (int j = 0; j < g->nlat; j++) mean += cos(g->lat[j] * DEG2RAD);
    mean /= g->nlat;
    for (int j = 0; j < g->nlat; j++)
        g->area_weight[j] = mean > 0 ? cos(g->lat[j] * DEG2RAD) / mean : 1.0;
    g->periodic_lon = axis_is_global(g->nlon, g->lon);
}

/* Copies the axes; y/latitude reversed to descending when given ascending. */
static int grid_create_kind(const char *name, grid_kind kind, int nlat, const double *lat, int nlon,
                            const double *lon, grid **out)
{
    *out = NULL;
    const char *what = kind == GRID_XY ? "y" : "latitude";
    const char *whatx = kind == GRID_XY ? "x" : "longitude";
    if (nlat < 1 || nlon < 1 || nlat > MAX_AXIS || nlon > MAX_AXIS)
        return sm_fail(SM_ERR_USAGE, "grid %s: invalid size %d x %d (lat x lon)", name, nlat, nlon);
    for (int j = 0; j < nlat; j++) {
        if (!isfinite(lat[j]) || (kind == GRID_LATLON && fabs(lat[j]) > 90.0 + 1e-9))
            return sm_fail(SM_ERR_USAGE, "grid %s: %s %d is %g (must be finite, within -90..90)", name,
                           what, j, lat[j]);
    }
    for (int i = 0; i < nlon; i++)
        if (!isfinite(lon[i]))
            return sm_fail(SM_ERR_USAGE, "grid %s: %s %d is not finite", name, whatx, i);
    int asc = nlat > 1 && lat[1] > lat[0];
    for (int j = 1; j < nlat; j++) {
        if (asc ? !(lat[j] > lat[j - 1]) : !(lat[j] < lat[j - 1]))
            return sm_fail(SM_ERR_USAGE, "grid %s: %s is not strictly monotonic at index %d", name, what, j);
    }
    for (int i = 1; i < nlon; i++)
        if (!(lon[i] > lon[i - 1]))
            return sm_fail(SM_ERR_USAGE, "grid %s: %s is not strictly increasing at index %d", name, whatx, i);
    if (kind == GRID_LATLON && nlon > 1 && lon[nlon - 1] - lon[0] >= 360.0)
        return sm_fail(SM_ERR_USAGE, "grid %s: longitudes span %g degrees (more than the globe)", name,
                       lon[nlon - 1] - lon[0]);
    grid *g = NULL;
    int st = grid_alloc(name, kind, nlat, nlon, &g);
    if (st) return st;
    for (int j = 0; j < nlat; j++) g->lat[j] = asc ? lat[nlat - 1 - j] : lat[j];
    memcpy(g->lon, lon, (size_t)nlon * sizeof *lon);
    grid_set_weights(g);
    *out = g;
    return SM_OK;
}

int grid_create_latlon(const char *name, int nlat, const double *lat, int nlon, const double *lon, grid **out)
{
    if (!out) return sm_fail(SM_ERR_USAGE, "grid_create_latlon: NULL output");
    if (!lat || !lon) return sm_fail(SM_ERR_USAGE, "grid %s: NULL coordinates", name ? name : "");
    return grid_create_kind(name ? name : "", GRID_LATLON, nlat, lat, nlon, lon, out);
}

int grid_create_xy(const char *name, int ny, const double *y, int nx, const double *x, grid **out)
{
    if (!out) return sm_fail(SM_ERR_USAGE, "grid_create_xy: NULL output");
    if (!y || !x) return sm_fail(SM_ERR_USAGE, "grid %s: NULL coordinates", name ? name : "");
    return grid_create_kind(name ? name : "", GRID_XY, ny, y, nx, x, out);
}

int grid_same(const grid *a, const grid *b)
{
    if (!a || !b) return 0;
    if (a->kind != b->kind || a->nlat != b->nlat || a->nlon != b->nlon) return 0;
    for (int j = 0; j < a->nlat; j++)
        if (fabs(a->lat[j] - b->lat[j]) > 1e-6) return 0;
    for (int i = 0; i < a->nlon; i++)
        if (fabs(a->lon[i] - b->lon[i]) > 1e-6) return 0;
    return 1;
}

/* ---- grid definition files ------------------------------------------------------------- */

static int parse_number(const char *path, const ynode *n, const char *what, double *out)
{
    if (!n || n->kind != YNODE_SCALAR || !n->value)
        return sm_fail(SM_ERR_USAGE, "%s:%d: '%s' must be a number", path, n ? n->line : 0, what);
    char *end;
    errno = 0;
    double v = strtod(n->value, &end);
    while (*end == ' ') end++;
    if (end == n->value || *end || errno || !isfinite(v))
        return sm_fail(SM_ERR_USAGE, "%s:%d: '%s' must be a number, got '%s'", path, n->line, what, n->value);
    *out = v;
    return SM_OK;
}

static int check_keys(const char *path, const ynode *map, const char *const *allowed, const char *where)
{
    for (size_t i = 0; i < map->n_items; i++) {
        int ok = 0;
        for (const char *const *a = allowed; *a; a++)
            if (strcmp(map->items[i]->key, *a) == 0) ok = 1;
        if (!ok) {
            char list[256] = "";
            for (const char *const *a = allowed; *a; a++) {
                strncat(list, *a, sizeof list - strlen(list) - 1);
                if (a[1]) strncat(list, ", ", sizeof list - strlen(list) - 1);
            }
            return sm_fail(SM_ERR_USAGE, "%s:%d: unknown key '%s%s' (expected one of: %s)", path,
                           map->items[i]->line, where, map->items[i]->key, list);
        }
    }
    return SM_OK;
}

/* An axis {first, last, increment}: n = |last - first| / increment + 1, must be an integer. */
static int parse_axis(const char *path, const ynode *root, const char *key, double **vals, int *n)
{
    const ynode *ax = yaml_tree_get(root, key);
    if (!ax) return sm_fail(SM_ERR_USAGE, "%s: missing key '%s' ({first, last, increment})", path, key);
    if (ax->kind != YNODE_MAP)
        return sm_fail(SM_ERR_USAGE, "%s:%d: '%s' must be a map {first, last, increment}", path, ax->line, key);
    static const char *const allowed[] = {"first", "last", "increment", NULL};
    char where[32];
    snprintf(where, sizeof where, "%s.", key);
    int st = check_keys(path, ax, allowed, where);
    if (st) return st;
    double first, last, inc;
    const char *names[3] = {"first", "last", "increment"};
    double *dst[3] = {&first, &last, &inc};
    for (int k = 0; k < 3; k++) {
        const ynode *v = yaml_tree_get(ax, names[k]);
        if (!v) return sm_fail(SM_ERR_USAGE, "%s:%d: '%s' lacks '%s'", path, ax->line, key, names[k]);
        char what[48];
        snprintf(what, sizeof what, "%s.%s", key, names[k]);
        if ((st = parse_number(path, v, what, dst[k]))) return st;
    }
    if (!(inc > 0))
        return sm_fail(SM_ERR_USAGE, "%s:%d: '%s.increment' must be > 0 (the direction comes from first/last)",
                       path, ax->line, key);
    double steps = fabs(last - first) / inc;
    double rs = floor(steps + 0.5);
    if (fabs(steps - rs) > 1e-6 || rs + 1 > MAX_AXIS)
        return sm_fail(SM_ERR_USAGE, "%s:%d: '%s': (last - first) = %g is not a whole number of increments %g",
                       path, ax->line, key, last - first, inc);
    *n = (int)rs + 1;
    *vals = malloc((size_t)*n * sizeof **vals);
    if (!*vals) return sm_fail(SM_ERR_NUMERIC, "%s: out of memory", path);
    double sign = last >= first ? 1.0 : -1.0;
    for (int i = 0; i < *n; i++) (*vals)[i] = first + sign * inc * i;
    if (*n > 1) (*vals)[*n - 1] = last;
    return SM_OK;
}

static int grid_from_tree(const char *path, const ynode *root, const char *fallback_name, grid **out)
{
    if (root->kind != YNODE_MAP) return sm_fail(SM_ERR_USAGE, "%s: a grid definition must be a YAML map", path);
    static const char *const allowed[] = {"name", "description", "type", "resolution", "lat", "lon", "x", "y", NULL};
    int st = check_keys(path, root, allowed, "");
    if (st) return st;
    const ynode *nm = yaml_tree_get(root, "name");
    const char *name = nm && nm->kind == YNODE_SCALAR && nm->value ? nm->value : fallback_name;
    const ynode *ty = yaml_tree_get(root, "type");
    if (!ty || ty->kind != YNODE_SCALAR || !ty->value)
        return sm_fail(SM_ERR_USAGE, "%s: missing key 'type' (global_cell_centred, latlon or xy)", path);
    double *lat = NULL, *lon = NULL;
    int nlat = 0, nlon = 0;
    grid_kind kind = GRID_LATLON;
    if (strcmp(ty->value, "global_cell_centred") == 0) {
        const ynode *rn = yaml_tree_get(root, "resolution");
        double res;
        if (!rn) return sm_fail(SM_ERR_USAGE, "%s: type global_cell_centred needs 'resolution' (degrees)", path);
        if ((st = parse_number(path, rn, "resolution", &res))) return st;
        double n = 180.0 / res;
        if (!(res > 0) || fabs(n - floor(n + 0.5)) > 1e-9 || n > MAX_AXIS / 2)
            return sm_fail(SM_ERR_USAGE, "%s:%d: resolution %g must divide 180 degrees", path, rn->line, res);
        if (yaml_tree_get(root, "lat") || yaml_tree_get(root, "lon") || yaml_tree_get(root, "x") || yaml_tree_get(root, "y"))
            return sm_fail(SM_ERR_USAGE, "%s: type global_cell_centred takes 'resolution' only (no lat/lon/x/y)", path);
        nlat = (int)floor(n + 0.5);
        nlon = 2 * nlat;
        lat = malloc((size_t)nlat * sizeof *lat);
        lon = malloc((size_t)nlon * sizeof *lon);
        if (!lat || !lon) {
            free(lat);
            free(lon);
            return sm_fail(SM_ERR_NUMERIC, "%s: out of memory", path);
        }
        for (int j = 0; j < nlat; j++) lat[j] = 90.0 - res * (j + 0.5);
        for (int i = 0; i < nlon; i++) lon[i] = res * i;
    } else if (strcmp(ty->value, "latlon") == 0 || strcmp(ty->value, "xy") == 0) {
        kind = strcmp(ty->value, "xy") == 0 ? GRID_XY : GRID_LATLON;
        if (yaml_tree_get(root, "resolution"))
            return sm_fail(SM_ERR_USAGE, "%s: 'resolution' is only for type global_cell_centred", path);
        const char *ky = kind == GRID_XY ? "y" : "lat", *kx = kind == GRID_XY ? "x" : "lon";
        const char *bad1 = kind == GRID_XY ? "lat" : "y", *bad2 = kind == GRID_XY ? "lon" : "x";
        if (yaml_tree_get(root, bad1) || yaml_tree_get(root, bad2))
            return sm_fail(SM_ERR_USAGE, "%s: type %s uses '%s' and '%s' axes", path, ty->value, ky, kx);
        if ((st = parse_axis(path, root, ky, &lat, &nlat))) return st;
        if ((st = parse_axis(path, root, kx, &lon, &nlon))) {
            free(lat);
            return st;
        }
    } else {
        return sm_fail(SM_ERR_USAGE, "%s:%d: unknown grid type '%s' (expected global_cell_centred, latlon or xy)",
                       path, ty->line, ty->value);
    }
    st = grid_create_kind(name, kind, nlat, lat, nlon, lon, out);
    free(lat);
    free(lon);
    if (st) return sm_fail(st, "%s: %s", path, sm_last_error());
    return SM_OK;
}

static int is_file(const char *p)
{
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISREG(sb.st_mode);
}

static int looks_like_path(const char *s)
{
    size_t n = strlen(s);
    return strchr(s, '/') != NULL || (n > 5 && strcmp(s + n - 5, ".yaml") == 0) ||
           (n > 4 && strcmp(s + n - 4, ".yml") == 0);
}

/* The directories searched for grids/<name>.yaml, in order; returns how many were filled. */
static int search_dirs(char dirs[][1024], int max)
{
    int n = 0;
    const char *env = getenv("SMOECAST_GRID_PATH");
    if (env && *env) {
        const char *p = env;
        while (*p && n < max) {
            const char *c = strchr(p, ':');
            size_t len = c ? (size_t)(c - p) : strlen(p);
            if (len > 0 && len < 1024) {
                memcpy(dirs[n], p, len);
                dirs[n][len] = 0;
                n++;
            }
            if (!c) break;
            p = c + 1;
        }
    }
#ifdef SMOECAST_SOURCE_DIR
    if (n < max) snprintf(dirs[n++], 1024, "%s/grids", SMOECAST_SOURCE_DIR);
#endif
#ifdef SMOECAST_SHARE_DIR
    if (n < max) snprintf(dirs[n++], 1024, "%s/grids", SMOECAST_SHARE_DIR);
#endif
    return n;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* "a, b, c" of every <name>.yaml in the search directories (deduplicated, sorted). */
static void list_available(char dirs[][1024], int ndirs, char *buf, size_t len)
{
    char *names[256];
    int n = 0;
    buf[0] = 0;
    for (int d = 0; d < ndirs; d++) {
        DIR *dir = opendir(dirs[d]);
        if (!dir) continue;
        struct dirent *e;
        while ((e = readdir(dir)) && n < 256) {
            size_t l = strlen(e->d_name);
            if (l <= 5 || strcmp(e->d_name + l - 5, ".yaml") != 0) continue;
            char *s = strndup(e->d_name, l - 5);
            if (!s) continue;
            int dup = 0;
            for (int k = 0; k < n; k++) dup |= strcmp(names[k], s) == 0;
            if (dup) free(s);
            else names[n++] = s;
        }
        closedir(dir);
    }
    qsort(names, (size_t)n, sizeof *names, cmp_str);
    for (int k = 0; k < n; k++) {
        if (k) strncat(buf, ", ", len - strlen(buf) - 1);
        strncat(buf, names[k], len - strlen(buf) - 1);
        free(names[k]);
    }
    if (!n) snprintf(buf, len, "(none found)");
}

static int load_file(const char *path, const char *fallback_name, grid **out)
{
    ynode *root = NULL;
    int st = yaml_tree_load_file(path, &root);
    if (st) return sm_fail_keep(st, "%s: cannot read grid definition", path);
    st = grid_from_tree(path, root, fallback_name, out);
    yaml_tree_free(root);
    return st;
}

int grid_load(const char *name_or_path, grid **out)
{
    if (!out) return sm_fail(SM_ERR_USAGE, "grid_load: NULL output");
    *out = NULL;
    if (!name_or_path || !*name_or_path) return sm_fail(SM_ERR_USAGE, "grid_load: empty grid name");
    if (looks_like_path(name_or_path)) {
        if (!is_file(name_or_path))
            return sm_fail(SM_ERR_IO, "%s: grid definition file not found", name_or_path);
        const char *base = strrchr(name_or_path, '/');
        base = base ? base + 1 : name_or_path;
        char fb[64];
        snprintf(fb, sizeof fb, "%s", base);
        char *dot = strrchr(fb, '.');
        if (dot) *dot = 0;
        return load_file(name_or_path, fb, out);
    }
    char dirs[16][1024];
    int nd = search_dirs(dirs, 16);
    if (strlen(name_or_path) > 200)
        return sm_fail(SM_ERR_USAGE, "grid name '%.40s...' is too long", name_or_path);
    for (int d = 0; d < nd; d++) {
        size_t len = strlen(dirs[d]) + strlen(name_or_path) + 8;
        char *path = malloc(len);
        if (!path) return sm_fail(SM_ERR_NUMERIC, "grid_load: out of memory");
        snprintf(path, len, "%s/%s.yaml", dirs[d], name_or_path);
        if (is_file(path)) {
            int st = load_file(path, name_or_path, out);
            free(path);
            return st;
        }
        free(path);
    }
    char avail[1024];
    list_available(dirs, nd, avail, sizeof avail);
    return sm_fail(SM_ERR_IO, "unknown grid '%s'; available grids: %s (or give a path to a .yaml file)",
                   name_or_path, avail);
}
