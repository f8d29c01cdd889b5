/* Checkpoints in the Hugging Face layout (asg/hf.h): config.json getters,
 * loading one file, converted dtypes and shards through name rules
 * (rename, prefix, transpose, fused q/k/v split, ignored buffers), every
 * mismatch error naming the tensor with nothing changed, and saving back
 * (one file, shards + index, bf16) with reload round trips. Expected values
 * are computed here from the file tensors by index arithmetic. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "asg/asg.h"
#include "testutil.h"

enum { D = 4, V = 6, F = 8, L = 2, MAXEL = 64 };

static char tmpdir[512];
enum { PATH_MAX_ = 600 };
/* tmpdir/name into buf (tu_path's buffers rotate: held paths live here) */
static char *tpath(char *buf, const char *name) {
  snprintf(buf, PATH_MAX_, "%s/%s", tmpdir, name);
  return buf;
}

/* ---- the checkpoint as a list of file tensors (HF names and layout) ---- */
typedef struct ftensor {
  char name[64];
  asg_dtype dt;
  asg_shape sh;
  double v[MAXEL];
} ftensor;

/* Multiples of 1/8 in [-2, 2]: exact in f16 and bf16, distinct per tensor. */
static void fill(ftensor *t, int id) {
  long n = (long)asg_shape_numel(t->sh);
  for (long i = 0; i < n; i++)
    t->v[i] = t->dt == ASG_I64 ? (double)(i * 1000 + id) : ((i * 7 + id * 13) % 33 - 16) / 8.0;
}

static int add_ft(ftensor *ts, int n, const char *name, asg_dtype dt, asg_shape sh) {
  snprintf(ts[n].name, sizeof ts[n].name, "%s", name);
  ts[n].dt = dt;
  ts[n].sh = sh;
  fill(&ts[n], n + 1);
  return n + 1;
}

/* GPT-2-like names; layer tensors carry `prefix` ("transformer." or ""). */
static int make_ckpt(ftensor *ts, const char *prefix) {
  int n = 0;
  char nm[64];
  n = add_ft(ts, n, "wte.weight", ASG_F32, ASG_SHAPE(V, D));
  for (int l = 0; l < L; l++) {
    snprintf(nm, sizeof nm, "%sh.%d.attn.c_attn.weight", prefix, l); /* Conv1D [in, 3*out] */
    n = add_ft(ts, n, nm, ASG_F32, ASG_SHAPE(D, 3 * D));
    snprintf(nm, sizeof nm, "%sh.%d.attn.c_attn.bias", prefix, l);
    n = add_ft(ts, n, nm, ASG_F32, ASG_SHAPE(3 * D));
    snprintf(nm, sizeof nm, "%sh.%d.mlp.c_fc.weight", prefix, l); /* Conv1D [in, out] */
    n = add_ft(ts, n, nm, ASG_F32, ASG_SHAPE(D, F));
    snprintf(nm, sizeof nm, "%sh.%d.attn.bias", prefix, l); /* a mask buffer: ignored */
    n = add_ft(ts, n, nm, ASG_F32, ASG_SHAPE(1, 1, D, D));
  }
  n = add_ft(ts, n, "ln_f.weight", ASG_F32, ASG_SHAPE(D));
  n = add_ft(ts, n, "counter", ASG_I64, ASG_SHAPE(3));
  return n;
}

static ftensor *find_ft(ftensor *ts, int n, const char *name) {
  for (int k = 0; k < n; k++)
    if (strcmp(ts[k].name, name) == 0) return &ts[k];
  return NULL;
}

/* Writes ts[0..n) to path; float tensors stored as `as` (F32, F16, BF16). */
static asg_status write_ckpt(const char *path, const ftensor *ts, int n, asg_dtype as) {
  const char *names[32];
  asg_host_tensor ht[32];
  asg_dtype fdt[32];
  static unsigned char buf[32][MAXEL * 8];
  for (int k = 0; k < n; k++) {
    names[k] = ts[k].name;
    tu_from_double(ts[k].dt, ts[k].v, buf[k], (long)asg_shape_numel(ts[k].sh));
    ht[k] = (asg_host_tensor){ts[k].dt, ts[k].sh, buf[k]};
    fdt[k] = ts[k].dt == ASG_I64 ? ASG_I64 : as;
  }
  const char *meta[2] = {"format", "pt"};
  return asg_safetensors_write_as(path, n, names, ht, fdt, 1, meta);
}

static const asg_hf_rule rules[] = {
    {.from = "h.*.attn.c_attn.weight",
     .to = "h.*.attn.q.weight",
     .transpose = true,
     .split = 3,
     .part = 0,
     .split_axis = 1},
    {.from = "h.*.attn.c_attn.weight",
     .to = "h.*.attn.k.weight",
     .transpose = true,
     .split = 3,
     .part = 1,
     .split_axis = 1},
    {.from = "h.*.attn.c_attn.weight",
     .to = "h.*.attn.v.weight",
     .transpose = true,
     .split = 3,
     .part = 2,
     .split_axis = 1},
    {.from = "h.*.attn.c_attn.bias", .to = "h.*.attn.q.bias", .split = 3, .part = 0},
    {.from = "h.*.attn.c_attn.bias", .to = "h.*.attn.k.bias", .split = 3, .part = 1},
    {.from = "h.*.attn.c_attn.bias", .to = "h.*.attn.v.bias", .split = 3, .part = 2},
    {.from = "h.*.mlp.c_fc.weight", .to = "h.*.mlp.fc.weight", .transpose = true},
    {.from = "h.*.attn.bias", .to = NULL},
};
enum { N_RULES = sizeof rules / sizeof rules[0] };
static const char *const strip[1] = {"transformer."};
static const char *const excl[1] = {"cache.*"};

