/* The smoecast commands. Each lives in src/cli/cmd_<name>.c and receives argv with argv[0] set
 * to the command name; it returns an sm_status that main() turns into the exit code. */
#ifndef SMOECAST_CLI_COMMANDS_H
#define SMOECAST_CLI_COMMANDS_H

typedef int (*command_fn)(int argc, char **argv);

typedef struct {
    const char *name;
    command_fn run;
    const char *summary;
} command;

int cmd_synth(int argc, char **argv);
int cmd_ingest(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_forecast(int argc, char **argv);
int cmd_evaluate(int argc, char **argv);
int cmd_postprocess(int argc, char **argv);
int cmd_experts(int argc, char **argv);
int cmd_plot(int argc, char **argv);
int cmd_config(int argc, char **argv);

extern const command smoecast_commands[];
extern const int smoecast_n_commands;

#endif
