/* NumPy .npz files: zip archives of .npy members. The reader walks the
 * central directory (zip64 records included) and checks every offset, size
 * and CRC against the file, which it holds in memory; members are stored or
 * deflated (zlib). The writer stores members uncompressed. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#ifdef ASG_HAVE_ZLIB
#include <zlib.h>
#endif

#include "core/checks.h"
#include "io/npy_internal.h"

#define WHO "asg_npz_read"
#define FMT(...) asg__error(ASG_ERR_FORMAT, __VA_ARGS__)
#define SIG_LOCAL 0x04034b50u
#define SIG_CENTRAL 0x02014b50u
#define SIG_END 0x06054b50u
#define SIG_END64 0x06064b50u
#define SIG_LOC64 0x07064b50u
/* deflate expands at most ~1032:1; a member claiming more is corrupt, and
 * the bound keeps a forged size from costing memory */
#define MAX_RATIO 1040u

void asg_npz_free(asg_npz *z) {
  if (!z) return;
  for (int i = 0; i < z->n; i++) {
    if (z->names) free(z->names[i]);
    if (z->arrays) asg_host_tensor_free(&z->arrays[i]);
  }
  free(z->names);
  free(z->arrays);
  memset(z, 0, sizeof *z);
}

int asg_npz_find(const asg_npz *z, const char *name) {
  if (!z || !name) return -1;
  for (int i = 0; i < z->n; i++)
    if (!strcmp(z->names[i], name)) return i;
  return -1;
}

static asg_status read_file(const char *path, unsigned char **buf, size_t *len) {
  asg_status st;
  int fd = asg__open_regular(path, WHO, &st);
  if (fd < 0) return st;
  struct stat sb;
  *buf = NULL;
  if (fstat(fd, &sb) != 0) {
    st = asg__error(ASG_ERR_IO, WHO ": cannot stat '%s': %s", path, strerror(errno));
  } else if ((uint64_t)sb.st_size > ASG__MAX_TENSOR_BYTES) {
    st = asg__error(ASG_ERR_FORMAT, WHO ": '%s' is too large", path);
  } else {
    size_t n = (size_t)sb.st_size, got = 0;
    *buf = malloc(n ? n : 1);
    if (!*buf) st = asg__error(ASG_ERR_OOM, WHO ": '%s': out of memory", path);
    while (*buf && got < n) {
      ssize_t r = read(fd, *buf + got, n - got > ((size_t)1 << 30) ? (size_t)1 << 30 : n - got);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) {
        st = asg__error(ASG_ERR_IO, WHO ": cannot read '%s': %s", path,
                        r ? strerror(errno) : "the file shrank");
        break;
      }
      got += (size_t)r;
    }
    *len = got;
  }
  if (st) {
    free(*buf);
    *buf = NULL;
  }
  close(fd);
  return st;
}

typedef struct entry {
  uint64_t csize, usize, off;
  uint32_t crc;
  int method, flags;
  const unsigned char *name;
  size_t nlen;
} entry;

