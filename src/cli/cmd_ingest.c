/* smoecast ingest: placeholder until its issue lands; the owner replaces this file. */
#include "cli/commands.h"
#include "core/log.h"

int cmd_ingest(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    return sm_fail(SM_ERR_USAGE, "'smoecast ingest' is not available in this build yet");
}
