/* The Vulkan device core: the loader (opened with dlopen, so a library built
 * with Vulkan still loads where no Vulkan is installed), device selection,
 * the buffer sub-allocator, host transfers and the pipeline cache.
 *
 * Device selection: ASG_VULKAN_DEVICE=<index> or =<part of the name>;
 * otherwise the first discrete GPU, then integrated, virtual, CPU (lavapipe).
 * Devices need Vulkan 1.2 with bufferDeviceAddress and shaderInt64. */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/vulkan/vk.h"

static asg_vk_fns g_fn;
static VkInstance g_instance;
static asg_vk_ctx *g_ctx;
static char g_why[512]; /* why there is no device */
static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;

/* Chunks of device memory, each one buffer, carved into blocks. */
#define CHUNK_MIN ((size_t)64 << 20)
#define BLOCK_ALIGN 256

typedef struct vk_block {
  size_t off, size;
  bool used;
} vk_block;

struct asg_vk_chunk {
  VkBuffer buf;
  VkDeviceMemory mem;
  uint64_t addr;
  size_t size;
  void *map;
  vk_block *blocks; /* sorted by offset, covering [0, size) */
  int n, cap;
};

asg_status asg_vk_result(VkResult r, const char *what) {
  const char *s = r == VK_ERROR_OUT_OF_HOST_MEMORY      ? "out of host memory"
                  : r == VK_ERROR_OUT_OF_DEVICE_MEMORY  ? "out of device memory"
                  : r == VK_ERROR_DEVICE_LOST           ? "device lost"
                  : r == VK_ERROR_INITIALIZATION_FAILED ? "initialization failed"
                                                        : "error";
  asg_status st = (r == VK_ERROR_OUT_OF_HOST_MEMORY || r == VK_ERROR_OUT_OF_DEVICE_MEMORY)
                      ? ASG_ERR_OOM
                      : ASG_ERR_BACKEND;
  return asg__error(st, "vulkan: %s: %s (VkResult %d)", what, s, (int)r);
}

static bool load_loader(void) {
  static const char *names[] = {"libvulkan.so.1", "libvulkan.so", "libvulkan.1.dylib",
                                "libMoltenVK.dylib"};
  void *h = NULL;
  for (size_t i = 0; i < sizeof names / sizeof *names && !h; i++)
    h = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    snprintf(g_why, sizeof g_why, "no Vulkan loader (libvulkan.so.1) found");
    return false;
  }
  /* dlsym returns void*; the loader exports this entry point by name */
  *(void **)&g_fn.vkGetInstanceProcAddr = dlsym(h, "vkGetInstanceProcAddr");
  if (!g_fn.vkGetInstanceProcAddr) {
    snprintf(g_why, sizeof g_why, "the Vulkan loader lacks vkGetInstanceProcAddr");
    return false;
  }
  g_fn.vkCreateInstance =
      (PFN_vkCreateInstance)g_fn.vkGetInstanceProcAddr(NULL, "vkCreateInstance");
  g_fn.vkEnumerateInstanceVersion = (PFN_vkEnumerateInstanceVersion)g_fn.vkGetInstanceProcAddr(
      NULL, "vkEnumerateInstanceVersion");
  return g_fn.vkCreateInstance != NULL;
}

static int type_rank(VkPhysicalDeviceType t) {
  switch (t) {
  case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU: return 0;
  case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU: return 1;
  case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU: return 2;
  case VK_PHYSICAL_DEVICE_TYPE_CPU: return 3;
  default: return 4;
  }
}

static bool has_ext(VkPhysicalDevice p, const char *name) {
  uint32_t n = 0;
  if (g_fn.vkEnumerateDeviceExtensionProperties(p, NULL, &n, NULL) != VK_SUCCESS) return false;
  VkExtensionProperties *e = malloc(sizeof *e * (n ? n : 1));
  if (!e) return false;
  bool found = false;
  if (g_fn.vkEnumerateDeviceExtensionProperties(p, NULL, &n, e) == VK_SUCCESS)
    for (uint32_t i = 0; i < n && !found; i++)
      found = strcmp(e[i].extensionName, name) == 0;
  free(e);
  return found;
}

