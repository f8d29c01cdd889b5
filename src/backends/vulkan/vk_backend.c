/* The Vulkan backend: the dispatch table and the executor. A compiled
 * program is recorded ONCE into a command buffer (every step's dispatches,
 * with a barrier only where a step touches memory that an earlier step since
 * the last barrier wrote, or writes memory it read) and that command buffer
 * is resubmitted by every run. Runs do not wait; reading a buffer does.
 * Collectives split the recording into segments, one command buffer each,
 * with the collective run on the host between them (vk.h, vk_collective.c).
 * ASG_PROFILE=1 times every step with timestamp queries (waiting after
 * each run) and prints the time per op kind when the program is freed. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/vulkan/vk.h"
#include "runtime/custom_call.h"
#include "runtime/inspect.h"
#include "runtime/backend.h"

static asg_vk_kernel table[ASG_OP_COUNT];
static pthread_once_t table_once = PTHREAD_ONCE_INIT;

static void table_fill(void) {
  asg_vk_register_elementwise(table);
  asg_vk_register_reduce(table);
  asg_vk_register_matmul(table);
  asg_vk_register_index(table);
  asg_vk_register_nn(table);
  asg_vk_register_rope(table);
  asg_vk_register_batchnorm(table);
  asg_vk_register_conv(table);
  asg_vk_register_optim(table);
  asg_vk_register_attention(table);
  asg_vk_register_sample(table);
  asg_vk_register_resample(table);
  asg_vk_register_sort(table);
  asg_vk_register_collective(table);
}

/* ------------------------------------------------------------- recording */

enum { CMD_BARRIER = -1, CMD_HOST = -2 }; /* vk_cmd.shader other than a shader */

typedef struct vk_cmd {
  int shader;       /* a shader, CMD_BARRIER or CMD_HOST (the step runs on the host) */
  size_t param_off; /* into the parameter buffer */
  uint32_t g[3];
  int step; /* for profiling */
} vk_cmd;

typedef struct vk_range {
  uint64_t lo, hi;
} vk_range;

struct asg_vk_rec {
  vk_cmd *cmds;
  int n, cap;
  unsigned char *params;
  size_t n_params, cap_params;
  vk_range *rd, *wr; /* ranges read / written since the last barrier */
  int n_rd, n_wr, cap_rd, cap_wr;
  int step;
  int n_host; /* host steps: the command buffers are n_host + 1 segments */
  asg_status err;
};

static bool grow(void **p, int *cap, int need, size_t elem) {
  if (need <= *cap) return true;
  int c = *cap ? *cap * 2 : 64;
  while (c < need)
    c *= 2;
  void *np = realloc(*p, elem * (size_t)c);
  if (!np) return false;
  *p = np;
  *cap = c;
  return true;
}

static void push_cmd(asg_vk_rec *r, vk_cmd cmd) {
  if (r->err) return;
  if (!grow((void **)&r->cmds, &r->cap, r->n + 1, sizeof *r->cmds)) {
    r->err = asg__error(ASG_ERR_OOM, "vulkan: out of memory");
    return;
  }
  r->cmds[r->n++] = cmd;
}

static void rec_barrier(asg_vk_rec *r) {
  if (r->n && r->cmds[r->n - 1].shader == CMD_BARRIER) return;
  push_cmd(r, (vk_cmd){CMD_BARRIER, 0, {0, 0, 0}, r->step});
  r->n_rd = r->n_wr = 0;
}

void asg_vk_barrier(const asg_vk_call *c) { rec_barrier(c->rec); }

asg_status asg_vk_host_step(const asg_vk_call *c) {
  asg_vk_rec *r = c->rec;
  push_cmd(r, (vk_cmd){CMD_HOST, 0, {0, 0, 0}, r->step});
  r->n_host++;
  r->n_rd = r->n_wr = 0; /* the segment's end waits for everything */
  return r->err;
}

