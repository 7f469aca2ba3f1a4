/* Logging and the last-error message: the only process-wide mutable state in smoecast.
 *
 * Library code never exits: it records a one-line message with sm_fail() and returns the
 * status; the CLI prints sm_last_error() and exits with that status. */
#ifndef SMOECAST_CORE_LOG_H
#define SMOECAST_CORE_LOG_H

#include <stdarg.h>

/* Exit statuses, used as return codes throughout the library (docs/cli.md). */
typedef enum {
    SM_OK = 0,
    SM_ERR_USAGE = 1,       /* bad command line, config key, type or value */
    SM_ERR_IO = 2,          /* missing/corrupt/incompatible input, unwritable output */
    SM_ERR_NUMERIC = 3,     /* NaN/Inf, divergence, other runtime failure */
    SM_ERR_INTERRUPTED = 130
} sm_status;

typedef enum { LOG_LEVEL_ERROR = 0, LOG_LEVEL_WARN, LOG_LEVEL_INFO, LOG_LEVEL_DEBUG } log_level;

void log_set_level(log_level level);
log_level log_get_level(void);
void log_set_timestamps(int on);

void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Record a one-line error (thread-local) and return `status`, so callers write
 *   return sm_fail(SM_ERR_IO, "%s: message %d: truncated GRIB message", path, n);
 * A later sm_fail overwrites the message; sm_fail_keep adds context only if none is set. */
int sm_fail(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int sm_fail_keep(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
const char *sm_last_error(void);
void sm_clear_error(void);

#endif
