/* Benchmark: the SMoE layer's sparse forward + backward against the NN core's dense conv2d
 * computing all N expert channels (conv2d_forward + conv2d_backward), in the same run. The
 * target lines use the peer the issue names, the core's im2col + sgemm path (forced with
 * nn_conv2d_set_algo); the _vs_auto lines compare with what the core picks for this 3x3 shape
 * on its own (Winograd F(4x4, 3x3), ~3x faster than im2col), for information.
 * C_in = 64, N = 8, batch 8, 64 x 128, latent gate (routing fixed per step), weighted routing,
 * periodic_lon padding, input gradient on.
 * Prints one line per k with all threads:  smoe_sparse_vs_dense_k<k>: <time ratio>
 * (target <= k/N + 0.15), then the same with one thread (_t1, wall time, and cpu_..._t1,
 * process CPU time, which a loaded machine disturbs less).
 * Run as: env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE build/bench/bench_smoe [reps]
 * Both are timed alternately and the best of `reps` (default 15) runs of each is kept. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/rng.h"
#include "moe/smoe.h"
#include "nn/conv2d.h"
#include "nn/nn_internal.h"
#include "nn/threads.h"

static double now(clockid_t clk)
{
    struct timespec ts;
    clock_gettime(clk, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

enum { B = 8, C = 64, H = 64, W = 128, N = 8 };

typedef struct {
    double dense, smoe;
} pair;

/* Runs the dense peer and the SMoE layer alternately `reps` times; best wall and CPU time of
 * each. Workspaces are sized for the current nn thread count. */
static void time_both(int reps, int k, const float *x, float *dx, float *y, const float *gy,
                      pair *wall, pair *cpu)
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
    wall->dense = wall->smoe = cpu->dense = cpu->smoe = 1e30;
    for (int i = 0; i < reps; i++) {
        double t0 = now(CLOCK_MONOTONIC), c0 = now(CLOCK_PROCESS_CPUTIME_ID);
        conv2d_forward(&cs, y, x, wt, NULL, cws);
        conv2d_backward(&cs, dx, dw, NULL, gy, x, wt, cws);
        double t1 = now(CLOCK_MONOTONIC), c1 = now(CLOCK_PROCESS_CPUTIME_ID);
        smoe_forward(&s, y, x, p, state, ws, NULL);
        smoe_backward(&s, dx, dp, gy, NULL, x, p, state, ws);
        double t2 = now(CLOCK_MONOTONIC), c2 = now(CLOCK_PROCESS_CPUTIME_ID);
        if (t1 - t0 < wall->dense) wall->dense = t1 - t0;
        if (t2 - t1 < wall->smoe) wall->smoe = t2 - t1;
        if (c1 - c0 < cpu->dense) cpu->dense = c1 - c0;
        if (c2 - c1 < cpu->smoe) cpu->smoe = c2 - c1;
    }
    free(wt); free(dw); free(cws); free(p); free(dp); free(state); free(ws);
}

int main(int argc, char **argv)
{
    int reps = argc > 1 ? atoi(argv[1]) : 15;
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
    /* all threads first: workspaces must not be sized for fewer threads than are used */
    for (int pass = 0; pass < 2; pass++) {
        const char *sfx = pass ? "_t1" : "";
        if (pass) {
            if (nt == 1) break;
            nn_set_threads(1);
        }
        for (int k = 1; k <= 2; k++) {
            pair wall, cpu, wall_auto, cpu_auto;
            nn_conv2d_set_algo(NN_CONV_AUTO);
            time_both(reps, k, x, dx, y, gy, &wall_auto, &cpu_auto);
            nn_conv2d_set_algo(NN_CONV_IM2COL);
            time_both(reps, k, x, dx, y, gy, &wall, &cpu);
            nn_conv2d_set_algo(NN_CONV_AUTO);
            printf("dense_conv2d_fwd_bwd_seconds_k%d%s: %.4f\n", k, sfx, wall.dense);
            printf("smoe_fwd_bwd_seconds_k%d%s: %.4f\n", k, sfx, wall.smoe);
            printf("smoe_sparse_vs_dense_k%d%s: %.3f (target <= %.3f)\n", k, sfx,
                   wall.smoe / wall.dense, (double)k / N + 0.15);
            if (pass || nt == 1) printf("cpu_smoe_sparse_vs_dense_k%d%s: %.3f\n", k, sfx, cpu.smoe / cpu.dense);
            printf("dense_conv2d_auto_fwd_bwd_seconds_k%d%s: %.4f\n", k, sfx, wall_auto.dense);
            printf("smoe_sparse_vs_auto_k%d%s: %.3f (no target: the Winograd peer)\n", k, sfx,
                   wall_auto.smoe / wall_auto.dense);
        }
    }
    free(x); free(dx); free(y); free(gy);
    return 0;
}
