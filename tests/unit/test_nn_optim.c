/* nn/optim: SGD / Adam / AdamW trajectories and clip_grad_norm_ against torch
 * (tests/golden/optim_steps.nc, scripts/golden/make_golden_optim.py), flags, exact resume. */
#include "testutil.h"

#include "core/config.h"
#include "core/log.h"
#include "nn/optim.h"
#include "nn/loss.h"
#include "nn/params.h"
#include "nn/schedule.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GOLD "optim_steps.nc"
#define NT 3
static const char *const tnames[NT] = {"w0", "b0", "w1"};
static const int tndim[NT] = {4, 1, 2};
static const int tshape[NT][4] = {{4, 3, 3, 3}, {4}, {5, 4}};
static const unsigned tflags[NT] = {PARAM_DEFAULT, PARAM_NO_DECAY, PARAM_DEFAULT};
#define NBUF 6 /* a non-trainable buffer tensor "buf" (id 3) that must stay untouched */

static void assert_close_vec(const float *c, const float *t, size_t n, const char *what)
{
    double num = 0, den = 0;
    for (size_t k = 0; k < n; k++) {
        double d = (double)c[k] - t[k];
        num += d * d;
        den += (double)t[k] * t[k];
    }
    if (!(sqrt(num) <= 1e-4 * sqrt(den) + 1e-6))
        fail_msg("%s: ||c - torch|| = %g, ||torch|| = %g", what, sqrt(num), sqrt(den));
}

/* The golden tensors in a store, plus the buffer; data = torch's initial values; tensor w1
 * additionally carries `w1_extra` flags (PARAM_GATE for the param-group test). */
static param_store *golden_store_flags(unsigned w1_extra)
{
    param_store *s = param_store_create();
    for (int i = 0; i < NT; i++)
        assert_int_equal(param_store_declare(s, tnames[i], tndim[i], tshape[i],
                                             tflags[i] | (i == 2 ? w1_extra : 0u)), i);
    int nb = NBUF;
    assert_int_equal(param_store_declare(s, "buf", 1, &nb, PARAM_BUFFER), NT);
    assert_int_equal(param_store_finalize(s), SM_OK);
    for (int i = 0; i < NT; i++) {
        char var[64];
        size_t n;
        snprintf(var, sizeof var, "init_%s", tnames[i]);
        float *v = testutil_golden_load(GOLD, var, &n, NULL, NULL);
        assert_int_equal(n, param_store_view(s, i)->numel);
        memcpy(param_data(s, i), v, n * sizeof *v);
        free(v);
    }
    for (int k = 0; k < NBUF; k++) param_data(s, NT)[k] = 0.5f + k;
    return s;
}

static param_store *golden_store(void) { return golden_store_flags(0u); }

/* Gradients of step `step` into the store (and garbage into the buffer's gradient). */
static void set_grads(param_store *s, int step)
{
    for (int i = 0; i < NT; i++) {
        char var[64];
        size_t n;
        snprintf(var, sizeof var, "grad_%s", tnames[i]);
        float *g = testutil_golden_load(GOLD, var, &n, NULL, NULL);
        size_t numel = param_store_view(s, i)->numel;
        memcpy(param_grad(s, i), g + (size_t)step * numel, numel * sizeof *g);
        free(g);
    }
    for (int k = 0; k < NBUF; k++) param_grad(s, NT)[k] = 1e3f;
}

static void assert_buffer_untouched(param_store *s)
{
    for (int k = 0; k < NBUF; k++) assert_true(param_data(s, NT)[k] == 0.5f + k);
}

static optim_config config_for(const char *name)
{
    optim_config c;
    if (strncmp(name, "sgd", 3) == 0) {
        c = optim_default_config(OPTIM_SGD);
        if (!strcmp(name, "sgd")) { c.lr = 0.1; c.momentum = 0.9; c.weight_decay = 1e-2; }
        if (!strcmp(name, "sgdnest")) { c.lr = 0.05; c.momentum = 0.9; c.nesterov = 1; c.weight_decay = 1e-3; }
        if (!strcmp(name, "sgddamp")) { c.lr = 0.1; c.momentum = 0.8; c.dampening = 0.3; }
        if (!strcmp(name, "sgdplain")) { c.lr = 0.1; c.weight_decay = 1e-2; }
    } else if (!strcmp(name, "adam")) {
        c = optim_default_config(OPTIM_ADAM);
        c.lr = 1e-2;
        c.weight_decay = 1e-2;
    } else if (!strcmp(name, "adameps")) {
        c = optim_default_config(OPTIM_ADAM);
        c.lr = 1e-2;
        c.beta1 = 0.8;
        c.beta2 = 0.99;
        c.eps = 0.1;
    } else {
        c = optim_default_config(OPTIM_ADAMW);
        c.lr = 1e-2;
        c.weight_decay = 0.1;
    }
    return c;
}

