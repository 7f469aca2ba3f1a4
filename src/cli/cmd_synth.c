/* smoecast synth: writes the built-in synthetic data sets (heat, toy-atmosphere, ensemble) as
 * real NetCDF (and GRIB2 for the lat-lon sets) files; generators in src/tasks/synth_*.c. */
#include "cli/commands.h"
#include "core/log.h"
#include "tasks/synth.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static void synth_usage(FILE *out)
{
    fprintf(out,
            "usage: smoecast synth {heat,toy-atmosphere,ensemble} --out DIR [--seed N] [size options]\n"
            "\n"
            "Writes a seeded, deterministic synthetic data set as real files (generators and file\n"
            "layouts: docs/synthetic.md):\n"
            "  heat            DIR/heat.nc: METHODS.md section 2 heat diffusion, 64x64, 3 regions,\n"
            "                  temperature(run, step, y, x), region(y, x), diffusivity(y, x); the same\n"
            "                  data as the dataset DIR/heat_dataset.nc that 'smoecast train' reads\n"
            "  toy-atmosphere  DIR/toy-atmosphere.nc and .grib2: 6-hourly z500, t850, t2m and lsm on\n"
            "                  the 5.625 deg grid (32x64) from 2000-01-01 00Z\n"
            "  ensemble        DIR/ensemble.nc/.grib2 (10-member 48 h forecasts), ensemble_truth.nc/.grib2\n"
            "                  (verifying truth) and ensemble_climate.nc/.grib2 (model climate)\n"
            "\n"
            "options:\n"
            "  -o, --out DIR        output directory (created if missing; its parent must exist)\n"
            "  -s, --seed N         random seed (default 0)\n"
            "  -h, --help           this help\n"
            "heat:\n"
            "      --runs-train N   training runs (default 40; reference 1000)\n"
            "      --runs-val N     validation runs (default 10; reference 20)\n"
            "      --runs-test N    test runs (default 10; reference 20)\n"
            "      --steps N        time steps per run (default 100; N + 1 states are stored)\n"
            "      --size N         grid edge length (default 64)\n"
            "toy-atmosphere and ensemble:\n"
            "      --years N        years of data (default 3)\n"
            "      --start-year Y   first year (default 2000)\n"
            "      --days N         only the first N days from --start-year (overrides --years)\n"
            "ensemble:\n"
            "      --members M      ensemble members (default 10; number 0 is the control)\n"
            "      --clim-years N   model-climate (reforecast) years before --start-year (default 2):\n"
            "                       the same calendar window in each earlier year\n"
            "      --emos-truth     truth drawn from N(a + b*mean, c + d*var) with known coefficients\n"
            "                       (global attributes emos_<var>_a .. _d of ensemble_truth.nc)\n"
            "\n"
            "Exit codes: 0 ok, 1 bad arguments, 2 output directory not writable or write failure.\n"
            "\n"
            "examples:\n"
            "  smoecast synth toy-atmosphere --out data/ --seed 1\n"
            "  smoecast synth heat --out data/ --runs-train 1000 --runs-val 20 --runs-test 20\n"
            "  smoecast synth ensemble --out data/ --years 1 --clim-years 1 --emos-truth\n");
}

static int parse_int(const char *opt, const char *s, long lo, long hi, long *out)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || !end || end == s || *end || v < lo || v > hi)
        return sm_fail(SM_ERR_USAGE, "synth: %s '%s' is not an integer in [%ld, %ld]", opt, s, lo, hi);
    *out = v;
    return SM_OK;
}

static int ensure_dir(const char *dir)
{
    struct stat sb;
    if (stat(dir, &sb) == 0) {
        if (!S_ISDIR(sb.st_mode)) return sm_fail(SM_ERR_IO, "%s: --out is not a directory", dir);
        if (access(dir, W_OK) != 0) return sm_fail(SM_ERR_IO, "%s: output directory is not writable", dir);
        return SM_OK;
    }
    if (mkdir(dir, 0777) != 0)
        return sm_fail(SM_ERR_IO, "%s: cannot create the output directory: %s", dir, strerror(errno));
    return SM_OK;
}

