/* Data-parallel training throughput: run as `mpirun -np 2 bench_mpi` (1 thread per rank).
 * The WeatherBench CNN with an SMoE last layer (configs/weatherbench_z500_t850_smoe.yaml
 * model, 32 x 64 grid, z500 + t850 in and out) on synthetic data. In the same run it measures
 * samples/s of rank 0 alone on the global batch (the 1-rank peer) and of all ranks splitting
 * the global batch (forward, backward, one allreduce of the flat gradient buffer, Adam step),
 * and prints `speedup: X` plus the bytes each rank sends to allreduce per step.
 *
 * Where the time goes, per rank and step (wall seconds, and the process CPU seconds of the
 * whole step: CPU < wall means the rank was waiting or descheduled by other processes):
 *   data      synthetic input (stands for samples_assemble)
 *   compute   forward + backward
 *   wait      barrier before the allreduce (load imbalance between the ranks)
 *   allreduce the gradient allreduce after the barrier (communication alone)
 *   optim     gradient weighting + Adam step
 * plus the peer at the per-rank batch (rank 0 alone, global batch / ranks samples per step,
 * no communication: the efficiency lost by smaller per-rank batches), the allreduce of the
 * gradient buffer timed alone, and an estimate of the speedup on dedicated cores (the step's
 * CPU time instead of its wall time). While one rank measures alone, the others wait in a
 * sleeping poll (MPI_Ibarrier + nanosleep) rather than MPI's busy wait, so they do not take
 * CPU from it on a shared machine. */
#include <cblas.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/config.h"
#include "core/dist.h"
#include "core/log.h"
#include "core/rng.h"
#include "model/builder.h"
#include "nn/optim.h"
#include "nn/threads.h"

#define GLOBAL_BATCH 8
#define STEPS 10
#define AR_REPS 20

enum { PH_DATA, PH_COMPUTE, PH_WAIT, PH_ALLREDUCE, PH_OPTIM, PH_N };
static const char *phase_name[PH_N] = {"data", "compute", "wait", "allreduce", "optim"};

typedef struct {
    double wall, cpu;          /* whole timed run */
    double phase[PH_N];        /* wall seconds per phase, summed over steps */
    double phase_cpu[PH_N];    /* process CPU seconds per phase (MPI waits spin: CPU too) */
} timing;

static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

/* Barrier without busy waiting (OpenMPI spins in MPI_Barrier, taking a core from the rank
 * being measured when the cores are shared). */
static void sleepy_barrier(void)
{
    MPI_Request req;
    MPI_Ibarrier(MPI_COMM_WORLD, &req);
    int done = 0;
    while (!done) {
        MPI_Test(&req, &done, MPI_STATUS_IGNORE);
        if (!done) nanosleep(&(struct timespec){0, 200000}, NULL);
    }
}

/* STEPS training steps on n samples of a global batch of ng. reduce: weight and allreduce the
 * gradient (with a barrier before it to separate imbalance from communication). */
static dist_grad_sync g_sync;

/* reduce: 0 none, 1 one allreduce after backward, 2 overlapped with backward (dist_grad_sync;
 * "allreduce" is then the final wait, "optim" includes nothing of the weighting) */
