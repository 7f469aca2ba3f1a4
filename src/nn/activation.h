/* Elementwise activations (torch semantics): ReLU, LeakyReLU(negative_slope = alpha, torch
 * default 0.01), ELU(alpha, default 1.0), GELU (exact erf form, torch default), tanh, sigmoid.
 * Forward may run in place (out == in) except for backward-needing-input kinds, see below.
 * Backward: d_in += d_out * f'(x). It needs `in` for RELU, LEAKY_RELU, ELU, GELU and `out`
 * for TANH, SIGMOID (pass both when unsure). Deterministic (elementwise OpenMP loops). */
#ifndef SMOECAST_NN_ACTIVATION_H
#define SMOECAST_NN_ACTIVATION_H

#include <stddef.h>

typedef enum {
    ACT_IDENTITY = 0,
    ACT_RELU,
    ACT_LEAKY_RELU,
    ACT_ELU,
    ACT_GELU,
    ACT_TANH,
    ACT_SIGMOID
} act_kind;

/* "identity"/"none", "relu", "leaky_relu", "elu", "gelu", "tanh", "sigmoid" -> 0, else -1. */
int activation_parse(const char *name, act_kind *kind);
const char *activation_name(act_kind kind);
/* torch default parameter: 0.01 for LEAKY_RELU, 1.0 for ELU, 0 otherwise. */
float activation_default_alpha(act_kind kind);

void activation_forward(act_kind kind, float alpha, size_t n, float *out, const float *in);
void activation_backward(act_kind kind, float alpha, size_t n, float *d_in, const float *d_out,
                         const float *in, const float *out);

#endif
