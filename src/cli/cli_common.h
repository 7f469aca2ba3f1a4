/* Helpers shared by the command implementations: overrides, help, common options. */
#ifndef SMOECAST_CLI_COMMON_H
#define SMOECAST_CLI_COMMON_H

#include "core/config.h"

#include <stddef.h>

/* Moves every "key.sub=value" argument out of argv (keeping the order of the rest) into
 * `overrides` and returns how many there were (-1 if more than `max`). */
int cli_take_overrides(int *argc, char **argv, char **overrides, int max);

/* Loads the config given by -c (NULL = defaults) with the overrides; logs nothing. */
int cli_load_config(const char *path, int n_overrides, char **overrides, sm_config **cfg);

/* Parses "--threads N" style integers with a clear message. */
int cli_parse_int(const char *option, const char *text, long min, long max, long *out);

/* "smoecast <command> <args...>" for the history attribute of output files. */
void cli_history(int argc, char **argv, char *buf, size_t len);

#endif
