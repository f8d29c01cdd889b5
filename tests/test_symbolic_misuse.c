/* Misuse of symbolic programs (issue 17): huge bindings (sizes that
 * overflow, values near INT64_MAX) and bad arguments to the binding calls
 * fail with a clear error, never undefined behaviour, and the program stays
 * usable; the binding calls on static programs accept only an empty
 * binding. */
#include <stdint.h>
#include <string.h>

#include "testutil.h"

static asg_compile_opts cpu(void) {
  asg_compile_opts o = {0};
  o.backend = "cpu";
  o.num_threads = 1;
  return o;
}

/* After the errors: a binding of 3 runs and gives 2 x. */
static void still_usable(asg_program *p, asg_tensor *y) {
  float x[12], out[12];
  for (int i = 0; i < 12; i++)
    x[i] = (float)i;
  asg_status st = asg_program_feed_tensor(p, "x", ASG_F32, ASG_SHAPE(3, 4), x);
  if (!st) st = asg_program_run(p);
  if (!st) st = asg_program_fetch(p, y, out, sizeof out);
  TU_CHECK(st == ASG_OK, "usable after errors: %s", asg_last_error());
  TU_CHECK(st || (out[0] == 0.0f && out[11] == 22.0f), "values %g %g", out[0], out[11]);
}

static void huge_bindings(void) {
  asg_graph *g = asg_graph_new();
  int64_t B = asg_dim(g, "batch", 0), T = asg_dim(g, "seq", 0);
  asg_tensor *x = asg_input(g, "x", ASG_F32, ASG_SHAPE(B, 4));
  asg_tensor *y = asg_mul_scalar(x, 2.0);
  asg_tensor *z = asg_input(g, "z", ASG_F32, ASG_SHAPE(B, T));
  asg_tensor *flat = asg_reshape(z, ASG_SHAPE(asg_dim_mul(g, B, T)));
  asg_compile_opts o = cpu();
  asg_program *p = asg_compile(g, 1, &y, &o);
  asg_program *q = asg_compile(g, 1, &flat, &o);
  TU_CHECK(p && q, "compile: %s", asg_last_error());
  if (!p || !q) goto done;
  const char *nb[] = {"batch"}, *nbt[] = {"batch", "seq"};
  int64_t big[] = {INT64_MAX}, half[] = {INT64_MAX / 2},
          big2[] = {(int64_t)1 << 40, (int64_t)1 << 40};
  size_t bytes = 0;
  /* [INT64_MAX, 4] f32: each dim evaluates, the size does not fit */
  asg_status st = asg_program_prepare(p, 1, nb, big);
  TU_CHECK(st == ASG_ERR_SHAPE && tu_contains(asg_last_error(), "[batch,4]"),
           "prepare batch=INT64_MAX: %d %s", st, asg_last_error());
  st = asg_program_peak_memory_for(p, 1, nb, half, &bytes);
  TU_CHECK(st == ASG_ERR_SHAPE, "peak_memory_for batch=INT64_MAX/2: %d %s", st, asg_last_error());
  TU_CHECK(asg_program_specialization_count(p) == 0, "nothing cached");
  /* batch*seq overflows int64 */
  st = asg_program_prepare(q, 2, nbt, (int64_t[]){INT64_MAX, 2});
  TU_CHECK(st == ASG_ERR_SHAPE && tu_contains(asg_last_error(), "batch"),
           "prepare batch*seq overflow: %d %s", st, asg_last_error());
  st = asg_program_prepare(q, 2, nbt, big2);
  TU_CHECK(st == ASG_ERR_SHAPE, "prepare 2^40 x 2^40: %d %s", st, asg_last_error());
  /* a fed shape whose byte size wraps around */
  float tiny[4] = {0};
  st = asg_program_feed_tensor(p, "x", ASG_F32, ASG_SHAPE((int64_t)1 << 62, 4), tiny);
  TU_CHECK(st == ASG_ERR_SHAPE, "feed [2^62, 4]: %d %s", st, asg_last_error());
  st = asg_program_feed_tensor(p, "x", ASG_F32, ASG_SHAPE(INT64_MAX, 1), tiny);
  TU_CHECK(st != ASG_OK, "feed [INT64_MAX, 1]: %d %s", st, asg_last_error());
  /* a bound value the feed cannot turn into rows */
  st = asg_program_bind(p, 1, nb, big);
  TU_CHECK(st == ASG_OK, "bind batch=INT64_MAX (checked at the run): %s", asg_last_error());
  st = asg_program_feed(p, "x", tiny, sizeof tiny);
  TU_CHECK(st != ASG_OK, "feed 16 bytes with batch=INT64_MAX: %d %s", st, asg_last_error());
  st = asg_program_run(p);
  TU_CHECK(st != ASG_OK, "run with batch=INT64_MAX: %d %s", st, asg_last_error());
  /* the bound value holds until changed: give a good one */
  TU_CHECK(asg_program_bind(p, 1, nb, (int64_t[]){3}) == ASG_OK, "rebind: %s", asg_last_error());
  still_usable(p, y);
done:
  asg_program_free(p);
  asg_program_free(q);
  asg_graph_free(g);
}

