/* Gradient checkpointing (asg_graph_checkpoint_scope, asg_graph_declare_block,
 * asg_compile_opts.checkpoint_blocks): the recomputed backward gives the same
 * gradients as the stored one, bitwise on the CPU (the copies run the same
 * kernels on the same values, and every gradient op is the same op in the
 * same order), dropout included; the plan's peak memory drops where it
 * must; the copies run late; bad names and misuse are clear errors;
 * symbolic programs work. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

enum { B = 256, D = 64, L = 6, NV = 3 * L };

/* Residual MLP blocks "blk<l>" (a transformer's MLP: hidden width 4D):
 * h += dropout(gelu(h w1 + b1)) w2; loss mean(h^2). batch: a dim (constant
 * or symbolic). *x_out: the input. Variables: 3 per block. */
static asg_tensor *mlp(asg_graph *g, int64_t batch, double p, asg_tensor **x_out) {
  asg_tensor *x = asg_input(g, "x", ASG_F32, ASG_SHAPE(batch, D)), *h = x;
  *x_out = x;
  for (int l = 0; l < L; l++) {
    char name[32];
    snprintf(name, sizeof name, "blk%d", l);
    asg_scope_push(g, name);
    snprintf(name, sizeof name, "blk%d.w1", l);
    asg_tensor *w1 =
        asg_variable(g, name, ASG_F32, ASG_SHAPE(D, 4 * D), asg_init_xavier_uniform(0));
    snprintf(name, sizeof name, "blk%d.b1", l);
    asg_tensor *b1 = asg_variable(g, name, ASG_F32, ASG_SHAPE(4 * D), asg_init_uniform(-0.1, 0.1));
    snprintf(name, sizeof name, "blk%d.w2", l);
    asg_tensor *w2 =
        asg_variable(g, name, ASG_F32, ASG_SHAPE(4 * D, D), asg_init_xavier_uniform(0));
    asg_tensor *a = asg_gelu(asg_add(asg_matmul(h, w1), b1));
    if (p > 0) a = asg_dropout(a, p, 1000 + (uint64_t)l);
    h = asg_add(h, asg_matmul(a, w2));
    asg_scope_pop(g);
  }
  return asg_mean(asg_mul(h, h), ASG_ALL_AXES, false);
}

static void feed_x(asg_program *p, long n, unsigned long long seed) {
  double *v = malloc(sizeof *v * (size_t)n);
  tu_rand(seed, v, n, -1, 1);
  TU_CHECK(tu_feed(p, "x", ASG_F32, v, n) == ASG_OK, "feed x: %s", asg_last_error());
  free(v);
}

/* Elements that differ (exactly) between the variables of a and b; -1 when
 * their variables differ in name or size. */
static long var_diffs(asg_program *a, asg_program *b) {
  int n = asg_program_variable_count(a);
  if (n != asg_program_variable_count(b) || n == 0) return -1;
  long diff = 0;
  for (int i = 0; i < n; i++) {
    const char *name;
    asg_shape s;
    if (asg_program_variable_info(a, i, &name, NULL, &s)) return -1;
    long k = (long)asg_shape_numel(s);
    double *va = malloc(sizeof *va * (size_t)k), *vb = malloc(sizeof *vb * (size_t)k);
    if (!va || !vb || tu_get_var(a, name, va) != k || tu_get_var(b, name, vb) != k) {
      free(va), free(vb);
      return -1;
    }
    for (long j = 0; j < k; j++)
      diff += memcmp(&va[j], &vb[j], sizeof va[j]) != 0;
    free(va), free(vb);
  }
  return diff;
}

/* Gradients of the MLP (with dropout) by asg_grad: every block marked
 * (plus one mark nested in another: the outer one wins) against none, over
 * two runs (fresh dropout masks each run). Bitwise equal. */