/* Whether p is usable, with its features queried into the structs. */
static bool usable(VkPhysicalDevice p, VkPhysicalDeviceFeatures2 *f2,
                   VkPhysicalDeviceVulkan12Features *f12, uint32_t *qfam) {
  VkPhysicalDeviceProperties pr;
  g_fn.vkGetPhysicalDeviceProperties(p, &pr);
  if (pr.apiVersion < VK_API_VERSION_1_2) return false;
  memset(f12, 0, sizeof *f12);
  f12->sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES;
  memset(f2, 0, sizeof *f2);
  f2->sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2;
  f2->pNext = f12;
  g_fn.vkGetPhysicalDeviceFeatures2(p, f2);
  if (!f12->bufferDeviceAddress || !f2->features.shaderInt64) return false;
  uint32_t nq = 0;
  g_fn.vkGetPhysicalDeviceQueueFamilyProperties(p, &nq, NULL);
  VkQueueFamilyProperties q[32];
  if (nq > 32) nq = 32;
  g_fn.vkGetPhysicalDeviceQueueFamilyProperties(p, &nq, q);
  for (uint32_t i = 0; i < nq; i++)
    if (q[i].queueFlags & VK_QUEUE_COMPUTE_BIT) {
      *qfam = i;
      return true;
    }
  return false;
}

static VkPhysicalDevice choose(uint32_t *qfam) {
  uint32_t n = 0;
  if (g_fn.vkEnumeratePhysicalDevices(g_instance, &n, NULL) != VK_SUCCESS || n == 0) {
    snprintf(g_why, sizeof g_why, "no Vulkan device found");
    return VK_NULL_HANDLE;
  }
  VkPhysicalDevice devs[16];
  if (n > 16) n = 16;
  g_fn.vkEnumeratePhysicalDevices(g_instance, &n, devs);
  const char *want = getenv("ASG_VULKAN_DEVICE");
  VkPhysicalDevice best = VK_NULL_HANDLE;
  int best_rank = 99;
  for (uint32_t i = 0; i < n; i++) {
    VkPhysicalDeviceProperties pr;
    g_fn.vkGetPhysicalDeviceProperties(devs[i], &pr);
    VkPhysicalDeviceFeatures2 f2;
    VkPhysicalDeviceVulkan12Features f12;
    uint32_t q = 0;
    bool ok = usable(devs[i], &f2, &f12, &q);
    if (want && want[0]) {
      char *end;
      long idx = strtol(want, &end, 10);
      bool match = *end == '\0' ? idx == (long)i : strstr(pr.deviceName, want) != NULL;
      if (!match) continue;
      if (!ok) {
        snprintf(g_why, sizeof g_why,
                 "device %u (%s) chosen by ASG_VULKAN_DEVICE lacks Vulkan 1.2, "
                 "bufferDeviceAddress or shaderInt64",
                 i, pr.deviceName);
        return VK_NULL_HANDLE;
      }
      *qfam = q;
      return devs[i];
    }
    if (ok && type_rank(pr.deviceType) < best_rank) {
      best_rank = type_rank(pr.deviceType);
      best = devs[i];
      *qfam = q;
    }
  }
  if (!best)
    snprintf(g_why, sizeof g_why,
             want && want[0] ? "no Vulkan device matches ASG_VULKAN_DEVICE=%s"
                             : "no Vulkan device with Vulkan 1.2, bufferDeviceAddress and "
                               "shaderInt64%s",
             want && want[0] ? want : "");
  return best;
}

static void fill_caps(asg_vk_ctx *c, const VkPhysicalDeviceFeatures2 *f2,
                      const VkPhysicalDeviceVulkan12Features *f12) {
  VkPhysicalDeviceSubgroupProperties sg = {
      VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES, NULL, 0, 0, 0, 0};
  VkPhysicalDeviceMaintenance3Properties m3 = {
      VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MAINTENANCE_3_PROPERTIES, &sg, 0, 0};
  VkPhysicalDeviceProperties2 p2 = {VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2, &m3, {0}};
  g_fn.vkGetPhysicalDeviceProperties2(c->phys, &p2);
  const VkPhysicalDeviceLimits *l = &p2.properties.limits;
  asg_vk_caps *k = &c->caps;
  snprintf(k->name, sizeof k->name, "%s", p2.properties.deviceName);
  k->type = p2.properties.deviceType;
  k->vendor = p2.properties.vendorID;
  k->api = p2.properties.apiVersion;
  k->subgroup_size = sg.subgroupSize;
  k->subgroup_shuffle = (sg.supportedStages & VK_SHADER_STAGE_COMPUTE_BIT) &&
                        (sg.supportedOperations & VK_SUBGROUP_FEATURE_SHUFFLE_BIT);
  for (int i = 0; i < 3; i++)
    k->max_groups[i] = l->maxComputeWorkGroupCount[i];
  k->max_invocations = l->maxComputeWorkGroupInvocations;
  k->shared_bytes = l->maxComputeSharedMemorySize;
  k->max_alloc = m3.maxMemoryAllocationSize ? m3.maxMemoryAllocationSize : ((VkDeviceSize)1 << 30);
  k->max_storage_range = l->maxStorageBufferRange;
  k->timestamp_ns = l->timestampComputeAndGraphics ? l->timestampPeriod : 0;
  k->f64 = f2->features.shaderFloat64;
  k->i64 = f2->features.shaderInt64;
  k->f16 = f12->shaderFloat16;
  k->int64_atomics = f12->shaderBufferInt64Atomics;
  k->coop_matrix_nv = has_ext(c->phys, "VK_NV_cooperative_matrix");
}

