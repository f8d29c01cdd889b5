/* safetensors reading/writing, half-precision conversion, program
 * variables by name, PyTorch interop (fixtures from
 * tests/fixtures/make_torch_fixture.py) and malformed files. */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "asg/asg.h"
#include "testutil.h"

static const char *tmpdir;
static char fixdir[1024];

static const char *tpath(const char *name) { return tu_path(tmpdir, name); }
static const char *fpath(const char *name) { return tu_path(fixdir, name); }

/* A file made of an 8-byte LE length, the header text, then data. */
static void write_st(const char *path, uint64_t hlen, const char *header, const void *data,
                     size_t ndata) {
  size_t h = strlen(header);
  unsigned char *buf = malloc(8 + h + ndata + 1);
  for (int k = 0; k < 8; k++)
    buf[k] = (unsigned char)(hlen >> (8 * k));
  memcpy(buf + 8, header, h);
  if (ndata) memcpy(buf + 8 + h, data, ndata);
  tu_write_file(path, buf, 8 + h + ndata);
  free(buf);
}

static uint16_t f16(float x) { return asg_f32_to_f16(x); }
static uint16_t bf16(float x) { return asg_f32_to_bf16(x); }
static float fbits(uint32_t u) {
  float f;
  memcpy(&f, &u, 4);
  return f;
}
static uint32_t bitsf(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  return u;
}

static void test_half(void) {
  /* f32 -> f16, round to nearest even, against hand-derived bit patterns */
  struct {
    float x;
    uint16_t h;
  } c16[] = {
      {1.0f, 0x3c00},
      {-2.0f, 0xc000},
      {0.0f, 0x0000},
      {-0.0f, 0x8000},
      {65504.0f, 0x7bff},                   /* largest finite */
      {65519.0f, 0x7bff},                   /* below the tie */
      {65520.0f, 0x7c00},                   /* tie 65504/65536: even -> inf */
      {1e6f, 0x7c00},                       /* overflow */
      {0.1f, 0x2e66},                       /* 0.0999755859375 */
      {1.0f + 0x1p-11f, 0x3c00},            /* tie, even stays */
      {1.0f + 3 * 0x1p-11f, 0x3c02},        /* tie, odd rounds up */
      {1.0f + 0x1p-11f + 0x1p-20f, 0x3c01}, /* just above the tie */
      {0x1p-14f, 0x0400},                   /* smallest normal */
      {0x1p-24f, 0x0001},                   /* smallest subnormal */
      {0x1p-25f, 0x0000},                   /* tie with zero: even */
      {1.5f * 0x1p-25f, 0x0001},            /* above that tie */
      {3 * 0x1p-25f, 0x0002},               /* tie 1/2 subnormal: even */
      {1023.5f * 0x1p-24f, 0x0400},         /* tie at the subnormal/normal border */
      {-0x1p-30f, 0x8000},                  /* underflow keeps the sign */
      {1e-45f, 0x0000},                     /* f32 subnormal */
  };
  for (size_t k = 0; k < sizeof c16 / sizeof c16[0]; k++)
    TU_CHECK(f16(c16[k].x) == c16[k].h, "f32->f16(%a) = 0x%04x, want 0x%04x", (double)c16[k].x,
             f16(c16[k].x), c16[k].h);
  TU_CHECK(f16(INFINITY) == 0x7c00 && f16(-INFINITY) == 0xfc00, "f16 inf");
  uint16_t hn = f16(NAN);
  TU_CHECK((hn & 0x7c00) == 0x7c00 && (hn & 0x3ff) != 0, "f16 NaN stays NaN: 0x%04x", hn);
  /* f16 -> f32 is exact */
  TU_CHECK(asg_f16_to_f32(0x3555) == 0.333251953125f, "f16 0x3555");
  TU_CHECK(asg_f16_to_f32(0x0001) == 0x1p-24f, "f16 smallest subnormal");
  TU_CHECK(asg_f16_to_f32(0x03ff) == 1023 * 0x1p-24f, "f16 largest subnormal");
  TU_CHECK(asg_f16_to_f32(0x7bff) == 65504.0f, "f16 max");
  TU_CHECK(asg_f16_to_f32(0xfc00) == -INFINITY, "f16 -inf");
  TU_CHECK(bitsf(asg_f16_to_f32(0x8000)) == 0x80000000u, "f16 -0");
  TU_CHECK(isnan(asg_f16_to_f32(0x7e00)), "f16 NaN");
  int round_trip_bad = 0; /* every finite f16 survives f16 -> f32 -> f16 */
  for (uint32_t h = 0; h < 0x10000; h++)
    if ((h & 0x7c00) != 0x7c00 && f16(asg_f16_to_f32((uint16_t)h)) != h) round_trip_bad++;
  TU_CHECK(round_trip_bad == 0, "%d f16 values do not round-trip", round_trip_bad);

  struct {
    uint32_t x;
    uint16_t h;
  } cb[] = {
      {0x3f800000, 0x3f80}, /* 1 */
      {0x3f808000, 0x3f80}, /* tie, even stays */
      {0x3f818000, 0x3f82}, /* tie, odd rounds up */
      {0x3f808001, 0x3f81}, /* above the tie */
      {0x40490fdb, 0x4049}, /* pi */
      {0xc0490fdb, 0xc049}, /* -pi */
      {0x7f7fffff, 0x7f80}, /* FLT_MAX rounds to inf */
      {0x00000001, 0x0000}, /* subnormal */
      {0x80000000, 0x8000}, /* -0 */
  };
  for (size_t k = 0; k < sizeof cb / sizeof cb[0]; k++)
    TU_CHECK(bf16(fbits(cb[k].x)) == cb[k].h, "f32->bf16(0x%08x) = 0x%04x, want 0x%04x",
             (unsigned)cb[k].x, bf16(fbits(cb[k].x)), cb[k].h);
  uint16_t bn = bf16(NAN);
  TU_CHECK((bn & 0x7f80) == 0x7f80 && (bn & 0x7f) != 0, "bf16 NaN stays NaN");
  TU_CHECK(bitsf(asg_bf16_to_f32(0x4049)) == 0x40490000u, "bf16 -> f32 exact");

  /* f64 -> f16 is rounded once: 1 + 2^-11 + 2^-40 is above the tie (0x3c01)
   * although rounding through f32 first would make it a tie (0x3c00) */
  double d[3] = {1.0 + 0x1p-11 + 0x1p-40, -65519.99, 0x1p-26};
  uint16_t h[3], b[3];
  TU_CHECK(asg_convert(d, ASG_F64, h, ASG_F16, 3) == ASG_OK, "convert f64->f16");
  TU_CHECK(h[0] == 0x3c01 && h[1] == 0xfbff && h[2] == 0x0000, "f64->f16 got %04x %04x %04x", h[0],
           h[1], h[2]);
  double e[1] = {1.0 + 0x1p-8 + 0x1p-40};
  TU_CHECK(asg_convert(e, ASG_F64, b, ASG_BF16, 1) == ASG_OK && b[0] == 0x3f81,
           "f64->bf16 rounded once: 0x%04x", b[0]);
  int64_t big[2] = {5, (int64_t)1 << 40};
  int32_t small[2];
  TU_CHECK(asg_convert(big, ASG_I64, small, ASG_I32, 1) == ASG_OK && small[0] == 5, "i64->i32");
  TU_CHECK(asg_convert(big, ASG_I64, small, ASG_I32, 2) == ASG_ERR_DTYPE, "i64->i32 overflow");
  TU_CHECK(asg_convert(big, ASG_I64, d, ASG_F64, 1) == ASG_ERR_DTYPE, "int->float refused");
}

