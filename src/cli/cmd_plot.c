/* smoecast plot: a PNG map of one 2-D slice of a variable in any CF NetCDF file (GMT C API). */
#include "cli/cli_common.h"
#include "cli/commands.h"
#include "core/log.h"
#include "tasks/plot_read.h"
#ifdef SMOECAST_HAVE_GMT
#include "tasks/plot_gmt.h"
#endif

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void plot_usage(FILE *out)
{
    fprintf(out,
            "usage: smoecast plot FILE --var NAME [--time T] [--level L] [--member M] [--lead H]\n"
            "                     [--index DIM=I ...] [--diff-truth TRUTH.nc [--truth-var NAME]]\n"
            "                     [--title TEXT] [--cmap NAME] [--symmetric] [--no-coastlines]\n"
            "                     [--width CM] [--height CM] [--dpi N] [--out map.png]\n"
            "\n"
            "Draw a PNG map of one 2-D slice of a variable in a CF NetCDF file (smoecast datasets,\n"
            "forecasts, expert maps or any CF file): coastlines, a lat/lon frame, a colour bar (or a\n"
            "legend for categorical variables with flag_values/flag_meanings) and a title. Global grids\n"
            "use the Robinson projection, limited areas Mercator; y/x grids are drawn as plain rasters.\n"
            "The image is exactly round(width/2.54*dpi) pixels wide.%s\n"
            "\n"
            "options:\n"
            "      --var NAME         variable to draw (required)\n"
            "      --time T           valid time as YYYY-MM-DDTHH:MM, or a 0-based index [first]\n"
            "      --level L          vertical level by coordinate value, e.g. 500 [first]\n"
            "      --member M         ensemble member (realization value) [first]\n"
            "      --lead H           lead time (forecast_period value, hours) [first]\n"
            "      --index DIM=I      0-based index along any other dimension (repeatable) [0]\n"
            "      --diff-truth FILE  draw forecast minus truth (same grid; the truth slice has the\n"
            "                         same valid time and level) with a diverging palette around 0\n"
            "      --truth-var NAME   variable in the truth file [same as --var]\n"
            "      --title TEXT       title [long_name [units], time, other coordinates]\n"
            "      --cmap NAME        GMT palette (viridis, vik, roma, turbo, categorical, ...)\n"
            "      --symmetric        colour range symmetric about 0\n"
            "      --no-coastlines    no GSHHG coastlines (e.g. for the synthetic toy atmosphere)\n"
            "      --width CM         page width in cm [16]\n"
            "      --height CM        page height in cm [from the map's aspect ratio]\n"
            "      --dpi N            resolution [150]\n"
            "  -o, --out FILE         output PNG [map.png]\n"
            "  -h, --help             this help\n"
            "\n"
            "example:\n"
            "  smoecast plot ../shared/data/xarray-data__eraint_uvz.nc --var z --level 500 --time 0 --out z500.png\n"
            "  smoecast plot forecast.nc --var t2m --time 2019-03-26T06:00 --diff-truth era5.nc --out err.png\n",
#ifdef SMOECAST_HAVE_GMT
            ""
#else
            "\nThis build has no GMT support: drawing fails (rebuild with libgmt-dev installed)."
#endif
    );
}

