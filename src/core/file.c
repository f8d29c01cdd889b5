/* Opening files by path for the loaders: only regular files, and never a
 * blocking open (a FIFO with no writer would block open() forever, and a
 * read from one would wait for data that may never come). */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/checks.h"
#include "core/internal.h"

#ifndef O_CLOEXEC
#define O_CLOEXEC 0
#endif

static const char *kind_of(mode_t m) {
  if (S_ISDIR(m)) return "a directory";
  if (S_ISFIFO(m)) return "a FIFO";
  if (S_ISCHR(m)) return "a character device";
  if (S_ISBLK(m)) return "a block device";
  if (S_ISSOCK(m)) return "a socket";
  return "a special file";
}

int asg__open_regular(const char *path, const char *who, asg_status *status) {
  if (status) *status = ASG_ERR_IO;
  if (!path) {
    asg__error(ASG_ERR_INVALID, "%s: path is NULL", who);
    if (status) *status = ASG_ERR_INVALID;
    return -1;
  }
  /* O_NONBLOCK: open() of a FIFO returns at once instead of waiting for a
   * writer; the type is then checked on the descriptor itself (no race
   * between a stat and the open). */
  int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    asg__error(ASG_ERR_IO, "%s: cannot open '%s': %s", who, path, strerror(errno));
    return -1;
  }
  struct stat sb;
  if (fstat(fd, &sb) != 0) {
    asg__error(ASG_ERR_IO, "%s: cannot stat '%s': %s", who, path, strerror(errno));
    close(fd);
    return -1;
  }
  if (!S_ISREG(sb.st_mode)) {
    asg__error(ASG_ERR_IO, "%s: '%s' is %s, not a regular file", who, path, kind_of(sb.st_mode));
    close(fd);
    return -1;
  }
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) != 0) {
    asg__error(ASG_ERR_IO, "%s: cannot use '%s': %s", who, path, strerror(errno));
    close(fd);
    return -1;
  }
  if (status) *status = ASG_OK;
  return fd;
}