static void test_round_trip(void) {
  float a[6] = {1.5f, -2.25f, 3.0f, 0.1f, -0.0f, 65504.0f};
  double b[4] = {1e300, -1e-300, 0.1, 3.141592653589793};
  uint16_t hf[3] = {0x3c00, 0x0001, 0xfbff}, hb[2] = {0x4049, 0xbf80};
  int32_t ci[5] = {INT32_MIN, -1, 0, 7, INT32_MAX};
  int64_t cl[2] = {INT64_MIN, INT64_MAX};
  float s = 42.0f;
  asg_host_tensor t[8] = {
      {ASG_F32, ASG_SHAPE(2, 3), a},     {ASG_F64, ASG_SHAPE(2, 2), b},
      {ASG_F16, ASG_SHAPE(3), hf},       {ASG_BF16, ASG_SHAPE(1, 2), hb},
      {ASG_I32, ASG_SHAPE(5, 1, 1), ci}, {ASG_I64, ASG_SHAPE(2), cl},
      {ASG_F32, ASG_SCALAR, &s},         {ASG_F32, ASG_SHAPE(0, 3), NULL},
  };
  const char *names[8] = {"a.f32", "b.f64", "c.f16",  "d.bf16",
                          "e.i32", "f.i64", "scalar", "empty \"quoted\" \xc3\xa9"};
  const char *meta[] = {"k1", "v1", "escapes", "tab\t quote\" backslash\\ newline\n \xe2\x82\xac"};
  const char *p = tpath("rt.safetensors");
  TU_CHECK(asg_safetensors_write(p, 8, names, t, 2, meta) == ASG_OK, "write: %s", asg_last_error());
  asg_safetensors *f = asg_safetensors_open(p);
  TU_CHECK(f != NULL, "open: %s", asg_last_error());
  if (!f) return;
  TU_CHECK(asg_safetensors_count(f) == 8, "count %d", asg_safetensors_count(f));
  for (int i = 0; i < 8; i++) {
    int j = asg_safetensors_find(f, names[i]);
    asg_safetensors_info in;
    TU_CHECK(j >= 0 && asg_safetensors_info_at(f, j, &in) == ASG_OK, "find %s", names[i]);
    if (j < 0) continue;
    TU_CHECK(strcmp(in.name, names[i]) == 0 && in.dtype == t[i].dtype &&
                 asg_shape_equal(in.shape, t[i].shape),
             "info of %s", names[i]);
    size_t nb = (size_t)asg_shape_numel(t[i].shape) * asg_dtype_size(t[i].dtype), got = 99;
    const void *ptr = asg_safetensors_data(f, j, &got);
    TU_CHECK(ptr && got == nb && in.nbytes == nb, "data size of %s", names[i]);
    TU_CHECK(nb == 0 || memcmp(ptr, t[i].data, nb) == 0, "lazy bytes of %s", names[i]);
    TU_CHECK(in.offset % asg_dtype_size(in.dtype) == 0, "%s aligned in the file", names[i]);
    unsigned char buf[64];
    TU_CHECK(asg_safetensors_read(f, j, t[i].dtype, buf, nb) == ASG_OK &&
                 (nb == 0 || memcmp(buf, t[i].data, nb) == 0),
             "read of %s", names[i]);
  }
  TU_CHECK(asg_safetensors_find(f, "nope") == -1, "find absent");
  TU_CHECK(asg_safetensors_metadata_count(f) == 2, "metadata count");
  const char *v = asg_safetensors_metadata(f, "escapes");
  TU_CHECK(v && strcmp(v, meta[3]) == 0, "metadata with escapes: %s", v ? v : "(null)");
  TU_CHECK(asg_safetensors_metadata(f, "k1") && !strcmp(asg_safetensors_metadata(f, "k1"), "v1"),
           "metadata k1");
  TU_CHECK(asg_safetensors_metadata(f, "k2") == NULL, "metadata absent");
  /* conversions on read */
  float h32[3], b32[2];
  double a64[6];
  TU_CHECK(asg_safetensors_read(f, asg_safetensors_find(f, "c.f16"), ASG_F32, h32, sizeof h32) ==
                   0 &&
               h32[0] == 1.0f && h32[1] == 0x1p-24f && h32[2] == -65504.0f,
           "f16 file -> f32");
  TU_CHECK(asg_safetensors_read(f, asg_safetensors_find(f, "d.bf16"), ASG_F32, b32, sizeof b32) ==
                   0 &&
               bitsf(b32[0]) == 0x40490000u && b32[1] == -1.0f,
           "bf16 file -> f32");
  TU_CHECK(asg_safetensors_read(f, asg_safetensors_find(f, "a.f32"), ASG_F64, a64, sizeof a64) ==
                   0 &&
               a64[3] == (double)0.1f,
           "f32 file -> f64");
  TU_CHECK(asg_safetensors_read(f, asg_safetensors_find(f, "a.f32"), ASG_F32, a64, 4) ==
               ASG_ERR_SHAPE,
           "read with a wrong byte count");
  TU_CHECK(asg_safetensors_read(f, asg_safetensors_find(f, "e.i32"), ASG_F32, a64, 20) ==
               ASG_ERR_DTYPE,
           "int -> float refused");
  asg_host_tensor ht;
  TU_CHECK(asg_safetensors_read_host(f, asg_safetensors_find(f, "f.i64"), ASG_I64, &ht) == 0 &&
               ht.dtype == ASG_I64 && ((int64_t *)ht.data)[0] == INT64_MIN,
           "read_host");
  asg_host_tensor_free(&ht);
  asg_safetensors_close(f);

  /* writing with conversion: f32 data stored as F16 / BF16 */
  float w[4] = {1.0f + 3 * 0x1p-11f, 65520.0f, fbits(0x3f818000), fbits(0x40490fdb)};
  asg_host_tensor tw[2] = {{ASG_F32, ASG_SHAPE(2), w}, {ASG_F32, ASG_SHAPE(2), w + 2}};
  const char *nw[2] = {"h", "b"};
  asg_dtype fd[2] = {ASG_F16, ASG_BF16};
  p = tpath("conv.safetensors");
  TU_CHECK(asg_safetensors_write_as(p, 2, nw, tw, fd, 0, NULL) == ASG_OK, "write_as: %s",
           asg_last_error());
  f = asg_safetensors_open(p);
  TU_CHECK(f != NULL, "open conv: %s", asg_last_error());
  if (f) {
    asg_safetensors_info ih, ib;
    asg_safetensors_info_at(f, asg_safetensors_find(f, "h"), &ih);
    asg_safetensors_info_at(f, asg_safetensors_find(f, "b"), &ib);
    const uint16_t *ph = asg_safetensors_data(f, asg_safetensors_find(f, "h"), NULL);
    const uint16_t *pb = asg_safetensors_data(f, asg_safetensors_find(f, "b"), NULL);
    uint16_t vh[2], vb[2];
    memcpy(vh, ph, 4);
    memcpy(vb, pb, 4);
    TU_CHECK(ih.dtype == ASG_F16 && ib.dtype == ASG_BF16, "stored dtypes");
    TU_CHECK(vh[0] == 0x3c02 && vh[1] == 0x7c00, "stored f16 bits %04x %04x", vh[0], vh[1]);
    TU_CHECK(vb[0] == 0x3f82 && vb[1] == 0x4049, "stored bf16 bits %04x %04x", vb[0], vb[1]);
    asg_safetensors_close(f);
  }

  /* an empty file set is valid; bad writes are refused and leave no file */
  TU_CHECK(asg_safetensors_write(tpath("empty.safetensors"), 0, NULL, NULL, 0, NULL) == ASG_OK,
           "write empty");
  f = asg_safetensors_open(tpath("empty.safetensors"));
  TU_CHECK(f && asg_safetensors_count(f) == 0, "open empty");
  asg_safetensors_close(f);
  const char *dup[2] = {"x", "x"};
  asg_host_tensor td[2] = {{ASG_F32, ASG_SHAPE(1), a}, {ASG_F32, ASG_SHAPE(1), a}};
  TU_CHECK(asg_safetensors_write(tpath("dup.safetensors"), 2, dup, td, 0, NULL) ==
                   ASG_ERR_INVALID &&
               strstr(asg_last_error(), "duplicate"),
           "duplicate names refused: %s", asg_last_error());
  TU_CHECK(access(tpath("dup.safetensors"), F_OK) != 0, "no file after a refused write");
  const char *bad_utf8[1] = {"bad\xff"};
  TU_CHECK(asg_safetensors_write(tpath("u.safetensors"), 1, bad_utf8, td, 0, NULL) ==
               ASG_ERR_INVALID,
           "invalid UTF-8 name refused");
  TU_CHECK(asg_safetensors_write("/nonexistent-dir/x.safetensors", 1, dup, td, 0, NULL) ==
               ASG_ERR_IO,
           "unwritable directory: %s", asg_last_error());
  const char *nd[1] = {"i"};
  asg_dtype to_f[1] = {ASG_F32};
  asg_host_tensor ti[1] = {{ASG_I32, ASG_SHAPE(5), ci}};
  TU_CHECK(asg_safetensors_write_as(tpath("i.safetensors"), 1, nd, ti, to_f, 0, NULL) ==
               ASG_ERR_DTYPE,
           "int stored as float refused");
  /* overwriting is atomic: the new content replaces the old; no temp files remain */
  float one = 1.0f, two = 2.0f;
  asg_host_tensor t1[1] = {{ASG_F32, ASG_SCALAR, &one}}, t2[1] = {{ASG_F32, ASG_SCALAR, &two}};
  p = tpath("over.safetensors");
  asg_safetensors_write(p, 1, nd, t1, 0, NULL);
  asg_safetensors *old = asg_safetensors_open(p); /* a reader of the old file keeps it */
  TU_CHECK(asg_safetensors_write(p, 1, nd, t2, 0, NULL) == ASG_OK, "overwrite");
  f = asg_safetensors_open(p);
  float got1 = 0, got2 = 0;
  if (old) asg_safetensors_read(old, 0, ASG_F32, &got1, 4);
  if (f) asg_safetensors_read(f, 0, ASG_F32, &got2, 4);
  TU_CHECK(got1 == 1.0f && got2 == 2.0f, "old reader sees %g, new file has %g", got1, got2);
  asg_safetensors_close(old);
  asg_safetensors_close(f);
  DIR *dir = opendir(tmpdir);
  int temps = 0;
  for (struct dirent *de; dir && (de = readdir(dir));)
    temps += strstr(de->d_name, ".tmp.") != NULL;
  if (dir) closedir(dir);
  TU_CHECK(temps == 0, "%d temporary files left behind", temps);
}

