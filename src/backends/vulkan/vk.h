/* Vulkan kernel interface, shared by the backend core (vk_device.c,
 * vk_backend.c) and the op families (vk_<family>.c).
 *
 * Buffers are addressed by their device address (Vulkan 1.2 buffer device
 * address, required by Vulkan 1.3): a buffer handle the runtime sees IS that
 * address, so the shared plan resolver works unchanged and a kernel gets raw
 * 64-bit pointers, as on CUDA. No descriptor sets: each dispatch gets the
 * address of its parameter block (pointers, shapes, scalars) as its only push
 * constant; the blocks of a whole plan live in one device buffer written once
 * when the program is compiled.
 *
 * Shaders are GLSL compute shaders (src/backends/vulkan/shaders/), compiled
 * to SPIR-V by glslc at build time and embedded (vk_spirv.c, generated); the
 * *.list files there name each variant ("unary_f32") with its defines. */
#ifndef ASG_VK_H
#define ASG_VK_H

#define VK_NO_PROTOTYPES
#include <vulkan/vulkan.h>

#include "runtime/plan.h"

/* ---- the entry points we use, loaded from the loader at run time ---- */
#define ASG_VK_INSTANCE_FNS(X)                                                                     \
  X(vkDestroyInstance)                                                                             \
  X(vkEnumeratePhysicalDevices)                                                                    \
  X(vkGetPhysicalDeviceProperties)                                                                 \
  X(vkGetPhysicalDeviceProperties2)                                                                \
  X(vkGetPhysicalDeviceFeatures2)                                                                  \
  X(vkGetPhysicalDeviceQueueFamilyProperties)                                                      \
  X(vkGetPhysicalDeviceMemoryProperties)                                                           \
  X(vkEnumerateDeviceExtensionProperties)                                                          \
  X(vkCreateDevice)                                                                                \
  X(vkGetDeviceProcAddr)

#define ASG_VK_DEVICE_FNS(X)                                                                       \
  X(vkDestroyDevice)                                                                               \
  X(vkGetDeviceQueue)                                                                              \
  X(vkCreateBuffer)                                                                                \
  X(vkDestroyBuffer)                                                                               \
  X(vkGetBufferMemoryRequirements)                                                                 \
  X(vkAllocateMemory)                                                                              \
  X(vkFreeMemory)                                                                                  \
  X(vkBindBufferMemory)                                                                            \
  X(vkMapMemory)                                                                                   \
  X(vkGetBufferDeviceAddress)                                                                      \
  X(vkCreateShaderModule)                                                                          \
  X(vkDestroyShaderModule)                                                                         \
  X(vkCreatePipelineLayout)                                                                        \
  X(vkDestroyPipelineLayout)                                                                       \
  X(vkCreateComputePipelines)                                                                      \
  X(vkDestroyPipeline)                                                                             \
  X(vkCreateCommandPool)                                                                           \
  X(vkDestroyCommandPool)                                                                          \
  X(vkAllocateCommandBuffers)                                                                      \
  X(vkFreeCommandBuffers)                                                                          \
  X(vkBeginCommandBuffer)                                                                          \
  X(vkEndCommandBuffer)                                                                            \
  X(vkCmdBindPipeline)                                                                             \
  X(vkCmdPushConstants)                                                                            \
  X(vkCmdDispatch)                                                                                 \
  X(vkCmdPipelineBarrier)                                                                          \
  X(vkCmdCopyBuffer)                                                                               \
  X(vkCmdFillBuffer)                                                                               \
  X(vkCmdWriteTimestamp)                                                                           \
  X(vkCreateQueryPool)                                                                             \
  X(vkDestroyQueryPool)                                                                            \
  X(vkCmdResetQueryPool)                                                                           \
  X(vkGetQueryPoolResults)                                                                         \
  X(vkQueueSubmit)                                                                                 \
  X(vkCreateFence)                                                                                 \
  X(vkDestroyFence)                                                                                \
  X(vkWaitForFences)                                                                               \
  X(vkResetFences)                                                                                 \
  X(vkQueueWaitIdle)                                                                               \
  X(vkDeviceWaitIdle)

typedef struct asg_vk_fns {
  PFN_vkGetInstanceProcAddr vkGetInstanceProcAddr;
  PFN_vkCreateInstance vkCreateInstance;
  PFN_vkEnumerateInstanceVersion vkEnumerateInstanceVersion;
#define X(f) PFN_##f f;
  ASG_VK_INSTANCE_FNS(X) ASG_VK_DEVICE_FNS(X)
#undef X
} asg_vk_fns;

/* What the chosen device can do (asg_backend_describe prints it). */
typedef struct asg_vk_caps {
  char name[256];
  VkPhysicalDeviceType type;
  uint32_t vendor, api;
  uint32_t subgroup_size;
  uint32_t max_groups[3];     /* maxComputeWorkGroupCount */
  uint32_t max_invocations;   /* maxComputeWorkGroupInvocations */
  uint32_t shared_bytes;      /* maxComputeSharedMemorySize */
  VkDeviceSize max_alloc;     /* maxMemoryAllocationSize */
  uint32_t max_storage_range; /* maxStorageBufferRange (not binding-limited here: BDA) */
  float timestamp_ns;         /* timestampPeriod; 0 if the queue has no timestamps */
  bool f64, i64, f16, int64_atomics, coop_matrix_nv;
  bool subgroup_shuffle; /* subgroupShuffle* in compute shaders */
} asg_vk_caps;

