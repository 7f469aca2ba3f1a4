/* Temporary-file registry and signal handling for atomic outputs. The registry is the one
 * piece of process-wide state besides logging: a signal handler has no other way to find it. */
#include "core/outfile.h"
#include "core/log.h"

#include <errno.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define OUTFILE_MAX_ACTIVE 64

static char g_registry[OUTFILE_MAX_ACTIVE][PATH_MAX];
static volatile sig_atomic_t g_registered[OUTFILE_MAX_ACTIVE];
static volatile sig_atomic_t g_interrupts;
static unsigned g_counter;

static void registry_add(const char *tmp)
{
    for (int i = 0; i < OUTFILE_MAX_ACTIVE; i++) {
        if (g_registered[i]) continue;
        snprintf(g_registry[i], PATH_MAX, "%s", tmp);
        g_registered[i] = 1;
        return;
    }
}

static void registry_remove(const char *tmp)
{
    for (int i = 0; i < OUTFILE_MAX_ACTIVE; i++)
        if (g_registered[i] && strcmp(g_registry[i], tmp) == 0) g_registered[i] = 0;
}

void outfile_cleanup_all(void)
{
    for (int i = 0; i < OUTFILE_MAX_ACTIVE; i++) {
        if (!g_registered[i]) continue;
        unlink(g_registry[i]);
        g_registered[i] = 0;
    }
}

int outfile_begin(outfile *out, const char *path)
{
    memset(out, 0, sizeof *out);
    if (snprintf(out->final_path, PATH_MAX, "%s", path) >= PATH_MAX)
        return sm_fail(SM_ERR_IO, "%s: output path too long", path);
    char dir_buf[PATH_MAX], base_buf[PATH_MAX];
    snprintf(dir_buf, PATH_MAX, "%s", path);
    snprintf(base_buf, PATH_MAX, "%s", path);
    const char *dir = dirname(dir_buf);
    const char *base = basename(base_buf);
    if (access(dir, F_OK) != 0)
        return sm_fail(SM_ERR_IO, "%s: output directory '%s' does not exist (create it first)", path, dir);
    if (access(dir, W_OK) != 0)
        return sm_fail(SM_ERR_IO, "%s: output directory '%s' is not writable", path, dir);
    if (snprintf(out->tmp_path, PATH_MAX, "%s/.%s.tmp.%ld.%u", dir, base, (long)getpid(), g_counter++) >= PATH_MAX)
        return sm_fail(SM_ERR_IO, "%s: output path too long", path);
    registry_add(out->tmp_path);
    out->active = 1;
    return SM_OK;
}

int outfile_make_dirs(const char *path)
{
    char buf[PATH_MAX];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
        return sm_fail(SM_ERR_IO, "%s: directory name too long", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST) return sm_fail(SM_ERR_IO, "%s: cannot create directory: %s", buf, strerror(errno));
        *p = '/';
    }
    if (mkdir(buf, 0755) != 0 && errno != EEXIST) return sm_fail(SM_ERR_IO, "%s: cannot create directory: %s", buf, strerror(errno));
    return SM_OK;
}

int outfile_commit(outfile *out)
{
    if (!out->active) return sm_fail(SM_ERR_IO, "%s: output was not started", out->final_path);
    if (rename(out->tmp_path, out->final_path) != 0) {
        int err = errno;
        outfile_abort(out);
        return sm_fail(SM_ERR_IO, "%s: cannot move the finished output into place: %s", out->final_path, strerror(err));
    }
    registry_remove(out->tmp_path);
    out->active = 0;
    return SM_OK;
}

void outfile_abort(outfile *out)
{
    if (!out->active) return;
    unlink(out->tmp_path);
    registry_remove(out->tmp_path);
    out->active = 0;
}

static void on_signal(int sig)
{
    (void)sig;
    if (g_interrupts++ > 0) {
        outfile_cleanup_all();
        _exit(SM_ERR_INTERRUPTED);
    }
}

void interrupt_install(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

int sm_interrupted(void) { return g_interrupts > 0; }
