/* Gradient allreduce overlapped with backward (see core/dist.h); built with and without MPI. */
#include "core/dist.h"
#include "core/log.h"

void dist_grad_sync_begin(dist_grad_sync *s, float *grad, size_t n, float weight, size_t min_chunk)
{
    s->grad = grad;
    s->n = n;
    s->hi = n;
    s->min_chunk = min_chunk > 0 ? min_chunk : 1;
    s->weight = weight;
    s->status = SM_OK;
    s->chunks = 0;
}

static int start(dist_grad_sync *s, size_t first)
{
    if (s->weight != 1.0f)
        for (size_t k = first; k < s->hi; k++) s->grad[k] *= s->weight;
    int st = dist_iallreduce_sum_f(s->grad + first, s->hi - first);
    s->hi = first;
    s->chunks++;
    return st;
}

int dist_grad_sync_ready(size_t first, void *arg)
{
    dist_grad_sync *s = arg;
    if (s->status) return s->status;
    if (first < s->hi && s->hi - first >= s->min_chunk && s->chunks < DIST_MAX_PENDING - 1)
        s->status = start(s, first);
    else
        s->status = dist_progress();
    return s->status;
}

int dist_grad_sync_finish(dist_grad_sync *s)
{
    if (!s->status && s->hi > 0) s->status = start(s, 0);
    int st = dist_wait_all();
    return s->status ? s->status : st;
}
