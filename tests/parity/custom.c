/* Parity cases: a user-registered op (asg/custom.h) and its custom backward
 * op on the backend under test. */
#include <dlfcn.h>

#include "parity.h"

/* custom: a user-registered op (asg/custom.h) on the backend under test.
 * parity.cat2 concatenates its two inputs' elements ([n0 + n1], any shapes,
 * one dtype); its gradient is a custom backward op, parity.take (the count
 * elements of dy from start: attributes), reshaped to each input's shape.
 * The CPU kernels copy with memcpy; the CUDA kernels enqueue
 * cudaMemcpyAsync on the program's stream (found with dlsym in libcudart,
 * which the library loaded: this test is C without CUDA headers). Values
 * are copies, hence exact. A second check feeds fresh inputs before each of
 * four runs (on CUDA: launched step by step, captured into a CUDA graph,
 * replayed), so that a replay that skipped the user's kernel would show.
 * Vulkan runs no custom op: there the check is that compiling is refused
 * with an error naming the op. */

typedef int (*parity_memcpy_async_fn)(void *dst, const void *src, size_t n, int kind, void *stream);

static parity_memcpy_async_fn parity_memcpy_async(void) {
  static parity_memcpy_async_fn fn;
  if (!fn) {
    void *self = dlopen(NULL, RTLD_NOW);
    void *sym = self ? dlsym(self, "cudaMemcpyAsync") : NULL;
    memcpy(&fn, &sym, sizeof fn); /* object to function pointer, as POSIX allows */
  }
  return fn;
}

/* Copies n bytes from src to dst on the call's device. */
static int parity_copy(const asg_custom_call *c, void *dst, const void *src, size_t n) {
  if (strcmp(c->backend, "cuda") != 0) {
    memcpy(dst, src, n);
    return 0;
  }
  parity_memcpy_async_fn cp = parity_memcpy_async();
  if (!cp) return snprintf(c->msg, c->msg_size, "cudaMemcpyAsync not found"), 1;
  const int rc = cp(dst, src, n, 3 /* cudaMemcpyDeviceToDevice */, c->stream);
  return rc ? snprintf(c->msg, c->msg_size, "cudaMemcpyAsync: error %d", rc), 1 : 0;
}

static int parity_cat2_shape(const asg_custom_sig *s, asg_dtype *dt, asg_shape *sh, char *msg,
                             size_t n) {
  if (s->in_dtype[0] != s->in_dtype[1]) return snprintf(msg, n, "dtypes differ"), 1;
  *dt = s->in_dtype[0];
  *sh = ASG_SHAPE(asg_shape_numel(s->in_shape[0]) + asg_shape_numel(s->in_shape[1]));
  return 0;
}

static int parity_cat2_run(const asg_custom_call *c) {
  const size_t es = asg_dtype_size(c->out_dtype);
  const size_t b0 = (size_t)asg_shape_numel(c->sig->in_shape[0]) * es;
  const size_t b1 = (size_t)asg_shape_numel(c->sig->in_shape[1]) * es;
  if (parity_copy(c, c->out, c->in[0], b0)) return 1;
  return parity_copy(c, (char *)c->out + b0, c->in[1], b1);
}

static int parity_take_shape(const asg_custom_sig *s, asg_dtype *dt, asg_shape *sh, char *msg,
                             size_t n) {
  const int64_t start = (int64_t)s->attr[0], count = (int64_t)s->attr[1];
  if (s->n_attr != 2 || start < 0 || count < 1 || start + count > asg_shape_numel(s->in_shape[0]))
    return snprintf(msg, n, "attributes (start, count) out of range"), 1;
  *dt = s->in_dtype[0];
  *sh = ASG_SHAPE(count);
  return 0;
}

static int parity_take_run(const asg_custom_call *c) {
  const size_t es = asg_dtype_size(c->out_dtype);
  return parity_copy(c, c->out, (const char *)c->in[0] + (size_t)c->sig->attr[0] * es,
                     (size_t)c->sig->attr[1] * es);
}

static const asg_custom_op *g_parity_cat2, *g_parity_take;

static int parity_cat2_grad(const asg_custom_grad_args *a, asg_tensor **din) {
  double at[2] = {0, 0};
  for (int k = 0; k < 2; k++) {
    at[1] = (double)asg_shape_numel(a->sig->in_shape[k]);
    if (a->need[k])
      din[k] = asg_reshape(asg_custom_ex(a->graph, g_parity_take, &a->dout, 1, at, 2),
                           a->sig->in_shape[k]);
    at[0] += at[1];
  }
  return 0;
}