/* ---- PyTorch interop ---- */
static asg_tensor *torch_mlp(asg_graph *g, asg_tensor *x) {
  asg_tensor *w1 = asg_variable(g, "fc1.weight", ASG_F32, ASG_SHAPE(8, 6), asg_init_zeros());
  asg_tensor *b1 = asg_variable(g, "fc1.bias", ASG_F32, ASG_SHAPE(8), asg_init_zeros());
  asg_tensor *w2 = asg_variable(g, "fc2.weight", ASG_F32, ASG_SHAPE(3, 8), asg_init_zeros());
  asg_tensor *b2 = asg_variable(g, "fc2.bias", ASG_F32, ASG_SHAPE(3), asg_init_zeros());
  asg_tensor *h = asg_tanh(asg_add(asg_matmul_t(x, w1, false, true), b1)); /* x W^T + b */
  return asg_add(asg_matmul_t(h, w2, false, true), b2);
}

static void test_torch(void) {
  asg_safetensors *io = asg_safetensors_open(fpath("torch_mlp_io.safetensors"));
  TU_CHECK(io != NULL, "open torch io fixture: %s", asg_last_error());
  if (!io) return;
  float x[24], y[12], yg[12];
  double y64[12];
  asg_safetensors_read(io, asg_safetensors_find(io, "x"), ASG_F32, x, sizeof x);
  asg_safetensors_read(io, asg_safetensors_find(io, "y"), ASG_F32, y, sizeof y);
  asg_safetensors_read(io, asg_safetensors_find(io, "y64"), ASG_F64, y64, sizeof y64);

  asg_graph *g = asg_graph_new();
  asg_tensor *xi = asg_input(g, "x", ASG_F32, ASG_SHAPE(4, 6));
  asg_tensor *out = torch_mlp(g, xi);
  asg_program *p = asg_compile(g, 1, &out, NULL);
  TU_CHECK(p != NULL, "compile: %s", asg_last_error());
  if (p) {
    asg_status st = asg_program_load_variables(p, fpath("torch_mlp.safetensors"), true);
    TU_CHECK(st == ASG_OK, "load torch weights: %s", asg_last_error());
    asg_program_feed(p, "x", x, sizeof x);
    asg_program_run(p);
    asg_program_fetch(p, out, yg, sizeof yg);
    double got[12], want[12];
    for (int i = 0; i < 12; i++)
      got[i] = yg[i], want[i] = y[i];
    TU_CHECK(tu_close("torch mlp vs PyTorch f32", got, want, 12, 1e-5, 0), "matches PyTorch");
    TU_CHECK(tu_close("torch mlp vs PyTorch f64", got, y64, 12, 1e-5, 0), "matches PyTorch f64");

    /* F16/BF16 weights written by PyTorch load into F32 variables exactly as
     * PyTorch widens them */
    st = asg_program_load_variables(p, fpath("torch_mlp_half.safetensors"), true);
    TU_CHECK(st == ASG_OK, "load half weights: %s", asg_last_error());
    const char *vn[4] = {"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"};
    int64_t sz[4] = {48, 8, 24, 3};
    asg_safetensors *half = asg_safetensors_open(fpath("torch_mlp_half.safetensors"));
    asg_safetensors *full = asg_safetensors_open(fpath("torch_mlp.safetensors"));
    for (int k = 0; k < 4 && half && full; k++) {
      float v[48], wdn[48], orig[48];
      uint16_t hb[48];
      char wn[64];
      snprintf(wn, sizeof wn, "widened.%s", vn[k]);
      asg_program_get_variable(p, vn[k], v, (size_t)sz[k] * 4);
      asg_safetensors_read(io, asg_safetensors_find(io, wn), ASG_F32, wdn, (size_t)sz[k] * 4);
      TU_CHECK(memcmp(v, wdn, (size_t)sz[k] * 4) == 0, "%s widened like PyTorch", vn[k]);
      /* and PyTorch's own f32 -> f16/bf16 rounding agrees with ours bit for bit */
      asg_safetensors_read(full, asg_safetensors_find(full, vn[k]), ASG_F32, orig,
                           (size_t)sz[k] * 4);
      memcpy(hb, asg_safetensors_data(half, asg_safetensors_find(half, vn[k]), NULL),
             (size_t)sz[k] * 2);
      int bad = 0;
      for (int i = 0; i < sz[k]; i++)
        bad += hb[i] != (k < 2 ? asg_f32_to_f16(orig[i]) : asg_f32_to_bf16(orig[i]));
      TU_CHECK(bad == 0, "%s: %d elements rounded differently from PyTorch", vn[k], bad);
    }
    asg_safetensors_close(half);
    asg_safetensors_close(full);
    TU_CHECK(asg_safetensors_metadata(io, "torch_version") != NULL, "fixture metadata");

    /* what ASG writes, ASG (and PyTorch: see docs/io.md) reads back */
    TU_CHECK(asg_program_save_variables(p, tpath("mlp_out.safetensors"), ASG_VARS_ALL) == ASG_OK,
             "save: %s", asg_last_error());
    asg_safetensors *re = asg_safetensors_open(tpath("mlp_out.safetensors"));
    TU_CHECK(re && asg_safetensors_count(re) == 4, "saved 4 variables");
    asg_safetensors_close(re);
  }
  asg_program_free(p);
  asg_graph_free(g);
  asg_safetensors_close(io);
}

