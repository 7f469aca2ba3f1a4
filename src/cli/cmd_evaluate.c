/* smoecast evaluate: score forecasts against a truth dataset beside the baselines. */
#include "cli/commands.h"
#include "core/log.h"
#include "data/samples.h"
#include "tasks/evaluate.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void evaluate_usage(FILE *out)
{
    fprintf(out,
            "usage: smoecast evaluate --forecast FC.nc[,FC2.nc ...] [MORE_FC.nc ...] --truth DATASET.nc\n"
            "                         [--baselines persistence,climatology,damped-persistence|none]\n"
            "                         [--vars t2m,...] [--regions global,tropics,land,sea,...]\n"
            "                         [--lsm FILE:VAR] [--train-period START/END] [--out scores.nc]\n"
            "                         [--climate CLIMATE.nc] [--ensemble RAW.nc] [--lead 48h]\n"
            "\n"
            "Scores forecasts against a dataset written by 'smoecast ingest' and prints a table with\n"
            "the baselines beside the model. The baselines are computed from the truth: persistence\n"
            "(the truth at initialisation), climatology (per hour of day, and per day of year when\n"
            "the training period spans 90 days or more) and damped anomaly persistence (damping\n"
            "fitted per lead), both fitted on the training period only. RMSE is latitude weighted;\n"
            "the headline 'rmse' takes the time mean before the root, 'rmse_mean_fc' is the mean of\n"
            "per-forecast RMSE.\n"
            "\n"
            "Inputs: 'smoecast forecast' files (either layout; several files or a shell glob of\n"
            "--split-by init files), post-processed files with <var>_mu and <var>_sigma (Gaussian\n"
            "CRPS, PIT, spread-skill, coverage) or an ensemble dataset with a realization dimension\n"
            "(ensemble CRPS standard and fair, spread-skill, rank histogram, coverage).\n"
            "\n"
            "options:\n"
            "      --forecast FILES    forecast file(s), comma separated; further file arguments too\n"
            "      --truth DATASET     verifying dataset (smoecast ingest)\n"
            "      --baselines LIST    persistence, climatology, damped-persistence or none\n"
            "                          (default: all three for deterministic forecasts)\n"
            "      --vars LIST         variables to score (default: every forecast field)\n"
            "      --regions LIST      global, tropics, nh_extratropics, sh_extratropics, extratropics,\n"
            "                          nh_polar, sh_polar, polar, land, sea (default: global, no\n"
            "                          region dimension in the output)\n"
            "      --lsm FILE:VAR      land-sea mask for land/sea (default: the truth's static mask)\n"
            "      --train-period S/E  training period of the baselines, inclusive (default: the\n"
            "                          data.train_start/train_end of the forecast's checkpoint)\n"
            "      --climate FILE      model-climate ensemble dataset: EFI and EECRPS\n"
            "      --ensemble FILE     raw ensemble giving the EFI weights of a Gaussian forecast\n"
            "      --lead DURATION     lead of an ensemble dataset without forecast_period (48h)\n"
            "      --out FILE          scores NetCDF (dims source, metric, variable, lead_time[, region])\n"
            "  -h, --help              this help\n"
            "\n"
            "example:\n"
            "  smoecast evaluate --forecast fc.nc --truth era5_uk.nc --out scores.nc\n"
            "  smoecast evaluate --forecast 'fc_*.nc' --truth ds.nc --train-period 2000-01-01/2000-09-30T18\n");
}

