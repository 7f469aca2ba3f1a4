/* PNG maps through the GMT C API: projection and layout choice, palettes, the in-memory grid,
 * classic-mode PostScript in a private temporary directory, psconvert to PNG (see plot_gmt.h). */
#include "tasks/plot_gmt.h"
#include "core/log.h"
#include "core/outfile.h"

#include <gmt.h>

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PLOT_ARGS_MAX 24

void plot_style_default(plot_style *s)
{
    memset(s, 0, sizeof *s);
    s->width_cm = 16.0;
    s->height_cm = 0.0;
    s->dpi = 150;
}

int plot_png_pixels(double cm, int dpi) { return (int)lround(cm / 2.54 * dpi); }

/* ---------------------------------------------------------------- GMT messages */

static _Thread_local char t_gmt_error[512];

static int gmt_print(FILE *fp, const char *message)
{
    (void)fp;
    if (strstr(message, "[ERROR]") || strstr(message, "ERROR")) {
        snprintf(t_gmt_error, sizeof t_gmt_error, "%s", message);
        size_t n = strlen(t_gmt_error);
        while (n > 0 && (t_gmt_error[n - 1] == '\n' || t_gmt_error[n - 1] == ' ')) t_gmt_error[--n] = 0;
    }
    log_debug("gmt: %s", message);
    return 0;
}

typedef struct {
    void *api;
    const plot_field *f;
    char dir[512];
    char ps[600];
    char cpt[600];
    int argc;
    char *argv[PLOT_ARGS_MAX];
} gmt_run;

static void args_reset(gmt_run *g)
{
    for (int i = 0; i < g->argc; i++) free(g->argv[i]);
    g->argc = 0;
}

static void arg(gmt_run *g, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void arg(gmt_run *g, const char *fmt, ...)
{
    if (g->argc >= PLOT_ARGS_MAX) return;
    va_list ap;
    va_start(ap, fmt);
    char buf[1024];
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    g->argv[g->argc++] = strdup(buf);
}

static int call(gmt_run *g, const char *module)
{
    t_gmt_error[0] = 0;
    for (int i = 0; i < g->argc; i++)
        if (!g->argv[i]) {
            args_reset(g);
            return sm_fail(SM_ERR_IO, "%s: out of memory", g->f->path);
        }
    if (log_get_level() >= LOG_LEVEL_DEBUG) {
        char line[2048];
        size_t used = (size_t)snprintf(line, sizeof line, "gmt %s", module);
        for (int i = 0; i < g->argc && used < sizeof line; i++) used += (size_t)snprintf(line + used, sizeof line - used, " %s", g->argv[i]);
        log_debug("%s", line);
    }
    int st = GMT_Call_Module(g->api, module, g->argc, g->argv);
    args_reset(g);
    if (st != GMT_NOERROR)
        return sm_fail(SM_ERR_NUMERIC, "%s: variable '%s': GMT %s failed (code %d)%s%s", g->f->path, g->f->var, module, st,
                       t_gmt_error[0] ? ": " : "", t_gmt_error);
    return SM_OK;
}

/* ---------------------------------------------------------------- temporary directory */

static void remove_tree(const char *path)
{
    DIR *d = opendir(path);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            char sub[1024];
            snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
            struct stat sb;
            if (lstat(sub, &sb) == 0 && S_ISDIR(sb.st_mode)) remove_tree(sub);
            else unlink(sub);
        }
        closedir(d);
    }
    rmdir(path);
}

static int copy_file(const char *from, const char *to)
{
    FILE *in = fopen(from, "rb");
    if (!in) return -1;
    FILE *out = fopen(to, "wb");
    if (!out) {
        fclose(in);
        return -1;
    }
    char buf[65536];
    size_t n;
    int err = 0;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        if (fwrite(buf, 1, n, out) != n) err = 1;
    if (ferror(in)) err = 1;
    fclose(in);
    if (fclose(out) != 0) err = 1;
    return err ? -1 : 0;
}

/* ---------------------------------------------------------------- geometry */