asg_status asg_vk_dispatch(const asg_vk_call *c, const char *shader, const void *params,
                           size_t bytes, uint32_t gx, uint32_t gy, uint32_t gz) {
  asg_vk_rec *r = c->rec;
  if (r->err) return r->err;
  int idx = asg_vk_shader_index(shader);
  if (idx < 0)
    return r->err =
               asg__error(ASG_ERR_UNSUPPORTED, "vulkan: %s: no shader '%s'", c->s->label, shader);
  const uint32_t *mg = c->ctx->caps.max_groups;
  if (gx > mg[0] || gy > mg[1] || gz > mg[2])
    return r->err = asg__error(ASG_ERR_UNSUPPORTED,
                               "vulkan: %s: %u x %u x %u work groups exceed the device limit",
                               c->s->label, gx, gy, gz);
  if (!gx || !gy || !gz) return ASG_OK; /* nothing to do (empty tensor) */
  size_t off = (r->n_params + 15) & ~(size_t)15;
  if (off + bytes > r->cap_params) {
    size_t cap = r->cap_params ? r->cap_params * 2 : 4096;
    while (cap < off + bytes)
      cap *= 2;
    unsigned char *np = realloc(r->params, cap);
    if (!np) return r->err = asg__error(ASG_ERR_OOM, "vulkan: out of memory");
    r->params = np;
    r->cap_params = cap;
  }
  memset(r->params + r->n_params, 0, off - r->n_params);
  memcpy(r->params + off, params, bytes);
  r->n_params = off + bytes;
  push_cmd(r, (vk_cmd){idx, off, {gx, gy, gz}, r->step});
  return r->err;
}

uint32_t asg_vk_groups(const asg_vk_call *c, int64_t n, int64_t per_group) {
  if (n <= 0) return 0;
  int64_t g = (n + per_group - 1) / per_group, cap = c->ctx->caps.max_groups[0];
  if (cap > 65535) cap = 65535; /* plenty for grid-stride loops */
  return (uint32_t)(g < cap ? g : cap);
}

const char *asg_vk_suffix(asg_dtype dt) {
  switch (dt) {
  case ASG_F32: return "_f32";
  case ASG_F64: return "_f64";
  case ASG_I32: return "_i32";
  case ASG_I64: return "_i64";
  default: return NULL;
  }
}

asg_status asg_vk_variant(const asg_vk_call *c, const char *base, asg_dtype dt, char *buf,
                          size_t n) {
  const char *sfx = asg_vk_suffix(dt);
  if (!sfx || (dt == ASG_F64 && !c->ctx->caps.f64))
    return asg__error(ASG_ERR_DTYPE, "vulkan: %s: dtype %s is not supported on %s", c->s->label,
                      asg_dtype_name(dt), c->ctx->caps.name);
  snprintf(buf, n, "%s%s", base, sfx);
  return ASG_OK;
}

static bool overlaps(const vk_range *v, int n, vk_range x) {
  for (int i = 0; i < n; i++)
    if (x.lo < v[i].hi && v[i].lo < x.hi) return true;
  return false;
}

static bool add_range(vk_range **v, int *n, int *cap, vk_range x) {
  if (x.hi <= x.lo) return true;
  if (!grow((void **)v, cap, *n + 1, sizeof **v)) return false;
  (*v)[(*n)++] = x;
  return true;
}

/* Barrier before step i if it reads what is being written, or writes what
 * is being read or written, by earlier steps since the last barrier. */
static void hazard_check(asg_vk_rec *r, const asg_step *s, const asg_vk_call *c, size_t ws) {
  vk_range out = {c->out, c->out + asg__tdesc_bytes(&s->out)};
  vk_range w = {c->ws, c->ws + ws};
  bool need = overlaps(r->rd, r->n_rd, out) || overlaps(r->wr, r->n_wr, out) ||
              (ws && (overlaps(r->rd, r->n_rd, w) || overlaps(r->wr, r->n_wr, w)));
  for (int k = 0; k < s->n_aux && !need; k++) {
    vk_range a = {c->aux[k], c->aux[k] + asg__tdesc_bytes(&s->aux[k].out)};
    need = overlaps(r->rd, r->n_rd, a) || overlaps(r->wr, r->n_wr, a);
  }
  for (int j = 0; j < s->n_in && !need; j++) {
    vk_range in = {c->in[j], c->in[j] + asg__tdesc_bytes(&s->in[j])};
    need = overlaps(r->wr, r->n_wr, in);
  }
  if (need) rec_barrier(r);
}