int cmd_evaluate(int argc, char **argv)
{
    static const struct option options[] = {
        {"forecast", required_argument, 0, 'f'}, {"truth", required_argument, 0, 't'},
        {"baselines", required_argument, 0, 'b'}, {"vars", required_argument, 0, 'v'},
        {"regions", required_argument, 0, 'r'},  {"lsm", required_argument, 0, 'm'},
        {"train-period", required_argument, 0, 'p'}, {"climate", required_argument, 0, 'c'},
        {"ensemble", required_argument, 0, 'e'}, {"lead", required_argument, 0, 'l'},
        {"out", required_argument, 0, 'o'},      {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    evaluate_opts o;
    memset(&o, 0, sizeof o);
    char history[4096] = "";
    for (int i = 0; i < argc; i++) {
        strncat(history, i ? " " : "smoecast ", sizeof history - strlen(history) - 1);
        strncat(history, argv[i], sizeof history - strlen(history) - 1);
    }
    o.history = history;
    const char **files = calloc(EVALUATE_MAX_FILES, sizeof *files);
    char *fc_lists[64];
    int n_lists = 0, n_files = 0, st = SM_OK;
    if (!files) return sm_fail(SM_ERR_NUMERIC, "out of memory");
    int opt;
    opterr = 0;
    optind = 1;
    while (st == SM_OK && (opt = getopt_long(argc, argv, "o:h", options, NULL)) != -1) {
        switch (opt) {
        case 'f':
            if (n_lists >= 64) {
                st = sm_fail(SM_ERR_USAGE, "evaluate: too many --forecast options");
                break;
            }
            fc_lists[n_lists++] = optarg;
            break;
        case 't': o.truth = optarg; break;
        case 'b': o.baselines = optarg; break;
        case 'v': o.vars = optarg; break;
        case 'r': o.regions = optarg; break;
        case 'm': o.lsm = optarg; break;
        case 'p': o.train_period = optarg; break;
        case 'c': o.climate = optarg; break;
        case 'e': o.ensemble = optarg; break;
        case 'l': st = samples_parse_duration(optarg, "--lead", &o.lead_hours);
            if (!st && o.lead_hours <= 0) st = sm_fail(SM_ERR_USAGE, "--lead must be positive, got '%s'", optarg);
            break;
        case 'o': o.out = optarg; break;
        case 'h':
            evaluate_usage(stdout);
            free(files);
            return SM_OK;
        default:
            st = sm_fail(SM_ERR_USAGE, "evaluate: unknown or incomplete option '%s' (see 'smoecast evaluate --help')", argv[optind - 1]);
        }
    }
    /* --forecast lists (comma separated) and further file arguments (a shell glob). Pointers into
     * argv stay valid; commas are split in place. */
    for (int k = 0; k < n_lists && st == SM_OK; k++) {
        char *save = NULL;
        for (char *tok = strtok_r(fc_lists[k], ",", &save); tok && st == SM_OK; tok = strtok_r(NULL, ",", &save)) {
            if (n_files >= EVALUATE_MAX_FILES) st = sm_fail(SM_ERR_USAGE, "evaluate: at most %d forecast files", EVALUATE_MAX_FILES);
            else files[n_files++] = tok;
        }
    }
    for (int i = optind; i < argc && st == SM_OK; i++) {
        if (n_lists == 0) {
            st = sm_fail(SM_ERR_USAGE, "evaluate: unexpected argument '%s' (forecast files follow --forecast)", argv[i]);
            break;
        }
        if (n_files >= EVALUATE_MAX_FILES) st = sm_fail(SM_ERR_USAGE, "evaluate: at most %d forecast files", EVALUATE_MAX_FILES);
        else files[n_files++] = argv[i];
    }
    if (st == SM_OK) {
        const char *missing = n_files == 0 ? "--forecast" : !o.truth ? "--truth" : NULL;
        if (missing) st = sm_fail(SM_ERR_USAGE, "evaluate: %s is required (see 'smoecast evaluate --help')", missing);
    }
    if (st == SM_OK) {
        o.forecasts = files;
        o.n_forecasts = n_files;
        evaluate_result r;
        st = evaluate_run(&o, &r);
        if (st == SM_OK)
            log_info("scored %ld forecast fields (%d variable%s, %d lead%s, %d region%s); %ld skipped%s%s", r.n_scored, r.n_vars,
                     r.n_vars == 1 ? "" : "s", r.n_leads, r.n_leads == 1 ? "" : "s", r.n_regions, r.n_regions == 1 ? "" : "s",
                     r.n_skipped, o.out ? "; wrote " : "", o.out ? o.out : "");
    }
    free(files);
    return st;
}