/* The end of central directory record (and its zip64 twin). */
static asg_status find_directory(const unsigned char *b, size_t len, const char *path,
                                 uint64_t *count, uint64_t *cd_off, uint64_t *cd_size) {
  if (len < 22) return FMT(WHO ": '%s' is not a zip archive (too short)", path);
  size_t lo = len > 22 + 65535 ? len - 22 - 65535 : 0, e = len - 22 + 1;
  while (e-- > lo)
    if (asg__get_le(b + e, 4) == SIG_END) break;
  if (e == (size_t)-1 || e < lo || asg__get_le(b + e, 4) != SIG_END)
    return FMT(WHO ": '%s' is not a zip archive (no end of central directory)", path);
  if (asg__get_le(b + e + 4, 2) != 0 || asg__get_le(b + e + 6, 2) != 0)
    return asg__error(ASG_ERR_UNSUPPORTED, WHO ": '%s' is a multi-disk archive", path);
  *count = asg__get_le(b + e + 10, 2);
  *cd_size = asg__get_le(b + e + 12, 4);
  *cd_off = asg__get_le(b + e + 16, 4);
  size_t end = e;
  if (*count == 0xFFFF || *cd_size == 0xFFFFFFFFu || *cd_off == 0xFFFFFFFFu) {
    if (e < 20 || asg__get_le(b + e - 20, 4) != SIG_LOC64)
      return FMT(WHO ": '%s': zip64 markers without a zip64 locator", path);
    uint64_t r = asg__get_le(b + e - 20 + 8, 8);
    if (r > e - 20 || e - 20 - r < 56 || asg__get_le(b + r, 4) != SIG_END64)
      return FMT(WHO ": '%s': bad zip64 end of central directory", path);
    *count = asg__get_le(b + r + 32, 8);
    *cd_size = asg__get_le(b + r + 40, 8);
    *cd_off = asg__get_le(b + r + 48, 8);
    end = (size_t)r;
  }
  if (*cd_off > end || *cd_size > end - *cd_off)
    return FMT(WHO ": '%s': the central directory lies outside the file", path);
  if (*count > *cd_size / 46)
    return FMT(WHO ": '%s': %llu entries cannot fit a central directory of %llu bytes", path,
               (unsigned long long)*count, (unsigned long long)*cd_size);
  return ASG_OK;
}

/* One central directory entry at b[*pos..end); advances *pos. */
static asg_status read_entry(const unsigned char *b, size_t *pos, size_t end, const char *path,
                             entry *en) {
  size_t p = *pos;
  if (end - p < 46 || asg__get_le(b + p, 4) != SIG_CENTRAL)
    return FMT(WHO ": '%s': bad central directory entry at byte %zu", path, p);
  en->flags = (int)asg__get_le(b + p + 8, 2);
  en->method = (int)asg__get_le(b + p + 10, 2);
  en->crc = (uint32_t)asg__get_le(b + p + 16, 4);
  en->csize = asg__get_le(b + p + 20, 4);
  en->usize = asg__get_le(b + p + 24, 4);
  size_t nl = (size_t)asg__get_le(b + p + 28, 2), xl = (size_t)asg__get_le(b + p + 30, 2),
         cl = (size_t)asg__get_le(b + p + 32, 2);
  en->off = asg__get_le(b + p + 42, 4);
  if (end - p - 46 < nl + xl + cl)
    return FMT(WHO ": '%s': central directory entry at byte %zu overruns the directory", path, p);
  en->name = b + p + 46;
  en->nlen = nl;
  /* zip64 extra: the 8-byte values of the fields that hold 0xFFFFFFFF */
  for (size_t x = p + 46 + nl, xe = x + xl; xe - x >= 4;) {
    size_t id = (size_t)asg__get_le(b + x, 2), sz = (size_t)asg__get_le(b + x + 2, 2);
    if (xe - x - 4 < sz) break;
    if (id == 1) {
      size_t q = x + 4, qe = q + sz;
      uint64_t *f[3] = {&en->usize, &en->csize, &en->off};
      for (int k = 0; k < 3; k++)
        if (*f[k] == 0xFFFFFFFFu) {
          if (qe - q < 8) return FMT(WHO ": '%s': short zip64 extra field", path);
          *f[k] = asg__get_le(b + q, 8);
          q += 8;
        }
    }
    x += 4 + sz;
  }
  *pos = p + 46 + nl + xl + cl;
  return ASG_OK;
}

/* The member's uncompressed bytes: a pointer into b (stored) or a new
 * buffer in *own (deflated). */
