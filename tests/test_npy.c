/* NumPy .npy/.npz: files written by NumPy (tests/fixtures/npy, made by
 * make_npy_fixtures.py; the values below are the script's), round trips
 * through the writers, and malformed files (truncations, forged headers
 * and sizes, bad CRCs) refused with a message. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

static char fixdir[1024];
static const char *tmpdir;

static const char *fix(const char *name) {
  static char buf[1200];
  snprintf(buf, sizeof buf, "%s/%s", fixdir, name);
  return buf;
}

static unsigned char *slurp(const char *path, size_t *n) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  unsigned char *b = malloc(1 << 16);
  *n = b ? fread(b, 1, 1 << 16, f) : 0;
  fclose(f);
  return b;
}

static bool shape_is(const asg_host_tensor *t, asg_shape s) { return asg_shape_equal(t->shape, s); }

static void test_fixtures(void) {
  asg_host_tensor t;
  TU_CHECK(asg_npy_read(fix("f4_2x3.npy"), &t) == ASG_OK, "f4: %s", asg_last_error());
  if (t.data) {
    const float *v = t.data;
    TU_CHECK(t.dtype == ASG_F32 && shape_is(&t, ASG_SHAPE(2, 3)), "f4 shape");
    TU_CHECK(v[0] == -1.0f && v[1] == -0.5f && v[5] == 1.5f, "f4 values %g %g %g", v[0], v[1],
             v[5]);
  }
  asg_host_tensor_free(&t);

  TU_CHECK(asg_npy_read(fix("f8_scalar.npy"), &t) == ASG_OK, "scalar: %s", asg_last_error());
  TU_CHECK(t.data && t.dtype == ASG_F64 && t.shape.ndim == 0 && *(double *)t.data == 3.25,
           "0-d f8");
  asg_host_tensor_free(&t);

  TU_CHECK(asg_npy_read(fix("i4_1d.npy"), &t) == ASG_OK, "i4");
  if (t.data) {
    const int32_t *v = t.data;
    TU_CHECK(t.dtype == ASG_I32 && shape_is(&t, ASG_SHAPE(4)) && v[0] == -2 && v[2] == 7 &&
                 v[3] == 2147483647,
             "i4 values");
  }
  asg_host_tensor_free(&t);

  TU_CHECK(asg_npy_read(fix("i8_2x3x4.npy"), &t) == ASG_OK, "i8");
  if (t.data) {
    const int64_t *v = t.data;
    TU_CHECK(t.dtype == ASG_I64 && shape_is(&t, ASG_SHAPE(2, 3, 4)) && v[0] == -5 && v[23] == 18,
             "i8 values");
  }
  asg_host_tensor_free(&t);

  TU_CHECK(asg_npy_read(fix("f8_big_endian.npy"), &t) == ASG_OK, "f8 big-endian");
  if (t.data) {
    const double *v = t.data;
    TU_CHECK(t.dtype == ASG_F64 && v[0] == 1.5 && v[1] == -2.25 && v[2] == 1e300, "f8 BE values");
  }
  asg_host_tensor_free(&t);

  TU_CHECK(asg_npy_read(fix("i4_big_endian.npy"), &t) == ASG_OK, "i4 big-endian");
  if (t.data) {
    const int32_t *v = t.data;
    TU_CHECK(v[0] == 1 && v[1] == -2 && v[2] == 65536, "i4 BE values");
  }
  asg_host_tensor_free(&t);

  /* small integer types widen to I32, u4/u8 to I64, f2 to F32 */
  struct {
    const char *file;
    asg_dtype dt;
    int n;
    double want[3];
  } conv[] = {
      {"u1.npy", ASG_I32, 3, {0, 255, 17}},
      {"i1.npy", ASG_I32, 3, {-128, 127, -1}},
      {"i2.npy", ASG_I32, 3, {-32768, 32767, 300}},
      {"u2.npy", ASG_I32, 2, {65535, 1}},
      {"u4.npy", ASG_I64, 2, {4294967295.0, 3}},
      {"f2.npy", ASG_F32, 3, {0.5, -2, 65504}},
      {"b1.npy", ASG_I32, 3, {1, 0, 1}},
  };
  for (size_t k = 0; k < sizeof conv / sizeof conv[0]; k++) {
    asg_status st = asg_npy_read(fix(conv[k].file), &t);
    TU_CHECK(st == ASG_OK && t.dtype == conv[k].dt && shape_is(&t, ASG_SHAPE(conv[k].n)), "%s: %s",
             conv[k].file, asg_last_error());
    if (st) continue;
    double got[3];
    tu_to_double(t.dtype, t.data, got, conv[k].n);
    TU_CHECK(tu_close(conv[k].file, got, conv[k].want, conv[k].n, 0, 0), "%s values", conv[k].file);
    asg_host_tensor_free(&t);
  }
  TU_CHECK(asg_npy_read(fix("u8.npy"), &t) == ASG_OK && t.dtype == ASG_I64 &&
               ((int64_t *)t.data)[0] == INT64_MAX && ((int64_t *)t.data)[1] == 5,
           "u8 that fits");
  asg_host_tensor_free(&t);

  TU_CHECK(asg_npy_read(fix("empty_0x3.npy"), &t) == ASG_OK && shape_is(&t, ASG_SHAPE(0, 3)) &&
               t.dtype == ASG_F32,
           "empty array");
  asg_host_tensor_free(&t);

  TU_CHECK(asg_npy_read(fix("v2_f4.npy"), &t) == ASG_OK && shape_is(&t, ASG_SHAPE(1, 2)) &&
               ((float *)t.data)[1] == 2.0f,
           "version 2.0: %s", asg_last_error());
  asg_host_tensor_free(&t);
  TU_CHECK(asg_npy_read(fix("v3_i8.npy"), &t) == ASG_OK && ((int64_t *)t.data)[1] == -7,
           "version 3.0: %s", asg_last_error());
  asg_host_tensor_free(&t);

  /* refused clearly */
  TU_CHECK(asg_npy_read(fix("fortran_2x3.npy"), &t) == ASG_ERR_UNSUPPORTED && !t.data &&
               tu_contains(asg_last_error(), "Fortran order"),
           "Fortran order: %s", asg_last_error());
  TU_CHECK(asg_npy_read(fix("c8.npy"), &t) == ASG_ERR_UNSUPPORTED &&
               tu_contains(asg_last_error(), "'<c8'"),
           "complex: %s", asg_last_error());
  TU_CHECK(asg_npy_read(fix("structured.npy"), &t) == ASG_ERR_UNSUPPORTED &&
               tu_contains(asg_last_error(), "structured"),
           "structured: %s", asg_last_error());
  TU_CHECK(asg_npy_read(fix("u8_too_big.npy"), &t) == ASG_ERR_FORMAT && !t.data &&
               tu_contains(asg_last_error(), "element 1"),
           "u8 out of range: %s", asg_last_error());
  TU_CHECK(asg_npy_read(fixdir, &t) == ASG_ERR_IO, "a directory: %s", asg_last_error());
  TU_CHECK(asg_npy_read(fix("missing.npy"), &t) == ASG_ERR_IO, "missing file");
}

