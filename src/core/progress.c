/* Progress bar / periodic progress lines on stderr. */
#include "core/progress.h"
#include "core/log.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define PLAIN_INTERVAL_S 10.0
#define TTY_INTERVAL_S 0.2

double progress_now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void format_duration(double s, char *buf, size_t len)
{
    if (s < 0 || s > 360000) {
        snprintf(buf, len, "--:--");
        return;
    }
    int total = (int)(s + 0.5);
    if (total >= 3600)
        snprintf(buf, len, "%d:%02d:%02d", total / 3600, total / 60 % 60, total % 60);
    else
        snprintf(buf, len, "%02d:%02d", total / 60, total % 60);
}

void progress_begin(progress *p, const char *label, int64_t total)
{
    memset(p, 0, sizeof *p);
    snprintf(p->label, sizeof p->label, "%s", label);
    p->total = total;
    p->start_s = p->last_print_s = progress_now_seconds();
    p->tty = isatty(STDERR_FILENO);
}

static void progress_print(progress *p, int final)
{
    if (log_get_level() < LOG_LEVEL_INFO) return;
    double now = progress_now_seconds(), elapsed = now - p->start_s;
    double rate = elapsed > 0 ? (double)p->done / elapsed : 0;
    double eta = rate > 0 && p->total > 0 ? (double)(p->total - p->done) / rate : -1;
    char eta_s[32], el_s[32];
    format_duration(eta, eta_s, sizeof eta_s);
    format_duration(elapsed, el_s, sizeof el_s);
    double frac = p->total > 0 ? (double)p->done / (double)p->total : 0;
    if (p->tty) {
        char bar[31];
        int filled = (int)(frac * 30);
        for (int i = 0; i < 30; i++) bar[i] = i < filled ? '#' : '.';
        bar[30] = '\0';
        fprintf(stderr, "\r%s [%s] %lld/%lld %.1f/s %s eta %s %s\033[K", p->label, bar, (long long)p->done,
                (long long)p->total, rate, el_s, final ? "00:00" : eta_s, p->extra);
        if (final) fputc('\n', stderr);
    } else {
        fprintf(stderr, "%s: %lld/%lld (%.0f%%) %.1f/s elapsed %s eta %s %s\n", p->label, (long long)p->done,
                (long long)p->total, 100 * frac, rate, el_s, final ? "00:00" : eta_s, p->extra);
    }
    p->printed_done = p->done;
    fflush(stderr);
}

void progress_update(progress *p, int64_t done, const char *extra)
{
    p->done = done;
    if (extra) snprintf(p->extra, sizeof p->extra, "%s", extra);
    double now = progress_now_seconds();
    if (now - p->last_print_s < (p->tty ? TTY_INTERVAL_S : PLAIN_INTERVAL_S)) return;
    p->last_print_s = now;
    progress_print(p, 0);
}

void progress_end(progress *p)
{
    /* A plain-text log already holds the final count when the last update printed it. */
    if (!p->tty && p->printed_done == p->done && p->done > 0) return;
    progress_print(p, 1);
}