static int run_steps(sm_model *m, optim *opt, int n, int ng, int reduce, rng_t *r, timing *tm)
{
    param_store *ps = model_params(m);
    size_t gn = param_store_size(ps);
    float *grad = param_store_grad_all(ps);
    size_t nin = (size_t)n * 2 * 32 * 64;
    memset(tm, 0, sizeof *tm);
    double w0 = MPI_Wtime(), c0 = cpu_now();
    for (int s = 0; s < STEPS; s++) {
        double t = MPI_Wtime(), t2, c = cpu_now(), c2;
        model_set_batch(m, n);
        float *in = model_input(m);
        for (size_t i = 0; i < nin; i++) in[i] = (float)rng_normal(r);
        t2 = MPI_Wtime();
        c2 = cpu_now();
        tm->phase[PH_DATA] += t2 - t;
        tm->phase_cpu[PH_DATA] += c2 - c;
        t = t2;
        c = c2;
        model_zero_grad(m);
        if (reduce == 2) dist_grad_sync_begin(&g_sync, grad, gn, (float)n / (float)ng, 65536);
        if (model_forward(m, 1, r)) return 1;
        const float *out = model_output(m);
        float *dout = model_output_grad(m);
        for (size_t i = 0; i < nin; i++) dout[i] = 2.0f * (out[i] - 0.1f) / (float)nin;
        if (model_backward(m)) return 1;
        t2 = MPI_Wtime();
        c2 = cpu_now();
        tm->phase[PH_COMPUTE] += t2 - t;
        tm->phase_cpu[PH_COMPUTE] += c2 - c;
        t = t2;
        c = c2;
        if (reduce == 2) {
            if (dist_barrier()) return 1;
            t2 = MPI_Wtime();
            c2 = cpu_now();
            tm->phase[PH_WAIT] += t2 - t;
            tm->phase_cpu[PH_WAIT] += c2 - c;
            t = t2;
            c = c2;
            if (dist_grad_sync_finish(&g_sync)) return 1;
            t2 = MPI_Wtime();
            c2 = cpu_now();
            tm->phase[PH_ALLREDUCE] += t2 - t;
            tm->phase_cpu[PH_ALLREDUCE] += c2 - c;
            t = t2;
            c = c2;
        } else if (reduce) {
            float w = (float)n / (float)ng;
            for (size_t k = 0; k < gn; k++) grad[k] *= w;
            t2 = MPI_Wtime();
            c2 = cpu_now();
            tm->phase[PH_OPTIM] += t2 - t;
            tm->phase_cpu[PH_OPTIM] += c2 - c;
            t = t2;
            c = c2;
            if (dist_barrier()) return 1;
            t2 = MPI_Wtime();
            c2 = cpu_now();
            tm->phase[PH_WAIT] += t2 - t;
            tm->phase_cpu[PH_WAIT] += c2 - c;
            t = t2;
            c = c2;
            if (dist_allreduce_sum_f(grad, gn)) return 1;
            t2 = MPI_Wtime();
            c2 = cpu_now();
            tm->phase[PH_ALLREDUCE] += t2 - t;
            tm->phase_cpu[PH_ALLREDUCE] += c2 - c;
            t = t2;
            c = c2;
        }
        optim_step(opt);
        tm->phase[PH_OPTIM] += MPI_Wtime() - t;
        tm->phase_cpu[PH_OPTIM] += cpu_now() - c;
    }
    tm->wall = MPI_Wtime() - w0;
    tm->cpu = cpu_now() - c0;
    return 0;
}

static void print_timing(const char *label, int rank, const timing *tm, int samples)
{
    printf("%s rank %d: %.3f samples/s, per step wall %.4f s cpu %.4f s (cpu/wall %.2f);", label, rank,
           STEPS * samples / tm->wall, tm->wall / STEPS, tm->cpu / STEPS, tm->cpu / tm->wall);
    for (int p = 0; p < PH_N; p++) printf(" %s %.4f/%.4f", phase_name[p], tm->phase[p] / STEPS, tm->phase_cpu[p] / STEPS);
    printf(" (wall/cpu s)\n");
}