static void test_mlp_grads_bitwise(void) {
  asg_graph *gs[2];
  asg_tensor *loss[2], *grads[2][NV], *outs[2][NV + 1];
  asg_program *p[2];
  for (int c = 0; c < 2; c++) {
    asg_graph *g = gs[c] = asg_graph_new();
    asg_tensor *x;
    loss[c] = mlp(g, B, 0.3, &x);
    if (c == 1) {
      for (int l = 0; l < L; l++) {
        char name[16];
        snprintf(name, sizeof name, "blk%d", l);
        TU_CHECK(asg_graph_checkpoint_scope(g, name) == ASG_OK, "mark %s: %s", name,
                 asg_last_error());
      }
      TU_CHECK(asg_graph_checkpoint_scope(g, "blk2") == ASG_OK, "marking twice is fine");
    }
    asg_tensor *wrt[NV];
    for (int i = 0; i < NV; i++)
      wrt[i] = asg_graph_variable(g, i);
    TU_CHECK(asg_grad(loss[c], NV, wrt, grads[c]) == ASG_OK, "grad: %s", asg_last_error());
    outs[c][0] = loss[c];
    for (int i = 0; i < NV; i++)
      outs[c][1 + i] = grads[c][i];
    p[c] = asg_compile(g, NV + 1, outs[c], NULL);
    TU_CHECK(p[c] != NULL, "compile: %s", asg_last_error());
  }
  if (!p[0] || !p[1]) goto out;
  TU_CHECK(asg_graph_node_count(gs[1]) > asg_graph_node_count(gs[0]),
           "checkpointing adds the copies (%d vs %d nodes)", asg_graph_node_count(gs[1]),
           asg_graph_node_count(gs[0]));
  for (int run = 0; run < 2; run++) {
    long diff = 0, n = 0;
    for (int c = 0; c < 2; c++) {
      feed_x(p[c], B * D, 7 + (unsigned long long)run);
      TU_CHECK(asg_program_run(p[c]) == ASG_OK, "run: %s", asg_last_error());
    }
    for (int i = 0; i < NV + 1; i++) {
      long k = (long)asg_shape_numel(asg_tensor_shape(outs[0][i]));
      double *a = malloc(sizeof *a * (size_t)k), *b = malloc(sizeof *b * (size_t)k);
      if (a && b && !tu_fetch(p[0], outs[0][i], a) && !tu_fetch(p[1], outs[1][i], b))
        for (long j = 0; j < k; j++)
          diff += memcmp(&a[j], &b[j], sizeof a[j]) != 0;
      else
        diff += k;
      n += k;
      free(a), free(b);
    }
    TU_CHECK(diff == 0, "run %d: %ld of %ld loss/gradient elements differ with checkpointing", run,
             diff, n);
  }
out:
  for (int c = 0; c < 2; c++) {
    asg_program_free(p[c]);
    asg_graph_free(gs[c]);
  }
}

/* One compiled train step of the MLP: SGD, every block checkpointed or
 * none (symbolic batch when sym). */
static asg_program *mlp_train(bool ckpt, bool sym, double p, asg_graph **g_out) {
  asg_graph *g = *g_out = asg_graph_new();
  asg_tensor *x;
  asg_tensor *loss = mlp(g, sym ? asg_dim(g, "batch", 0) : B, p, &x);
  for (int l = 0; l < L && ckpt; l++) {
    char name[16];
    snprintf(name, sizeof name, "blk%d", l);
    asg_graph_checkpoint_scope(g, name);
  }
  asg_program *pr = asg_compile_train(g, loss, asg_sgd(0.1, 0.9), 0, NULL, NULL);
  TU_CHECK(pr != NULL, "compile_train (ckpt %d sym %d): %s", ckpt, sym, asg_last_error());
  return pr;
}

/* The planned activation arena is smaller with checkpointing: each block
 * keeps its input only, and one block's values are live at a time in the
 * backward. Fails if the copies ran early (right after the forward) or
 * the backward read the originals. */