typedef struct {
    double wesn[4];     /* grid region */
    double inc[2];
    unsigned reg;       /* GMT_GRID_NODE_REG or GMT_GRID_PIXEL_REG */
    int wrap;           /* node grid: repeat the first column at the end */
    long shift;         /* periodic grids: grid column c holds source column (c + shift) mod nx */
    double map[4];      /* map region */
    char proj;          /* 'N' Robinson, 'Q' equidistant cylindrical, 'M' Mercator, 'X' Cartesian */
    double lon0;
    double ratio;       /* map height / map width */
} geometry;

static int axis_step(const plot_field *f, const double *v, size_t n, const char *name, double *step)
{
    double d = (v[n - 1] - v[0]) / (double)(n - 1);
    for (size_t i = 1; i < n; i++)
        if (fabs(v[i] - v[i - 1] - d) > 0.05 * d)
            return sm_fail(SM_ERR_IO, "%s: variable '%s': coordinate '%s' is not evenly spaced (step %g at index %zu, mean %g); "
                           "plot draws regular grids only: regrid it first (smoecast ingest)", f->path, f->var, name, v[i] - v[i - 1], i, d);
    *step = d;
    return SM_OK;
}

static int choose_geometry(const plot_field *f, geometry *g)
{
    memset(g, 0, sizeof *g);
    double dx = 0, dy = 0;
    int st = axis_step(f, f->x, f->nx, f->x_name, &dx);
    if (!st) st = axis_step(f, f->y, f->ny, f->y_name, &dy);
    if (st) return st;
    g->inc[0] = dx, g->inc[1] = dy;
    double x0 = f->x[0], x1 = f->x[f->nx - 1], y0 = f->y[0], y1 = f->y[f->ny - 1];
    if (f->kind == PLOT_GRID_XY) {
        g->reg = GMT_GRID_PIXEL_REG;
        g->wesn[0] = x0 - dx / 2, g->wesn[1] = x1 + dx / 2, g->wesn[2] = y0 - dy / 2, g->wesn[3] = y1 + dy / 2;
        memcpy(g->map, g->wesn, sizeof g->map);
        g->proj = 'X';
        int same_units = !strcmp(f->x_units, f->y_units);
        double r = same_units ? (g->wesn[3] - g->wesn[2]) / (g->wesn[1] - g->wesn[0]) : (double)f->ny / (double)f->nx;
        g->ratio = fmin(fmax(r, 0.2), 5.0);
        return SM_OK;
    }
    if (y0 - dy / 2 >= -90.0 - 1e-6 && y1 + dy / 2 <= 90.0 + 1e-6) {
        g->reg = GMT_GRID_PIXEL_REG;
        g->wesn[0] = x0 - dx / 2, g->wesn[1] = x1 + dx / 2;
        g->wesn[2] = fmax(y0 - dy / 2, -90.0), g->wesn[3] = fmin(y1 + dy / 2, 90.0);
    } else {
        g->reg = GMT_GRID_NODE_REG;
        g->wrap = f->periodic_x;
        g->wesn[0] = x0, g->wesn[1] = f->periodic_x ? x0 + 360.0 : x1;
        g->wesn[2] = fmax(y0, -90.0), g->wesn[3] = fmin(y1, 90.0);
    }
    memcpy(g->map, g->wesn, sizeof g->map);
    double lat_extent = g->wesn[3] - g->wesn[2];
    if (f->periodic_x) {
        /* Rotate the columns so the grid starts as close to 180 W as the grid allows; the map
         * is centred on the middle of that grid (0 E or within half a cell of it), so GMT never
         * has to wrap the grid itself (which leaves a seam). */
        double step = 360.0 / (double)f->nx;
        double edge0 = g->reg == GMT_GRID_PIXEL_REG ? x0 - step / 2 : x0;
        long m = (long)ceil((-180.0 - edge0) / step - 1e-9);
        g->shift = m;
        g->inc[0] = step;
        g->wesn[0] = edge0 + (double)m * step;
        g->wesn[1] = g->wesn[0] + 360.0;
        memcpy(g->map, g->wesn, sizeof g->map);
        g->lon0 = g->wesn[0] + 180.0;
        if (fabs(g->lon0) < 1e-9) g->lon0 = 0.0;
        g->proj = lat_extent >= 120.0 ? 'N' : 'Q';
    } else {
        g->lon0 = 0.5 * (g->map[0] + g->map[1]);
        g->proj = (g->map[2] < -80.0 || g->map[3] > 80.0) ? 'Q' : 'M';
    }
    return SM_OK;
}

