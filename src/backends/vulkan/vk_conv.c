/* Vulkan kernels of the conv family (placeholder: no kernels yet). */
#include "backends/vulkan/vk.h"

void asg_vk_register_conv(asg_vk_kernel *t) { (void)t; }
