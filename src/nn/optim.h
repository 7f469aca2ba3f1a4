/* Optimisers over a param_store, with torch semantics (torch.optim, single-tensor path):
 *
 *   SGD    g = grad + wd * p                               (wd only on PARAM_DECAY tensors)
 *          momentum != 0: buf = g on the first step, else buf = momentum * buf + (1 - dampening) g
 *                         g = nesterov ? g + momentum * buf : buf
 *          p -= lr * g
 *   Adam   t += 1; g = grad + wd * p (L2 added to the gradient, PARAM_DECAY tensors only)
 *          m = beta1 m + (1 - beta1) g;  v = beta2 v + (1 - beta2) g^2
 *          p -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
 *   AdamW  t += 1; p *= 1 - lr * wd (decoupled, PARAM_DECAY tensors only), then Adam with g = grad.
 * Tensors without PARAM_TRAINABLE are never touched (data, state); tensors without PARAM_DECAY
 * get no weight decay (a torch param group with weight_decay = 0). Tensors with PARAM_GATE (MoE
 * gates) form a second param group whose lr is lr * gate_lr_scale: a schedule that scales lr
 * scales both groups, as torch's schedulers do with per-group lrs. Why: an Adam step moves a
 * parameter by about lr whatever its gradient, while a latent gate is initialised U(-a, a) with
 * a = sqrt(3N/k), so at lr 1e-3 the routing barely changes during a short training.
 *
 * Each step is one flat loop per tensor over the store's buffers. Per-element arithmetic is in
 * float with double-precision step scalars (as torch does for float32 tensors). Tensors of
 * 32768+ elements are updated by the OpenMP team (static schedule); the update is purely
 * elementwise, so results are bit-identical for any thread count. The gradient norm is a
 * serial double-precision sum (also thread-count independent).
 *
 * State for checkpoints: `m` (SGD momentum buffer or Adam first moment) and `v` (Adam second
 * moment; NULL for SGD) hold param_store_size() floats at the store's offsets; `step` counts
 * completed steps. Saving m, v, step and the current lr and restoring them gives an exact
 * resume. */
#ifndef SMOECAST_NN_OPTIM_H
#define SMOECAST_NN_OPTIM_H

#include "core/config.h"
#include "nn/params.h"

#include <stdint.h>

typedef enum { OPTIM_SGD = 0, OPTIM_ADAM = 1, OPTIM_ADAMW = 2 } optim_kind;

typedef struct {
    optim_kind kind;
    double lr;
    double weight_decay;
    double momentum, dampening;   /* SGD */
    int nesterov;                 /* SGD: requires momentum > 0 and dampening == 0 */
    double beta1, beta2, eps;     /* Adam / AdamW */
    double gate_lr_scale;         /* PARAM_GATE tensors step at lr * gate_lr_scale (default 1) */
} optim_config;

typedef struct {
    optim_config cfg;             /* cfg.lr is the learning rate of the next step */
    param_store *store;
    size_t size;                  /* floats in m / v (= param_store_size) */
    float *m;                     /* SGD momentum buffer / Adam exp_avg */
    float *v;                     /* Adam exp_avg_sq (NULL for SGD) */
    int64_t step;                 /* completed steps */
} optim;

/* torch's defaults: SGD lr 1e-3 (torch requires it explicitly), momentum 0; Adam lr 1e-3,
 * betas (0.9, 0.999), eps 1e-8, weight decay 0; AdamW the same with weight decay 1e-2;
 * gate_lr_scale 1 (one param group). */
optim_config optim_default_config(optim_kind kind);
/* Name "sgd" / "adam" / "adamw" -> kind; SM_OK or SM_ERR_USAGE. */
int optim_kind_from_name(const char *name, optim_kind *kind);
const char *optim_kind_name(optim_kind kind);

/* From the `training` config section: optimizer (sgd|adam|adamw), lr, weight_decay (L2 for
 * sgd/adam, decoupled for adamw), momentum (sgd only), beta1, beta2, eps; nesterov and
 * dampening 0, gate_lr_scale. SM_OK or SM_ERR_USAGE (unknown optimizer name). */
int optim_config_from_training(const training_config *t, optim_config *out);

/* Validates the config (torch's checks) and allocates zeroed state for a finalized store.
 * SM_OK, SM_ERR_USAGE or SM_ERR_NUMERIC (out of memory); *out is NULL on error. */
int optim_create(optim **out, param_store *store, const optim_config *cfg);
void optim_free(optim *opt);

void optim_set_lr(optim *opt, double lr);
double optim_get_lr(const optim *opt);
/* One update of every trainable tensor from the store's gradients. */
void optim_step(optim *opt);
/* Zero m, v and step (fresh optimiser, same config). */
void optim_reset(optim *opt);

/* L2 norm of all trainable gradients (accumulated in double). */
double optim_grad_norm(param_store *store);
/* torch.nn.utils.clip_grad_norm_(params, max_norm): total = optim_grad_norm(); if total is
 * finite, every trainable gradient is multiplied by min(1, max_norm / (total + 1e-6)); a
 * NaN/Inf total leaves the gradients unchanged (the caller stops). Returns total. */
double optim_clip_grad_norm(param_store *store, double max_norm);

#endif
