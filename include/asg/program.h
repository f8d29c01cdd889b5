/* Compiled programs: a schedule, a memory plan and kernels for one backend.
 * Compile once, run many times; nothing is allocated by asg_program_run.
 *
 * Lifetime: a program is valid from asg_compile until asg_program_free.
 * Using or freeing a program after asg_program_free is undefined behaviour,
 * as with free(): no call detects it. NULL is accepted everywhere and
 * gives an error (or 0 / NULL / NaN).
 *
 * Threads: a program is used by one thread at a time. Distinct programs
 * may run on different threads at once. Programs that share variables
 * (asg_compile_opts.share_variables) may also be used on different threads,
 * one thread per program: the supported pattern is a training program on
 * one thread and an evaluation program sharing its variables on another.
 * The shared variable store has a lock held for the whole of each run,
 * feed, fetch, variable get/set (so also per variable of a save or load)
 * and compile or free of a program on it: runs take turns and an eval run
 * sees the variables as they were between two train runs, never half
 * updated. A checkpoint saved from the eval thread while the train thread
 * runs may mix variables of consecutive steps: save from the train thread. */
#ifndef ASG_PROGRAM_H
#define ASG_PROGRAM_H

#include "asg/graph.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct asg_program asg_program;
typedef struct asg_comm asg_comm;

