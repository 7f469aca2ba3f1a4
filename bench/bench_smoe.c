/* Benchmark: the SMoE layer's sparse forward + backward against the NN core's dense conv2d
 * (im2col + sgemm) computing all N expert channels, in the same run.
 * C_in = 64, N = 8, batch 8, 64 x 128, latent gate, weighted routing, input gradient on.
 * Prints one line per k: smoe_sparse_vs_dense_k<k>: <time ratio> (target <= k/N + 0.15).
 * Run as: env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE build/bench/bench_smoe [reps]
 * Both are timed alternately and the best of `reps` (default 10) runs of each is kept. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/rng.h"
#include "moe/smoe.h"
#include "nn/conv2d.h"
#include "nn/threads.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

enum { B = 8, C = 64, H = 64, W = 128, N = 8 };

/* Runs the dense peer and the SMoE layer alternately `reps` times; best time of each. */
static void time_both(int reps, int k, const float *x, float *dx, float *y, const float *gy,
                      double *t_dense, double *t_smoe)
{
    conv2d_shape cs = {B, C, H, W, N, 3, 1, PAD_PERIODIC_LON, 0};
    size_t nw = (size_t)N * C * 9;
    float *wt = malloc(nw * sizeof(float)), *dw = calloc(nw, sizeof(float));
    float *cws = malloc(conv2d_workspace_floats(&cs) * sizeof(float));
    rng_t r;
    rng_seed(&r, 3, 1);
    for (size_t i = 0; i < nw; i++) wt[i] = (float)(rng_uniform(&r) - 0.5);
    smoe_shape s;
    memset(&s, 0, sizeof s);
    s.batch = B; s.c_in = C; s.h = H; s.w = W; s.n_experts = N; s.k = k;
    smoe_shape_defaults(&s);
    s.pad = PAD_PERIODIC_LON;
    size_t np = smoe_param_floats(&s);
    float *p = malloc(np * sizeof(float)), *dp = calloc(np, sizeof(float));
    float *state = malloc(smoe_state_floats(&s) * sizeof(float));
    float *ws = malloc(smoe_workspace_floats(&s) * sizeof(float));
    smoe_init(&s, p, &r);
    double bd = 1e30, bs = 1e30;
    for (int i = 0; i < reps; i++) {
        double t0 = now();
        conv2d_forward(&cs, y, x, wt, NULL, cws);
        conv2d_backward(&cs, dx, dw, NULL, gy, x, wt, cws);
        double t1 = now();
        smoe_forward(&s, y, x, p, state, ws, NULL);
        smoe_backward(&s, dx, dp, gy, NULL, x, p, state, ws);
        double t2 = now();
        if (t1 - t0 < bd) bd = t1 - t0;
        if (t2 - t1 < bs) bs = t2 - t1;
    }
    free(wt); free(dw); free(cws); free(p); free(dp); free(state); free(ws);
    *t_dense = bd;
    *t_smoe = bs;
}

int main(int argc, char **argv)
{
    int reps = argc > 1 ? atoi(argv[1]) : 10;
    if (reps < 1) reps = 1;
    int nt = nn_set_threads(0);
    printf("openblas_corename: %s\n", openblas_get_corename());
    printf("threads: %d\n", nt);
    printf("shape: batch %d, c_in %d, %dx%d, experts %d, latent gate, weighted, periodic_lon\n",
           B, C, H, W, N);
    size_t nx = (size_t)B * C * H * W, ny = (size_t)B * N * H * W;
    float *x = malloc(nx * sizeof(float)), *dx = calloc(nx, sizeof(float));
    float *y = malloc(ny * sizeof(float)), *gy = malloc(ny * sizeof(float));
    rng_t r;
    rng_seed(&r, 1, 1);
    for (size_t i = 0; i < nx; i++) x[i] = (float)(rng_uniform(&r) - 0.5);
    for (size_t i = 0; i < ny; i++) gy[i] = (float)(rng_uniform(&r) - 0.5);
    for (int k = 1; k <= 2; k++) {
        double td, ts;
        time_both(reps, k, x, dx, y, gy, &td, &ts);
        printf("dense_conv2d_fwd_bwd_seconds_k%d: %.4f\n", k, td);
        printf("smoe_fwd_bwd_seconds_k%d: %.4f\n", k, ts);
        printf("smoe_sparse_vs_dense_k%d: %.3f (target <= %.3f)\n", k, ts / td,
               (double)k / N + 0.15);
    }
    free(x); free(dx); free(y); free(gy);
    return 0;
}
