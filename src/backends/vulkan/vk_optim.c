/* Vulkan kernels of the optim family (placeholder: no kernels yet). */
#include "backends/vulkan/vk.h"

void asg_vk_register_optim(asg_vk_kernel *t) { (void)t; }
