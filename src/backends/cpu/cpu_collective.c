/* Collectives on the CPU: host buffers handed to the communicator's
 * transport (src/dist/; MPI across processes, copies in a world of one). */
#include "backends/cpu/cpu.h"
#include "dist/comm_internal.h"

/* gate (one element): whether this run reduces (ops/op_collective.c) */
static bool gate_on(const asg_step *s, const void *g) {
  switch (s->in[1].dtype) {
  case ASG_I32: return *(const int32_t *)g != 0;
  case ASG_F32: return *(const float *)g != 0;
  default: return *(const double *)g != 0;
  }
}

/* all_reduce: x [n] -> y [n], op over ranks */
static asg_status all_reduce_run(const asg_cpu_call *c) {
  const asg_step *s = c->s;
  const int64_t n = asg_shape_numel(s->out.shape);
  if (s->n_in == 2 && !gate_on(s, c->in[1])) { /* a micro-step that does not reduce */
    if (c->out != c->in[0]) memmove(c->out, c->in[0], (size_t)n * asg_dtype_size(s->out.dtype));
    return ASG_OK;
  }
  return asg__comm_allreduce(c->comm, c->in[0], c->out, n, s->out.dtype, (asg_comm_op)s->attr.i[0],
                             s->label);
}

/* broadcast: x [n] -> y [n] = root's x */
static asg_status broadcast_run(const asg_cpu_call *c) {
  const asg_step *s = c->s;
  const size_t bytes = asg__tdesc_bytes(&s->out);
  if (c->out != c->in[0]) memmove(c->out, c->in[0], bytes);
  return asg__comm_bcast(c->comm, c->out, bytes, (int)s->attr.i[0], s->label);
}

/* all_gather: x [d0, ...] -> y [world d0, ...] */
static asg_status all_gather_run(const asg_cpu_call *c) {
  const asg_step *s = c->s;
  return asg__comm_allgather(c->comm, c->in[0], c->out, asg__tdesc_bytes(&s->in[0]), s->label);
}

/* reduce_scatter: x [world d0, ...] -> y [d0, ...] = block rank of the reduction */
static asg_status reduce_scatter_run(const asg_cpu_call *c) {
  const asg_step *s = c->s;
  return asg__comm_reduce_scatter(c->comm, c->in[0], c->out, asg_shape_numel(s->out.shape),
                                  s->out.dtype, (asg_comm_op)s->attr.i[1], s->label);
}

void asg_cpu_register_collective(asg_cpu_kernel *t) {
  t[ASG_OP_ALL_REDUCE].run = all_reduce_run;
  t[ASG_OP_BROADCAST].run = broadcast_run;
  t[ASG_OP_ALL_GATHER].run = all_gather_run;
  t[ASG_OP_REDUCE_SCATTER].run = reduce_scatter_run;
}
