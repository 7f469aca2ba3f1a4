/* Parameter store: named tensors carved out of one data and one grad allocation. */
#include "nn/params.h"

#include "core/log.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct param_store {
    param_view *views;
    int count, cap;
    size_t size;        /* floats in each flat buffer, padding included */
    float *data, *grad;
    int finalized;
};

param_store *param_store_create(void)
{
    return calloc(1, sizeof(param_store));
}

void param_store_free(param_store *store)
{
    if (!store) return;
    for (int i = 0; i < store->count; i++) free((char *)store->views[i].name);
    free(store->views);
    free(store->data);
    free(store->grad);
    free(store);
}

int param_store_find(const param_store *store, const char *name)
{
    if (!store || !name) return -1;
    for (int i = 0; i < store->count; i++)
        if (strcmp(store->views[i].name, name) == 0) return i;
    return -1;
}

int param_store_declare(param_store *store, const char *name, int ndim, const int *shape,
                        unsigned flags)
{
    if (!store) return -1;
    if (!name || !name[0] || strlen(name) >= PARAM_NAME_MAX) {
        sm_fail(SM_ERR_USAGE, "param_store: tensor %d: name empty or longer than %d characters",
                store->count, PARAM_NAME_MAX - 1);
        return -1;
    }
    if (store->finalized) {
        sm_fail(SM_ERR_USAGE, "param_store: tensor '%s': declared after finalize; declare all "
                "tensors first", name);
        return -1;
    }
    if (ndim < 0 || ndim > PARAM_MAX_DIMS || (ndim > 0 && !shape)) {
        sm_fail(SM_ERR_USAGE, "param_store: tensor '%s': ndim %d not in 0..%d", name, ndim,
                PARAM_MAX_DIMS);
        return -1;
    }
    if (flags & ~(unsigned)(PARAM_DECAY | PARAM_TRAINABLE | PARAM_GATE)) {
        sm_fail(SM_ERR_USAGE, "param_store: tensor '%s': unknown flags 0x%x", name, flags);
        return -1;
    }
    if (param_store_find(store, name) >= 0) {
        sm_fail(SM_ERR_USAGE, "param_store: tensor '%s': declared twice", name);
        return -1;
    }
    size_t numel = 1;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] <= 0) {
            sm_fail(SM_ERR_USAGE, "param_store: tensor '%s': dimension %d has size %d (must be "
                    "positive)", name, d, shape[d]);
            return -1;
        }
        numel *= (size_t)shape[d];
    }
    if (store->count == store->cap) {
        int cap = store->cap ? 2 * store->cap : 32;
        param_view *v = realloc(store->views, (size_t)cap * sizeof *v);
        if (!v) {
            sm_fail(SM_ERR_NUMERIC, "param_store: tensor '%s': out of memory", name);
            return -1;
        }
        store->views = v;
        store->cap = cap;
    }
    char *copy = malloc(strlen(name) + 1);
    if (!copy) {
        sm_fail(SM_ERR_NUMERIC, "param_store: tensor '%s': out of memory", name);
        return -1;
    }
    strcpy(copy, name);
    param_view *v = &store->views[store->count];
    memset(v, 0, sizeof *v);
    v->name = copy;
    v->ndim = ndim;
    for (int d = 0; d < PARAM_MAX_DIMS; d++) v->shape[d] = d < ndim ? shape[d] : 1;
    v->numel = numel;
    v->offset = store->size;
    v->flags = flags;
    store->size += (numel + PARAM_ALIGN - 1) / PARAM_ALIGN * PARAM_ALIGN;
    return store->count++;
}

static float *alloc_floats(size_t n)
{
    size_t bytes = (n ? n : PARAM_ALIGN) * sizeof(float); /* a multiple of 64 */
    float *p = aligned_alloc(64, bytes);
    if (p) memset(p, 0, bytes);
    return p;
}

int param_store_finalize(param_store *store)
{
    if (!store) return sm_fail(SM_ERR_USAGE, "param_store: finalize of a NULL store");
    if (store->finalized)
        return sm_fail(SM_ERR_USAGE, "param_store: finalize called twice");
    store->data = alloc_floats(store->size);
    store->grad = alloc_floats(store->size);
    if (!store->data || !store->grad) {
        free(store->data);
        free(store->grad);
        store->data = store->grad = NULL;
        return sm_fail(SM_ERR_NUMERIC, "param_store: out of memory allocating %zu parameters",
                       store->size);
    }
    store->finalized = 1;
    return SM_OK;
}

int param_store_is_finalized(const param_store *store)
{
    return store && store->finalized;
}

int param_store_count(const param_store *store)
{
    return store ? store->count : 0;
}

const param_view *param_store_view(const param_store *store, int id)
{
    if (!store || id < 0 || id >= store->count) return NULL;
    return &store->views[id];
}

size_t param_store_size(const param_store *store)
{
    return store ? store->size : 0;
}

size_t param_store_numel(const param_store *store, int only_trainable)
{
    size_t n = 0;
    for (int i = 0; store && i < store->count; i++)
        if (!only_trainable || (store->views[i].flags & PARAM_TRAINABLE)) n += store->views[i].numel;
    return n;
}

float *param_data(param_store *store, int id)
{
    if (!store || !store->finalized || id < 0 || id >= store->count) return NULL;
    return store->data + store->views[id].offset;
}

float *param_grad(param_store *store, int id)
{
    if (!store || !store->finalized || id < 0 || id >= store->count) return NULL;
    return store->grad + store->views[id].offset;
}

float *param_store_data_all(param_store *store)
{
    return store && store->finalized ? store->data : NULL;
}

float *param_store_grad_all(param_store *store)
{
    return store && store->finalized ? store->grad : NULL;
}

void param_store_zero_grad(param_store *store)
{
    if (store && store->finalized) memset(store->grad, 0, store->size * sizeof(float));
}

int param_store_all_finite(const param_store *store, int which, int *first_bad)
{
    if (!store || !store->finalized) return 1;
    const float *buf = which ? store->grad : store->data;
    for (int i = 0; i < store->count; i++) {
        const float *p = buf + store->views[i].offset;
        for (size_t k = 0; k < store->views[i].numel; k++) {
            if (!isfinite(p[k])) {
                if (first_bad) *first_bad = i;
                return 0;
            }
        }
    }
    return 1;
}