/* Whether the device multiplies fp16 16x16x16 cooperative matrices into
 * fp32 (the shape the GEMM shader uses) in subgroup scope. */
static bool coop_shapes(asg_vk_ctx *c) {
  PFN_vkGetPhysicalDeviceCooperativeMatrixPropertiesNV get =
      (PFN_vkGetPhysicalDeviceCooperativeMatrixPropertiesNV)g_fn.vkGetInstanceProcAddr(
          g_instance, "vkGetPhysicalDeviceCooperativeMatrixPropertiesNV");
  uint32_t n = 0;
  if (!get || get(c->phys, &n, NULL) != VK_SUCCESS || !n) return false;
  VkCooperativeMatrixPropertiesNV *p = calloc(n, sizeof *p);
  if (!p) return false;
  for (uint32_t i = 0; i < n; i++)
    p[i].sType = VK_STRUCTURE_TYPE_COOPERATIVE_MATRIX_PROPERTIES_NV;
  bool ok = false;
  if (get(c->phys, &n, p) == VK_SUCCESS)
    for (uint32_t i = 0; i < n && !ok; i++)
      ok = p[i].MSize == 16 && p[i].NSize == 16 && p[i].KSize == 16 &&
           p[i].AType == VK_COMPONENT_TYPE_FLOAT16_NV &&
           p[i].BType == VK_COMPONENT_TYPE_FLOAT16_NV &&
           p[i].CType == VK_COMPONENT_TYPE_FLOAT32_NV &&
           p[i].DType == VK_COMPONENT_TYPE_FLOAT32_NV && p[i].scope == VK_SCOPE_SUBGROUP_NV;
  free(p);
  return ok;
}

static uint32_t find_mem(const VkPhysicalDeviceMemoryProperties *mp, VkMemoryPropertyFlags want,
                         VkMemoryPropertyFlags avoid) {
  for (uint32_t i = 0; i < mp->memoryTypeCount; i++) {
    VkMemoryPropertyFlags f = mp->memoryTypes[i].propertyFlags;
    if ((f & want) == want && !(f & avoid)) return i;
  }
  return UINT32_MAX;
}

static void ctx_destroy(asg_vk_ctx *c);