/* ---- mismatch reports ---- */
static void test_mismatch(void) {
  asg_graph *g = asg_graph_new();
  asg_tensor *a = asg_variable(g, "a", ASG_F32, ASG_SHAPE(2, 3), asg_init_constant(7));
  asg_tensor *b = asg_variable(g, "b", ASG_F32, ASG_SHAPE(4), asg_init_zeros());
  asg_tensor *c = asg_variable(g, "c", ASG_F32, ASG_SHAPE(5), asg_init_zeros());
  asg_tensor *n = asg_variable(g, "n", ASG_I32, ASG_SHAPE(2), asg_init_zeros());
  asg_tensor *y = asg_add(asg_add(asg_sum(a, ASG_ALL_AXES, false), asg_sum(b, ASG_ALL_AXES, false)),
                          asg_sum(c, ASG_ALL_AXES, false));
  asg_tensor *outs[2] = {y, n};
  asg_program *p = asg_compile(g, 2, outs, NULL);
  TU_CHECK(p != NULL, "compile: %s", asg_last_error());
  if (!p) {
    asg_graph_free(g);
    return;
  }
  float a6[6] = {1, 2, 3, 4, 5, 6}, b4[4] = {1, 2, 3, 4}, d1[1] = {9};
  double b4d[4] = {0.5, 1.5, 2.5, 3.5};
  float n2[2] = {1, 2};
  /* file: a is [3,2] (mis-shaped), b fine, d unexpected, c missing, n float */
  asg_host_tensor t[4] = {{ASG_F32, ASG_SHAPE(3, 2), a6},
                          {ASG_F32, ASG_SHAPE(4), b4},
                          {ASG_F32, ASG_SHAPE(1), d1},
                          {ASG_F32, ASG_SHAPE(2), n2}};
  const char *names[4] = {"a", "b", "d", "n"};
  const char *path = tpath("mis.safetensors");
  asg_safetensors_write(path, 4, names, t, 0, NULL);
  asg_status st = asg_program_load_variables(p, path, true);
  const char *m = asg_last_error();
  TU_CHECK(st == ASG_ERR_SHAPE, "strict mismatch status %d", (int)st);
  TU_CHECK(strstr(m, "missing (1): 'c';") != NULL, "names missing c: %s", m);
  TU_CHECK(strstr(m, "unexpected (1): 'd';") != NULL, "names unexpected d: %s", m);
  TU_CHECK(strstr(m, "'a' is f32 [3,2] in the file but f32 [2,3] in the program") != NULL,
           "names mis-shaped a: %s", m);
  TU_CHECK(strstr(m, "'n' is f32 in the file but i32 in the program") != NULL,
           "names the float/int mismatch n: %s", m);
  TU_CHECK(strstr(m, "mis.safetensors") != NULL, "names the file: %s", m);
  float av[6], bv[4];
  asg_program_get_variable(p, "a", av, sizeof av);
  asg_program_get_variable(p, "b", bv, sizeof bv);
  TU_CHECK(av[0] == 7 && bv[0] == 0, "a failed load changes nothing");
  st = asg_program_load_variables(p, path, false);
  TU_CHECK(st == ASG_ERR_SHAPE && strstr(asg_last_error(), "'a'") &&
               !strstr(asg_last_error(), "'c'"),
           "non-strict: only shapes: %s", asg_last_error());

  /* only b (as F64) and d: non-strict loads b converting, strict reports */
  asg_host_tensor t2[2] = {{ASG_F64, ASG_SHAPE(4), b4d}, {ASG_F32, ASG_SHAPE(1), d1}};
  const char *names2[2] = {"b", "d"};
  path = tpath("part.safetensors");
  asg_safetensors_write(path, 2, names2, t2, 0, NULL);
  st = asg_program_load_variables(p, path, true);
  m = asg_last_error();
  TU_CHECK(st == ASG_ERR_NOT_FOUND && strstr(m, "missing (3): 'a', 'c', 'n';") &&
               strstr(m, "unexpected (1): 'd'") && !strstr(m, "mis-shaped"),
           "strict partial: %s", m);
  st = asg_program_load_variables(p, path, false);
  asg_program_get_variable(p, "b", bv, sizeof bv);
  TU_CHECK(st == ASG_OK && bv[0] == 0.5f && bv[3] == 3.5f, "non-strict partial load (f64->f32): %s",
           asg_last_error());
  TU_CHECK(asg_program_load_variables(p, tpath("does-not-exist.safetensors"), false) == ASG_ERR_IO,
           "missing file is an I/O error");
  asg_program_free(p);
  asg_graph_free(g);
}

