/* Vulkan device selection and its errors, each scenario in a child process
 * (the device is chosen once per process):
 *   - no driver (VK_ICD_FILENAMES / VK_DRIVER_FILES point nowhere): the
 *     backend is unavailable with a reason, compiling for it fails cleanly,
 *     and the CPU backend still works in that process;
 *   - ASG_VULKAN_DEVICE naming no device: unavailable, the message says so;
 *   - ASG_VULKAN_DEVICE=0 where a device exists: available and described;
 *     a small program runs on it and gives the CPU's answer; programs whose
 *     buffers exceed the allocator's 64 MiB chunks run, are freed and their
 *     memory is reused (three rounds), with the CPU's results.
 * Exit 77 (skipped) when the library is built without Vulkan. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

/* y = sum(x * 2) on backend be; NAN on failure. */
static double run_small(const char *be) {
  asg_graph *g = asg_graph_new();
  asg_tensor *x = asg_input(g, "x", ASG_F32, ASG_SHAPE(4));
  asg_tensor *y = asg_sum(asg_mul(x, asg_fill(g, ASG_F32, ASG_SHAPE(4), 2.0)), ASG_ALL_AXES, false);
  asg_compile_opts o = {0};
  o.backend = be;
  asg_program *p = asg_compile(g, 1, &y, &o);
  float xv[4] = {1, 2, 3, 4.5f};
  double r = NAN;
  if (p && !asg_program_feed(p, "x", xv, sizeof xv) && !asg_program_run(p))
    r = asg_program_scalar(p, y);
  asg_program_free(p);
  asg_graph_free(g);
  return r;
}

static int child_no_driver(void) {
  setenv("VK_ICD_FILENAMES", "/nonexistent/asg_icd.json", 1);
  setenv("VK_DRIVER_FILES", "/nonexistent/asg_icd.json", 1);
  TU_CHECK(!asg_backend_available("vulkan"), "vulkan available without a driver");
  const char *why = asg_last_error();
  TU_CHECK(strstr(why, "vulkan") != NULL, "reason does not name vulkan: '%s'", why);
  TU_CHECK(asg_backend_device("vulkan") == NULL, "a device is described without a driver");
  asg_clear_error();
  TU_CHECK(isnan(run_small("vulkan")), "a program ran on vulkan without a driver");
  TU_CHECK(strstr(asg_last_error(), "vulkan") != NULL, "compile error does not say why: '%s'",
           asg_last_error());
  TU_CHECK(run_small("cpu") == 21.0, "cpu broken after a failed vulkan start");
  return tu_finish();
}

static int child_bad_name(void) {
  setenv("ASG_VULKAN_DEVICE", "no-such-device-xyz", 1);
  TU_CHECK(!asg_backend_available("vulkan"), "vulkan available with a device that does not exist");
  TU_CHECK(strstr(asg_last_error(), "ASG_VULKAN_DEVICE") != NULL ||
               strstr(asg_last_error(), "no Vulkan") != NULL,
           "reason: '%s'", asg_last_error());
  return tu_finish();
}

/* y = sum(x) and z = x * 3 over n floats, x[i] = i % 7: big buffers (an
 * input and an output of 4n bytes each) through the sub-allocator. */
static int big_round(int64_t n) {
  asg_graph *g = asg_graph_new();
  asg_tensor *x = asg_input(g, "x", ASG_F32, ASG_SHAPE(n));
  asg_tensor *outs[2] = {asg_sum(x, ASG_ALL_AXES, false), asg_mul_scalar(x, 3.0)};
  asg_compile_opts o = {0};
  o.backend = "vulkan";
  asg_program *p = asg_compile(g, 2, outs, &o);
  float *xv = malloc(sizeof(float) * (size_t)n), *zv = malloc(sizeof(float) * (size_t)n);
  int bad = !p || !xv || !zv;
  double want = 0;
  for (int64_t i = 0; !bad && i < n; i++) {
    xv[i] = (float)(i % 7);
    want += i % 7;
  }
  if (!bad)
    bad = asg_program_feed(p, "x", xv, sizeof(float) * (size_t)n) || asg_program_run(p) ||
          asg_program_fetch(p, outs[1], zv, sizeof(float) * (size_t)n);
  double got = bad ? NAN : asg_program_scalar(p, outs[0]);
  int64_t wrong = 0;
  for (int64_t i = 0; !bad && i < n; i++)
    wrong += zv[i] != 3.0f * (float)(i % 7);
  TU_CHECK(!bad, "big program on vulkan: %s", asg_last_error());
  TU_CHECK(fabs(got - want) <= 1e-5 * want, "sum of %lld elements = %.9g, want %.9g", (long long)n,
           got, want);
  TU_CHECK(wrong == 0, "%lld of %lld products wrong", (long long)wrong, (long long)n);
  free(xv);
  free(zv);
  asg_program_free(p);
  asg_graph_free(g);
  return bad || wrong;
}

static int child_first(void) {
  setenv("ASG_VULKAN_DEVICE", "0", 1);
  if (!asg_backend_available("vulkan")) {
    printf("no Vulkan device here (%s)\n", asg_last_error());
    return TU_SKIP;
  }
  const char *d = asg_backend_device("vulkan");
  TU_CHECK(d && d[0], "no description");
  printf("vulkan device 0: %s\n", d ? d : "?");
  double r = run_small("vulkan");
  TU_CHECK(r == 21.0, "sum(x*2) on vulkan = %g, want 21", r);
  for (int round = 0; round < 3; round++) /* 80 MiB buffers, freed and reused */
    if (big_round((int64_t)20 << 20)) break;
  return tu_finish();
}

static int in_child(int (*fn)(void), const char *what) {
  fflush(stdout);
  pid_t pid = fork();
  if (pid == 0) {
    int rc = fn();
    fflush(stdout);
    _exit(rc);
  }
  int status = 0;
  if (pid < 0 || waitpid(pid, &status, 0) != pid) return 1;
  int rc = WIFEXITED(status) ? WEXITSTATUS(status) : 1;
  printf("%s %s\n", rc == 0 ? "ok  " : rc == TU_SKIP ? "skip" : "FAIL", what);
  return rc != 0 && rc != TU_SKIP;
}

int main(void) {
  if (!asg_backend_compiled("vulkan")) {
    TU_CHECK(!asg_backend_available("vulkan") && strstr(asg_last_error(), "not compiled") != NULL,
             "unbuilt backend: '%s'", asg_last_error());
    printf("SKIPPED: built without Vulkan\n");
    return tu_fail ? 1 : TU_SKIP;
  }
  int bad = in_child(child_no_driver, "no driver: clear error, cpu unaffected");
  bad += in_child(child_bad_name, "ASG_VULKAN_DEVICE naming no device");
  bad += in_child(child_first, "ASG_VULKAN_DEVICE=0");
  return bad ? 1 : 0;
}
