/* Normalisation layers, NCHW: BatchNorm2d (training: batch statistics + running-stat update
 * with torch's momentum rule; eval: running statistics) and GroupNorm (per sample and group).
 *
 * `save` holds what backward needs: BatchNorm 2*c floats (mean[c], rstd[c]), GroupNorm
 * 2*batch*groups floats (mean[b*groups+g], then rstd[...]). Forward fills it; backward reads
 * it. gamma/beta may be NULL (affine=False: gamma 1, beta 0; their gradients are skipped).
 * Backward ACCUMULATES into d_in (nullable), d_gamma, d_beta (nullable).
 * Statistics are accumulated in double; loops run over channels (BatchNorm) or (sample,
 * group) pairs (GroupNorm), so results are deterministic for any thread count. */
#ifndef SMOECAST_NN_NORM_H
#define SMOECAST_NN_NORM_H

#include <stddef.h>

typedef struct {
    int batch, c, h, w;
} norm_shape;

/* training != 0: normalise with batch mean and biased variance; if running_mean/running_var
 * are non-NULL update them as r = (1 - momentum) r + momentum * stat, the variance unbiased
 * (torch default momentum 0.1, eps 1e-5). training == 0: use the running statistics. */
void batchnorm2d_forward(const norm_shape *s, float *out, const float *in, const float *gamma,
                         const float *beta, float *running_mean, float *running_var,
                         float momentum, float eps, int training, float *save);
void batchnorm2d_backward(const norm_shape *s, float *d_in, float *d_gamma, float *d_beta,
                          const float *d_out, const float *in, const float *gamma,
                          const float *save, int training);

/* Synchronised BatchNorm (data-parallel training): the statistics are those of the batch
 * formed by all processes together. `reduce` sums a double buffer in place over the processes
 * (e.g. an MPI allreduce); `scratch` holds 2 * c + 1 doubles. Forward (training only; with
 * training == 0 it is batchnorm2d_forward) reduces the per-channel sums and the sample count,
 * then the squared deviations from the global mean. Backward reduces sum(d_out) and
 * sum(d_out * x_hat) for d_in; d_gamma/d_beta receive this process's LOCAL sums (the caller
 * sums parameter gradients over processes). Returns reduce's non-zero status, else 0. With a
 * reduce that does nothing, results equal the plain functions up to summation order. */
typedef int (*norm_reduce_fn)(double *buf, size_t n, void *arg);
int batchnorm2d_forward_sync(const norm_shape *s, float *out, const float *in, const float *gamma,
                             const float *beta, float *running_mean, float *running_var, float momentum,
                             float eps, int training, float *save, norm_reduce_fn reduce, void *arg,
                             double *scratch);
int batchnorm2d_backward_sync(const norm_shape *s, float *d_in, float *d_gamma, float *d_beta,
                              const float *d_out, const float *in, const float *gamma,
                              const float *save, int training, norm_reduce_fn reduce, void *arg,
                              double *scratch);

/* groups must divide c. Torch GroupNorm eps default 1e-5. */
void groupnorm_forward(const norm_shape *s, int groups, float *out, const float *in,
                       const float *gamma, const float *beta, float eps, float *save);
void groupnorm_backward(const norm_shape *s, int groups, float *d_in, float *d_gamma,
                        float *d_beta, const float *d_out, const float *in, const float *gamma,
                        const float *save);

#endif
