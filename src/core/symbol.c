/* Symbolic dimensions: symbols, interned polynomial expressions, floor
 * division atoms and constraints (contract in core/symbol.h). */
#include "core/symbol.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Limits that keep every expression a small fixed-size value: shape
 * arithmetic in real models stays far below them (B*T*H is degree 3). */
#define SYM_MAX_DEG 8
#define SYM_MAX_TERMS 16

typedef struct term {
  int64_t coef;
  int deg;
  int32_t atom[SYM_MAX_DEG]; /* ascending; repeated for powers */
} term;

typedef struct poly {
  int n;
  term t[SYM_MAX_TERMS];
} poly;

enum { ATOM_SYM, ATOM_FLOORDIV };
typedef struct atom {
  int kind;
  int sym;       /* ATOM_SYM */
  int64_t inner; /* ATOM_FLOORDIV: floor(inner / c) */
  int64_t c;
} atom;

typedef struct expr {
  uint64_t hash;
  int n, first; /* terms pool[first .. first + n) */
} expr;

enum { CON_GE, CON_MOD };
typedef struct constraint {
  int64_t d, c;
  int kind;
  char *label, *msg;
} constraint;

typedef struct symbol {
  char *name;
  int64_t max;
  int64_t dim; /* the expression "1*symbol" */
} symbol;

typedef struct asg_symtab {
  symbol *syms;
  int n_syms, cap_syms;
  atom *atoms;
  int n_atoms, cap_atoms;
  expr *exprs;
  int n_exprs, cap_exprs;
  term *pool;
  int n_pool, cap_pool;
  int *slot; /* open addressing over exprs, -1 empty */
  int n_slot;
  constraint *cons;
  int n_cons, cap_cons;
} asg_symtab;

/* Grows *arr (of elem bytes) to hold one more item; false on OOM. */
static bool grow(void **arr, int *cap, int n, size_t elem) {
  if (n < *cap) return true;
  int nc = *cap ? *cap * 2 : 16;
  void *p = realloc(*arr, (size_t)nc * elem);
  if (!p) return false;
  *arr = p;
  *cap = nc;
  return true;
}

static asg_symtab *tab(asg_graph *g) {
  if (!g->sym) g->sym = calloc(1, sizeof(asg_symtab));
  return g->sym;
}

void asg__sym_free(asg_graph *g) {
  asg_symtab *t = g ? g->sym : NULL;
  if (!t) return;
  for (int i = 0; i < t->n_syms; i++)
    free(t->syms[i].name);
  for (int i = 0; i < t->n_cons; i++) {
    free(t->cons[i].label);
    free(t->cons[i].msg);
  }
  free(t->syms), free(t->atoms), free(t->exprs), free(t->pool), free(t->slot), free(t->cons);
  free(t);
  g->sym = NULL;
}

static void *dup_arr(const void *p, size_t bytes, bool *ok) {
  if (!p || !bytes) return NULL;
  void *d = malloc(bytes);
  if (d)
    memcpy(d, p, bytes);
  else
    *ok = false;
  return d;
}

static char *dup_str(const char *s, bool *ok) { return s ? dup_arr(s, strlen(s) + 1, ok) : NULL; }

asg_status asg__sym_copy(asg_graph *dst, const asg_graph *src) {
  asg__sym_free(dst);
  const asg_symtab *s = src->sym;
  if (!s) return ASG_OK;
  asg_symtab *t = calloc(1, sizeof *t);
  if (!t) return asg__error(ASG_ERR_OOM, "symbols: out of memory");
  dst->sym = t;
  bool ok = true;
  t->syms = dup_arr(s->syms, sizeof(symbol) * (size_t)s->cap_syms, &ok);
  t->atoms = dup_arr(s->atoms, sizeof(atom) * (size_t)s->cap_atoms, &ok);
  t->exprs = dup_arr(s->exprs, sizeof(expr) * (size_t)s->cap_exprs, &ok);
  t->pool = dup_arr(s->pool, sizeof(term) * (size_t)s->cap_pool, &ok);
  t->slot = dup_arr(s->slot, sizeof(int) * (size_t)s->n_slot, &ok);
  t->cons = dup_arr(s->cons, sizeof(constraint) * (size_t)s->cap_cons, &ok);
  if (!ok) { /* nothing below points into src yet: drop the names */
    t->n_syms = t->n_cons = 0;
    asg__sym_free(dst);
    return asg__error(ASG_ERR_OOM, "symbols: out of memory");
  }
  t->cap_syms = s->cap_syms, t->cap_atoms = s->cap_atoms, t->cap_exprs = s->cap_exprs;
  t->cap_pool = s->cap_pool, t->n_slot = s->n_slot, t->cap_cons = s->cap_cons;
  t->n_atoms = s->n_atoms, t->n_exprs = s->n_exprs, t->n_pool = s->n_pool;
  for (int i = 0; i < s->n_syms; i++, t->n_syms++)
    t->syms[i].name = dup_str(s->syms[i].name, &ok);
  for (int i = 0; i < s->n_cons; i++, t->n_cons++) {
    t->cons[i].label = dup_str(s->cons[i].label, &ok);
    t->cons[i].msg = dup_str(s->cons[i].msg, &ok);
  }
  if (!ok) {
    asg__sym_free(dst);
    return asg__error(ASG_ERR_OOM, "symbols: out of memory");
  }
  return ASG_OK;
}

