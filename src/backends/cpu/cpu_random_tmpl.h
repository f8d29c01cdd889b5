/* The random draws for one element type, included by cpu_random.c once per type
 * with SUF, T, NEXT defined; they are undefined at the end. No include guard: it
 * is meant to be included more than once. */
#define ASG_CAT_(a, b) a##_##b
#define ASG_CAT(a, b) ASG_CAT_(a, b)

/* Elements [lo, hi) of out [n]. */
static void ASG_CAT(rand, SUF)(const asg_cpu_call *c, uint64_t key, int64_t lo, int64_t hi) {
  T *y = c->out;
  asg_op op = c->s->op;
  double f0 = c->s->attr.f[0], f1 = c->s->attr.f[1];
  for (int64_t i = lo; i < hi; i++) {
    if (op == ASG_OP_RAND_UNIFORM) {
      T v = (T)(f0 + (f1 - f0) * asg__rng_uniform(key, (uint64_t)i));
      if ((double)v >= f1 && f1 > f0) v = NEXT(v, (T)f0);
      y[i] = v;
    } else if (op == ASG_OP_RAND_NORMAL) {
      y[i] = (T)(f0 + f1 * asg__rng_normal(key, (uint64_t)i));
    } else {
      y[i] = asg__rng_uniform(key, (uint64_t)i) < f0 ? (T)1 : (T)0;
    }
  }
}

#undef ASG_CAT
#undef ASG_CAT_
#undef SUF
#undef T
#undef NEXT