typedef struct asg_vk_chunk asg_vk_chunk;

/* One device (shared by every program of the process: opened once). */
typedef struct asg_vk_ctx {
  asg_vk_fns *fn;
  VkPhysicalDevice phys;
  VkDevice dev;
  VkQueue queue;
  uint32_t qfamily;
  VkCommandPool pool;
  VkPipelineLayout layout; /* push constant: one uint64 (parameter block) */
  VkPipeline *pipes;       /* per embedded shader, created on first use */
  asg_vk_caps caps;
  uint32_t mem_device, mem_host; /* memory type indices */
  bool device_mapped;            /* device memory is host-visible and coherent (CPU drivers) */
  asg_vk_chunk *chunks;          /* sub-allocator */
  int n_chunks, cap_chunks;
  size_t live_buffers, live_bytes; /* blocks asg_vk_alloc handed out (under its lock) */
  /* staging for uploads/downloads when device memory is not mapped */
  VkBuffer stage;
  VkDeviceMemory stage_mem;
  void *stage_map;
  size_t stage_bytes;
  VkCommandBuffer xfer;
  bool busy; /* work submitted since the last wait */
} asg_vk_ctx;

/* ---- one op: what the family files implement ---- */
typedef struct asg_vk_rec asg_vk_rec;

typedef struct asg_vk_call {
  const asg_step *s;
  uint64_t out;       /* device address */
  const uint64_t *in; /* s->n_in device addresses */
  uint64_t ws;        /* device workspace of the size .ws asked for */
  uint64_t run;       /* address of the program's run count (uint64, RNG key) */
  asg_vk_ctx *ctx;
  asg_vk_rec *rec;
  /* f32 GEMMs may use reduced-precision tensor cores (asg_compile_opts
   * allow_tf32): on Vulkan, fp16 cooperative matrices with fp32 sums */
  bool tf32;
  /* Steps that read indices (asg__step_checks_index) report an out-of-range
   * one at this address (shaders/fault.glsl) as step1 = 1 + the step's
   * index; 0 when the program does not check. */
  uint64_t fault;
  uint32_t step1;
  uint64_t aux[ASG_MAX_AUX]; /* s->n_aux further outputs (plan.h) */
} asg_vk_call;

typedef struct asg_vk_kernel {
  /* Records the step's dispatches (asg_vk_dispatch), once, at compile time.
   * Returns an error for unsupported dtypes or shapes. */
  asg_status (*record)(const asg_vk_call *c);
  /* Device workspace bytes the step needs (NULL: none). */
  size_t (*ws)(const asg_step *s);
} asg_vk_kernel;

/* Records one dispatch of the embedded shader `shader` ("unary_f32") with a
 * copy of the parameter block params[0..bytes) (its layout is the shader's
 * std430 Params block: keep 8-byte fields first, then int32 arrays), over
 * groups gx*gy*gz. */
asg_status asg_vk_dispatch(const asg_vk_call *c, const char *shader, const void *params,
                           size_t bytes, uint32_t gx, uint32_t gy, uint32_t gz);
/* A full compute barrier between two dispatches of one step. */
void asg_vk_barrier(const asg_vk_call *c);
/* Work groups for n independent items at per_group items each, capped at
 * the device limit (shaders loop grid-stride over gl_NumWorkGroups). */
uint32_t asg_vk_groups(const asg_vk_call *c, int64_t n, int64_t per_group);
/* Anomaly mode: records the scans of c's step output and inputs into the
 * record at rec (asg_finite_fault, runtime/inspect.h; vk_finite.c). */
asg_status asg_vk_check_finite(const asg_vk_call *c, uint64_t rec);
/* "_f32", "_f64", "_i32", "_i64" (NULL: no variant for this dtype). */
const char *asg_vk_suffix(asg_dtype dt);
/* Builds "<base><suffix of dt>" into buf (error if dt is unsupported). */
asg_status asg_vk_variant(const asg_vk_call *c, const char *base, asg_dtype dt, char *buf,
                          size_t n);

/* Family registration (one per file). */
void asg_vk_register_elementwise(asg_vk_kernel *t); /* unary, binary, where, cast, copies, fill,
                                                       assign, cache_write, broadcast_to */
void asg_vk_register_reduce(asg_vk_kernel *t);      /* sum..argmax, softmax, log_softmax */
void asg_vk_register_matmul(asg_vk_kernel *t);
void asg_vk_register_index(asg_vk_kernel *t);     /* permute, slice(_bwd), concat, gather,
                                                     scatter_add, one_hot */
