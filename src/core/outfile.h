/* Atomic outputs and interruption. Every file smoecast writes goes to a temporary name in the
 * target directory and is renamed into place only when complete, so a failure or SIGINT never
 * leaves a half-written output. Temporary names are registered so that an interrupt removes them. */
#ifndef SMOECAST_CORE_OUTFILE_H
#define SMOECAST_CORE_OUTFILE_H

#include <limits.h>

typedef struct {
    char final_path[PATH_MAX];
    char tmp_path[PATH_MAX];
    int active;
} outfile;

/* Checks that the directory of `path` exists and is writable (SM_ERR_IO otherwise) and picks a
 * temporary name "<dir>/.<name>.tmp.<pid>.<n>" that the caller writes to. */
int outfile_begin(outfile *out, const char *path);
int outfile_commit(outfile *out);  /* rename over the final path */
/* mkdir -p: creates `path` and its missing parents (mode 0755); SM_ERR_IO naming the part that failed. */
int outfile_make_dirs(const char *path);
void outfile_abort(outfile *out);  /* remove the temporary file; safe to call twice */

/* SIGINT/SIGTERM: the first signal sets a flag that long loops poll with sm_interrupted() and
 * then return SM_ERR_INTERRUPTED after cleaning up; a second signal removes every registered
 * temporary file and exits with 130 at once. */
void interrupt_install(void);
int sm_interrupted(void);
void outfile_cleanup_all(void);

#endif
