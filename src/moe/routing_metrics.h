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

#define MOE_METRICS_MAX_EXPERTS 256 /* SMOE_MAX_EXPERTS: hidden SMoE layers have experts x channels experts */

typedef struct {
    int n_experts;
    double load_frac[MOE_METRICS_MAX_EXPERTS]; /* fraction of tokens whose argmax expert is n */
    double cv_importance;  /* std / mean (unbiased) of I_n = sum over tokens of p_n */
    double h_s;            /* mean over tokens of -sum_n p_n log2 p_n (low = confident) */
    double h_u;            /* entropy (bits) of the mean routing distribution (high = balanced) */
    double mi;             /* I(E; Y) in bits; 0 without labels */
    double ari;            /* adjusted Rand index (argmax expert vs labels); 0 without labels */
    int has_labels;
    /* A distilled router (point_moe.h distill), filled by the caller that ran both gates: the
     * cross-entropy from the teacher's to the student's routing distribution and the fraction
     * of tokens whose top-1 expert agrees (0 / 0 with has_distill 0, as compute leaves them). */
    int has_distill;
    double distill_loss, agreement;
} moe_routing_metrics;

/* p: routing probabilities (each token's N entries sum to 1; a softmax of raw gate values for
 * gates that do not produce probabilities, see moe_softmax_experts). labels (nullable): one
 * class per token, -1 for a token without one (left out of MI and ARI); labels_per_sample = 0
 * means labels has `inner` entries shared by every sample (a fixed map such as the true regions
 * or land/sea), 1 means outer*inner. Returns 0, or -1 if N > MOE_METRICS_MAX_EXPERTS. */
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

/* A categorical map's labels: each distinct value is one category, numbered 0 .. K-1 in
 * increasing order of the values (integer codes or class values such as diffusivities); NaN
 * gives -1 (left out of MI and ARI). Returns K, or -1 when the map has more than
 * max_categories (at most 4 * MOE_METRICS_MAX_EXPERTS) distinct values, i.e. is not categorical. */
int moe_labels_from_values(const float *values, size_t n, int max_categories, int32_t *labels);
/* The category limit smoecast applies to reference maps (routing labels, experts --labels). */
#define MOE_LABEL_MAX_CATEGORIES 64

/* Six 30-degree latitude bands from the south pole (0 .. 5) for an h x w grid; lat NULL (x/y
 * grids): six bands of rows. */
void moe_latitude_band_labels(const double *lat, int h, int w, int32_t *labels);

#endif
