/* Training checkpoints: a run interrupted after 5 steps, saved, restored
 * into a freshly built graph and program, must continue bit for bit like the
 * uninterrupted run (parameters, Adam state, step and dropout RNG state). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "asg/asg.h"
#include "testutil.h"

enum { B = 8, IN = 4, OUT = 3, STEPS = 10, CUT = 5 };
static const char *tmpdir;
static const char *tpath(const char *name) { return tu_path(tmpdir, name); }

typedef struct model {
  asg_graph *g;
  asg_tensor *loss;
  asg_program *p;
} model;

/* MLP 4 -> hidden -> 3 with tanh and dropout, MSE loss, Adam. train=false
 * compiles the forward pass only (an evaluation program). */
static model build(int hidden, uint64_t seed, bool train) {
  model m = {asg_graph_new(), NULL, NULL};
  asg_graph_set_seed(m.g, seed);
  asg_tensor *x = asg_input(m.g, "x", ASG_F32, ASG_SHAPE(B, IN));
  asg_tensor *t = asg_input(m.g, "t", ASG_F32, ASG_SHAPE(B, OUT));
  asg_tensor *w1 =
      asg_variable(m.g, "fc1.weight", ASG_F32, ASG_SHAPE(hidden, IN), asg_init_xavier_uniform(0));
  asg_tensor *b1 =
      asg_variable(m.g, "fc1.bias", ASG_F32, ASG_SHAPE(hidden), asg_init_uniform(-0.1, 0.1));
  asg_tensor *w2 =
      asg_variable(m.g, "fc2.weight", ASG_F32, ASG_SHAPE(OUT, hidden), asg_init_xavier_uniform(0));
  asg_tensor *b2 = asg_variable(m.g, "fc2.bias", ASG_F32, ASG_SHAPE(OUT), asg_init_zeros());
  asg_tensor *h = asg_tanh(asg_add(asg_matmul_t(x, w1, false, true), b1));
  h = asg_dropout(h, 0.25, 99);
  asg_tensor *y = asg_add(asg_matmul_t(h, w2, false, true), b2);
  asg_tensor *d = asg_sub(y, t);
  m.loss = asg_mean(asg_mul(d, d), ASG_ALL_AXES, false);
  if (train)
    m.p = asg_compile_train(m.g, m.loss, asg_adam(0.05), 0, NULL, NULL);
  else
    m.p = asg_compile(m.g, 1, &m.loss, NULL);
  if (!m.p) printf("build: %s\n", asg_last_error());
  return m;
}

static void drop(model *m) {
  asg_program_free(m->p);
  asg_graph_free(m->g);
  *m = (model){0};
}

/* Deterministic data for a given step. */
static void step(model *m, int s, double *loss) {
  double xd[B * IN], td[B * OUT];
  float x[B * IN], t[B * OUT];
  tu_rand(1000 + (unsigned long long)s, xd, B * IN, -1, 1);
  tu_rand(2000 + (unsigned long long)s, td, B * OUT, -1, 1);
  for (int i = 0; i < B * IN; i++)
    x[i] = (float)xd[i];
  for (int i = 0; i < B * OUT; i++)
    t[i] = (float)td[i];
  asg_program_feed(m->p, "x", x, sizeof x);
  asg_program_feed(m->p, "t", t, sizeof t);
  asg_program_run(m->p);
  *loss = asg_program_scalar(m->p, m->loss);
}

static bool same(const double *a, const double *b, int n) {
  return memcmp(a, b, sizeof *a * (size_t)n) == 0;
}

