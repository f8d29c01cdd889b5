/* Uses the installed library: y = 2x + 1 on [3], checks the values. */
#include <stdio.h>

#include <asg/asg.h>

int main(void) {
  asg_graph *g = asg_graph_new();
  asg_tensor *x = asg_input(g, "x", ASG_F32, ASG_SHAPE(3));
  asg_tensor *y = asg_add_scalar(asg_mul_scalar(x, 2), 1);
  asg_program *p = asg_compile(g, 1, &y, NULL);
  float in[3] = {1, 2, 3}, out[3];
  if (!p || asg_program_feed(p, "x", in, sizeof in) || asg_program_run(p) ||
      asg_program_fetch(p, y, out, sizeof out)) {
    fprintf(stderr, "consumer: %s\n", asg_last_error());
    return 1;
  }
  printf("asg %s: %g %g %g\n", ASG_VERSION_STRING, out[0], out[1], out[2]);
  asg_program_free(p);
  asg_graph_free(g);
  return out[0] == 3 && out[1] == 5 && out[2] == 7 ? 0 : 1;
}
