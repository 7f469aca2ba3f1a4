/* The shared training engine (see train_engine.h). */
#include "tasks/train_engine.h"
#include "core/dist.h"
#include "core/log.h"
#include "core/outfile.h"
#include "core/progress.h"
#include "core/rng.h"
#include "moe/moe_balance.h"
#include "moe/routing_metrics.h"
#include "nn/optim.h"
#include "nn/schedule.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TRAIN_MAX_MOE 16
#define TRAIN_OVERLAP_CHUNK 65536   /* floats per non-blocking gradient allreduce (at least) */

typedef struct {
    const sm_config *cfg;
    sm_model *m;
    const grid *g;
    train_task *task;
    optim *opt;
    lr_schedule sched;
    early_stop stop;
    int use_early_stop;
    rng_t rng_dropout;
    int64_t *order;
    int batch;                     /* global batch (all ranks together) */
    int local_max;                 /* largest shard: ceil(batch / ranks) */
    int rank, size;                /* core/dist.h: data-parallel ranks */
    int overlap;                   /* gradient allreduce overlapped with backward */
    dist_grad_sync gsync;
    char dir[CFG_PATH], last_path[CFG_PATH + 16], best_path[CFG_PATH + 16], metrics_path[CFG_PATH + 16];
    int n_moe;
    moe_routing_metrics routing[TRAIN_MAX_MOE];
    float *ema;                    /* weight average (training.ema_decay > 0), else NULL */
} engine;

/* Exponential moving average of the trainable weights (training.ema_decay). While training,
 * the model holds the raw (optimised) weights and E->ema the average at the same offsets;
 * ema_swap exchanges them (bit-exact, no arithmetic) around validation and checkpoint writes,
 * so both see the average and a checkpoint can carry the raw weights too. Every rank holds the
 * same weights, so the average is rank-local and needs no communication. Non-trainable tensors
 * (BatchNorm running statistics) are not averaged. */
static void ema_swap(engine *E)
{
    param_store *ps = model_params(E->m);
    float *p = param_store_data_all(ps);
    for (int id = 0; id < param_store_count(ps); id++) {
        const param_view *v = param_store_view(ps, id);
        if (!(v->flags & PARAM_TRAINABLE)) continue;
        float *a = p + v->offset, *b = E->ema + v->offset;
        for (size_t k = 0; k < v->numel; k++) {
            float t = a[k];
            a[k] = b[k];
            b[k] = t;
        }
    }
}

/* After an optimiser step preceded by n_before steps: shadow += (1 - d) (param - shadow) with
 * d = min(decay, (1 + n) / (10 + n)), so that the first steps' average is not dominated by the
 * random initialisation. */
static void ema_update(engine *E, int64_t n_before)
{
    double d = E->cfg->training.ema_decay, warm = (1.0 + (double)n_before) / (10.0 + (double)n_before);
    if (warm < d) d = warm;
    const float a = (float)(1.0 - d);
    param_store *ps = model_params(E->m);
    const float *p = param_store_data_all(ps);
    for (int id = 0; id < param_store_count(ps); id++) {
        const param_view *v = param_store_view(ps, id);
        if (!(v->flags & PARAM_TRAINABLE)) continue;
        const float *x = p + v->offset;
        float *s = E->ema + v->offset;
        for (size_t k = 0; k < v->numel; k++) s[k] += a * (x[k] - s[k]);
    }
}

/* The part [*lo, *hi) of a global batch of n samples that this rank processes: contiguous,
 * sizes differ by at most one (only in a short last batch). */
static void shard(const engine *E, int n, int *lo, int *hi)
{
    *lo = (int)((int64_t)n * E->rank / E->size);
    *hi = (int)((int64_t)n * (E->rank + 1) / E->size);
}

static void state_fill(engine *E, ckpt_state *st, int64_t epoch, int64_t step)
{
    checkpoint_state_init(st);
    st->epoch = epoch;
    st->step = step;
    st->opt = E->opt;
    st->sched = &E->sched;
    st->stop = E->use_early_stop ? &E->stop : NULL;
    st->n_rng = 1;
    st->rng_names[0] = "dropout";
    st->rng[0] = &E->rng_dropout;
    st->input_variables = E->task->input_vars;
    st->output_variables = E->task->output_vars;
    st->n_norm = E->task->n_arrays;
    st->norm = E->task->arrays;
}

