/* Thread count for the neural-network layers: one call sets both the OpenMP team size (used
 * by the elementwise / im2col / normalisation loops) and the OpenBLAS thread count (used by
 * every cblas_sgemm in conv2d, conv_transpose and dense).
 *
 * Determinism: every nn layer gives bit-identical results for a fixed thread count. OpenMP
 * loops use static schedules and each thread owns disjoint output elements (no atomics, no
 * cross-thread reductions); OpenBLAS sgemm partitions M/N, not K, for a fixed thread count.
 * conv2d splits samples across threads with private weight-gradient buffers summed in thread
 * order, so its workspace (conv2d_workspace_floats) grows with the thread count: call
 * nn_set_threads before planning workspaces, and never raise the count afterwards. */
#ifndef SMOECAST_NN_THREADS_H
#define SMOECAST_NN_THREADS_H

/* n > 0: use n threads. n == 0: OMP_NUM_THREADS if set (> 0), else all online cores.
 * Returns the number of threads now in use. */
int nn_set_threads(int n);
/* Current thread count (what the last nn_set_threads chose, or the OpenMP default). */
int nn_get_threads(void);

#endif