static void proj_arg(gmt_run *r, const geometry *g, double width_cm)
{
    switch (g->proj) {
    case 'N': arg(r, "-JN%g/%.4fc", g->lon0, width_cm); break;
    case 'Q': arg(r, "-JQ%g/%.4fc", g->lon0, width_cm); break;
    case 'M': arg(r, "-JM%g/%.4fc", g->lon0, width_cm); break;
    default: arg(r, "-JX%.4fc/%.4fc", width_cm, width_cm * g->ratio); break;
    }
}

static void region_arg(gmt_run *r, const double *w)
{
    arg(r, "-R%.10g/%.10g/%.10g/%.10g", w[0], w[1], w[2], w[3]);
}

/* Map height / width for geographic projections, measured by mapproject -W. */
static int measure_ratio(gmt_run *r, geometry *g)
{
    if (g->proj == 'X') return SM_OK;
    char vout[GMT_VF_LEN];
    if (GMT_Open_VirtualFile(r->api, GMT_IS_DATASET, GMT_IS_NONE, GMT_OUT, NULL, vout) != GMT_NOERROR)
        return sm_fail(SM_ERR_NUMERIC, "%s: GMT cannot open a virtual file", r->f->path);
    region_arg(r, g->map);
    proj_arg(r, g, 10.0);
    arg(r, "-W");
    arg(r, "->%s", vout);
    int st = call(r, "mapproject");
    struct GMT_DATASET *D = st ? NULL : GMT_Read_VirtualFile(r->api, vout);
    GMT_Close_VirtualFile(r->api, vout);
    if (st) return st;
    if (!D || D->n_records < 1 || D->table[0]->segment[0]->n_columns < 2) {
        if (D) GMT_Destroy_Data(r->api, &D);
        return sm_fail(SM_ERR_NUMERIC, "%s: GMT mapproject returned no map size", r->f->path);
    }
    double w = D->table[0]->segment[0]->data[0][0], h = D->table[0]->segment[0]->data[1][0];
    GMT_Destroy_Data(r->api, &D);
    if (!(w > 0) || !(h > 0)) return sm_fail(SM_ERR_NUMERIC, "%s: GMT mapproject returned map size %g x %g", r->f->path, w, h);
    g->ratio = h / w;
    return SM_OK;
}

/* ---------------------------------------------------------------- palettes */

static const char *const tableau20[20] = {"31/119/180",  "255/127/14",  "44/160/44",   "214/39/40",   "148/103/189",
                                          "140/86/75",   "227/119/194", "127/127/127", "188/189/34",  "23/190/207",
                                          "174/199/232", "255/187/120", "152/223/138", "255/152/150", "197/176/213",
                                          "196/156/148", "247/182/210", "199/199/199", "219/219/141", "158/218/229"};

static void clean_label(const char *in, char *out, size_t len)
{
    size_t k = 0;
    for (const char *p = in; *p && k + 2 < len; p++) {
        if (*p == ',' || *p == ';') out[k++] = ' ';
        else if (*p == '@') out[k++] = '@', out[k++] = '@';
        else out[k++] = *p;
    }
    out[k] = 0;
}

/* A palette the user named that GMT cannot find is a usage error, not a drawing failure. */
static int palette_status(gmt_run *r, const plot_style *s, int st)
{
    if (st && s->cmap && *s->cmap) {
        char why[600];
        snprintf(why, sizeof why, "%s", t_gmt_error[0] ? t_gmt_error : sm_last_error());
        return sm_fail(SM_ERR_USAGE, "%s: variable '%s': --cmap %s: not a GMT palette (%s)", r->f->path, r->f->var, s->cmap, why);
    }
    return st;
}

