/* Streaming GRIB1/GRIB2 reader over ecCodes: one field at a time (multi-field messages are split
 * with codes_grib_multi_support_on), metadata without decoding for the index pass, values on
 * demand. Values are canonicalised for every scanning mode (iScansNegatively, jScansPositively,
 * jPointsAreConsecutive, alternativeRowScanning) so they come out row after row, each row
 * west -> east, rows in the file's latitude order; missing points (bitmap / missingValue) are NaN.
 * Grids: regular_ll, regular_gg, reduced_gg (incl. octahedral) and reduced_ll (global rows). */
#ifndef SMOECAST_IO_GRIB_READER_H
#define SMOECAST_IO_GRIB_READER_H

#include "io/field.h"

typedef struct grib_reader grib_reader;

/* Opens `path`; SM_ERR_IO for a missing, unreadable or empty file. */
int grib_reader_open(const char *path, grib_reader **out);
/* Advances to the next field and fills `meta`. *done = 1 (and SM_OK) at the end of the file.
 * A broken or truncated message returns SM_ERR_IO naming the file and message number; the
 * reader stays usable, so a caller may log it and call again to skip it. A file that holds no
 * GRIB message at all fails on the first call. */
int grib_reader_next(grib_reader *r, field_meta *meta, int *done);
/* Decodes the current field: *values (owned by the reader, valid until the next call) in the
 * canonical layout of *geom (owned by the reader, valid until the next call). Only this decodes the
 * values: callers select on the metadata of grib_reader_next first. */
int grib_reader_decode(grib_reader *r, const double **values, const src_geometry **geom);
/* Geometry of the current field without decoding its values. */
int grib_reader_geometry(grib_reader *r, const src_geometry **geom);
/* 1 when the last grib_reader_next error was one broken message that can be skipped, 0 when the
 * file cannot be read further (no GRIB message at all). */
int grib_reader_recoverable(const grib_reader *r);
/* The reader caches what is expensive to evaluate in ecCodes (concepts such as paramId, shortName,
 * name, units, typeOfLevel and packingType; the GRIB1 forecast period; which optional keys a message
 * layout has; the geometry of each distinct grid section), each keyed on the raw keys or bytes it
 * derives from. 0 turns every cache off (for tests that compare both ways). */
void grib_reader_set_cache(grib_reader *r, int on);
/* What grib_reader_next evaluates of the concepts (each costs ecCodes more than decoding a small
 * field, and a file with many parameters has a new set for almost every field):
 * GRIB_DESCRIBE_ALL (default) everything; GRIB_DESCRIBE_IDS paramId and shortName;
 * GRIB_DESCRIBE_PARAM_ID only paramId (short_name ""); GRIB_DESCRIBE_SHORT_NAME only shortName
 * (param_id 0, standard_name ""). The rest (name, units, type_of_level; standard_name) stays empty
 * until grib_reader_describe fills all of them for the current field, for a caller that keeps it. */
enum { GRIB_DESCRIBE_ALL = 0, GRIB_DESCRIBE_IDS = 1, GRIB_DESCRIBE_PARAM_ID = 2, GRIB_DESCRIBE_SHORT_NAME = 3 };
void grib_reader_set_lazy(grib_reader *r, int mode);
int grib_reader_describe(grib_reader *r, field_meta *meta);
const char *grib_reader_path(const grib_reader *r);
void grib_reader_close(grib_reader *r);

/* 1 when the file starts with "GRIB" (after any leading bytes ecCodes would also skip is not
 * checked: this is only the cheap format sniff used to choose a reader). */
int grib_file_looks_like_grib(const char *path);

#endif