int main(int argc, char **argv)
{
    if (dist_init(&argc, &argv) != SM_OK || dist_size() < 2) {
        fprintf(stderr, "bench_mpi: run under mpirun -np 2 (or more) with 1 thread per rank: %s\n",
                dist_size() < 2 ? "got 1 rank" : sm_last_error());
        dist_finalize();
        return 1;
    }
    int rank = dist_rank(), size = dist_size();
    nn_set_threads(1);
    sm_config *cfg = NULL;
    char path[1024];
    snprintf(path, sizeof path, "%s/configs/weatherbench_z500_t850_smoe.yaml", SMOECAST_SOURCE_DIR);
    sm_model *m = NULL;
    optim *opt = NULL;
    int st = config_load(path, 0, NULL, &cfg);
    if (!st) st = model_build_dims(&cfg->model, 2, 2, 32, 64, 1, GLOBAL_BATCH, 1, 1, &m);
    optim_config oc;
    if (!st) st = optim_config_from_training(&cfg->training, &oc);
    if (!st) st = optim_create(&opt, model_params(m), &oc);
    if (st) {
        dist_abort(st, sm_last_error());
        return st;
    }
    if (rank == 0) printf("openblas_corename: %s\nranks: %d\nglobal_batch: %d\nsteps: %d\n", openblas_get_corename(), size,
                          GLOBAL_BATCH, STEPS);
    rng_t r;
    rng_seed(&r, 5, (uint64_t)rank);
    const int local = GLOBAL_BATCH / size;
    timing t1, t1l, tn, warm;
    memset(&t1, 0, sizeof t1);
    memset(&t1l, 0, sizeof t1l);
    /* warm-up, then the 1-rank peers: rank 0 alone on the global batch, and on the per-rank
     * batch (no communication) */
    sleepy_barrier();
    if (rank == 0) {
        run_steps(m, opt, GLOBAL_BATCH, GLOBAL_BATCH, 0, &r, &warm);
        st = run_steps(m, opt, GLOBAL_BATCH, GLOBAL_BATCH, 0, &r, &t1);
        if (!st) st = run_steps(m, opt, local, local, 0, &r, &t1l);
    }
    sleepy_barrier();
    /* the split run: every rank local samples of each global batch */
    run_steps(m, opt, local, GLOBAL_BATCH, 1, &r, &warm);
    dist_barrier();
    dist_reset_bytes();
    if (!st) st = run_steps(m, opt, local, GLOBAL_BATCH, 1, &r, &tn);
    size_t bytes = dist_bytes_reduced() / STEPS;
    /* the same with the allreduce overlapped with backward */
    timing to;
    memset(&to, 0, sizeof to);
    if (!st) st = model_set_grad_ready(m, dist_grad_sync_ready, &g_sync);
    dist_barrier();
    if (!st) st = run_steps(m, opt, local, GLOBAL_BATCH, 2, &r, &to);
    model_set_grad_ready(m, NULL, NULL);
    /* the gradient allreduce alone (the most an overlap with backward could hide) */
    size_t gn = param_store_size(model_params(m));
    dist_barrier();
    double a0 = MPI_Wtime();
    for (int i = 0; i < AR_REPS && !st; i++) st = dist_allreduce_sum_f(param_store_grad_all(model_params(m)), gn);
    double t_ar = (MPI_Wtime() - a0) / AR_REPS;
    /* per-rank timings of the split run, gathered on rank 0 */
    enum { NV = 2 + 2 * PH_N };
    double mine[NV], *all = malloc(sizeof(double) * NV * (size_t)size);
    mine[0] = tn.wall;
    mine[1] = tn.cpu;
    for (int p = 0; p < PH_N; p++) {
        mine[2 + p] = tn.phase[p];
        mine[2 + PH_N + p] = tn.phase_cpu[p];
    }
    MPI_Gather(mine, NV, MPI_DOUBLE, all, NV, MPI_DOUBLE, 0, MPI_COMM_WORLD);
    if (rank == 0 && !st) {
        double s1 = STEPS * GLOBAL_BATCH / t1.wall, sn = STEPS * GLOBAL_BATCH / tn.wall;
        printf("parameters: %zu floats (flat gradient buffer)\n", gn);
        print_timing("1rank_global_batch", 0, &t1, GLOBAL_BATCH);
        print_timing("1rank_rank_batch", 0, &t1l, local);
        /* work CPU of a rank: everything but the MPI waits (which spin) */
        double cpu_max = 0;
        for (int q = 0; q < size; q++) {
            timing tq;
            const double *v = all + (size_t)q * NV;
            tq.wall = v[0];
            tq.cpu = v[1];
            for (int p = 0; p < PH_N; p++) {
                tq.phase[p] = v[2 + p];
                tq.phase_cpu[p] = v[2 + PH_N + p];
            }
            char label[32];
            snprintf(label, sizeof label, "%dranks", size);
            print_timing(label, q, &tq, local);
            double work = tq.phase_cpu[PH_DATA] + tq.phase_cpu[PH_COMPUTE] + tq.phase_cpu[PH_OPTIM];
            if (work > cpu_max) cpu_max = work;
        }
        print_timing("2ranks_overlap", 0, &to, local);
        printf("samples_per_s_%dranks_overlap: %.3f (%d chunks per step)\n", size, STEPS * GLOBAL_BATCH / to.wall, g_sync.chunks);
        printf("allreduce_alone_s: %.6f (%zu bytes, %.1f MB/s)\n", t_ar, gn * sizeof(float), gn * sizeof(float) / t_ar / 1e6);
        printf("allreduce_share_of_step: %.4f\n", tn.phase[PH_ALLREDUCE] / tn.wall);
        printf("batch_efficiency_cpu: %.3f (CPU s per sample at %d vs %d samples per step, 1 rank)\n",
               (t1.cpu / GLOBAL_BATCH) / (t1l.cpu / local), local, GLOBAL_BATCH);
        /* on dedicated cores a step takes the slowest rank's CPU time plus the communication */
        printf("speedup_dedicated_cores_estimate: %.3f\n", t1.cpu / (cpu_max + STEPS * t_ar));
        printf("samples_per_s_1rank: %.3f\n", s1);
        printf("samples_per_s_%dranks: %.3f\n", size, sn);
        printf("bytes_allreduced_per_step_per_rank: %zu\n", bytes);
        printf("speedup: %.3f\n", sn / s1);
    }
    free(all);
    optim_free(opt);
    model_free(m);
    config_free(cfg);
    dist_finalize();
    return st;
}