/* ---- queries ---- */
bool asg__shape_is_static(asg_shape s) {
  for (int i = 0; i < s.ndim && i < ASG_MAX_DIMS; i++)
    if (asg__dim_is_sym(s.dims[i])) return false;
  return true;
}
bool asg__graph_has_symbols(const asg_graph *g) { return g && g->sym && g->sym->n_syms > 0; }
int asg__sym_count(const asg_graph *g) { return g && g->sym ? g->sym->n_syms : 0; }
const char *asg__sym_name(const asg_graph *g, int k) {
  return k >= 0 && k < asg__sym_count(g) ? g->sym->syms[k].name : NULL;
}
int64_t asg__sym_max(const asg_graph *g, int k) {
  return k >= 0 && k < asg__sym_count(g) ? g->sym->syms[k].max : 0;
}
int asg__sym_find(const asg_graph *g, const char *name) {
  for (int k = 0; name && k < asg__sym_count(g); k++)
    if (strcmp(g->sym->syms[k].name, name) == 0) return k;
  return -1;
}
bool asg__dim_valid(const asg_graph *g, int64_t d) {
  if (d >= 0) return true;
  return d <= -2 && g && g->sym && -2 - d < g->sym->n_exprs;
}
static const expr *expr_of(const asg_graph *g, int64_t d) { return &g->sym->exprs[-2 - d]; }

int asg__dim_as_sym(const asg_graph *g, int64_t d) {
  if (!asg__dim_is_sym(d) || !asg__dim_valid(g, d)) return -1;
  const expr *e = expr_of(g, d);
  const term *t = &g->sym->pool[e->first];
  if (e->n != 1 || t->coef != 1 || t->deg != 1) return -1;
  const atom *a = &g->sym->atoms[t->atom[0]];
  return a->kind == ATOM_SYM ? a->sym : -1;
}

/* ---- polynomials ---- */
static int term_cmp(const term *a, const term *b) {
  if (a->deg != b->deg) return a->deg < b->deg ? -1 : 1;
  for (int i = 0; i < a->deg; i++)
    if (a->atom[i] != b->atom[i]) return a->atom[i] < b->atom[i] ? -1 : 1;
  return 0;
}

/* Sorts, merges equal monomials and drops zero terms; false on overflow. */
static bool canon(poly *p) {
  for (int i = 1; i < p->n; i++) /* insertion sort: a handful of terms */
    for (int j = i; j > 0 && term_cmp(&p->t[j], &p->t[j - 1]) < 0; j--) {
      term x = p->t[j];
      p->t[j] = p->t[j - 1];
      p->t[j - 1] = x;
    }
  int n = 0;
  for (int i = 0; i < p->n; i++) {
    if (n > 0 && term_cmp(&p->t[n - 1], &p->t[i]) == 0) {
      if (__builtin_add_overflow(p->t[n - 1].coef, p->t[i].coef, &p->t[n - 1].coef)) return false;
    } else {
      p->t[n++] = p->t[i];
    }
    if (p->t[n - 1].coef == 0) n--;
  }
  p->n = n;
  return true;
}

static void poly_const(poly *p, int64_t c) {
  p->n = 0;
  if (c) p->t[p->n++] = (term){c, 0, {0}};
}

static void poly_of(const asg_graph *g, int64_t d, poly *p) {
  if (d >= 0) {
    poly_const(p, d);
    return;
  }
  const expr *e = expr_of(g, d);
  p->n = e->n;
  memcpy(p->t, &g->sym->pool[e->first], sizeof(term) * (size_t)e->n);
}

static uint64_t poly_hash(const poly *p) {
  uint64_t h = 0x243f6a8885a308d3ull;
  for (int i = 0; i < p->n; i++) {
    h = asg__mix64(h ^ (uint64_t)p->t[i].coef);
    h = asg__mix64(h ^ (uint64_t)p->t[i].deg);
    for (int k = 0; k < p->t[i].deg; k++)
      h = asg__mix64(h ^ (uint64_t)p->t[i].atom[k]);
  }
  return h;
}

