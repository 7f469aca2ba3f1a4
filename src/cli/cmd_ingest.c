/* smoecast ingest: command-line front end of tasks/ingest.h. */
#include "cli/commands.h"
#include "core/config.h"
#include "core/log.h"
#include "tasks/ingest.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *out)
{
    fprintf(out,
            "usage: smoecast ingest --grid GRID --var NAME[:LEVEL] [--var ...] --out DATASET.nc FILE...\n"
            "       smoecast ingest -c CONFIG.yaml [ingest.key=value ...]\n"
            "\n"
            "Reads GRIB1, GRIB2 and NetCDF-3/4 files, selects variables, puts them on one grid and writes\n"
            "a compressed NetCDF-4 dataset (one field per chunk, latitude north -> south, float32, NaN =\n"
            "missing, CF-1.8, with the sha256 of every input). See docs/ingest.md.\n"
            "\n"
            "options:\n"
            "  -g, --grid GRID        target grid: 'native' keeps the source's regular lat-lon grid; otherwise\n"
            "                         a name from grids/ or a grid .yaml file\n"
            "  -V, --var SEL          [OUT=]NAME[:LEVEL]: GRIB shortName or paramId (or NetCDF variable name)\n"
            "                         at LEVEL; the dataset variable is OUT, else NAME followed by LEVEL\n"
            "                         (z:500 -> z500, t2m=2t -> t2m). Repeat for several variables.\n"
            "  -m, --method M         regridding: bilinear (default), conservative, nearest\n"
            "      --categorical NAME dataset variable regridded with nearest (land-sea mask); repeatable\n"
            "      --skip-bad         warn about and skip broken GRIB messages and all-missing fields\n"
            "  -o, --out FILE         output dataset (written to a temporary name, renamed when complete)\n"
            "  -c, --config FILE      take everything from the config's ingest section (inputs, variables, grid,\n"
            "                         output, method, categorical, skip_bad); key=value arguments override it,\n"
            "                         and --grid/--var/--out/--method/--skip-bad given as well take precedence\n"
            "  -h, --help             this help\n"
            "\n"
            "Exit codes: 0 ok, 1 usage error, 2 input/output error (missing, broken or incompatible input,\n"
            "unwritable output), 130 interrupted (no partial dataset is left).\n"
            "\n"
            "examples:\n"
            "  smoecast ingest --grid native --var 2t --out era5_uk.nc era5-2mt-2019-03-uk.grib\n"
            "  smoecast ingest --grid native --var z:500 --var t:850 --out eda.nc era5-levels-members.grib\n"
            "  smoecast ingest -c configs/era5_uk.yaml ingest.grid=uk050\n");
}

static int push(const char ***list, int *n, const char *item)
{
    const char **nl = realloc(*list, (size_t)(*n + 1) * sizeof *nl);
    if (!nl) return sm_fail(SM_ERR_NUMERIC, "out of memory");
    nl[(*n)++] = item;
    *list = nl;
    return SM_OK;
}

int cmd_ingest(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"grid", required_argument, NULL, 'g'},  {"var", required_argument, NULL, 'V'},
        {"method", required_argument, NULL, 'm'}, {"categorical", required_argument, NULL, 'C'},
        {"skip-bad", no_argument, NULL, 'S'},    {"out", required_argument, NULL, 'o'},
        {"config", required_argument, NULL, 'c'}, {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    ingest_options o;
    memset(&o, 0, sizeof o);
    const char **vars = NULL, **cats = NULL, **inputs = NULL;
    int nvars = 0, ncats = 0, ninputs = 0;
    const char *config = NULL;
    sm_config *cfg = NULL;
    char *cfg_yaml = NULL;
    int st = SM_OK, ch;
    optind = 1;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, ":g:V:m:o:c:h", longopts, NULL)) != -1) {
        switch (ch) {
        case 'g': o.grid = optarg; break;
        case 'V': st = push(&vars, &nvars, optarg); break;
        case 'm': o.method = optarg; break;
        case 'C': st = push(&cats, &ncats, optarg); break;
        case 'S': o.skip_bad = 1; break;
        case 'o': o.output = optarg; break;
        case 'c': config = optarg; break;
        case 'h':
            usage(stdout);
            free(vars);
            free(cats);
            return SM_OK;
        case ':':
            st = sm_fail(SM_ERR_USAGE, "ingest: option '%s' needs a value (see 'smoecast ingest --help')", argv[optind - 1]);
            break;
        default:
            st = sm_fail(SM_ERR_USAGE, "ingest: unknown option '%s' (see 'smoecast ingest --help')", argv[optind - 1]);
            break;
        }
        if (st) goto done;
    }
    if (config) {
        /* positional arguments are key=value overrides */
        if ((st = config_load(config, argc - optind, argv + optind, &cfg))) goto done;
        const ingest_config *ic = &cfg->ingest;
        for (int i = 0; i < ic->inputs.n && !st; i++) st = push(&inputs, &ninputs, ic->inputs.items[i]);
        if (nvars == 0)
            for (int i = 0; i < ic->variables.n && !st; i++) st = push(&vars, &nvars, ic->variables.items[i]);
        if (ncats == 0)
            for (int i = 0; i < ic->categorical.n && !st; i++) st = push(&cats, &ncats, ic->categorical.items[i]);
        if (st) goto done;
        if (!o.grid) o.grid = ic->grid;
        if (!o.output) o.output = ic->output;
        if (!o.method) o.method = ic->method;
        if (!o.skip_bad) o.skip_bad = ic->skip_bad;
        cfg_yaml = config_to_yaml(cfg);
        o.config_text = cfg_yaml;
    } else {
        for (int i = optind; i < argc; i++)
            if ((st = push(&inputs, &ninputs, argv[i]))) goto done;
    }
    if (!o.grid) {
        st = sm_fail(SM_ERR_USAGE, "ingest: --grid is required (a grid name, or 'native' to keep the source grid)");
        goto done;
    }
    if (nvars == 0) {
        st = sm_fail(SM_ERR_USAGE, "ingest: select at least one variable with --var NAME[:LEVEL]");
        goto done;
    }
    if (!o.output) {
        st = sm_fail(SM_ERR_USAGE, "ingest: --out DATASET.nc is required");
        goto done;
    }
    if (ninputs == 0) {
        st = sm_fail(SM_ERR_USAGE, "ingest: no input files (give GRIB or NetCDF files after the options)");
        goto done;
    }
    o.inputs = inputs;
    o.n_inputs = ninputs;
    o.variables = vars;
    o.n_variables = nvars;
    o.categorical = cats;
    o.n_categorical = ncats;
    size_t hl = 16;
    for (int i = 0; i < argc; i++) hl += strlen(argv[i]) + 1;
    char *history = malloc(hl);
    if (history) {
        size_t n = (size_t)sprintf(history, "smoecast");
        for (int i = 0; i < argc; i++) n += (size_t)sprintf(history + n, " %s", argv[i]);
    }
    o.history = history;
    ingest_report rep;
    st = ingest_run(&o, &rep);
    free(history);
    if (st == SM_OK) {
        log_info("%s: %d fields, %d times, %d members, %d variables (%d duplicates dropped, %d skipped)", o.output, rep.n_fields,
                 rep.n_times, rep.n_members, nvars, rep.n_duplicates, rep.n_skipped);
        log_debug("ingest: %.3f s read+select+decode+regrid, %.3f s compressed write", rep.seconds_decode, rep.seconds_write);
    }
done:
    free(cfg_yaml);
    if (cfg) config_free(cfg);
    free(vars);
    free(cats);
    free(inputs);
    return st;
}
