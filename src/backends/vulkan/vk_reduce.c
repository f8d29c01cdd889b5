/* Vulkan kernels of the reduce family (placeholder: no kernels yet). */
#include "backends/vulkan/vk.h"

void asg_vk_register_reduce(asg_vk_kernel *t) { (void)t; }
