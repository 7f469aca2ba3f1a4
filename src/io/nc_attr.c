/* Text attributes of NetCDF files (see nc_attr.h). */
#include "io/nc_attr.h"

#include <netcdf.h>
#include <stdlib.h>
#include <string.h>

char *nc_attr_text_dup(int ncid, int varid, const char *name)
{
    nc_type type;
    size_t n;
    if (nc_inq_att(ncid, varid, name, &type, &n) != NC_NOERR) return NULL;
    if (type == NC_STRING) {
        if (n != 1) return NULL;
        char *value = NULL;
        if (nc_get_att_string(ncid, varid, name, &value) != NC_NOERR) return NULL;
        char *copy = strdup(value ? value : "");
        nc_free_string(1, &value);
        return copy;
    }
    if (type != NC_CHAR) return NULL;
    char *text = malloc(n + 1);
    if (!text) return NULL;
    if (nc_get_att_text(ncid, varid, name, text) != NC_NOERR) {
        free(text);
        return NULL;
    }
    text[n] = '\0';
    return text;
}

int nc_attr_text(int ncid, int varid, const char *name, char *buf, size_t len)
{
    if (len > 0) buf[0] = '\0';
    char *text = nc_attr_text_dup(ncid, varid, name);
    if (!text) return -1;
    size_t n = strlen(text);
    if (len > 0) {
        size_t copy = n < len ? n : len - 1;
        memcpy(buf, text, copy);
        buf[copy] = '\0';
    }
    free(text);
    return n > (size_t)0x7fffffff ? 0x7fffffff : (int)n;
}
