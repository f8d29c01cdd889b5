/* Variable initializers and the RNG helpers shared by every backend. */
#include <math.h>
#include <string.h>

#include "core/internal.h"

uint64_t asg__hash_str(const char *s) { /* FNV-1a: stable across runs and builds */
  uint64_t h = 0xcbf29ce484222325ull;
  for (; s && *s; s++)
    h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
  return h;
}

double asg__rng_normal(uint64_t key, uint64_t counter) {
  double u1 = asg__rng_uniform(key, 2 * counter), u2 = asg__rng_uniform(key, 2 * counter + 1);
  if (u1 < 1e-300) u1 = 1e-300;
  return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

asg_init asg_init_zeros(void) { return ASG_INIT(ASG_INIT_ZEROS, .a = 0); }
asg_init asg_init_ones(void) { return ASG_INIT(ASG_INIT_ONES, .a = 0); }
asg_init asg_init_constant(double v) { return ASG_INIT(ASG_INIT_CONSTANT, .a = v); }
asg_init asg_init_uniform(double lo, double hi) {
  return ASG_INIT(ASG_INIT_UNIFORM, .a = lo, .b = hi);
}
asg_init asg_init_normal(double mean, double std) {
  return ASG_INIT(ASG_INIT_NORMAL, .a = mean, .b = std);
}
asg_init asg_init_trunc_normal(double mean, double std) {
  return ASG_INIT(ASG_INIT_TRUNC_NORMAL, .a = mean, .b = std);
}
asg_init asg_init_xavier_uniform(double gain) {
  return ASG_INIT(ASG_INIT_XAVIER_UNIFORM, .a = gain);
}
asg_init asg_init_xavier_normal(double gain) { return ASG_INIT(ASG_INIT_XAVIER_NORMAL, .a = gain); }
asg_init asg_init_kaiming_uniform(double s) { return ASG_INIT(ASG_INIT_KAIMING_UNIFORM, .a = s); }
asg_init asg_init_kaiming_normal(double s) { return ASG_INIT(ASG_INIT_KAIMING_NORMAL, .a = s); }
asg_init asg_init_data(const void *data) { return ASG_INIT(ASG_INIT_DATA, .data = data); }

static void fans(asg_shape s, double *fan_in, double *fan_out) {
  if (s.ndim == 0) {
    *fan_in = *fan_out = 1;
  } else if (s.ndim == 1) {
    *fan_in = *fan_out = (double)s.dims[0];
  } else {
    double rf = 1;
    for (int i = 2; i < s.ndim; i++)
      rf *= (double)s.dims[i];
    *fan_in = (double)s.dims[1] * rf;
    *fan_out = (double)s.dims[0] * rf;
  }
}

static void store(asg_dtype dt, void *dst, int64_t i, double v) {
  switch (dt) {
  case ASG_F32: ((float *)dst)[i] = (float)v; break;
  case ASG_F64: ((double *)dst)[i] = v; break;
  case ASG_I32: ((int32_t *)dst)[i] = (int32_t)v; break;
  case ASG_I64: ((int64_t *)dst)[i] = (int64_t)v; break;
  default: break;
  }
}

asg_status asg_init_fill(asg_init init, asg_dtype dt, asg_shape shape, uint64_t seed, void *dst) {
  int64_t n = asg_shape_numel(shape);
  if (!dst) return asg__error(ASG_ERR_INVALID, "asg_init_fill: dst is NULL");
  if (dt != ASG_F32 && dt != ASG_F64 && dt != ASG_I32 && dt != ASG_I64)
    return asg__error(ASG_ERR_DTYPE, "asg_init_fill: dtype %s not supported on the host",
                      asg_dtype_name(dt));
  if (init.kind == ASG_INIT_DATA) {
    if (!init.data) return asg__error(ASG_ERR_INVALID, "asg_init_fill: no data");
    memcpy(dst, init.data, (size_t)n * asg_dtype_size(dt));
    return ASG_OK;
  }
  uint64_t key = asg__mix64(init.seed ? init.seed : seed);
  double fi, fo;
  fans(shape, &fi, &fo);
  double gain = init.a != 0 ? init.a : 1.0, bound, std;
  for (int64_t i = 0; i < n; i++) {
    double v = 0;
    switch (init.kind) {
    case ASG_INIT_ZEROS: v = 0; break;
    case ASG_INIT_ONES: v = 1; break;
    case ASG_INIT_CONSTANT: v = init.a; break;
    case ASG_INIT_UNIFORM:
      v = init.a + (init.b - init.a) * asg__rng_uniform(key, (uint64_t)i);
      break;
    case ASG_INIT_NORMAL: v = init.a + init.b * asg__rng_normal(key, (uint64_t)i); break;
    case ASG_INIT_TRUNC_NORMAL: {
      double z;
      uint64_t c = (uint64_t)i;
      do { /* rejection: re-draw from further counters of this element */
        z = asg__rng_normal(key, c);
        c += (uint64_t)n;
      } while (fabs(z) > 2.0);
      v = init.a + init.b * z;
      break;
    }
    case ASG_INIT_XAVIER_UNIFORM:
      bound = gain * sqrt(6.0 / (fi + fo));
      v = bound * (2 * asg__rng_uniform(key, (uint64_t)i) - 1);
      break;
    case ASG_INIT_XAVIER_NORMAL:
      std = gain * sqrt(2.0 / (fi + fo));
      v = std * asg__rng_normal(key, (uint64_t)i);
      break;
    case ASG_INIT_KAIMING_UNIFORM:
      bound = sqrt(6.0 / ((1 + init.a * init.a) * fi));
      v = bound * (2 * asg__rng_uniform(key, (uint64_t)i) - 1);
      break;
    case ASG_INIT_KAIMING_NORMAL:
      std = sqrt(2.0 / ((1 + init.a * init.a) * fi));
      v = std * asg__rng_normal(key, (uint64_t)i);
      break;
    default: return asg__error(ASG_ERR_INVALID, "asg_init_fill: unknown initializer %d", init.kind);
    }
    store(dt, dst, i, v);
  }
  return ASG_OK;
}
