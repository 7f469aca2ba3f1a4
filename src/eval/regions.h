/* Region masks for scores (H*W bytes, 1 = inside): latitude bands and land/sea. Masks follow
 * the grid's point order (grid.h: latitude rows, longitude columns). Bands use |lat| limits:
 *   tropics            |lat| <  23.5
 *   nh_extratropics    23.5 <= lat  <  66.5      sh_extratropics   -66.5 < lat <= -23.5
 *   nh_polar           lat  >= 66.5              sh_polar           lat <= -66.5
 *   extratropics       23.5 <= |lat| < 66.5      polar             |lat| >= 66.5
 * land: land-sea mask value >= 0.5 (fraction or 0/1 field); sea: < 0.5; NaN is neither. */
#ifndef SMOECAST_EVAL_REGIONS_H
#define SMOECAST_EVAL_REGIONS_H

#include <stdint.h>

typedef enum {
    EVAL_REGION_GLOBAL = 0,
    EVAL_REGION_TROPICS,
    EVAL_REGION_NH_EXTRATROPICS,
    EVAL_REGION_SH_EXTRATROPICS,
    EVAL_REGION_EXTRATROPICS,
    EVAL_REGION_NH_POLAR,
    EVAL_REGION_SH_POLAR,
    EVAL_REGION_POLAR,
    EVAL_REGION_LAND,
    EVAL_REGION_SEA,
    EVAL_REGION_COUNT
} eval_region;

#define EVAL_TROPICS_LAT 23.5
#define EVAL_POLAR_LAT 66.5

/* Region name as written on the scores NetCDF `region` coordinate ("global", "tropics",
 * "nh_extratropics", ..., "land", "sea"); eval_region_from_name returns -1 when unknown. */
const char *eval_region_name(eval_region r);
int eval_region_from_name(const char *name);

/* 1 where lat_min <= lat < lat_max (degrees), for every longitude. lat has h entries. */
void eval_mask_lat_band(const double *lat, int h, int w, double lat_min, double lat_max,
                        uint8_t *mask);
/* 1 where the land-sea mask lsm (H*W) is >= threshold (land = 1) or < threshold (land = 0). */
void eval_mask_landsea(const float *lsm, int h, int w, double threshold, int land, uint8_t *mask);
/* Any region by id. lsm may be NULL for latitude regions; the land/sea regions then fail with
 * SM_ERR_USAGE (message names the region). Returns SM_OK or an sm_status. */
int eval_region_mask(eval_region r, const double *lat, const float *lsm, int h, int w,
                     uint8_t *mask);
/* Number of nonzero entries. */
long eval_mask_count(const uint8_t *mask, int h, int w);

#endif
