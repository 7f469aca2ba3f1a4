/* Logging to stderr with levels and optional timestamps, plus the thread-local last error. */
#include "core/log.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

static log_level g_level = LOG_LEVEL_INFO;
static int g_timestamps = 0;
static _Thread_local char t_last_error[1024];

void log_set_level(log_level level) { g_level = level; }
log_level log_get_level(void) { return g_level; }
void log_set_timestamps(int on) { g_timestamps = on; }

static void log_write(log_level level, const char *tag, const char *fmt, va_list ap)
{
    if (level > g_level) return;
    char stamp[32] = "";
    if (g_timestamps) {
        time_t now = time(NULL);
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ ", &tm);
    }
    char msg[2048];
    vsnprintf(msg, sizeof msg, fmt, ap);
    fprintf(stderr, "%s%s%s\n", stamp, tag, msg);
}

#define LOG_FN(name, level, tag)               \
    void name(const char *fmt, ...)            \
    {                                          \
        va_list ap;                            \
        va_start(ap, fmt);                     \
        log_write(level, tag, fmt, ap);        \
        va_end(ap);                            \
    }
LOG_FN(log_error, LOG_LEVEL_ERROR, "smoecast: error: ")
LOG_FN(log_warn, LOG_LEVEL_WARN, "smoecast: warning: ")
LOG_FN(log_info, LOG_LEVEL_INFO, "")
LOG_FN(log_debug, LOG_LEVEL_DEBUG, "debug: ")

int sm_fail(int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t_last_error, sizeof t_last_error, fmt, ap);
    va_end(ap);
    return status;
}

int sm_fail_keep(int status, const char *fmt, ...)
{
    if (t_last_error[0]) return status;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t_last_error, sizeof t_last_error, fmt, ap);
    va_end(ap);
    return status;
}

const char *sm_last_error(void) { return t_last_error[0] ? t_last_error : "unknown error"; }
void sm_clear_error(void) { t_last_error[0] = '\0'; }