static bool poly_eq_expr(const asg_symtab *t, const poly *p, const expr *e) {
  if (p->n != e->n) return false;
  for (int i = 0; i < p->n; i++) {
    const term *a = &p->t[i], *b = &t->pool[e->first + i];
    if (a->coef != b->coef || term_cmp(a, b) != 0) return false;
  }
  return true;
}

static bool rehash(asg_symtab *t) {
  int n = t->n_slot ? t->n_slot * 2 : 64;
  int *s = malloc(sizeof *s * (size_t)n);
  if (!s) return false;
  for (int i = 0; i < n; i++)
    s[i] = -1;
  for (int i = 0; i < t->n_exprs; i++) {
    size_t k = (size_t)t->exprs[i].hash & (size_t)(n - 1);
    while (s[k] >= 0)
      k = (k + 1) & (size_t)(n - 1);
    s[k] = i;
  }
  free(t->slot);
  t->slot = s;
  t->n_slot = n;
  return true;
}

static int64_t fail0(asg_graph *g, asg_status s, const char *fmt, const char *detail) {
  asg__fail(g, s, "shape", fmt, detail);
  return 0;
}

/* The dim of canonical p: a constant, or its interned expression. */
static int64_t intern(asg_graph *g, poly *p) {
  if (g->status != ASG_OK) return 0;
  if (p->n == 0) return 0;
  if (p->n == 1 && p->t[0].deg == 0) {
    if (p->t[0].coef < 0)
      return fail0(g, ASG_ERR_SHAPE, "dim arithmetic gives %s", "a negative constant");
    return p->t[0].coef;
  }
  asg_symtab *t = tab(g);
  if (!t) return fail0(g, ASG_ERR_OOM, "%s", "out of memory");
  uint64_t h = poly_hash(p);
  if (t->n_slot) {
    for (size_t k = (size_t)h & (size_t)(t->n_slot - 1); t->slot[k] >= 0;
         k = (k + 1) & (size_t)(t->n_slot - 1)) {
      const expr *e = &t->exprs[t->slot[k]];
      if (e->hash == h && poly_eq_expr(t, p, e)) return -2 - (int64_t)t->slot[k];
    }
  }
  if (t->n_exprs >= (1 << 24)) return fail0(g, ASG_ERR_SHAPE, "%s", "too many dim expressions");
  if (!grow((void **)&t->exprs, &t->cap_exprs, t->n_exprs, sizeof(expr))) goto oom;
  while (t->n_pool + p->n > t->cap_pool)
    if (!grow((void **)&t->pool, &t->cap_pool, t->cap_pool, sizeof(term))) goto oom;
  if (2 * (t->n_exprs + 1) > t->n_slot && !rehash(t)) goto oom;
  memcpy(&t->pool[t->n_pool], p->t, sizeof(term) * (size_t)p->n);
  int id = t->n_exprs++;
  t->exprs[id] = (expr){h, p->n, t->n_pool};
  t->n_pool += p->n;
  size_t k = (size_t)h & (size_t)(t->n_slot - 1);
  while (t->slot[k] >= 0)
    k = (k + 1) & (size_t)(t->n_slot - 1);
  t->slot[k] = id;
  return -2 - (int64_t)id;
oom:
  return fail0(g, ASG_ERR_OOM, "%s", "out of memory");
}

/* Both operands valid dims of g (else g fails). */
static bool operands(asg_graph *g, int64_t a, int64_t b) {
  if (!g || g->status != ASG_OK) return false;
  if (asg__dim_valid(g, a) && asg__dim_valid(g, b)) return true;
  char m[96];
  snprintf(m, sizeof m, "%lld", (long long)(asg__dim_valid(g, a) ? b : a));
  fail0(g, ASG_ERR_SHAPE, "dim %s is neither >= 0 nor a symbolic dim of this graph", m);
  return false;
}

static int64_t add_scaled(asg_graph *g, int64_t a, int64_t b, int64_t sb) {
  poly p, q;
  poly_of(g, a, &p);
  poly_of(g, b, &q);
  if (p.n + q.n > SYM_MAX_TERMS)
    return fail0(g, ASG_ERR_SHAPE, "%s", "dim expression has too many terms");
  for (int i = 0; i < q.n; i++) {
    p.t[p.n] = q.t[i];
    if (__builtin_mul_overflow(q.t[i].coef, sb, &p.t[p.n].coef)) goto ovf;
    p.n++;
  }
  if (!canon(&p)) goto ovf;
  return intern(g, &p);
ovf:
  return fail0(g, ASG_ERR_SHAPE, "%s", "dim arithmetic overflows int64");
}

int64_t asg__dim_add(asg_graph *g, int64_t a, int64_t b) {
  if (a >= 0 && b >= 0) {
    int64_t r;
    if (__builtin_add_overflow(a, b, &r))
      return fail0(g, ASG_ERR_SHAPE, "%s", "dim sum overflows int64");
    return r;
  }
  return operands(g, a, b) ? add_scaled(g, a, b, 1) : 0;
}