static asg_status ctx_create(void) {
  VkApplicationInfo app = {
      VK_STRUCTURE_TYPE_APPLICATION_INFO, NULL, "asg", 1, "asg", 1, VK_API_VERSION_1_2};
  /* portability enumeration lets MoltenVK devices be listed */
  const char *iext[] = {"VK_KHR_portability_enumeration"};
  VkInstanceCreateInfo ici = {
      VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO, NULL, 0, &app, 0, NULL, 0, NULL};
  uint32_t iv = VK_API_VERSION_1_0;
  if (g_fn.vkEnumerateInstanceVersion) g_fn.vkEnumerateInstanceVersion(&iv);
  if (iv < VK_API_VERSION_1_2) {
    snprintf(g_why, sizeof g_why, "the Vulkan loader is older than 1.2");
    return ASG_ERR_UNSUPPORTED;
  }
  VkResult r = g_fn.vkCreateInstance(&ici, NULL, &g_instance);
  if (r != VK_SUCCESS) {    /* retry with portability enumeration (macOS) */
    ici.flags = 0x00000001; /* VK_INSTANCE_CREATE_ENUMERATE_PORTABILITY_BIT_KHR */
    ici.enabledExtensionCount = 1;
    ici.ppEnabledExtensionNames = iext;
    r = g_fn.vkCreateInstance(&ici, NULL, &g_instance);
  }
  if (r != VK_SUCCESS) {
    snprintf(g_why, sizeof g_why, "cannot create a Vulkan instance (VkResult %d)", (int)r);
    return ASG_ERR_UNSUPPORTED;
  }
#define X(f) g_fn.f = (PFN_##f)g_fn.vkGetInstanceProcAddr(g_instance, #f);
  ASG_VK_INSTANCE_FNS(X)
#undef X
  asg_vk_ctx *c = calloc(1, sizeof *c);
  if (!c) return ASG_ERR_OOM;
  c->fn = &g_fn;
  c->phys = choose(&c->qfamily);
  if (!c->phys) {
    free(c);
    return ASG_ERR_UNSUPPORTED;
  }
  VkPhysicalDeviceFeatures2 f2;
  VkPhysicalDeviceVulkan12Features f12;
  usable(c->phys, &f2, &f12, &c->qfamily);
  fill_caps(c, &f2, &f12);

  /* enable only what the kernels use */
  VkPhysicalDeviceVulkan12Features e12;
  memset(&e12, 0, sizeof e12);
  e12.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES;
  e12.bufferDeviceAddress = VK_TRUE;
  e12.shaderBufferInt64Atomics = f12.shaderBufferInt64Atomics;
  e12.shaderFloat16 = f12.shaderFloat16;
  VkPhysicalDeviceFeatures2 e2 = {VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2, &e12, {0}};
  /* tensor cores through VK_NV_cooperative_matrix (fp16 products, fp32
   * sums), used by f32 GEMMs of programs compiled with allow_tf32 */
  VkPhysicalDeviceCooperativeMatrixFeaturesNV cm = {
      VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_FEATURES_NV, NULL, VK_FALSE, VK_FALSE};
  const char *dext[1];
  uint32_t n_dext = 0;
  if (c->caps.coop_matrix_nv && f12.shaderFloat16 && coop_shapes(c)) {
    cm.cooperativeMatrix = VK_TRUE;
    e12.vulkanMemoryModel = f12.vulkanMemoryModel;
    cm.pNext = e2.pNext;
    e2.pNext = &cm;
    dext[n_dext++] = "VK_NV_cooperative_matrix";
  } else {
    c->caps.coop_matrix_nv = false;
  }
  e2.features.shaderInt64 = VK_TRUE;
  e2.features.shaderFloat64 = f2.features.shaderFloat64;
  float prio = 1.0f;
  VkDeviceQueueCreateInfo qci = {
      VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO, NULL, 0, c->qfamily, 1, &prio};
  VkDeviceCreateInfo dci = {VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO,
                            &e2,
                            0,
                            1,
                            &qci,
                            0,
                            NULL,
                            n_dext,
                            n_dext ? dext : NULL,
                            NULL};
  r = g_fn.vkCreateDevice(c->phys, &dci, NULL, &c->dev);
  if (r != VK_SUCCESS) {
    snprintf(g_why, sizeof g_why, "cannot create a Vulkan device on %s (VkResult %d)", c->caps.name,
             (int)r);
    free(c);
    return ASG_ERR_UNSUPPORTED;
  }
#define X(f) g_fn.f = (PFN_##f)g_fn.vkGetDeviceProcAddr(c->dev, #f);
  ASG_VK_DEVICE_FNS(X)
#undef X
  g_fn.vkGetDeviceQueue(c->dev, c->qfamily, 0, &c->queue);
  VkPhysicalDeviceMemoryProperties mp;
  g_fn.vkGetPhysicalDeviceMemoryProperties(c->phys, &mp);
  c->mem_device = find_mem(&mp, VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT,
                           VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT); /* not the small BAR heap */
  if (c->mem_device == UINT32_MAX)
    c->mem_device = find_mem(&mp, VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT, 0);
  c->mem_host =
      find_mem(&mp, VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT, 0);
  if (c->mem_device == UINT32_MAX) c->mem_device = c->mem_host;
  VkMemoryPropertyFlags df = mp.memoryTypes[c->mem_device].propertyFlags;
  c->device_mapped =
      (df & VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT) && (df & VK_MEMORY_PROPERTY_HOST_COHERENT_BIT);
  c->pipes = calloc((size_t)asg_vk_n_shaders + 1, sizeof *c->pipes);
  VkPushConstantRange pcr = {VK_SHADER_STAGE_COMPUTE_BIT, 0, 8};
  VkPipelineLayoutCreateInfo plci = {
      VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO, NULL, 0, 0, NULL, 1, &pcr};
  VkCommandPoolCreateInfo cpci = {VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO, NULL,
                                  VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT, c->qfamily};
  VkCommandBufferAllocateInfo cbai = {VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO, NULL,
                                      VK_NULL_HANDLE, VK_COMMAND_BUFFER_LEVEL_PRIMARY, 1};
  if (c->mem_host == UINT32_MAX || !c->pipes ||
      g_fn.vkCreatePipelineLayout(c->dev, &plci, NULL, &c->layout) != VK_SUCCESS ||
      g_fn.vkCreateCommandPool(c->dev, &cpci, NULL, &c->pool) != VK_SUCCESS ||
      (cbai.commandPool = c->pool,
       g_fn.vkAllocateCommandBuffers(c->dev, &cbai, &c->xfer) != VK_SUCCESS)) {
    snprintf(g_why, sizeof g_why, "cannot set up the Vulkan device %s", c->caps.name);
    ctx_destroy(c);
    return ASG_ERR_UNSUPPORTED;
  }
  g_ctx = c;
  return ASG_OK;
}