static void run_against_torch(const char *name)
{
    param_store *s = golden_store();
    optim_config cfg = config_for(name);
    optim *o;
    assert_int_equal(optim_create(&o, s, &cfg), SM_OK);
    size_t n;
    int ndim;
    size_t shape[8];
    char var[64];
    snprintf(var, sizeof var, "%s_w0", name);
    float *probe = testutil_golden_load(GOLD, var, &n, &ndim, shape);
    int steps = (int)shape[0];
    free(probe);
    assert_true(steps >= 3);
    for (int step = 0; step < steps; step++) {
        set_grads(s, step);
        optim_step(o);
        for (int i = 0; i < NT; i++) {
            snprintf(var, sizeof var, "%s_%s", name, tnames[i]);
            float *traj = testutil_golden_load(GOLD, var, &n, NULL, NULL);
            size_t numel = param_store_view(s, i)->numel;
            char what[96];
            snprintf(what, sizeof what, "%s step %d %s", name, step + 1, tnames[i]);
            assert_close_vec(param_data(s, i), traj + (size_t)step * numel, numel, what);
            free(traj);
        }
        assert_buffer_untouched(s);
    }
    assert_int_equal(o->step, steps);
    /* optimiser state (momentum buffer / Adam moments) matches torch's */
    for (int i = 0; i < NT; i++) {
        const param_view *v = param_store_view(s, i);
        if (o->m && cfg.momentum + (cfg.kind != OPTIM_SGD) > 0) {
            snprintf(var, sizeof var, "%s_%s_m", name, tnames[i]);
            float *m = testutil_golden_load(GOLD, var, &n, NULL, NULL);
            assert_close_vec(o->m + v->offset, m, v->numel, var);
            free(m);
        }
        if (o->v) {
            snprintf(var, sizeof var, "%s_%s_v", name, tnames[i]);
            float *vv = testutil_golden_load(GOLD, var, &n, NULL, NULL);
            assert_close_vec(o->v + v->offset, vv, v->numel, var);
            free(vv);
        }
    }
    if (o->m) for (int k = 0; k < NBUF; k++) assert_true(o->m[param_store_view(s, NT)->offset + k] == 0.0f);
    optim_free(o);
    param_store_free(s);
}

static void test_sgd_momentum(void **state) { (void)state; run_against_torch("sgd"); }
static void test_sgd_nesterov(void **state) { (void)state; run_against_torch("sgdnest"); }
static void test_sgd_dampening(void **state) { (void)state; run_against_torch("sgddamp"); }
static void test_sgd_plain(void **state) { (void)state; run_against_torch("sgdplain"); }
static void test_adam(void **state) { (void)state; run_against_torch("adam"); }
static void test_adam_large_eps(void **state) { (void)state; run_against_torch("adameps"); }
static void test_adamw(void **state) { (void)state; run_against_torch("adamw"); }

static void test_clip_grad_norm(void **state)
{
    (void)state;
    const char *tags[2] = {"clip1", "clip1000"};
    const double max_norm[2] = {1.0, 1000.0};
    for (int c = 0; c < 2; c++) {
        param_store *s = golden_store();
        set_grads(s, 0); /* the buffer's huge gradient must not enter the norm */
        double total = optim_clip_grad_norm(s, max_norm[c]);
        char var[64];
        snprintf(var, sizeof var, "%s_norm", tags[c]);
        float *tn = testutil_golden_load(GOLD, var, NULL, NULL, NULL);
        assert_true(fabs(total - tn[0]) <= 1e-5 * tn[0]);
        free(tn);
        for (int i = 0; i < NT; i++) {
            size_t n;
            snprintf(var, sizeof var, "%s_%s", tags[c], tnames[i]);
            float *g = testutil_golden_load(GOLD, var, &n, NULL, NULL);
            assert_close_vec(param_grad(s, i), g, n, var);
            free(g);
        }
        if (c == 0) assert_true(fabs(optim_grad_norm(s) - max_norm[0]) < 1e-5);
        for (int k = 0; k < NBUF; k++) assert_true(param_grad(s, NT)[k] == 1e3f);
        param_store_free(s);
    }
    /* a NaN gradient: the norm is NaN and the gradients are left as they are */
    param_store *s = golden_store();
    set_grads(s, 1);
    param_grad(s, 1)[2] = NAN;
    float before = param_grad(s, 0)[0];
    assert_true(isnan(optim_clip_grad_norm(s, 1e-3)));
    assert_true(param_grad(s, 0)[0] == before);
    param_store_free(s);
}

