/* Custom ops: user code adds an op of its own without touching the library.
 *
 * A custom op is registered once with a descriptor: a name, its number of
 * inputs, a shape function (input shapes and dtypes -> output shape and
 * dtype, or a message), a CPU kernel, optionally a CUDA kernel, a workspace
 * size and a gradient. asg_custom() then adds nodes of it to any graph; they
 * compile, run, differentiate and train like built-in ops (docs/custom_ops.md).
 *
 *   static int sq_shape(const asg_custom_sig *s, asg_dtype *dt, asg_shape *sh,
 *                       char *msg, size_t n) {
 *     if (s->in_dtype[0] != ASG_F32) return snprintf(msg, n, "needs f32"), 1;
 *     *dt = ASG_F32, *sh = s->in_shape[0];
 *     return 0;
 *   }
 *   static int sq_cpu(const asg_custom_call *c) {
 *     const float *x = c->in[0];
 *     float *y = c->out;
 *     for (int64_t i = 0; i < asg_shape_numel(c->out_shape); i++) y[i] = x[i] * x[i];
 *     return 0;
 *   }
 *   static int sq_grad(const asg_custom_grad_args *a, asg_tensor **din) {
 *     din[0] = asg_mul(a->dout, asg_mul_scalar(a->in[0], 2.0));   (existing ops)
 *     return 0;
 *   }
 *   const asg_custom_op *sq;
 *   asg_custom_desc d = {.name = "square", .n_inputs = 1, .shape = sq_shape,
 *                        .cpu = sq_cpu, .grad = sq_grad};
 *   if (asg_custom_register(&d, &sq)) puts(asg_last_error());
 *   asg_tensor *y = asg_custom(g, sq, &x, 1);
 *
 * Backends: every custom op runs on the CPU; on CUDA when the descriptor has
 * a `cuda` kernel (compiling a program with one that has none for CUDA is an
 * error naming the op); never on Vulkan (compiling for Vulkan is an error
 * naming the op). Serialization: ONNX export refuses custom ops; checkpoints
 * hold variables only and are unaffected. Symbolic shapes: the inputs of a
 * custom op must have static shapes (a symbolic input is a graph error).
 *
 * Thread-safety: the registry is process-wide and guarded by a mutex, so
 * asg_custom_register / asg_custom_find may be called from any thread.
 * Registrations cannot be undone: a handle stays valid until the process
 * exits, and the descriptor's `user` pointer must live as long. Callbacks may
 * run concurrently on the threads that run programs (one program per thread,
 * asg/core.h), so they must be reentrant; a kernel runs on the thread that
 * calls asg_program_run. */
#ifndef ASG_CUSTOM_H
#define ASG_CUSTOM_H

#include "asg/core.h"
#include "asg/graph.h"