int64_t asg__dim_sub(asg_graph *g, int64_t a, int64_t b) {
  if (a >= 0 && b >= 0 && a >= b) return a - b;
  return operands(g, a, b) ? add_scaled(g, a, b, -1) : 0;
}

static bool poly_mul(const poly *p, const poly *q, poly *r) {
  r->n = 0;
  for (int i = 0; i < p->n; i++)
    for (int j = 0; j < q->n; j++) {
      const term *a = &p->t[i], *b = &q->t[j];
      if (r->n >= SYM_MAX_TERMS || a->deg + b->deg > SYM_MAX_DEG) return false;
      term *t = &r->t[r->n++];
      if (__builtin_mul_overflow(a->coef, b->coef, &t->coef)) return false;
      t->deg = 0; /* merge the sorted atom lists */
      int x = 0, y = 0;
      while (x < a->deg || y < b->deg)
        t->atom[t->deg++] =
            (y >= b->deg || (x < a->deg && a->atom[x] <= b->atom[y])) ? a->atom[x++] : b->atom[y++];
    }
  return canon(r);
}

int64_t asg__dim_mul(asg_graph *g, int64_t a, int64_t b) {
  if (a >= 0 && b >= 0) {
    int64_t r;
    if (__builtin_mul_overflow(a, b, &r))
      return fail0(g, ASG_ERR_SHAPE, "%s", "dim product overflows int64");
    return r;
  }
  if (!operands(g, a, b)) return 0;
  poly p, q, r;
  poly_of(g, a, &p);
  poly_of(g, b, &q);
  if (!poly_mul(&p, &q, &r))
    return fail0(g, ASG_ERR_SHAPE, "%s", "dim product too large (degree, terms or int64)");
  return intern(g, &r);
}

int64_t asg__shape_numel_dim(asg_graph *g, asg_shape s) {
  int64_t n = 1;
  for (int i = 0; i < s.ndim && g->status == ASG_OK; i++)
    n = asg__dim_mul(g, n, s.dims[i]);
  return g->status == ASG_OK ? n : 0;
}

/* Finds or adds the atom floor(inner / c). */
static int floordiv_atom(asg_graph *g, int64_t inner, int64_t c) {
  asg_symtab *t = tab(g);
  if (!t) return -1;
  for (int i = 0; i < t->n_atoms; i++)
    if (t->atoms[i].kind == ATOM_FLOORDIV && t->atoms[i].inner == inner && t->atoms[i].c == c)
      return i;
  if (!grow((void **)&t->atoms, &t->cap_atoms, t->n_atoms, sizeof(atom))) return -1;
  t->atoms[t->n_atoms] = (atom){ATOM_FLOORDIV, -1, inner, c};
  return t->n_atoms++;
}

int64_t asg__dim_floordiv(asg_graph *g, int64_t a, int64_t c) {
  if (!g || g->status != ASG_OK) return 0;
  if (c < 1) return fail0(g, ASG_ERR_SHAPE, "%s", "floor division by a divisor < 1");
  if (a >= 0) return a / c;
  if (!operands(g, a, 0)) return 0;
  /* a = c q + r with every coefficient of r in [0, c): q is an integer
   * polynomial, so floor(a / c) = q + floor(r / c) */
  poly p, q, r;
  poly_of(g, a, &p);
  q.n = r.n = 0;
  for (int i = 0; i < p.n; i++) {
    int64_t k = p.t[i].coef / c, m = p.t[i].coef % c;
    if (m < 0) m += c, k--;
    if (k) q.t[q.n] = p.t[i], q.t[q.n++].coef = k;
    if (m) r.t[r.n] = p.t[i], r.t[r.n++].coef = m;
  }
  if (r.n > 0 && !(r.n == 1 && r.t[0].deg == 0)) { /* a constant r < c adds 0 */
    int64_t inner = intern(g, &r);
    int at = g->status == ASG_OK ? floordiv_atom(g, inner, c) : -1;
    if (at < 0) return g->status == ASG_OK ? fail0(g, ASG_ERR_OOM, "%s", "out of memory") : 0;
    if (q.n >= SYM_MAX_TERMS)
      return fail0(g, ASG_ERR_SHAPE, "%s", "dim expression has too many terms");
    q.t[q.n++] = (term){1, 1, {at}};
  }
  if (!canon(&q)) return fail0(g, ASG_ERR_SHAPE, "%s", "dim arithmetic overflows int64");
  return intern(g, &q);
}

/* Exact division of polynomials (graded order, leading terms): true and
 * the quotient when b divides a with integer coefficients. */
