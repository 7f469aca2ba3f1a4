/* smoecast postprocess fit / apply: ensemble post-processing (docs/postprocess.md). */
#include "cli/cli_common.h"
#include "cli/commands.h"
#include "core/log.h"
#include "data/samples.h"
#include "tasks/postprocess.h"

#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void pp_usage(FILE *out)
{
    fprintf(out,
            "usage: smoecast postprocess fit --method M -c CONFIG [--resume] [--threads N] [key.sub=value ...]\n"
            "       smoecast postprocess apply --model FILE --forecast ENS --out OUT [options]\n"
            "\n"
            "Ensemble post-processing (METHODS.md section 5, docs/postprocess.md). Inputs are smoecast\n"
            "datasets (from 'smoecast ingest') whose variables have a realization dimension.\n"
            "\n"
            "fit: fits method M (postprocess.method: raw, emos, mlp, unet, smoe) on postprocess.forecast\n"
            "  against postprocess.truth over the training times (data.train_start/train_end) and writes\n"
            "  into output.dir: emos.nc (EMOS coefficients) or best.nc/last.nc/metrics.jsonl (neural\n"
            "  methods, trained with the Gaussian CRPS), and scores_M.json (CRPS, spread-skill, coverage,\n"
            "  EECRPS with postprocess.climate) on the test times. raw fits nothing and only scores the\n"
            "  raw ensemble.\n"
            "  -m, --method M        overrides postprocess.method\n"
            "  -c, --config FILE     YAML config (docs/config.md)\n"
            "      --resume          continue a neural training from output.dir/last.nc\n"
            "      --threads N       threads (run.threads; 0 = all cores)\n"
            "\n"
            "apply: calibrates every time of the ensemble dataset ENS and writes CF-1.8 NetCDF with\n"
            "  <var>_mu and <var>_sigma (predictive mean and standard deviation).\n"
            "      --model FILE      emos.nc or a neural checkpoint (best.nc)\n"
            "      --forecast ENS    ensemble dataset\n"
            "  -o, --out OUT         output file\n"
            "      --var NAME        forecast variable to calibrate (default: the model's target)\n"
            "      --quantiles LIST  also write percentiles, e.g. 10,50,90 (<var>_percentile)\n"
            "      --members N       also write N calibrated members (equidistant quantiles, <var>)\n"
            "      --lead DURATION   lead time when the dataset does not record reference times (e.g. 48h)\n"
            "      --sigma-floor X   lower bound of sigma in target units (default: the model's)\n"
            "      --threads N       threads\n"
            "\n"
            "exit codes: 0 ok, 1 usage/config error, 2 data error, 3 numerical error, 130 interrupted\n"
            "\n"
            "examples:\n"
            "  smoecast postprocess fit --method emos -c configs/ens_emos.yaml output.dir=runs/emos\n"
            "  smoecast postprocess apply --model runs/emos/emos.nc --forecast ens.nc --out calibrated.nc\n");
}

static int history_of(int argc, char **argv, char *buf, size_t len)
{
    buf[0] = '\0';
    for (int i = 0; i < argc; i++) {
        strncat(buf, i ? " " : "smoecast postprocess ", len - strlen(buf) - 1);
        strncat(buf, argv[i], len - strlen(buf) - 1);
    }
    return 0;
}