static void test_npz_fixtures(void) {
  asg_npz z;
  TU_CHECK(asg_npz_read(fix("stored.npz"), &z) == ASG_OK && z.n == 2, "stored npz: %s",
           asg_last_error());
  int a = asg_npz_find(&z, "a"), b = asg_npz_find(&z, "b");
  TU_CHECK(a >= 0 && b >= 0 && asg_npz_find(&z, "c") < 0, "npz names");
  if (a >= 0 && b >= 0) {
    TU_CHECK(z.arrays[a].dtype == ASG_F32 && shape_is(&z.arrays[a], ASG_SHAPE(2, 3)) &&
                 ((float *)z.arrays[a].data)[5] == 5.0f,
             "npz a");
    TU_CHECK(z.arrays[b].dtype == ASG_I64 && ((int64_t *)z.arrays[b].data)[2] == 3, "npz b");
  }
  asg_npz_free(&z);
  asg_status st = asg_npz_read(fix("deflated.npz"), &z);
  if (st == ASG_ERR_UNSUPPORTED && tu_contains(asg_last_error(), "zlib")) {
    printf("note: built without zlib, deflated .npz refused: %s\n", asg_last_error());
    return;
  }
  TU_CHECK(st == ASG_OK && z.n == 2, "deflated npz: %s", asg_last_error());
  int x = asg_npz_find(&z, "x"), y = asg_npz_find(&z, "y");
  if (x >= 0 && y >= 0) {
    TU_CHECK(shape_is(&z.arrays[x], ASG_SHAPE(10, 10)) && ((double *)z.arrays[x].data)[99] == 24.75,
             "deflated x");
    TU_CHECK(z.arrays[y].dtype == ASG_I32 && ((int32_t *)z.arrays[y].data)[0] == -1, "deflated y");
  } else {
    TU_CHECK(0, "deflated names");
  }
  asg_npz_free(&z);
}

