/* Vulkan kernels of the matmul family (placeholder: no kernels yet). */
#include "backends/vulkan/vk.h"

void asg_vk_register_matmul(asg_vk_kernel *t) { (void)t; }