static bool poly_div(const poly *a, const poly *b, poly *quot) {
  poly rem = *a, prod, tmp;
  quot->n = 0;
  const term *lb = &b->t[b->n - 1];
  for (int iter = 0; rem.n > 0; iter++) {
    const term *lr = &rem.t[rem.n - 1];
    if (iter > 64 || lr->deg < lb->deg || lr->coef % lb->coef || quot->n >= SYM_MAX_TERMS)
      return false;
    term qt = {lr->coef / lb->coef, 0, {0}};
    int x = 0; /* lr's atoms minus lb's (both sorted) */
    for (int y = 0; y < lr->deg; y++) {
      if (x < lb->deg && lb->atom[x] == lr->atom[y])
        x++;
      else
        qt.atom[qt.deg++] = lr->atom[y];
    }
    if (x != lb->deg) return false;
    poly single = {1, {qt}};
    if (!poly_mul(b, &single, &prod)) return false;
    tmp = rem;
    if (tmp.n + prod.n > SYM_MAX_TERMS) return false;
    for (int i = 0; i < prod.n; i++) {
      tmp.t[tmp.n] = prod.t[i];
      tmp.t[tmp.n++].coef = -prod.t[i].coef;
    }
    if (!canon(&tmp)) return false;
    rem = tmp;
    quot->t[quot->n++] = qt;
  }
  return canon(quot);
}

int64_t asg__dim_div_exact(asg_graph *g, int64_t a, int64_t b, const char *op) {
  char m[160], sa[64], sb[64];
  if (!g || g->status != ASG_OK) return 0;
  if (b == 0) return fail0(g, ASG_ERR_SHAPE, "%s", "dim division by zero");
  if (a >= 0 && b >= 0) {
    if (a % b == 0) return a / b;
    snprintf(m, sizeof m, "%lld is not a multiple of %lld", (long long)a, (long long)b);
    asg__fail(g, ASG_ERR_SHAPE, op, "%s", m);
    return 0;
  }
  if (!operands(g, a, b)) return 0;
  poly p, q, r;
  poly_of(g, a, &p);
  poly_of(g, b, &q);
  if (poly_div(&p, &q, &r)) return intern(g, &r);
  if (b > 0) { /* only the binding can tell: a constraint and a floor */
    snprintf(m, sizeof m, "%s must be a multiple of %lld", asg__dim_str(g, a, sa, sizeof sa),
             (long long)b);
    if (!asg__dim_require_mod(g, a, b, op, m)) return 0;
    return asg__dim_floordiv(g, a, b);
  }
  asg__fail(g, ASG_ERR_SHAPE, op, "%s is not a multiple of %s for every binding",
            asg__dim_str(g, a, sa, sizeof sa), asg__dim_str(g, b, sb, sizeof sb));
  return 0;
}

/* ---- evaluation ---- */
static bool eval_poly(const asg_graph *g, int64_t d, const int64_t *v, int64_t *out, int depth);

static bool eval_atom(const asg_graph *g, int a, const int64_t *v, int64_t *out, int depth) {
  const atom *at = &g->sym->atoms[a];
  if (at->kind == ATOM_SYM) {
    *out = v[at->sym];
    return true;
  }
  int64_t x;
  if (depth > 32 || !eval_poly(g, at->inner, v, &x, depth + 1) || x < 0) return false;
  *out = x / at->c;
  return true;
}

static bool eval_poly(const asg_graph *g, int64_t d, const int64_t *v, int64_t *out, int depth) {
  if (d >= 0) {
    *out = d;
    return true;
  }
  const expr *e = expr_of(g, d);
  int64_t sum = 0;
  for (int i = 0; i < e->n; i++) {
    const term *t = &g->sym->pool[e->first + i];
    int64_t p = t->coef, x;
    for (int k = 0; k < t->deg; k++)
      if (!eval_atom(g, t->atom[k], v, &x, depth) || __builtin_mul_overflow(p, x, &p)) return false;
    if (__builtin_add_overflow(sum, p, &sum)) return false;
  }
  *out = sum;
  return true;
}

int64_t asg__dim_eval(const asg_graph *g, int64_t d, const int64_t *values) {
  char b[128];
  if (d >= 0) return d;
  if (!asg__dim_valid(g, d) || !values) {
    asg__error(ASG_ERR_INVALID, "dim %lld is not a symbolic dim of this graph", (long long)d);
    return -1;
  }
  int64_t r;
  if (!eval_poly(g, d, values, &r, 0)) {
    asg__error(ASG_ERR_SHAPE, "dim %s overflows int64 for this binding",
               asg__dim_str(g, d, b, sizeof b));
    return -1;
  }
  if (r < 0) {
    asg__error(ASG_ERR_SHAPE, "dim %s is %lld (negative) for this binding",
               asg__dim_str(g, d, b, sizeof b), (long long)r);
    return -1;
  }
  return r;
}

