/* Collectives on Vulkan: host steps (vk.h). Vulkan has no collective
 * transport, so the step's inputs are copied into a host-visible staging
 * buffer at the end of a segment, the communicator's host collective works
 * there (src/dist/; MPI across processes, copies in a world of one) exactly
 * as the CPU backend does on its buffers (cpu_collective.c), and the next
 * segment starts by copying the result to the step's output.
 *
 * Staging layout of one step: x at 0, the gate (all_reduce's optional
 * second input) after it, and the result at res: in place over x for
 * all_reduce and broadcast, after the gate for all_gather and
 * reduce_scatter (their transports take separate send and receive
 * buffers). Steps run one at a time, so one buffer (the largest step's)
 * serves every host step of the program. */
#include "backends/vulkan/vk.h"
#include "dist/comm_internal.h"

#define STAGE_ALIGN 64

typedef struct coll_layout {
  size_t x, gate, res, total; /* offsets of the gate and result; total bytes */
} coll_layout;

static size_t align_up(size_t n) { return (n + STAGE_ALIGN - 1) & ~(size_t)(STAGE_ALIGN - 1); }

static coll_layout layout(const asg_step *s) {
  coll_layout l;
  l.x = asg__tdesc_bytes(&s->in[0]);
  l.gate = align_up(l.x);
  const size_t end = l.gate + (s->n_in == 2 ? asg__tdesc_bytes(&s->in[1]) : 0);
  const bool in_place = s->op == ASG_OP_ALL_REDUCE || s->op == ASG_OP_BROADCAST;
  l.res = in_place ? 0 : align_up(end);
  const size_t res_end = l.res + asg__tdesc_bytes(&s->out);
  l.total = align_up(end > res_end ? end : res_end);
  if (!l.total) l.total = STAGE_ALIGN; /* empty tensors: a buffer all the same */
  return l;
}

size_t asg_vk_coll_stage_bytes(const asg_step *s) { return layout(s).total; }

asg_status asg_vk_stage_create(asg_vk_ctx *c, size_t bytes, asg_vk_stage *st) {
  asg_status e = asg_vk_host_buffer(c, bytes, &st->buf, &st->mem, &st->map);
  if (!e) st->bytes = bytes;
  return e;
}

void asg_vk_stage_destroy(asg_vk_ctx *c, asg_vk_stage *st) {
  if (st->buf) c->fn->vkDestroyBuffer(c->dev, st->buf, NULL);
  if (st->mem) c->fn->vkFreeMemory(c->dev, st->mem, NULL); /* unmaps */
  st->buf = VK_NULL_HANDLE;
  st->mem = VK_NULL_HANDLE;
  st->map = NULL;
  st->bytes = 0;
}

static void barrier(asg_vk_ctx *c, VkCommandBuffer cb, VkPipelineStageFlags src_stage,
                    VkAccessFlags src, VkPipelineStageFlags dst_stage, VkAccessFlags dst) {
  VkMemoryBarrier mb = {VK_STRUCTURE_TYPE_MEMORY_BARRIER, NULL, src, dst};
  c->fn->vkCmdPipelineBarrier(cb, src_stage, dst_stage, 0, 1, &mb, 0, NULL, 0, NULL);
}

/* Writes by earlier dispatches and copies, before a copy reads or writes. */
static void before_copy(asg_vk_ctx *c, VkCommandBuffer cb) {
  barrier(c, cb, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT,
          VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT, VK_PIPELINE_STAGE_TRANSFER_BIT,
          VK_ACCESS_TRANSFER_READ_BIT | VK_ACCESS_TRANSFER_WRITE_BIT);
}

