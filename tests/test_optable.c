/* Completeness: walks the op table (src/ops/ops.def) and fails for any op
 * without a gradient rule (unless declared non-differentiable, a dedicated
 * backward op or an op only the compiler's fusion passes make) and for any op without a kernel on
 * each backend built into this library. */
#include <string.h>

#include "testutil.h"

int main(void) {
  int n = asg_op_count();
  TU_CHECK(n > 60, "op table has %d ops", n);
  const char *backends[] = {"cpu", "cuda", "vulkan"};
  for (int op = 0; op < n; op++) {
    const char *name = asg_op_name(op);
    TU_CHECK(name && name[0], "op %d has no name", op);
    if (!asg_op_is_nondifferentiable(op) && !asg_op_is_backward(op) && !asg_op_is_source(op) &&
        !asg_op_is_fused(op))
      TU_CHECK(asg_op_has_grad(op), "op '%s' has no gradient rule", name);
    for (int b = 0; b < 3; b++) {
      if (!asg_backend_available(backends[b])) continue; /* not built or no device */
      /* custom: user ops bring CPU (and optionally CUDA) kernels; Vulkan
       * refuses them by design, naming the op (test_custom_op, test_parity) */
      if (!strcmp(name, "custom") && !strcmp(backends[b], "vulkan")) {
        TU_CHECK(!asg_backend_supports_op(backends[b], op), "vulkan claims custom ops");
        continue;
      }
      TU_CHECK(asg_op_is_source(op) || asg_backend_supports_op(backends[b], op),
               "op '%s' has no kernel on backend '%s'", name, backends[b]);
    }
    int dup = 0;
    for (int k = 0; k < op; k++)
      dup += strcmp(asg_op_name(k), name) == 0;
    TU_CHECK(!dup, "op name '%s' appears twice", name);
  }
  for (int b = 0; b < 3; b++) { /* a described device exactly when available */
    const char *dev = asg_backend_device(backends[b]);
    TU_CHECK((dev != NULL) == asg_backend_available(backends[b]), "asg_backend_device(%s)",
             backends[b]);
    TU_CHECK(!dev || dev[0], "empty device description for %s", backends[b]);
    if (dev) printf("%-7s %s\n", backends[b], dev);
  }
  TU_CHECK(asg_backend_device("nope") == NULL && asg_last_error()[0], "unknown backend described");
  TU_CHECK(asg_op_name(-1) == NULL && asg_op_name(n) == NULL, "out-of-range op has a name");
  return tu_finish();
}