static void chunk_release(asg_vk_ctx *c, asg_vk_chunk *k) {
  if (k->buf) c->fn->vkDestroyBuffer(c->dev, k->buf, NULL);
  if (k->mem) c->fn->vkFreeMemory(c->dev, k->mem, NULL);
  free(k->blocks);
}

static void ctx_destroy(asg_vk_ctx *c) {
  if (!c) return;
  if (c->dev) {
    c->fn->vkDeviceWaitIdle(c->dev);
    for (int i = 0; c->pipes && i < asg_vk_n_shaders; i++)
      if (c->pipes[i]) c->fn->vkDestroyPipeline(c->dev, c->pipes[i], NULL);
    for (int i = 0; i < c->n_chunks; i++)
      chunk_release(c, &c->chunks[i]);
    if (c->stage) c->fn->vkDestroyBuffer(c->dev, c->stage, NULL);
    if (c->stage_mem) c->fn->vkFreeMemory(c->dev, c->stage_mem, NULL);
    if (c->pool) c->fn->vkDestroyCommandPool(c->dev, c->pool, NULL);
    if (c->layout) c->fn->vkDestroyPipelineLayout(c->dev, c->layout, NULL);
    c->fn->vkDestroyDevice(c->dev, NULL);
  }
  free(c->pipes);
  free(c->chunks);
  free(c);
}

static void init_once(void) {
  if (!load_loader()) return;
  /* The device lives until the process exits and is not destroyed at exit:
   * drivers reclaim it, and destroying it from an atexit handler races the
   * driver's own exit handlers (lavapipe then leaks in its teardown). */
  ctx_create();
}

asg_vk_ctx *asg_vk_context(void) {
  pthread_once(&g_once, init_once);
  if (!g_ctx) asg__error(ASG_ERR_UNSUPPORTED, "vulkan: %s", g_why[0] ? g_why : "unavailable");
  return g_ctx;
}

/* ------------------------------------------------------------ allocation */

static asg_status make_buffer(asg_vk_ctx *c, size_t bytes, uint32_t mem_type, VkBuffer *buf,
                              VkDeviceMemory *mem, void **map, bool want_map) {
  VkBufferCreateInfo bci = {VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO,
                            NULL,
                            0,
                            bytes,
                            VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_TRANSFER_SRC_BIT |
                                VK_BUFFER_USAGE_TRANSFER_DST_BIT |
                                VK_BUFFER_USAGE_SHADER_DEVICE_ADDRESS_BIT,
                            VK_SHARING_MODE_EXCLUSIVE,
                            0,
                            NULL};
  VkResult r = c->fn->vkCreateBuffer(c->dev, &bci, NULL, buf);
  if (r != VK_SUCCESS) return asg_vk_result(r, "creating a buffer");
  VkMemoryRequirements req;
  c->fn->vkGetBufferMemoryRequirements(c->dev, *buf, &req);
  VkMemoryAllocateFlagsInfo fl = {VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_FLAGS_INFO, NULL,
                                  VK_MEMORY_ALLOCATE_DEVICE_ADDRESS_BIT, 0};
  VkMemoryAllocateInfo mai = {VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO, &fl, req.size, mem_type};
  r = c->fn->vkAllocateMemory(c->dev, &mai, NULL, mem);
  if (r == VK_SUCCESS) r = c->fn->vkBindBufferMemory(c->dev, *buf, *mem, 0);
  if (r == VK_SUCCESS && want_map) r = c->fn->vkMapMemory(c->dev, *mem, 0, VK_WHOLE_SIZE, 0, map);
  if (r != VK_SUCCESS) {
    c->fn->vkDestroyBuffer(c->dev, *buf, NULL);
    if (*mem) c->fn->vkFreeMemory(c->dev, *mem, NULL);
    *buf = VK_NULL_HANDLE;
    *mem = VK_NULL_HANDLE;
    return r == VK_ERROR_OUT_OF_DEVICE_MEMORY || r == VK_ERROR_OUT_OF_HOST_MEMORY
               ? asg__error(ASG_ERR_OOM, "vulkan: cannot allocate %zu bytes of device memory",
                            bytes)
               : asg_vk_result(r, "allocating memory");
  }
  return ASG_OK;
}

asg_status asg_vk_host_buffer(asg_vk_ctx *c, size_t bytes, VkBuffer *buf, VkDeviceMemory *mem,
                              void **map) {
  return make_buffer(c, bytes, c->mem_host, buf, mem, map, true);
}

