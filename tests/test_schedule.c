/* One-cycle and reduce-on-plateau learning rates. Expected values are
 * PyTorch's: printed by torch 2.x (OneCycleLR, ReduceLROnPlateau on an SGD
 * optimizer) and written here, and for the long one-cycle run its formula
 * written out in this file. */
#include <string.h>

#include "testutil.h"

static const double PI = 3.14159265358979323846;

/* PyTorch's cosine anneal from a to b at fraction f */
static double cos_anneal(double a, double b, double f) {
  return b + (a - b) / 2 * (cos(PI * f) + 1);
}

static void test_one_cycle(void) {
  /* OneCycleLR(max_lr=0.5, total_steps=10), lr after t scheduler steps */
  const double want10[11] = {0.020000000000000018,
                             0.26,
                             0.5,
                             0.47524231600673683,
                             0.40587282697488153,
                             0.30563101096814466,
                             0.19437098903185537,
                             0.09412917302511849,
                             0.024759683993263143,
                             2e-06,
                             0.024759683993263115};
  asg_lr_schedule s = asg_lr_one_cycle(0.5, 10);
  double got[101], want[101];
  for (int t = 0; t <= 10; t++)
    got[t] = asg_lr_schedule_at(&s, t);
  TU_CHECK(tu_close("one_cycle torch", got, want10, 11, 1e-16, 1e-13),
           "one-cycle defaults match torch's OneCycleLR");
  TU_CHECK(isnan(asg_lr_schedule_at(&s, 11)), "one-cycle past total_steps is NaN (torch raises)");
  /* three phases, linear, pct_start 0.25, div 10, final div 100, T = 12 */
  const double want12[12] = {0.05,
                             0.275,
                             0.5,
                             0.275,
                             0.04999999999999999,
                             0.042928571428571434,
                             0.03585714285714286,
                             0.02878571428571429,
                             0.021714285714285717,
                             0.014642857142857145,
                             0.007571428571428576,
                             0.0005000000000000004};
  s = asg_lr_one_cycle(0.5, 12);
  s.pct_start = 0.25, s.three_phase = true, s.linear_anneal = true;
  s.div_factor = 10, s.final_div_factor = 100;
  for (int t = 0; t < 12; t++)
    got[t] = asg_lr_schedule_at(&s, t);
  TU_CHECK(tu_close("one_cycle 3 phases", got, want12, 12, 1e-16, 1e-13),
           "three-phase linear one-cycle matches torch");
  TU_CHECK(isnan(asg_lr_schedule_at(&s, 12)), "a negative extrapolated lr is NaN");
  /* 100 steps, defaults: phase 1 ends at 29, phase 2 at 99 */
  s = asg_lr_one_cycle(2.0, 100);
  for (int t = 0; t <= 100; t++) {
    got[t] = asg_lr_schedule_at(&s, t);
    want[t] = t <= 29 ? cos_anneal(2.0 / 25, 2.0, t / 29.0)
                      : cos_anneal(2.0, 2.0 / 25 / 1e4, (t - 29) / 70.0);
  }
  TU_CHECK(tu_close("one_cycle 100", got, want, 101, 1e-15, 1e-12), "one-cycle over 100 steps");
  TU_CHECK(got[29] == 2.0, "peak at the end of phase 1: %g", got[29]);
  /* bad settings */
  asg_lr_schedule bad[5];
  for (int i = 0; i < 5; i++)
    bad[i] = asg_lr_one_cycle(0.5, 10);
  bad[0].total_steps = 0, bad[1].pct_start = 1.5, bad[2].div_factor = 0;
  bad[3].final_div_factor = -1, bad[4].pct_start = 0.1; /* phase 1 ends at step 0: length 0 */
  for (int i = 0; i < 5; i++)
    TU_CHECK(isnan(asg_lr_schedule_at(&bad[i], 0)), "bad one-cycle %d gives NaN", i);
  /* applied to a program */
  asg_graph *g = asg_graph_new();
  asg_tensor *w = asg_variable(g, "w", ASG_F32, ASG_SHAPE(2), asg_init_zeros());
  asg_tensor *loss = asg_sum(asg_mul(w, w), ASG_ALL_AXES, false);
  asg_program *p = asg_compile_train(g, loss, asg_sgd(1, 0), 0, NULL, NULL);
  s = asg_lr_one_cycle(0.5, 10);
  TU_CHECK(p && asg_optim_schedule(p, &s, 2) == ASG_OK && asg_optim_get_lr(p) == 0.5f,
           "one-cycle through asg_optim_schedule: %s", asg_last_error());
  TU_CHECK(asg_optim_schedule(p, &s, 11) != ASG_OK && strstr(asg_last_error(), "step 11"),
           "step past total refused: %s", asg_last_error());
  asg_program_free(p);
  asg_graph_free(g);
}

/* runs metrics through a plateau and compares the lrs with torch's */
static void check_plateau(const char *what, double lr, const asg_plateau_opts *o,
                          const double *metrics, const double *want, int n) {
  asg_plateau *pl = asg_plateau_new(lr, o);
  TU_CHECK(pl != NULL, "%s: new: %s", what, asg_last_error());
  if (!pl) return;
  double got[32];
  for (int i = 0; i < n; i++)
    got[i] = asg_plateau_step(pl, metrics[i]);
  TU_CHECK(tu_close(what, got, want, n, 0, 1e-15), "%s: lrs as torch's ReduceLROnPlateau", what);
  asg_plateau_free(pl);
}