static void test_round_trip(void) {
  float f[6] = {1.5f, -2, 3e-7f, 0, -0.0f, 1e30f};
  double d[2] = {1.0 / 3, -1e-300};
  int32_t i4[3] = {INT32_MIN, 0, INT32_MAX};
  int64_t i8[2] = {INT64_MIN, INT64_MAX};
  uint16_t h[2] = {asg_f32_to_f16(0.5f), asg_f32_to_f16(-65504.0f)};
  asg_host_tensor ts[] = {{ASG_F32, ASG_SHAPE(2, 3), f},
                          {ASG_F64, ASG_SHAPE(2), d},
                          {ASG_I32, ASG_SHAPE(3, 1, 1), i4},
                          {ASG_I64, ASG_SCALAR, i8},
                          {ASG_F16, ASG_SHAPE(2), h}};
  const char *names[] = {"f", "d", "i4", "i8", "h"};
  for (int k = 0; k < 5; k++) {
    const char *p = tu_path(tmpdir, "rt.npy");
    TU_CHECK(asg_npy_write(p, &ts[k]) == ASG_OK, "write %s: %s", names[k], asg_last_error());
    asg_host_tensor t;
    TU_CHECK(asg_npy_read(p, &t) == ASG_OK, "read back %s", names[k]);
    /* f2 comes back as F32, exactly */
    asg_dtype want = ts[k].dtype == ASG_F16 ? ASG_F32 : ts[k].dtype;
    TU_CHECK(t.dtype == want && asg_shape_equal(t.shape, ts[k].shape), "%s dtype/shape", names[k]);
    if (ts[k].dtype == ASG_F16) {
      TU_CHECK(t.data && ((float *)t.data)[0] == 0.5f && ((float *)t.data)[1] == -65504.0f,
               "f16 values");
    } else if (t.data) {
      size_t nb = (size_t)asg_shape_numel(ts[k].shape) * asg_dtype_size(ts[k].dtype);
      TU_CHECK(memcmp(t.data, ts[k].data, nb) == 0, "%s bytes", names[k]);
    }
    asg_host_tensor_free(&t);
  }
  const char *zp = tu_path(tmpdir, "rt.npz");
  TU_CHECK(asg_npz_write(zp, 5, names, ts) == ASG_OK, "npz write: %s", asg_last_error());
  asg_npz z;
  TU_CHECK(asg_npz_read(zp, &z) == ASG_OK && z.n == 5, "npz read back: %s", asg_last_error());
  for (int k = 0; k < z.n && k < 5; k++)
    TU_CHECK(!strcmp(z.names[k], names[k]) && asg_shape_equal(z.arrays[k].shape, ts[k].shape),
             "npz member %d", k);
  if (z.n == 5)
    TU_CHECK(memcmp(z.arrays[3].data, i8, 8) == 0 && memcmp(z.arrays[0].data, f, sizeof f) == 0,
             "npz values");
  asg_npz_free(&z);
  TU_CHECK(asg_npz_write(zp, 0, NULL, NULL) == ASG_OK && asg_npz_read(zp, &z) == ASG_OK && z.n == 0,
           "empty npz");
  asg_npz_free(&z);

  /* write errors leave nothing behind */
  uint16_t bf[1] = {0};
  asg_host_tensor bad = {ASG_BF16, ASG_SHAPE(1), bf};
  TU_CHECK(asg_npy_write(tu_path(tmpdir, "bf.npy"), &bad) == ASG_ERR_DTYPE,
           "bf16 has no npy dtype");
  const char *dup[] = {"a", "a"};
  TU_CHECK(asg_npz_write(zp, 2, dup, ts) == ASG_ERR_INVALID && tu_contains(asg_last_error(), "'a'"),
           "duplicate names");
  asg_host_tensor neg = {ASG_F32, ASG_SHAPE(-1), f};
  TU_CHECK(asg_npy_write(tu_path(tmpdir, "neg.npy"), &neg) == ASG_ERR_SHAPE, "negative dim");
  TU_CHECK(asg_npy_write(tu_path(tmpdir, "no/such/dir.npy"), &ts[0]) == ASG_ERR_IO, "missing dir");
}

