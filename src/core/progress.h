/* Progress reporting for long loops: a redrawn bar with rate and ETA on a TTY, plain periodic
 * lines otherwise (CI logs). Quiet mode (log level below INFO) prints nothing. */
#ifndef SMOECAST_CORE_PROGRESS_H
#define SMOECAST_CORE_PROGRESS_H

#include <stdint.h>

typedef struct {
    char label[64];
    int64_t total;
    int64_t done;
    int64_t printed_done;
    double start_s;
    double last_print_s;
    int tty;
    char extra[128];  /* e.g. "loss 0.0123" shown after the counters */
} progress;

void progress_begin(progress *p, const char *label, int64_t total);
void progress_update(progress *p, int64_t done, const char *extra); /* extra may be NULL */
void progress_end(progress *p);
double progress_now_seconds(void); /* monotonic clock */

#endif