static int save_checkpoint(engine *E, const char *path, int64_t epoch, int64_t step, double best, int64_t best_epoch)
{
    if (E->rank != 0) return SM_OK; /* rank 0 writes; all ranks hold the same weights */
    ckpt_state st;
    state_fill(E, &st, epoch, step);
    st.best_score = best;
    st.best_epoch = best_epoch;
    /* routing metrics of the last validation: <layer>.load_fraction and <layer>.routing */
    ckpt_array metrics[2 * TRAIN_MAX_MOE];
    float metric_data[TRAIN_MAX_MOE][CKPT_ROUTING_FLOATS];
    for (int i = 0; i < E->n_moe; i++) {
        model_moe_info info;
        model_moe_get(E->m, i, &info);
        checkpoint_routing_arrays(info.name, &E->routing[i], metric_data[i], metrics + 2 * i);
    }
    st.n_metrics = 2 * E->n_moe;
    st.metrics = metrics;
    if (!E->ema) return checkpoint_save(path, E->m, E->cfg, E->g, &st);
    /* /params get the average (what forecast loads), /ema the raw weights */
    ema_swap(E);
    st.ema_raw = E->ema;
    st.ema_decay = E->cfg->training.ema_decay;
    int rc = checkpoint_save(path, E->m, E->cfg, E->g, &st);
    ema_swap(E);
    return rc;
}

static int report_nonfinite(engine *E, int64_t step, const char *what)
{
    int bad = -1;
    param_store *ps = model_params(E->m);
    const char *where = "";
    if (!param_store_all_finite(ps, 1, &bad) && bad >= 0) where = param_store_view(ps, bad)->name;
    return sm_fail(SM_ERR_NUMERIC, "training diverged at step %lld: %s is NaN/Inf%s%s; the last good checkpoint %s is kept "
                   "(try a lower training.lr or training.grad_clip)",
                   (long long)step, what, where[0] ? " in the gradient of " : "", where, E->last_path);
}

/* Validation loss (same loss as training, mean over batches) and the task's metrics; also
 * fills the routing metrics from the first batch (latent gates are the same for every batch). */
static int validate(engine *E, const int64_t *idx, int64_t n_samples, double *loss_out)
{
    train_task *T = E->task;
    double loss_sum = 0;
    int64_t batches = 0;
    int moe_done = 0;
    if (T->val_reset) T->val_reset(T->ctx);
    for (int64_t start = 0; start < n_samples; start += E->batch) {
        int ng = (int)(n_samples - start < E->batch ? n_samples - start : E->batch), lo, hi;
        shard(E, ng, &lo, &hi);
        int n = hi - lo, st;
        double part = 0; /* this rank's share of the batch-mean loss */
        if (n > 0) {
            model_set_batch(E->m, n);
            if ((st = T->assemble(T->ctx, idx + start + lo, n, model_input(E->m)))) return st;
            /* the routing-metrics batch of a distilled model also runs the attention teacher,
             * to log how well the student (which routes in validation) imitates it */
            model_set_distill_check(E->m, !moe_done);
            st = model_forward(E->m, 0, NULL);
            model_set_distill_check(E->m, 0);
            if (st) return st;
            const float *out = model_output(E->m);
            part = T->loss(T->ctx, out, n);
            if (n != ng) part = part * n / ng;
            if (T->val_add && (st = T->val_add(T->ctx, idx + start + lo, n, out))) return st;
        }
        if (E->size > 1 && (st = dist_allreduce_sum_d(&part, 1))) return st;
        loss_sum += part;
        batches++;
        if (n == 0) continue;
        /* the model's own routing metrics know each MoE layer's grid and gate kind */
        for (int i = 0; i < E->n_moe && !moe_done; i++) {
            model_moe_info info;
            model_moe_get(E->m, i, &info);
            const int32_t *labels = T->routing_labels && info.h == T->routing_labels_h &&
                                    info.w == T->routing_labels_w ? T->routing_labels : NULL;
            if ((st = model_moe_routing_metrics(E->m, i, labels, 0, &E->routing[i]))) return st;
        }
        moe_done = 1;
    }
    model_set_batch(E->m, E->local_max);
    if (E->size > 1 && T->val_reduce) {
        int st = T->val_reduce(T->ctx);
        if (st) return st;
    }
    *loss_out = batches ? loss_sum / batches : NAN;
    return SM_OK;
}

