/* model.moe.attention.distill through the model builder: (3) a short training of a small cnn
 * whose last conv is a distilled attention layer (4 experts, k = 2) raises the student/teacher
 * top-1 agreement far above chance, and evaluation forwards route with the student (k = 1: the
 * output equals the teacher-routed one exactly where their top-1 experts agree); (4) a
 * checkpoint round trip keeps the student gate; the builder's and model_backward's errors. */
#include "model_testlib.h"

#include "model/checkpoint.h"
#include "moe/point_moe.h"
#include "nn/optim.h"
#include "nn/threads.h"

enum { CIN = 3, HH = 8, WW = 8, BATCH = 8, NEXP = 4, STEPS = 1500 };

#define NOV 12
static const char *OV[NOV] = {"model.architecture=cnn", "model.channels=[8]", "model.kernel=3",
                              "model.activation=relu", "model.moe.enabled=true", "model.moe.gate=attention",
                              "model.moe.experts=4", "model.moe.k=2", "model.moe.expert_hidden=8",
                              "model.moe.attention.hidden=8", "model.moe.attention.distill=true",
                              "model.moe.aux.entropy=0.1"};

/* Inputs uniform in [-1, 1]; the target switches between three local rules by the sign
 * pattern of the first two channels, so experts have something to specialise on. */
static void make_batch(rng_t *r, float *x, float *t)
{
    const size_t P = (size_t)HH * WW;
    mt_fill(x, (size_t)BATCH * CIN * P, r, 1.0f);
    for (int b = 0; b < BATCH; b++)
        for (size_t p = 0; p < P; p++) {
            const float *xb = x + (size_t)b * CIN * P;
            float a = xb[p], c = xb[P + p], d = xb[2 * P + p];
            t[(size_t)b * P + p] = a > 0 ? (c > 0 ? c * d : 2 * d) : -a * c;
        }
}

static int find_param(sm_model *m, const char *part)
{
    param_store *ps = model_params(m);
    for (int id = 0; id < param_store_count(ps); id++)
        if (strstr(param_store_view(ps, id)->name, part)) return id;
    return -1;
}

static void train(sm_model *m, int steps, uint64_t seed)
{
    optim_config oc = optim_default_config(OPTIM_ADAM);
    oc.lr = 3e-3;
    optim *opt = NULL;
    assert_int_equal(optim_create(&opt, model_params(m), &oc), SM_OK);
    rng_t r, noise;
    rng_seed(&r, seed, 1);
    rng_seed(&noise, seed, 2);
    const size_t no = mt_out_floats(m);
    float *t = malloc(no * sizeof(float));
    for (int s = 0; s < steps; s++) {
        make_batch(&r, model_input(m), t);
        model_zero_grad(m);
        assert_int_equal(model_forward(m, 1, &noise), SM_OK);
        const float *y = model_output(m);
        float *dy = model_output_grad(m);
        for (size_t i = 0; i < no; i++) dy[i] = 2.0f * (y[i] - t[i]) / (float)no;
        assert_int_equal(model_backward(m), SM_OK);
        optim_step(opt);
    }
    free(t);
    optim_free(opt);
}

/* argmax expert per token of the layer's routing distribution after the last forward */
static void argmax_of(sm_model *m, int32_t *arg)
{
    model_moe_info info;
    assert_int_equal(model_moe_get(m, 0, &info), SM_OK);
    moe_layout l = {BATCH, info.n_experts, (size_t)info.h * info.w};
    moe_argmax_experts(&l, info.routing_probs, arg);
}

typedef struct {
    double agree, chance, distill;
} agreement;

/* On a fresh batch x: the teacher's top-1 (training forward: the attention gate routes; no
 * dropout, BatchNorm or noise in this model, so nothing else differs), then an evaluation
 * forward with the distillation check (agreement and loss from the layer, as validation logs
 * them). chance = sum_e f_teacher(e) f_student(e), the agreement of independent routers with
 * the same expert loads. */
static agreement measure(sm_model *m, const float *x, int32_t *t_arg, int32_t *s_arg)
{
    const size_t T = (size_t)BATCH * HH * WW;
    memcpy(model_input(m), x, mt_in_floats(m) * sizeof(float));
    rng_t r;
    rng_seed(&r, 5, 5);
    assert_int_equal(model_forward(m, 1, &r), SM_OK);
    argmax_of(m, t_arg);
    model_set_distill_check(m, 1);
    assert_int_equal(model_forward(m, 0, NULL), SM_OK);
    model_set_distill_check(m, 0);
    argmax_of(m, s_arg);
    moe_routing_metrics rm;
    assert_int_equal(model_moe_routing_metrics(m, 0, NULL, 0, &rm), SM_OK);
    assert_true(rm.has_distill);
    double ft[NEXP] = {0}, fs[NEXP] = {0};
    size_t same = 0;
    for (size_t i = 0; i < T; i++) {
        ft[t_arg[i]] += 1.0 / T;
        fs[s_arg[i]] += 1.0 / T;
        same += t_arg[i] == s_arg[i];
    }
    agreement a = {rm.agreement, 0, rm.distill_loss};
    for (int e = 0; e < NEXP; e++) a.chance += ft[e] * fs[e];
    /* the logged agreement is the fraction of tokens whose top-1 experts match */
    assert_float_equal(a.agree, (double)same / T, 1e-6);
    return a;
}

