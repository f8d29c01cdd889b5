/* Atomic whole-file writes (see atomic_file.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/atomic_file.h"

asg_status asg__afile_open(asg__afile *f, const char *path) {
  f->fd = -1;
  f->tmp = NULL;
  f->path = path;
  f->st = asg__temp_create(path, &f->fd, &f->tmp);
  if (!f->st) (void)fchmod(f->fd, 0644); /* mkstemp makes 0600; data files are normally readable */
  return f->st;
}

void asg__afile_write(asg__afile *f, const void *buf, size_t n) {
  if (!f->st && n) f->st = asg__write_all(f->fd, buf, n, f->tmp);
}

asg_status asg__afile_close(asg__afile *f, bool abandon) {
  asg_status st = f->st;
  if (f->fd >= 0) {
    if (!st && !abandon && fsync(f->fd) != 0)
      st = asg__error(ASG_ERR_IO, "cannot sync '%s': %s", f->tmp, strerror(errno));
    if (close(f->fd) != 0 && !st && !abandon)
      st = asg__error(ASG_ERR_IO, "cannot close '%s': %s", f->tmp, strerror(errno));
    f->fd = -1;
  }
  if (f->tmp) {
    if (!st && !abandon && rename(f->tmp, f->path) != 0)
      st = asg__error(ASG_ERR_IO, "cannot rename '%s' to '%s': %s", f->tmp, f->path,
                      strerror(errno));
    if (st || abandon)
      unlink(f->tmp);
    else
      st = asg__fsync_dir(f->path);
    free(f->tmp);
    f->tmp = NULL;
  }
  f->st = st;
  return st;
}