typedef struct asg_compile_opts {
  const char *backend; /* "cpu" (default), "cuda", "vulkan" */
  /* Share variable storage (and the device) with this program (same graph
   * and backend): e.g. an eval program that sees the train program's
   * parameters. Programs sharing variables may run on different threads
   * (see "Threads" above). */
  asg_program *share_variables;
  /* CPU threads; 0 = the default: the CPUs this process may run on (its
   * affinity mask, e.g. under taskset). Threads waiting for work sleep
   * after a few microseconds, so a count above the free cores costs little
   * (docs/backends.md). < 0 is an error. The threads belong to the
   * process that compiled the program: a child made by fork() must not run
   * a CPU program of more than one thread created before the fork (it would
   * wait for threads the child does not have); create programs after. */
  int num_threads;
  /* Let f32 matrix products (matmul, conv) use TF32 tensor cores on CUDA:
   * much faster, about 1e-3 relative error. Ignored on the CPU. */
  bool allow_tf32;
  /* Mixed precision for f32 programs on CUDA: matrix products (matmul and
   * the fused attention's products) round their operands to bf16 (8-bit
   * mantissas) and multiply on bf16 tensor cores with f32 sums and f32
   * results (logits that only a softmax cross-entropy reads are kept in
   * bf16, as with PyTorch's autocast); convolutions and products with
   * general batch broadcasting use TF32.
   * Variables, optimizer state, reductions, softmax and losses stay f32;
   * each tensor read by products is converted once and shared by them
   * (extra device memory; docs/backends.md). About 4e-3 relative error per
   * product. On the CPU (where it multiplies bf16 natively: AVX512-BF16 or
   * AMX, with oneDNN built in) matmul products of more than 8 rows round
   * their operands to bf16 with f32 sums and results; convolutions and
   * attention stay f32 there, and elsewhere the option is ignored
   * (asg_backend_device("cpu") lists "bf16 products" when it applies).
   * Ignored on Vulkan. */
  bool bf16_matmul;
  /* The same with fp16 operands (10-bit mantissas, ~1e-3 relative, but a
   * range of 6e-8..65504: pair it with the optimizer's dynamic loss scaling,
   * asg_optim.loss_scale, so that small gradients do not flush to zero).
   * bf16_matmul wins when both are set. CUDA only (ignored on the CPU and
   * Vulkan). */
  bool fp16_matmul;
  /* Indices read from tensors are checked while running, on every backend:
   * a gather / embedding or scatter_add index outside [0, n), a one_hot
   * index outside [0, depth) or a cross-entropy label outside [0, C) that
   * is not ignore_index makes asg_program_run fail naming the op, the value
   * and the range (on CUDA and Vulkan this makes each run of a program with
   * such ops wait for the device; the CPU stops at the faulting op, the
   * GPUs finish the run first, so variables may already be updated). Set
   * this to skip the check: out-of-range indices then gather zeros, are
   * skipped by scatter_add, give all-zero one_hot rows and leave their
   * cross-entropy rows out of the loss and its mean. */
  bool unchecked_indices;
  /* Symbolic programs (graphs with asg_dim; see "Symbolic shapes" below):
   * the most specializations kept at once (0: 8), and the most device bytes
   * they may hold together besides the shared variables (0: no bound). The
   * least recently used one is freed first; the one in use always stays. */
  int max_specializations;
  size_t max_specialization_bytes;
  /* The profiler (asg/profile.h): 1 times every step of every run, 2 also
   * prints the slowest kinds of step when the program is freed with
   * ASG_PROFILE set; 0: off unless the environment variable ASG_PROFILE is
   * 1 or 2. Needed at compile on CUDA and Vulkan, where the step timers
   * are built into the program. */
  int profile;
  /* Anomaly mode (docs/tools.md): an asg_check_finite value. The
   * environment variable ASG_CHECK_FINITE=1|2 raises it for every program
   * compiled while it is set. Off costs nothing. */
  int check_finite;
  /* Tensor taps: intermediate nodes whose values stay readable after a run
   * (asg_program_fetch / asg_program_fetch_tap). Each tap is computed even
   * if no output needs it and keeps its own buffer, which the memory plan
   * does not reuse (more arena bytes). taps: n_taps tensors of the graph;
   * tap_names: n_tap_names names, each matching exactly one node, by its
   * name (inputs, variables) or its "scope/op" label (as in error messages).
   * Static programs only: a graph with symbolic dims refuses taps. */
  int n_taps;
  asg_tensor *const *taps;
  int n_tap_names;
  const char *const *tap_names;
  /* The communicator (asg/dist.h) the program's collective ops run on; a
   * program with collectives and none is a compile error. With more than
   * one rank, asg_compile_train makes the step data-parallel: gradients are
   * averaged over the ranks (docs/distributed.md). Must outlive the
   * program. */
  asg_comm *comm;
  /* Data-parallel gradients are averaged in buckets of about this many
   * bytes (one all-reduce per bucket and dtype); 0: 25 MiB. */
  size_t comm_bucket_bytes;
  /* ZeRO stage 1 for data-parallel asg_compile_train: each rank keeps the
   * optimizer state of 1/world of every parameter (its shard), gets the
   * gradient mean of that shard by a reduce-scatter, updates it, and the
   * parameters are all-gathered. Same steps as without it; optimizer state
   * per rank divided by the world size. Checkpoints are then per rank
   * (docs/distributed.md). */
  bool shard_optimizer_state;
  /* Gradient checkpointing of every declared block (asg_graph_declare_block:
   * each asg_nn_transformer_block, each layer of asg_lm_forward) by
   * asg_compile_train, as if each were passed to asg_graph_checkpoint_scope
   * (asg/autograd.h, docs/training.md): less activation memory for about
   * one more forward pass per step. Default false. asg_compile_train fails
   * when the graph declares no block; asg_compile builds no gradient and
   * ignores it. */
  bool checkpoint_blocks;
  /* Compile the graph's ops as they are. By default the compiler's fusion
   * passes (src/passes, docs/design.md) run first, on the compiled copy of
   * the graph only: conv2d, the add of a per-channel bias [O] reshaped to
   * [1,O,1,1] and a ReLU after it become one conv2d_bias_act step; matmul,
   * the add of a bias [N] and a ReLU (or f32 gelu_tanh) after it one
   * matmul_bias_act step; each where no other node or output reads what lies
   * between (the same values: the sum and the activation are done in the
   * same order). The graph itself is not changed. Each rule also has an
   * environment switch for every program of the process: ASG_FUSE_CONV=0,
   * ASG_FUSE_LINEAR=0 turn them off. */
  bool no_fusion;
} asg_compile_opts;

