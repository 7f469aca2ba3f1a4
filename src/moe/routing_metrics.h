/* Specialisation and utilisation metrics of a router (METHODS.md section 3): expert load
 * fraction, CV(importance), routing entropy H_s, usage entropy H_u (bits), mutual information
 * I(E; Y) (bits) between the argmax expert and a label map, and the adjusted Rand index between
 * the argmax-expert map and the labels (e.g. the true regions of the synthetic heat task).
 * Routing distributions use the (outer, N, inner) layout of moe_balance.h. */
#ifndef SMOECAST_MOE_ROUTING_METRICS_H
#define SMOECAST_MOE_ROUTING_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "moe/moe_balance.h"

#define MOE_METRICS_MAX_EXPERTS 64

typedef struct {
    int n_experts;
    double load_frac[MOE_METRICS_MAX_EXPERTS]; /* fraction of tokens whose argmax expert is n */
    double cv_importance;  /* std / mean (unbiased) of I_n = sum over tokens of p_n */
    double h_s;            /* mean over tokens of -sum_n p_n log2 p_n (low = confident) */
    double h_u;            /* entropy (bits) of the mean routing distribution (high = balanced) */
    double mi;             /* I(E; Y) in bits; 0 without labels */
    double ari;            /* adjusted Rand index (argmax expert vs labels); 0 without labels */
    int has_labels;
} moe_routing_metrics;

/* p: routing probabilities (each token's N entries sum to 1; a softmax of raw gate values for
 * gates that do not produce probabilities, see moe_softmax_experts). labels (nullable): one
 * non-negative class per token; labels_per_sample = 0 means labels has `inner` entries shared
 * by every sample (a fixed map such as the true regions or land/sea), 1 means outer*inner.
 * Returns 0, or -1 if N > MOE_METRICS_MAX_EXPERTS or a label is negative. */
int moe_routing_metrics_compute(const moe_layout *l, const float *p, const int32_t *labels,
                                int labels_per_sample, moe_routing_metrics *m);

/* out = softmax over the N experts of in, per token (same layout; may alias). */
void moe_softmax_experts(const moe_layout *l, const float *in, float *out);

/* argmax expert per token (ties to the lower index) into expert[o * inner + i]. */
void moe_argmax_experts(const moe_layout *l, const float *p, int32_t *expert);

/* Mutual information (bits) and adjusted Rand index between two labelings of n items with
 * classes in [0, na) and [0, nb). Return -1 on a label out of range (MI) / NAN (ARI).
 * ARI is 1 when both labelings are a single cluster or all singletons (sklearn's convention). */
double moe_mutual_information(size_t n, const int32_t *a, int na, const int32_t *b, int nb);
double moe_adjusted_rand_index(size_t n, const int32_t *a, int na, const int32_t *b, int nb);

#endif