static void bad_arguments(void) {
  asg_graph *g = asg_graph_new();
  int64_t B = asg_dim(g, "batch", 8);
  asg_tensor *x = asg_input(g, "x", ASG_F32, ASG_SHAPE(B, 4));
  asg_tensor *y = asg_mul_scalar(x, 2.0);
  asg_compile_opts o = cpu();
  asg_program *p = asg_compile(g, 1, &y, &o);
  TU_CHECK(p != NULL, "compile: %s", asg_last_error());
  if (!p) {
    asg_graph_free(g);
    return;
  }
  const char *nb[] = {"batch"}, *nn[] = {NULL}, *nx[] = {"nope"};
  int64_t two[] = {2}, zero[] = {0}, nine[] = {9}, neg[] = {-5};
  size_t bytes = 0;
  asg_shape sh;
  TU_CHECK(asg_program_bind(NULL, 1, nb, two) == ASG_ERR_INVALID, "bind NULL program");
  TU_CHECK(asg_program_bind(p, -1, nb, two) == ASG_ERR_INVALID, "bind n < 0");
  TU_CHECK(asg_program_bind(p, 1, NULL, two) == ASG_ERR_INVALID, "bind NULL names");
  TU_CHECK(asg_program_bind(p, 1, nb, NULL) == ASG_ERR_INVALID, "bind NULL values");
  TU_CHECK(asg_program_bind(p, 1, nn, two) == ASG_ERR_NOT_FOUND, "bind NULL name");
  TU_CHECK(asg_program_bind(p, 1, nx, two) == ASG_ERR_NOT_FOUND &&
               tu_contains(asg_last_error(), "nope"),
           "bind unknown name: %s", asg_last_error());
  TU_CHECK(asg_program_bind(p, 1, nb, zero) == ASG_ERR_SHAPE, "bind 0");
  TU_CHECK(asg_program_bind(p, 1, nb, neg) == ASG_ERR_SHAPE, "bind -5");
  TU_CHECK(asg_program_bind(p, 1, nb, nine) == ASG_ERR_SHAPE &&
               tu_contains(asg_last_error(), "bound"),
           "bind above the bound: %s", asg_last_error());
  TU_CHECK(asg_program_prepare(p, -3, nb, two) == ASG_ERR_INVALID, "prepare n < 0");
  TU_CHECK(asg_program_prepare(p, 0, NULL, NULL) != ASG_OK, "prepare without a value");
  TU_CHECK(asg_program_peak_memory_for(p, 1, nb, two, NULL) == ASG_ERR_INVALID,
           "peak_memory_for NULL bytes");
  TU_CHECK(asg_program_peak_memory_for(NULL, 1, nb, two, &bytes) == ASG_ERR_INVALID,
           "peak_memory_for NULL program");
  TU_CHECK(asg_program_output_shape(p, NULL, &sh) == ASG_ERR_INVALID, "output_shape NULL t");
  TU_CHECK(asg_program_output_shape(p, y, NULL) == ASG_ERR_INVALID, "output_shape NULL shape");
  TU_CHECK(asg_program_specialization_count(NULL) == 0 &&
               asg_program_specialization_bytes(NULL) == 0,
           "NULL cache queries");
  float out[8];
  TU_CHECK(asg_program_fetch(p, y, out, sizeof out) != ASG_OK, "fetch before any run");
  TU_CHECK(isnan(asg_program_scalar(p, y)), "scalar before any run");
  TU_CHECK(asg_program_feed_tensor(p, "x", ASG_F32, ASG_SHAPE(2, 4, 1), out) == ASG_ERR_SHAPE,
           "feed wrong rank");
  TU_CHECK(asg_program_feed_tensor(p, "x", ASG_F32, ASG_SHAPE(2, 5), out) == ASG_ERR_SHAPE,
           "feed wrong constant dim");
  TU_CHECK(asg_program_feed_tensor(p, "x", ASG_I32, ASG_SHAPE(2, 4), out) == ASG_ERR_DTYPE,
           "feed wrong dtype");
  TU_CHECK(asg_program_feed_tensor(p, "nope", ASG_F32, ASG_SHAPE(2, 4), out) == ASG_ERR_NOT_FOUND,
           "feed unknown input");
  TU_CHECK(asg_program_feed(p, "x", out, 6) == ASG_ERR_SHAPE, "feed 6 bytes");
  TU_CHECK(asg_program_feed(p, "x", out, 0) != ASG_OK, "feed 0 bytes");
  TU_CHECK(asg_program_run(p) != ASG_OK, "run before any feed");
  still_usable(p, y);
  /* static programs: only the empty binding */
  asg_graph *h = asg_graph_new();
  asg_tensor *sx = asg_input(h, "x", ASG_F32, ASG_SHAPE(2, 4));
  asg_tensor *sy = asg_mul_scalar(sx, 2.0);
  asg_program *s = asg_compile(h, 1, &sy, &o);
  TU_CHECK(s != NULL, "static compile: %s", asg_last_error());
  if (s) {
    TU_CHECK(asg_program_bind(s, 1, nb, two) == ASG_ERR_INVALID &&
                 tu_contains(asg_last_error(), "no symbolic dims"),
             "bind on a static program: %s", asg_last_error());
    TU_CHECK(asg_program_prepare(s, 1, nb, two) == ASG_ERR_INVALID, "prepare on static");
    TU_CHECK(asg_program_bind(s, 0, NULL, NULL) == ASG_OK, "empty bind on static");
    TU_CHECK(asg_program_prepare(s, 0, NULL, NULL) == ASG_OK, "empty prepare on static");
    TU_CHECK(asg_program_peak_memory_for(s, 0, NULL, NULL, &bytes) == ASG_OK &&
                 bytes == asg_program_peak_memory(s),
             "peak_memory_for on static");
    TU_CHECK(asg_program_output_shape(s, sy, &sh) == ASG_OK && sh.ndim == 2 && sh.dims[0] == 2,
             "output_shape on static");
    TU_CHECK(asg_program_specialization_count(s) == 0, "static: no cache");
  }
  asg_program_free(s);
  asg_graph_free(h);
  asg_program_free(p);
  asg_graph_free(g);
}

int main(void) {
  huge_bindings();
  bad_arguments();
  return tu_finish();
}