asg_shape asg__shape_eval(const asg_graph *g, asg_shape s, const int64_t *values, asg_status *st) {
  asg_shape r = s;
  if (st) *st = ASG_OK;
  for (int i = 0; i < s.ndim && i < ASG_MAX_DIMS; i++) {
    r.dims[i] = asg__dim_eval(g, s.dims[i], values);
    if (r.dims[i] < 0) {
      if (st) *st = ASG_ERR_SHAPE;
      return (asg_shape){-1, {0}};
    }
  }
  return r;
}

/* ---- constraints ---- */
/* Lower bound of a polynomial with no negative coefficient, symbols >= 1
 * and floor atoms >= 0; false if some coefficient is negative. */
static bool lower_bound(const asg_graph *g, int64_t d, int64_t *lb) {
  const expr *e = expr_of(g, d);
  int64_t s = 0;
  for (int i = 0; i < e->n; i++) {
    const term *t = &g->sym->pool[e->first + i];
    if (t->coef < 0) return false;
    bool zero = false;
    for (int k = 0; k < t->deg; k++)
      zero = zero || g->sym->atoms[t->atom[k]].kind == ATOM_FLOORDIV;
    if (!zero && __builtin_add_overflow(s, t->coef, &s)) s = INT64_MAX;
  }
  *lb = s;
  return true;
}

static bool add_con(asg_graph *g, int kind, int64_t d, int64_t c, const char *op, const char *msg) {
  asg_symtab *t = tab(g);
  if (!t) return fail0(g, ASG_ERR_OOM, "%s", "out of memory"), false;
  for (int i = 0; i < t->n_cons; i++)
    if (t->cons[i].kind == kind && t->cons[i].d == d && t->cons[i].c == c) return true;
  if (!grow((void **)&t->cons, &t->cap_cons, t->n_cons, sizeof(constraint)))
    return fail0(g, ASG_ERR_OOM, "%s", "out of memory"), false;
  size_t n = strlen(g->scope) + strlen(op) + 2;
  char *label = malloc(n), *m = msg ? malloc(strlen(msg) + 1) : NULL;
  if (!label || (msg && !m)) {
    free(label), free(m);
    return fail0(g, ASG_ERR_OOM, "%s", "out of memory"), false;
  }
  snprintf(label, n, "%s%s%s", g->scope, g->scope[0] ? "/" : "", op);
  if (m) strcpy(m, msg);
  t->cons[t->n_cons++] = (constraint){d, c, kind, label, m};
  return true;
}

bool asg__dim_require_ge(asg_graph *g, int64_t d, int64_t c, const char *op, const char *msg) {
  char b[160], e[128];
  if (!g || g->status != ASG_OK) return false;
  if (d >= 0) {
    if (d >= c) return true;
    asg__fail(g, ASG_ERR_SHAPE, op, "%s (%lld < %lld)", msg ? msg : "dim too small", (long long)d,
              (long long)c);
    return false;
  }
  if (!asg__dim_valid(g, d)) {
    asg__fail(g, ASG_ERR_SHAPE, op, "dim %lld is not a symbolic dim of this graph", (long long)d);
    return false;
  }
  int64_t lb;
  if (lower_bound(g, d, &lb) && lb >= c) return true;
  if (!msg) {
    snprintf(b, sizeof b, "%s must be >= %lld", asg__dim_str(g, d, e, sizeof e), (long long)c);
    msg = b;
  }
  return add_con(g, CON_GE, d, c, op, msg);
}

bool asg__dim_require_mod(asg_graph *g, int64_t d, int64_t c, const char *op, const char *msg) {
  if (!g || g->status != ASG_OK) return false;
  if (c < 1) {
    asg__fail(g, ASG_ERR_SHAPE, op, "divisor %lld < 1", (long long)c);
    return false;
  }
  if (d >= 0) {
    if (d % c == 0) return true;
    asg__fail(g, ASG_ERR_SHAPE, op, "%s (%lld %% %lld != 0)", msg ? msg : "not a multiple",
              (long long)d, (long long)c);
    return false;
  }
  const expr *e = expr_of(g, d);
  bool all = true;
  for (int i = 0; i < e->n; i++)
    all = all && g->sym->pool[e->first + i].coef % c == 0;
  return all || add_con(g, CON_MOD, d, c, op, msg);
}

/* Appends "name=value" of every symbol in d (once each) to buf. */
static void sym_values(const asg_graph *g, int64_t d, const int64_t *v, char *buf, size_t n,
                       bool *seen, int depth) {
  if (d >= 0 || depth > 32) return;
  const expr *e = expr_of(g, d);
  for (int i = 0; i < e->n; i++) {
    const term *t = &g->sym->pool[e->first + i];
    for (int k = 0; k < t->deg; k++) {
      const atom *a = &g->sym->atoms[t->atom[k]];
      if (a->kind == ATOM_FLOORDIV) {
        sym_values(g, a->inner, v, buf, n, seen, depth + 1);
      } else if (!seen[a->sym]) {
        seen[a->sym] = true;
        size_t l = strlen(buf);
        snprintf(buf + l, n - l, "%s%s=%lld", l ? ", " : "", g->sym->syms[a->sym].name,
                 (long long)v[a->sym]);
      }
    }
  }
}