static bool chunk_take(asg_vk_chunk *k, size_t bytes, size_t *off) {
  for (int i = 0; i < k->n; i++) {
    vk_block *b = &k->blocks[i];
    if (b->used || b->size < bytes) continue;
    if (b->size > bytes) { /* split: the rest stays free */
      if (k->n == k->cap) {
        int cap = k->cap * 2;
        vk_block *nb = realloc(k->blocks, sizeof *nb * (size_t)cap);
        if (!nb) return false;
        k->blocks = nb;
        k->cap = cap;
        b = &k->blocks[i];
      }
      memmove(&k->blocks[i + 2], &k->blocks[i + 1], sizeof *b * (size_t)(k->n - i - 1));
      k->blocks[i + 1] = (vk_block){b->off + bytes, b->size - bytes, false};
      b->size = bytes;
      k->n++;
    }
    b->used = true;
    *off = b->off;
    return true;
  }
  return false;
}

asg_status asg_vk_alloc(asg_vk_ctx *c, size_t bytes, uint64_t *addr) {
  bytes = (bytes + BLOCK_ALIGN - 1) & ~(size_t)(BLOCK_ALIGN - 1);
  if (!bytes) bytes = BLOCK_ALIGN;
  pthread_mutex_lock(&g_lock);
  asg_status st = ASG_OK;
  size_t off = 0;
  int k = 0;
  for (; k < c->n_chunks; k++)
    if (chunk_take(&c->chunks[k], bytes, &off)) break;
  if (k == c->n_chunks) { /* a new chunk */
    if (c->n_chunks == c->cap_chunks) {
      int cap = c->cap_chunks ? c->cap_chunks * 2 : 8;
      asg_vk_chunk *nc = realloc(c->chunks, sizeof *nc * (size_t)cap);
      if (!nc) {
        pthread_mutex_unlock(&g_lock);
        return asg__error(ASG_ERR_OOM, "vulkan: out of memory");
      }
      c->chunks = nc;
      c->cap_chunks = cap;
    }
    asg_vk_chunk *ch = &c->chunks[k];
    memset(ch, 0, sizeof *ch);
    /* maxMemoryAllocationSize is advisory: larger allocations may fail
     * (then we say so) but often succeed (NVIDIA reports 4 GiB) */
    ch->size = bytes > CHUNK_MIN ? bytes : CHUNK_MIN;
    if (ch->size > c->caps.max_alloc) ch->size = bytes;
    ch->blocks = malloc(sizeof *ch->blocks * 8);
    ch->cap = 8;
    st = ch->blocks ? make_buffer(c, ch->size, c->mem_device, &ch->buf, &ch->mem, &ch->map,
                                  c->device_mapped)
                    : asg__error(ASG_ERR_OOM, "vulkan: out of memory");
    if (!st) {
      VkBufferDeviceAddressInfo ai = {VK_STRUCTURE_TYPE_BUFFER_DEVICE_ADDRESS_INFO, NULL, ch->buf};
      ch->addr = c->fn->vkGetBufferDeviceAddress(c->dev, &ai);
      ch->blocks[0] = (vk_block){0, ch->size, false};
      ch->n = 1;
      c->n_chunks++;
      chunk_take(ch, bytes, &off);
    } else {
      free(ch->blocks);
      if (bytes > c->caps.max_alloc)
        st = asg__error(ASG_ERR_OOM,
                        "vulkan: cannot allocate a buffer of %zu bytes (the device's allocation "
                        "limit is %llu)",
                        bytes, (unsigned long long)c->caps.max_alloc);
    }
  }
  if (!st) {
    c->live_buffers++;
    c->live_bytes += bytes; /* the block's size: chunk_take splits off exactly this */
  }
  pthread_mutex_unlock(&g_lock);
  if (!st) *addr = c->chunks[k].addr + off;
  return st;
}

static int chunk_of(asg_vk_ctx *c, uint64_t addr) {
  for (int k = 0; k < c->n_chunks; k++)
    if (addr >= c->chunks[k].addr && addr < c->chunks[k].addr + c->chunks[k].size) return k;
  return -1;
}

void asg_vk_free(asg_vk_ctx *c, uint64_t addr) {
  pthread_mutex_lock(&g_lock);
  int k = chunk_of(c, addr);
  if (k >= 0) {
    asg_vk_chunk *ch = &c->chunks[k];
    size_t off = addr - ch->addr;
    for (int i = 0; i < ch->n; i++) {
      if (ch->blocks[i].off != off || !ch->blocks[i].used) continue;
      ch->blocks[i].used = false;
      c->live_buffers--;
      c->live_bytes -= ch->blocks[i].size;
      if (i + 1 < ch->n && !ch->blocks[i + 1].used) { /* merge right */
        ch->blocks[i].size += ch->blocks[i + 1].size;
        memmove(&ch->blocks[i + 1], &ch->blocks[i + 2], sizeof(vk_block) * (size_t)(ch->n - i - 2));
        ch->n--;
      }
      if (i > 0 && !ch->blocks[i - 1].used) { /* merge left */
        ch->blocks[i - 1].size += ch->blocks[i].size;
        memmove(&ch->blocks[i], &ch->blocks[i + 1], sizeof(vk_block) * (size_t)(ch->n - i - 1));
        ch->n--;
      }
      break;
    }
  }
  pthread_mutex_unlock(&g_lock);
}