/* N steps + copy state to a fresh store/optimiser + N steps == 2N steps, bit for bit. */
static void resume_case(optim_kind kind)
{
    optim_config cfg = config_for(kind == OPTIM_SGD ? "sgd" : kind == OPTIM_ADAM ? "adam" : "adamw");
    param_store *a = golden_store(), *b = golden_store();
    optim *oa, *ob;
    assert_int_equal(optim_create(&oa, a, &cfg), SM_OK);
    assert_int_equal(optim_create(&ob, b, &cfg), SM_OK);
    for (int step = 0; step < 4; step++) {
        set_grads(a, step % 5);
        optim_step(oa);
        if (step < 2) {
            set_grads(b, step % 5);
            optim_step(ob);
        }
    }
    /* "checkpoint" b after 2 steps into a fresh store and optimiser */
    param_store *c = golden_store();
    optim *oc;
    assert_int_equal(optim_create(&oc, c, &cfg), SM_OK);
    memcpy(param_store_data_all(c), param_store_data_all(b), param_store_size(b) * sizeof(float));
    if (ob->m) memcpy(oc->m, ob->m, ob->size * sizeof(float));
    if (ob->v) memcpy(oc->v, ob->v, ob->size * sizeof(float));
    oc->step = ob->step;
    for (int step = 2; step < 4; step++) {
        set_grads(c, step % 5);
        optim_step(oc);
    }
    assert_memory_equal(param_store_data_all(a), param_store_data_all(c),
                        param_store_size(a) * sizeof(float));
    assert_int_equal(oa->step, oc->step);
    /* a fresh optimiser without the restored state diverges (the test can fail) */
    optim_reset(ob);
    for (int step = 2; step < 4; step++) {
        set_grads(b, step % 5);
        optim_step(ob);
    }
    assert_memory_not_equal(param_store_data_all(a), param_store_data_all(b),
                            param_store_size(a) * sizeof(float));
    optim_free(oa);
    optim_free(ob);
    optim_free(oc);
    param_store_free(a);
    param_store_free(b);
    param_store_free(c);
}

static void test_exact_resume(void **state)
{
    (void)state;
    resume_case(OPTIM_SGD);
    resume_case(OPTIM_ADAM);
    resume_case(OPTIM_ADAMW);
}

static void test_decay_flags(void **state)
{
    (void)state;
    /* zero gradients: AdamW shrinks decayed tensors by (1 - lr wd) and leaves the rest */
    param_store *s = golden_store();
    optim_config cfg = optim_default_config(OPTIM_ADAMW);
    cfg.lr = 0.1;
    cfg.weight_decay = 0.5;
    optim *o;
    assert_int_equal(optim_create(&o, s, &cfg), SM_OK);
    float w0 = param_data(s, 0)[5], b0 = param_data(s, 1)[2];
    optim_step(o);
    assert_true(fabsf(param_data(s, 0)[5] - w0 * 0.95f) <= 1e-6f * fabsf(w0));
    assert_true(param_data(s, 1)[2] == b0);
    assert_buffer_untouched(s);
    optim_free(o);
    param_store_free(s);
}

/* Four golden steps of `cfg` on store s. */
static void run_steps(param_store *s, const optim_config *cfg)
{
    optim *o;
    assert_int_equal(optim_create(&o, s, cfg), SM_OK);
    for (int step = 0; step < 4; step++) {
        set_grads(s, step);
        optim_step(o);
    }
    optim_free(o);
}

/* PARAM_GATE tensors form a second param group at lr * gate_lr_scale: bit for bit the
 * trajectory of a plain store at that lr, while the other tensors follow lr (a torch optimiser
 * with two param groups); scale 1 is the single-group optimiser and scale 0 freezes the gate. */