/* Every prefix of a valid file is refused (never read past the end). */
static void truncations(const char *src, bool npz) {
  size_t n = 0;
  unsigned char *b = slurp(src, &n);
  TU_CHECK(b && n > 0, "read %s", src);
  if (!b) return;
  const char *p = tu_path(tmpdir, npz ? "trunc.npz" : "trunc.npy");
  int refused = 0;
  for (size_t len = 0; len < n; len++) {
    tu_write_file(p, b, len);
    asg_status st;
    if (npz) {
      asg_npz z;
      st = asg_npz_read(p, &z);
      if (!st) asg_npz_free(&z);
    } else {
      asg_host_tensor t;
      st = asg_npy_read(p, &t);
      if (!st) asg_host_tensor_free(&t);
    }
    refused += st == ASG_ERR_FORMAT && asg_last_error()[0];
  }
  TU_CHECK(refused == (int)n, "%s: %d of %zu truncations refused with ASG_ERR_FORMAT", src, refused,
           n);
  free(b);
}

static asg_status read_header(const char *dict) {
  /* a v1 file with this header and 64 bytes of data */
  unsigned char b[512] = "\x93NUMPY\x01\x00";
  size_t hl = strlen(dict);
  b[8] = (unsigned char)hl;
  b[9] = (unsigned char)(hl >> 8);
  memcpy(b + 10, dict, hl);
  const char *p = tu_path(tmpdir, "hdr.npy");
  tu_write_file(p, b, 10 + hl + 64);
  asg_host_tensor t;
  asg_status st = asg_npy_read(p, &t);
  asg_host_tensor_free(&t);
  return st;
}

