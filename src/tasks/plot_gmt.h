/* PNG maps of a 2-D field through the GMT C API (built only when GMT is found: SMOECAST_HAVE_GMT).
 *
 * Layout: a page of width_cm x height_cm (height 0 = from the map's aspect ratio) rendered at
 * `dpi`, so the PNG is exactly plot_png_pixels(width_cm, dpi) pixels wide. Projections: global
 * grids (longitudes periodic, >= 120 degrees of latitude) use Robinson centred on 0 E; other
 * periodic grids equidistant cylindrical; limited-area grids Mercator (equidistant cylindrical
 * beyond 80 degrees of latitude); non-geographic y/x grids a plain Cartesian raster without
 * coastlines. Coastlines come from GSHHG (low resolution). Continuous fields get a colour bar
 * (viridis, or the diverging SCM "vik" symmetric about 0 for differences); categorical fields a
 * legend with one colour of a qualitative palette (Tableau 10/20) and the label per category.
 * GMT runs in classic mode with its session files in a private temporary directory that is
 * removed afterwards; the grid is handed over in memory (virtual file). The output is written
 * through core/outfile.h. */
#ifndef SMOECAST_TASKS_PLOT_GMT_H
#define SMOECAST_TASKS_PLOT_GMT_H

#include "tasks/plot_read.h"

typedef struct {
    const char *title;  /* NULL = plot_default_title() */
    const char *cmap;   /* GMT palette name; NULL = viridis / vik (differences) / Tableau (categories) */
    double width_cm;    /* page width [16] */
    double height_cm;   /* page height; 0 = map height from the projection plus margins */
    int dpi;            /* [150] */
    int symmetric;      /* colour range symmetric about 0 (always on for differences) */
    int no_coastlines;  /* geographic grids without GSHHG coastlines (synthetic worlds have their own continents) */
} plot_style;

void plot_style_default(plot_style *s);

/* Pixels spanned by `cm` at `dpi` (rounded to the nearest pixel). */
int plot_png_pixels(double cm, int dpi);

/* Draws `f` into the PNG `out_png` (written atomically). *width_px / *height_px (may be NULL)
 * receive the image size. SM_ERR_IO for an unwritable output or a grid GMT cannot draw
 * (irregular spacing), SM_ERR_NUMERIC when the slice has no valid value or GMT fails. */
int plot_field_png(const plot_field *f, const plot_style *style, const char *out_png, int *width_px, int *height_px);

/* Convenience for other commands (e.g. `smoecast experts`): reads `var` from `nc_path` with
 * `sel` (NULL = first time etc.), optionally subtracts `truth_var` from `truth_path`, and draws
 * it. `style` may be NULL (defaults). */
int plot_file_png(const char *nc_path, const char *var, const plot_select *sel, const char *truth_path,
                  const char *truth_var, const plot_style *style, const char *out_png);

#endif
