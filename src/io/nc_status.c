/* netCDF-C status codes as smoecast errors (see nc_status.h). */
#include "io/nc_status.h"
#include "core/log.h"

#include <netcdf.h>

int nc_status_fail(const char *path, const char *what, int status)
{
    return sm_fail(SM_ERR_IO, "%s: %s: %s", path, what, nc_strerror(status));
}
