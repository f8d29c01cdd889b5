/* Atomic whole-file writes for the small writers (.npy, .npz, checkpoint
 * manifests): bytes go to a temporary next to the target
 * (asg__temp_create), which is fsync'ed and renamed over it, so readers see
 * the old file or the new one, never a torn one. */
#ifndef ASG_IO_ATOMIC_FILE_H
#define ASG_IO_ATOMIC_FILE_H

#include "io/io_internal.h"

typedef struct asg__afile {
  int fd;
  char *tmp;
  const char *path;
  asg_status st; /* sticky: the first error; later writes do nothing */
} asg__afile;

/* Creates the temporary; mode is the final file's permission (0644). */
asg_status asg__afile_open(asg__afile *f, const char *path);
void asg__afile_write(asg__afile *f, const void *buf, size_t n);
/* Syncs, closes and renames over path when every write succeeded; otherwise
 * (or with abandon) removes the temporary. Returns the first error. */
asg_status asg__afile_close(asg__afile *f, bool abandon);

/* Little-endian stores and loads. */
static inline void asg__put_le(unsigned char *p, uint64_t v, int bytes) {
  for (int k = 0; k < bytes; k++)
    p[k] = (unsigned char)(v >> (8 * k));
}
static inline uint64_t asg__get_le(const unsigned char *p, int bytes) {
  uint64_t v = 0;
  for (int k = bytes - 1; k >= 0; k--)
    v = v << 8 | p[k];
  return v;
}

#endif