static asg_hf_load_opts load_opts(bool strict) {
  return (asg_hf_load_opts){rules, N_RULES, strict, excl, 1, strip, 1};
}

/* ---- the program ---- */
typedef struct model {
  asg_graph *g;
  asg_program *p;
} model;

static model build(void) {
  model m = {asg_graph_new(), NULL};
  asg_tensor *outs[40];
  int n = 0;
  char nm[64];
  outs[n++] = asg_variable(m.g, "wte.weight", ASG_F32, ASG_SHAPE(V, D), asg_init_constant(0.5));
  const char *qkv = "qkv";
  for (int l = 0; l < L; l++) {
    for (int p = 0; p < 3; p++) {
      snprintf(nm, sizeof nm, "h.%d.attn.%c.weight", l, qkv[p]);
      outs[n++] = asg_variable(m.g, nm, ASG_F32, ASG_SHAPE(D, D), asg_init_constant(0.5));
      snprintf(nm, sizeof nm, "h.%d.attn.%c.bias", l, qkv[p]);
      outs[n++] = asg_variable(m.g, nm, ASG_F32, ASG_SHAPE(D), asg_init_constant(0.5));
    }
    snprintf(nm, sizeof nm, "h.%d.mlp.fc.weight", l); /* Linear [out, in] */
    outs[n++] = asg_variable(m.g, nm, ASG_F32, ASG_SHAPE(F, D), asg_init_constant(0.5));
  }
  outs[n++] = asg_variable(m.g, "ln_f.weight", ASG_F32, ASG_SHAPE(D), asg_init_constant(0.5));
  outs[n++] = asg_variable(m.g, "counter", ASG_I32, ASG_SHAPE(3), asg_init_constant(5));
  /* never required: a KV cache (excluded) and optimizer state (by its name) */
  outs[n++] = asg_variable(m.g, "cache.0.k", ASG_F32, ASG_SHAPE(2, D), asg_init_constant(0.5));
  outs[n++] =
      asg_variable(m.g, "ln_f.weight.adam_m", ASG_F32, ASG_SHAPE(D), asg_init_constant(0.5));
  asg_compile_opts co = {.backend = "cpu"};
  m.p = asg_compile(m.g, n, outs, &co);
  TU_CHECK(m.p != NULL, "compile: %s", asg_last_error());
  return m;
}

static void model_free(model *m) {
  asg_program_free(m->p);
  asg_graph_free(m->g);
}

/* Every variable's bytes, concatenated: to show that a failed load changed
 * nothing. */
static size_t snapshot(asg_program *p, unsigned char *buf, size_t cap) {
  size_t off = 0;
  for (int i = 0; i < asg_program_variable_count(p); i++) {
    const char *name;
    asg_dtype dt;
    asg_shape sh;
    asg_program_variable_info(p, i, &name, &dt, &sh);
    size_t nb = (size_t)asg_shape_numel(sh) * asg_dtype_size(dt);
    if (off + nb > cap) break;
    asg_program_get_variable(p, name, buf + off, nb);
    off += nb;
  }
  return off;
}

static bool unchanged(asg_program *p, const unsigned char *before, size_t n) {
  static unsigned char now[8192];
  return snapshot(p, now, sizeof now) == n && memcmp(now, before, n) == 0;
}

/* Checks every mapped variable against the file tensors ts (names with
 * prefix), computing the expected layout here. */
static void check_vars(asg_program *p, ftensor *ts, int nt, const char *prefix, const char *label) {
  double got[MAXEL], want[MAXEL];
  char nm[64], fn[64];
  int bad = 0;
  ftensor *t = find_ft(ts, nt, "wte.weight");
  bad += tu_get_var(p, "wte.weight", got) != V * D || !tu_close(label, got, t->v, V * D, 0, 0);
  for (int l = 0; l < L; l++) {
    snprintf(fn, sizeof fn, "%sh.%d.attn.c_attn.weight", prefix, l);
    ftensor *w = find_ft(ts, nt, fn); /* [in D, 3D]: part p is columns [pD, pD+D) */
    snprintf(fn, sizeof fn, "%sh.%d.attn.c_attn.bias", prefix, l);
    ftensor *b = find_ft(ts, nt, fn);
    for (int part = 0; part < 3; part++) {
      snprintf(nm, sizeof nm, "h.%d.attn.%c.weight", l, "qkv"[part]);
      for (int o = 0; o < D; o++) /* variable [out, in] */
        for (int i = 0; i < D; i++)
          want[o * D + i] = w->v[i * 3 * D + part * D + o];
      bad += tu_get_var(p, nm, got) != D * D || !tu_close(nm, got, want, D * D, 0, 0);
      snprintf(nm, sizeof nm, "h.%d.attn.%c.bias", l, "qkv"[part]);
      for (int o = 0; o < D; o++)
        want[o] = b->v[part * D + o];
      bad += tu_get_var(p, nm, got) != D || !tu_close(nm, got, want, D, 0, 0);
    }
    snprintf(fn, sizeof fn, "%sh.%d.mlp.c_fc.weight", prefix, l);
    ftensor *fc = find_ft(ts, nt, fn); /* [D, F] -> [F, D] */
    for (int o = 0; o < F; o++)
      for (int i = 0; i < D; i++)
        want[o * D + i] = fc->v[i * F + o];
    snprintf(nm, sizeof nm, "h.%d.mlp.fc.weight", l);
    bad += tu_get_var(p, nm, got) != F * D || !tu_close(nm, got, want, F * D, 0, 0);
  }
  t = find_ft(ts, nt, "ln_f.weight");
  bad += tu_get_var(p, "ln_f.weight", got) != D || !tu_close("ln_f", got, t->v, D, 0, 0);
  t = find_ft(ts, nt, "counter");
  bad += tu_get_var(p, "counter", got) != 3 || !tu_close("counter", got, t->v, 3, 0, 0);
  double half[8] = {0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5};
  bad += tu_get_var(p, "cache.0.k", got) != 2 * D || !tu_close("cache", got, half, 2 * D, 0, 0);
  TU_CHECK(bad == 0, "%s: %d variables differ from the checkpoint", label, bad);
}