static bool parity_custom_register(void) {
  if (g_parity_cat2) return true;
  const asg_custom_desc cat = {.name = "parity.cat2",
                               .n_inputs = 2,
                               .shape = parity_cat2_shape,
                               .cpu = parity_cat2_run,
                               .cuda = parity_cat2_run,
                               .grad = parity_cat2_grad};
  const asg_custom_desc take = {.name = "parity.take",
                                .n_inputs = 1,
                                .shape = parity_take_shape,
                                .cpu = parity_take_run,
                                .cuda = parity_take_run};
  if (asg_custom_register(&take, &g_parity_take) || asg_custom_register(&cat, &g_parity_cat2)) {
    report("custom op: register", 0, asg_last_error());
    return false;
  }
  return true;
}

/* Fresh inputs before each of four runs; the output compared each time. */
static void case_custom_refeed(asg_dtype dt) {
  char title[96];
  snprintf(title, sizeof title, "custom op parity.cat2 %s: fresh inputs, 4 runs", dtn(dt));
  g_cur_case = title;
  asg_graph *g = asg_graph_new();
  asg_tensor *in[2] = {asg_input(g, "a", dt, ASG_SHAPE(9, 4)), asg_input(g, "b", dt, ASG_SHAPE(5))};
  asg_tensor *y = mark(asg_custom(g, g_parity_cat2, in, 2));
  char msg[512] = "";
  asg_program *ref = y ? compile_on(g, 1, &y, "cpu", 0, false, NULL, true) : NULL;
  asg_program *dut =
      ref ? compile_on(g, 1, &y, g_backend, dut_threads(), false, NULL, false) : NULL;
  int ok = dut != NULL;
  if (!ok) snprintf(msg, sizeof msg, "build/compile: %s", asg_last_error());
  for (int r = 0; r < 4 && ok; r++) {
    for (int k = 0; k < 2 && ok; k++) {
      const long n = numel(asg_tensor_shape(in[k]));
      double *v = rv(n, -3, 3, false);
      void *b = to_dtype(dt, v, n);
      const char *name = k ? "b" : "a";
      const size_t bytes = (size_t)n * asg_dtype_size(dt);
      ok = asg_program_feed(ref, name, b, bytes) == ASG_OK &&
           asg_program_feed(dut, name, b, bytes) == ASG_OK;
      if (!ok) snprintf(msg, sizeof msg, "feed %s: %s", name, asg_last_error());
      free(v), free(b);
    }
    if (ok && (asg_program_run(ref) != ASG_OK || asg_program_run(dut) != ASG_OK))
      snprintf(msg, sizeof msg, "run %d: %s", r, asg_last_error()), ok = 0;
    char lab[32];
    snprintf(lab, sizeof lab, "run %d", r);
    if (ok) ok = cmp_output(ref, dut, y, lab, C_EXACT, msg, sizeof msg);
  }
  report(title, ok, msg);
  asg_program_free(ref);
  asg_program_free(dut);
  asg_graph_free(g);
}

void cases_custom(void) {
  if (!parity_custom_register()) return;
  if (strcmp(g_backend, "vulkan") == 0) { /* refused, naming the op */
    g_cur_case = "custom op on vulkan: refused";
    asg_graph *g = asg_graph_new();
    asg_tensor *in[2] = {asg_input(g, "a", ASG_F32, ASG_SHAPE(3)),
                         asg_input(g, "b", ASG_F32, ASG_SHAPE(2))};
    asg_tensor *y = mark(asg_custom(g, g_parity_cat2, in, 2));
    asg_clear_error();
    asg_program *p = y ? compile_on(g, 1, &y, "vulkan", 0, false, NULL, false) : NULL;
    report(g_cur_case,
           y && !p && strstr(asg_last_error(), "custom op 'parity.cat2' has no Vulkan kernel"),
           asg_last_error());
    asg_program_free(p);
    asg_graph_free(g);
    return;
  }
  for (int d = 0; d < 2; d++) {
    pcase pc;
    pc_begin(&pc, C_EXACT, "custom op parity.cat2 (backward: custom op parity.take) %s",
             dtn(FDT[d]));
    asg_tensor *in[2] = {pc_in(&pc, FDT[d], ASG_SHAPE(3, 5), -2, 2),
                         pc_in(&pc, FDT[d], ASG_SHAPE(7), -2, 2)};
    asg_tensor *y = asg_custom(pc.g, g_parity_cat2, in, 2);
    pc_out(&pc, y, "cat2");
    pc_out_ex(&pc, asg_tanh(y), "tanh(cat2)", C_ELEM, true); /* read by a built-in kernel */
    pc_finish(&pc);
    case_custom_refeed(FDT[d]);
  }
}
