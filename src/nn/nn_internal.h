/* Internal to src/nn: the work size below which OpenMP loops stay serial (a parallel region
 * costs microseconds, far more on a loaded machine, so tiny loops run on one thread), and
 * helpers shared by several layers. */
#ifndef SMOECAST_NN_INTERNAL_H
#define SMOECAST_NN_INTERNAL_H

#define NN_PAR_MIN 32768

#include <stddef.h>

/* Bias gradient of a convolution-like layer: d_bias[co] += sum over the batch and the `ohw`
 * output pixels of d_out (batch, c_out, ohw); per-sample float sums added up in double. */
void nn_bias_backward(int batch, int c_out, size_t ohw, const float *d_out, float *d_bias);

/* Splits `items` work items over T threads for layers that call sgemm per item. T == 1: one
 * block [0, items) in order, OpenBLAS keeps its own threads. T > 1: T contiguous blocks of
 * whole groups of `group` items on T OpenMP threads, with OpenBLAS set to one thread for the
 * duration (an OpenMP team and a multi-threaded OpenBLAS spinning at once made layers up to
 * 10x slower on 2 cores). fn(t, lo, hi, ctx) runs items [lo, hi) as thread t. Returns the
 * number of threads that ran. */
typedef void (*nn_block_fn)(int t, int lo, int hi, void *ctx);
int nn_run_blocks(int T, int items, int group, nn_block_fn fn, void *ctx);

/* Loops compiled for AVX-512 and AVX2 as well as the baseline and picked at load time (GCC
 * function multiversioning). Code under it must give bit-identical results in every version
 * (no reassociation; the ISO C mode the project builds in does not contract a * b + c). */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define NN_VEC_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define NN_VEC_CLONES
#endif

/* conv2d algorithm choice, for tests and benchmarks. NN_CONV_AUTO (the default) chooses by
 * shape (see conv2d.c). A forced algorithm applies to every later conv2d call whose shape it
 * supports (others keep the automatic choice): NN_CONV_IM2COL any shape; NN_CONV_SHIFT
 * stride 1; NN_CONV_WINO2 / NN_CONV_WINO4 Winograd F(2x2, r x r) / F(4x4, r x r) for stride 1
 * and r = 3 or 5. Process-wide: set it between conv2d calls (never while one runs) and size
 * workspaces (conv2d_workspace_floats) after setting it. */
typedef enum {
    NN_CONV_AUTO = 0,
    NN_CONV_IM2COL,
    NN_CONV_SHIFT,
    NN_CONV_WINO2,
    NN_CONV_WINO4
} nn_conv_algo;
void nn_conv2d_set_algo(nn_conv_algo a);

#endif