static int write_categorical_cpt(gmt_run *r, const plot_style *s)
{
    const plot_field *f = r->f;
    if (s->cmap && *s->cmap) {
        char labels[4096] = "";
        size_t used = 0;
        for (int c = 0; c < f->n_categories && used < sizeof labels; c++) {
            char l[160];
            clean_label(f->cat_labels[c], l, sizeof l);
            used += (size_t)snprintf(labels + used, sizeof labels - used, "%s%s", c ? "," : "", l);
        }
        arg(r, "-C%s", s->cmap);
        arg(r, "-T0/%d/1", f->n_categories - 1 > 0 ? f->n_categories - 1 : 1);
        arg(r, "-F+c%s", labels);
        arg(r, "->%s", r->cpt);
        return palette_status(r, s, call(r, "makecpt"));
    }
    FILE *fp = fopen(r->cpt, "w");
    if (!fp) return sm_fail(SM_ERR_IO, "%s: cannot write %s: %s", f->path, r->cpt, strerror(errno));
    fprintf(fp, "# qualitative palette for %d categories\n# COLOR_MODEL = RGB\n", f->n_categories);
    for (int c = 0; c < f->n_categories; c++) {
        char col[32];
        if (c < 20) {
            snprintf(col, sizeof col, "%s", tableau20[c]);
        } else { /* golden-angle hues beyond the 20 Tableau colours */
            double h = fmod(c * 137.507764, 360.0), sat = 0.65, val = (c % 2) ? 0.75 : 0.95;
            snprintf(col, sizeof col, "%.0f-%.2f-%.2f", h, sat, val);
        }
        char l[160];
        clean_label(f->cat_labels[c], l, sizeof l);
        fprintf(fp, "%d\t%s\t;%s\n", c, col, l);
    }
    fprintf(fp, "B\twhite\nF\twhite\nN\twhite\n");
    if (fclose(fp) != 0) return sm_fail(SM_ERR_IO, "%s: cannot write %s", f->path, r->cpt);
    return SM_OK;
}

static int write_continuous_cpt(gmt_run *r, const plot_style *s, double lo, double hi)
{
    int sym = s->symmetric || r->f->is_difference;
    const char *cmap = s->cmap && *s->cmap ? s->cmap : (sym ? "vik" : "viridis");
    if (sym) {
        double a = fmax(fabs(lo), fabs(hi));
        if (!(a > 0)) a = 1.0;
        lo = -a, hi = a;
    } else if (!(hi > lo)) {
        double d = fabs(lo) > 0 ? 0.5 * fabs(lo) : 1.0;
        lo -= d, hi += d;
    }
    /* a hair wider than the data so that float rounding never falls outside the palette */
    double pad = 1e-5 * (hi - lo);
    arg(r, "-C%s", cmap);
    arg(r, "-T%.10g/%.10g", lo - pad, hi + pad);
    arg(r, "-Z");
    arg(r, "-D");
    arg(r, "->%s", r->cpt);
    return palette_status(r, s, call(r, "makecpt"));
}

/* ---------------------------------------------------------------- drawing */

static void gmt_text(const char *in, char *out, size_t len)
{
    size_t k = 0;
    for (const char *p = in; *p && k + 3 < len; p++) {
        if (*p == '@') out[k++] = '@', out[k++] = '@';
        else if (*p == '+') out[k++] = '\\', out[k++] = '+';
        else out[k++] = *p;
    }
    out[k] = 0;
}

