/* Probe of the heat-diffusion SMoE training dynamics (docs/experiments.md, docs/moe.md "RC and
 * damping thresholds"), not a timing benchmark: one SMoE layer (N experts, k 1, unweighted, RC
 * loss, damping) trained directly on `smoecast synth heat` runs (seed 0 region map) with Adam,
 * batch of random (run, step) pairs, bypassing the training engine, so that one recipe detail can
 * be changed at a time. Prints every -every steps: mean MSE, ARI of the latent gate's argmax vs
 * the true regions, pixels per expert, correct / damped fractions and each expert's centre,
 * 4 neighbours and mean diagonal weight.
 *
 *   bench_heat_probe [-seed 1] [-runs 100] [-iters 20000] [-batch 4] [-lr 1e-3] [-q 0.3]
 *                    [-norm 0|1|2] (1: (x - mean) / std as the training engine, 2: x / std) [-tend 0|1]
 *                    [-abs 1|0] (absolute / relative thresholds) [-absc 1e-5] [-absd 1e-3]
 *                    [-damp 1] [-dfac 0] [-every 1000] [-N 3] [-H 64] */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/log.h"
#include "core/rng.h"
#include "moe/smoe.h"
#include "moe/routing_metrics.h"
#include "tasks/synth.h"

static double arg(int argc, char **argv, const char *k, double def) {
    for (int i = 1; i + 1 < argc; i++) if (!strcmp(argv[i], k)) return atof(argv[i + 1]);
    return def;
}
int main(int argc, char **argv) {
    int seed = (int)arg(argc, argv, "-seed", 1), runs = (int)arg(argc, argv, "-runs", 100);
    long iters = (long)arg(argc, argv, "-iters", 20000);
    int B = (int)arg(argc, argv, "-batch", 4), norm = (int)arg(argc, argv, "-norm", 0);
    double lr = arg(argc, argv, "-lr", 1e-3), q = arg(argc, argv, "-q", 0.3), dfac = arg(argc, argv, "-dfac", 0);
    int damping = (int)arg(argc, argv, "-damp", 1), tend = (int)arg(argc, argv, "-tend", 0);
    int every = (int)arg(argc, argv, "-every", 1000), N = (int)arg(argc, argv, "-N", 3);
    int H = (int)arg(argc, argv, "-H", 64);
    synth_heat_opts o; synth_heat_defaults(&o); o.seed = 0; o.ny = o.nx = H;
    int S = o.steps, hw = H * H;
    int *reg = malloc(sizeof(int) * hw); float *dif = malloc(sizeof(float) * hw);
    synth_heat_map(&o, reg, dif);
    float *data = malloc(sizeof(float) * (size_t)runs * (S + 1) * hw);
    for (int r = 0; r < runs; r++) synth_heat_run(&o, reg, dif, r, data + (size_t)r * (S + 1) * hw);
    double mean = 0, var = 0; size_t nt = (size_t)runs * (S + 1) * hw;
    for (size_t i = 0; i < nt; i++) mean += data[i];
    mean /= nt;
    for (size_t i = 0; i < nt; i++) var += (data[i] - mean) * (data[i] - mean);
    var /= nt;
    double sd = sqrt(var);
    fprintf(stderr, "mean %g sd %g\n", mean, sd);
    smoe_shape s; memset(&s, 0, sizeof s);
    s.batch = B; s.c_in = 1; s.h = H; s.w = H; s.n_experts = N; s.k = 1; smoe_shape_defaults(&s);
    s.weighted = 0; s.rc_loss = 1; s.rc_quantile = (float)q; s.damping = damping; s.damping_factor = (float)dfac; s.rc_error_scale = (float)(B * H * H) / 2.0f;
    s.rc_absolute = (int)arg(argc, argv, "-abs", 1) ? SMOE_RC_ABSOLUTE : SMOE_RC_RELATIVE;
    s.rc_tol_correct = (float)arg(argc, argv, "-absc", 1e-5); s.rc_tol_damp = (float)arg(argc, argv, "-absd", 1e-3);
    if (smoe_check(&s) != SM_OK || runs < 1 || B < 1 || iters < 1 || every < 1) {
        fprintf(stderr, "bench_heat_probe: invalid options: %s\n", sm_last_error());
        return 1;
    }
    size_t np = smoe_param_floats(&s);
    float *p = malloc(np * 4), *dp = malloc(np * 4), *m = calloc(np, 4), *v = calloc(np, 4);
    float *st = malloc(smoe_state_floats(&s) * 4), *ws = malloc(smoe_workspace_floats(&s) * 4);
    float *x = malloc((size_t)B * hw * 4), *t = malloc((size_t)B * hw * 4), *y = malloc((size_t)B * hw * 4), *g = malloc((size_t)B * hw * 4);
    rng_t r; rng_seed(&r, seed, 7); smoe_init(&s, p, &r);
    rng_t sh; rng_seed(&sh, seed, 9);
    int32_t *lab = malloc(4 * hw), *am = malloc(4 * hw);
    for (int i = 0; i < hw; i++) lab[i] = reg[i];
    double b1 = 0.9, b2 = 0.999, acc = 0; long nacc = 0;
    for (long it = 1; it <= iters; it++) {
        for (int b = 0; b < B; b++) {
            int rr = (int)rng_below(&sh, runs), ss = (int)rng_below(&sh, S);
            const float *a0 = data + ((size_t)rr * (S + 1) + ss) * hw, *a1 = a0 + hw;
            for (int i = 0; i < hw; i++) {
                float xi = a0[i], ti = a1[i];
                if (norm == 1) { xi = (float)((xi - mean) / sd); ti = (float)((ti - mean) / sd); }
                if (norm == 2) { xi = (float)(xi / sd); ti = (float)(ti / sd); }
                if (tend) ti = ti - xi;
                x[(size_t)b * hw + i] = xi; t[(size_t)b * hw + i] = ti;
            }
        }
        smoe_forward(&s, y, x, p, st, ws, NULL);
        double loss = 0; size_t n = (size_t)B * hw;
        for (size_t i = 0; i < n; i++) { float e = y[i] - t[i]; loss += (double)e * e / n; g[i] = 2 * e / (float)n; }
        acc += loss; nacc++;
        memset(dp, 0, np * 4);
        smoe_backward(&s, NULL, dp, g, NULL, x, p, st, ws);
        double c1 = 1 - pow(b1, it), c2 = 1 - pow(b2, it);
        for (size_t i = 0; i < np; i++) {
            m[i] = b1 * m[i] + (1 - b1) * dp[i]; v[i] = b2 * v[i] + (1 - b2) * dp[i] * dp[i];
            p[i] -= lr * (m[i] / c1) / (sqrt(v[i] / c2) + 1e-8);
        }
        if (it % every == 0) {
            moe_layout l = {1, N, (size_t)hw};
            moe_argmax_experts(&l, p + (size_t)N * 9, am);
            int cnt[8] = {0}; for (int i = 0; i < hw; i++) cnt[am[i]]++;
            double ari = moe_adjusted_rand_index(hw, am, N, lab, 3);
            smoe_state_view sv = smoe_state(&s, st);
            printf("it %ld mse %.3e ari %.3f cnt %d %d %d corr %.2f damp %.2f |", it, acc / nacc, ari, cnt[0], cnt[1], cnt[2],
                   sv.stats[SMOE_STAT_CORRECT_FRAC], sv.stats[SMOE_STAT_DAMPED_FRAC]);
            for (int e = 0; e < N; e++) printf(" e%d c %.3f n %.3f %.3f %.3f %.3f d %.3f", e, p[e*9+4], p[e*9+1], p[e*9+3], p[e*9+5], p[e*9+7], (p[e*9]+p[e*9+2]+p[e*9+6]+p[e*9+8])/4);
            printf("\n"); fflush(stdout);
            acc = 0; nacc = 0;
        }
    }
    free(reg); free(dif); free(data); free(p); free(dp); free(m); free(v); free(st); free(ws);
    free(x); free(t); free(y); free(g); free(lab); free(am);
    return 0;
}