/* Copies n bytes between device address dev and staging offset off. */
static asg_status copy(asg_vk_ctx *c, VkCommandBuffer cb, const asg_vk_stage *st, const asg_step *s,
                       const void *dev, size_t off, size_t n, bool to_stage) {
  if (!n) return ASG_OK;
  VkBuffer buf;
  VkDeviceSize boff;
  void *map;
  if (!asg_vk_locate(c, (uint64_t)(uintptr_t)dev, &buf, &boff, &map))
    return asg__error(ASG_ERR_BACKEND, "vulkan: %s: a tensor is not in a device buffer", s->label);
  if (off + n > st->bytes)
    return asg__error(ASG_ERR_BACKEND, "vulkan: %s: %zu staging bytes needed, %zu made", s->label,
                      off + n, st->bytes);
  if (to_stage) {
    VkBufferCopy r = {boff, off, n};
    c->fn->vkCmdCopyBuffer(cb, buf, st->buf, 1, &r);
  } else {
    VkBufferCopy r = {off, boff, n};
    c->fn->vkCmdCopyBuffer(cb, st->buf, buf, 1, &r);
  }
  return ASG_OK;
}

asg_status asg_vk_coll_copy_out(asg_vk_ctx *c, VkCommandBuffer cb, const asg_vk_stage *st,
                                const asg_step *s, const void *const *in) {
  const coll_layout l = layout(s);
  before_copy(c, cb);
  asg_status e = copy(c, cb, st, s, in[0], 0, l.x, true);
  if (!e && s->n_in == 2) e = copy(c, cb, st, s, in[1], l.gate, asg__tdesc_bytes(&s->in[1]), true);
  /* the host reads the staging buffer once the segment is waited for */
  barrier(c, cb, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_ACCESS_TRANSFER_WRITE_BIT,
          VK_PIPELINE_STAGE_HOST_BIT, VK_ACCESS_HOST_READ_BIT);
  return e;
}

asg_status asg_vk_coll_copy_in(asg_vk_ctx *c, VkCommandBuffer cb, const asg_vk_stage *st,
                               const asg_step *s, void *out) {
  /* the host's writes are visible to the device from the submission on */
  before_copy(c, cb);
  asg_status e = copy(c, cb, st, s, out, layout(s).res, asg__tdesc_bytes(&s->out), false);
  barrier(c, cb, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_ACCESS_TRANSFER_WRITE_BIT,
          VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT,
          VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_READ_BIT |
              VK_ACCESS_TRANSFER_WRITE_BIT);
  return e;
}

/* gate (one element): whether this run reduces (ops/op_collective.c) */
static bool gate_on(const asg_step *s, const void *g) {
  switch (s->in[1].dtype) {
  case ASG_I32: return *(const int32_t *)g != 0;
  case ASG_F32: return *(const float *)g != 0;
  default: return *(const double *)g != 0;
  }
}

asg_status asg_vk_coll_run(asg_comm *comm, const asg_step *s, const asg_vk_stage *st) {
  const coll_layout l = layout(s);
  unsigned char *m = st->map;
  switch (s->op) {
  case ASG_OP_ALL_REDUCE: /* in place; a gate that is off leaves x: the result */
    if (s->n_in == 2 && !gate_on(s, m + l.gate)) return ASG_OK;
    return asg__comm_allreduce(comm, m, m, asg_shape_numel(s->out.shape), s->out.dtype,
                               (asg_comm_op)s->attr.i[0], s->label);
  case ASG_OP_BROADCAST: /* in place */
    return asg__comm_bcast(comm, m, l.x, (int)s->attr.i[0], s->label);
  case ASG_OP_ALL_GATHER: return asg__comm_allgather(comm, m, m + l.res, l.x, s->label);
  case ASG_OP_REDUCE_SCATTER:
    return asg__comm_reduce_scatter(comm, m, m + l.res, asg_shape_numel(s->out.shape), s->out.dtype,
                                    (asg_comm_op)s->attr.i[1], s->label);
  default: return asg__error(ASG_ERR_BACKEND, "vulkan: %s is not a collective", s->label);
  }
}

static asg_status coll_record(const asg_vk_call *c) { return asg_vk_host_step(c); }

void asg_vk_register_collective(asg_vk_kernel *t) {
  t[ASG_OP_ALL_REDUCE].record = coll_record;
  t[ASG_OP_BROADCAST].record = coll_record;
  t[ASG_OP_ALL_GATHER].record = coll_record;
  t[ASG_OP_REDUCE_SCATTER].record = coll_record;
}