static asg_status member_bytes(const unsigned char *b, size_t limit, const entry *en,
                               const char *path, const char *name, const unsigned char **data,
                               unsigned char **own) {
  *own = NULL;
  if (en->flags & 1)
    return asg__error(ASG_ERR_UNSUPPORTED, WHO ": '%s': member '%s' is encrypted", path, name);
  if (en->off > limit || limit - en->off < 30 || asg__get_le(b + en->off, 4) != SIG_LOCAL)
    return FMT(WHO ": '%s': member '%s' has no local header at byte %llu", path, name,
               (unsigned long long)en->off);
  size_t d = (size_t)en->off + 30 + (size_t)asg__get_le(b + en->off + 26, 2) +
             (size_t)asg__get_le(b + en->off + 28, 2);
  if (d > limit || limit - d < en->csize)
    return FMT(WHO ": '%s': member '%s' is truncated", path, name);
  if (en->method == 0) {
    if (en->csize != en->usize)
      return FMT(WHO ": '%s': stored member '%s' has two sizes", path, name);
    *data = b + d;
  } else if (en->method == 8) {
#ifdef ASG_HAVE_ZLIB
    if (en->usize > en->csize * MAX_RATIO + 1024 || en->usize > ASG__MAX_TENSOR_BYTES)
      return FMT(WHO ": '%s': member '%s' claims %llu bytes from %llu compressed", path, name,
                 (unsigned long long)en->usize, (unsigned long long)en->csize);
    unsigned char *out = malloc(en->usize ? (size_t)en->usize : 1);
    if (!out) return asg__error(ASG_ERR_OOM, WHO ": '%s': out of memory", path);
    z_stream z;
    memset(&z, 0, sizeof z);
    if (inflateInit2(&z, -15) != Z_OK) {
      free(out);
      return asg__error(ASG_ERR_OOM, WHO ": '%s': cannot start zlib", path);
    }
    const unsigned char *in = b + d;
    uint64_t in_left = en->csize, out_done = 0;
    int zr = Z_OK;
    while (zr == Z_OK) { /* in chunks: avail_in/avail_out are 32-bit */
      if (!z.avail_in && in_left) {
        z.avail_in = in_left > (1u << 30) ? (1u << 30) : (uInt)in_left;
        z.next_in = (Bytef *)(uintptr_t)in;
        in += z.avail_in;
        in_left -= z.avail_in;
      }
      z.next_out = out + out_done;
      z.avail_out = en->usize - out_done > (1u << 30) ? (1u << 30) : (uInt)(en->usize - out_done);
      uInt before = z.avail_out;
      zr = inflate(&z, Z_NO_FLUSH);
      out_done += before - z.avail_out;
      if (zr == Z_BUF_ERROR && (z.avail_in || in_left) && out_done < en->usize) zr = Z_OK;
    }
    inflateEnd(&z);
    if (zr != Z_STREAM_END || out_done != en->usize) {
      free(out);
      return FMT(WHO ": '%s': member '%s' does not inflate to its %llu bytes%s", path, name,
                 (unsigned long long)en->usize, zr == Z_DATA_ERROR ? " (corrupt data)" : "");
    }
    *data = *own = out;
#else
    return asg__error(ASG_ERR_UNSUPPORTED,
                      WHO ": '%s': member '%s' is deflated and this build has no zlib", path, name);
#endif
  } else {
    return asg__error(ASG_ERR_UNSUPPORTED,
                      WHO ": '%s': member '%s' uses compression method %d (stored and deflate "
                          "are supported)",
                      path, name, en->method);
  }
  if (asg__crc32(0, *data, (size_t)en->usize) != en->crc) {
    free(*own);
    *own = NULL;
    return FMT(WHO ": '%s': member '%s' fails its CRC-32 check", path, name);
  }
  return ASG_OK;
}

