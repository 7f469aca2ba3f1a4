/* Data-parallel training throughput: run as `mpirun -np 2 bench_mpi` (1 thread per rank).
 * The WeatherBench CNN with an SMoE last layer (configs/weatherbench_z500_t850_smoe.yaml
 * model, 32 x 64 grid, z500 + t850 in and out) on synthetic data. In the same run it measures
 * samples/s of rank 0 alone on the global batch (the 1-rank peer) and of all ranks splitting
 * the global batch (forward, backward, one allreduce of the flat gradient buffer, Adam step),
 * and prints `speedup: X` plus the bytes each rank sends to allreduce per step. */
#include <cblas.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/dist.h"
#include "core/log.h"
#include "core/rng.h"
#include "model/builder.h"
#include "nn/optim.h"
#include "nn/threads.h"

#define GLOBAL_BATCH 8
#define STEPS 10

static int run_steps(sm_model *m, optim *opt, int n, int ng, int reduce, rng_t *r)
{
    param_store *ps = model_params(m);
    size_t gn = param_store_size(ps);
    float *grad = param_store_grad_all(ps);
    size_t nin = (size_t)n * 2 * 32 * 64;
    for (int s = 0; s < STEPS; s++) {
        model_set_batch(m, n);
        float *in = model_input(m);
        for (size_t i = 0; i < nin; i++) in[i] = (float)rng_normal(r);
        model_zero_grad(m);
        if (model_forward(m, 1, r)) return 1;
        const float *out = model_output(m);
        float *dout = model_output_grad(m);
        for (size_t i = 0; i < nin; i++) dout[i] = 2.0f * (out[i] - 0.1f) / (float)nin;
        if (model_backward(m)) return 1;
        if (reduce) {
            float w = (float)n / (float)ng;
            for (size_t k = 0; k < gn; k++) grad[k] *= w;
            if (dist_allreduce_sum_f(grad, gn)) return 1;
        }
        optim_step(opt);
    }
    return 0;
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
    /* warm-up, then the 1-rank peer: rank 0 alone processes the whole global batch */
    double t1 = 0;
    dist_barrier();
    if (rank == 0) {
        run_steps(m, opt, GLOBAL_BATCH, GLOBAL_BATCH, 0, &r);
        double t0 = MPI_Wtime();
        st = run_steps(m, opt, GLOBAL_BATCH, GLOBAL_BATCH, 0, &r);
        t1 = MPI_Wtime() - t0;
    }
    dist_barrier();
    int local = GLOBAL_BATCH / size;
    run_steps(m, opt, local, GLOBAL_BATCH, 1, &r); /* warm-up of the split run */
    dist_barrier();
    dist_reset_bytes();
    double t0 = MPI_Wtime();
    if (!st) st = run_steps(m, opt, local, GLOBAL_BATCH, 1, &r);
    dist_barrier();
    double tn = MPI_Wtime() - t0;
    size_t bytes = dist_bytes_reduced() / STEPS;
    if (rank == 0 && !st) {
        double s1 = STEPS * GLOBAL_BATCH / t1, sn = STEPS * GLOBAL_BATCH / tn;
        printf("parameters: %zu floats (flat gradient buffer)\n", param_store_size(model_params(m)));
        printf("samples_per_s_1rank: %.3f\n", s1);
        printf("samples_per_s_%dranks: %.3f\n", size, sn);
        printf("bytes_allreduced_per_step_per_rank: %zu\n", bytes);
        printf("speedup: %.3f\n", sn / s1);
    }
    optim_free(opt);
    model_free(m);
    config_free(cfg);
    dist_finalize();
    return st;
}