static int pp_fit(int argc, char **argv, const char *history)
{
    char *overrides[CFG_LIST_MAX + 2];
    int n_overrides = cli_take_overrides(&argc, argv, overrides, CFG_LIST_MAX);
    if (n_overrides < 0) return sm_fail(SM_ERR_USAGE, "too many overrides (at most %d)", CFG_LIST_MAX);
    static const struct option options[] = {{"method", required_argument, 0, 'm'}, {"config", required_argument, 0, 'c'},
                                            {"resume", no_argument, 0, 'r'},       {"threads", required_argument, 0, 't'},
                                            {"help", no_argument, 0, 'h'},         {0, 0, 0, 0}};
    const char *path = NULL, *method = NULL;
    int resume = 0, opt;
    long threads = -1;
    optind = 1;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "m:c:h", options, NULL)) != -1) {
        switch (opt) {
        case 'm': method = optarg; break;
        case 'c': path = optarg; break;
        case 'r': resume = 1; break;
        case 't': {
            int st = cli_parse_int("--threads", optarg, 0, 1024, &threads);
            if (st) return st;
            break;
        }
        case 'h': pp_usage(stdout); return SM_OK;
        default: return sm_fail(SM_ERR_USAGE, "postprocess fit: unknown or incomplete option '%s' (see 'smoecast postprocess --help')", argv[optind - 1]);
        }
    }
    if (optind < argc) return sm_fail(SM_ERR_USAGE, "postprocess fit: unexpected argument '%s'", argv[optind]);
    char method_override[CFG_STR + 32], threads_override[64];
    if (method) {
        snprintf(method_override, sizeof method_override, "postprocess.method=%s", method);
        overrides[n_overrides++] = method_override;
    }
    if (threads >= 0) {
        snprintf(threads_override, sizeof threads_override, "run.threads=%ld", threads);
        overrides[n_overrides++] = threads_override;
    }
    sm_config *cfg;
    int st = cli_load_config(path, n_overrides, overrides, &cfg);
    if (st) return st;
    postprocess_scores sc;
    st = postprocess_fit(cfg, resume, history, &sc);
    config_free(cfg);
    return st;
}

static int pp_apply(int argc, char **argv, const char *history)
{
    static const struct option options[] = {{"model", required_argument, 0, 'M'},     {"forecast", required_argument, 0, 'f'},
                                            {"out", required_argument, 0, 'o'},       {"var", required_argument, 0, 'v'},
                                            {"quantiles", required_argument, 0, 'q'}, {"members", required_argument, 0, 'n'},
                                            {"lead", required_argument, 0, 'l'},      {"sigma-floor", required_argument, 0, 's'},
                                            {"threads", required_argument, 0, 't'},   {"help", no_argument, 0, 'h'},
                                            {0, 0, 0, 0}};
    postprocess_apply_opts o = {0};
    o.lead_hours = NAN;
    o.sigma_floor = NAN;
    o.history = history;
    int opt;
    long v;
    optind = 1;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "o:h", options, NULL)) != -1) {
        int st = SM_OK;
        switch (opt) {
        case 'M': o.model = optarg; break;
        case 'f': o.forecast = optarg; break;
        case 'o': o.out = optarg; break;
        case 'v': o.var = optarg; break;
        case 'q': o.quantiles = optarg; break;
        case 'n':
            if ((st = cli_parse_int("--members", optarg, 1, 10000, &v))) return st;
            o.members = (int)v;
            break;
        case 'l':
            if ((st = samples_parse_duration(optarg, "--lead", &o.lead_hours))) return st;
            break;
        case 's': {
            char *end;
            o.sigma_floor = strtod(optarg, &end);
            if (end == optarg || *end || !(o.sigma_floor >= 0))
                return sm_fail(SM_ERR_USAGE, "--sigma-floor: '%s' is not a number >= 0", optarg);
            break;
        }
        case 't':
            if ((st = cli_parse_int("--threads", optarg, 0, 1024, &v))) return st;
            o.threads = (int)v;
            break;
        case 'h': pp_usage(stdout); return SM_OK;
        default: return sm_fail(SM_ERR_USAGE, "postprocess apply: unknown or incomplete option '%s' (see 'smoecast postprocess --help')", argv[optind - 1]);
        }
    }
    if (optind < argc) return sm_fail(SM_ERR_USAGE, "postprocess apply: unexpected argument '%s'", argv[optind]);
    if (!o.model) return sm_fail(SM_ERR_USAGE, "postprocess apply: --model FILE is required");
    if (!o.forecast) return sm_fail(SM_ERR_USAGE, "postprocess apply: --forecast ENS is required");
    if (!o.out) return sm_fail(SM_ERR_USAGE, "postprocess apply: --out OUT is required");
    return postprocess_apply(&o);
}

int cmd_postprocess(int argc, char **argv)
{
    char history[4096];
    history_of(argc - 1, argv + 1, history, sizeof history);
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        pp_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? sm_fail(SM_ERR_USAGE, "postprocess: missing subcommand (fit or apply)") : SM_OK;
    }
    if (!strcmp(argv[1], "fit")) return pp_fit(argc - 1, argv + 1, history);
    if (!strcmp(argv[1], "apply")) return pp_apply(argc - 1, argv + 1, history);
    return sm_fail(SM_ERR_USAGE, "postprocess: unknown subcommand '%s' (fit or apply)", argv[1]);
}