/* ---- config.json ---- */
static void test_config(void) {
  char dir[PATH_MAX_];
  tpath(dir, "cfg");
  mkdir(dir, 0755);
  const char *text =
      "{\"model_type\": \"gpt2\", \"n_embd\": 768, \"layer_norm_epsilon\": 1e-05,\n"
      " \"rope_theta\": 10000.0, \"tie_word_embeddings\": true, \"eos_token_id\": [1, 2],\n"
      " \"bos_token_id\": 1, \"rope_scaling\": {\"type\": \"linear\", \"factor\": 2.5},\n"
      " \"a.b\": 5, \"a\": {\"b\": 6, \"c\": 7}, \"nothing\": null, \"neg\": -3,\n"
      " \"mixed\": [1, \"x\"], \"huge\": 123456789012345678901}\n";
  tu_write_file(tu_path(dir, "config.json"), text, strlen(text));
  asg_hf_config *c = asg_hf_config_load(dir); /* the folder */
  TU_CHECK(c != NULL, "config from a folder: %s", asg_last_error());
  if (!c) return;
  int64_t i = 0;
  double f = 0;
  bool b = false;
  int64_t list[4] = {0};
  TU_CHECK(asg_hf_config_int(c, "n_embd", &i) && i == 768, "n_embd %lld", (long long)i);
  TU_CHECK(asg_hf_config_int(c, "neg", &i) && i == -3, "neg %lld", (long long)i);
  TU_CHECK(asg_hf_config_float(c, "layer_norm_epsilon", &f) && f == 1e-05, "eps %g", f);
  TU_CHECK(asg_hf_config_float(c, "n_embd", &f) && f == 768.0, "an integer as a float");
  TU_CHECK(asg_hf_config_float(c, "huge", &f) && f == 123456789012345678901.0, "huge %g", f);
  i = 42;
  TU_CHECK(!asg_hf_config_int(c, "rope_theta", &i) && i == 42 &&
               tu_contains(asg_last_error(), "rope_theta") &&
               tu_contains(asg_last_error(), "config.json"),
           "10000.0 is not an integer: %s", asg_last_error());
  TU_CHECK(!asg_hf_config_int(c, "huge", &i), "an integer beyond int64 is not an int64");
  TU_CHECK(asg_hf_config_bool(c, "tie_word_embeddings", &b) && b, "bool");
  TU_CHECK(!asg_hf_config_bool(c, "n_embd", &b), "an integer is not a bool");
  const char *s = asg_hf_config_str(c, "model_type");
  TU_CHECK(s && strcmp(s, "gpt2") == 0, "str");
  TU_CHECK(asg_hf_config_str(c, "n_embd") == NULL && tu_contains(asg_last_error(), "n_embd"),
           "an integer is not a string: %s", asg_last_error());
  s = asg_hf_config_str(c, "rope_scaling.type");
  TU_CHECK(s && strcmp(s, "linear") == 0, "nested str");
  TU_CHECK(asg_hf_config_float(c, "rope_scaling.factor", &f) && f == 2.5, "nested float %g", f);
  TU_CHECK(asg_hf_config_int(c, "a.b", &i) && i == 5, "a key with a dot wins: %lld", (long long)i);
  TU_CHECK(asg_hf_config_int(c, "a.c", &i) && i == 7, "a.c %lld", (long long)i);
  TU_CHECK(!asg_hf_config_int(c, "rope_scaling.nope", &i), "absent nested key");
  TU_CHECK(!asg_hf_config_int(c, "absent_key", &i) && tu_contains(asg_last_error(), "absent_key"),
           "absent key named: %s", asg_last_error());
  TU_CHECK(!asg_hf_config_has(c, "nothing") && !asg_hf_config_has(c, "absent_key") &&
               asg_hf_config_has(c, "rope_scaling") && asg_hf_config_has(c, "rope_scaling.type"),
           "has");
  TU_CHECK(!asg_hf_config_int(c, "nothing", &i), "null is absent");
  int n = asg_hf_config_int_list(c, "eos_token_id", list, 4);
  TU_CHECK(n == 2 && list[0] == 1 && list[1] == 2, "eos list: %d", n);
  TU_CHECK(asg_hf_config_int_list(c, "eos_token_id", list, 1) == 2 && list[0] == 1,
           "a short buffer still gets the count");
  TU_CHECK(asg_hf_config_int_list(c, "bos_token_id", list, 4) == 1 && list[0] == 1,
           "one integer is a list of one");
  TU_CHECK(asg_hf_config_int_list(c, "mixed", list, 4) == -1 &&
               tu_contains(asg_last_error(), "mixed"),
           "a list with a string: %s", asg_last_error());
  TU_CHECK(asg_hf_config_int_list(c, "model_type", NULL, 0) == -1, "a string is not a list");
  asg_hf_config_free(c);

  c = asg_hf_config_load(tu_path(dir, "config.json")); /* the file itself */
  TU_CHECK(c && asg_hf_config_int(c, "n_embd", &i) && i == 768, "config from the file");
  asg_hf_config_free(c);
  tu_write_file(tu_path(dir, "config.json"), "{\"a\": 1,}", 9);
  c = asg_hf_config_load(dir);
  TU_CHECK(c == NULL && tu_contains(asg_last_error(), "config.json"), "bad JSON: %s",
           asg_last_error());
  tu_write_file(tu_path(dir, "config.json"), "[1, 2]", 6);
  c = asg_hf_config_load(dir);
  TU_CHECK(c == NULL && tu_contains(asg_last_error(), "object"), "not an object: %s",
           asg_last_error());
  unlink(tu_path(dir, "config.json"));
  c = asg_hf_config_load(dir);
  TU_CHECK(c == NULL && tu_contains(asg_last_error(), "config.json"), "no config.json: %s",
           asg_last_error());
  tu_tmpdir_remove(dir);
}