static int fill_grid(gmt_run *r, const geometry *geo, struct GMT_GRID **out)
{
    const plot_field *f = r->f;
    struct GMT_GRID *G = GMT_Create_Data(r->api, GMT_IS_GRID, GMT_IS_SURFACE, GMT_CONTAINER_AND_DATA, NULL, (double *)geo->wesn,
                                         (double *)geo->inc, geo->reg, GMT_NOTSET, NULL);
    if (!G) return sm_fail(SM_ERR_NUMERIC, "%s: GMT cannot create a %zu x %zu grid: %s", f->path, f->ny, f->nx, t_gmt_error);
    unsigned ncol = G->header->n_columns, nrow = G->header->n_rows;
    size_t need_x = f->nx + (geo->wrap ? 1 : 0);
    if (ncol != need_x || nrow != f->ny) {
        GMT_Destroy_Data(r->api, &G);
        return sm_fail(SM_ERR_NUMERIC, "%s: variable '%s': GMT made a %u x %u grid for %zu x %zu points", f->path, f->var, nrow, ncol, f->ny, need_x);
    }
    double zmin = INFINITY, zmax = -INFINITY;
    for (unsigned row = 0; row < nrow; row++) {
        size_t j = f->ny - 1 - row; /* GMT row 0 is the northern/top edge */
        for (unsigned col = 0; col < ncol; col++) {
            long nx = (long)f->nx;
            size_t i = (size_t)((((long)col + geo->shift) % nx + nx) % nx);
            float v = f->data[j * f->nx + i];
            G->data[GMT_Get_Index(r->api, G->header, (int)row, (int)col)] = v;
            if (!isnan(v)) zmin = fmin(zmin, v), zmax = fmax(zmax, v);
        }
    }
    G->header->z_min = zmin, G->header->z_max = zmax;
    *out = G;
    return SM_OK;
}

/* Font size (points) that fits `text` into `width_cm` (Helvetica: about 0.55 em per character). */
static double fit_font(const char *text, double width_cm, double max_pt)
{
    double n = (double)strlen(text);
    if (n < 1) return max_pt;
    double pt = width_cm / (0.55 * n) * 72.0 / 2.54;
    return fmax(6.0, fmin(max_pt, pt));
}