static void test_distill_training(void **st)
{
    (void)st;
    nn_set_threads(1);
    sm_model *m = mt_build(NOV, OV, CIN, 1, HH, WW, 0, BATCH);
    assert_true(model_distills(m));
    const size_t T = (size_t)BATCH * HH * WW;
    float *x = malloc(mt_in_floats(m) * sizeof(float)), *t = malloc(T * sizeof(float));
    int32_t *ta = malloc(T * sizeof(int32_t)), *sa = malloc(T * sizeof(int32_t));
    rng_t r;
    rng_seed(&r, 77, 3);
    make_batch(&r, x, t); /* held out: train() draws its batches from another stream */
    agreement a0 = measure(m, x, ta, sa);
    train(m, STEPS, 11);
    agreement a1 = measure(m, x, ta, sa);
    print_message("distill: top-1 agreement %.3f (chance %.3f, distillation loss %.3f) at init, %.3f (chance "
                  "%.3f, distillation loss %.3f) after %d steps\n", a0.agree, a0.chance, a0.distill, a1.agree,
                  a1.chance, a1.distill, STEPS);
    /* the teacher spreads over the experts (else agreement would be trivial) and the student
     * follows it far above the agreement of independent routers with the same loads */
    double ft_max = 0;
    for (int e = 0; e < NEXP; e++) {
        size_t c = 0;
        for (size_t i = 0; i < T; i++) c += ta[i] == e;
        ft_max = fmax(ft_max, (double)c / T);
    }
    assert_true(ft_max < 0.6);
    assert_true(a1.agree >= 0.8);
    assert_true(a1.agree >= a1.chance + 0.4);
    assert_true(a1.distill < a0.distill - 0.5);
    free(x); free(t); free(ta); free(sa);
    model_free(m);
}

/* With k = 1 the output at a token is its selected expert's, so an evaluation forward (student
 * routing, sparse) equals the training forward (teacher routing; no dropout, BatchNorm or noise
 * here) exactly at the tokens where both pick the same expert and differs at the others. A few
 * training steps move the student off its zero init so that both cases occur. */
static void test_distill_eval_routing(void **st)
{
    (void)st;
    nn_set_threads(1);
    const char *ov[NOV];
    memcpy(ov, OV, sizeof OV);
    ov[7] = "model.moe.k=1";
    sm_model *m = mt_build(NOV, ov, CIN, 1, HH, WW, 0, BATCH);
    train(m, 30, 21);
    const size_t T = (size_t)BATCH * HH * WW;
    float *x = malloc(mt_in_floats(m) * sizeof(float)), *t = malloc(T * sizeof(float));
    float *yt = malloc(T * sizeof(float)), *ye = malloc(T * sizeof(float));
    int32_t *ta = malloc(T * sizeof(int32_t)), *sa = malloc(T * sizeof(int32_t));
    rng_t r;
    rng_seed(&r, 78, 3);
    make_batch(&r, x, t);
    memcpy(model_input(m), x, mt_in_floats(m) * sizeof(float));
    rng_t nr;
    rng_seed(&nr, 5, 5);
    assert_int_equal(model_forward(m, 1, &nr), SM_OK);
    memcpy(yt, model_output(m), T * sizeof(float));
    argmax_of(m, ta);
    assert_int_equal(model_forward(m, 0, NULL), SM_OK);
    memcpy(ye, model_output(m), T * sizeof(float));
    argmax_of(m, sa);
    /* the evaluation's gate weights are the student's top-1: weight 1 on its argmax */
    model_moe_info info;
    assert_int_equal(model_moe_get(m, 0, &info), SM_OK);
    const size_t P = (size_t)info.h * info.w;
    size_t disagree = 0;
    for (size_t i = 0; i < T; i++) {
        size_t b = i / P, p = i % P;
        for (int e = 0; e < NEXP; e++)
            assert_true(info.gate_weights[(b * NEXP + (size_t)e) * P + p] == (e == sa[i] ? 1.0f : 0.0f));
        double d = fabs((double)ye[i] - yt[i]);
        if (ta[i] == sa[i]) {
            if (!(d <= 1e-5 * (1 + fabs(yt[i])))) fail_msg("token %zu: same expert, outputs differ by %g", i, d);
        } else {
            disagree++;
            if (!(d > 1e-5)) fail_msg("token %zu: experts %d / %d, same output", i, ta[i], sa[i]);
        }
    }
    assert_true(disagree > 0 && disagree < T);
    /* backward needs the training forward (the evaluation pass is the student's, sparse) */
    assert_int_equal(model_backward(m), SM_ERR_USAGE);
    free(x); free(t); free(yt); free(ye); free(ta); free(sa);
    model_free(m);
}

