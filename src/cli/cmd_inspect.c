/* smoecast inspect: placeholder until its issue lands; the owner replaces this file. */
#include "cli/commands.h"
#include "core/log.h"

int cmd_inspect(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    return sm_fail(SM_ERR_USAGE, "'smoecast inspect' is not available in this build yet");
}