asg_status asg_npz_read(const char *path, asg_npz *out) {
  if (!path || !out) return asg__error(ASG_ERR_INVALID, WHO ": NULL argument");
  memset(out, 0, sizeof *out);
  unsigned char *b = NULL, *own = NULL;
  size_t len = 0;
  asg_status st = read_file(path, &b, &len);
  if (st) return st;
  uint64_t count = 0, cd_off = 0, cd_size = 0;
  if ((st = find_directory(b, len, path, &count, &cd_off, &cd_size))) goto done;
  if (count > 1000000) {
    st = FMT(WHO ": '%s' has %llu members (at most 1000000)", path, (unsigned long long)count);
    goto done;
  }
  out->names = calloc(count ? count : 1, sizeof *out->names);
  out->arrays = calloc(count ? count : 1, sizeof *out->arrays);
  if (!out->names || !out->arrays) {
    st = asg__error(ASG_ERR_OOM, WHO ": '%s': out of memory", path);
    goto done;
  }
  size_t pos = (size_t)cd_off, cd_end = (size_t)(cd_off + cd_size);
  for (uint64_t k = 0; k < count; k++) {
    entry en = {0};
    if ((st = read_entry(b, &pos, cd_end, path, &en))) goto done;
    if (en.nlen < 5 || memcmp(en.name + en.nlen - 4, ".npy", 4) != 0 ||
        memchr(en.name, 0, en.nlen)) {
      st = asg__error(ASG_ERR_UNSUPPORTED, WHO ": '%s': member '%.*s' is not a .npy file", path,
                      (int)(en.nlen > 200 ? 200 : en.nlen), (const char *)en.name);
      goto done;
    }
    char *name = malloc(en.nlen - 3);
    if (!name) {
      st = asg__error(ASG_ERR_OOM, WHO ": '%s': out of memory", path);
      goto done;
    }
    memcpy(name, en.name, en.nlen - 4);
    name[en.nlen - 4] = '\0';
    out->names[out->n] = name;
    if (asg_npz_find(out, name) >= 0) {
      st = FMT(WHO ": '%s': member '%s.npy' appears twice", path, name);
      free(name);
      out->names[out->n] = NULL;
      goto done;
    }
    const unsigned char *data = NULL;
    if ((st = member_bytes(b, (size_t)cd_off, &en, path, name, &data, &own))) {
      free(name);
      out->names[out->n] = NULL;
      goto done;
    }
    out->n++;
    char label[400];
    snprintf(label, sizeof label, "%s:%s", path, name);
    asg__npy_info info;
    if ((st = asg__npy_parse(data, (size_t)en.usize, WHO, label, &info))) goto done;
    if (en.usize - info.data_off < info.nbytes) {
      st =
          FMT(WHO ": '%s' is truncated: its header promises %zu bytes of data", label, info.nbytes);
      goto done;
    }
    size_t ob = (size_t)info.numel * asg_dtype_size(info.dt);
    void *arr = malloc(ob ? ob : 1);
    if (!arr) {
      st = asg__error(ASG_ERR_OOM, WHO ": '%s' needs %zu bytes: out of memory", label, ob);
      goto done;
    }
    out->arrays[out->n - 1] = (asg_host_tensor){info.dt, info.shape, arr};
    if ((st = asg__npy_convert(&info, data + info.data_off, arr, WHO, label))) goto done;
    free(own);
    own = NULL;
  }
done:
  free(own);
  free(b);
  if (st) asg_npz_free(out);
  return st;
}

/* ---- writing (stored members) ---- */

static void put_local(unsigned char *h, uint32_t crc, uint32_t size, size_t nlen, int flags) {
  asg__put_le(h, SIG_LOCAL, 4);
  asg__put_le(h + 4, 20, 2); /* version needed 2.0 */
  asg__put_le(h + 6, (uint64_t)flags, 2);
  asg__put_le(h + 8, 0, 2);     /* stored */
  asg__put_le(h + 10, 0, 2);    /* 00:00:00 */
  asg__put_le(h + 12, 0x21, 2); /* 1980-01-01: files identical for identical arrays */
  asg__put_le(h + 14, crc, 4);
  asg__put_le(h + 18, size, 4);
  asg__put_le(h + 22, size, 4);
  asg__put_le(h + 26, nlen, 2);
  asg__put_le(h + 28, 0, 2);
}

