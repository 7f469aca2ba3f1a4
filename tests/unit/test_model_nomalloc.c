/* A training step (forward + backward + optimiser) of models built by the builder performs no
 * heap allocation once warm: malloc/calloc/realloc are counted by interposing them in this
 * program (glibc's __libc_* entry points). Skipped in the sanitizer build, whose runtime owns
 * malloc. Runs at 1 thread: Debian's OpenBLAS allocates its job table on the heap for every
 * multi-threaded sgemm call (USE_ALLOC_HEAP), which is outside smoecast's code. */
#include "model_testlib.h"

#include <stdint.h>

#include "nn/optim.h"
#include "nn/threads.h"

static volatile long g_allocs;
static volatile int g_counting;

#ifdef __SANITIZE_ADDRESS__
#define COUNTING_MALLOC 0 /* ASan owns malloc: no interposition, the test skips */
#else
#define COUNTING_MALLOC 1
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
extern void __libc_free(void *);


void *malloc(size_t n)
{
    if (g_counting) g_allocs++;
    return __libc_malloc(n);
}
void *calloc(size_t a, size_t b)
{
    if (g_counting) g_allocs++;
    return __libc_calloc(a, b);
}
void *realloc(void *p, size_t n)
{
    if (g_counting) g_allocs++;
    return __libc_realloc(p, n);
}
void free(void *p) { __libc_free(p); }
#endif

static void steps_without_malloc(int n_ov, const char *const *ov, int c_in, int c_out, int h, int w,
                                 int batch)
{
    sm_model *m = mt_build(n_ov, ov, c_in, c_out, h, w, 1, batch);
    optim_config oc = optim_default_config(OPTIM_ADAM);
    optim *opt = NULL;
    assert_int_equal(optim_create(&opt, model_params(m), &oc), SM_OK);
    rng_t r;
    rng_seed(&r, 1, 1);
    mt_fill(model_input(m), mt_in_floats(m), &r, 1.0f);
    long during = 0;
    for (int s = 0; s < 4; s++) {
        g_allocs = 0;
        g_counting = s >= 2; /* warm-up: thread pools, lazy library buffers */
        model_zero_grad(m);
        assert_int_equal(model_forward(m, 1, &r), SM_OK);
        mt_fill(model_output_grad(m), mt_out_floats(m), &r, 1.0f);
        assert_int_equal(model_backward(m), SM_OK);
        optim_step(opt);
        g_counting = 0;
        during += g_allocs;
    }
    if (during != 0) fail_msg("%s: %ld heap allocations in 2 training steps", ov[0], during);
    optim_free(opt);
    model_free(m);
}

static void test_no_malloc_in_step(void **state)
{
    (void)state;
    if (!COUNTING_MALLOC) {
        skip();
        return;
    }
    nn_set_threads(1);
    const char *cnn[] = {"model.architecture=cnn", "model.channels=[8, 8]", "model.kernel=5", "model.dropout=0.1"};
    steps_without_malloc(4, cnn, 2, 2, 8, 16, 4);
    const char *unet[] = {"model.architecture=unet", "model.channels=[4, 8, 16]", "model.kernel=3",
                          "model.batchnorm=true"};
    steps_without_malloc(4, unet, 2, 2, 16, 32, 2);
    const char *resnet[] = {"model.architecture=resnet", "model.channels=[8]", "model.kernel=3",
                            "model.batchnorm=true", "model.moe.enabled=true", "model.moe.experts=4",
                            "model.moe.k=2", "model.moe.rc_loss.enabled=false",
                            "model.moe.aux.spatial_agreement=0.1"};
    /* RC loss off: its per-sample quantile (moe/rc_loss.c) sorts with glibc qsort, which
     * allocates a merge buffer for arrays over 1 KB */
    steps_without_malloc(9, resnet, 2, 2, 8, 16, 2);
    const char *pm[] = {"model.architecture=cnn", "model.channels=[4]", "model.kernel=3",
                        "model.moe.enabled=true", "model.moe.gate=softmax_topk", "model.moe.experts=4",
                        "model.moe.k=2", "model.moe.noise=true", "model.moe.aux.load=0.1"};
    steps_without_malloc(9, pm, 2, 2, 8, 16, 2);
    nn_set_threads(0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_malloc_in_step),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
