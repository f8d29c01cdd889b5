/* The backend parity suite (tests/test_parity.c): the harness every case
 * file uses (tests/parity/harness.c) and the case families main runs, in
 * its order (one file per family under tests/parity/). */
#ifndef ASG_PARITY_H
#define ASG_PARITY_H

#include <stdlib.h>
#include <string.h>

#include "../testutil.h"

/* ------------------------------------------------------------------ state */

extern const char *g_backend;       /* the backend under test (argv[1]) */
extern bool g_covered[256];         /* per op of the table: some case showed it */
extern char g_first_case[256][200]; /* the first case that showed each op */
extern const char *g_cur_case;      /* the title of the case being built */
extern int g_n_ops;                 /* asg_op_count() */
/* ASG_PARITY_FILTER=text: report only the checks whose title contains text */
extern const char *g_filter;
/* The communicator of the collective cases: this process alone (NULL when
 * that failed: the collective cases are then not run) */
extern asg_comm *g_comm;

extern const asg_dtype FDT[2]; /* f32, f64 */
extern const asg_dtype IDT[2]; /* i32, i64 */

/* ---------------------------------------------------------------- coverage */

void mark_name(const char *name); /* records the op of that name as shown */
asg_tensor *mark(asg_tensor *t);  /* records t's op; returns t */

/* ------------------------------------------------------------------ values */

long numel(asg_shape s);
const char *shp(asg_shape s); /* "[2,3]" (one of 8 rotating buffers) */
const char *dtn(asg_dtype dt);
void *to_dtype(asg_dtype dt, const double *v, long n); /* malloc'ed */
double *rv(long n, double lo, double hi, bool integer);

/* --------------------------------------------------------------- the cases */

/* Comparison classes (tolerances: the header of tests/test_parity.c). */
typedef enum tclass { C_ELEM = 0, C_ACCUM, C_EXACT, C_RNG } tclass;

#define MAXIN 8
#define MAXOUT 32

typedef struct pcase {
  char title[200];
  asg_graph *g;
  int n_in;
  char in_name[MAXIN][16];
  void *in_data[MAXIN];
  size_t in_bytes[MAXIN];
  asg_tensor *in_t[MAXIN];
  int n_out;
  asg_tensor *out[MAXOUT];
  char out_label[MAXOUT][32];
  tclass out_cls[MAXOUT];
  bool out_cmp[MAXOUT];
  tclass cls, gcls;
  int runs;
  bool no_grad;
  bool unchecked; /* compile with unchecked_indices (out-of-range indices on purpose) */
  bool coll;      /* compile with the communicator (collective ops) */
  /* out_same[k] = i + 1: the CPU's output k must equal input i bit for bit
   * (collectives in a world of one are identities and copies) */
  int out_same[MAXOUT];
  int n_var;
  const char *var_name[4];
  const char *fused; /* the fused op (asg_op_is_fused) the compiler should make here */
} pcase;

/* A new case: its graph, comparison class and title. */
void pc_begin(pcase *pc, tclass cls, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
asg_tensor *pc_in_vals(pcase *pc, asg_dtype dt, asg_shape s, const double *v);
asg_tensor *pc_in(pcase *pc, asg_dtype dt, asg_shape s, double lo, double hi);
asg_tensor *pc_in_int(pcase *pc, asg_dtype dt, asg_shape s, double lo, double hi);
void pc_out_ex(pcase *pc, asg_tensor *t, const char *label, tclass cls, bool cmp);
void pc_out(pcase *pc, asg_tensor *t, const char *label);
/* Adds the loss and its gradients, compiles on both, runs, compares, reports
 * and frees the case. */
void pc_finish(pcase *pc);

int cmp_vals(const char *what, asg_dtype dt, tclass cls, const double *got, const double *want,
             long n, char *msg, size_t msz);
int cmp_output(asg_program *ref, asg_program *dut, asg_tensor *t, const char *label, tclass cls,
               char *msg, size_t msz);
int cmp_variable(asg_program *ref, asg_program *dut, const char *name, tclass cls, char *msg,
                 size_t msz);
/* One "ok"/"FAIL" line, counted by tu_finish. */
void report(const char *title, int ok, const char *msg);
asg_program *compile_on(asg_graph *g, int n, asg_tensor *const *outs, const char *be, int threads,
                        bool unchecked, asg_comm *comm, bool no_fusion);
int dut_threads(void);
void check_harness(void); /* the comparison against the stated tolerances */

/* -------------------------------------------------- the families (by file) */

/* elementwise.c */
void cases_unary(void);
void cases_cast(void);
void cases_binary(void);
void cases_chains(void);
/* reduce_shape_index.c */
void cases_reduce(void);
void cases_matmul(void);
void cases_shape(void);
void cases_index(void);
void cases_sample(void);
void cases_sort(void);
/* nn.c */
void cases_layernorm(void);
void cases_rmsnorm(void);
void cases_rope(void);
void cases_batchnorm(void);
void cases_softmax_ce(void);
void cases_ce_edges(void);
void cases_attention(void);
void cases_attention_masked(void);
/* conv_pool.c */
void cases_conv(void);
void cases_pool(void);
void cases_resample(void);
/* random_state.c */
void cases_random(void);
void cases_state(void);
void cases_cache_write(void);
void case_pipelined_feeds(void);
/* custom.c */
void cases_custom(void);
/* collectives.c */
void cases_collective(void);
void case_coll_half(asg_dtype dt);
/* training.c */
void cases_train(void);
void cases_optim(void);
/* precision_fusion.c */
void case_fast_matmul(int mode);
void case_fast_attention(int mode);
void case_epilogue(int variant);
void case_add_ln(int variant);
void case_rowdot(int variant);
void case_colsum(int variant);
void case_half_logits(int variant);
void case_shared_half(void);
void case_ce_half(int fp16);
void case_ln_half(int variant);
void case_perm_half(int variant);
void case_unary_half(int variant);

#endif
