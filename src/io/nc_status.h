/* netCDF-C status codes as smoecast errors: one message shape for every NetCDF file the code
 * reads or writes ("<path>: <what>: <nc_strerror>"), so users see the same wording everywhere. */
#ifndef SMOECAST_IO_NC_STATUS_H
#define SMOECAST_IO_NC_STATUS_H

/* sm_fail(SM_ERR_IO, "<path>: <what>: <nc_strerror(status)>"); returns SM_ERR_IO. */
int nc_status_fail(const char *path, const char *what, int status);

#endif