static void group_case(const char *name)
{
    const double scale = 30.0;
    optim_config base = config_for(name), gate = base, scaled = base;
    gate.gate_lr_scale = scale;
    scaled.lr = base.lr * scale;
    param_store *g = golden_store_flags(PARAM_GATE), *p = golden_store(), *q = golden_store();
    run_steps(g, &gate);
    run_steps(p, &base);
    run_steps(q, &scaled);
    for (int i = 0; i < 2; i++)
        assert_memory_equal(param_data(g, i), param_data(p, i), param_store_view(g, i)->numel * sizeof(float));
    assert_memory_equal(param_data(g, 2), param_data(q, 2), param_store_view(g, 2)->numel * sizeof(float));
    assert_memory_not_equal(param_data(g, 2), param_data(p, 2), param_store_view(g, 2)->numel * sizeof(float));
    assert_buffer_untouched(g);
    param_store_free(g);
    /* scale 1: identical to the store without the flag */
    g = golden_store_flags(PARAM_GATE);
    run_steps(g, &base);
    assert_memory_equal(param_store_data_all(g), param_store_data_all(p), param_store_size(p) * sizeof(float));
    param_store_free(g);
    /* scale 0: the gate keeps its initial values (no weight decay either) */
    g = golden_store_flags(PARAM_GATE);
    param_store *init = golden_store();
    gate.gate_lr_scale = 0.0;
    run_steps(g, &gate);
    assert_memory_equal(param_data(g, 2), param_data(init, 2), param_store_view(g, 2)->numel * sizeof(float));
    param_store_free(g);
    param_store_free(init);
    param_store_free(p);
    param_store_free(q);
}

static void test_gate_param_group(void **state)
{
    (void)state;
    group_case("sgd");
    group_case("adam");
    group_case("adamw");
}

static void test_config_errors(void **state)
{
    (void)state;
    param_store *s = golden_store();
    optim *o = (optim *)1;
    optim_config c = optim_default_config(OPTIM_SGD);
    c.nesterov = 1;
    assert_int_equal(optim_create(&o, s, &c), SM_ERR_USAGE);
    assert_null(o);
    assert_non_null(strstr(sm_last_error(), "nesterov"));
    c = optim_default_config(OPTIM_ADAM);
    c.beta1 = 1.0;
    assert_int_equal(optim_create(&o, s, &c), SM_ERR_USAGE);
    assert_non_null(strstr(sm_last_error(), "beta1"));
    c = optim_default_config(OPTIM_ADAM);
    c.gate_lr_scale = -2;
    assert_int_equal(optim_create(&o, s, &c), SM_ERR_USAGE);
    assert_non_null(strstr(sm_last_error(), "gate_lr_scale"));
    c = optim_default_config(OPTIM_ADAMW);
    c.lr = -1;
    assert_int_equal(optim_create(&o, s, &c), SM_ERR_USAGE);
    assert_non_null(strstr(sm_last_error(), "lr"));
    param_store *u = param_store_create();
    c = optim_default_config(OPTIM_ADAM);
    assert_int_equal(optim_create(&o, u, &c), SM_ERR_USAGE);
    assert_non_null(strstr(sm_last_error(), "not finalized"));
    param_store_free(u);

    optim_kind k;
    assert_int_equal(optim_kind_from_name("adamw", &k), SM_OK);
    assert_int_equal(k, OPTIM_ADAMW);
    assert_int_equal(optim_kind_from_name("sgd", &k), SM_OK);
    assert_int_equal(k, OPTIM_SGD);
    assert_int_equal(optim_kind_from_name("rmsprop", &k), SM_ERR_USAGE);
    assert_non_null(strstr(sm_last_error(), "rmsprop"));
    assert_string_equal(optim_kind_name(OPTIM_ADAM), "adam");
    optim_config d = optim_default_config(OPTIM_ADAMW);
    assert_true(d.weight_decay == 1e-2 && d.beta2 == 0.999 && d.eps == 1e-8 && d.lr == 1e-3);

    /* SGD without momentum keeps no state */
    c = optim_default_config(OPTIM_SGD);
    assert_int_equal(optim_create(&o, s, &c), SM_OK);
    assert_null(o->m);
    assert_null(o->v);
    optim_set_lr(o, 0.25);
    assert_true(optim_get_lr(o) == 0.25);
    optim_free(o);
    param_store_free(s);
}

/* A whole (tiny) training run against torch: linear model, NaN-masked MSE, clip_grad_norm_,
 * AdamW with decay on W only, StepLR(5, 0.5), 20 steps (tests/golden/optim_train.nc). */
