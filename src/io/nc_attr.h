/* Text attributes of NetCDF files, read one way everywhere: classic NC_CHAR attributes and
 * NetCDF-4 string attributes (NC_STRING, one value; what h5netcdf and some xarray versions
 * write) are both text, and trailing NUL bytes (C writers that count the terminator) are
 * dropped. Pass NC_GLOBAL as varid for a file or group attribute. */
#ifndef SMOECAST_IO_NC_ATTR_H
#define SMOECAST_IO_NC_ATTR_H

#include <stddef.h>

/* Copies attribute `name` of variable varid into buf like snprintf: at most len - 1
 * characters and a NUL. Returns the attribute's full length (>= len: it was truncated), or -1
 * when it is absent or not text (buf is then ""). */
int nc_attr_text(int ncid, int varid, const char *name, char *buf, size_t len);

/* The attribute as a malloc'ed string (free() it), or NULL when absent, not text, or out of
 * memory. */
char *nc_attr_text_dup(int ncid, int varid, const char *name);

#endif