int cmd_plot(int argc, char **argv)
{
    enum { O_VAR = 256, O_TIME, O_LEVEL, O_MEMBER, O_LEAD, O_INDEX, O_TRUTH, O_TRUTH_VAR, O_TITLE, O_CMAP, O_SYM, O_NO_COAST, O_WIDTH, O_HEIGHT, O_DPI };
    static const struct option options[] = {
        {"var", required_argument, 0, O_VAR},         {"time", required_argument, 0, O_TIME},
        {"level", required_argument, 0, O_LEVEL},     {"member", required_argument, 0, O_MEMBER},
        {"lead", required_argument, 0, O_LEAD},       {"index", required_argument, 0, O_INDEX},
        {"diff-truth", required_argument, 0, O_TRUTH}, {"truth-var", required_argument, 0, O_TRUTH_VAR},
        {"title", required_argument, 0, O_TITLE},     {"cmap", required_argument, 0, O_CMAP},
        {"symmetric", no_argument, 0, O_SYM},         {"width", required_argument, 0, O_WIDTH},
        {"no-coastlines", no_argument, 0, O_NO_COAST},
        {"height", required_argument, 0, O_HEIGHT},   {"dpi", required_argument, 0, O_DPI},
        {"out", required_argument, 0, 'o'},           {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    plot_select sel;
    memset(&sel, 0, sizeof sel);
    const char *var = NULL, *truth = NULL, *truth_var = NULL, *out = "map.png", *title = NULL, *cmap = NULL;
    double width = 16.0, height = 0.0;
    long dpi = 150;
    int symmetric = 0, no_coastlines = 0, opt;
    opterr = 0;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "o:h", options, NULL)) != -1) {
        switch (opt) {
        case O_VAR: var = optarg; break;
        case O_TIME: sel.time = optarg; break;
        case O_LEVEL: sel.level = optarg; break;
        case O_MEMBER: sel.member = optarg; break;
        case O_LEAD: sel.lead = optarg; break;
        case O_INDEX:
            if (sel.n_index >= PLOT_MAX_INDEX_SEL) return sm_fail(SM_ERR_USAGE, "plot: at most %d --index options", PLOT_MAX_INDEX_SEL);
            if (!strchr(optarg, '=')) return sm_fail(SM_ERR_USAGE, "plot: --index expects DIM=INDEX, got '%s'", optarg);
            sel.index[sel.n_index++] = optarg;
            break;
        case O_TRUTH: truth = optarg; break;
        case O_TRUTH_VAR: truth_var = optarg; break;
        case O_TITLE: title = optarg; break;
        case O_CMAP: cmap = optarg; break;
        case O_SYM: symmetric = 1; break;
        case O_NO_COAST: no_coastlines = 1; break;
        case O_WIDTH:
        case O_HEIGHT: {
            char *end;
            double v = strtod(optarg, &end);
            if (end == optarg || *end || !(v >= 4 && v <= 100))
                return sm_fail(SM_ERR_USAGE, "plot: --%s expects a size in cm between 4 and 100, got '%s'", opt == O_WIDTH ? "width" : "height", optarg);
            if (opt == O_WIDTH) width = v;
            else height = v;
            break;
        }
        case O_DPI: {
            int st = cli_parse_int("--dpi", optarg, 30, 1200, &dpi);
            if (st) return st;
            break;
        }
        case 'o': out = optarg; break;
        case 'h': plot_usage(stdout); return SM_OK;
        default: return sm_fail(SM_ERR_USAGE, "plot: unknown or incomplete option '%s' (see 'smoecast plot --help')", argv[optind - 1]);
        }
    }
    if (optind >= argc) return sm_fail(SM_ERR_USAGE, "plot: missing input FILE (see 'smoecast plot --help')");
    if (optind + 1 < argc) return sm_fail(SM_ERR_USAGE, "plot: unexpected argument '%s'", argv[optind + 1]);
    const char *path = argv[optind];
    if (!var) return sm_fail(SM_ERR_USAGE, "plot: %s: --var NAME is required (which variable to draw)", path);
    if (truth_var && !truth) return sm_fail(SM_ERR_USAGE, "plot: --truth-var needs --diff-truth FILE");
#ifndef SMOECAST_HAVE_GMT
    (void)width, (void)height, (void)dpi, (void)symmetric, (void)no_coastlines, (void)title, (void)cmap, (void)out, (void)truth_var;
    return sm_fail(SM_ERR_USAGE, "plot: %s: cannot draw variable '%s': this smoecast was built without GMT support "
                   "(install libgmt-dev and rebuild)", path, var);
#else
    plot_style style;
    plot_style_default(&style);
    style.title = title;
    style.cmap = cmap;
    style.width_cm = width;
    style.height_cm = height;
    style.dpi = (int)dpi;
    style.symmetric = symmetric;
    style.no_coastlines = no_coastlines;
    int st = plot_file_png(path, var, &sel, truth, truth_var, &style, out);
    if (st) return st;
    log_info("wrote %s", out);
    return SM_OK;
#endif
}