static void note_ranges(asg_vk_rec *r, const asg_step *s, const asg_vk_call *c, size_t ws) {
  bool ok = add_range(&r->wr, &r->n_wr, &r->cap_wr,
                      (vk_range){c->out, c->out + asg__tdesc_bytes(&s->out)});
  if (ws) ok = ok && add_range(&r->wr, &r->n_wr, &r->cap_wr, (vk_range){c->ws, c->ws + ws});
  for (int k = 0; k < s->n_aux; k++)
    ok = ok && add_range(&r->wr, &r->n_wr, &r->cap_wr,
                         (vk_range){c->aux[k], c->aux[k] + asg__tdesc_bytes(&s->aux[k].out)});
  for (int j = 0; j < s->n_in; j++)
    ok = ok && add_range(&r->rd, &r->n_rd, &r->cap_rd,
                         (vk_range){c->in[j], c->in[j] + asg__tdesc_bytes(&s->in[j])});
  if (!ok && !r->err) r->err = asg__error(ASG_ERR_OOM, "vulkan: out of memory");
}

static void rec_free(asg_vk_rec *r) {
  free(r->cmds);
  free(r->params);
  free(r->rd);
  free(r->wr);
}

/* -------------------------------------------------------------- backend */

static bool vk_available(void) { return asg_vk_context() != NULL; }

static bool vk_supports(asg_op op) {
  pthread_once(&table_once, table_fill);
  if (op == ASG_OP_INPUT || op == ASG_OP_CONSTANT || op == ASG_OP_VARIABLE) return true;
  return (unsigned)op < ASG_OP_COUNT && table[op].record != NULL;
}

static asg_status vk_open(int nthreads, void **dev) {
  (void)nthreads;
  pthread_once(&table_once, table_fill);
  asg_vk_ctx *c = asg_vk_context();
  if (!c) return ASG_ERR_UNSUPPORTED;
  *dev = c;
  return ASG_OK;
}

static void vk_close(void *dev) { (void)dev; /* the device lives until exit */ }

static asg_status vk_alloc(void *dev, size_t bytes, void **buf) {
  uint64_t a = 0;
  asg_status st = asg_vk_alloc(dev, bytes, &a);
  if (!st) {
    st = asg_vk_write_zero(dev, a, bytes);
    if (st) asg_vk_free(dev, a); /* not handed out: nobody else frees it */
  }
  *buf = st ? NULL : (void *)(uintptr_t)a;
  return st;
}

static void vk_free(void *dev, void *buf) {
  if (buf) asg_vk_free(dev, (uint64_t)(uintptr_t)buf);
}

static void vk_memory_stats(void *dev, size_t *live_buffers, size_t *live_bytes) {
  asg_vk_memory_stats(dev, live_buffers, live_bytes);
}

static asg_status vk_write(void *dev, void *buf, size_t off, const void *src, size_t n) {
  return asg_vk_write(dev, (uint64_t)(uintptr_t)buf + off, src, n);
}

static asg_status vk_read(void *dev, void *buf, size_t off, void *dst, size_t n) {
  return asg_vk_read(dev, (uint64_t)(uintptr_t)buf + off, dst, n);
}

typedef struct vk_exec {
  asg_vk_ctx *ctx;
  asg_resolved r;
  uint64_t ws, params, run_addr;
  uint64_t fault;  /* out-of-range index record (runtime/backend.h), or 0 */
  uint64_t finite; /* anomaly mode's record (runtime/inspect.h), or 0 */
  /* n_cbs command buffers, the segments between host steps (vk.h); host[k]:
   * the step run on the host after segment k; stage: their staging;
   * seg_done: signalled when a segment before a host step completes */
  VkCommandBuffer *cbs;
  int n_cbs;
  int *host;
  asg_vk_stage stage;
  VkFence seg_done;
  uint64_t next_run;
  /* profiling */
  VkQueryPool qp;
  int n_q;
  int *q_step; /* step of each query interval */
  double op_ms[ASG_OP_COUNT];
  int64_t op_calls[ASG_OP_COUNT];
  double *step_ms; /* per step (ASG_PROFILE=2) */
  int prof_runs;
  asg__prof *prof; /* the program's profile (runtime/backend.h), or NULL */
} vk_exec;