/* ---- loading ---- */
static void test_load(void) {
  ftensor ts[32];
  int nt = make_ckpt(ts, "transformer.");
  char dir[PATH_MAX_];
  tpath(dir, "f32");
  mkdir(dir, 0755);
  TU_CHECK(write_ckpt(tu_path(dir, "model.safetensors"), ts, nt, ASG_F32) == ASG_OK, "write: %s",
           asg_last_error());
  model m = build();
  if (!m.p) return;
  asg_hf_load_opts o = load_opts(true);
  asg_hf_load_stats stats;
  asg_status st = asg_hf_load(m.p, dir, &o, &stats);
  TU_CHECK(st == ASG_OK, "load f32 folder: %s", asg_last_error());
  /* 1 + 2 * (3 + 3 + 1) + 1 + 1 variables; 2 ignored mask buffers */
  TU_CHECK(stats.loaded == 17 && stats.ignored == 2 && stats.missing == 0 && stats.unexpected == 0,
           "stats %d %d %d %d", stats.loaded, stats.ignored, stats.missing, stats.unexpected);
  check_vars(m.p, ts, nt, "transformer.", "f32 with prefix");

  /* the same checkpoint without the prefix, stored as bf16, as a file path */
  ftensor tb[32];
  int nb = make_ckpt(tb, "");
  for (int k = 0; k < nb; k++) /* other values than before */
    for (int i = 0; i < MAXEL; i++)
      tb[k].v[i] = tb[k].dt == ASG_I64 ? tb[k].v[i] + 1 : -tb[k].v[i];
  char bf[PATH_MAX_];
  tpath(bf, "bf16.safetensors");
  TU_CHECK(write_ckpt(bf, tb, nb, ASG_BF16) == ASG_OK, "write bf16: %s", asg_last_error());
  st = asg_hf_load(m.p, bf, &o, NULL);
  TU_CHECK(st == ASG_OK, "load bf16 file: %s", asg_last_error());
  check_vars(m.p, tb, nb, "", "bf16 without prefix");
  char hf[PATH_MAX_];
  tpath(hf, "f16.safetensors");
  TU_CHECK(write_ckpt(hf, ts, nt, ASG_F16) == ASG_OK, "write f16: %s", asg_last_error());
  TU_CHECK(asg_hf_load(m.p, hf, &o, NULL) == ASG_OK, "load f16: %s", asg_last_error());
  check_vars(m.p, ts, nt, "transformer.", "f16");

  /* shards: the tensors in two files, listed by an index written here */
  char sd[PATH_MAX_];
  tpath(sd, "sharded");
  mkdir(sd, 0755);
  int half = nb / 2;
  TU_CHECK(write_ckpt(tu_path(sd, "model-00001-of-00002.safetensors"), tb, half, ASG_F32) ==
                   ASG_OK &&
               write_ckpt(tu_path(sd, "model-00002-of-00002.safetensors"), tb + half, nb - half,
                          ASG_F32) == ASG_OK,
           "write shards");
  char index[4096];
  int len = snprintf(index, sizeof index, "{\"metadata\": {\"total_size\": 1}, \"weight_map\": {");
  for (int k = 0; k < nb; k++)
    len += snprintf(index + len, sizeof index - (size_t)len,
                    "%s\"%s\": \"model-0000%d-of-00002.safetensors\"", k ? ", " : "", tb[k].name,
                    k < half ? 1 : 2);
  len += snprintf(index + len, sizeof index - (size_t)len, "}}");
  tu_write_file(tu_path(sd, "model.safetensors.index.json"), index, (size_t)len);
  TU_CHECK(asg_hf_load(m.p, dir, &o, NULL) == ASG_OK, "back to f32");
  st = asg_hf_load(m.p, sd, &o, &stats);
  TU_CHECK(st == ASG_OK && stats.loaded == 17, "load shards: %s", asg_last_error());
  check_vars(m.p, tb, nb, "", "sharded");
  TU_CHECK(asg_hf_load(m.p, dir, &o, NULL) == ASG_OK, "back to f32");
  st = asg_hf_load(m.p, tu_path(sd, "model.safetensors.index.json"), &o, NULL);
  TU_CHECK(st == ASG_OK, "load through the index path: %s", asg_last_error());
  check_vars(m.p, tb, nb, "", "index path");

  /* the index is the list: a tensor it names that its shard lacks, a
   * missing shard */
  unsigned char before[8192];
  size_t nbef = snapshot(m.p, before, sizeof before);
  char bad_index[4200];
  snprintf(bad_index, sizeof bad_index,
           "%.*s, \"ghost.weight\": \"model-00001-of-00002.safetensors\"}}", len - 2, index);
  tu_write_file(tu_path(sd, "model.safetensors.index.json"), bad_index, strlen(bad_index));
  st = asg_hf_load(m.p, sd, &o, NULL);
  TU_CHECK(st == ASG_ERR_FORMAT && tu_contains(asg_last_error(), "ghost.weight") &&
               tu_contains(asg_last_error(), "model-00001-of-00002.safetensors"),
           "tensor absent from its shard: %d %s", (int)st, asg_last_error());
  snprintf(bad_index, sizeof bad_index,
           "%.*s, \"ghost.weight\": \"model-00003-of-00002.safetensors\"}}", len - 2, index);
  tu_write_file(tu_path(sd, "model.safetensors.index.json"), bad_index, strlen(bad_index));
  st = asg_hf_load(m.p, sd, &o, NULL);
  TU_CHECK(st == ASG_ERR_FORMAT && tu_contains(asg_last_error(), "ghost.weight") &&
               tu_contains(asg_last_error(), "model-00003-of-00002.safetensors"),
           "missing shard: %d %s", (int)st, asg_last_error());
  snprintf(bad_index, sizeof bad_index, "{\"weight_map\": {\"a\": \"../x.safetensors\"}}");
  tu_write_file(tu_path(sd, "model.safetensors.index.json"), bad_index, strlen(bad_index));
  TU_CHECK(asg_hf_load(m.p, sd, &o, NULL) == ASG_ERR_FORMAT, "a shard outside the folder");
  tu_write_file(tu_path(sd, "model.safetensors.index.json"), "{\"metadata\": {}}", 16);
  st = asg_hf_load(m.p, sd, &o, NULL);
  TU_CHECK(st == ASG_ERR_FORMAT && tu_contains(asg_last_error(), "weight_map"), "no weight_map: %s",
           asg_last_error());
  TU_CHECK(unchanged(m.p, before, nbef), "failed index loads changed nothing");
  tu_tmpdir_remove(sd);
  st = asg_hf_load(m.p, sd, &o, NULL);
  TU_CHECK(st == ASG_ERR_IO, "no such folder: %d %s", (int)st, asg_last_error());
  char empty[PATH_MAX_];
  tpath(empty, "empty");
  mkdir(empty, 0755);
  st = asg_hf_load(m.p, empty, &o, NULL);
  TU_CHECK(st == ASG_ERR_IO && tu_contains(asg_last_error(), "model.safetensors.index.json"),
           "empty folder: %s", asg_last_error());
  tu_tmpdir_remove(empty);
  unlink(bf);
  unlink(hf);
  tu_tmpdir_remove(dir);
  model_free(&m);
}