static void write_metrics(engine *E, int64_t epoch, int64_t step, double train_loss, double aux, double val_loss, double lr,
                          double seconds, int improved)
{
    if (E->rank != 0) return;
    FILE *f = fopen(E->metrics_path, "a");
    if (!f) {
        log_warn("%s: cannot append metrics: %s", E->metrics_path, strerror(errno));
        return;
    }
    fprintf(f, "{\"epoch\": %lld, \"step\": %lld, \"train_loss\": %.8g, \"aux_loss\": %.8g, \"val_loss\": %.8g, \"lr\": %.8g, "
               "\"seconds\": %.3f, \"improved\": %s, ",
            (long long)epoch, (long long)step, train_loss, aux, isnan(val_loss) ? -1.0 : val_loss, lr, seconds,
            improved ? "true" : "false");
    if (E->task->val_json) E->task->val_json(E->task->ctx, f);
    fprintf(f, ", \"routing\": [");
    for (int i = 0; i < E->n_moe; i++) {
        model_moe_info info;
        model_moe_get(E->m, i, &info);
        const moe_routing_metrics *r = &E->routing[i];
        fprintf(f, "%s{\"layer\": \"%s\", \"cv_importance\": %.6g, \"H_s\": %.6g, \"H_u\": %.6g, ", i ? ", " : "",
                info.name, r->cv_importance, r->h_s, r->h_u);
        if (r->has_labels) /* the validation computed them against training.routing_labels */
            fprintf(f, "\"MI\": %.6g, \"ARI\": %.6g, ", r->mi, r->ari);
        if (r->has_distill) /* model.moe.attention.distill: the student against the teacher */
            fprintf(f, "\"distill_loss\": %.6g, \"agreement\": %.6g, ", r->distill_loss, r->agreement);
        fprintf(f, "\"load\": [");
        for (int e = 0; e < r->n_experts; e++) fprintf(f, "%s%.6g", e ? ", " : "", r->load_frac[e]);
        fprintf(f, "]}");
    }
    fprintf(f, "]}\n");
    fclose(f);
}

static int bn_allreduce(double *buf, size_t n, void *arg)
{
    (void)arg;
    return dist_allreduce_sum_d(buf, n);
}

/* optimiser steps in one epoch: one pass over the training samples, capped by steps_per_epoch */
static int64_t steps_per_epoch(const engine *E)
{
    int64_t nb = (E->task->n_train + E->batch - 1) / (E->batch > 0 ? E->batch : 1);
    int cap = E->cfg->training.steps_per_epoch;
    return cap > 0 && cap < nb ? cap : nb;
}

