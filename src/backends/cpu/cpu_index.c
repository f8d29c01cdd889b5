/* CPU kernels of the index family. */
#include "backends/cpu/cpu.h"

void asg_cpu_register_index(asg_cpu_kernel *t) { (void)t; }
