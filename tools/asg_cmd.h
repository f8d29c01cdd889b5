/* The `asg` commands that live outside tools/asg.c. Each takes its own
 * argv (argv[0] is the command's name) and returns the exit code. */
#ifndef ASG_TOOLS_CMD_H
#define ASG_TOOLS_CMD_H

int asg_cmd_graph(int argc, char **argv);   /* tools/asg_graph.c */
int asg_cmd_inspect(int argc, char **argv); /* tools/asg_inspect.c */
int asg_cmd_profile(int argc, char **argv); /* tools/asg_profile.c */

#endif