static void test_malformed(void) {
  truncations(fix("f4_2x3.npy"), false);
  truncations(fix("stored.npz"), true);
  TU_CHECK(read_header("{'descr': '<f4', 'fortran_order': False, 'shape': (4, 4), }\n") == ASG_OK,
           "the header helper works: %s", asg_last_error());
  struct {
    const char *dict, *msg;
    asg_status st;
  } bad[] = {
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296, 4), }", "bytes",
       ASG_ERR_FORMAT},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,), }", "too large",
       ASG_ERR_FORMAT},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (1,1,1,1,1,1,1,1,1), }", "more than 8",
       ASG_ERR_FORMAT},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (-1,), }", "non-negative",
       ASG_ERR_FORMAT},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (100,), }", "truncated", ASG_ERR_FORMAT},
      {"{'descr': '<f4', 'shape': (1,), }", "fortran_order", ASG_ERR_FORMAT},
      {"{'descr': '<f4', 'fortran_order': 0, 'shape': (1,), }", "True nor False", ASG_ERR_FORMAT},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'x': 1}", "'x'", ASG_ERR_FORMAT},
      {"{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (1,)}", "repeated",
       ASG_ERR_FORMAT},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (1,)} junk", "after", ASG_ERR_FORMAT},
      {"{'descr': '<f4\\', 'fortran_order': False, 'shape': (1,)}", "descr", ASG_ERR_FORMAT},
      {"{'descr': '<U3', 'fortran_order': False, 'shape': (1,)}", "'<U3'", ASG_ERR_UNSUPPORTED},
      {"{'descr': 'O', 'fortran_order': False, 'shape': (1,)}", "'O'", ASG_ERR_UNSUPPORTED},
      {"[1, 2]", "'{'", ASG_ERR_FORMAT},
  };
  for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
    asg_status st = read_header(bad[k].dict);
    TU_CHECK(st == bad[k].st && tu_contains(asg_last_error(), bad[k].msg), "%s -> %d %s",
             bad[k].dict, (int)st, asg_last_error());
  }
  /* magic, version, a header length beyond the file */
  const char *p = tu_path(tmpdir, "bad.npy");
  asg_host_tensor t;
  tu_write_file(p, "\x93NUMPZ\x01\x00\x10\x00{}", 12);
  TU_CHECK(asg_npy_read(p, &t) == ASG_ERR_FORMAT && tu_contains(asg_last_error(), "magic"),
           "bad magic: %s", asg_last_error());
  tu_write_file(p, "\x93NUMPY\x04\x00\x10\x00{}", 12);
  TU_CHECK(asg_npy_read(p, &t) == ASG_ERR_UNSUPPORTED && tu_contains(asg_last_error(), "4.0"),
           "version 4: %s", asg_last_error());
  tu_write_file(p, "\x93NUMPY\x02\x00\xff\xff\xff\x7f{}", 14);
  TU_CHECK(asg_npy_read(p, &t) == ASG_ERR_FORMAT && tu_contains(asg_last_error(), "header of"),
           "2 GiB header: %s", asg_last_error());

  /* .npz: a flipped data byte fails the CRC; a forged size is refused */
  size_t n = 0;
  unsigned char *b = slurp(fix("stored.npz"), &n);
  if (!b) return;
  const char *zp = tu_path(tmpdir, "bad.npz");
  asg_npz z;
  unsigned char *c = malloc(n);
  memcpy(c, b, n);
  c[n / 3] ^= 0x40; /* inside a member's data or header */
  tu_write_file(zp, c, n);
  TU_CHECK(asg_npz_read(zp, &z) == ASG_ERR_FORMAT && z.n == 0, "flipped byte: %s",
           asg_last_error());
  /* every single-byte corruption: refused or read, never a crash (ASan) */
  int ok = 0, refused = 0;
  for (size_t i = 0; i < n; i++) {
    memcpy(c, b, n);
    c[i] ^= 0xFF;
    tu_write_file(zp, c, n);
    asg_status st = asg_npz_read(zp, &z);
    if (!st)
      ok++, asg_npz_free(&z);
    else
      refused += asg_last_error()[0] != 0;
  }
  TU_CHECK(ok + refused == (int)n && refused > 0, "corruptions: %d read, %d refused", ok, refused);
  tu_write_file(zp, "PK\x05\x06", 4);
  TU_CHECK(asg_npz_read(zp, &z) == ASG_ERR_FORMAT, "tiny zip");
  tu_write_file(zp, b, 100);
  TU_CHECK(asg_npz_read(zp, &z) == ASG_ERR_FORMAT && tu_contains(asg_last_error(), "not a zip"),
           "no directory: %s", asg_last_error());
  free(c);
  free(b);
}

int main(void) {
  snprintf(fixdir, sizeof fixdir, "%s", __FILE__);
  char *slash = strrchr(fixdir, '/');
  if (slash)
    snprintf(slash, sizeof fixdir - (size_t)(slash - fixdir), "/fixtures/npy");
  else
    snprintf(fixdir, sizeof fixdir, "fixtures/npy");
  tmpdir = tu_tmpdir_create("asg_test_npy");
  if (!tmpdir) return 1;
  test_fixtures();
  test_npz_fixtures();
  test_round_trip();
  test_malformed();
  tu_tmpdir_remove(tmpdir);
  return tu_finish();
}