static void test_plateau(void) {
  const double a[14] = {10, 9, 9.5, 9.2, 9.1, 8, 8.5, 8.5, 8.5, 8.5, 8.5, 8.5, 8.5, 8.5};
  asg_plateau_opts o = asg_plateau_defaults(ASG_MODE_MIN);
  o.factor = 0.5, o.patience = 2;
  const double wa[14] = {1, 1, 1, 1, 0.5, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25, 0.125, 0.125, 0.125};
  check_plateau("patience 2", 1.0, &o, a, wa, 14);
  o.patience = 1, o.cooldown = 2;
  const double wc[14] = {1, 1, 1, 0.5, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25, 0.25, 0.125, 0.125, 0.125};
  check_plateau("patience 1 cooldown 2", 1.0, &o, a, wc, 14);
  /* relative threshold 0.1: 9.05 and 9.0 are no improvement on 10, 8.99 is */
  const double b[8] = {10, 9.05, 9.0, 8.99, 8.0, 7.9, 7.8, 7.7};
  o = asg_plateau_defaults(ASG_MODE_MIN);
  o.factor = 0.1, o.patience = 0, o.threshold = 0.1, o.min_lr = 0.003;
  const double wb[8] = {
      1.0,   0.1,  0.010000000000000002, 0.010000000000000002, 0.010000000000000002, 0.003,
      0.003, 0.003};
  check_plateau("threshold 0.1 min_lr", 1.0, &o, b, wb, 8);
  /* max mode, absolute threshold 0.5; NaN is no improvement */
  const double c[9] = {1, 2, 2.4, 2.6, NAN, 3, 3, 3, 3};
  o = asg_plateau_defaults(ASG_MODE_MAX);
  o.factor = 0.5, o.patience = 1, o.threshold = 0.5, o.threshold_abs = true;
  const double wcc[9] = {1, 1, 1, 1, 1, 0.5, 0.5, 0.25, 0.25};
  check_plateau("max abs nan", 1.0, &o, c, wcc, 9);
  /* a reduction by eps or less is not applied */
  const double d[8] = {5, 5, 5, 5, 5, 5, 5, 5},
               wd[8] = {1e-7, 1e-7, 1e-7, 1e-7, 1e-7, 1e-7, 1e-7, 1e-7};
  o = asg_plateau_defaults(ASG_MODE_MIN);
  o.factor = 0.5, o.patience = 0, o.eps = 1e-7;
  check_plateau("eps", 1e-7, &o, d, wd, 8);

  /* state round trip, and applied to a program */
  o = asg_plateau_defaults(ASG_MODE_MIN);
  o.factor = 0.5, o.patience = 0;
  asg_plateau *pl = asg_plateau_new(0.2, &o), *pl2 = asg_plateau_new(0.2, &o);
  asg_graph *g = asg_graph_new();
  asg_tensor *w = asg_variable(g, "w", ASG_F64, ASG_SHAPE(2), asg_init_zeros());
  asg_tensor *loss = asg_sum(asg_mul(w, w), ASG_ALL_AXES, false);
  asg_program *p = asg_compile_train(g, loss, asg_adam(0.2), 0, NULL, NULL);
  TU_CHECK(pl && pl2 && p, "plateau setup: %s", asg_last_error());
  if (pl && pl2 && p) {
    TU_CHECK(asg_optim_plateau(p, pl, 3.0) == ASG_OK && asg_optim_get_lr(p) == 0.2,
             "first metric keeps lr");
    TU_CHECK(asg_optim_plateau(p, pl, 3.0) == ASG_OK && asg_optim_get_lr(p) == 0.1,
             "no improvement with patience 0 halves the program's lr: %g", asg_optim_get_lr(p));
    asg_plateau_state st;
    TU_CHECK(asg_plateau_get_state(pl, &st) == ASG_OK && st.best == 3.0 && st.lr == 0.1 &&
                 st.bad_epochs == 0,
             "state: best %g lr %g bad %d", st.best, st.lr, st.bad_epochs);
    TU_CHECK(asg_plateau_set_state(pl2, &st) == ASG_OK && asg_plateau_step(pl2, 2.0) == 0.1 &&
                 asg_plateau_step(pl2, 2.5) == 0.05,
             "restored state continues");
    st.lr = -1;
    TU_CHECK(asg_plateau_set_state(pl2, &st) == ASG_ERR_INVALID, "bad state refused");
  }
  asg_program_free(p);
  asg_graph_free(g);
  asg_plateau_free(pl);
  asg_plateau_free(pl2);

  /* bad options */
  asg_plateau_opts bad[4];
  const char *names[4] = {"factor", "patience", "threshold", "min_lr"};
  for (int i = 0; i < 4; i++)
    bad[i] = asg_plateau_defaults(ASG_MODE_MIN);
  bad[0].factor = 1, bad[1].patience = -1, bad[2].threshold = NAN, bad[3].min_lr = -0.1;
  for (int i = 0; i < 4; i++)
    TU_CHECK(asg_plateau_new(0.1, &bad[i]) == NULL && strstr(asg_last_error(), names[i]),
             "bad %s refused: %s", names[i], asg_last_error());
  TU_CHECK(asg_plateau_new(NAN, NULL) == NULL && strstr(asg_last_error(), "lr"), "NaN lr refused");
  TU_CHECK(isnan(asg_plateau_step(NULL, 1)), "NULL plateau");
}

int main(void) {
  test_one_cycle();
  test_plateau();
  return tu_finish();
}
