/* CPU kernels of the random family. */
#include "backends/cpu/cpu.h"

void asg_cpu_register_random(asg_cpu_kernel *t) { (void)t; }
