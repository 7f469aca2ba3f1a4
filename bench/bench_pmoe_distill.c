/* Benchmark: inference of the attention-gated point MoE layer (METHODS.md section 3) with and
 * without its distilled student router, in the same run. The attention teacher must run every
 * expert before it can route (its keys are the experts' hidden features); the distilled layer
 * routes with an ordinary softmax top-k gate and computes only the selected experts at each
 * token. Both are evaluation forwards (training == 0) of the same shape and parameters; the
 * student is trained for a few hundred steps first, so its routing is not a random one (its
 * top-1 agreement with the teacher is printed).
 * Shape: batch 8, C_in 32, 64 x 128, 8 experts of hidden 16, kernel 3, C_out 4, periodic_lon.
 * Prints per k:  pmoe_distilled_vs_teacher_k<k>: <time ratio>  (expected near k/N plus the
 * gate; no target in the issues, reported in docs/performance.md), then the same with one
 * thread (_t1).
 * Run as: env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE build/bench/bench_pmoe_distill [reps]
 * Both are timed alternately and the best of `reps` (default 10) runs of each is kept. */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/rng.h"
#include "moe/point_moe.h"
#include "nn/threads.h"

enum { B = 8, C = 32, H = 64, W = 128, N = 8, HIDDEN = 16, C_OUT = 4, TRAIN_STEPS = 60 };

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

typedef struct {
    pmoe_shape s;
    float *params, *d_params, *state, *workspace;
} layer;

static void layer_create(layer *l, int k, int distill, rng_t *r)
{
    memset(&l->s, 0, sizeof l->s);
    pmoe_shape_defaults(&l->s);
    l->s.batch = B; l->s.c_in = C; l->s.h = H; l->s.w = W; l->s.c_out = C_OUT;
    l->s.n_experts = N; l->s.k = k; l->s.hidden = HIDDEN; l->s.attn_hidden = HIDDEN;
    l->s.pad = PAD_PERIODIC_LON;
    l->s.gate = PMOE_ATTENTION;
    l->s.noisy = 0;
    l->s.distill = distill;
    if (pmoe_check(&l->s)) {
        fprintf(stderr, "bench_pmoe_distill: invalid layer shape\n");
        exit(1);
    }
    size_t np = pmoe_param_floats(&l->s);
    l->params = malloc(np * sizeof(float));
    l->d_params = calloc(np, sizeof(float));
    l->state = malloc(pmoe_state_floats(&l->s) * sizeof(float));
    l->workspace = malloc(pmoe_workspace_floats(&l->s) * sizeof(float));
    pmoe_init(&l->s, l->params, r);
}

static void layer_free(layer *l)
{
    free(l->params); free(l->d_params); free(l->state); free(l->workspace);
}

/* Trains only the student gate by its distillation loss (plain SGD on the student's slice of the
 * gradient: the loss's gradient reaches no other parameter), so that evaluation routes the way
 * a trained model would. Returns the top-1 agreement of the last training forward. */
static float train_student(layer *l, const float *x, rng_t *r)
{
    size_t np = pmoe_param_floats(&l->s), ny = (size_t)B * C_OUT * H * W;
    float *gy = calloc(ny, sizeof(float));
    pmoe_aux_weights aux;
    memset(&aux, 0, sizeof aux);
    aux.distill = 1.0f;
    for (int step = 0; step < TRAIN_STEPS; step++) {
        float *y = malloc(ny * sizeof(float));
        pmoe_forward(&l->s, y, x, l->params, l->state, l->workspace, 1, r);
        memset(l->d_params, 0, np * sizeof(float));
        pmoe_backward(&l->s, NULL, l->d_params, gy, &aux, x, l->params, l->state, l->workspace);
        for (size_t i = 0; i < np; i++) l->params[i] -= 0.5f * l->d_params[i];
        free(y);
    }
    free(gy);
    return pmoe_stats(&l->s, l->state)[PMOE_STAT_AGREE];
}

int main(int argc, char **argv)
{
    int reps = argc > 1 ? atoi(argv[1]) : 10;
    if (reps < 1) reps = 1;
    int nt = nn_set_threads(0);
    printf("openblas_corename: %s\n", openblas_get_corename());
    printf("threads: %d\n", nt);
    printf("shape: batch %d, c_in %d, %dx%d, experts %d of hidden %d, kernel 3, c_out %d, attention gate\n", B, C, H, W, N,
           HIDDEN, C_OUT);
    size_t nx = (size_t)B * C * H * W, ny = (size_t)B * C_OUT * H * W;
    float *x = malloc(nx * sizeof(float)), *y = malloc(ny * sizeof(float));
    rng_t r;
    rng_seed(&r, 1, 1);
    /* smooth inputs with structure, so that routing varies over the grid like a real field */
    for (int b = 0; b < B; b++)
        for (int c = 0; c < C; c++)
            for (int i = 0; i < H; i++)
                for (int j = 0; j < W; j++)
                    x[(((size_t)b * C + c) * H + i) * W + j] =
                        (float)(sin(0.1 * (c + 1) * i + b) * cos(0.07 * (c + 2) * j) + 0.1 * (rng_uniform(&r) - 0.5));
    for (int k = 1; k <= 2; k++) {
        layer teacher, distilled;
        rng_t init;
        rng_seed(&init, 7, 1);
        layer_create(&teacher, k, 0, &init);
        rng_seed(&init, 7, 1);
        layer_create(&distilled, k, 1, &init);
        float agree = train_student(&distilled, x, &r);
        printf("student_top1_agreement_k%d: %.3f (chance %.3f)\n", k, agree, 1.0 / N);
        for (int pass = 0; pass < 2; pass++) {
            const char *sfx = pass ? "_t1" : "";
            if (pass && nt == 1) break;
            nn_set_threads(pass ? 1 : nt);
            double best_t = 1e30, best_d = 1e30;
            for (int i = 0; i < reps; i++) {
                double t0 = now();
                pmoe_forward(&teacher.s, y, x, teacher.params, teacher.state, teacher.workspace, 0, NULL);
                double t1 = now();
                pmoe_forward(&distilled.s, y, x, distilled.params, distilled.state, distilled.workspace, 0, NULL);
                double t2 = now();
                if (t1 - t0 < best_t) best_t = t1 - t0;
                if (t2 - t1 < best_d) best_d = t2 - t1;
            }
            printf("pmoe_teacher_forward_seconds_k%d%s: %.4f\n", k, sfx, best_t);
            printf("pmoe_distilled_forward_seconds_k%d%s: %.4f\n", k, sfx, best_d);
            printf("pmoe_distilled_vs_teacher_k%d%s: %.3f (k/N = %.3f)\n", k, sfx, best_d / best_t, (double)k / N);
        }
        nn_set_threads(nt);
        layer_free(&teacher);
        layer_free(&distilled);
    }
    free(x); free(y);
    return 0;
}
