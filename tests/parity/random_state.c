/* Parity cases: random ops (the same counter-based RNG on every backend),
 * variables updated across runs (assign, cache_write), and feeds between
 * runs that a backend may upload asynchronously. */
#include "parity.h"

/* ----------------------------------------------------------- random, state */

void cases_random(void) {
  asg_shape s = ASG_SHAPE(37, 29);
  for (int d = 0; d < 2; d++) {
    asg_dtype dt = FDT[d];
    pcase pc;
    pc_begin(&pc, C_RNG, "rand_uniform/normal/bernoulli, dropout(0.3) %s %s, 2 runs", dtn(dt),
             shp(s));
    pc.runs = 2;
    pc.gcls = C_RNG;
    asg_tensor *x = pc_in(&pc, dt, s, -2, 2);
    pc_out(&pc, asg_rand_uniform(pc.g, dt, s, -0.5, 2.0, 11), "uniform");
    pc_out(&pc, asg_rand_normal(pc.g, dt, s, 0.25, 1.5, 12), "normal");
    pc_out(&pc, asg_rand_bernoulli(pc.g, dt, s, 0.3, 13), "bernoulli");
    pc_out(&pc, asg_mul(x, mark(asg_rand_uniform(pc.g, dt, s, 0, 1, 14))), "x*uniform");
    pc_out(&pc, asg_dropout(x, 0.3, 15), "dropout");
    pc_finish(&pc);
  }
  for (int it = 0; it < 2; it++) {
    pcase pc;
    asg_shape sb = ASG_SHAPE(70001);
    pc_begin(&pc, C_RNG, "rand_bernoulli %s %s, rand_uniform/normal f32 %s, 2 runs", dtn(IDT[it]),
             shp(sb), shp(sb));
    pc.runs = 2;
    pc_out(&pc, asg_rand_bernoulli(pc.g, IDT[it], sb, 0.6, 21), "bernoulli");
    pc_out(&pc, asg_rand_uniform(pc.g, ASG_F32, sb, 0, 1, 22), "uniform");
    pc_out(&pc, asg_rand_normal(pc.g, ASG_F32, sb, 0, 1, 23), "normal");
    pc_finish(&pc);
  }
}

void cases_state(void) {
  for (int t = 0; t < 4; t++) {
    asg_dtype dt = t < 2 ? FDT[t] : IDT[t - 2];
    asg_shape s = ASG_SHAPE(5, 7);
    pcase pc;
    pc_begin(&pc, asg_dtype_is_float(dt) ? C_ELEM : C_EXACT,
             "assign %s %s: v <- (v + v) - v + x * constant (3 runs)", dtn(dt), shp(s));
    pc.runs = 3;
    pc.no_grad = true;
    double *v0 = rv(numel(s), -5, 5, true);
    void *vb = to_dtype(dt, v0, numel(s));
    asg_tensor *v = mark(asg_variable(pc.g, "v", dt, s, asg_init_data(vb)));
    asg_tensor *x = pc_in(&pc, dt, s, -5, 5);
    asg_tensor *c = mark(asg_constant(pc.g, dt, ASG_SHAPE(7), vb));
    asg_tensor *nv = asg_add(asg_sub(asg_add(v, v), v), asg_mul(x, c));
    pc_out(&pc, asg_mul(v, x), "v*x");
    pc_out_ex(&pc, asg_assign(v, nv), "assign", pc.cls, false);
    pc.var_name[pc.n_var++] = "v";
    pc_finish(&pc);
    free(v0), free(vb);
  }
}

/* cache_write: rows of a variable written at a fed position (in range, and
 * partly outside with unchecked indices), read back through the result. */
