/* smoecast inspect: command-line front end of tasks/inspect.h. */
#include "cli/commands.h"
#include "core/log.h"
#include "tasks/inspect.h"

#include <getopt.h>
#include <stdio.h>

static void usage(FILE *out)
{
    fprintf(out,
            "usage: smoecast inspect FILE...\n"
            "\n"
            "Prints a one-screen summary of each GRIB1/GRIB2 file, NetCDF file or smoecast dataset:\n"
            "variables (paramId, shortName, units, levels), grid type and size, latitude/longitude range\n"
            "and direction, time range and step, ensemble members, missing fraction and packing. Broken\n"
            "GRIB messages are listed with their message number.\n"
            "\n"
            "options:\n"
            "  -h, --help   this help\n"
            "\n"
            "Exit codes: 0 ok, 1 usage error, 2 a file could not be read (the others are still shown).\n"
            "\n"
            "example:\n"
            "  smoecast inspect era5-2mt-2019-03-uk.grib dataset.nc\n");
}

int cmd_inspect(int argc, char **argv)
{
    static const struct option longopts[] = {{"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    int ch;
    optind = 1;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        if (ch == 'h') {
            usage(stdout);
            return SM_OK;
        }
        return sm_fail(SM_ERR_USAGE, "inspect: unknown option '%s' (see 'smoecast inspect --help')", argv[optind - 1]);
    }
    if (optind >= argc) return sm_fail(SM_ERR_USAGE, "inspect: no files given (see 'smoecast inspect --help')");
    int status = SM_OK;
    char first_error[1024] = "";
    for (int i = optind; i < argc; i++) {
        sm_clear_error();
        int st = inspect_file(argv[i], stdout);
        fflush(stdout);
        if (st) {
            if (!first_error[0]) snprintf(first_error, sizeof first_error, "%s", sm_last_error());
            if (argc - optind > 1) log_error("%s", sm_last_error());
            if (!status) status = st;
        }
    }
    if (status) sm_fail(status, "%s", first_error);
    return status;
}
