/* Temporary files of atomic writes: "<path>.tmp.<pid>.XXXXXX" next to the
 * target. The pid in the name tells whose a temporary is, so a writer killed
 * mid-save (SIGKILL, power loss) leaves a file the next save of the same
 * target can recognise as stale and remove, without touching the temporary
 * of a save still running in another process. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/io_internal.h"

/* The pid in name if it is "<base>.tmp.<pid>.XXXXXX" (6 letters or digits,
 * as mkstemp makes them); 0 otherwise. */
static long temp_owner(const char *name, const char *base, size_t blen) {
  if (strncmp(name, base, blen) != 0 || strncmp(name + blen, ".tmp.", 5) != 0) return 0;
  const char *p = name + blen + 5;
  long pid = 0;
  int digits = 0;
  for (; *p >= '0' && *p <= '9'; p++, digits++) {
    if (digits >= 9) return 0; /* more than any pid */
    pid = pid * 10 + (*p - '0');
  }
  if (!digits || *p++ != '.') return 0;
  for (int k = 0; k < 6; k++, p++) {
    char c = *p;
    if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))) return 0;
  }
  return *p ? 0 : pid;
}

/* Best effort: a temporary that cannot be removed stays, the save goes on. */
static void remove_stale(const char *dir, const char *base) {
  DIR *d = opendir(dir);
  if (!d) return;
  size_t blen = strlen(base);
  const long self = (long)getpid();
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    long pid = temp_owner(e->d_name, base, blen);
    if (pid <= 0 || pid == self) continue; /* ours may be another thread's save */
    if (kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue; /* alive (or not ours to judge) */
    struct stat sb;
    if (fstatat(dirfd(d), e->d_name, &sb, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(sb.st_mode))
      (void)unlinkat(dirfd(d), e->d_name, 0);
  }
  closedir(d);
}

asg_status asg__temp_create(const char *path, int *fd_out, char **tmp_out) {
  *tmp_out = NULL;
  *fd_out = -1;
  size_t plen = strlen(path);
  const char *slash = strrchr(path, '/');
  const char *base = slash ? slash + 1 : path;
  char *dir = malloc(plen + 2);
  char *tmp = malloc(plen + 40);
  if (!dir || !tmp) {
    free(dir);
    free(tmp);
    return asg__error(ASG_ERR_OOM, "safetensors write '%s': out of memory", path);
  }
  if (!slash)
    strcpy(dir, ".");
  else if (slash == path)
    strcpy(dir, "/");
  else {
    memcpy(dir, path, (size_t)(slash - path));
    dir[slash - path] = '\0';
  }
  if (*base) remove_stale(dir, base);
  free(dir);
  snprintf(tmp, plen + 40, "%s.tmp.%ld.XXXXXX", path, (long)getpid());
  int fd = mkstemp(tmp);
  if (fd < 0) {
    asg_status st = asg__error(ASG_ERR_IO, "cannot create a temporary file next to '%s': %s", path,
                               strerror(errno));
    free(tmp);
    return st;
  }
  *tmp_out = tmp;
  *fd_out = fd;
  return ASG_OK;
}