/* A load that must fail with status want, its message holding needles, and
 * leave every variable as it was. */
static void expect_fail(asg_program *p, const char *path, const asg_hf_load_opts *o,
                        asg_status want, const char *const *needles, int n, const char *label) {
  static unsigned char sentinel[MAXEL * 8]; /* unlike any checkpoint value: shows a partial load */
  memset(sentinel, 0x41, sizeof sentinel);
  for (int i = 0; i < asg_program_variable_count(p); i++) {
    const char *name;
    asg_dtype dt;
    asg_shape sh;
    asg_program_variable_info(p, i, &name, &dt, &sh);
    asg_program_set_variable(p, name, sentinel, (size_t)asg_shape_numel(sh) * asg_dtype_size(dt));
  }
  unsigned char before[8192];
  size_t nb = snapshot(p, before, sizeof before);
  asg_status st = asg_hf_load(p, path, o, NULL);
  const char *m = asg_last_error();
  TU_CHECK(st == want, "%s: status %d, want %d: %s", label, (int)st, (int)want, m);
  for (int k = 0; k < n; k++)
    TU_CHECK(tu_contains(m, needles[k]), "%s: message lacks \"%s\": %s", label, needles[k], m);
  TU_CHECK(unchanged(p, before, nb), "%s: a failed load changed variables", label);
}

