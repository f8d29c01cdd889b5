/* CPU batch norm with the batch's statistics: BATCHNORM, BATCHNORM_BWD_X,
 * BATCHNORM_BWD_GAMMA (src/ops/op_nn.c). Threads split the channels; each
 * channel's values (N runs of S elements) stay in cache across the passes
 * over them. Per type: cpu_batchnorm_tmpl.h; the f32 one is compiled for
 * each SIMD level (cpu_simd.h), the same bits at every level. */
#include <math.h>

#include "backends/cpu/cpu.h"
#include "backends/cpu/cpu_simd.h"

#define SUF f32
#define T float
#include "backends/cpu/cpu_batchnorm_tmpl.h"
#define SUF f64
#define T double
#include "backends/cpu/cpu_batchnorm_tmpl.h"

#ifdef ASG_SIMD_X86
ASG_TARGET_AVX512 static void bn_channels_f32_avx512(const asg_cpu_call *c, int64_t N, int64_t C,
                                                     int64_t S, int64_t lo, int64_t hi) {
  bn_channels_f32(c, N, C, S, lo, hi);
}
ASG_TARGET_AVX2 static void bn_channels_f32_avx2(const asg_cpu_call *c, int64_t N, int64_t C,
                                                 int64_t S, int64_t lo, int64_t hi) {
  bn_channels_f32(c, N, C, S, lo, hi);
}
#endif

typedef struct bn_job {
  const asg_cpu_call *c;
  int64_t N, C, S;
} bn_job;

static void bn_range(void *ctx, int64_t lo, int64_t hi, int tid) {
  (void)tid;
  const bn_job *j = ctx;
  if (j->c->s->out.dtype == ASG_F64) {
    bn_channels_f64(j->c, j->N, j->C, j->S, lo, hi);
    return;
  }
#ifdef ASG_SIMD_X86
  int level = asg_cpu_simd_level();
  if (level == ASG_SIMD_AVX512) {
    bn_channels_f32_avx512(j->c, j->N, j->C, j->S, lo, hi);
    return;
  }
  if (level == ASG_SIMD_AVX2) {
    bn_channels_f32_avx2(j->c, j->N, j->C, j->S, lo, hi);
    return;
  }
#endif
  bn_channels_f32(j->c, j->N, j->C, j->S, lo, hi);
}

static asg_status batchnorm_kernel(const asg_cpu_call *c) {
  const asg_step *s = c->s;
  if (s->out.dtype != ASG_F32 && s->out.dtype != ASG_F64)
    return asg__error(ASG_ERR_DTYPE, "cpu: %s: dtype not supported", s->label);
  asg_shape xs = s->in[s->op == ASG_OP_BATCHNORM ? 0 : 1].shape; /* [N, C, ...] */
  bn_job j = {c, xs.dims[0], xs.dims[1], 1};
  for (int d = 2; d < xs.ndim; d++)
    j.S *= xs.dims[d];
  int nt = asg_cpu_threads_for(c, j.N * j.C * j.S, j.C);
  asg_cpu_parallel_for(c->pool, nt, j.C, bn_range, &j);
  return ASG_OK;
}

void asg_cpu_register_batchnorm(asg_cpu_kernel *t) {
  t[ASG_OP_BATCHNORM].run = batchnorm_kernel;
  t[ASG_OP_BATCHNORM_BWD_X].run = batchnorm_kernel;
  t[ASG_OP_BATCHNORM_BWD_GAMMA].run = batchnorm_kernel;
}
