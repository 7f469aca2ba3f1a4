/* smoecast entry point: global options, command dispatch, exit codes. */
#include "cli/commands.h"
#include "core/dist.h"
#include "core/log.h"
#include "core/outfile.h"

#include <stdio.h>
#include <string.h>

const command smoecast_commands[] = {
    {"synth", cmd_synth, "write the built-in synthetic data sets (heat, toy-atmosphere, ensemble)"},
    {"ingest", cmd_ingest, "read GRIB1/GRIB2/NetCDF files, regrid, write a dataset"},
    {"inspect", cmd_inspect, "summarise any GRIB, NetCDF or dataset file"},
    {"train", cmd_train, "train a forecast model from a config"},
    {"forecast", cmd_forecast, "run a trained model and write CF NetCDF forecasts"},
    {"evaluate", cmd_evaluate, "score forecasts against truth and baselines"},
    {"postprocess", cmd_postprocess, "fit and apply ensemble post-processing (EMOS, MLP, U-Net, SMoE)"},
    {"experts", cmd_experts, "write expert-location maps and per-expert statistics"},
    {"plot", cmd_plot, "draw a PNG map of a field or expert map"},
    {"config", cmd_config, "print the fully resolved config as YAML"},
};
const int smoecast_n_commands = (int)(sizeof smoecast_commands / sizeof smoecast_commands[0]);

static void print_usage(FILE *out)
{
    fprintf(out,
            "usage: smoecast [--quiet|--verbose] [--timestamps] <command> [options] [key.sub=value ...]\n"
            "       smoecast --version | --help\n"
            "\n"
            "Spatial mixture-of-experts weather forecasting and ensemble post-processing.\n"
            "\n"
            "commands:\n");
    for (int i = 0; i < smoecast_n_commands; i++)
        fprintf(out, "  %-12s %s\n", smoecast_commands[i].name, smoecast_commands[i].summary);
    fprintf(out,
            "\n"
            "Run 'smoecast <command> --help' for the options of a command.\n"
            "Exit codes: 0 ok, 1 usage/config error, 2 input/output error, 3 numerical/runtime\n"
            "failure, 130 interrupted.\n"
            "\n"
            "example:\n"
            "  smoecast synth toy-atmosphere --out data/\n"
            "  smoecast train -c configs/toy_forecast_smoe.yaml training.epochs=5\n");
}

int main(int argc, char **argv)
{
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        const char *opt = argv[i];
        if (!strcmp(opt, "--help") || !strcmp(opt, "-h")) {
            print_usage(stdout);
            return SM_OK;
        } else if (!strcmp(opt, "--version") || !strcmp(opt, "-V")) {
            printf("smoecast %s\n", SMOECAST_VERSION);
            return SM_OK;
        } else if (!strcmp(opt, "--quiet") || !strcmp(opt, "-q")) {
            log_set_level(LOG_LEVEL_WARN);
        } else if (!strcmp(opt, "--verbose") || !strcmp(opt, "-v")) {
            log_set_level(LOG_LEVEL_DEBUG);
        } else if (!strcmp(opt, "--timestamps")) {
            log_set_timestamps(1);
        } else {
            log_error("unknown option '%s' (see 'smoecast --help')", opt);
            return SM_ERR_USAGE;
        }
    }
    if (i >= argc) {
        print_usage(stderr);
        return SM_ERR_USAGE;
    }
    const char *name = argv[i];
    for (int c = 0; c < smoecast_n_commands; c++) {
        if (strcmp(name, smoecast_commands[c].name) != 0) continue;
        /* Under mpirun/srun, `train` and `postprocess fit` run data-parallel (core/dist.h):
         * only rank 0 logs info; an error on any rank is printed with its rank and ends the
         * whole job (MPI_Abort) so no rank waits forever in a collective. */
        int distributed = !strcmp(name, "train") || (!strcmp(name, "postprocess") && argc - i > 1 && !strcmp(argv[i + 1], "fit"));
        if (distributed) {
            if (dist_init(NULL, NULL) != SM_OK) {
                log_error("%s", sm_last_error());
                return SM_ERR_NUMERIC;
            }
            if (dist_rank() != 0 && log_get_level() == LOG_LEVEL_INFO) log_set_level(LOG_LEVEL_WARN);
        }
        interrupt_install();
        sm_clear_error();
        int status = smoecast_commands[c].run(argc - i, argv + i);
        outfile_cleanup_all();
        if (status != SM_OK) {
            if (dist_size() > 1) {
                dist_abort(status, sm_last_error());
            } else {
                log_error("%s", sm_last_error());
            }
            if (sm_interrupted()) status = SM_ERR_INTERRUPTED;
        }
        if (distributed) dist_finalize();
        return status;
    }
    fprintf(stderr, "smoecast: unknown command '%s'; valid commands:", name);
    for (int c = 0; c < smoecast_n_commands; c++) fprintf(stderr, " %s", smoecast_commands[c].name);
    fprintf(stderr, "\n");
    return SM_ERR_USAGE;
}
