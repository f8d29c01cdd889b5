/* Parity cases: the collective ops on a communicator of this process alone
 * (a world of one), every dtype including the 16-bit storage ones. */
#include "parity.h"

/* ------------------------------------------------------------ collectives
 * On g_comm, a world of one, every collective is an identity or a copy:
 * all_reduce (sum, mean, max, min) and broadcast from rank 0 give x, and so
 * do all_gather and reduce_scatter built for a world of 1. Outputs must
 * match exactly, and the CPU's must also hold the fed input's bytes;
 * gradients (all_reduce sum/mean -> all_reduce, all_gather <->
 * reduce_scatter) are compared with the CPU's as usual. 16-bit storage
 * dtypes, which the harness cannot feed: case_coll_half. */
static void coll_out(pcase *pc, asg_tensor *y, const char *label, int in) {
  pc_out(pc, y, label);
  pc->out_same[pc->n_out - 1] = in + 1;
}

void cases_collective(void) {
  const asg_shape shapes[3] = {ASG_SHAPE(37, 5), ASG_SHAPE(1), ASG_SHAPE(3, 7, 11)};
  const asg_dtype dts[4] = {ASG_F32, ASG_F64, ASG_I32, ASG_I64};
  for (int d = 0; d < 4; d++)
    for (int k = 0; k < 3; k++) {
      const asg_dtype dt = dts[d];
      const asg_shape s = shapes[k];
      const bool fl = asg_dtype_is_float(dt); /* means need floats */
      pcase pc;
      pc_begin(&pc, C_EXACT, "all_reduce sum%s, all_gather, reduce_scatter sum%s (world 1) %s %s",
               fl ? "/mean" : "", fl ? "/mean" : "", dtn(dt), shp(s));
      pc.coll = true;
      asg_tensor *x = pc_in(&pc, dt, s, -50, 50);
      coll_out(&pc, asg_all_reduce(x, ASG_COMM_SUM), "all_reduce sum", 0);
      if (fl) coll_out(&pc, asg_all_reduce(x, ASG_COMM_MEAN), "all_reduce mean", 0);
      coll_out(&pc, asg_all_gather(x, 1), "all_gather", 0);
      coll_out(&pc, asg_reduce_scatter(x, 1, ASG_COMM_SUM), "reduce_scatter sum", 0);
      if (fl) coll_out(&pc, asg_reduce_scatter(x, 1, ASG_COMM_MEAN), "reduce_scatter mean", 0);
      pc_finish(&pc);

      pc_begin(&pc, C_EXACT, "all_reduce max/min, broadcast from rank 0 (world 1) %s %s", dtn(dt),
               shp(s));
      pc.coll = true;
      pc.no_grad = true; /* none of them has a gradient */
      x = pc_in(&pc, dt, s, -50, 50);
      coll_out(&pc, asg_all_reduce(x, ASG_COMM_MAX), "all_reduce max", 0);
      coll_out(&pc, asg_all_reduce(x, ASG_COMM_MIN), "all_reduce min", 0);
      coll_out(&pc, asg_broadcast(x, 0), "broadcast", 0);
      pc_finish(&pc);
    }
  /* multi-block sizes */
  asg_shape big = ASG_SHAPE(70001);
  pcase pc;
  pc_begin(&pc, C_EXACT,
           "all_reduce sum/max, broadcast, all_gather, reduce_scatter (world 1) f32 %s", shp(big));
  pc.coll = true;
  pc.no_grad = true;
  asg_tensor *x = pc_in(&pc, ASG_F32, big, -2, 2);
  coll_out(&pc, asg_all_reduce(x, ASG_COMM_SUM), "all_reduce sum", 0);
  coll_out(&pc, asg_all_reduce(x, ASG_COMM_MAX), "all_reduce max", 0);
  coll_out(&pc, asg_broadcast(x, 0), "broadcast", 0);
  coll_out(&pc, asg_all_gather(x, 1), "all_gather", 0);
  coll_out(&pc, asg_reduce_scatter(x, 1, ASG_COMM_MEAN), "reduce_scatter mean", 0);
  pc_finish(&pc);
  /* collectives between other ops (scheduled and memory-planned like any
   * op), read twice, and their gradients through the chain */
  for (int d = 0; d < 2; d++) {
    asg_shape s = ASG_SHAPE(6, 13);
    pc_begin(&pc, C_ELEM,
             "relu(all_reduce mean(2x)) * all_gather(x) + reduce_scatter(x - 1) (world 1) %s %s",
             dtn(FDT[d]), shp(s));
    pc.coll = true;
    x = pc_in(&pc, FDT[d], s, -2, 2);
    asg_tensor *a = mark(asg_all_reduce(asg_mul_scalar(x, 2), ASG_COMM_MEAN));
    asg_tensor *g = mark(asg_all_gather(x, 1));
    asg_tensor *r = mark(asg_reduce_scatter(asg_add_scalar(x, -1), 1, ASG_COMM_SUM));
    pc_out(&pc, asg_add(asg_mul(asg_relu(a), g), r), "y");
    pc_out(&pc, a, "all_reduce");
    pc_finish(&pc);
  }
}

