/* smoecast forecast: run a trained checkpoint and write CF NetCDF forecasts. */
#include "cli/cli_common.h"
#include "cli/commands.h"
#include "core/log.h"
#include "tasks/forecast.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

static void forecast_usage(FILE *out)
{
    fprintf(out,
            "usage: smoecast forecast --checkpoint CK --dataset DS --init WHEN --lead LEADS --out FILE\n"
            "                         [--split-by init] [--write-experts] [--threads N]\n"
            "\n"
            "Runs a trained model on a dataset written by 'smoecast ingest' (the same grid and\n"
            "variables; any period, e.g. a later year: inputs are normalised with the statistics\n"
            "stored in the checkpoint) and writes CF-1.8 NetCDF in physical units. Leads beyond the\n"
            "model step are reached by autoregressive rollout.\n"
            "\n"
            "options:\n"
            "      --checkpoint CK   checkpoint (best.nc / last.nc of a training run); a comma list\n"
            "                        of checkpoints of one configuration (e.g. several run.seed)\n"
            "                        writes the ensemble mean; a run directory (output.dir of\n"
            "                        'smoecast train') stands for its best.nc, or for all its\n"
            "                        members' best.nc when trained with training.members > 1\n"
            "      --dataset DS      dataset providing the initial conditions and forcings\n"
            "      --init WHEN       'all', ISO times (2019-03-25T00,2019-03-25T06) and/or ranges\n"
            "                        START/END (every dataset time inside)\n"
            "      --lead LEADS      lead times, multiples of the model step (6h,24h or 1d,3d,5d)\n"
            "      --out FILE        output NetCDF; with --split-by init a name containing {init}\n"
            "                        (or a base name that gets _YYYYMMDDTHHMM appended)\n"
            "      --split-by init   one file per initialisation with a single `time` axis (CDO)\n"
            "      --write-experts   add the expert maps of every MoE layer to the output\n"
            "      --threads N       threads (0 = all cores)\n"
            "  -h, --help            this help\n"
            "\n"
            "layout: field(forecast_reference_time, forecast_period, latitude, longitude) with the\n"
            "valid time as the 2-D auxiliary coordinate time(forecast_reference_time, forecast_period).\n"
            "\n"
            "example:\n"
            "  smoecast forecast --checkpoint runs/t2m/best.nc --dataset era5_uk.nc \\\n"
            "      --init 2019-03-25T00,2019-03-25T06 --lead 6h,24h --out fc.nc\n");
}

int cmd_forecast(int argc, char **argv)
{
    static const struct option options[] = {{"checkpoint", required_argument, 0, 'k'}, {"dataset", required_argument, 0, 'd'},
                                            {"init", required_argument, 0, 'i'},       {"lead", required_argument, 0, 'l'},
                                            {"out", required_argument, 0, 'o'},        {"split-by", required_argument, 0, 's'},
                                            {"write-experts", no_argument, 0, 'e'},    {"threads", required_argument, 0, 't'},
                                            {"help", no_argument, 0, 'h'},             {0, 0, 0, 0}};
    forecast_opts o;
    memset(&o, 0, sizeof o);
    char history[2048];
    cli_history(argc, argv, history, sizeof history);
    o.history = history;
    int opt;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "o:h", options, NULL)) != -1) {
        switch (opt) {
        case 'k': o.checkpoint = optarg; break;
        case 'd': o.dataset = optarg; break;
        case 'i': o.inits = optarg; break;
        case 'l': o.leads = optarg; break;
        case 'o': o.out = optarg; break;
        case 's':
            if (strcmp(optarg, "init") != 0) return sm_fail(SM_ERR_USAGE, "--split-by accepts only 'init', got '%s'", optarg);
            o.split_by_init = 1;
            break;
        case 'e': o.write_experts = 1; break;
        case 't': {
            long v;
            int st = cli_parse_int("--threads", optarg, 0, 1024, &v);
            if (st) return st;
            o.threads = (int)v;
            break;
        }
        case 'h': forecast_usage(stdout); return SM_OK;
        default:
            return sm_fail(SM_ERR_USAGE, "forecast: unknown or incomplete option '%s' (see 'smoecast forecast --help')", argv[optind - 1]);
        }
    }
    if (optind < argc) return sm_fail(SM_ERR_USAGE, "forecast: unexpected argument '%s'", argv[optind]);
    const char *missing = !o.checkpoint ? "--checkpoint" : !o.dataset ? "--dataset" : !o.inits ? "--init" : !o.leads ? "--lead" : !o.out ? "--out" : NULL;
    if (missing) return sm_fail(SM_ERR_USAGE, "forecast: %s is required (see 'smoecast forecast --help')", missing);
    forecast_result r;
    int st = forecast_run(&o, &r);
    if (st == SM_OK) log_info("wrote %d initialisations x %d leads to %s%s", r.n_inits, r.n_leads, o.out, o.split_by_init ? " (one file per init)" : "");
    return st;
}