void cases_cache_write(void) {
  for (int t = 0; t < 4; t++) {
    for (int unchecked = 0; unchecked < 2; unchecked++) {
      asg_dtype dt = t < 2 ? FDT[t] : IDT[t - 2];
      asg_shape cs = ASG_SHAPE(2, 6, 3), vs = ASG_SHAPE(2, 2, 3);
      pcase pc;
      pc_begin(&pc, asg_dtype_is_float(dt) ? C_ELEM : C_EXACT,
               "cache_write %s %s <- %s at pos %d along axis -2%s (2 runs)", dtn(dt), shp(cs),
               shp(vs), unchecked ? 5 : 3, unchecked ? " (unchecked: a row outside)" : "");
      pc.runs = 2;
      pc.no_grad = true;
      pc.unchecked = unchecked;
      double *c0 = rv(numel(cs), -5, 5, true);
      void *cb = to_dtype(dt, c0, numel(cs));
      asg_tensor *c = mark(asg_variable(pc.g, "c", dt, cs, asg_init_data(cb)));
      asg_tensor *v = pc_in(&pc, dt, vs, -5, 5);
      const double pos = unchecked ? 5 : 3;
      asg_tensor *ps = pc_in_vals(&pc, IDT[t % 2], ASG_SHAPE(1), &pos);
      asg_tensor *y = asg_cache_write(c, v, ps, -2);
      pc_out(&pc, y, "cache_write");
      pc_out(&pc, asg_add(y, y), "y+y");
      pc.var_name[pc.n_var++] = "c";
      pc_finish(&pc);
      free(c0), free(cb);
    }
  }
}

/* Feeds between runs without reading anything back: a backend may upload
 * asynchronously (CUDA: double-buffered staging), so feed k + 1 must not
 * reach the input before run k has read it. v <- v * 0.5 + x over 12 runs of
 * distinct inputs (and distinct sizes of write: a second input fed every
 * other run) must match the CPU exactly. */
void case_pipelined_feeds(void) {
  enum { N = 4096, RUNS = 12 };
  asg_graph *g = asg_graph_new();
  float *zero = calloc(N, sizeof *zero), *xs = malloc(sizeof *xs * N);
  asg_tensor *v = asg_variable(g, "v", ASG_F32, ASG_SHAPE(N), asg_init_data(zero));
  asg_tensor *x = asg_input(g, "x", ASG_F32, ASG_SHAPE(N));
  asg_tensor *c = asg_input(g, "c", ASG_F32, ASG_SHAPE(1));
  asg_tensor *a = asg_assign(v, asg_add(asg_mul(v, c), x));
  asg_compile_opts o = {.backend = "cpu"};
  asg_program *ref = asg_compile(g, 1, &a, &o);
  o.backend = g_backend;
  asg_program *dut = asg_compile(g, 1, &a, &o);
  int ok = ref && dut;
  for (int r = 0; r < RUNS && ok; r++) {
    for (int i = 0; i < N; i++)
      xs[i] = (float)((r * 7919 + i * 104729) % 1000) / 64.0f;
    const float cv = r % 3 == 0 ? 0.5f : 0.25f;
    for (int k = 0; k < 2 && ok; k++) {
      asg_program *p = k ? dut : ref;
      ok = asg_program_feed(p, "x", xs, sizeof *xs * N) == ASG_OK &&
           (r % 2 || asg_program_feed(p, "c", &cv, sizeof cv) == ASG_OK) &&
           asg_program_run(p) == ASG_OK;
    }
  }
  float *rv_ = malloc(sizeof *rv_ * N), *dv = malloc(sizeof *dv * N);
  long bad = -1;
  if (ok)
    ok = asg_program_get_variable(ref, "v", rv_, sizeof *rv_ * N) == ASG_OK &&
         asg_program_get_variable(dut, "v", dv, sizeof *dv * N) == ASG_OK;
  for (long i = 0; ok && i < N && bad < 0; i++)
    if (rv_[i] != dv[i]) bad = i;
  char msg[160] = "";
  if (!ok)
    snprintf(msg, sizeof msg, "%s", asg_last_error());
  else if (bad >= 0)
    snprintf(msg, sizeof msg, "v[%ld]: got %.9g want %.9g", bad, dv[bad], rv_[bad]);
  report("pipelined feeds: v <- v * c + x, 12 runs, no read between runs", ok && bad < 0, msg);
  free(zero), free(xs), free(rv_), free(dv);
  asg_program_free(ref), asg_program_free(dut);
  asg_graph_free(g);
}
