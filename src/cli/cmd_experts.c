/* smoecast experts: expert-location maps and per-expert statistics of a checkpoint. */
#include "cli/cli_common.h"
#include "cli/commands.h"
#include "core/log.h"
#include "tasks/experts.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

static void experts_usage(FILE *out)
{
    fprintf(out,
            "usage: smoecast experts --checkpoint CK [--out experts.nc] [--dataset DS [--times WHEN]]\n"
            "                        [--stats stats.csv] [--forecast FC --truth DS] [--lsm FILE:VAR]\n"
            "                        [--labels FILE:VAR]\n"
            "\n"
            "Writes where each expert of every MoE layer is in charge, as CF-1.8 NetCDF: the argmax\n"
            "expert map (flag_values/flag_meanings), the ranked experts when k > 1, expert_weight\n"
            "(softmax of the raw gate values), gate entropy and confidence (top-1 minus top-2 weight).\n"
            "A latent gate gives one static map; input-dependent gates need --dataset and give one\n"
            "map per time plus expert_frequency. Statistics (printed, and as CSV with --stats): the\n"
            "cos-latitude-weighted area share of each expert, the mean absolute error of a forecast\n"
            "inside each expert's region (--forecast and --truth), and the mutual information of the\n"
            "map with a land-sea mask (--lsm, regridded by nearest neighbour) and latitude bands, and\n"
            "the adjusted Rand index and mutual information against a categorical map (--labels).\n"
            "\n"
            "options:\n"
            "      --checkpoint CK   checkpoint with MoE layers\n"
            "  -o, --out FILE        expert maps NetCDF\n"
            "      --dataset DS      inputs for input-dependent gates\n"
            "      --times WHEN      'all' (default), a time or START/END\n"
            "      --stats FILE      per-expert statistics as CSV\n"
            "      --forecast FC     forecast file for the error inside each region (with --truth)\n"
            "      --truth DS        verifying dataset\n"
            "      --lsm FILE:VAR    land-sea mask, e.g. ../shared/data/geocat-datafiles__landsea.nc:LSMASK\n"
            "      --labels FILE:VAR categorical reference map (same grid, or lat-lon regridded by\n"
            "                        nearest), e.g. the heat task's true regions heat_dataset.nc:region\n"
            "  -h, --help            this help\n"
            "\n"
            "example:\n"
            "  smoecast experts --checkpoint runs/toy/best.nc --out experts.nc --stats experts.csv \\\n"
            "      --lsm ../shared/data/geocat-datafiles__landsea.nc:LSMASK\n");
}

int cmd_experts(int argc, char **argv)
{
    static const struct option options[] = {
        {"checkpoint", required_argument, 0, 'k'}, {"out", required_argument, 0, 'o'},   {"dataset", required_argument, 0, 'd'},
        {"times", required_argument, 0, 't'},      {"stats", required_argument, 0, 's'}, {"forecast", required_argument, 0, 'f'},
        {"truth", required_argument, 0, 'y'},      {"lsm", required_argument, 0, 'l'},   {"help", no_argument, 0, 'h'},
        {"labels", required_argument, 0, 'b'},
        {0, 0, 0, 0}};
    experts_opts o;
    memset(&o, 0, sizeof o);
    char history[2048];
    cli_history(argc, argv, history, sizeof history);
    o.history = history;
    int opt;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "o:h", options, NULL)) != -1) {
        switch (opt) {
        case 'k': o.checkpoint = optarg; break;
        case 'o': o.out = optarg; break;
        case 'd': o.dataset = optarg; break;
        case 't': o.times = optarg; break;
        case 's': o.stats_csv = optarg; break;
        case 'f': o.forecast = optarg; break;
        case 'y': o.truth = optarg; break;
        case 'l': o.lsm = optarg; break;
        case 'b': o.labels = optarg; break;
        case 'h': experts_usage(stdout); return SM_OK;
        default: return sm_fail(SM_ERR_USAGE, "experts: unknown or incomplete option '%s' (see 'smoecast experts --help')", argv[optind - 1]);
        }
    }
    if (optind < argc) return sm_fail(SM_ERR_USAGE, "experts: unexpected argument '%s'", argv[optind]);
    if (!o.checkpoint) return sm_fail(SM_ERR_USAGE, "experts: --checkpoint is required");
    if (!o.out && !o.stats_csv) return sm_fail(SM_ERR_USAGE, "experts: give --out and/or --stats");
    if ((o.forecast != NULL) != (o.truth != NULL)) return sm_fail(SM_ERR_USAGE, "experts: --forecast and --truth go together");
    int st = experts_run(&o);
    if (st == SM_OK && o.out) log_info("wrote %s", o.out);
    return st;
}
