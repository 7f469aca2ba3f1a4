/* Process distribution for data-parallel training: rank, world size and the few collectives
 * the training engine needs (sum-allreduce, broadcast, barrier, abort). Two implementations:
 * core/dist_mpi.c (built when SMOECAST_MPI is on; wraps MPI_COMM_WORLD) and core/dist_serial.c
 * (otherwise; one rank, collectives are no-ops), so callers never need #ifdefs.
 *
 * dist_init is idempotent and only initialises MPI when the process was started by an MPI
 * launcher (mpirun/srun set OMPI_COMM_WORLD_SIZE, PMI_SIZE or PMIX_RANK); a plain `smoecast
 * train` stays a single process without touching MPI. Before dist_init (or when not under a
 * launcher) rank is 0 and size 1. Collectives return SM_OK or SM_ERR_NUMERIC with sm_fail. */
#ifndef SMOECAST_CORE_DIST_H
#define SMOECAST_CORE_DIST_H

#include <stddef.h>

/* SM_OK, or SM_ERR_NUMERIC when MPI_Init fails. */
int dist_init(int *argc, char ***argv);
/* Finalises MPI if dist_init initialised it; safe to call more than once. */
void dist_finalize(void);
int dist_rank(void);
int dist_size(void);
/* 1 when this build can run on several ranks (SMOECAST_HAVE_MPI). */
int dist_available(void);

/* In-place element-wise sum over all ranks (every rank gets the result). n may be 0. */
int dist_allreduce_sum_f(float *buf, size_t n);
int dist_allreduce_sum_d(double *buf, size_t n);
/* In-place maximum of an int over all ranks (e.g. "did any rank fail"). */
int dist_allreduce_max_i(int *value);
/* Copy `bytes` bytes from rank `root` to every rank. */
int dist_broadcast(void *buf, size_t bytes, int root);
int dist_barrier(void);
/* Print "smoecast: error: rank R: message" to stderr and end every rank of the job with
 * `status` (MPI_Abort). Serial build: prints and returns; the caller returns status. */
void dist_abort(int status, const char *message);
/* Non-blocking sum-allreduce of floats (MPI_Iallreduce), at most DIST_MAX_PENDING at a time;
 * the buffer must stay untouched until dist_wait_all. dist_progress lets MPI advance the
 * pending ones (OpenMPI progresses them only inside MPI calls). Serial build: no-ops. */
#define DIST_MAX_PENDING 64
int dist_iallreduce_sum_f(float *buf, size_t n);
int dist_progress(void);
int dist_wait_all(void);

/* Gradient allreduce overlapped with backward: begin before model_backward, pass
 * dist_grad_sync_ready as the model's gradient-ready hook (model_set_grad_ready: "the
 * gradients from float `first` to the end of the buffer are final"); each time at least
 * min_chunk new floats are final, they are multiplied by `weight` and a non-blocking
 * allreduce starts on them (chunks from the end of the buffer towards its start, the same on
 * every rank); finish weights and reduces the rest and waits for all. The result equals
 * weighting the whole buffer and one dist_allreduce_sum_f. */
typedef struct {
    float *grad;
    size_t n, hi, min_chunk;
    float weight;
    int status, chunks;
} dist_grad_sync;
void dist_grad_sync_begin(dist_grad_sync *s, float *grad, size_t n, float weight, size_t min_chunk);
int dist_grad_sync_ready(size_t first, void *arg);
int dist_grad_sync_finish(dist_grad_sync *s);

/* Bytes this rank passed to allreduce calls since the last reset (benchmarks, docs). */
size_t dist_bytes_reduced(void);
void dist_reset_bytes(void);

#endif