static int engine_setup(engine *E, int resume, ckpt_state *resumed)
{
    const sm_config *cfg = E->cfg;
    int st;
    E->n_moe = model_moe_count(E->m);
    if (E->n_moe > TRAIN_MAX_MOE) E->n_moe = TRAIN_MAX_MOE;
    optim_config oc;
    lr_schedule_config sc;
    if ((st = optim_config_from_training(&cfg->training, &oc))) return st;
    if ((st = optim_create(&E->opt, model_params(E->m), &oc))) return st;
    if ((st = lr_schedule_config_from_training(&cfg->training, steps_per_epoch(E), &sc))) return st;
    if ((st = lr_schedule_init(&E->sched, &sc))) return st;
    E->use_early_stop = cfg->training.early_stopping_patience > 0;
    if (E->use_early_stop && (st = early_stop_init(&E->stop, cfg->training.early_stopping_patience, 0.0))) return st;
    rng_seed(&E->rng_dropout, (uint64_t)cfg->run.seed, TRAIN_RNG_STREAM_DROPOUT);
    E->order = malloc(sizeof(int64_t) * (size_t)(E->task->n_train > 0 ? E->task->n_train : 1));
    if (!E->order) return sm_fail(SM_ERR_NUMERIC, "out of memory");
    snprintf(E->dir, sizeof E->dir, "%s", cfg->output.dir);
    snprintf(E->last_path, sizeof E->last_path, "%s/last.nc", E->dir);
    snprintf(E->best_path, sizeof E->best_path, "%s/best.nc", E->dir);
    snprintf(E->metrics_path, sizeof E->metrics_path, "%s/metrics.jsonl", E->dir);
    if (E->batch % E->size != 0)
        return sm_fail(SM_ERR_USAGE, "training.batch_size %d is not a multiple of the %d MPI ranks; choose a batch size "
                       "divisible by the number of ranks (each rank processes batch_size / ranks samples per step)",
                       E->batch, E->size);
    if (E->rank == 0 && (st = outfile_make_dirs(E->dir))) return st;
    if ((st = dist_barrier())) return st;
    if (E->size > 1) {
        if (E->task->val_add && !E->task->val_reduce)
            log_warn("validation metrics are computed on rank 0's share of the validation set (the task has no val_reduce)");
        log_info("data-parallel training on %d ranks: %d samples per rank and step (global batch %d)%s", E->size,
                 E->batch / E->size, E->batch, cfg->training.sync_batchnorm ? ", synchronised BatchNorm" : "");
        /* activations for the largest shard only (the model was planned for the global batch) */
        if ((st = model_plan(E->m, E->local_max, 1))) return st;
        if (cfg->training.sync_batchnorm && (st = model_set_batchnorm_sync(E->m, bn_allreduce, NULL))) return st;
    }
    /* MoE draws per global sample and batch statistics over ranks (also on one rank, so that
     * the draws are those of any split) */
    if ((st = model_set_dist(E->m, E->size > 1 ? bn_allreduce : NULL, NULL, E->rank, E->size, E->batch))) return st;
    /* SMOECAST_GRAD_OVERLAP=1: start the allreduce of each layer's gradients as soon as its
     * backward is done (docs/distributed.md: no gain measured for these models) */
    const char *ov = getenv("SMOECAST_GRAD_OVERLAP");
    E->overlap = E->size > 1 && ov && !strcmp(ov, "1");
    if (E->overlap) {
        if ((st = model_set_grad_ready(E->m, dist_grad_sync_ready, &E->gsync))) return st;
        log_info("gradient allreduce overlapped with backward (non-blocking, chunks of at least %d floats)", TRAIN_OVERLAP_CHUNK);
    }
    size_t n_all = param_store_size(model_params(E->m));
    if (cfg->training.ema_decay > 0) {
        E->ema = malloc((n_all ? n_all : 1) * sizeof(float));
        if (!E->ema) return sm_fail(SM_ERR_NUMERIC, "out of memory");
        memcpy(E->ema, param_store_data_all(model_params(E->m)), n_all * sizeof(float));
    }
    float *raw_only = NULL; /* EMA off: the raw weights of a checkpoint that has an average */
    if (resume) {
        checkpoint_state_init(resumed);
        resumed->opt = E->opt;
        resumed->sched = &E->sched;
        resumed->stop = E->use_early_stop ? &E->stop : NULL;
        resumed->n_rng = 1;
        resumed->rng_names[0] = "dropout";
        resumed->rng[0] = &E->rng_dropout;
        resumed->input_variables = E->task->input_vars;
        resumed->output_variables = E->task->output_vars;
        if (!E->ema && !(raw_only = calloc(n_all ? n_all : 1, sizeof(float)))) return sm_fail(SM_ERR_NUMERIC, "out of memory");
        resumed->ema_raw = E->ema ? E->ema : raw_only;
        st = checkpoint_load(E->last_path, E->m, cfg, E->g, resumed);
        if (st == SM_OK && E->ema && resumed->has_ema) {
            ema_swap(E); /* the model got the average (/params) and E->ema the raw weights */
        } else if (st == SM_OK && E->ema) {
            log_warn("%s has no weight average (trained without training.ema_decay): the average starts from its weights",
                     E->last_path);
            memcpy(E->ema, param_store_data_all(model_params(E->m)), n_all * sizeof(float));
        } else if (st == SM_OK && resumed->has_ema) {
            log_warn("%s holds a weight average (training.ema_decay %g) but training.ema_decay is 0: training continues "
                     "from its raw weights and the average is dropped", E->last_path, resumed->ema_decay);
            E->ema = raw_only;
            ema_swap(E); /* the raw weights into the model */
            E->ema = NULL;
        }
        resumed->ema_raw = NULL;
        free(raw_only);
        if (st) return st;
        if (E->task->restore && (st = E->task->restore(E->task->ctx, resumed, E->last_path))) return st;
        log_info("resuming from %s at epoch %lld, step %lld", E->last_path, (long long)resumed->epoch, (long long)resumed->step);
    }
    if (log_get_level() >= LOG_LEVEL_INFO) model_summary(E->m, stderr);
    return SM_OK;
}

