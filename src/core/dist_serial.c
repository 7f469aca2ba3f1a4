/* Serial fallback of core/dist.h (builds without MPI): one rank, collectives do nothing. */
#ifndef SMOECAST_HAVE_MPI
#include "core/dist.h"
#include "core/log.h"

#include <stdio.h>

static size_t g_bytes;

int dist_init(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return SM_OK;
}
void dist_finalize(void) {}
int dist_rank(void) { return 0; }
int dist_size(void) { return 1; }
int dist_available(void) { return 0; }
int dist_allreduce_sum_f(float *buf, size_t n)
{
    (void)buf;
    g_bytes += n * sizeof(float);
    return SM_OK;
}
int dist_allreduce_sum_d(double *buf, size_t n)
{
    (void)buf;
    g_bytes += n * sizeof(double);
    return SM_OK;
}
int dist_allreduce_max_i(int *value)
{
    (void)value;
    return SM_OK;
}
int dist_broadcast(void *buf, size_t bytes, int root)
{
    (void)buf;
    (void)bytes;
    (void)root;
    return SM_OK;
}
int dist_barrier(void) { return SM_OK; }
void dist_abort(int status, const char *message)
{
    (void)status;
    fprintf(stderr, "smoecast: error: rank 0: %s\n", message);
}
int dist_iallreduce_sum_f(float *buf, size_t n)
{
    (void)buf;
    g_bytes += n * sizeof(float);
    return SM_OK;
}
int dist_progress(void) { return SM_OK; }
int dist_wait_all(void) { return SM_OK; }
size_t dist_bytes_reduced(void) { return g_bytes; }
void dist_reset_bytes(void) { g_bytes = 0; }
#else
/* MPI build: core/dist_mpi.c provides the functions; keep this translation unit non-empty. */
typedef int dist_serial_unused;
#endif