/* asg_compile_opts.check_finite: where non-finite values (NaN, +-inf) in
 * float tensors (f32, f64, bf16, f16) make asg_program_run fail with
 * ASG_ERR_NUMERIC, the message naming the tensor and the run.
 *  OFF:  no check (the default).
 *  RUN:  after each run, the program's outputs (and taps) and the variables
 *        it uses are read back and checked: names the output or variable.
 *        Costs a device-to-host copy of them per run.
 *  STEP: after each step, its output is checked: names the first step
 *        that made a non-finite value ("scope/op", its shape, the element
 *        and value), whether it made it from finite inputs or which input
 *        already held one, and the run. The CPU stops at that step: later
 *        steps do not run, so assigns (which run last) have not updated the
 *        variables unless the faulting step is itself an (in-place)
 *        optimizer update of a variable. CUDA and Vulkan check on the device,
 *        finish the run (variables updated) and then report the first
 *        faulting step; steps CUDA fuses into another kernel are checked
 *        through that kernel (docs/tools.md). Steps whose values are meant
 *        to be infinite (a -inf attention mask) are reported too.
 * A failed run does not advance asg_program_run_count. */
typedef enum asg_check_finite {
  ASG_CHECK_FINITE_OFF = 0,
  ASG_CHECK_FINITE_RUN = 1,
  ASG_CHECK_FINITE_STEP = 2
} asg_check_finite;

/* Compiles the nodes needed for outputs (and every asg_assign among them).
 * The graph may be freed afterwards. opts may be NULL. A graph with
 * symbolic dims gives a symbolic program (below); any other compiles to one
 * static plan. */
ASG_API asg_program *asg_compile(asg_graph *g, int n_outputs, asg_tensor *const *outputs,
                                 const asg_compile_opts *opts);
ASG_API void asg_program_free(asg_program *p);

/* Names of backends compiled into this library, and whether one has a
 * usable device now. */
ASG_API bool asg_backend_available(const char *name);
/* Whether the backend is compiled into this library (a device may still be
 * missing). */
ASG_API bool asg_backend_compiled(const char *name);
/* One line on the device the backend would use ("NVIDIA H100 ...: Vulkan
 * 1.3, subgroup 32, f64, cooperative matrix"), or NULL (error set) when the
 * backend is unavailable. The string stays valid until the next call. */
ASG_API const char *asg_backend_device(const char *name);

/* Copies nbytes (must equal the input's size) into the named input. */
ASG_API asg_status asg_program_feed(asg_program *p, const char *name, const void *data,
                                    size_t nbytes);
/* The same, type-checked: data holds numel(shape) elements of dt, and dt and
 * shape must be the input's (ASG_ERR_DTYPE / ASG_ERR_SHAPE otherwise, with
 * both in the message). */
ASG_API asg_status asg_program_feed_tensor(asg_program *p, const char *name, asg_dtype dt,
                                           asg_shape shape, const void *data);
/* Runs the program once. Every input must have been fed at least once since
 * compile (feeding again between runs is optional: an input keeps its last
 * value); otherwise the run fails naming the unfed inputs. */
ASG_API asg_status asg_program_run(asg_program *p);
/* Copies an output (one of those compiled for), a tap, a variable or an
 * input into dst. Any other node of the graph gives ASG_ERR_NOT_FOUND naming
 * it and telling to tap it (asg_compile_opts.taps). */
ASG_API asg_status asg_program_fetch(asg_program *p, const asg_tensor *t, void *dst, size_t nbytes);
/* Reads the tap compiled as asg_compile_opts.tap_names[i] == name (a tapped
 * tensor is read with asg_program_fetch). ASG_ERR_NOT_FOUND naming it when
 * no tap has that name. */
ASG_API asg_status asg_program_fetch_tap(asg_program *p, const char *name, void *dst,
                                         size_t nbytes);

/* What a node callback sees after each step of a run. */
typedef struct asg_node_info {
  int step;                 /* index in the schedule: 0, 1, ... */
  uint64_t run;             /* the run count when this run started */
  const asg_tensor *tensor; /* the graph's node (compare it with yours; dereference
                               it only while the graph lives) */
  const char *label;        /* "scope/op" (as in error messages) */
  asg_dtype dtype;
  asg_shape shape;
  const void *data; /* the step's output, read-only, valid during the call only */
} asg_node_info;
typedef void (*asg_node_callback)(const asg_node_info *info, void *ctx);
/* CPU only: calls fn(info, ctx) after each step of every later run, in
 * schedule order, on the thread that runs the program (custom inspection:
 * statistics, dumps). fn NULL removes it. With a callback set, runs take
 * a slower path; without one they cost nothing extra. ASG_ERR_UNSUPPORTED on
 * other backends and for symbolic programs. */
