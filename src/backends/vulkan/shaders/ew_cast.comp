#version 460
// out[i] = (TO) in[i], [n] contiguous, exactly as the CPU: through double
// (floats) or int64 (ints); float -> int truncates, NaN -> 0, beyond
// +-9.2e18 -> INT64 limits, then the low bits for int32; int -> float
// through double (so int64 -> f32 rounds twice, as the CPU does).
#include "common.glsl"
layout(local_size_x = 256) in;
layout(buffer_reference, std430, buffer_reference_align = 8) readonly buffer Params {
  uint64_t out_, in_;
  int n;
};

#if defined(FROM_F32)
#define BufI BufF32
#elif defined(FROM_F64)
#define BufI BufF64
#elif defined(FROM_I32)
#define BufI BufI32
#else
#define BufI BufI64
#endif
#if defined(TO_F32)
#define BufO BufF32
#elif defined(TO_F64)
#define BufO BufF64
#elif defined(TO_I32)
#define BufO BufI32
#else
#define BufO BufI64
#endif

#if defined(FROM_F32) || defined(FROM_F64)
#define FROM_FLOAT 1
#endif
#if defined(TO_I32) || defined(TO_I64)
#define TO_INT 1
#endif

void main() {
  Params p = Params(push.params);
  BufO o = BufO(p.out_);
  BufI a = BufI(p.in_);
  GRID_LOOP(i, p.n) {
#if defined(FROM_FLOAT) && defined(TO_INT)
#if defined(FROM_F32)
    float v = a.v[i];
    const float LIM = 9.20000027e+18; // the least float >= 9.2e18
#else
    double v = a.v[i];
    const double LIM = 9.2e18LF;
#endif
    int64_t iv = isnan(v) ? 0l
                 : v >= LIM ? 9223372036854775807l
                 : v <= -LIM ? -9223372036854775807l - 1l
                             : int64_t(v);
#if defined(TO_I32)
    o.v[i] = int(iv); // low 32 bits
#else
    o.v[i] = iv;
#endif
#elif defined(FROM_I64) && defined(TO_F32)
    // the CPU's (float)(double)x rounds twice: round |x| to 53 bits (nearest
    // even) in integers first, then once to float (compilers may fuse a
    // literal float(double(x)) into one rounding)
    int64_t x = a.v[i];
    uint64_t u = x < 0l ? uint64_t(0ul) - uint64_t(x) : uint64_t(x);
    uint h32 = uint(u >> 32);
    int msb = h32 != 0u ? 32 + findMSB(h32) : findMSB(uint(u));
    if (msb >= 53) {
      int s = msb - 52;
      uint64_t keep = u >> s, rem = u - (keep << s), hf = 1ul << (s - 1);
      if (rem > hf || (rem == hf && (keep & 1ul) != 0ul)) keep += 1ul;
      u = keep << s; // 2^64 cannot occur: |x| <= 2^63
    }
    float f = float(u);
    o.v[i] = x < 0l ? -f : f;
#elif defined(TO_F32)
    o.v[i] = float(a.v[i]);
#elif defined(TO_F64)
    o.v[i] = double(a.v[i]);
#elif defined(TO_I32)
    o.v[i] = int(a.v[i]);
#else
    o.v[i] = int64_t(a.v[i]);
#endif
  }
}