static void vk_exec_destroy(void *e) {
  vk_exec *x = e;
  if (!x) return;
  asg_vk_ctx *c = x->ctx;
  asg_vk_wait(c);
  if (asg__profile_level()) /* ASG_PROFILE's report (not for opts.profile alone) */
    asg__profile_report("vulkan", "steps", x->op_ms, x->op_calls, x->prof_runs);
  if (x->step_ms && asg__profile_level())
    asg__profile_steps("vulkan", &x->r.plan, x->step_ms, x->prof_runs, 40);
  free(x->step_ms);
  if (x->qp) c->fn->vkDestroyQueryPool(c->dev, x->qp, NULL);
  if (x->cbs) c->fn->vkFreeCommandBuffers(c->dev, c->pool, (uint32_t)x->n_cbs, x->cbs);
  free(x->cbs);
  free(x->host);
  asg_vk_stage_destroy(c, &x->stage);
  if (x->seg_done) c->fn->vkDestroyFence(c->dev, x->seg_done, NULL);
  if (x->ws) asg_vk_free(c, x->ws);
  if (x->params) asg_vk_free(c, x->params);
  if (x->run_addr) asg_vk_free(c, x->run_addr);
  if (x->fault) asg_vk_free(c, x->fault);
  if (x->finite) asg_vk_free(c, x->finite);
  asg__resolved_free(&x->r);
  free(x->q_step);
  free(x);
}

static void cmd_barrier(asg_vk_ctx *c, VkCommandBuffer cb) {
  VkMemoryBarrier mb = {VK_STRUCTURE_TYPE_MEMORY_BARRIER, NULL,
                        VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT,
                        VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT};
  c->fn->vkCmdPipelineBarrier(cb,
                              VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT,
                              VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, 0, 1, &mb, 0, NULL, 0, NULL);
}

/* Starts segment k's command buffer. */
static asg_status seg_begin(vk_exec *x, int k) {
  asg_vk_ctx *c = x->ctx;
  /* simultaneous use: a run may be submitted while the previous one runs;
   * the leading barrier orders it after that one */
  VkCommandBufferBeginInfo bi = {VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO, NULL,
                                 VK_COMMAND_BUFFER_USAGE_SIMULTANEOUS_USE_BIT, NULL};
  VkResult vr = c->fn->vkBeginCommandBuffer(x->cbs[k], &bi);
  if (vr != VK_SUCCESS) return asg_vk_result(vr, "recording");
  if (k == 0 && x->qp) c->fn->vkCmdResetQueryPool(x->cbs[0], x->qp, 0, (uint32_t)x->n_q);
  cmd_barrier(c, x->cbs[k]);
  return ASG_OK;
}

/* Ends segment k at host step `step` and starts segment k + 1. */
static asg_status seg_split(vk_exec *x, int k, int step) {
  asg_vk_ctx *c = x->ctx;
  const asg_step *s = &x->r.plan.steps[step];
  asg_status st = asg_vk_coll_copy_out(c, x->cbs[k], &x->stage, s, x->r.in[step]);
  VkResult vr = st ? VK_SUCCESS : c->fn->vkEndCommandBuffer(x->cbs[k]);
  if (vr != VK_SUCCESS) return asg_vk_result(vr, "recording");
  x->host[k] = step;
  if (!st) st = seg_begin(x, k + 1);
  return st ? st : asg_vk_coll_copy_in(c, x->cbs[k + 1], &x->stage, s, x->r.out[step]);
}