static void test_training_run_matches_torch(void **state)
{
    (void)state;
    enum { NS = 16, NI = 3, NO = 2, STEPS = 20 };
    size_t n;
    float *X = testutil_golden_load("optim_train.nc", "X", &n, NULL, NULL);
    assert_int_equal(n, NS * NI);
    float *Y = testutil_golden_load("optim_train.nc", "Y", &n, NULL, NULL);
    float *W0 = testutil_golden_load("optim_train.nc", "W_init", NULL, NULL, NULL);
    float *b0 = testutil_golden_load("optim_train.nc", "b_init", NULL, NULL, NULL);
    float *tl = testutil_golden_load("optim_train.nc", "loss", &n, NULL, NULL);
    assert_int_equal(n, STEPS);
    float *tn = testutil_golden_load("optim_train.nc", "grad_norm", NULL, NULL, NULL);
    float *Wf = testutil_golden_load("optim_train.nc", "W_final", NULL, NULL, NULL);
    float *bf = testutil_golden_load("optim_train.nc", "b_final", NULL, NULL, NULL);

    param_store *s = param_store_create();
    int wsh[2] = {NO, NI}, bsh[1] = {NO};
    int iw = param_store_declare(s, "fc.weight", 2, wsh, PARAM_DEFAULT);
    int ib = param_store_declare(s, "fc.bias", 1, bsh, PARAM_NO_DECAY);
    assert_int_equal(param_store_finalize(s), SM_OK);
    float *W = param_data(s, iw), *b = param_data(s, ib), *dW = param_grad(s, iw), *db = param_grad(s, ib);
    memcpy(W, W0, sizeof(float) * NO * NI);
    memcpy(b, b0, sizeof(float) * NO);
    optim_config oc = optim_default_config(OPTIM_ADAMW);
    oc.lr = 0.2;
    oc.weight_decay = 0.05;
    optim *o;
    assert_int_equal(optim_create(&o, s, &oc), SM_OK);
    lr_schedule_config sc = lr_schedule_default_config(LR_STEP, 0.2);
    sc.step_size = 5;
    sc.gamma = 0.5;
    lr_schedule sch;
    assert_int_equal(lr_schedule_init(&sch, &sc), SM_OK);

    float pred[NS * NO], dpred[NS * NO];
    for (int step = 0; step < STEPS; step++) {
        param_store_zero_grad(s);
        for (int i = 0; i < NS; i++)
            for (int j = 0; j < NO; j++) {
                double acc = b[j];
                for (int k = 0; k < NI; k++) acc += (double)X[i * NI + k] * W[j * NI + k];
                pred[i * NO + j] = (float)acc;
            }
        double loss = loss_mse_masked_forward(pred, Y, NS * NO);
        memset(dpred, 0, sizeof dpred);
        loss_mse_masked_backward(dpred, pred, Y, NS * NO, 1.0);
        for (int i = 0; i < NS; i++)
            for (int j = 0; j < NO; j++) {
                db[j] += dpred[i * NO + j];
                for (int k = 0; k < NI; k++) dW[j * NI + k] += dpred[i * NO + j] * X[i * NI + k];
            }
        double norm = optim_clip_grad_norm(s, 1.0);
        optim_set_lr(o, lr_schedule_lr(&sch));
        optim_step(o);
        lr_schedule_step(&sch, NAN);
        if (!(fabs(loss - tl[step]) <= 1e-4 * tl[step]))
            fail_msg("step %d: loss %.7g, torch %.7g", step, loss, (double)tl[step]);
        if (!(fabs(norm - tn[step]) <= 1e-4 * tn[step]))
            fail_msg("step %d: grad norm %.7g, torch %.7g", step, norm, (double)tn[step]);
    }
    assert_close_vec(W, Wf, NO * NI, "final W");
    assert_close_vec(b, bf, NO, "final b");
    optim_free(o);
    param_store_free(s);
    free(X); free(Y); free(W0); free(b0); free(tl); free(tn); free(Wf); free(bf);
}

/* A tensor big enough for the OpenMP path: 1 and 2 threads give identical bits, and the
 * result follows the Adam / SGD formulas (double-precision reference, 2 steps). */