static void test_load_errors(void) {
  model m = build();
  if (!m.p) return;
  ftensor ts[32];
  int nt = make_ckpt(ts, "transformer.");
  char path[PATH_MAX_];
  tpath(path, "err.safetensors");
  asg_hf_load_opts strict = load_opts(true), loose = load_opts(false);
  asg_hf_load_stats stats;

  /* missing ln_f.weight: strict names it (not the cache, not optimizer state) */
  ftensor *ln = find_ft(ts, nt, "ln_f.weight");
  ftensor keep = *ln;
  *ln = ts[nt - 1];
  write_ckpt(path, ts, nt - 1, ASG_F32);
  const char *miss[] = {"missing (1): 'ln_f.weight'", "err.safetensors"};
  expect_fail(m.p, path, &strict, ASG_ERR_NOT_FOUND, miss, 2, "missing");
  TU_CHECK(!tu_contains(asg_last_error(), "cache") && !tu_contains(asg_last_error(), "adam_m"),
           "excluded and optimizer state are not missing: %s", asg_last_error());
  asg_status st = asg_hf_load(m.p, path, &loose, &stats);
  TU_CHECK(st == ASG_OK && stats.loaded == 16 && stats.missing == 1, "non-strict: %s",
           asg_last_error());
  ts[nt - 1] = *ln;
  *ln = keep;

  /* unexpected: a tensor with no variable, and a split part whose variable is absent */
  int n2 = add_ft(ts, nt, "transformer.h.0.extra", ASG_F32, ASG_SHAPE(2));
  write_ckpt(path, ts, n2, ASG_F32);
  const char *unexp[] = {"unexpected (1): 'transformer.h.0.extra'"};
  expect_fail(m.p, path, &strict, ASG_ERR_NOT_FOUND, unexp, 1, "unexpected");
  st = asg_hf_load(m.p, path, &loose, &stats);
  TU_CHECK(st == ASG_OK && stats.unexpected == 1 && stats.loaded == 17, "non-strict extra: %s",
           asg_last_error());
  n2 = add_ft(ts, nt, "transformer.h.7.attn.c_attn.bias", ASG_F32, ASG_SHAPE(3 * D));
  write_ckpt(path, ts, n2, ASG_F32);
  const char *unexp2[] = {"unexpected (3): 'transformer.h.7.attn.c_attn.bias' part 0 of 3 along "
                          "axis 0 -> 'h.7.attn.q.bias'"};
  expect_fail(m.p, path, &strict, ASG_ERR_NOT_FOUND, unexp2, 1, "unexpected parts");

  /* wrong shapes: after the split and the transpose, both shapes named */
  ftensor bad[32];
  memcpy(bad, ts, sizeof bad);
  ftensor *fc = find_ft(bad, nt, "transformer.h.1.mlp.c_fc.weight");
  fc->sh = ASG_SHAPE(F, D); /* stored [out, in]: wrong for a Conv1D */
  ftensor *qkv = find_ft(bad, nt, "transformer.h.0.attn.c_attn.weight");
  qkv->sh = ASG_SHAPE(D, 3 * D - 1); /* 11 columns: no 3 equal parts */
  write_ckpt(path, bad, nt, ASG_F32);
  const char *shp[] = {("'transformer.h.1.mlp.c_fc.weight' transposed -> 'h.1.mlp.fc.weight' "
                        "(f32 [8,4] in the checkpoint): gives [4,8] but the variable is [8,4]"),
                       "'transformer.h.0.attn.c_attn.weight'",
                       "[4,11] cannot be cut into 3 equal parts along axis 1"};
  expect_fail(m.p, path, &loose, ASG_ERR_SHAPE, shp, 3, "mis-shaped");
  /* a part of the right size, but a wrong width */
  memcpy(bad, ts, sizeof bad);
  qkv = find_ft(bad, nt, "transformer.h.0.attn.c_attn.weight");
  qkv->sh = ASG_SHAPE(D + 1, 3 * D);
  write_ckpt(path, bad, nt, ASG_F32);
  const char *shp2[] = {"'transformer.h.0.attn.c_attn.weight' part 0 of 3 along axis 1, "
                        "transposed, -> 'h.0.attn.q.weight' (f32 [5,12] in the checkpoint): gives "
                        "[4,5] but the variable is [4,4]"};
  expect_fail(m.p, path, &strict, ASG_ERR_SHAPE, shp2, 1, "mis-shaped part");
  /* a float tensor for an integer variable */
  memcpy(bad, ts, sizeof bad);
  find_ft(bad, nt, "counter")->dt = ASG_F32;
  write_ckpt(path, bad, nt, ASG_F32);
  const char *kind[] = {"'counter' is f32 in the checkpoint but i32 in the program"};
  expect_fail(m.p, path, &strict, ASG_ERR_SHAPE, kind, 1, "float for int");
  /* an I64 value that does not fit the I32 variable: found before writing */
  memcpy(bad, ts, sizeof bad);
  find_ft(bad, nt, "counter")->v[2] = 5e9;
  write_ckpt(path, bad, nt, ASG_F32);
  const char *narrow[] = {"counter"};
  expect_fail(m.p, path, &strict, ASG_ERR_DTYPE, narrow, 1, "I64 overflow");

  /* two tensors for one variable (with and without the prefix) */
  n2 = add_ft(ts, nt, "transformer.wte.weight", ASG_F32, ASG_SHAPE(V, D));
  write_ckpt(path, ts, n2, ASG_F32);
  const char *twice[] = {"'wte.weight' is provided by both 'wte.weight' and "
                         "'transformer.wte.weight'"};
  expect_fail(m.p, path, &loose, ASG_ERR_INVALID, twice, 1, "provided twice");

  /* an unsupported dtype: a BOOL tensor (written by hand) */
  const char hdr[] = "{\"ok\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                     "\"mask\":{\"dtype\":\"BOOL\",\"shape\":[4],\"data_offsets\":[4,8]}}";
  unsigned char raw[8 + sizeof hdr + 8] = {0};
  raw[0] = (unsigned char)(sizeof hdr - 1);
  memcpy(raw + 8, hdr, sizeof hdr - 1);
  tu_write_file(path, raw, 8 + sizeof hdr - 1 + 8);
  const char *uns[] = {"mask", "BOOL"};
  expect_fail(m.p, path, &loose, ASG_ERR_UNSUPPORTED, uns, 2, "BOOL");

  /* nothing matches (non-strict): an error, not a silent no-op */
  ftensor other[1];
  add_ft(other, 0, "something.else", ASG_F32, ASG_SHAPE(2));
  write_ckpt(path, other, 1, ASG_F32);
  const char *none[] = {"something", "maps to"};
  expect_fail(m.p, path, &loose, ASG_ERR_NOT_FOUND, none, 2, "nothing matches");

  /* bad rules are refused before the file is read */
  write_ckpt(path, ts, nt, ASG_F32);
  asg_hf_rule r1[1] = {{.from = "h.*.x", .to = "h.x"}};
  asg_hf_load_opts bo = {.rules = r1, .n_rules = 1};
  const char *rule_stars[] = {"rule 0", "'h.*.x'"};
  expect_fail(m.p, path, &bo, ASG_ERR_INVALID, rule_stars, 2, "star counts");
  asg_hf_rule r2[2] = {{.from = "a", .to = "b", .split = 2, .part = 0},
                       {.from = "a", .to = "c", .split = 2, .part = 0}};
  bo = (asg_hf_load_opts){.rules = r2, .n_rules = 2};
  const char *rule_part[] = {"part 0", "'a'"};
  expect_fail(m.p, path, &bo, ASG_ERR_INVALID, rule_part, 2, "part twice");
  r2[1].part = 2;
  const char *rule_range[] = {"rule 1", "part 2"};
  expect_fail(m.p, path, &bo, ASG_ERR_INVALID, rule_range, 2, "part out of range");
  TU_CHECK(asg_hf_load(NULL, path, NULL, NULL) == ASG_ERR_INVALID, "NULL program");
  unlink(path);
  model_free(&m);
}