void asg_vk_register_nn(asg_vk_kernel *t);        /* layernorm(+bwd), softmax CE(+bwd), rand */
void asg_vk_register_rope(asg_vk_kernel *t);      /* rope */
void asg_vk_register_batchnorm(asg_vk_kernel *t); /* batchnorm(+bwd) */
void asg_vk_register_conv(asg_vk_kernel *t);      /* conv family and pools */
void asg_vk_register_optim(asg_vk_kernel *t);     /* fused Adam updates */
void asg_vk_register_attention(asg_vk_kernel *t); /* fused attention fwd/bwd */
void asg_vk_register_sample(asg_vk_kernel *t);    /* sample_filter */
void asg_vk_register_resample(asg_vk_kernel *t);  /* pad, upsample (+bwd) */
void asg_vk_register_sort(asg_vk_kernel *t);      /* argsort, cumsum */
/* all_reduce, broadcast, all_gather, reduce_scatter: host steps (below) */
void asg_vk_register_collective(asg_vk_kernel *t);

/* ---- host steps: collectives (vk_collective.c) ----
 * Vulkan has no collective transport, so a collective runs on the host. Its
 * record() ends the recorded segment (asg_vk_host_step): a program with k
 * host steps is k + 1 command buffers, and a run submits segment j, waits,
 * runs host step j, then goes on with segment j + 1. Segment j ends by
 * copying the step's inputs into the executor's host-visible staging buffer
 * (made once, at compile time), the host collective works there, and
 * segment j + 1 starts by copying the result to the step's output. A
 * program without host steps stays one command buffer, submitted without
 * waiting. */
asg_status asg_vk_host_step(const asg_vk_call *c); /* vk_backend.c */

typedef struct asg_vk_stage {
  VkBuffer buf;
  VkDeviceMemory mem;
  void *map;
  size_t bytes;
} asg_vk_stage;

/* Staging bytes collective step s needs (> 0). */
size_t asg_vk_coll_stage_bytes(const asg_step *s);
asg_status asg_vk_stage_create(asg_vk_ctx *c, size_t bytes, asg_vk_stage *st);
void asg_vk_stage_destroy(asg_vk_ctx *c, asg_vk_stage *st);
/* Records into cb, at the end of a segment, the copies of s's inputs (in:
 * device addresses) into st, made visible to the host. */
asg_status asg_vk_coll_copy_out(asg_vk_ctx *c, VkCommandBuffer cb, const asg_vk_stage *st,
                                const asg_step *s, const void *const *in);
/* Records into cb, at the start of the next segment, the copy of the result
 * in st to s's output, made visible to later steps. */
asg_status asg_vk_coll_copy_in(asg_vk_ctx *c, VkCommandBuffer cb, const asg_vk_stage *st,
                               const asg_step *s, void *out);
/* The host collective of s on the staged data (after the segment's wait). */
asg_status asg_vk_coll_run(asg_comm *comm, const asg_step *s, const asg_vk_stage *st);

/* ---- device core (vk_device.c) ---- */
/* The process-wide device, opened on first use; NULL with an error set when
 * there is no loader or no suitable device. */
asg_vk_ctx *asg_vk_context(void);
asg_status asg_vk_alloc(asg_vk_ctx *c, size_t bytes, uint64_t *addr);
void asg_vk_free(asg_vk_ctx *c, uint64_t addr);
/* Blocks of asg_vk_alloc not freed yet (program buffers and executors'
 * workspaces, of every program in the process) and their bytes. */
void asg_vk_memory_stats(asg_vk_ctx *c, size_t *buffers, size_t *bytes);
/* The chunk's buffer and the offset of addr in it (false if unknown). */
bool asg_vk_locate(asg_vk_ctx *c, uint64_t addr, VkBuffer *buf, VkDeviceSize *off, void **map);
asg_status asg_vk_write(asg_vk_ctx *c, uint64_t addr, const void *src, size_t n);
asg_status asg_vk_read(asg_vk_ctx *c, uint64_t addr, void *dst, size_t n);
/* A host-visible, coherent, mapped buffer of `bytes` (staging; the caller
 * destroys buf and frees mem). */
asg_status asg_vk_host_buffer(asg_vk_ctx *c, size_t bytes, VkBuffer *buf, VkDeviceMemory *mem,
                              void **map);
/* Zeroes n bytes at addr (waits). */
asg_status asg_vk_write_zero(asg_vk_ctx *c, uint64_t addr, size_t n);
/* Submits work to the queue (serialized across threads); fence (or
 * VK_NULL_HANDLE) is signalled when it completes. */
VkResult asg_vk_submit(asg_vk_ctx *c, const VkSubmitInfo *si, VkFence fence);
/* Waits for everything submitted. */
asg_status asg_vk_wait(asg_vk_ctx *c);
/* Index of an embedded shader by name, -1 if none; its pipeline (created
 * on first use). */
int asg_vk_shader_index(const char *name);
asg_status asg_vk_pipeline(asg_vk_ctx *c, int shader, VkPipeline *out);
asg_status asg_vk_result(VkResult r, const char *what);

/* ---- embedded SPIR-V (generated vk_spirv.c) ---- */
typedef struct asg_vk_spirv {
  const char *name;
  const uint32_t *code;
  size_t words;
} asg_vk_spirv;
extern const asg_vk_spirv asg_vk_shaders[];
extern const int asg_vk_n_shaders;

#endif