enum { OPT_RUNS_TRAIN = 1000, OPT_RUNS_VAL, OPT_RUNS_TEST, OPT_STEPS, OPT_SIZE, OPT_YEARS, OPT_START_YEAR,
       OPT_MEMBERS, OPT_CLIM_YEARS, OPT_EMOS_TRUTH, OPT_DAYS };

int cmd_synth(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"out", required_argument, NULL, 'o'},
        {"seed", required_argument, NULL, 's'},
        {"help", no_argument, NULL, 'h'},
        {"runs-train", required_argument, NULL, OPT_RUNS_TRAIN},
        {"runs-val", required_argument, NULL, OPT_RUNS_VAL},
        {"runs-test", required_argument, NULL, OPT_RUNS_TEST},
        {"steps", required_argument, NULL, OPT_STEPS},
        {"size", required_argument, NULL, OPT_SIZE},
        {"years", required_argument, NULL, OPT_YEARS},
        {"start-year", required_argument, NULL, OPT_START_YEAR},
        {"days", required_argument, NULL, OPT_DAYS},
        {"members", required_argument, NULL, OPT_MEMBERS},
        {"clim-years", required_argument, NULL, OPT_CLIM_YEARS},
        {"emos-truth", no_argument, NULL, OPT_EMOS_TRUTH},
        {NULL, 0, NULL, 0},
    };
    synth_heat_opts heat;
    synth_ens_opts ens;
    synth_heat_defaults(&heat);
    synth_ens_defaults(&ens);
    const char *out = NULL;
    long v = 0;
    int st = SM_OK, c;
    unsigned long long seed = 0;
    unsigned given = 0; /* bit (c - OPT_RUNS_TRAIN) for every data-set-specific option */
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":o:s:h", longopts, NULL)) != -1) {
        if (c >= OPT_RUNS_TRAIN && c <= OPT_DAYS) given |= 1u << (c - OPT_RUNS_TRAIN);
        switch (c) {
        case 'o': out = optarg; break;
        case 's': {
            char *end = NULL;
            errno = 0;
            if (optarg[0] == '-') return sm_fail(SM_ERR_USAGE, "synth: --seed '%s' must be >= 0", optarg);
            seed = strtoull(optarg, &end, 10);
            if (errno || !end || end == optarg || *end)
                return sm_fail(SM_ERR_USAGE, "synth: --seed '%s' is not a non-negative integer", optarg);
            break;
        }
        case 'h': synth_usage(stdout); return SM_OK;
        case OPT_RUNS_TRAIN: if ((st = parse_int("--runs-train", optarg, 0, 100000, &v))) return st; heat.runs_train = (int)v; break;
        case OPT_RUNS_VAL: if ((st = parse_int("--runs-val", optarg, 0, 100000, &v))) return st; heat.runs_val = (int)v; break;
        case OPT_RUNS_TEST: if ((st = parse_int("--runs-test", optarg, 0, 100000, &v))) return st; heat.runs_test = (int)v; break;
        case OPT_STEPS: if ((st = parse_int("--steps", optarg, 1, 100000, &v))) return st; heat.steps = (int)v; break;
        case OPT_SIZE: if ((st = parse_int("--size", optarg, 4, 4096, &v))) return st; heat.ny = heat.nx = (int)v; break;
        case OPT_YEARS: if ((st = parse_int("--years", optarg, 1, 200, &v))) return st; ens.atmos.years = (int)v; break;
        case OPT_DAYS: if ((st = parse_int("--days", optarg, 1, 100000, &v))) return st; ens.atmos.days = (int)v; break;
        case OPT_START_YEAR: if ((st = parse_int("--start-year", optarg, 1900, 2200, &v))) return st; ens.atmos.start_year = (int)v; break;
        case OPT_MEMBERS: if ((st = parse_int("--members", optarg, 2, 1000, &v))) return st; ens.members = (int)v; break;
        case OPT_CLIM_YEARS: if ((st = parse_int("--clim-years", optarg, 0, 100, &v))) return st; ens.clim_years = (int)v; break;
        case OPT_EMOS_TRUTH: ens.emos_truth = 1; break;
        case ':': return sm_fail(SM_ERR_USAGE, "synth: option '%s' needs a value (see 'smoecast synth --help')", argv[optind - 1]);
        default: return sm_fail(SM_ERR_USAGE, "synth: unknown option '%s' (see 'smoecast synth --help')", argv[optind - 1]);
        }
    }
    if (optind >= argc)
        return sm_fail(SM_ERR_USAGE, "synth: name a data set: heat, toy-atmosphere or ensemble (see 'smoecast synth --help')");
    if (optind + 1 < argc) return sm_fail(SM_ERR_USAGE, "synth: unexpected argument '%s'", argv[optind + 1]);
    const char *name = argv[optind];
    int which = !strcmp(name, "heat") ? 0 : !strcmp(name, "toy-atmosphere") ? 1 : !strcmp(name, "ensemble") ? 2 : -1;
    if (which < 0)
        return sm_fail(SM_ERR_USAGE, "synth: unknown data set '%s' (choose heat, toy-atmosphere or ensemble)", name);
    /* options that do not apply to the chosen data set are an error, not silently ignored */
    unsigned heat_opts = (1u << (OPT_RUNS_TRAIN - OPT_RUNS_TRAIN)) | (1u << (OPT_RUNS_VAL - OPT_RUNS_TRAIN)) |
                         (1u << (OPT_RUNS_TEST - OPT_RUNS_TRAIN)) | (1u << (OPT_STEPS - OPT_RUNS_TRAIN)) |
                         (1u << (OPT_SIZE - OPT_RUNS_TRAIN));
    unsigned atmos_opts = (1u << (OPT_YEARS - OPT_RUNS_TRAIN)) | (1u << (OPT_START_YEAR - OPT_RUNS_TRAIN)) |
                          (1u << (OPT_DAYS - OPT_RUNS_TRAIN));
    unsigned ens_opts = atmos_opts | (1u << (OPT_MEMBERS - OPT_RUNS_TRAIN)) | (1u << (OPT_CLIM_YEARS - OPT_RUNS_TRAIN)) |
                        (1u << (OPT_EMOS_TRUTH - OPT_RUNS_TRAIN));
    unsigned allowed = which == 0 ? heat_opts : which == 1 ? atmos_opts : ens_opts;
    if (given & ~allowed) {
        for (int i = 0; longopts[i].name; i++)
            if (longopts[i].val >= OPT_RUNS_TRAIN && longopts[i].val <= OPT_DAYS &&
                (given & ~allowed & (1u << (longopts[i].val - OPT_RUNS_TRAIN))))
                return sm_fail(SM_ERR_USAGE, "synth: --%s does not apply to the %s data set (see 'smoecast synth --help')",
                               longopts[i].name, name);
    }
    if (!out) return sm_fail(SM_ERR_USAGE, "synth: --out DIR is required");
    if (ens.clim_years > 0 && ens.atmos.start_year - ens.clim_years < 1900)
        return sm_fail(SM_ERR_USAGE, "synth: --start-year minus --clim-years must be >= 1900");
    if ((st = ensure_dir(out))) return st;

    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    heat.seed = seed;
    ens.atmos.seed = seed;
    if (which == 0) {
        st = synth_heat_write(&heat, out);
    } else if (which == 1) {
        st = synth_atmos_write(&ens.atmos, out);
    } else {
        st = synth_ens_write(&ens, out);
    }
    if (st) return st;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    char period[64];
    if (ens.atmos.days > 0) snprintf(period, sizeof period, "%d days from %d", ens.atmos.days, ens.atmos.start_year);
    else snprintf(period, sizeof period, "%d years from %d", ens.atmos.years, ens.atmos.start_year);
    if (which == 0)
        log_info("wrote %s/heat.nc (%d+%d+%d runs, %d steps, seed %llu) in %.1f s", out, heat.runs_train,
                 heat.runs_val, heat.runs_test, heat.steps, seed, secs);
    else if (which == 1)
        log_info("wrote %s/toy-atmosphere.nc and %s/toy-atmosphere.grib2 (%s, seed %llu) in %.1f s", out, out, period,
                 seed, secs);
    else
        log_info("wrote %s/ensemble{,_truth%s}.{nc,grib2} (%d members, %s, %d climate years%s, seed %llu) in %.1f s", out,
                 ens.clim_years > 0 ? ",_climate" : "", ens.members, period, ens.clim_years,
                 ens.emos_truth ? ", EMOS truth" : "", seed, secs);
    return SM_OK;
}