/* Writes the recorded dispatches into the command buffers. */
static asg_status build_cb(vk_exec *x, const asg_vk_rec *r) {
  asg_vk_ctx *c = x->ctx;
  const int n_cbs = r->n_host + 1;
  x->cbs = calloc((size_t)n_cbs, sizeof *x->cbs);
  if (r->n_host) x->host = calloc((size_t)r->n_host, sizeof *x->host);
  if (!x->cbs || (r->n_host && !x->host)) return asg__error(ASG_ERR_OOM, "vulkan: out of memory");
  x->n_cbs = n_cbs;
  VkCommandBufferAllocateInfo ai = {VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO, NULL, c->pool,
                                    VK_COMMAND_BUFFER_LEVEL_PRIMARY, (uint32_t)n_cbs};
  VkResult vr = c->fn->vkAllocateCommandBuffers(c->dev, &ai, x->cbs);
  if (vr != VK_SUCCESS) return asg_vk_result(vr, "allocating a command buffer");
  if (r->n_host) {
    VkFenceCreateInfo fi = {VK_STRUCTURE_TYPE_FENCE_CREATE_INFO, NULL, 0};
    vr = c->fn->vkCreateFence(c->dev, &fi, NULL, &x->seg_done);
    if (vr != VK_SUCCESS) return asg_vk_result(vr, "creating a fence");
  }
  asg_status st = seg_begin(x, 0);
  int bound = -2, q = 0, last_step = -1, seg = 0;
  for (int i = 0; i < r->n && !st; i++) {
    const vk_cmd *k = &r->cmds[i];
    VkCommandBuffer cb = x->cbs[seg];
    if (x->qp && k->step != last_step) { /* a timestamp where each step starts */
      c->fn->vkCmdWriteTimestamp(cb, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, x->qp, (uint32_t)q);
      x->q_step[q++] = k->step;
      last_step = k->step;
    }
    if (k->shader == CMD_BARRIER) {
      cmd_barrier(c, cb);
      continue;
    }
    if (k->shader == CMD_HOST) {
      st = seg_split(x, seg++, k->step);
      bound = -2; /* a new command buffer binds no pipeline */
      continue;
    }
    VkPipeline pipe;
    st = asg_vk_pipeline(c, k->shader, &pipe);
    if (st) return st;
    if (k->shader != bound) c->fn->vkCmdBindPipeline(cb, VK_PIPELINE_BIND_POINT_COMPUTE, pipe);
    bound = k->shader;
    uint64_t addr = x->params + k->param_off;
    c->fn->vkCmdPushConstants(cb, c->layout, VK_SHADER_STAGE_COMPUTE_BIT, 0, 8, &addr);
    c->fn->vkCmdDispatch(cb, k->g[0], k->g[1], k->g[2]);
  }
  if (st) return st;
  if (x->qp) {
    c->fn->vkCmdWriteTimestamp(x->cbs[seg], VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, x->qp,
                               (uint32_t)q);
    x->q_step[q++] = -1;
    x->n_q = q;
  }
  vr = c->fn->vkEndCommandBuffer(x->cbs[seg]);
  return vr == VK_SUCCESS ? ASG_OK : asg_vk_result(vr, "recording");
}