/* The collectives on 16-bit storage dtypes (fed as raw bits, which the
 * pcase harness cannot do): in a world of one every output is the input,
 * bit for bit, on the CPU and on the backend under test. */
void case_coll_half(asg_dtype dt) {
  enum { R = 19, C = 7, NY = 8 };
  char title[200];
  snprintf(title, sizeof title,
           "all_reduce sum/mean/max/min, broadcast, all_gather, reduce_scatter sum/mean "
           "(world 1) %s [19,7]: copies of the input",
           dtn(dt));
  g_cur_case = title;
  asg_graph *g = asg_graph_new();
  asg_tensor *x = mark(asg_input(g, "x", dt, ASG_SHAPE(R, C)));
  asg_tensor *y[NY] = {asg_all_reduce(x, ASG_COMM_SUM),
                       asg_all_reduce(x, ASG_COMM_MEAN),
                       asg_all_reduce(x, ASG_COMM_MAX),
                       asg_all_reduce(x, ASG_COMM_MIN),
                       asg_broadcast(x, 0),
                       asg_all_gather(x, 1),
                       asg_reduce_scatter(x, 1, ASG_COMM_SUM),
                       asg_reduce_scatter(x, 1, ASG_COMM_MEAN)};
  double *v = rv(R * C, -4, 4, false);
  uint16_t bits[R * C], got[R * C];
  for (int i = 0; i < R * C; i++)
    bits[i] = dt == ASG_BF16 ? asg_f32_to_bf16((float)v[i]) : asg_f32_to_f16((float)v[i]);
  free(v);
  char msg[512] = "";
  int ok = 1;
  for (int k = 0; k < NY && ok; k++)
    if (!mark(y[k])) snprintf(msg, sizeof msg, "build: %s", asg_graph_error(g)), ok = 0;
  asg_program *p[2] = {NULL, NULL};
  const char *be[2] = {"cpu", g_backend};
  for (int b = 0; b < 2 && ok; b++) {
    p[b] = compile_on(g, NY, y, be[b], b ? dut_threads() : 0, false, g_comm, b == 0);
    if (!p[b]) {
      snprintf(msg, sizeof msg, "compile on %s: %s", be[b], asg_last_error()), ok = 0;
    } else if (asg_program_feed(p[b], "x", bits, sizeof bits) != ASG_OK ||
               asg_program_run(p[b]) != ASG_OK) {
      snprintf(msg, sizeof msg, "feed/run on %s: %s", be[b], asg_last_error()), ok = 0;
    }
    for (int k = 0; k < NY && ok; k++) {
      memset(got, 0xff, sizeof got);
      if (asg_program_fetch(p[b], y[k], got, sizeof got) != ASG_OK)
        snprintf(msg, sizeof msg, "fetch %s from %s: %s", asg_tensor_op_name(y[k]), be[b],
                 asg_last_error()),
            ok = 0;
      else if (memcmp(got, bits, sizeof bits) != 0)
        snprintf(msg, sizeof msg, "output %d (%s) on %s: not the input's bits", k,
                 asg_tensor_op_name(y[k]), be[b]),
            ok = 0;
    }
  }
  report(title, ok, msg);
  asg_program_free(p[0]);
  asg_program_free(p[1]);
  asg_graph_free(g);
}
