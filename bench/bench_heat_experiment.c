/* Measurement program of the heat-diffusion acceptance experiment (issue 6; docs/experiments.md),
 * not a timing benchmark: it lives in bench/ so that it is built with the other tools.
 *
 *   bench_heat_experiment CHECKPOINT DATASET [--split test|val] [--batch N]
 *
 * Loads a checkpoint written by `smoecast train` (model/checkpoint.h) and the heat dataset
 * written by `smoecast synth heat` (variable `temperature`, static categorical `region`), runs the
 * model over every sample of the split and prints one line per metric:
 *   params <trainable parameters>
 *   samples <count>
 *   mse <test MSE in physical units> / mse_norm <in normalised target units>
 *   for each SMoE layer L: L.ari, L.mi (bits), L.h_u (bits), L.h_s (bits), L.load_<n>:
 *   routing metrics (moe/routing_metrics.h) of the softmax of the raw gate values against the
 *   true region map, over the first batch of the split (a latent gate is the same for every
 *   sample; conv gates are input-dependent). ARI compares the argmax expert with the regions. */
#include "core/config.h"
#include "core/log.h"
#include "data/dataset.h"
#include "data/samples.h"
#include "grid/grid.h"
#include "model/builder.h"
#include "model/checkpoint.h"
#include "model/model.h"
#include "moe/routing_metrics.h"
#include "nn/threads.h"
#include "tasks/train.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int usage(void)
{
    fprintf(stderr, "usage: bench_heat_experiment CHECKPOINT DATASET [--split test|val] [--batch N]\n");
    return 1;
}