static void test_distill_checkpoint(void **st)
{
    (void)st;
    nn_set_threads(1);
    char dir[512], path[700];
    testutil_tmpdir("distill_ck", dir, sizeof dir);
    snprintf(path, sizeof path, "%s/ck.nc", dir);
    sm_config *cfg = mt_config(NOV, OV);
    sm_model *a = NULL;
    assert_int_equal(model_build_dims(&cfg->model, CIN, 1, HH, WW, 0, BATCH, 1, 7, &a), SM_OK);
    train(a, 20, 3);
    int ida = find_param(a, "student_w_gate");
    assert_true(ida >= 0);
    param_store *pa = model_params(a);
    const param_view *va = param_store_view(pa, ida);
    double n2 = 0;
    for (size_t i = 0; i < va->numel; i++) n2 += (double)param_data(pa, ida)[i] * param_data(pa, ida)[i];
    assert_true(n2 > 0); /* trained away from its zero init */
    assert_int_equal(checkpoint_save(path, a, cfg, NULL, NULL), SM_OK);

    /* rebuild from the stored config alone (as forecast does), other seed, then load */
    sm_config *cb = NULL;
    assert_int_equal(checkpoint_load_config(path, 0, NULL, &cb), SM_OK);
    assert_true(cb->model.moe.attention.distill);
    assert_float_equal(cb->model.moe.attention.distill_weight, 1.0, 0);
    sm_model *b = NULL;
    assert_int_equal(model_build_dims(&cb->model, CIN, 1, HH, WW, 0, BATCH, 1, 99, &b), SM_OK);
    assert_int_equal(checkpoint_load(path, b, cb, NULL, NULL), SM_OK);
    param_store *pb = model_params(b);
    int idb = find_param(b, "student_w_gate");
    assert_true(idb >= 0);
    assert_memory_equal(param_data(pa, ida), param_data(pb, idb), va->numel * sizeof(float));
    /* the same evaluation forward (student routing) */
    rng_t r;
    rng_seed(&r, 8, 8);
    const size_t ni = mt_in_floats(a), no = mt_out_floats(a);
    float *x = malloc(ni * sizeof(float)), *y = malloc(no * sizeof(float));
    mt_fill(x, ni, &r, 1.0f);
    memcpy(model_input(a), x, ni * sizeof(float));
    assert_int_equal(model_forward(a, 0, NULL), SM_OK);
    memcpy(y, model_output(a), no * sizeof(float));
    memcpy(model_input(b), x, ni * sizeof(float));
    assert_int_equal(model_forward(b, 0, NULL), SM_OK);
    assert_memory_equal(y, model_output(b), no * sizeof(float));
    /* a checkpoint without the student does not load into a distilled model */
    char p0[700];
    snprintf(p0, sizeof p0, "%s/plain.nc", dir);
    const char *ov_plain[NOV];
    memcpy(ov_plain, OV, sizeof OV);
    ov_plain[10] = "model.moe.attention.distill=false";
    sm_config *cp = mt_config(NOV, ov_plain);
    sm_model *mp = NULL;
    assert_int_equal(model_build_dims(&cp->model, CIN, 1, HH, WW, 0, BATCH, 1, 7, &mp), SM_OK);
    assert_int_equal(checkpoint_save(p0, mp, cp, NULL, NULL), SM_OK);
    assert_int_not_equal(checkpoint_load(p0, b, NULL, NULL, NULL), SM_OK);
    free(x); free(y);
    model_free(a); model_free(b); model_free(mp);
    config_free(cfg); config_free(cb); config_free(cp);
}

static void test_distill_errors(void **st)
{
    (void)st;
    const char *ov[NOV];
    memcpy(ov, OV, sizeof OV);
    ov[5] = "model.moe.gate=softmax_topk";
    sm_config *cfg = mt_config(NOV, ov);
    sm_model *m = NULL;
    assert_int_equal(model_build_dims(&cfg->model, CIN, 1, HH, WW, 0, BATCH, 1, 7, &m), SM_ERR_USAGE);
    assert_non_null(strstr(sm_last_error(), "model.moe.attention.distill"));
    if (m) model_free(m);
    config_free(cfg);
    pmoe_shape s;
    memset(&s, 0, sizeof s);
    pmoe_shape_defaults(&s);
    s.batch = 1; s.c_in = 2; s.h = 3; s.w = 3; s.c_out = 1; s.n_experts = 3; s.k = 1;
    s.gate = PMOE_LAPLACE;
    s.distill = 1;
    assert_int_equal(pmoe_check(&s), SM_ERR_USAGE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_distill_training),
        cmocka_unit_test(test_distill_eval_routing),
        cmocka_unit_test(test_distill_checkpoint),
        cmocka_unit_test(test_distill_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
