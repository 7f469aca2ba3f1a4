/* Neural post-processing methods (see post_nn.h). */
#include "tasks/post_nn.h"
#include "core/log.h"

#include <math.h>
#include <stdlib.h>

struct post_nn {
    int unused;
};

int post_nn_fit(const sm_config *cfg, int resume, const ens_data *E, const float *truth, const ens_split *train,
                const ens_split *val, post_nn **out)
{
    (void)resume, (void)E, (void)truth, (void)train, (void)val;
    *out = NULL;
    return sm_fail(SM_ERR_USAGE, "postprocess.method %s is not available yet in this build (use raw or emos)", cfg->postprocess.method);
}
int post_nn_predict(void *nn, int t, float *mu, float *sigma)
{
    (void)nn, (void)t, (void)mu, (void)sigma;
    return SM_ERR_USAGE;
}
void post_nn_free(post_nn *nn) { free(nn); }
int post_nn_load(const char *path, post_nn **out)
{
    *out = NULL;
    return sm_fail(SM_ERR_IO, "%s: not an EMOS model file (smoecast_model = \"emos\")", path);
}
const char *post_nn_target(const post_nn *nn) { (void)nn; return ""; }
const char *post_nn_method(const post_nn *nn) { (void)nn; return ""; }
const char *post_nn_period(const post_nn *nn) { (void)nn; return ""; }
double post_nn_sigma_floor(const post_nn *nn) { (void)nn; return NAN; }
int post_nn_predictors(const post_nn *nn, char names[][80]) { (void)nn, (void)names; return 0; }
int post_nn_check_grid(const post_nn *nn, const ens_data *E, const char *path) { (void)nn, (void)E, (void)path; return SM_OK; }
int post_nn_apply(post_nn *nn, const ens_data *E, int t, double floor, float *mu, float *sigma)
{
    (void)nn, (void)E, (void)t, (void)floor, (void)mu, (void)sigma;
    return SM_ERR_USAGE;
}