asg_status asg_npz_write(const char *path, int n, const char *const *names,
                         const asg_host_tensor *arrays) {
  static const char *who = "asg_npz_write";
  if (!path || n < 0 || (n > 0 && (!names || !arrays)) || n > 65535)
    return asg__error(ASG_ERR_INVALID, "%s: NULL argument or %d arrays (0 to 65535)", who, n);
  uint64_t total = 0;
  size_t cd_bytes = 0;
  for (int i = 0; i < n; i++) {
    if (!names[i] || !names[i][0] || strlen(names[i]) > 60000)
      return asg__error(ASG_ERR_INVALID, "%s: array %d has no name or one too long", who, i);
    for (int j = 0; j < i; j++)
      if (!strcmp(names[i], names[j]))
        return asg__error(ASG_ERR_INVALID, "%s: name '%s' appears twice", who, names[i]);
    size_t nb = 0;
    asg_status st = asg__npy_check_write(&arrays[i], who, names[i], &nb);
    if (st) return st;
    total += 30 + 46 + 2 * (strlen(names[i]) + 4) + 256 + nb;
    cd_bytes += 46 + strlen(names[i]) + 4;
  }
  if (total + 22 > 0xFFFFFFFFu)
    return asg__error(ASG_ERR_UNSUPPORTED,
                      "%s: '%s' would exceed 4 GiB (zip64 is not written); save the arrays as "
                      ".npy files",
                      who, path);
  unsigned char *cd = malloc(cd_bytes + 1);
  if (!cd) return asg__error(ASG_ERR_OOM, "%s: out of memory", who);
  asg__afile f;
  asg_status st = asg__afile_open(&f, path);
  size_t cdl = 0, off = 0;
  for (int i = 0; i < n && !st; i++) {
    const asg_host_tensor *t = &arrays[i];
    size_t nb = (size_t)asg_shape_numel(t->shape) * asg_dtype_size(t->dtype),
           nl = strlen(names[i]) + 4;
    char hdr[256];
    size_t hl = asg__npy_header(t, hdr);
    uint32_t crc = asg__crc32(asg__crc32(0, hdr, hl), t->data, nb);
    int flags = 0;
    for (const char *c = names[i]; *c; c++)
      if ((unsigned char)*c >= 0x80) flags = 0x800; /* UTF-8 name */
    unsigned char lh[30];
    put_local(lh, crc, (uint32_t)(hl + nb), nl, flags);
    asg__afile_write(&f, lh, 30);
    asg__afile_write(&f, names[i], nl - 4);
    asg__afile_write(&f, ".npy", 4);
    asg__afile_write(&f, hdr, hl);
    asg__afile_write(&f, t->data, nb);
    /* its central directory entry: the local header's fields plus more */
    unsigned char *c = cd + cdl;
    asg__put_le(c, SIG_CENTRAL, 4);
    asg__put_le(c + 4, 3 << 8 | 20, 2); /* made by Unix, zip 2.0: external attrs are a mode */
    memcpy(c + 6, lh + 4, 26);
    asg__put_le(c + 32, 0, 2);                       /* comment */
    asg__put_le(c + 34, 0, 2);                       /* disk */
    asg__put_le(c + 36, 0, 2);                       /* internal attributes */
    asg__put_le(c + 38, (uint64_t)0100644 << 16, 4); /* regular file, rw-r--r-- */
    asg__put_le(c + 42, off, 4);
    memcpy(c + 46, names[i], nl - 4);
    memcpy(c + 46 + nl - 4, ".npy", 4);
    asg__put_le(c + 30, 0, 2); /* no extra (memcpy above copied the local one: also 0) */
    cdl += 46 + nl;
    off += 30 + nl + hl + nb;
    st = f.st;
  }
  unsigned char end[22];
  asg__put_le(end, SIG_END, 4);
  asg__put_le(end + 4, 0, 4);
  asg__put_le(end + 8, (uint64_t)n, 2);
  asg__put_le(end + 10, (uint64_t)n, 2);
  asg__put_le(end + 12, cdl, 4);
  asg__put_le(end + 16, off, 4);
  asg__put_le(end + 20, 0, 2);
  if (!st) {
    asg__afile_write(&f, cd, cdl);
    asg__afile_write(&f, end, 22);
  }
  free(cd);
  asg_status cst = asg__afile_close(&f, st != ASG_OK); /* a failed write removes its temporary */
  return st ? st : cst;
}
