/* Balancing losses on gate tensors (METHODS.md sections 2 and 3): importance CV^2, load CV^2
 * (noisy top-k, Shazeer et al. 2017), switch loss, entropy loss, and the SMoE spatial agreement.
 *
 * Gate tensors use a (outer, N, inner) layout: the value of token t = (o, i) for expert n is at
 * o*N*inner + n*inner + i. An NCHW gate map (B, N, H, W) is {B, N, H*W}; token-major (T, N)
 * gate outputs are {T, N, 1}. Every function returns the UNWEIGHTED loss and, when the gradient
 * pointer is non-NULL, accumulates (+=) `weight` times its gradient. */
#ifndef SMOECAST_MOE_MOE_BALANCE_H
#define SMOECAST_MOE_MOE_BALANCE_H

#include <stddef.h>

typedef struct {
    int outer, n;
    size_t inner;
} moe_layout;

/* Data-parallel batch statistics (the _r variants below): each process holds a shard of the
 * global batch (its tokens in the layout); `sum` adds a double buffer in place over the
 * processes (e.g. an MPI allreduce), so the per-expert sums, and with them the loss, are those
 * of the global batch and the same on every process. The gradient for the local tokens is the
 * global loss's times grad_scale (global / local batch when each process's gradient is later
 * weighted by local / global batch and summed). status receives the first non-zero return of
 * sum (the values are then unusable). A process with no token calls with outer = 0 to take
 * part in the sums. r == NULL or sum == NULL: one process (the plain functions). */
typedef struct {
    int (*sum)(double *buf, size_t n, void *arg);
    void *arg;
    double grad_scale;
    int status;
} moe_reduce;

/* In-place sum over processes through r (nothing when r or r->sum is NULL). */
void moe_reduce_sum(moe_reduce *r, double *buf, size_t n);

/* CV^2 = unbiased variance / (mean^2 + 1e-10) of v[0..n-1] (0 when n < 2); dv (nullable)
 * receives (=, not +=) dCV^2/dv. */
double moe_cv2(const double *v, int n, double *dv);

/* importance: I_n = sum over tokens of g; L = CV(I)^2. */
double moe_importance_cv2(const moe_layout *l, const float *g, float *d_g, float weight);

/* load: P(t, n) = Phi((clean - thr) / std) with thr the k-th largest noisy value excluding n
 * (the (k+1)-th largest if n is in the noisy top-k, else the k-th); Load_n = sum_t P;
 * L = CV(Load)^2. std (same layout) may be NULL, then every entry is std_const. The gradient
 * flows into clean (d_clean) and, through noisy = clean + eps*std, into std (d_std, nullable;
 * ignored when std is NULL), both for the own expert and for the threshold-holding expert.
 * Needs N > k (returns 0 otherwise). */
double moe_load_cv2(const moe_layout *l, int k, const float *clean, const float *noisy,
                    const float *std, float std_const, float *d_clean, float *d_std, float weight);

/* switch: probabilities p (softmax over all N); f_n = fraction of tokens whose argmax is n (no
 * gradient), P_n = mean over tokens of p; L = N * sum_n f_n P_n. */
double moe_switch_loss(const moe_layout *l, const float *p, float *d_p, float weight);

/* entropy: mean over tokens of H(p_t) minus H(mean_t p_t) (nats; 0 log 0 = 0). */
double moe_entropy_loss(const moe_layout *l, const float *p, float *d_p, float weight);

/* The same losses with the statistics summed over processes (see moe_reduce). */
double moe_importance_cv2_r(const moe_layout *l, const float *g, float *d_g, float weight,
                            moe_reduce *r);
double moe_load_cv2_r(const moe_layout *l, int k, const float *clean, const float *noisy,
                      const float *std, float std_const, float *d_clean, float *d_std, float weight,
                      moe_reduce *r);
double moe_switch_loss_r(const moe_layout *l, const float *p, float *d_p, float weight, moe_reduce *r);
double moe_entropy_loss_r(const moe_layout *l, const float *p, float *d_p, float weight, moe_reduce *r);

/* SMoE spatial agreement on r (B, N, HW): sum over experts of the mean over pixels of the
 * unbiased standard deviation over the batch (0 when B < 2; zero-std entries get no gradient). */
double smoe_spatial_agreement(int batch, int n_experts, size_t hw, const float *r, float *d_r,
                              float weight);

#endif
