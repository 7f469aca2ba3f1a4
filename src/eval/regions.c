/* Region masks (latitude bands, land/sea) for scores; see regions.h. */
#include "eval/regions.h"

#include "core/log.h"

#include <math.h>
#include <string.h>

static const char *const k_names[EVAL_REGION_COUNT] = {
    "global", "tropics", "nh_extratropics", "sh_extratropics", "extratropics",
    "nh_polar", "sh_polar", "polar", "land", "sea"};

const char *eval_region_name(eval_region r)
{
    return (r >= 0 && r < EVAL_REGION_COUNT) ? k_names[r] : "unknown";
}

int eval_region_from_name(const char *name)
{
    for (int r = 0; r < EVAL_REGION_COUNT; r++)
        if (strcmp(name, k_names[r]) == 0) return r;
    return -1;
}

void eval_mask_lat_band(const double *lat, int h, int w, double lat_min, double lat_max,
                        uint8_t *mask)
{
    for (int i = 0; i < h; i++) {
        uint8_t in = lat[i] >= lat_min && lat[i] < lat_max;
        memset(mask + (size_t)i * w, in, (size_t)w);
    }
}

void eval_mask_landsea(const float *lsm, int h, int w, double threshold, int land, uint8_t *mask)
{
    size_t n = (size_t)h * w;
    for (size_t k = 0; k < n; k++) {
        if (isnan(lsm[k])) mask[k] = 0;
        else mask[k] = land ? (lsm[k] >= threshold) : (lsm[k] < threshold);
    }
}

static void mask_abs_band(const double *lat, int h, int w, double lo, double hi, uint8_t *mask)
{
    for (int i = 0; i < h; i++) {
        double a = fabs(lat[i]);
        uint8_t in = a >= lo && a < hi;
        memset(mask + (size_t)i * w, in, (size_t)w);
    }
}

int eval_region_mask(eval_region r, const double *lat, const float *lsm, int h, int w,
                     uint8_t *mask)
{
    const double T = EVAL_TROPICS_LAT, P = EVAL_POLAR_LAT;
    switch (r) {
    case EVAL_REGION_GLOBAL: memset(mask, 1, (size_t)h * w); return SM_OK;
    case EVAL_REGION_TROPICS: mask_abs_band(lat, h, w, 0.0, T, mask); return SM_OK;
    case EVAL_REGION_EXTRATROPICS: mask_abs_band(lat, h, w, T, P, mask); return SM_OK;
    case EVAL_REGION_POLAR: mask_abs_band(lat, h, w, P, INFINITY, mask); return SM_OK;
    case EVAL_REGION_NH_EXTRATROPICS: eval_mask_lat_band(lat, h, w, T, P, mask); return SM_OK;
    case EVAL_REGION_NH_POLAR: eval_mask_lat_band(lat, h, w, P, INFINITY, mask); return SM_OK;
    case EVAL_REGION_SH_EXTRATROPICS:
    case EVAL_REGION_SH_POLAR:
        for (int i = 0; i < h; i++) {
            uint8_t in = r == EVAL_REGION_SH_POLAR ? lat[i] <= -P : (lat[i] <= -T && lat[i] > -P);
            memset(mask + (size_t)i * w, in, (size_t)w);
        }
        return SM_OK;
    case EVAL_REGION_LAND:
    case EVAL_REGION_SEA:
        if (!lsm)
            return sm_fail(SM_ERR_USAGE, "region '%s': needs a land-sea mask field; add one to the "
                           "dataset or drop the region", eval_region_name(r));
        eval_mask_landsea(lsm, h, w, 0.5, r == EVAL_REGION_LAND, mask);
        return SM_OK;
    default: break;
    }
    return sm_fail(SM_ERR_USAGE, "region %d: unknown region id", (int)r);
}

long eval_mask_count(const uint8_t *mask, int h, int w)
{
    long c = 0;
    size_t n = (size_t)h * w;
    for (size_t k = 0; k < n; k++) c += mask[k] != 0;
    return c;
}