asg_status asg__binding_check(const asg_graph *g, const int64_t *values) {
  int n = asg__sym_count(g);
  if (n == 0) return ASG_OK;
  if (!values) return asg__error(ASG_ERR_INVALID, "binding: no values");
  for (int k = 0; k < n; k++) {
    const symbol *s = &g->sym->syms[k];
    if (values[k] < 1)
      return asg__error(ASG_ERR_SHAPE, "binding: %s=%lld, but dims must be >= 1", s->name,
                        (long long)values[k]);
    if (s->max > 0 && values[k] > s->max)
      return asg__error(ASG_ERR_SHAPE, "binding: %s=%lld is above its bound %lld", s->name,
                        (long long)values[k], (long long)s->max);
  }
  bool *seen = calloc((size_t)n, sizeof *seen);
  if (!seen) return asg__error(ASG_ERR_OOM, "binding: out of memory");
  asg_status st = ASG_OK;
  for (int i = 0; i < g->sym->n_cons && st == ASG_OK; i++) {
    const constraint *c = &g->sym->cons[i];
    int64_t x;
    bool ok = eval_poly(g, c->d, values, &x, 0);
    if (ok) ok = c->kind == CON_GE ? x >= c->c : x >= 0 && x % c->c == 0;
    if (ok) continue;
    char vals[256] = "", e[128];
    memset(seen, 0, (size_t)n * sizeof *seen);
    sym_values(g, c->d, values, vals, sizeof vals, seen, 0);
    asg__dim_str(g, c->d, e, sizeof e);
    if (c->kind == CON_GE)
      st = asg__error(ASG_ERR_SHAPE, "binding %s: %s: %s (%s >= %lld fails)", vals, c->label,
                      c->msg ? c->msg : "constraint fails", e, (long long)c->c);
    else
      st = asg__error(ASG_ERR_SHAPE, "binding %s: %s: %s (%s %% %lld == 0 fails)", vals, c->label,
                      c->msg ? c->msg : "constraint fails", e, (long long)c->c);
  }
  free(seen);
  return st;
}

uint32_t asg__op_dim_attrs(asg_op op) {
  switch (op) {
  case ASG_OP_SLICE:
  case ASG_OP_SLICE_BWD: return (1u << 1) | (1u << 3); /* start, count */
  case ASG_OP_FILL: return 1u << 0;                    /* a value from a dim (asg__dim_ratio) */
  default: return 0;
  }
}

/* ---- printing ---- */
static size_t put(char *buf, size_t n, size_t k, const char *s) {
  if (k < n) snprintf(buf + k, n - k, "%s", s);
  return k + strlen(s);
}

static size_t dim_str(const asg_graph *g, int64_t d, char *buf, size_t n, size_t k, int depth) {
  char tmp[64];
  if (d >= 0 || !asg__dim_valid(g, d) || depth > 32) {
    snprintf(tmp, sizeof tmp, d >= 0 || d == -1 ? "%lld" : "?%lld", (long long)d);
    return put(buf, n, k, tmp);
  }
  const expr *e = expr_of(g, d);
  for (int i = e->n - 1; i >= 0; i--) { /* highest degree first: "2*B*T+T+1" */
    const term *t = &g->sym->pool[e->first + i];
    int64_t c = t->coef;
    if (c < 0) {
      k = put(buf, n, k, "-");
    } else if (i != e->n - 1) {
      k = put(buf, n, k, "+");
    }
    uint64_t mag = c < 0 ? (uint64_t)0 - (uint64_t)c : (uint64_t)c;
    bool first = true;
    if (mag != 1 || t->deg == 0) {
      snprintf(tmp, sizeof tmp, "%llu", (unsigned long long)mag);
      k = put(buf, n, k, tmp);
      first = false;
    }
    for (int a = 0; a < t->deg; a++) {
      const atom *at = &g->sym->atoms[t->atom[a]];
      if (!first) k = put(buf, n, k, "*");
      first = false;
      if (at->kind == ATOM_SYM) {
        k = put(buf, n, k, g->sym->syms[at->sym].name);
      } else {
        /* parentheses around a sum or a scaled term only */
        const expr *ie = at->inner < 0 ? expr_of(g, at->inner) : NULL;
        bool paren = !ie || ie->n > 1 || g->sym->pool[ie->first].coef != 1;
        k = put(buf, n, k, paren ? "floor((" : "floor(");
        k = dim_str(g, at->inner, buf, n, k, depth + 1);
        snprintf(tmp, sizeof tmp, "%s/%lld)", paren ? ")" : "", (long long)at->c);
        k = put(buf, n, k, tmp);
      }
    }
  }
  return k;
}

