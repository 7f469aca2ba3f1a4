/* smoecast train: train a forecast model from a config. */
#include "cli/cli_common.h"
#include "cli/commands.h"
#include "core/log.h"
#include "tasks/train.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

static void train_usage(FILE *out)
{
    fprintf(out,
            "usage: smoecast train -c CONFIG [--resume] [--threads N] [key.sub=value ...]\n"
            "\n"
            "Train a forecast model (any architecture, with or without SMoE layers) on a dataset\n"
            "written by 'smoecast ingest'. Normalisation statistics come from the training period\n"
            "only. Every epoch is validated; output.dir receives best.nc and last.nc (checkpoints)\n"
            "and metrics.jsonl (train/validation loss, learning rate, RMSE per variable, routing\n"
            "metrics of every MoE layer). Ctrl-C saves a resumable last.nc. With training.members\n"
            "N > 1 it trains a seed ensemble into output.dir/member0 .. member<N-1>.\n"
            "\n"
            "options:\n"
            "  -c, --config FILE   YAML experiment config (see docs/config.md)\n"
            "      --resume        continue from output.dir/last.nc exactly where it stopped\n"
            "      --threads N     threads for OpenMP/OpenBLAS (run.threads; 0 = all cores)\n"
            "  -h, --help          this help\n"
            "\n"
            "exit codes: 0 ok, 1 config error, 2 data/checkpoint error, 3 NaN/divergence, 130 interrupted\n"
            "\n"
            "example:\n"
            "  smoecast train -c configs/era5_uk_t2m.yaml training.epochs=20 output.dir=runs/t2m\n");
}

int cmd_train(int argc, char **argv)
{
    char *overrides[CFG_LIST_MAX + 1];
    int n_overrides = cli_take_overrides(&argc, argv, overrides, CFG_LIST_MAX);
    if (n_overrides < 0) return sm_fail(SM_ERR_USAGE, "too many overrides (at most %d)", CFG_LIST_MAX);
    static const struct option options[] = {{"config", required_argument, 0, 'c'},
                                            {"resume", no_argument, 0, 'r'},
                                            {"threads", required_argument, 0, 't'},
                                            {"help", no_argument, 0, 'h'},
                                            {0, 0, 0, 0}};
    const char *path = NULL;
    int resume = 0, opt;
    long threads = -1;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "c:h", options, NULL)) != -1) {
        switch (opt) {
        case 'c': path = optarg; break;
        case 'r': resume = 1; break;
        case 't': {
            int st = cli_parse_int("--threads", optarg, 0, 1024, &threads);
            if (st) return st;
            break;
        }
        case 'h': train_usage(stdout); return SM_OK;
        default: return sm_fail(SM_ERR_USAGE, "train: unknown or incomplete option '%s' (see 'smoecast train --help')", argv[optind - 1]);
        }
    }
    if (optind < argc) return sm_fail(SM_ERR_USAGE, "train: unexpected argument '%s'", argv[optind]);
    char threads_override[64];
    if (threads >= 0) {
        snprintf(threads_override, sizeof threads_override, "run.threads=%ld", threads);
        overrides[n_overrides++] = threads_override;
    }
    sm_config *cfg;
    int st = cli_load_config(path, n_overrides, overrides, &cfg);
    if (st) return st;
    train_result res;
    st = train_run(cfg, resume, &res);
    if (st == SM_OK && res.members > 1)
        log_info("trained %d ensemble members in %s/member0 .. member%d; forecast their mean with "
                 "'smoecast forecast --checkpoint %s ...'", res.members, cfg->output.dir, res.members - 1, cfg->output.dir);
    else if (st == SM_OK)
        log_info("trained %lld epochs (%lld steps); best validation loss %.5g at epoch %lld; checkpoints in %s",
                 (long long)res.epochs_done, (long long)res.steps_done, res.best_val, (long long)res.best_epoch + 1, cfg->output.dir);
    config_free(cfg);
    return st;
}