void asg_vk_memory_stats(asg_vk_ctx *c, size_t *buffers, size_t *bytes) {
  pthread_mutex_lock(&g_lock);
  *buffers = c->live_buffers;
  *bytes = c->live_bytes;
  pthread_mutex_unlock(&g_lock);
}

bool asg_vk_locate(asg_vk_ctx *c, uint64_t addr, VkBuffer *buf, VkDeviceSize *off, void **map) {
  pthread_mutex_lock(&g_lock);
  int k = chunk_of(c, addr);
  if (k >= 0) {
    *buf = c->chunks[k].buf;
    *off = addr - c->chunks[k].addr;
    *map = c->chunks[k].map ? (char *)c->chunks[k].map + *off : NULL;
  }
  pthread_mutex_unlock(&g_lock);
  return k >= 0;
}

/* -------------------------------------------------------------- transfers */

asg_status asg_vk_wait(asg_vk_ctx *c) {
  if (!c->busy) return ASG_OK;
  VkResult r = c->fn->vkQueueWaitIdle(c->queue);
  c->busy = false;
  return r == VK_SUCCESS ? ASG_OK : asg_vk_result(r, "waiting for the device");
}

static asg_status stage_reserve(asg_vk_ctx *c, size_t want) {
  if (c->stage_bytes >= want) return ASG_OK;
  if (c->stage) c->fn->vkDestroyBuffer(c->dev, c->stage, NULL);
  if (c->stage_mem) c->fn->vkFreeMemory(c->dev, c->stage_mem, NULL);
  c->stage = VK_NULL_HANDLE;
  c->stage_mem = VK_NULL_HANDLE;
  c->stage_bytes = 0;
  asg_status st = make_buffer(c, want, c->mem_host, &c->stage, &c->stage_mem, &c->stage_map, true);
  if (!st) c->stage_bytes = want;
  return st;
}

/* Copies n bytes between the staging buffer and buf+off, then waits. */
static asg_status xfer(asg_vk_ctx *c, VkBuffer buf, VkDeviceSize off, size_t n, bool upload) {
  VkCommandBufferBeginInfo bi = {VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO, NULL,
                                 VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT, NULL};
  VkBufferCopy cp = {upload ? 0 : off, upload ? off : 0, n};
  VkResult r = c->fn->vkBeginCommandBuffer(c->xfer, &bi);
  if (r == VK_SUCCESS) {
    if (upload)
      c->fn->vkCmdCopyBuffer(c->xfer, c->stage, buf, 1, &cp);
    else
      c->fn->vkCmdCopyBuffer(c->xfer, buf, c->stage, 1, &cp);
    r = c->fn->vkEndCommandBuffer(c->xfer);
  }
  VkSubmitInfo si = {VK_STRUCTURE_TYPE_SUBMIT_INFO, NULL, 0, NULL, NULL, 1, &c->xfer, 0, NULL};
  if (r == VK_SUCCESS) r = c->fn->vkQueueSubmit(c->queue, 1, &si, VK_NULL_HANDLE);
  if (r == VK_SUCCESS) r = c->fn->vkQueueWaitIdle(c->queue);
  return r == VK_SUCCESS ? ASG_OK : asg_vk_result(r, upload ? "upload" : "download");
}

static asg_status transfer(asg_vk_ctx *c, uint64_t addr, void *host, size_t n, bool upload) {
  if (!n) return ASG_OK;
  VkBuffer buf;
  VkDeviceSize off;
  void *map;
  if (!asg_vk_locate(c, addr, &buf, &off, &map))
    return asg__error(ASG_ERR_INVALID, "vulkan: not a device buffer");
  pthread_mutex_lock(&g_lock);
  asg_status st = asg_vk_wait(c); /* queued work may use the old contents */
  if (!st && map) {               /* host-visible device memory: no staging */
    if (upload)
      memcpy(map, host, n);
    else
      memcpy(host, map, n);
  }
  const size_t piece = (size_t)32 << 20;
  for (size_t done = 0; !st && !map && done < n; done += piece) {
    size_t m = n - done < piece ? n - done : piece;
    st = stage_reserve(c, m < piece && !c->stage_bytes ? m : piece);
    if (st) break;
    if (upload) memcpy(c->stage_map, (const char *)host + done, m);
    st = xfer(c, buf, off + done, m, upload);
    if (!st && !upload) memcpy((char *)host + done, c->stage_map, m);
  }
  pthread_mutex_unlock(&g_lock);
  return st;
}