/* ---- malformed files ---- */
static asg_program *g_prog; /* a program to load into: gives the status code */

static void expect_bad(const char *label, const char *path, const char *needle) {
  asg_safetensors *f = asg_safetensors_open(path);
  TU_CHECK(f == NULL, "%s: malformed file opened", label);
  asg_safetensors_close(f);
  const char *m = asg_last_error();
  TU_CHECK(strstr(m, path) != NULL && (!needle || strstr(m, needle)), "%s: message '%s' lacks '%s'",
           label, m, needle ? needle : path);
  if (g_prog) {
    asg_status st = asg_program_load_variables(g_prog, path, false);
    TU_CHECK(st == ASG_ERR_FORMAT, "%s: status %d, want ASG_ERR_FORMAT", label, (int)st);
  }
}

static void bad_header(const char *label, const char *header, size_t ndata, const char *needle) {
  unsigned char data[64] = {0};
  const char *p = tpath("bad.safetensors");
  write_st(p, strlen(header), header, data, ndata);
  expect_bad(label, p, needle);
}

static void test_malformed(void) {
  asg_graph *g = asg_graph_new();
  asg_tensor *v = asg_variable(g, "t", ASG_F32, ASG_SHAPE(1), asg_init_zeros());
  asg_tensor *y = asg_mul_scalar(v, 2);
  g_prog = asg_compile(g, 1, &y, NULL);
  const char *p = tpath("bad.safetensors");

  tu_write_file(p, "", 0);
  expect_bad("empty file", p, "shorter than the 8-byte");
  tu_write_file(p, "\x10\0\0", 3);
  expect_bad("3-byte file", p, "shorter than the 8-byte");
  write_st(p, 0xffffffffffffffffull, "{}", NULL, 0);
  expect_bad("huge header length", p, "limit");
  write_st(p, 1ull << 62, "{}", NULL, 0);
  expect_bad("header length 2^62", p, "limit");
  write_st(p, 100, "{}", NULL, 0);
  expect_bad("header past the end", p, "past the end of the file");
  write_st(p, 0, "", NULL, 0);
  expect_bad("header length 0", p, "too small");
  write_st(p, 10, "{\"a\":{\"dt", NULL, 0); /* truncated header */
  expect_bad("truncated header", p, "past the end");
  bad_header("truncated JSON", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}", 4,
             "not valid JSON");
  bad_header("bad JSON token", "{\"a\":{\"dtype\":F32}}", 0, "not valid JSON");
  bad_header("trailing garbage", "{} x", 0, "trailing");
  bad_header("trailing comma", "{\"__metadata__\":{\"a\":\"b\",}}", 0, "not valid JSON");
  bad_header("top-level array", "[]", 0, "not a JSON object");
  bad_header("offsets past end",
             "{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 8,
             "run past the data section");
  bad_header("wrong size", "{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}", 8,
             "needs 8 bytes but data_offsets [0, 4] span 4");
  bad_header("negative dim", "{\"t\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4,
             "(negative)");
  bad_header("float dim", "{\"t\":{\"dtype\":\"F32\",\"shape\":[1.0],\"data_offsets\":[0,4]}}", 4,
             "shape[0]");
  bad_header(
      "numel overflow",
      "{\"t\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,16],\"data_offsets\":[0,4]}}", 4,
      "more bytes than");
  bad_header("dim past int64",
             "{\"t\":{\"dtype\":\"F32\",\"shape\":[99999999999999999999],\"data_offsets\":[0,4]}}",
             4, "shape[0]");
  bad_header("end before begin", "{\"t\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,0]}}",
             4, "end before they begin");
  bad_header("three offsets", "{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}}",
             8, "array of 2 integers");
  bad_header("missing offsets", "{\"t\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4,
             "missing \"data_offsets\"");
  bad_header("overlap",
             "{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
             "\"u\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
             12, "overlap");
  bad_header("overlap unsorted",
             "{\"u\":{\"dtype\":\"I32\",\"shape\":[2],\"data_offsets\":[8,16]},"
             "\"t\":{\"dtype\":\"F16\",\"shape\":[6],\"data_offsets\":[0,12]}}",
             16, "overlap");
  bad_header("duplicate names",
             "{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
             "\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
             8, "duplicate key \"t\"");
  bad_header("unknown dtype", "{\"t\":{\"dtype\":\"F33\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
             "unknown dtype");
  bad_header("entry not an object", "{\"t\":[1,2]}", 0, "not an object");
  bad_header("metadata not strings", "{\"__metadata__\":{\"a\":1}}", 0, "not a string");
  bad_header("invalid UTF-8",
             "{\"t\xff\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
             "invalid UTF-8");
  bad_header("overlong UTF-8", "{\"\xc0\xaf\":{}}", 0, "invalid UTF-8");
  bad_header("UTF-8 surrogate", "{\"\xed\xa0\x80\":{}}", 0, "invalid UTF-8");
  bad_header("control char", "{\"t\n\":{}}", 0, "control character");
  bad_header("lone surrogate", "{\"\\ud800\":{}}", 0, "surrogate");
  bad_header("NUL escape", "{\"a\\u0000b\":{}}", 0, "NUL");
  bad_header("bad escape", "{\"a\\q\":{}}", 0, "invalid escape");
  bad_header("short \\u", "{\"a\\u12\":{}}", 0, "not valid JSON");
  bad_header("leading zero", "{\"t\":{\"dtype\":\"F32\",\"shape\":[01],\"data_offsets\":[0,4]}}", 4,
             "leading zero");
  char deep[400] = "{\"__metadata__\":";
  for (int k = 0; k < 100; k++)
    strcat(deep, "[");
  bad_header("deep nesting", deep, 0, "nesting too deep");
  /* an unsupported but valid dtype is not a format error: say which */
  const char *boolh = "{\"t\":{\"dtype\":\"BOOL\",\"shape\":[1],\"data_offsets\":[0,1]}}";
  write_st(p, strlen(boolh), boolh, "\1", 1);
  TU_CHECK(asg_safetensors_open(p) == NULL && strstr(asg_last_error(), "BOOL"), "BOOL: %s",
           asg_last_error());
  TU_CHECK(g_prog && asg_program_load_variables(g_prog, p, false) == ASG_ERR_UNSUPPORTED,
           "BOOL status");

  /* valid oddities: spaces padding, escapes, unknown keys, zero tensors */
  const char *okh = "{\"t\\u00e9\\n\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],"
                    "\"extra\":null},\"__metadata__\":{}}      ";
  float one = 1.0f;
  write_st(p, strlen(okh), okh, &one, 4);
  asg_safetensors *f = asg_safetensors_open(p);
  TU_CHECK(f && asg_safetensors_find(f, "t\xc3\xa9\n") == 0, "escaped name decoded: %s",
           asg_last_error());
  asg_safetensors_close(f);

  /* every truncation of a valid file fails cleanly */
  float data[6] = {1, 2, 3, 4, 5, 6};
  asg_host_tensor t[2] = {{ASG_F32, ASG_SHAPE(2, 2), data}, {ASG_F16, ASG_SHAPE(2), data}};
  const char *names[2] = {"w", "h"};
  const char *good = tpath("good.safetensors");
  asg_safetensors_write(good, 2, names, t, 0, NULL);
  FILE *gf = fopen(good, "rb");
  unsigned char buf[512];
  size_t n = gf ? fread(buf, 1, sizeof buf, gf) : 0;
  if (gf) fclose(gf);
  int opened = 0;
  for (size_t k = 0; k < n; k++) {
    tu_write_file(p, buf, k);
    f = asg_safetensors_open(p);
    opened += f != NULL;
    asg_safetensors_close(f);
  }
  TU_CHECK(n > 100 && opened == 0, "%d of %zu truncations opened", opened, n);
  /* random byte mutations: each opens or fails cleanly (sanitizers watch) */
  unsigned long long s = 12345;
  int ok = 0, failed = 0;
  for (int it = 0; it < 1000; it++) {
    unsigned char m[512];
    memcpy(m, buf, n);
    int flips = 1 + it % 3;
    for (int k = 0; k < flips; k++) {
      s = s * 6364136223846793005ull + 1442695040888963407ull;
      size_t pos = (size_t)(s >> 33) % (it % 2 ? 64 : n); /* favour the header */
      static const char pool[] = "{}[]\",:0123456789-eE.\\u \xff\x80";
      m[pos] = (s >> 20) & 1 ? (unsigned char)pool[(s >> 40) % (sizeof pool - 1)]
                             : (unsigned char)(s >> 24);
    }
    tu_write_file(p, m, n);
    f = asg_safetensors_open(p);
    if (f) {
      ok++;
      for (int i = 0; i < asg_safetensors_count(f); i++) { /* what opens must be readable */
        asg_host_tensor ht;
        asg_safetensors_info in;
        asg_safetensors_info_at(f, i, &in);
        if (asg_safetensors_read_host(f, i, asg_dtype_is_float(in.dtype) ? ASG_F64 : ASG_I64,
                                      &ht) == 0)
          asg_host_tensor_free(&ht);
      }
    } else {
      failed++;
    }
    asg_safetensors_close(f);
  }
  printf("mutated files: %d opened, %d refused\n", ok, failed);
  TU_CHECK(ok + failed == 1000 && failed > 0, "mutations: %d opened, %d refused", ok, failed);
  asg_program_free(g_prog);
  g_prog = NULL;
  asg_graph_free(g);
}

int main(void) {
  const char *env = getenv("ASG_FIXTURES");
  if (env) {
    snprintf(fixdir, sizeof fixdir, "%s", env);
  } else { /* tests/fixtures next to this source file */
    snprintf(fixdir, sizeof fixdir, "%s", __FILE__);
    char *slash = strrchr(fixdir, '/');
    if (slash)
      snprintf(slash, sizeof fixdir - (size_t)(slash - fixdir), "/fixtures");
    else
      snprintf(fixdir, sizeof fixdir, "fixtures");
  }
  tmpdir = tu_tmpdir_create("asg_test_io");
  if (!tmpdir) {
    printf("cannot create a temporary directory\n");
    return 1;
  }
  test_half();
  test_round_trip();
  test_torch();
  test_mismatch();
  test_malformed();
  tu_tmpdir_remove(tmpdir);
  return tu_finish();
}