static void test_peak_memory(void) {
  asg_graph *g0, *g1;
  asg_program *p0 = mlp_train(false, false, 0.3, &g0), *p1 = mlp_train(true, false, 0.3, &g1);
  if (p0 && p1) {
    size_t m0 = asg_program_peak_memory(p0), m1 = asg_program_peak_memory(p1);
    printf("mlp B %d D %d L %d: peak %zu -> %zu bytes with checkpointing, steps %d -> %d\n", B, D,
           L, m0, m1, asg_program_step_count(p0), asg_program_step_count(p1));
    /* stored: about 3 [B, 4D] values per block (gelu's input, the mask,
     * dropout's output); checkpointed: the L block inputs [B, D] and one
     * block's values */
    TU_CHECK(m1 * 10 < m0 * 6, "peak %zu with checkpointing vs %zu without: not below 60%%", m1,
             m0);
    TU_CHECK(asg_program_step_count(p1) > asg_program_step_count(p0),
             "the checkpointed step recomputes (%d vs %d steps)", asg_program_step_count(p1),
             asg_program_step_count(p0));
    for (int s = 0; s < 3; s++) { /* and trains the same, bitwise */
      feed_x(p0, B * D, 100 + (unsigned long long)s);
      feed_x(p1, B * D, 100 + (unsigned long long)s);
      TU_CHECK(asg_program_run(p0) == ASG_OK && asg_program_run(p1) == ASG_OK, "run: %s",
               asg_last_error());
    }
    TU_CHECK(var_diffs(p0, p1) == 0, "parameters after 3 SGD steps differ (%ld elements)",
             var_diffs(p0, p1));
  }
  asg_program_free(p0), asg_program_free(p1);
  asg_graph_free(g0), asg_graph_free(g1);
}

/* The schedule (a profile lists the steps in plan order): the copies of a
 * block run after the loss and after the copies of every later block
 * (whose backward comes first), and dropout's mask is among them. */
static void test_schedule_late(void) {
  asg_graph *g = asg_graph_new();
  asg_tensor *x, *loss = mlp(g, B, 0.3, &x);
  for (int l = 0; l < L; l++) {
    char name[16];
    snprintf(name, sizeof name, "blk%d", l);
    asg_graph_checkpoint_scope(g, name);
  }
  asg_compile_opts o = {.profile = 1};
  asg_program *p = asg_compile_train(g, loss, asg_sgd(0.1, 0), 0, NULL, &o);
  TU_CHECK(p != NULL, "compile: %s", asg_last_error());
  if (!p) {
    asg_graph_free(g);
    return;
  }
  feed_x(p, B * D, 3);
  asg_profile prof;
  TU_CHECK(asg_program_run(p) == ASG_OK && asg_program_profile_get(p, &prof) == ASG_OK,
           "profiled run: %s", asg_last_error());
  int loss_at = -1, first[L], last[L], masks = 0;
  for (int l = 0; l < L; l++)
    first[l] = last[l] = -1;
  for (int i = 0; i < prof.n_steps; i++) {
    const asg_profile_step *s = &prof.steps[i];
    int l;
    if (sscanf(s->scope, "blk%d/remat", &l) == 1 && l >= 0 && l < L && strstr(s->scope, "/remat")) {
      if (first[l] < 0) first[l] = i;
      last[l] = i;
      masks += strcmp(s->op, "rand_bernoulli") == 0;
    }
    if (strcmp(s->op, "mean") == 0 && !s->scope[0] && loss_at < 0) loss_at = i;
  }
  TU_CHECK(loss_at >= 0, "the loss's step is in the profile");
  /* every block recomputes its dropout mask */
  TU_CHECK(masks == L, "%d dropout masks recomputed, want %d", masks, L);
  for (int l = 0; l < L; l++)
    TU_CHECK(first[l] > loss_at, "blk%d's copies start at step %d, the loss is step %d", l,
             first[l], loss_at);
  for (int l = 0; l + 1 < L; l++)
    TU_CHECK(first[l] > last[l + 1], "blk%d's copies (from step %d) run after blk%d's (to %d)", l,
             first[l], l + 1, last[l + 1]);
  asg_program_free(p);
  asg_graph_free(g);
}

/* A small transformer (two pre-LN blocks with dropout on the attention
 * weights, the attention output and the MLP) trained with
 * checkpoint_blocks against without: same parameters after two AdamW
 * steps; the peak is lower. */
static asg_program *transformer(bool blocks, double *loss_out, size_t *peak) {
  const int Bt = 2, T = 8, Dm = 16;
  asg_graph *g = asg_graph_new();
  asg_tensor *x = asg_input(g, "x", ASG_F32, ASG_SHAPE(Bt, T, Dm)), *h = x;
  asg_attention_opts ao = {.causal = true, .dropout = 0.2};
  for (int l = 0; l < 2; l++) {
    char name[16];
    snprintf(name, sizeof name, "tb%d", l);
    h = asg_layer_apply(asg_nn_transformer_block(g, name, Dm, 2, 4 * Dm, &ao, 0.25), h);
  }
  asg_tensor *loss = asg_mean(asg_mul(h, h), ASG_ALL_AXES, false);
  asg_compile_opts o = {.checkpoint_blocks = blocks};
  asg_program *p = loss ? asg_compile_train(g, loss, asg_adamw(1e-2, 0.01), 0, NULL, &o) : NULL;
  TU_CHECK(p != NULL, "transformer (blocks %d): %s", blocks, asg_last_error());
  if (p) {
    *peak = asg_program_peak_memory(p);
    for (int s = 0; s < 2; s++) {
      feed_x(p, Bt * T * Dm, 50 + (unsigned long long)s);
      TU_CHECK(asg_program_run(p) == ASG_OK, "run: %s", asg_last_error());
    }
    *loss_out = asg_program_scalar(p, loss);
  }
  asg_graph_free(g);
  return p;
}

