/* Winograd convolution F(m x m, r x r) for stride-1 convolutions with an r x r kernel (internal
 * to src/nn; conv2d.c chooses the variant and runs the work items on its threads).
 *
 * One output tile of m x m pixels is A^T [ (G g G^T) .* (B^T d B) ] A over its
 * alpha x alpha (alpha = m + r - 1) tile d of the padded input. The alpha^2 elementwise
 * products, summed over input channels, become alpha^2 GEMMs
 *     M[xi] (c_out x tiles) = U[xi] (c_out x c_in) * V[xi] (c_in x tiles)
 * with the tiles of several samples side by side in the GEMM's N. Backward uses the adjoint
 * transforms: dM = A dY A^T, dU[xi] += dM[xi] V[xi]^T (weight gradient), dV[xi] = U[xi]^T dM[xi],
 * d tile = B dV B^T (input gradient, overlapping tiles summed in a fixed order),
 * dW = G^T dU G.
 *
 * Variants (Cook-Toom points 0, +-1, +-2, +-1/2 and infinity):
 *   F(2, 3) alpha 4: 16 products per 4 outputs   (direct 36)
 *   F(4, 3) alpha 6: 36 products per 16 outputs  (direct 144)
 *   F(2, 5) alpha 6: 36 products per 4 outputs   (direct 100)
 *   F(4, 5) alpha 8: 64 products per 16 outputs  (direct 400)
 * Relative L2 error against a double-precision direct convolution (64 input channels, ELU-like
 * inputs; forward / input gradient / weight gradient): F(4,5) 2.9e-6 / 2.9e-6 / 3.0e-6 and
 * F(2,5) 1.8e-6 / 1.8e-6 / 1.9e-6 (32 x 64, 64 outputs), F(4,3) 1.5e-6 / 1.2e-6 / 1.6e-6 and
 * F(2,3) 2.3e-7 / 1.9e-7 / 2.9e-7 (64 x 128, 32 outputs); im2col 1-3e-7.
 * tests/unit/test_nn_conv2d.c bounds every variant at 1e-5.
 *
 * Layouts: U[xi][co][ci]; V[xi][ci][tile] at xi * vx + ci * vc + tile, M[xi][co][tile] at
 * xi * mx + co * mc + tile (channel-major: the alpha^2 planes of one channel are adjacent, so
 * the transforms of a channel touch one compact block); tile = sample_in_chunk * nt + ty * tw + tx;
 * xi = alpha * (row of the transform) + column. The padding (any pad_mode) is applied once per
 * input channel into a padded plane stored as m "phases" per row (phase q holds the padded
 * columns q, q + m, q + 2m, ...), so the transforms run on contiguous vectors of tiles. */
#ifndef SMOECAST_NN_WINOGRAD_H
#define SMOECAST_NN_WINOGRAD_H

#include "nn/conv2d.h"

#include <stddef.h>

typedef struct {
    int m, r, alpha, p;          /* F(m x m, r x r), alpha = m + r - 1, padding p = r / 2 */
    int c_in, c_out, h, w;
    pad_mode pad;
    int th, tw, nt;              /* tiles per sample: th x tw */
    int chunk;                   /* samples per work item */
    int trb, nblk;               /* tile rows per block, blocks per sample (1 if chunk > 1) */
    int bt;                      /* tiles of one sample in a block: trb * tw */
    int hp, ws, rl;              /* padded plane of a block: hp rows of rl = m * ws floats */
    size_t ldt;                  /* tiles per V / M row = chunk * bt */
    size_t vx, vc, mx, mc;       /* V / M strides between planes (x) and channels (c) */
    /* offsets inside a thread's scratch block */
    size_t o_v, o_m, o_du, o_pad, o_tmp, total;
} wino_plan;

/* 1 if F(m x m, r x r) is implemented. */
int wino_supported(int m, int r);

/* Plan for the stride-1 shape s (kernel r = s->kernel) with output tiles m x m. A work item is
 * either `chunk` (> 1) whole samples, or (chunk == 1) one block of `rows` tile rows of one
 * sample (rows < 1: the whole sample). Blocks of one sample overlap in the input gradient:
 * run them on one thread. */
wino_plan wino_plan_make(const conv2d_shape *s, int m, int chunk, int rows);

/* Floats of the transformed weights U (shared by all threads). */
size_t wino_u_floats(const wino_plan *P);

/* U = G g G^T for every (c_out, c_in) pair of the torch-layout weight (c_out, c_in, r, r). */
void wino_weight_transform(const wino_plan *P, const float *weight, float *u);

/* d_weight (torch layout) += G^T dU G, dU as accumulated by wino_backward. */
void wino_weight_adjoint(const wino_plan *P, const float *du, float *d_weight);

/* Forward of block `blk` (0 if chunk > 1) of `nsamp` (<= chunk) consecutive samples:
 * in (nsamp, c_in, h, w) -> out (nsamp, c_out, h, w) (+ bias if non-NULL), the block's rows.
 * tb: the thread's P->total scratch floats. */
void wino_forward(const wino_plan *P, int nsamp, int blk, float *out, const float *in,
                  const float *u, const float *bias, float *tb);

/* Backward of block `blk` of `nsamp` consecutive samples: tb + P->o_du (alpha^2 * c_out * c_in
 * floats, zeroed by the caller before the first item) += dU; d_in (nullable) += the block's
 * contribution to the input gradient. */
void wino_backward(const wino_plan *P, int nsamp, int blk, float *d_in, const float *d_out,
                   const float *in, const float *u, float *tb);

#endif
