/* MPI implementation of core/dist.h over MPI_COMM_WORLD (built when SMOECAST_MPI is on). */
#include "core/dist.h"
#include "core/log.h"

#include <limits.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

static int g_inited;      /* we called MPI_Init */
static int g_rank, g_size = 1;
static size_t g_bytes;

static int under_launcher(void)
{
    return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMI_SIZE") || getenv("PMIX_RANK") || getenv("SLURM_PROCID");
}

int dist_init(int *argc, char ***argv)
{
    int already = 0;
    MPI_Initialized(&already);
    if (!already) {
        if (!under_launcher()) return SM_OK;
        if (MPI_Init(argc, argv) != MPI_SUCCESS) return sm_fail(SM_ERR_NUMERIC, "MPI_Init failed; check the MPI launcher (mpirun/srun)");
        g_inited = 1;
    }
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_size);
    return SM_OK;
}

void dist_finalize(void)
{
    int fin = 0;
    MPI_Finalized(&fin);
    if (g_inited && !fin) MPI_Finalize();
    g_inited = 0;
    g_rank = 0;
    g_size = 1;
}

static int active(void)
{
    int init = 0, fin = 0;
    MPI_Initialized(&init);
    MPI_Finalized(&fin);
    return init && !fin && g_size > 1;
}

int dist_rank(void) { return g_rank; }
int dist_size(void) { return g_size; }
int dist_available(void) { return 1; }

static int check(int rc, const char *what)
{
    if (rc == MPI_SUCCESS) return SM_OK;
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, msg, &len);
    return sm_fail(SM_ERR_NUMERIC, "rank %d: %s failed: %s", g_rank, what, msg);
}

int dist_allreduce_sum_f(float *buf, size_t n)
{
    g_bytes += n * sizeof(float);
    if (!active()) return SM_OK;
    for (size_t off = 0; off < n; off += INT_MAX / 2) {
        size_t c = n - off < (size_t)INT_MAX / 2 ? n - off : (size_t)INT_MAX / 2;
        int st = check(MPI_Allreduce(MPI_IN_PLACE, buf + off, (int)c, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD), "MPI_Allreduce");
        if (st) return st;
    }
    return SM_OK;
}

int dist_allreduce_sum_d(double *buf, size_t n)
{
    g_bytes += n * sizeof(double);
    if (!active()) return SM_OK;
    for (size_t off = 0; off < n; off += INT_MAX / 2) {
        size_t c = n - off < (size_t)INT_MAX / 2 ? n - off : (size_t)INT_MAX / 2;
        int st = check(MPI_Allreduce(MPI_IN_PLACE, buf + off, (int)c, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD), "MPI_Allreduce");
        if (st) return st;
    }
    return SM_OK;
}

int dist_allreduce_max_i(int *value)
{
    if (!active()) return SM_OK;
    return check(MPI_Allreduce(MPI_IN_PLACE, value, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD), "MPI_Allreduce");
}

int dist_broadcast(void *buf, size_t bytes, int root)
{
    if (!active()) return SM_OK;
    for (size_t off = 0; off < bytes; off += INT_MAX / 2) {
        size_t c = bytes - off < (size_t)INT_MAX / 2 ? bytes - off : (size_t)INT_MAX / 2;
        int st = check(MPI_Bcast((char *)buf + off, (int)c, MPI_BYTE, root, MPI_COMM_WORLD), "MPI_Bcast");
        if (st) return st;
    }
    return SM_OK;
}

int dist_barrier(void)
{
    if (!active()) return SM_OK;
    return check(MPI_Barrier(MPI_COMM_WORLD), "MPI_Barrier");
}

void dist_abort(int status, const char *message)
{
    fprintf(stderr, "smoecast: error: rank %d: %s\n", g_rank, message);
    fflush(stderr);
    if (active()) MPI_Abort(MPI_COMM_WORLD, status);
}

static MPI_Request g_pending[DIST_MAX_PENDING];
static int g_npending;

int dist_iallreduce_sum_f(float *buf, size_t n)
{
    g_bytes += n * sizeof(float);
    if (!active()) return SM_OK;
    for (size_t off = 0; off < n; off += INT_MAX / 2) {
        size_t c = n - off < (size_t)INT_MAX / 2 ? n - off : (size_t)INT_MAX / 2;
        if (g_npending == DIST_MAX_PENDING) {
            int st = dist_wait_all();
            if (st) return st;
        }
        int st = check(MPI_Iallreduce(MPI_IN_PLACE, buf + off, (int)c, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD,
                                      &g_pending[g_npending]), "MPI_Iallreduce");
        if (st) return st;
        g_npending++;
    }
    return SM_OK;
}

int dist_progress(void)
{
    if (g_npending == 0) return SM_OK;
    int done = 0;
    return check(MPI_Testall(g_npending, g_pending, &done, MPI_STATUSES_IGNORE), "MPI_Testall");
}

int dist_wait_all(void)
{
    if (g_npending == 0) return SM_OK;
    int st = check(MPI_Waitall(g_npending, g_pending, MPI_STATUSES_IGNORE), "MPI_Waitall");
    g_npending = 0;
    return st;
}

size_t dist_bytes_reduced(void) { return g_bytes; }
void dist_reset_bytes(void) { g_bytes = 0; }
