// Reports an out-of-range index (runtime/backend.h, asg_index_fault): the
// first step to report claims the program's fault record (step1 from 0 by
// compare-and-swap) and stores its bad value; vk_backend.c reads the record
// after the run. addr is 0 when the program is unchecked.
layout(buffer_reference, std430, buffer_reference_align = 8) buffer FaultRec {
  uint step1;
  uint pad_;
  int64_t value;
};

void report_index(uint64_t addr, uint step1, int64_t v) {
  if (addr == 0ul) return;
  FaultRec f = FaultRec(addr);
  if (atomicCompSwap(f.step1, 0u, step1) == 0u) f.value = v;
}