static asg_status vk_exec_create(void *dev, const asg_plan *plan, const asg_buffers *bufs,
                                 void **exec) {
  asg_vk_ctx *c = dev;
  vk_exec *x = calloc(1, sizeof *x);
  if (!x) return asg__error(ASG_ERR_OOM, "vulkan: out of memory");
  x->ctx = c;
  asg_vk_rec r;
  memset(&r, 0, sizeof r);
  asg_status st = asg__resolve_plan(plan, bufs, &x->r);
  int n = x->r.plan.n_steps;
  size_t ws = 0, stage = 0;
  for (int i = 0; i < n && !st; i++) {
    const asg_step *s = &x->r.plan.steps[i];
    if (s->op == ASG_OP_CUSTOM) /* user kernels are CPU and CUDA code (asg/custom.h) */
      st = asg__custom_refuse(s, "vulkan", "Vulkan");
    for (int k = -1; k < s->n_aux && !st; k++) { /* the step, its aux steps (plan.h) */
      const asg_step *u = k < 0 ? s : &s->aux[k];
      if (!table[u->op].record)
        st = asg__error(ASG_ERR_UNSUPPORTED, "vulkan: no kernel for %s", u->label);
      else if (table[u->op].ws && table[u->op].ws(u) > ws)
        ws = table[u->op].ws(u);
    }
    if (asg__op_info[s->op].flags & ASG_OPF_COLL) { /* host steps share one staging buffer */
      size_t b = asg_vk_coll_stage_bytes(s);
      if (b > stage) stage = b;
    }
    for (int j = 0; j <= s->n_in && !st; j++) {
      const asg_tdesc *d = j < s->n_in ? &s->in[j] : &s->out;
      if (asg_shape_numel(d->shape) >= ((int64_t)1 << 31))
        st = asg__error(ASG_ERR_UNSUPPORTED,
                        "vulkan: %s: tensors of 2^31 elements or more are not supported", s->label);
      else if (d->dtype == ASG_F64 && !c->caps.f64)
        st = asg__error(ASG_ERR_DTYPE, "vulkan: %s: %s has no 64-bit float support", s->label,
                        c->caps.name);
    }
  }
  bool check = false; /* a fault record when some step reads checked indices */
  for (int i = 0; i < n && !(plan->flags & ASG_PLAN_UNCHECKED_INDEX); i++)
    check = check || asg__step_checks_index(&x->r.plan.steps[i]);
  if (!st && (plan->flags & ASG_PLAN_CHECK_FINITE)) {
    st = asg_vk_alloc(c, sizeof(asg_finite_fault), &x->finite);
    if (!st) st = asg_vk_write_zero(c, x->finite, sizeof(asg_finite_fault));
  }
  if (!st && check) st = asg_vk_alloc(c, sizeof(asg_index_fault), &x->fault);
  if (!st && check) st = asg_vk_write_zero(c, x->fault, sizeof(asg_index_fault));
  if (!st) st = asg_vk_alloc(c, 8, &x->run_addr);
  if (!st) st = asg_vk_write_zero(c, x->run_addr, 8); /* run 0 uploads nothing */
  if (!st && ws) st = asg_vk_alloc(c, ws, &x->ws);
  if (!st && stage) st = asg_vk_stage_create(c, stage, &x->stage);
  uint64_t *addrs = NULL;
  int max_in = 1;
  for (int i = 0; i < n; i++) /* (an aux step reads some of its step's inputs) */
    if (x->r.plan.steps[i].n_in > max_in) max_in = x->r.plan.steps[i].n_in;
  if (!st && !(addrs = malloc(sizeof *addrs * (size_t)max_in)))
    st = asg__error(ASG_ERR_OOM, "vulkan: out of memory");
  for (int i = 0; i < n && !st; i++) {
    const asg_step *s = &x->r.plan.steps[i];
    for (int j = 0; j < s->n_in; j++)
      addrs[j] = (uint64_t)(uintptr_t)x->r.in[i][j];
    asg_vk_call call = {
        s,  (uint64_t)(uintptr_t)x->r.out[i],       addrs,    x->ws,           x->run_addr, c,
        &r, (x->r.plan.flags & ASG_PLAN_TF32) != 0, x->fault, (uint32_t)i + 1, {0}};
    for (int k = 0; k < s->n_aux; k++)
      call.aux[k] = (uint64_t)(uintptr_t)x->r.aux[(size_t)i * ASG_MAX_AUX + k];
    size_t w = table[s->op].ws ? table[s->op].ws(s) : 0;
    r.step = i;
    hazard_check(&r, s, &call, w);
    st = table[s->op].record(&call);
    if (!st) st = r.err;
    if (!st && x->finite) st = asg_vk_check_finite(&call, x->finite);
    note_ranges(&r, s, &call, w);
    if (!st) st = r.err;
    /* further outputs the kernel does not write: their own ops, after it */
    for (int k = 0; k < s->n_aux && !st; k++) {
      const asg_step *u = &s->aux[k];
      if (s->op == ASG_OP_ATTENTION && u->op == ASG_OP_ATTENTION_LSE) continue; /* written */
      const size_t a = (size_t)i * ASG_MAX_AUX + k;
      for (int j = 0; j < u->n_in; j++)
        addrs[j] = (uint64_t)(uintptr_t)x->r.aux_in[a][j];
      asg_vk_call uc = call;
      uc.s = u;
      uc.out = (uint64_t)(uintptr_t)x->r.aux[a];
      memset(uc.aux, 0, sizeof uc.aux);
      w = table[u->op].ws ? table[u->op].ws(u) : 0;
      hazard_check(&r, u, &uc, w);
      st = table[u->op].record(&uc);
      if (!st) st = r.err;
      note_ranges(&r, u, &uc, w);
      if (!st) st = r.err;
    }
  }
  free(addrs);
  /* the run count advances on the device after every step of the run */
  if (!st) {
    r.step = n;
    rec_barrier(&r);
    asg_step inc = {0};
    snprintf(inc.label, sizeof inc.label, "run count");
    asg_vk_call call = {&inc, 0, NULL, 0, x->run_addr, c, &r, false, 0, 0, {0}};
    st = asg_vk_dispatch(&call, "util_increment", &x->run_addr, 8, 1, 1, 1);
  }
  if (!st && r.n_params) st = asg_vk_alloc(c, r.n_params, &x->params);
  if (!st && r.n_params) st = asg_vk_write(c, x->params, r.params, r.n_params);
  if (!st && (asg__profile_level() || (plan->flags & ASG_PLAN_PROFILE)) &&
      c->caps.timestamp_ns > 0) {
    x->n_q = n + 2;
    if (asg__profile_level() > 1) x->step_ms = calloc((size_t)n + 1, sizeof *x->step_ms);
    x->q_step = calloc((size_t)x->n_q, sizeof *x->q_step);
    VkQueryPoolCreateInfo qi = {VK_STRUCTURE_TYPE_QUERY_POOL_CREATE_INFO,
                                NULL,
                                0,
                                VK_QUERY_TYPE_TIMESTAMP,
                                (uint32_t)x->n_q,
                                0};
    if (!x->q_step || c->fn->vkCreateQueryPool(c->dev, &qi, NULL, &x->qp) != VK_SUCCESS)
      x->qp = VK_NULL_HANDLE; /* profile off */
  }
  if (!st) st = build_cb(x, &r);
  rec_free(&r);
  if (st) {
    vk_exec_destroy(x);
    return st;
  }
  *exec = x;
  return ASG_OK;
}