int main(int argc, char **argv)
{
    if (argc < 3) return usage();
    const char *ckpt = argv[1], *dspath = argv[2], *split_name = "test";
    int batch = 32;
    for (int i = 3; i < argc; i++) {
        if (!strcmp(argv[i], "--split") && i + 1 < argc) split_name = argv[++i];
        else if (!strcmp(argv[i], "--batch") && i + 1 < argc) batch = atoi(argv[++i]);
        else return usage();
    }
    if (batch < 1 || (strcmp(split_name, "test") && strcmp(split_name, "val"))) return usage();
    if (getenv("OMP_NUM_THREADS") == NULL) nn_set_threads(0);

    char *yaml = NULL;
    sm_config *cfg = NULL;
    dataset *ds = NULL;
    grid *g = NULL;
    sm_model *m = NULL;
    sample_cache *cache = NULL;
    sample_layout L;
    memset(&L, 0, sizeof L);
    sample_split tr, va, te;
    memset(&tr, 0, sizeof tr);
    memset(&va, 0, sizeof va);
    memset(&te, 0, sizeof te);
    ckpt_state cs;
    checkpoint_state_init(&cs);
    float *target = NULL, *state0 = NULL, *po = NULL, *pt = NULL;
    int32_t *labels = NULL;
    int st;
    if ((st = checkpoint_read_config(ckpt, &yaml))) goto done;
    if ((st = config_load_text(yaml, ckpt, 0, NULL, &cfg))) goto done;
    if ((st = dataset_open(dspath, &ds))) goto done;
    if ((st = samples_layout_init(&L, &cfg->data, ds))) goto done;
    if ((st = samples_splits(&L, &cfg->data, ds, &tr, &va, &te))) goto done;
    const sample_split *sp = strcmp(split_name, "test") ? &va : &te;
    if (sp->n < 1) {
        st = sm_fail(SM_ERR_USAGE, "%s: the %s split has no sample", dspath, split_name);
        goto done;
    }
    if (batch > sp->n) batch = (int)sp->n;
    if ((st = train_grid_from_dataset(ds, &g))) goto done;
    if ((st = model_build(&cfg->model, L.c_in, L.c_out, g, batch, 0, (uint64_t)cfg->run.seed, &m))) goto done;
    char in_vars[1024], out_vars[1024];
    samples_variable_lists(&L, ds, in_vars, sizeof in_vars, out_vars, sizeof out_vars);
    cs.input_variables = in_vars;
    cs.output_variables = out_vars;
    if ((st = checkpoint_load(ckpt, m, cfg, g, &cs))) goto done;
    if ((st = train_stats_from_checkpoint(&L, &cs, ckpt))) goto done;
    if ((st = sample_cache_create(ds, &cache))) goto done;

    const size_t np = (size_t)L.h * L.w;
    int rvar = dataset_find_var(ds, "region");
    labels = malloc(sizeof(int32_t) * np);
    target = malloc(sizeof(float) * (size_t)batch * L.c_out * np);
    state0 = malloc(sizeof(float) * (size_t)(L.n_prog > 0 ? L.n_prog : 1) * np);
    po = malloc(sizeof(float) * (size_t)L.c_out * np);
    pt = malloc(sizeof(float) * (size_t)L.c_out * np);
    if (!labels || !target || !state0 || !po || !pt) {
        st = sm_fail(SM_ERR_NUMERIC, "out of memory");
        goto done;
    }
    int nreg = 0;
    if (rvar >= 0) {
        float *buf = malloc(sizeof(float) * np);
        if (!buf || (st = dataset_read(ds, rvar, 0, 0, buf))) {
            free(buf);
            if (!st) st = sm_fail(SM_ERR_NUMERIC, "out of memory");
            goto done;
        }
        for (size_t i = 0; i < np; i++) {
            labels[i] = (int32_t)lround(buf[i]);
            if (labels[i] + 1 > nreg) nreg = labels[i] + 1;
        }
        free(buf);
    }

    double se = 0, se_norm = 0;
    size_t count = 0;
    int gate_done = 0;
    printf("params %zu\n", model_param_count(m));
    for (int64_t first = 0; first < sp->n; first += batch) {
        int n = (int)(sp->n - first < batch ? sp->n - first : batch);
        model_set_batch(m, n);
        if ((st = samples_assemble(&L, cache, sp->idx + first, n, model_input(m), target))) goto done;
        if ((st = model_forward(m, 0, NULL))) goto done;
        const float *out = model_output(m);
        for (int b = 0; b < n; b++) {
            const float *hist[SAMPLES_MAX_VARS * 64];
            if ((st = samples_prognostic_history(&L, cache, sp->idx[first + b], hist))) goto done;
            for (int v = 0; v < L.n_prog; v++) memcpy(state0 + (size_t)v * np, hist[v], sizeof(float) * np);
            const float *ob = out + (size_t)b * L.c_out * np, *tb = target + (size_t)b * L.c_out * np;
            samples_denormalise(&L, ob, state0, po);
            samples_denormalise(&L, tb, state0, pt);
            for (size_t i = 0; i < (size_t)L.c_out * np; i++) {
                if (isnan(pt[i])) continue;
                double d = (double)po[i] - pt[i], dn = (double)ob[i] - tb[i];
                se += d * d;
                se_norm += dn * dn;
                count++;
            }
        }
        for (int i = 0; !gate_done && i < model_moe_count(m); i++) {
            model_moe_info info;
            model_moe_get(m, i, &info);
            moe_routing_metrics r;
            if ((st = model_moe_routing_metrics(m, i, nreg > 0 ? labels : NULL, 0, &r))) goto done;
            printf("%s.ari %.6f\n%s.mi %.6f\n%s.h_u %.6f\n%s.h_s %.6f\n", info.name, r.ari, info.name, r.mi,
                   info.name, r.h_u, info.name, r.h_s);
            for (int e = 0; e < info.n_experts && e < MOE_METRICS_MAX_EXPERTS; e++)
                printf("%s.load_%d %.6f\n", info.name, e, r.load_frac[e]);
        }
        gate_done = 1;
    }
    printf("samples %lld\nmse %.9g\nmse_norm %.9g\n", (long long)sp->n, count ? se / count : NAN,
           count ? se_norm / count : NAN);
done:
    if (st) fprintf(stderr, "bench_heat_experiment: %s\n", sm_last_error());
    free(labels); free(target); free(state0); free(po); free(pt);
    checkpoint_state_free_arrays(&cs);
    sample_cache_free(cache);
    samples_split_free(&tr);
    samples_split_free(&va);
    samples_split_free(&te);
    samples_layout_free(&L);
    model_free(m);
    grid_free(g);
    if (ds) dataset_close(ds);
    config_free(cfg);
    free(yaml);
    return st ? 1 : 0;
}