int main(void) {
  tmpdir = tu_tmpdir_create("asg_test_ckpt");
  if (!tmpdir) return 1;
  const char *ck = tpath("step5.ckpt.safetensors");
  const char *wf = tpath("weights.safetensors");

  TU_CHECK(asg_is_optimizer_state("optim/lr") && asg_is_optimizer_state("fc1.weight.adam_m") &&
               asg_is_optimizer_state("w.square_avg") && !asg_is_optimizer_state("fc1.weight") &&
               !asg_is_optimizer_state("bn.running_mean") && !asg_is_optimizer_state("adam_m"),
           "optimizer state names");

  /* the uninterrupted run */
  double ref[STEPS], got[STEPS];
  model a = build(16, 42, true);
  if (!a.p) return 1;
  for (int s = 0; s < STEPS; s++)
    step(&a, s, &ref[s]);
  TU_CHECK(ref[STEPS - 1] < ref[0], "training reduces the loss: %g -> %g", ref[0], ref[STEPS - 1]);
  drop(&a);

  /* interrupted: 5 steps, checkpoint, everything freed */
  model b = build(16, 42, true);
  for (int s = 0; s < CUT; s++)
    step(&b, s, &got[s]);
  TU_CHECK(same(got, ref, CUT), "the first %d steps repeat exactly", CUT);
  TU_CHECK(asg_checkpoint_save(b.p, ck, CUT) == ASG_OK, "checkpoint save: %s", asg_last_error());
  TU_CHECK(asg_checkpoint_save(b.p, ck, CUT) == ASG_OK, "checkpoint overwrite: %s",
           asg_last_error());
  TU_CHECK(asg_program_save_variables(b.p, wf, ASG_VARS_MODEL) == ASG_OK, "weights save: %s",
           asg_last_error());
  int nvars = asg_program_variable_count(b.p);
  drop(&b);

  /* what the checkpoint holds */
  asg_safetensors *f = asg_safetensors_open(ck);
  TU_CHECK(f != NULL, "open checkpoint: %s", asg_last_error());
  if (f) {
    const char *fmt = asg_safetensors_metadata(f, "format"),
               *st = asg_safetensors_metadata(f, "step"),
               *rc = asg_safetensors_metadata(f, "run_count"),
               *ver = asg_safetensors_metadata(f, "format_version");
    TU_CHECK(fmt && !strcmp(fmt, "asg-checkpoint") && st && !strcmp(st, "5") && rc &&
                 !strcmp(rc, "5") && ver && !strcmp(ver, "1"),
             "checkpoint metadata");
    TU_CHECK(asg_safetensors_count(f) == nvars, "all %d variables saved (%d)", nvars,
             asg_safetensors_count(f));
    TU_CHECK(asg_safetensors_find(f, "fc1.weight.adam_m") >= 0 &&
                 asg_safetensors_find(f, "fc2.bias.adam_v") >= 0 &&
                 asg_safetensors_find(f, "optim/step") >= 0 &&
                 asg_safetensors_find(f, "optim/lr") >= 0,
             "optimizer state saved");
    float os = 0;
    asg_safetensors_read(f, asg_safetensors_find(f, "optim/step"), ASG_F32, &os, 4);
    TU_CHECK(os == 5.0f, "optim/step = %g", os);
    asg_safetensors_close(f);
  }
  f = asg_safetensors_open(wf);
  TU_CHECK(f && asg_safetensors_count(f) == 4 && asg_safetensors_find(f, "fc1.weight") >= 0 &&
               asg_safetensors_find(f, "fc1.weight.adam_m") < 0 &&
               asg_safetensors_find(f, "optim/lr") < 0,
           "ASG_VARS_MODEL keeps the 4 parameters only");
  asg_safetensors_close(f);

  /* resumed in a fresh graph (another init seed: every value must come from
   * the file) */
  model c = build(16, 777, true);
  int64_t st = -1;
  TU_CHECK(asg_checkpoint_load(c.p, ck, &st) == ASG_OK, "checkpoint load: %s", asg_last_error());
  TU_CHECK(st == CUT && asg_program_run_count(c.p) == CUT, "step %lld, run count %llu",
           (long long)st, (unsigned long long)asg_program_run_count(c.p));
  for (int s = CUT; s < STEPS; s++)
    step(&c, s, &got[s]);
  TU_CHECK(same(got + CUT, ref + CUT, STEPS - CUT), "resumed losses are bitwise identical");
  for (int s = CUT; s < STEPS; s++)
    if (got[s] != ref[s])
      printf("  step %d: resumed %.17g, uninterrupted %.17g\n", s, got[s], ref[s]);
  drop(&c);

  /* controls: each piece of state matters, so the check above means something */
  double ctl[STEPS];
  model d = build(16, 42, true); /* without the RNG state */
  asg_checkpoint_load(d.p, ck, NULL);
  asg_program_set_run_count(d.p, 0);
  for (int s = CUT; s < STEPS; s++)
    step(&d, s, &ctl[s]);
  TU_CHECK(!same(ctl + CUT, ref + CUT, STEPS - CUT), "control: dropout stream matters");
  drop(&d);
  model e = build(16, 42, true); /* weights only: no Adam moments, step 0 */
  TU_CHECK(asg_program_load_variables(e.p, wf, true) == ASG_OK,
           "a model file loads strictly into a training program: %s", asg_last_error());
  asg_program_set_run_count(e.p, CUT);
  for (int s = CUT; s < STEPS; s++)
    step(&e, s, &ctl[s]);
  TU_CHECK(ctl[CUT] == ref[CUT], "weights alone give the same first loss");
  TU_CHECK(!same(ctl + CUT, ref + CUT, STEPS - CUT), "control: optimizer state matters");
  /* a weights file is not a checkpoint */
  asg_status s1 = asg_checkpoint_load(e.p, wf, NULL);
  TU_CHECK(s1 == ASG_ERR_FORMAT && strstr(asg_last_error(), "not an ASG checkpoint"),
           "weights file refused as checkpoint: %s", asg_last_error());
  drop(&e);

  /* an evaluation program has no optimizer state: a training checkpoint
   * loads into it strictly (its optimizer state is skipped, not unexpected) */
  model ev = build(16, 777, false);
  int nl = -1;
  asg_status s2 = asg_program_load_variables_ex(ev.p, ck, true, &nl);
  TU_CHECK(s2 == ASG_OK && nl == 4, "eval program strict: %d loaded: %s", nl, asg_last_error());
  TU_CHECK(asg_program_load_variables(ev.p, ck, false) == ASG_OK, "eval program non-strict: %s",
           asg_last_error());
  model ev2 = build(16, 777, false);
  int64_t st2 = -1;
  TU_CHECK(asg_checkpoint_load(ev2.p, ck, &st2) == ASG_OK && st2 == CUT,
           "checkpoint into eval program: %s", asg_last_error());
  {
    float wa[16 * IN], wb[16 * IN], wc[16 * IN] = {0};
    asg_safetensors *cf = asg_safetensors_open(ck);
    asg_program_get_variable(ev.p, "fc1.weight", wa, sizeof wa);
    asg_program_get_variable(ev2.p, "fc1.weight", wb, sizeof wb);
    if (cf)
      asg_safetensors_read(cf, asg_safetensors_find(cf, "fc1.weight"), ASG_F32, wc, sizeof wc);
    asg_safetensors_close(cf);
    TU_CHECK(memcmp(wa, wc, sizeof wa) == 0 && memcmp(wb, wc, sizeof wb) == 0,
             "eval programs hold the checkpoint's weights");
  }
  drop(&ev2);
  drop(&ev);

  /* another architecture: every mis-shaped tensor is named, nothing changes */
  model w = build(12, 42, true);
  float before[12 * IN], after[12 * IN];
  asg_program_get_variable(w.p, "fc1.weight", before, sizeof before);
  asg_status s3 = asg_checkpoint_load(w.p, ck, NULL);
  const char *m = asg_last_error();
  TU_CHECK(s3 == ASG_ERR_SHAPE &&
               strstr(m, "'fc1.weight' is f32 [16,4] in the file but f32 [12,4]") &&
               strstr(m, "'fc1.bias'") && strstr(m, "'fc2.weight'") &&
               strstr(m, "'fc1.weight.adam_m'") && strstr(m, "'fc2.weight.adam_v'") &&
               !strstr(m, "'fc2.bias'"),
           "wrong architecture: %s", m);
  asg_program_get_variable(w.p, "fc1.weight", after, sizeof after);
  TU_CHECK(memcmp(before, after, sizeof before) == 0 && asg_program_run_count(w.p) == 0,
           "failed checkpoint load changes nothing");
  drop(&w);

  /* a newer format version is refused with a clear message */
  float z = 0;
  asg_host_tensor ht = {ASG_F32, ASG_SCALAR, &z};
  const char *nm[1] = {"optim/lr"};
  const char *meta[] = {
      "format", "asg-checkpoint", "format_version", "999", "step", "1", "run_count", "1"};
  asg_safetensors_write(tpath("v999.safetensors"), 1, nm, &ht, 4, meta);
  model v = build(16, 42, true);
  TU_CHECK(asg_checkpoint_load(v.p, tpath("v999.safetensors"), NULL) == ASG_ERR_UNSUPPORTED &&
               strstr(asg_last_error(), "version 999"),
           "future version: %s", asg_last_error());
  meta[3] = "1";
  meta[7] = "-3";
  asg_safetensors_write(tpath("badrc.safetensors"), 1, nm, &ht, 4, meta);
  TU_CHECK(asg_checkpoint_load(v.p, tpath("badrc.safetensors"), NULL) == ASG_ERR_FORMAT &&
               strstr(asg_last_error(), "run_count"),
           "bad run_count: %s", asg_last_error());
  drop(&v);

  tu_tmpdir_remove(tmpdir);
  return tu_finish();
}