asg_status asg_vk_write(asg_vk_ctx *c, uint64_t addr, const void *src, size_t n) {
  return transfer(c, addr, (void *)src, n, true);
}

asg_status asg_vk_read(asg_vk_ctx *c, uint64_t addr, void *dst, size_t n) {
  return transfer(c, addr, dst, n, false);
}

/* -------------------------------------------------------------- pipelines */

int asg_vk_shader_index(const char *name) {
  int lo = 0, hi = asg_vk_n_shaders - 1; /* the generated table is sorted by name */
  while (lo <= hi) {
    int mid = (lo + hi) / 2, d = strcmp(asg_vk_shaders[mid].name, name);
    if (!d) return mid;
    if (d < 0)
      lo = mid + 1;
    else
      hi = mid - 1;
  }
  return -1;
}

asg_status asg_vk_pipeline(asg_vk_ctx *c, int shader, VkPipeline *out) {
  pthread_mutex_lock(&g_lock);
  asg_status st = ASG_OK;
  if (!c->pipes[shader]) {
    const asg_vk_spirv *sp = &asg_vk_shaders[shader];
    VkShaderModuleCreateInfo smci = {VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO, NULL, 0,
                                     sp->words * 4, sp->code};
    VkShaderModule mod;
    VkResult r = c->fn->vkCreateShaderModule(c->dev, &smci, NULL, &mod);
    if (r == VK_SUCCESS) {
      VkComputePipelineCreateInfo cpci = {VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO,
                                          NULL,
                                          0,
                                          {VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO,
                                           NULL, 0, VK_SHADER_STAGE_COMPUTE_BIT, mod, "main", NULL},
                                          c->layout,
                                          VK_NULL_HANDLE,
                                          -1};
      r = c->fn->vkCreateComputePipelines(c->dev, VK_NULL_HANDLE, 1, &cpci, NULL,
                                          &c->pipes[shader]);
      c->fn->vkDestroyShaderModule(c->dev, mod, NULL);
    }
    if (r != VK_SUCCESS) {
      c->pipes[shader] = VK_NULL_HANDLE;
      st = asg__error(ASG_ERR_BACKEND, "vulkan: cannot create the pipeline of shader %s (%d)",
                      sp->name, (int)r);
    }
  }
  *out = c->pipes[shader];
  pthread_mutex_unlock(&g_lock);
  return st;
}

VkResult asg_vk_submit(asg_vk_ctx *c, const VkSubmitInfo *si, VkFence fence) {
  pthread_mutex_lock(&g_lock);
  VkResult r = c->fn->vkQueueSubmit(c->queue, 1, si, fence);
  if (r == VK_SUCCESS) c->busy = true;
  pthread_mutex_unlock(&g_lock);
  return r;
}

asg_status asg_vk_write_zero(asg_vk_ctx *c, uint64_t addr, size_t n) {
  VkBuffer buf;
  VkDeviceSize off;
  void *map;
  if (!n) return ASG_OK;
  if (!asg_vk_locate(c, addr, &buf, &off, &map))
    return asg__error(ASG_ERR_INVALID, "vulkan: not a device buffer");
  pthread_mutex_lock(&g_lock);
  asg_status st = asg_vk_wait(c);
  if (!st && map) memset(map, 0, n);
  if (!st && !map) {
    VkCommandBufferBeginInfo bi = {VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO, NULL,
                                   VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT, NULL};
    VkResult r = c->fn->vkBeginCommandBuffer(c->xfer, &bi);
    if (r == VK_SUCCESS) {
      /* fill sizes must be multiples of 4 (blocks are 256-byte aligned) */
      c->fn->vkCmdFillBuffer(c->xfer, buf, off, (n + 3) & ~(size_t)3, 0);
      r = c->fn->vkEndCommandBuffer(c->xfer);
    }
    VkSubmitInfo si = {VK_STRUCTURE_TYPE_SUBMIT_INFO, NULL, 0, NULL, NULL, 1, &c->xfer, 0, NULL};
    if (r == VK_SUCCESS) r = c->fn->vkQueueSubmit(c->queue, 1, &si, VK_NULL_HANDLE);
    if (r == VK_SUCCESS) r = c->fn->vkQueueWaitIdle(c->queue);
    if (r != VK_SUCCESS) st = asg_vk_result(r, "clearing a buffer");
  }
  pthread_mutex_unlock(&g_lock);
  return st;
}