static void test_transformer_blocks(void) {
  double l0 = 0, l1 = 1;
  size_t m0 = 0, m1 = 0;
  asg_program *p0 = transformer(false, &l0, &m0), *p1 = transformer(true, &l1, &m1);
  if (p0 && p1) {
    TU_CHECK(memcmp(&l0, &l1, sizeof l0) == 0, "loss %.9g vs %.9g with checkpoint_blocks", l0, l1);
    TU_CHECK(var_diffs(p0, p1) == 0, "parameters differ with checkpoint_blocks (%ld elements)",
             var_diffs(p0, p1));
    TU_CHECK(m1 < m0, "peak %zu with checkpoint_blocks, %zu without", m1, m0);
  }
  asg_program_free(p0), asg_program_free(p1);
}

/* A GPT-2-shaped asg_lm_forward declares its layers "h.<i>": one SGD step
 * with checkpoint_blocks matches the stored one bitwise. */
static void test_lm_blocks(void) {
  asg_lm_config c = {.arch = ASG_LM_GPT2,
                     .vocab_size = 40,
                     .n_layer = 2,
                     .d_model = 16,
                     .n_head = 2,
                     .n_kv_head = 2,
                     .max_pos = 16,
                     .norm_eps = 1e-5,
                     .tie_embeddings = true,
                     .bos_id = -1,
                     .eos_id = -1};
  asg_program *p[2] = {NULL, NULL};
  size_t peak[2] = {0, 0};
  int32_t tok[2 * 8], tgt[2 * 8];
  for (int i = 0; i < 16; i++)
    tok[i] = (int32_t)((i * 7 + 3) % 40), tgt[i] = (int32_t)((i * 5 + 1) % 40);
  for (int k = 0; k < 2; k++) {
    asg_graph *g = asg_graph_new();
    asg_lm_inputs in = {.tokens = asg_input(g, "tokens", ASG_I32, ASG_SHAPE(2, 8))};
    asg_tensor *y = asg_input(g, "targets", ASG_I32, ASG_SHAPE(2, 8));
    asg_tensor *loss = asg_softmax_cross_entropy(asg_lm_forward(g, &c, ASG_F32, &in), y, 0, -100);
    asg_compile_opts o = {.checkpoint_blocks = k == 1};
    p[k] = loss ? asg_compile_train(g, loss, asg_sgd(0.5, 0), 0, NULL, &o) : NULL;
    TU_CHECK(p[k] != NULL, "lm (blocks %d): %s", k, asg_last_error());
    if (p[k]) {
      peak[k] = asg_program_peak_memory(p[k]);
      TU_CHECK(asg_program_feed(p[k], "tokens", tok, sizeof tok) == ASG_OK &&
                   asg_program_feed(p[k], "targets", tgt, sizeof tgt) == ASG_OK &&
                   asg_program_run(p[k]) == ASG_OK,
               "lm run: %s", asg_last_error());
    }
    asg_graph_free(g);
  }
  if (p[0] && p[1]) {
    TU_CHECK(var_diffs(p[0], p[1]) == 0, "lm parameters differ with checkpoint_blocks (%ld)",
             var_diffs(p[0], p[1]));
    TU_CHECK(peak[1] < peak[0], "lm peak %zu with checkpoint_blocks, %zu without", peak[1],
             peak[0]);
  }
  asg_program_free(p[0]), asg_program_free(p[1]);
}

/* Symbolic batch: the checkpointed symbolic program trains as the stored
 * one (bitwise) and plans less memory for a binding. */