int train_engine_run(const sm_config *cfg, sm_model *m, const grid *g, int batch, train_task *task, int resume,
                     train_result *result)
{
    engine E;
    memset(&E, 0, sizeof E);
    memset(result, 0, sizeof *result);
    E.cfg = cfg;
    E.m = m;
    E.g = g;
    E.task = task;
    E.batch = batch;
    E.rank = dist_rank();
    E.size = dist_size();
    E.local_max = (batch + E.size - 1) / (E.size > 0 ? E.size : 1);
    ckpt_state resumed;
    checkpoint_state_init(&resumed);
    int st = engine_setup(&E, resume, &resumed);
    int64_t epoch = resume && st == SM_OK ? resumed.epoch : 0;
    int64_t step = resume && st == SM_OK ? resumed.step : 0;
    double best = resume && st == SM_OK ? resumed.best_score : NAN;
    int64_t best_epoch = resume && st == SM_OK ? resumed.best_epoch : -1;
    checkpoint_state_free_arrays(&resumed);

    int64_t nb = steps_per_epoch(&E);
    int lr_per_step = E.sched.cfg.unit == LR_UNIT_STEP;
    size_t grad_n = param_store_size(model_params(m));
    float *grad_all = param_store_grad_all(model_params(m));
    int64_t skip = step - epoch * nb; /* batches already done inside an interrupted epoch */
    if (skip < 0) skip = 0;
    double t_start = progress_now_seconds();

    for (; st == SM_OK && epoch < cfg->training.epochs; epoch++) {
        if (E.use_early_stop && E.stop.stopped) break;
        /* The data order of an epoch depends only on (seed, epoch): resuming reproduces it. */
        rng_t shuffle;
        rng_seed(&shuffle, (uint64_t)cfg->run.seed * 1000003u + (uint64_t)epoch, TRAIN_RNG_STREAM_SHUFFLE);
        memcpy(E.order, task->train_idx, sizeof(int64_t) * (size_t)task->n_train);
        rng_shuffle(&shuffle, E.order, task->n_train);

        char label[64];
        snprintf(label, sizeof label, "epoch %lld/%d", (long long)epoch + 1, cfg->training.epochs);
        progress bar;
        progress_begin(&bar, label, nb);
        double loss_sum = 0, aux_sum = 0;
        int64_t loss_n = 0;
        optim_set_lr(E.opt, lr_schedule_lr(&E.sched));
        for (int64_t b = skip; b < nb && st == SM_OK; b++) {
            int64_t first = b * E.batch;
            int ng = (int)(task->n_train - first < E.batch ? task->n_train - first : E.batch), lo, hi;
            shard(&E, ng, &lo, &hi);
            int n = hi - lo;
            /* [loss share, aux share, interrupted]: summed over ranks with the gradient */
            double red[3] = {0, 0, sm_interrupted() ? 1 : 0};
            model_zero_grad(m);
            if (E.overlap) dist_grad_sync_begin(&E.gsync, grad_all, grad_n, (float)n / (float)ng, TRAIN_OVERLAP_CHUNK);
            if (n > 0) {
                model_set_batch(m, n);
                model_set_shard(m, lo, ng);
                if ((st = task->assemble(task->ctx, E.order + first + lo, n, model_input(m)))) break;
                if ((st = model_forward(m, 1, &E.rng_dropout))) break;
                double loss_local = task->loss(task->ctx, model_output(m), n);
                size_t nout = (size_t)n * model_c_out(m) * model_out_h(m) * model_out_w(m);
                memset(model_output_grad(m), 0, nout * sizeof(float));
                task->loss_grad(task->ctx, model_output_grad(m), model_output(m), n);
                if ((st = model_backward(m))) break;
                red[0] = n == ng ? loss_local : loss_local * n / ng;
                red[1] = n == ng ? model_aux_loss(m) : model_aux_loss(m) * n / ng;
            } else {
                /* no sample here (short last batch): consume the step key as the others did and
                 * take part in the BatchNorm reductions */
                rng_u32(&E.rng_dropout);
                rng_u32(&E.rng_dropout);
                model_set_shard(m, lo, ng);
                if ((st = model_sync_idle(m))) break;
            }
            if (E.size > 1) {
                /* Each rank's gradient is that of its mean loss over n samples; weighting by
                 * n / ng and summing gives the gradient of the global-batch mean loss. */
                if (E.overlap) {
                    if ((st = dist_grad_sync_finish(&E.gsync))) break;
                } else {
                    float w = (float)n / (float)ng;
                    for (size_t k = 0; k < grad_n; k++) grad_all[k] *= w;
                    if ((st = dist_allreduce_sum_f(grad_all, grad_n))) break;
                }
                if ((st = dist_allreduce_sum_d(red, 3))) break;
            }
            double loss = red[0];
            if (!isfinite(loss)) {
                st = report_nonfinite(&E, step, "the loss");
                break;
            }
            double gnorm = cfg->training.grad_clip > 0 ? optim_clip_grad_norm(model_params(m), cfg->training.grad_clip)
                                                      : optim_grad_norm(model_params(m));
            if (!isfinite(gnorm)) {
                st = report_nonfinite(&E, step, "a gradient");
                break;
            }
            optim_step(E.opt);
            if (E.ema) ema_update(&E, step);
            step++;
            if (lr_per_step) optim_set_lr(E.opt, lr_schedule_step(&E.sched, NAN));
            loss_sum += loss;
            aux_sum += red[1];
            loss_n++;
            char extra[96];
            snprintf(extra, sizeof extra, "loss %.5g", loss_sum / loss_n);
            progress_update(&bar, b + 1, extra);
            if (red[2] > 0) {
                save_checkpoint(&E, E.last_path, epoch, step, best, best_epoch);
                st = sm_fail(SM_ERR_INTERRUPTED, "interrupted at epoch %lld step %lld; resume with '%s' "
                             "(state saved in %s)", (long long)epoch + 1, (long long)step, task->resume_command, E.last_path);
            }
        }
        skip = 0;
        if (st) break;
        progress_end(&bar);

        double val_loss = NAN;
        int on_train = task->n_val == 0;
        if (on_train && epoch == 0) log_warn("no validation samples: monitoring the training loss instead");
        if (E.ema) ema_swap(&E); /* validate the average */
        st = validate(&E, on_train ? task->train_idx : task->val_idx, on_train ? task->n_train : task->n_val, &val_loss);
        if (E.ema) ema_swap(&E);
        if (st) break;
        if (!isfinite(val_loss)) {
            st = report_nonfinite(&E, step, "the validation loss");
            break;
        }
        int improved = 0;
        if (E.use_early_stop)
            early_stop_update(&E.stop, val_loss, &improved);
        else
            improved = isnan(best) || val_loss < best;
        if (improved) {
            best = val_loss;
            best_epoch = epoch;
        }
        /* the lr of this epoch's last step (a per-step schedule has already moved on) */
        double lr_used = lr_per_step ? lr_schedule_at(&E.sched, E.sched.t - 1) : optim_get_lr(E.opt);
        if (!lr_per_step) lr_schedule_step(&E.sched, val_loss);
        double train_loss = loss_n ? loss_sum / loss_n : NAN;
        write_metrics(&E, epoch + 1, step, train_loss, loss_n ? aux_sum / loss_n : 0, val_loss, lr_used,
                      progress_now_seconds() - t_start, improved);
        char vtext[512] = "";
        if (task->val_text) task->val_text(task->ctx, vtext, sizeof vtext);
        log_info("epoch %lld: train %.5g val %.5g (%s) lr %.3g%s", (long long)epoch + 1, train_loss, val_loss, vtext, lr_used,
                 improved ? " *best*" : "");
        if (improved && (st = save_checkpoint(&E, E.best_path, epoch + 1, step, best, best_epoch))) break;
        if (((epoch + 1) % cfg->output.checkpoint_every == 0 || epoch + 1 == cfg->training.epochs || (E.use_early_stop && E.stop.stopped)) &&
            (st = save_checkpoint(&E, E.last_path, epoch + 1, step, best, best_epoch)))
            break;
        if (E.use_early_stop && E.stop.stopped) {
            log_info("early stopping: no improvement for %d epochs (best epoch %lld)", cfg->training.early_stopping_patience,
                     (long long)best_epoch + 1);
            result->stopped_early = 1;
            epoch++;
            break;
        }
    }
    model_set_batchnorm_sync(m, NULL, NULL);
    model_set_dist(m, NULL, NULL, 0, 1, 0);
    model_set_grad_ready(m, NULL, NULL);
    /* back to the batch the caller planned (e.g. test-set scoring after training) */
    if (E.size > 1 && model_max_batch(m) != batch) {
        int pst = model_plan(m, batch, 1);
        if (st == SM_OK) st = pst;
    }
    result->epochs_done = epoch;
    result->steps_done = step;
    result->best_val = best;
    result->best_epoch = best_epoch;
    /* leave the model with the weights last.nc holds for forecasting (the average) */
    if (E.ema) ema_swap(&E);
    optim_free(E.opt);
    free(E.order);
    free(E.ema);
    return st;
}