static int draw(gmt_run *r, const plot_style *s, const char *title, const char *subtitle, int width_px, int height_px,
                double lo, double hi)
{
    const plot_field *f = r->f;
    geometry geo;
    int st = choose_geometry(f, &geo);
    if (st) return st;
    st = measure_ratio(r, &geo);
    if (st) return st;

    /* layout (cm) */
    double page_w = width_px * 2.54 / s->dpi;
    int vertical_legend = f->categorical && f->n_categories > 8;
    size_t longest = 0;
    for (int c = 0; c < f->n_categories; c++) longest = strlen(f->cat_labels[c]) > longest ? strlen(f->cat_labels[c]) : longest;
    double left = 1.6, right = 0.8, top = 1.8, bottom = vertical_legend ? (f->kind == PLOT_GRID_XY ? 1.6 : 1.2) : 3.0;
    if (vertical_legend) right = 1.4 + 0.2 * (double)(longest < 40 ? longest : 40);
    double map_w = page_w - left - right;
    if (map_w < 2.0) return sm_fail(SM_ERR_USAGE, "%s: page width %.1f cm leaves no room for the map", f->path, page_w);
    double map_h = map_w * geo.ratio;
    double page_h;
    if (height_px > 0) {
        page_h = height_px * 2.54 / s->dpi;
        double avail = page_h - top - bottom;
        if (avail < 1.0) return sm_fail(SM_ERR_USAGE, "%s: page height %.1f cm leaves no room for the map", f->path, page_h);
        if (map_h > avail) map_h = avail, map_w = map_h / geo.ratio;
    } else {
        double max_h = 1.3 * page_w;
        if (map_h > max_h) map_h = max_h, map_w = map_h / geo.ratio;
        page_h = top + map_h + bottom;
    }
    double x_off = left + 0.5 * (page_w - left - right - map_w);
    double y_off = height_px > 0 ? bottom + 0.5 * (page_h - top - bottom - map_h) : bottom;

    /* page: exact pixel size through PS_MEDIA in points */
    char media[64];
    int hpx = height_px > 0 ? height_px : plot_png_pixels(page_h, s->dpi);
    snprintf(media, sizeof media, "%.6fx%.6f", width_px * 72.0 / s->dpi, hpx * 72.0 / s->dpi);
    GMT_Set_Default(r->api, "PS_MEDIA", media);
    GMT_Set_Default(r->api, "PS_PAGE_ORIENTATION", "portrait");
    char font[64];
    snprintf(font, sizeof font, "%.1fp,Helvetica,black", fit_font(title, page_w - 0.6, 12.0));
    GMT_Set_Default(r->api, "FONT_TITLE", font);
    snprintf(font, sizeof font, "%.1fp,Helvetica,black", fit_font(subtitle, page_w - 0.6, 10.0));
    GMT_Set_Default(r->api, "FONT_SUBTITLE", font);
    GMT_Set_Default(r->api, "FONT_ANNOT_PRIMARY", "8p,Helvetica,black");
    GMT_Set_Default(r->api, "FONT_LABEL", "9p,Helvetica,black");
    GMT_Set_Default(r->api, "MAP_TITLE_OFFSET", "8p");
    GMT_Set_Default(r->api, "MAP_FRAME_TYPE", "plain");
    GMT_Set_Default(r->api, "MAP_FRAME_PEN", "0.8p,black");
    GMT_Set_Default(r->api, "COLOR_NAN", "230/230/230");
    GMT_Set_Default(r->api, "FORMAT_GEO_MAP", "ddd:mmF");
    GMT_Set_Default(r->api, "GMT_VERBOSE", "e");

    st = f->categorical ? write_categorical_cpt(r, s) : write_continuous_cpt(r, s, lo, hi);
    if (st) return st;

    struct GMT_GRID *G = NULL;
    st = fill_grid(r, &geo, &G);
    if (st) return st;
    char vgrid[GMT_VF_LEN];
    if (GMT_Open_VirtualFile(r->api, GMT_IS_GRID, GMT_IS_SURFACE, GMT_IN | GMT_IS_REFERENCE, G, vgrid) != GMT_NOERROR) {
        GMT_Destroy_Data(r->api, &G);
        return sm_fail(SM_ERR_NUMERIC, "%s: GMT cannot open a virtual grid", f->path);
    }
    arg(r, "%s", vgrid);
    region_arg(r, geo.map);
    proj_arg(r, &geo, map_w);
    arg(r, "-C%s", r->cpt);
    arg(r, "-nn");
    arg(r, "-E%d", s->dpi);
    if (f->kind == PLOT_GRID_GEO) arg(r, "-fg");
    arg(r, "-Xa%.4fc", x_off);
    arg(r, "-Ya%.4fc", y_off);
    arg(r, "-P");
    arg(r, "-K");
    arg(r, "->%s", r->ps);
    st = call(r, "grdimage");
    GMT_Close_VirtualFile(r->api, vgrid);
    GMT_Destroy_Data(r->api, &G);
    if (st) return st;

    if (f->kind == PLOT_GRID_GEO && !s->no_coastlines) {
        region_arg(r, geo.map);
        proj_arg(r, &geo, map_w);
        arg(r, "-Dl");
        arg(r, "-A%d", geo.proj == 'M' ? 100 : 1000);
        arg(r, "-W0.35p,black");
        arg(r, "-Xa%.4fc", x_off);
        arg(r, "-Ya%.4fc", y_off);
        arg(r, "-O");
        arg(r, "-K");
        arg(r, "->>%s", r->ps);
        if ((st = call(r, "pscoast"))) return st;
    }

    /* colour bar or categorical legend, below the axis labels of y/x rasters */
    double bar_y = f->kind == PLOT_GRID_XY ? -1.45 : -1.0;
    arg(r, "-C%s", r->cpt);
    if (vertical_legend) {
        double len = fmin(map_h, 0.55 * (double)f->n_categories);
        arg(r, "-Dx%.4fc/%.4fc+w%.4fc/0.45c+jML+r", map_w + 0.4, map_h / 2, len);
        arg(r, "-L0.08c");
    } else if (f->categorical) {
        double len = fmin(map_w, 2.4 * (double)f->n_categories);
        arg(r, "-Dx%.4fc/%.2fc+w%.4fc/0.45c+h+jTC", map_w / 2, bar_y, len);
        arg(r, "-L0.1c");
    } else {
        char units[200];
        gmt_text(f->units, units, sizeof units);
        arg(r, "-Dx%.4fc/%.2fc+w%.4fc/0.4c+h+jTC", map_w / 2, bar_y, 0.8 * map_w);
        arg(r, "-Bxaf%s%s", units[0] ? "+l" : "", units);
    }
    arg(r, "-Xa%.4fc", x_off);
    arg(r, "-Ya%.4fc", y_off);
    arg(r, "-O");
    arg(r, "-K");
    arg(r, "->>%s", r->ps);
    if ((st = call(r, "psscale"))) return st;

    /* frame and title last, on top */
    char t[600], st_[600];
    gmt_text(title, t, sizeof t);
    gmt_text(subtitle, st_, sizeof st_);
    region_arg(r, geo.map);
    proj_arg(r, &geo, map_w);
    if (f->kind == PLOT_GRID_XY) {
        char xl[200], yl[200];
        gmt_text(f->x_name, xl, sizeof xl);
        gmt_text(f->y_name, yl, sizeof yl);
        arg(r, "-Bxaf+l%s", xl);
        arg(r, "-Byaf+l%s", yl);
    } else {
        arg(r, "-Bxaf");
        arg(r, "-Byaf");
    }
    if (st_[0]) arg(r, "-BWSne+t%s+s%s", t, st_);
    else arg(r, "-BWSne+t%s", t);
    arg(r, "-Xa%.4fc", x_off);
    arg(r, "-Ya%.4fc", y_off);
    arg(r, "-O");
    arg(r, "->>%s", r->ps);
    if ((st = call(r, "psbasemap"))) return st;

    arg(r, "%s", r->ps);
    arg(r, "-Tg");
    arg(r, "-E%d", s->dpi);
    arg(r, "-Qt4");
    arg(r, "-Qg4");
    arg(r, "-D%s", r->dir);
    arg(r, "-Fmap");
    return call(r, "psconvert");
}