char *asg__dim_str(const asg_graph *g, int64_t d, char *buf, size_t n) {
  if (!buf || n == 0) return buf;
  buf[0] = '\0';
  dim_str(g, d, buf, n, 0, 0);
  return buf;
}

char *asg__shape_str_g(const asg_graph *g, asg_shape s, char *buf, size_t n) {
  if (!buf || n == 0) return buf;
  buf[0] = '\0';
  if (s.ndim < 0 || s.ndim > ASG_MAX_DIMS) {
    snprintf(buf, n, "[rank %d?]", s.ndim);
    return buf;
  }
  size_t k = put(buf, n, 0, "[");
  for (int i = 0; i < s.ndim; i++) {
    if (i) k = put(buf, n, k, ",");
    k = dim_str(g, s.dims[i], buf, n, k, 0);
  }
  put(buf, n, k, "]");
  return buf;
}

/* ---- public API ---- */
static bool name_ok(const char *s) {
  if (!s || !((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || *s == '_')) return false;
  for (size_t i = 0; s[i]; i++)
    if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
          (s[i] >= '0' && s[i] <= '9') || s[i] == '_') ||
        i >= 63)
      return false;
  return true;
}

int64_t asg_dim(asg_graph *g, const char *name, int64_t max) {
  if (!g || g->magic != ASG_GRAPH_MAGIC) {
    asg__error(ASG_ERR_INVALID, "dim: graph is NULL or not a graph");
    return -1;
  }
  if (g->status != ASG_OK) return -1;
  if (!name_ok(name)) {
    asg__fail(g, ASG_ERR_INVALID, "dim",
              "name '%s' must be an identifier ([A-Za-z_][A-Za-z0-9_]*, at most 63 chars)",
              name ? name : "(null)");
    return -1;
  }
  if (max < 0) {
    asg__fail(g, ASG_ERR_INVALID, "dim", "'%s': bound %lld must be >= 0 (0: unbounded)", name,
              (long long)max);
    return -1;
  }
  int k = asg__sym_find(g, name);
  if (k >= 0) {
    symbol *s = &g->sym->syms[k];
    if (max && s->max && max != s->max) {
      asg__fail(g, ASG_ERR_INVALID, "dim", "'%s' declared with bound %lld, now %lld", name,
                (long long)s->max, (long long)max);
      return -1;
    }
    if (max) s->max = max;
    return s->dim;
  }
  asg_symtab *t = tab(g);
  char *nm = malloc(strlen(name) + 1);
  if (!t || !nm || !grow((void **)&t->syms, &t->cap_syms, t->n_syms, sizeof(symbol)) ||
      !grow((void **)&t->atoms, &t->cap_atoms, t->n_atoms, sizeof(atom))) {
    free(nm);
    asg__fail(g, ASG_ERR_OOM, "dim", "out of memory");
    return -1;
  }
  strcpy(nm, name);
  int at = t->n_atoms++;
  t->atoms[at] = (atom){ATOM_SYM, t->n_syms, 0, 0};
  poly p = {1, {{1, 1, {at}}}};
  int64_t d = intern(g, &p);
  if (g->status != ASG_OK) {
    free(nm);
    return -1;
  }
  t->syms[t->n_syms++] = (symbol){nm, max, d};
  return d;
}

bool asg_dim_is_symbolic(int64_t d) { return asg__dim_is_sym(d); }

static int64_t pub(asg_graph *g, const char *what, int64_t (*f)(asg_graph *, int64_t, int64_t),
                   int64_t a, int64_t b) {
  if (!g || g->magic != ASG_GRAPH_MAGIC) {
    asg__error(ASG_ERR_INVALID, "%s: graph is NULL or not a graph", what);
    return -1;
  }
  if (g->status != ASG_OK) return -1;
  int64_t r = f(g, a, b);
  return g->status == ASG_OK ? r : -1;
}
int64_t asg_dim_mul(asg_graph *g, int64_t a, int64_t b) {
  return pub(g, "dim_mul", asg__dim_mul, a, b);
}
int64_t asg_dim_add(asg_graph *g, int64_t a, int64_t b) {
  return pub(g, "dim_add", asg__dim_add, a, b);
}
int64_t asg_dim_sub(asg_graph *g, int64_t a, int64_t b) {
  return pub(g, "dim_sub", asg__dim_sub, a, b);
}

char *asg_graph_shape_str(const asg_graph *g, asg_shape s, char *buf, size_t n) {
  if (g && g->magic != ASG_GRAPH_MAGIC) g = NULL;
  return asg__shape_str_g(g, s, buf, n);
}