static void test_symbolic(void) {
  asg_graph *g0, *g1;
  asg_program *p0 = mlp_train(false, true, 0.3, &g0), *p1 = mlp_train(true, true, 0.3, &g1);
  if (p0 && p1) {
    const char *names[1] = {"batch"};
    const int64_t big[1] = {512};
    size_t m0 = 0, m1 = 0;
    TU_CHECK(asg_program_peak_memory_for(p0, 1, names, big, &m0) == ASG_OK &&
                 asg_program_peak_memory_for(p1, 1, names, big, &m1) == ASG_OK,
             "peak_memory_for: %s", asg_last_error());
    TU_CHECK(m1 * 10 < m0 * 6, "symbolic: peak %zu with checkpointing vs %zu", m1, m0);
    for (int s = 0; s < 2; s++) { /* two batch sizes: two specializations */
      long n = (s ? 5 : 12) * D;
      feed_x(p0, n, 30 + (unsigned long long)s);
      feed_x(p1, n, 30 + (unsigned long long)s);
      TU_CHECK(asg_program_run(p0) == ASG_OK && asg_program_run(p1) == ASG_OK, "symbolic run: %s",
               asg_last_error());
    }
    TU_CHECK(var_diffs(p0, p1) == 0, "symbolic: parameters differ (%ld elements)",
             var_diffs(p0, p1));
  }
  asg_program_free(p0), asg_program_free(p1);
  asg_graph_free(g0), asg_graph_free(g1);
}

static void test_errors(void) {
  asg_graph *g = asg_graph_new();
  asg_tensor *x;
  asg_tensor *loss = mlp(g, B, 0, &x);
  asg_clear_error();
  TU_CHECK(asg_graph_checkpoint_scope(g, "blk9") == ASG_ERR_NOT_FOUND &&
               tu_contains(asg_last_error(), "'blk9'") && tu_contains(asg_last_error(), "blk0"),
           "unknown scope: %s", asg_last_error());
  /* a prefix that is not a whole scope name */
  TU_CHECK(asg_graph_checkpoint_scope(g, "blk") == ASG_ERR_NOT_FOUND, "'blk' is no scope: %s",
           asg_last_error());
  TU_CHECK(asg_graph_checkpoint_scope(g, "") == ASG_ERR_INVALID, "empty scope");
  TU_CHECK(asg_graph_checkpoint_scope(g, NULL) == ASG_ERR_INVALID, "NULL scope");
  TU_CHECK(asg_graph_checkpoint_scope(NULL, "blk0") == ASG_ERR_INVALID, "NULL graph");
  TU_CHECK(asg_graph_declare_block(g, NULL) == ASG_ERR_INVALID, "declare NULL");
  TU_CHECK(asg_graph_declare_block(NULL, "a") == ASG_ERR_INVALID, "declare on NULL graph");
  /* checkpoint_blocks and no declared block */
  asg_compile_opts o = {.checkpoint_blocks = true};
  asg_clear_error();
  asg_program *p = asg_compile_train(g, loss, asg_sgd(0.1, 0), 0, NULL, &o);
  TU_CHECK(p == NULL && tu_contains(asg_last_error(), "declares no block"),
           "checkpoint_blocks without blocks: %s", asg_last_error());
  asg_program_free(p);
  /* a declared block then works (the MLP's blocks, by name) */
  for (int l = 0; l < L; l++) {
    char name[16];
    snprintf(name, sizeof name, "blk%d", l);
    TU_CHECK(asg_graph_declare_block(g, name) == ASG_OK, "declare: %s", asg_last_error());
  }
  p = asg_compile_train(g, loss, asg_sgd(0.1, 0), 0, NULL, &o);
  TU_CHECK(p != NULL, "checkpoint_blocks with declared blocks: %s", asg_last_error());
  asg_program_free(p);
  /* a failed graph: its error */
  asg_matmul(x, x);
  TU_CHECK(asg_graph_status(g) != ASG_OK, "graph failed");
  TU_CHECK(asg_graph_checkpoint_scope(g, "blk0") == asg_graph_status(g) &&
               tu_contains(asg_last_error(), "matmul"),
           "failed graph: %s", asg_last_error());
  asg_graph_free(g);
}

int main(void) {
  test_mlp_grads_bitwise();
  test_peak_memory();
  test_schedule_late();
  test_transformer_blocks();
  test_lm_blocks();
  test_symbolic();
  test_errors();
  return tu_finish();
}