int plot_field_png(const plot_field *f, const plot_style *style, const char *out_png, int *width_px, int *height_px)
{
    plot_style s;
    if (style) s = *style;
    else plot_style_default(&s);
    if (s.width_cm <= 0) s.width_cm = 16.0;
    if (s.dpi <= 0) s.dpi = 150;
    if (s.dpi < 30 || s.dpi > 1200) return sm_fail(SM_ERR_USAGE, "%s: dpi %d outside 30..1200", out_png, s.dpi);
    if (s.width_cm < 4 || s.width_cm > 100) return sm_fail(SM_ERR_USAGE, "%s: width %.1f cm outside 4..100", out_png, s.width_cm);
    if (s.height_cm != 0 && (s.height_cm < 4 || s.height_cm > 100))
        return sm_fail(SM_ERR_USAGE, "%s: height %.1f cm outside 4..100", out_png, s.height_cm);

    double lo = INFINITY, hi = -INFINITY;
    for (size_t k = 0; k < f->nx * f->ny; k++)
        if (isfinite(f->data[k])) lo = fmin(lo, f->data[k]), hi = fmax(hi, f->data[k]);
    if (!(lo <= hi)) return sm_fail(SM_ERR_NUMERIC, "%s: variable '%s': the selected slice has no valid value (all missing)", f->path, f->var);

    outfile out;
    int st = outfile_begin(&out, out_png);
    if (st) {
        char why[1024];
        snprintf(why, sizeof why, "%s", sm_last_error());
        return sm_fail(st, "%s (plot of %s variable '%s')", why, f->path, f->var);
    }

    gmt_run r;
    memset(&r, 0, sizeof r);
    r.f = f;
    const char *tmp = getenv("TMPDIR");
    /* mkdtemp's template: the name ends in six 'X' that it replaces */
    char unique[7];
    memset(unique, 'X', 6);
    unique[6] = '\0';
    snprintf(r.dir, sizeof r.dir, "%s/smoecast-plot.%s", tmp && *tmp ? tmp : "/tmp", unique);
    if (!mkdtemp(r.dir)) {
        outfile_abort(&out);
        return sm_fail(SM_ERR_IO, "%s: cannot create a temporary directory %s: %s", out_png, r.dir, strerror(errno));
    }
    snprintf(r.ps, sizeof r.ps, "%s/map.ps", r.dir);
    snprintf(r.cpt, sizeof r.cpt, "%s/map.cpt", r.dir);
    /* GMT keeps gmt.history / gmt.conf and its session files in GMT_TMPDIR. */
    char *old_tmpdir = getenv("GMT_TMPDIR") ? strdup(getenv("GMT_TMPDIR")) : NULL;
    setenv("GMT_TMPDIR", r.dir, 1);
    r.api = GMT_Create_Session("smoecast", 2U, GMT_SESSION_NOEXIT | GMT_SESSION_EXTERNAL | GMT_SESSION_NOHISTORY, gmt_print);
    if (!r.api) {
        st = sm_fail(SM_ERR_NUMERIC, "%s: cannot start a GMT session", out_png);
    } else {
        char title[600], subtitle[600] = "";
        if (s.title) snprintf(title, sizeof title, "%s", s.title);
        else plot_default_title_parts(f, title, sizeof title, subtitle, sizeof subtitle);
        int wpx = plot_png_pixels(s.width_cm, s.dpi);
        int hpx = s.height_cm > 0 ? plot_png_pixels(s.height_cm, s.dpi) : 0;
        st = draw(&r, &s, title, subtitle, wpx, hpx, lo, hi);
        args_reset(&r);
        GMT_Destroy_Session(r.api);
    }
    if (old_tmpdir) {
        setenv("GMT_TMPDIR", old_tmpdir, 1);
        free(old_tmpdir);
    } else {
        unsetenv("GMT_TMPDIR");
    }
    char png[600];
    snprintf(png, sizeof png, "%s/map.png", r.dir);
    if (!st) {
        /* read the size from the IHDR chunk */
        FILE *fp = fopen(png, "rb");
        unsigned char h[24];
        if (!fp || fread(h, 1, 24, fp) != 24 || memcmp(h + 1, "PNG", 3) != 0) {
            st = sm_fail(SM_ERR_NUMERIC, "%s: GMT psconvert wrote no PNG for %s variable '%s'", out_png, f->path, f->var);
        } else {
            int w = (h[16] << 24) | (h[17] << 16) | (h[18] << 8) | h[19];
            int hh = (h[20] << 24) | (h[21] << 16) | (h[22] << 8) | h[23];
            if (width_px) *width_px = w;
            if (height_px) *height_px = hh;
        }
        if (fp) fclose(fp);
    }
    if (!st && copy_file(png, out.tmp_path) != 0) st = sm_fail(SM_ERR_IO, "%s: cannot write (plot of %s variable '%s'): %s", out_png, f->path, f->var, strerror(errno));
    remove_tree(r.dir);
    if (st) {
        outfile_abort(&out);
        return st;
    }
    return outfile_commit(&out);
}

int plot_file_png(const char *nc_path, const char *var, const plot_select *sel, const char *truth_path,
                  const char *truth_var, const plot_style *style, const char *out_png)
{
    plot_field f;
    int st = plot_read_slice(nc_path, var, sel, &f);
    if (st) return st;
    if (truth_path) {
        plot_select ts;
        memset(&ts, 0, sizeof ts);
        if (sel) ts = *sel;
        ts.lenient = 1;
        ts.member = NULL;
        ts.lead = NULL;
        if (isfinite(f.time_hours) && f.time_label[0]) ts.time = f.time_label;
        plot_field t;
        st = plot_read_slice(truth_path, truth_var ? truth_var : var, &ts, &t);
        if (!st) {
            st = plot_field_subtract(&f, &t);
            plot_field_free(&t);
        }
    }
    if (!st) st = plot_field_png(&f, style, out_png, NULL, NULL);
    plot_field_free(&f);
    return st;
}