static void profile_collect(vk_exec *x) {
  asg_vk_ctx *c = x->ctx;
  uint64_t *ts = malloc(sizeof *ts * (size_t)x->n_q);
  if (!ts) return;
  if (asg_vk_wait(c) == ASG_OK &&
      c->fn->vkGetQueryPoolResults(
          c->dev, x->qp, 0, (uint32_t)x->n_q, sizeof *ts * (size_t)x->n_q, ts, sizeof *ts,
          VK_QUERY_RESULT_64_BIT | VK_QUERY_RESULT_WAIT_BIT) == VK_SUCCESS) {
    for (int q = 0; q + 1 < x->n_q; q++) {
      int s = x->q_step[q];
      if (s < 0 || s >= x->r.plan.n_steps) continue;
      asg_op op = x->r.plan.steps[s].op;
      const double ms = (double)(ts[q + 1] - ts[q]) * c->caps.timestamp_ns * 1e-6;
      x->op_ms[op] += ms;
      if (x->step_ms) x->step_ms[s] += ms;
      if (x->prof)
        asg__prof_step(x->prof, s, (double)(ts[q] - ts[0]) * c->caps.timestamp_ns * 1e-6, ms);
      x->op_calls[op]++;
    }
    x->prof_runs++;
  }
  free(ts);
}

/* Host step k, once segment k is done (vk.h). */
static asg_status host_step(vk_exec *x, int k) {
  asg_vk_ctx *c = x->ctx;
  VkResult vr = c->fn->vkWaitForFences(c->dev, 1, &x->seg_done, VK_TRUE, UINT64_MAX);
  if (vr == VK_SUCCESS) vr = c->fn->vkResetFences(c->dev, 1, &x->seg_done);
  if (vr != VK_SUCCESS) return asg_vk_result(vr, "waiting for the device");
  return asg_vk_coll_run(x->r.plan.comm, &x->r.plan.steps[x->host[k]], &x->stage);
}