ASG_API asg_status asg_program_set_node_callback(asg_program *p, asg_node_callback fn, void *ctx);

/* The first element of an output as a double (NaN and an error if absent). */
ASG_API double asg_program_scalar(asg_program *p, const asg_tensor *t);

ASG_API asg_status asg_program_get_variable(asg_program *p, const char *name, void *dst,
                                            size_t nbytes);
ASG_API asg_status asg_program_set_variable(asg_program *p, const char *name, const void *src,
                                            size_t nbytes);
ASG_API int asg_program_variable_count(const asg_program *p);
/* Name, dtype and shape of variable i (any pointer may be NULL). */
ASG_API asg_status asg_program_variable_info(const asg_program *p, int i, const char **name,
                                             asg_dtype *dt, asg_shape *shape);
/* Bytes of the planned activation arena (reused buffers), excluding
 * variables, constants and inputs. */
ASG_API size_t asg_program_peak_memory(const asg_program *p);
/* Bytes held by variables, constants and inputs. */
ASG_API size_t asg_program_persistent_memory(const asg_program *p);
ASG_API int asg_program_step_count(const asg_program *p);
/* Number of completed runs; random ops draw from (seed, run count). */
ASG_API uint64_t asg_program_run_count(const asg_program *p);
ASG_API void asg_program_set_run_count(asg_program *p, uint64_t n);
ASG_API const char *asg_program_backend(const asg_program *p);
/* Device buffers allocated now on the program's device, and their bytes
 * (as allocated, rounded up to the backend's alignment): every program
 * sharing the device (programs that share variables, and a symbolic
 * program's specializations) counts here; on Vulkan the device is the
 * process's, so all its programs count. What a backend counts besides
 * variables, constants, inputs and arenas: docs/backends.md. Either
 * pointer may be NULL. For leak checks: e.g. equal counts after freeing
 * what was compiled since. */
ASG_API asg_status asg_program_device_memory(const asg_program *p, size_t *buffers, size_t *bytes);

/* ---- Symbolic shapes (docs/symbolic.md) ----
 * A program compiled from a graph with symbolic dims (asg_dim) binds the
 * symbols from the shapes fed: asg_program_feed_tensor binds every symbol
 * that is a dim of the input on its own ([batch, 784]); asg_program_feed
 * works when at most one such dim is not known yet (from another input fed
 * since the last run, or asg_program_bind): its size gives it. Values given
 * since the last run must agree (else an error names the symbol, both
 * values and the inputs, and the feed is refused); an input fed before with
 * another value must be fed again. The first run with a new binding
 * specializes the program (a static plan, memory plan and backend state for
 * those sizes); later runs with that binding reuse it, from a cache bounded
 * by asg_compile_opts.max_specializations / max_specialization_bytes. All
 * specializations share one copy of the variables. Every other call works
 * as on a static program: fetch, scalar, peak/persistent memory and step
 * count refer to the last run's specialization (0 / an error before any).
 * On a static program the calls below accept n == 0 only. */

/* Binds symbols by name (e.g. those no input carries); values >= 1 and
 * within the declared bounds. They hold until changed. */
ASG_API asg_status asg_program_bind(asg_program *p, int n, const char *const *names,
                                    const int64_t *values);
/* Builds the specialization of a full binding (every symbol) ahead of time. */
ASG_API asg_status asg_program_prepare(asg_program *p, int n, const char *const *names,
                                       const int64_t *values);
/* The arena bytes (as asg_program_peak_memory) a full binding would use,
 * without allocating it. */
ASG_API asg_status asg_program_peak_memory_for(asg_program *p, int n, const char *const *names,
                                               const int64_t *values, size_t *bytes);
/* The concrete shape of an output (or variable, input): under the last
 * run's binding, or before the first run the binding fed so far. */
ASG_API asg_status asg_program_output_shape(asg_program *p, const asg_tensor *t, asg_shape *shape);
/* Specializations cached now, and the device bytes they hold besides the
 * shared variables (0 for a static program). */
ASG_API int asg_program_specialization_count(const asg_program *p);
ASG_API size_t asg_program_specialization_bytes(const asg_program *p);

#ifdef __cplusplus
}
#endif
#endif
