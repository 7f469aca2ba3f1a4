/* smoecast config: print the fully resolved config (or the key reference) as YAML/Markdown. */
#include "cli/cli_common.h"
#include "cli/commands.h"
#include "core/log.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

static void config_usage(FILE *out)
{
    fprintf(out,
            "usage: smoecast config [-c FILE] [key.sub=value ...]\n"
            "       smoecast config --doc\n"
            "\n"
            "Print the fully resolved config (defaults, then FILE, then overrides) as YAML.\n"
            "The output is accepted back by -c unchanged.\n"
            "\n"
            "options:\n"
            "  -c, --config FILE   YAML experiment config\n"
            "      --doc           print the reference of every key (docs/config.md) and exit\n"
            "  -h, --help          this help\n"
            "\n"
            "example:\n"
            "  smoecast config -c configs/heat_smoe.yaml training.lr=3e-4 model.moe.experts=8\n");
}

int cmd_config(int argc, char **argv)
{
    char *overrides[CFG_LIST_MAX];
    int n_overrides = cli_take_overrides(&argc, argv, overrides, CFG_LIST_MAX);
    if (n_overrides < 0) return sm_fail(SM_ERR_USAGE, "too many overrides (at most %d)", CFG_LIST_MAX);
    static const struct option options[] = {
        {"config", required_argument, 0, 'c'}, {"doc", no_argument, 0, 'd'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    const char *path = NULL;
    int doc = 0, opt;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "c:h", options, NULL)) != -1) {
        switch (opt) {
        case 'c': path = optarg; break;
        case 'd': doc = 1; break;
        case 'h': config_usage(stdout); return SM_OK;
        default: return sm_fail(SM_ERR_USAGE, "config: unknown or incomplete option '%s' (see 'smoecast config --help')", argv[optind - 1]);
        }
    }
    if (optind < argc) return sm_fail(SM_ERR_USAGE, "config: unexpected argument '%s'", argv[optind]);
    if (doc) {
        char *md = config_doc_markdown();
        fputs(md, stdout);
        free(md);
        return SM_OK;
    }
    sm_config *cfg;
    int st = cli_load_config(path, n_overrides, overrides, &cfg);
    if (st) return st;
    char *yaml = config_to_yaml(cfg);
    fputs(yaml, stdout);
    free(yaml);
    config_free(cfg);
    return SM_OK;
}