static asg_status vk_exec_run(void *e, uint64_t run) {
  vk_exec *x = e;
  asg_vk_ctx *c = x->ctx;
  if (run != x->next_run) { /* the count was reset (checkpoint, tests): upload it */
    asg_status st = asg_vk_write(c, x->run_addr, &run, sizeof run);
    if (st) return st;
  }
  x->next_run = run + 1;
  for (int k = 0; k < x->n_cbs; k++) {
    VkSubmitInfo si = {VK_STRUCTURE_TYPE_SUBMIT_INFO, NULL, 0, NULL, NULL, 1, &x->cbs[k], 0, NULL};
    const bool host = k + 1 < x->n_cbs;
    VkResult vr = asg_vk_submit(c, &si, host ? x->seg_done : VK_NULL_HANDLE);
    asg_status st = vr == VK_SUCCESS ? ASG_OK : asg_vk_result(vr, "submitting a run");
    if (!st && host) st = host_step(x, k);
    if (st) {
      x->next_run = run; /* the run count advances at the end of the last segment: not run */
      return st;
    }
  }
  if (x->qp) profile_collect(x);
  asg_status fs = ASG_OK; /* anomaly mode: waits for the run; reset the record */
  asg_finite_fault ff;
  if (x->finite && !(fs = asg_vk_read(c, x->finite, &ff, sizeof ff)) && ff.step1) {
    fs = asg_vk_write_zero(c, x->finite, sizeof ff);
    if (!fs) fs = asg__finite_report(&x->r.plan, &ff, run, true);
  }
  if (!x->fault || (fs && fs != ASG_ERR_NUMERIC)) return fs;
  /* waits for the run: an out-of-range index fails it (and wins); reset the record */
  asg_index_fault f;
  asg_status st = asg_vk_read(c, x->fault, &f, sizeof f);
  if (st || f.step1 == 0) return st ? st : fs;
  st = asg_vk_write_zero(c, x->fault, sizeof f);
  if (st) return st;
  if (f.step1 > (uint32_t)x->r.plan.n_steps)
    return asg__error(ASG_ERR_BACKEND, "vulkan: index check names step %u of %d", (unsigned)f.step1,
                      x->r.plan.n_steps);
  return asg__index_error(&x->r.plan.steps[f.step1 - 1], f.value);
}

/* Profiles only with the query pool exec_create made (ASG_PLAN_PROFILE). */
static const asg_plan *vk_exec_profile(void *e, asg__prof *prof) {
  vk_exec *x = e;
  if (!x->qp) return NULL;
  x->prof = prof;
  return &x->r.plan;
}

static void vk_describe(char *buf, size_t n) {
  asg_vk_ctx *c = asg_vk_context();
  if (!c) {
    snprintf(buf, n, "no device");
    return;
  }
  const asg_vk_caps *k = &c->caps;
  static const char *types[] = {"other", "integrated GPU", "discrete GPU", "virtual GPU", "CPU"};
  snprintf(buf, n,
           "%s (%s): Vulkan %u.%u, subgroup %u, %u KiB shared memory, f64 %s, fp16 %s, "
           "NV cooperative matrix %s",
           k->name, (unsigned)k->type < 5 ? types[k->type] : "other", VK_API_VERSION_MAJOR(k->api),
           VK_API_VERSION_MINOR(k->api), k->subgroup_size, k->shared_bytes / 1024,
           k->f64 ? "yes" : "no", k->f16 ? "yes" : "no", k->coop_matrix_nv ? "yes" : "no");
}

const asg_backend asg__backend_vulkan = {
    "vulkan",        vk_available, vk_supports, vk_open,         vk_close,
    vk_alloc,        vk_free,      vk_write,    vk_read,         vk_exec_create,
    vk_exec_destroy, vk_exec_run,  vk_describe, vk_memory_stats, vk_exec_profile,
};