#ifdef __cplusplus
extern "C" {
#endif

#define ASG_CUSTOM_MAX_INPUTS 8
#define ASG_CUSTOM_MAX_ATTRS 4
#define ASG_CUSTOM_NAME_MAX 64 /* including the NUL: names have 1..63 characters */
#define ASG_CUSTOM_MAX_OPS 256 /* registrations per process */

/* A registered op (opaque handle). */
typedef struct asg_custom_op asg_custom_op;

/* What every callback sees of one node: its operands' dtypes and shapes
 * (static), the node's attributes (asg_custom_ex) and the descriptor's user
 * pointer. */
typedef struct asg_custom_sig {
  const asg_custom_op *op;
  int n_in;
  asg_dtype in_dtype[ASG_CUSTOM_MAX_INPUTS];
  asg_shape in_shape[ASG_CUSTOM_MAX_INPUTS];
  int n_attr;
  double attr[ASG_CUSTOM_MAX_ATTRS];
  void *user;
} asg_custom_sig;

/* Shape function: sets the output's dtype and shape and returns 0, or
 * writes why into msg[0..msg_size) and returns non-zero: the graph then
 * fails with "scope/custom op '<name>': <msg>". Called while building. */
typedef int (*asg_custom_shape_fn)(const asg_custom_sig *sig, asg_dtype *out_dtype,
                                   asg_shape *out_shape, char *msg, size_t msg_size);

/* One kernel call. The output buffer holds old values (memory is reused):
 * the kernel must write every element. in[] and out are row-major, dense,
 * of the dtypes and shapes given, aligned to their element size at least
 * (to 64 bytes where the memory plan can), and out overlaps no input. */
typedef struct asg_custom_call {
  const asg_custom_sig *sig;
  const void *const *in; /* sig->n_in pointers: host memory (CPU), device memory (CUDA) */
  void *out;
  asg_dtype out_dtype;
  asg_shape out_shape;
  void *workspace; /* workspace_bytes of scratch (asg_custom_desc.workspace), or NULL */
  size_t workspace_bytes;
  /* CUDA: the program's cudaStream_t (as void *, so this header needs no CUDA
   * include); NULL on the CPU. A CUDA kernel must only ENQUEUE work on this
   * stream: the backend records a run into a CUDA graph and replays it, so
   * the callback itself is called for the first runs only (never count on it
   * being called per run), and it must not synchronize, allocate, copy to or
   * from pageable host memory, or use another stream. */
  void *stream;
  const char *backend; /* "cpu" or "cuda" */
  char *msg;           /* a failing kernel writes why here (msg_size bytes) */
  size_t msg_size;
} asg_custom_call;

/* Kernel: returns 0, or non-zero after writing why into c->msg (the run then
 * fails with "<backend>: <step>: custom op '<name>': <msg>"). */
typedef int (*asg_custom_kernel_fn)(const asg_custom_call *c);

/* Optional: bytes of scratch memory a node needs (on the kernel's device);
 * asked once when a program is compiled. */
typedef size_t (*asg_custom_workspace_fn)(const asg_custom_sig *sig);

/* What the gradient function sees: the node (out) with its inputs, the
 * gradient of the loss with respect to out (dout: out's shape and dtype) and
 * which inputs need a gradient (need[i]: float inputs that lead to a
 * requested variable, not through asg_stop_gradient; with none, the
 * gradient function is not called). */
typedef struct asg_custom_grad_args {
  asg_graph *graph;
  const asg_custom_sig *sig;
  asg_tensor *const *in;
  asg_tensor *out;
  asg_tensor *dout;
  const bool *need;
  char *msg; /* a failing gradient function writes why here (msg_size bytes) */
  size_t msg_size;
} asg_custom_grad_args;

/* Gradient: builds din[i] (dL/d input i) for each needed input from ops of
 * a->graph -- existing ops, or other custom ops (a custom backward op is an
 * op registered for the purpose, e.g. with inputs (x, dout)). din[i] has
 * input i's dtype and its shape or a shape that input i broadcasts to (it is
 * summed down); NULL means a zero gradient. Returns 0, or non-zero after
 * writing why into a->msg. */
typedef int (*asg_custom_grad_fn)(const asg_custom_grad_args *a, asg_tensor **din);

/* The descriptor. Zero-initialize it (designated initializers) so that
 * fields added later stay unset. */
typedef struct asg_custom_desc {
  const char *name;          /* 1..63 of [A-Za-z0-9_.], unique in the process */
  int n_inputs;              /* 0..ASG_CUSTOM_MAX_INPUTS (0: asg_custom's g gives the graph) */
  asg_custom_shape_fn shape; /* required */
  asg_custom_kernel_fn cpu;  /* required */
  asg_custom_kernel_fn cuda; /* optional (NULL: the op cannot be compiled for CUDA) */
  asg_custom_grad_fn grad;   /* optional (NULL: differentiating through the op is an error) */
  asg_custom_workspace_fn workspace; /* optional (NULL: no scratch) */
  void *user;                        /* passed to every callback in sig->user */
} asg_custom_desc;

/* Registers d (copied; its name too). Errors (ASG_ERR_INVALID, *op = NULL):
 * a name already registered, a bad name, a NULL shape or CPU function, an
 * input count out of range, a full registry. */
ASG_API asg_status asg_custom_register(const asg_custom_desc *d, const asg_custom_op **op);
/* The op registered as name, or NULL (with a message). */
ASG_API const asg_custom_op *asg_custom_find(const char *name);
ASG_API const char *asg_custom_name(const asg_custom_op *op);

/* A node of op over in[0..n): n must be the op's n_inputs, every input of g
 * with a static shape. Graph errors (sticky, as for every op) name the op:
 * a wrong input count, a symbolic input, the shape function's message, an
 * output shape or dtype that is not valid. */
ASG_API asg_tensor *asg_custom(asg_graph *g, const asg_custom_op *op, asg_tensor *const *in, int n);
/* The same with up to ASG_CUSTOM_MAX_ATTRS numeric attributes for this
 * node (sig->attr in every callback). */
ASG_API asg_tensor *asg_custom_ex(asg_graph *g, const asg_custom_op *op, asg_tensor *const *in,
                                  int n, const double *attr, int n_attr);
/* The custom op of node t, or NULL when t is not a custom node. */
ASG_API const asg_custom_op *asg_custom_of(const asg_tensor *t);

#ifdef __cplusplus
}
#endif
#endif
