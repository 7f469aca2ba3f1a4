/* Argument helpers shared by all commands. */
#include "cli/cli_common.h"
#include "core/log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int cli_take_overrides(int *argc, char **argv, char **overrides, int max)
{
    int kept = 1, n = 0;
    for (int i = 1; i < *argc; i++) {
        if (argv[i][0] != '-' && config_is_override(argv[i])) {
            if (n >= max) return -1;
            overrides[n++] = argv[i];
        } else {
            argv[kept++] = argv[i];
        }
    }
    argv[kept] = NULL;
    *argc = kept;
    return n;
}

int cli_load_config(const char *path, int n_overrides, char **overrides, sm_config **cfg)
{
    return config_load(path, n_overrides, overrides, cfg);
}

int cli_parse_int(const char *option, const char *text, long min, long max, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno || end == text || *end || v < min || v > max)
        return sm_fail(SM_ERR_USAGE, "%s expects an integer between %ld and %ld, got '%s'", option, min, max, text);
    *out = v;
    return SM_OK;
}

void cli_history(int argc, char **argv, char *buf, size_t len)
{
    buf[0] = '\0';
    for (int i = 0; i < argc; i++) {
        strncat(buf, i ? " " : "smoecast ", len - strlen(buf) - 1);
        strncat(buf, argv[i], len - strlen(buf) - 1);
    }
}