static void big_case(optim_kind kind, float **out, int threads)
{
    enum { BIG = 100003 };
    param_store *s = param_store_create();
    int shp[1] = {BIG};
    assert_int_equal(param_store_declare(s, "big", 1, shp, PARAM_DEFAULT), 0);
    assert_int_equal(param_store_finalize(s), SM_OK);
    optim_config c = optim_default_config(kind);
    c.lr = 0.01;
    c.weight_decay = 0.1;
    c.momentum = kind == OPTIM_SGD ? 0.9 : 0.0;
    optim *o;
    assert_int_equal(optim_create(&o, s, &c), SM_OK);
    float *p = param_data(s, 0), *g = param_grad(s, 0);
    for (int k = 0; k < BIG; k++) p[k] = (float)sin(0.001 * k);
    omp_set_num_threads(threads);
    double *ref = malloc(BIG * sizeof *ref), *m = calloc(BIG, sizeof *m), *v = calloc(BIG, sizeof *v);
    for (int k = 0; k < BIG; k++) ref[k] = p[k];
    for (int step = 1; step <= 2; step++) {
        for (int k = 0; k < BIG; k++) g[k] = (float)cos(0.003 * k * step);
        optim_step(o);
        for (int k = 0; k < BIG; k++) {
            double gk = g[k];
            if (kind == OPTIM_SGD) {
                gk += 0.1 * ref[k];
                m[k] = step == 1 ? gk : 0.9 * m[k] + gk;
                ref[k] -= 0.01 * m[k];
                continue;
            }
            if (kind == OPTIM_ADAM) gk += 0.1 * ref[k];
            else ref[k] *= 1 - 0.01 * 0.1;
            m[k] = 0.9 * m[k] + 0.1 * gk;
            v[k] = 0.999 * v[k] + 0.001 * gk * gk;
            double mh = m[k] / (1 - pow(0.9, step)), vh = v[k] / (1 - pow(0.999, step));
            ref[k] -= 0.01 * mh / (sqrt(vh) + 1e-8);
        }
    }
    omp_set_num_threads(2);
    float *rf = malloc(BIG * sizeof *rf);
    for (int k = 0; k < BIG; k++) rf[k] = (float)ref[k];
    assert_close_vec(p, rf, BIG, optim_kind_name(kind));
    *out = malloc(BIG * sizeof **out);
    memcpy(*out, p, BIG * sizeof **out);
    free(rf);
    free(ref);
    free(m);
    free(v);
    optim_free(o);
    param_store_free(s);
}

static void test_large_tensor_threads(void **state)
{
    (void)state;
    const optim_kind kinds[3] = {OPTIM_SGD, OPTIM_ADAM, OPTIM_ADAMW};
    for (int i = 0; i < 3; i++) {
        float *one, *two;
        big_case(kinds[i], &one, 1);
        big_case(kinds[i], &two, 2);
        assert_memory_equal(one, two, 100003 * sizeof(float));
        free(one);
        free(two);
    }
}

static void test_from_training_config(void **state)
{
    (void)state;
    sm_config *cfg;
    assert_int_equal(config_load(NULL, 0, NULL, &cfg), SM_OK);
    optim_config c;
    assert_int_equal(optim_config_from_training(&cfg->training, &c), SM_OK);
    assert_int_equal(c.kind, OPTIM_ADAM);
    assert_true(c.lr == cfg->training.lr && c.beta2 == cfg->training.beta2 && c.momentum == 0.0);
    assert_true(c.gate_lr_scale == 1.0);
    config_free(cfg);
    char *ov[4] = {"training.optimizer=sgd", "training.momentum=0.8", "training.weight_decay=0.01",
                   "training.gate_lr_scale=30"};
    assert_int_equal(config_load(NULL, 4, ov, &cfg), SM_OK);
    assert_int_equal(optim_config_from_training(&cfg->training, &c), SM_OK);
    assert_int_equal(c.kind, OPTIM_SGD);
    assert_true(c.momentum == 0.8 && c.weight_decay == 0.01 && c.nesterov == 0 && c.gate_lr_scale == 30.0);
    strcpy(cfg->training.optimizer, "lion");
    assert_int_equal(optim_config_from_training(&cfg->training, &c), SM_ERR_USAGE);
    assert_non_null(strstr(sm_last_error(), "lion"));
    config_free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sgd_momentum),
        cmocka_unit_test(test_sgd_nesterov),
        cmocka_unit_test(test_sgd_dampening),
        cmocka_unit_test(test_sgd_plain),
        cmocka_unit_test(test_adam),
        cmocka_unit_test(test_adam_large_eps),
        cmocka_unit_test(test_adamw),
        cmocka_unit_test(test_clip_grad_norm),
        cmocka_unit_test(test_exact_resume),
        cmocka_unit_test(test_decay_flags),
        cmocka_unit_test(test_gate_param_group),
        cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_large_tensor_threads),
        cmocka_unit_test(test_training_run_matches_torch),
        cmocka_unit_test(test_from_training_config),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