/* ---- saving ---- */
static bool exists(const char *path) { return access(path, F_OK) == 0; }

static void test_save(void) {
  model m = build();
  model m2 = build();
  if (!m.p || !m2.p) return;
  ftensor ts[32];
  int nt = make_ckpt(ts, "transformer.");
  char src[PATH_MAX_];
  tpath(src, "src.safetensors");
  write_ckpt(src, ts, nt, ASG_F32);
  asg_hf_load_opts lo = load_opts(true);
  TU_CHECK(asg_hf_load(m.p, src, &lo, NULL) == ASG_OK, "load: %s", asg_last_error());

  /* sharded, with the prefix back: every tensor as it was in the source.
   * Bytes in variable order: 96 | 192 | 48 128 | 192 | 48 128 16 | 12 (I32):
   * 6 shards of at most 200 bytes */
  char dir[PATH_MAX_];
  tpath(dir, "saved");
  asg_hf_save_opts so = {.rules = rules,
                         .n_rules = N_RULES,
                         .exclude = excl,
                         .n_exclude = 1,
                         .shard_bytes = 200,
                         .prefix = "transformer."};
  asg_status st = asg_hf_save(m.p, dir, &so);
  TU_CHECK(st == ASG_OK, "save sharded: %s", asg_last_error());
  char idx[PATH_MAX_ + 64];
  snprintf(idx, sizeof idx, "%s/model.safetensors.index.json", dir);
  TU_CHECK(exists(idx) && exists(tu_path(dir, "model-00001-of-00006.safetensors")) &&
               exists(tu_path(dir, "model-00006-of-00006.safetensors")) &&
               !exists(tu_path(dir, "model.safetensors")),
           "shard files");
  int found = 0, same = 0, fmt = 0, total = 0;
  char nm[64];
  for (int s = 1; s <= 6; s++) {
    snprintf(nm, sizeof nm, "model-%05d-of-00006.safetensors", s);
    asg_safetensors *f = asg_safetensors_open(tu_path(dir, nm));
    if (!f) continue;
    const char *mf = asg_safetensors_metadata(f, "format");
    fmt += mf && strcmp(mf, "pt") == 0;
    for (int k = 0; k < asg_safetensors_count(f); k++) {
      asg_safetensors_info in;
      asg_safetensors_info_at(f, k, &in);
      total++;
      ftensor *t = find_ft(ts, nt, in.name);
      if (!t && strncmp(in.name, "transformer.", 12) == 0) /* the prefix goes on every name */
        t = find_ft(ts, nt, in.name + 12);
      if (!t) continue;
      found++;
      double got[MAXEL];
      asg_host_tensor h;
      asg_dtype as = asg_dtype_is_float(in.dtype) ? ASG_F64 : ASG_I64;
      if (asg_safetensors_read_host(f, k, as, &h) == ASG_OK) {
        tu_to_double(as, h.data, got, (long)asg_shape_numel(h.shape));
        same += asg_shape_equal(in.shape, t->sh) &&
                tu_close(in.name, got, t->v, (long)asg_shape_numel(t->sh), 0, 0);
        asg_host_tensor_free(&h);
      }
    }
    asg_safetensors_close(f);
  }
  /* all but the 2 ignored mask buffers; cache and optimizer state not saved */
  TU_CHECK(fmt == 6 && total == nt - 2 && found == nt - 2 && same == nt - 2,
           "saved shards: format %d, %d tensors, %d known, %d equal (want %d)", fmt, total, found,
           same, nt - 2);
  FILE *fi = fopen(idx, "r");
  char text[4096] = "";
  size_t tl = fi ? fread(text, 1, sizeof text - 1, fi) : 0;
  text[tl] = '\0';
  if (fi) fclose(fi);
  TU_CHECK(tu_contains(text, "\"weight_map\": {") && tu_contains(text, "\"total_size\": ") &&
               tu_contains(text, "\"transformer.h.1.attn.c_attn.weight\": "
                                 "\"model-0000"),
           "index text: %s", text);

  /* reload into a second program: the same values */
  st = asg_hf_load(m2.p, dir, &lo, NULL);
  TU_CHECK(st == ASG_OK, "reload sharded: %s", asg_last_error());
  check_vars(m2.p, ts, nt, "transformer.", "sharded round trip");

  /* one file into the same folder: the shards and the index go */
  so.shard_bytes = 0;
  so.convert = true;
  so.dtype = ASG_BF16;
  st = asg_hf_save(m.p, dir, &so);
  TU_CHECK(st == ASG_OK && exists(tu_path(dir, "model.safetensors")) && !exists(idx) &&
               !exists(tu_path(dir, "model-00001-of-00006.safetensors")),
           "save single bf16: %s", asg_last_error());
  asg_safetensors *f = asg_safetensors_open(tu_path(dir, "model.safetensors"));
  int i = f ? asg_safetensors_find(f, "transformer.h.0.attn.c_attn.weight") : -1;
  asg_safetensors_info in = {0};
  if (i >= 0) asg_safetensors_info_at(f, i, &in);
  int ic = f ? asg_safetensors_find(f, "transformer.counter") : -1;
  asg_safetensors_info inc = {0};
  if (ic >= 0) asg_safetensors_info_at(f, ic, &inc);
  TU_CHECK(i >= 0 && in.dtype == ASG_BF16 && asg_shape_equal(in.shape, ASG_SHAPE(D, 3 * D)) &&
               inc.dtype == ASG_I32,
           "bf16 file: fused [4,12] bf16, integers keep their dtype");
  asg_safetensors_close(f);
  /* zero m2, then reload from the bf16 file (values exact in bf16) */
  asg_hf_load_stats stats;
  char z[PATH_MAX_];
  tpath(z, "zeros.safetensors");
  ftensor zs[32];
  memcpy(zs, ts, sizeof zs);
  for (int k = 0; k < nt; k++)
    memset(zs[k].v, 0, sizeof zs[k].v);
  write_ckpt(z, zs, nt, ASG_F32);
  TU_CHECK(asg_hf_load(m2.p, z, &lo, NULL) == ASG_OK, "zero");
  st = asg_hf_load(m2.p, dir, &lo, &stats);
  TU_CHECK(st == ASG_OK && stats.loaded == 17, "reload bf16: %s", asg_last_error());
  check_vars(m2.p, ts, nt, "transformer.", "bf16 round trip");

  /* without rules: every model variable under its own name */
  char plain[PATH_MAX_];
  tpath(plain, "plain");
  TU_CHECK(asg_hf_save(m.p, plain, NULL) == ASG_OK, "save plain: %s", asg_last_error());
  f = asg_safetensors_open(tu_path(plain, "model.safetensors"));
  TU_CHECK(f && asg_safetensors_count(f) == 18 &&
               asg_safetensors_find(f, "h.0.attn.q.weight") >= 0 &&
               asg_safetensors_find(f, "cache.0.k") >= 0 &&
               asg_safetensors_find(f, "ln_f.weight.adam_m") < 0,
           "plain save: own names, no optimizer state");
  asg_safetensors_close(f);

  /* a split is saved whole: an excluded part is an error naming it */
  const char *const ex2[2] = {"cache.*", "h.1.attn.k.*"};
  so = (asg_hf_save_opts){.rules = rules, .n_rules = N_RULES, .exclude = ex2, .n_exclude = 2};
  char partial[PATH_MAX_];
  tpath(partial, "partial");
  st = asg_hf_save(m.p, partial, &so);
  TU_CHECK(st == ASG_ERR_NOT_FOUND && tu_contains(asg_last_error(), "'h.1.attn.k.") &&
               tu_contains(asg_last_error(), "h.1.attn.c_attn."),
           "missing part: %d %s", (int)st, asg_last_error());
  /* two variables for one checkpoint name */
  asg_hf_rule clash[1] = {{.from = "ln_f.weight", .to = "wte.weight"}};
  so = (asg_hf_save_opts){.rules = clash, .n_rules = 1, .exclude = excl, .n_exclude = 1};
  st = asg_hf_save(m.p, partial, &so);
  TU_CHECK(st == ASG_ERR_INVALID && tu_contains(asg_last_error(), "'ln_f.weight'") &&
               tu_contains(asg_last_error(), "'wte.weight'"),
           "clash: %d %s", (int)st, asg_last_error());
  so = (asg_hf_save_opts){.convert = true, .dtype = ASG_I32};
  TU_CHECK(asg_hf_save(m.p, partial, &so) == ASG_ERR_INVALID, "an integer save dtype");
  TU_CHECK(asg_hf_save(m.p, tu_path(src, "sub"), NULL) == ASG_ERR_IO,
           "a folder under a file cannot be made");
  tu_tmpdir_remove(partial);
  tu_tmpdir_remove(plain);
  tu_tmpdir_remove(dir);
  unlink(src);
  unlink(z);
  model_free(&m);
  model_free(&m2);
}

int main(void) {
  const char *t = tu_tmpdir_create("asg_test_hf");
  if (t) snprintf(tmpdir, sizeof tmpdir, "%s", t);
  if (!t) {
    printf("cannot create a temporary directory\n");
    return 1;
  }
  test_config();
  test_load();
  test_load_errors();
  test_save();
  tu_tmpdir_remove(tmpdir);
  return tu_finish();
}
