/* Vulkan kernels of the index family (placeholder: no kernels yet). */
#include "backends/vulkan/vk.h"

void asg_vk_register_index(asg_vk_kernel *t) { (void)t; }
