/* Disk faults for the tests (filefaults.h): the calls of the program on
 * the files under one folder fail as the test asks; every other call goes
 * on to the C library unchanged (dlsym (RTLD_NEXT)). Preloaded after any
 * sanitizer runtime, whose own wrappers then call these. No GLib: it is
 * loaded before anything else of the program. */

/* both names of each call are defined here, for 64-bit offsets */
#undef _FILE_OFFSET_BITS
#define _GNU_SOURCE
#include "filefaults.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#define EXPORT __attribute__ ((visibility ("default")))

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static char folder[PATH_MAX + 1]; /* with a trailing '/'; lock */
static FileFaults faults;       /* lock */
static int active;              /* atomic: a folder is set */
static unsigned hits;           /* atomic */

EXPORT void
file_faults_set (const char *path, const FileFaults * f)
{
  char real[PATH_MAX];

  pthread_mutex_lock (&lock);
  __atomic_store_n (&active, 0, __ATOMIC_SEQ_CST);
  folder[0] = '\0';
  if (path && f && realpath (path, real)) {
    snprintf (folder, sizeof (folder), "%s/", real);
    faults = *f;
    __atomic_store_n (&active, 1, __ATOMIC_SEQ_CST);
  }
  __atomic_store_n (&hits, 0, __ATOMIC_SEQ_CST);
  pthread_mutex_unlock (&lock);
}

EXPORT unsigned
file_faults_hits (void)
{
  return __atomic_load_n (&hits, __ATOMIC_SEQ_CST);
}

static void *
real (void **fn, const char *name)
{
  void *f = __atomic_load_n (fn, __ATOMIC_ACQUIRE);

  if (f == NULL) {
    f = dlsym (RTLD_NEXT, name);
    __atomic_store_n (fn, f, __ATOMIC_RELEASE);
  }
  return f;
}

#define REAL(type, name) ({ static void *fn_; (type) real (&fn_, #name); })

/* Whether @path is under the folder; the faults then in @f */
static int
path_faults (const char *path, FileFaults * f)
{
  int under;

  if (!__atomic_load_n (&active, __ATOMIC_SEQ_CST) || path == NULL)
    return 0;
  pthread_mutex_lock (&lock);
  under = folder[0] && strncmp (path, folder, strlen (folder)) == 0;
  if (under)
    *f = faults;
  pthread_mutex_unlock (&lock);
  return under;
}

/* Whether the file of @fd is under the folder */
static int
fd_faults (int fd, FileFaults * f)
{
  char link[64], path[PATH_MAX];
  ssize_t n;

  if (!__atomic_load_n (&active, __ATOMIC_SEQ_CST) || fd < 0)
    return 0;
  snprintf (link, sizeof (link), "/proc/self/fd/%d", fd);
  n = readlink (link, path, sizeof (path) - 1);
  if (n <= 0)
    return 0;
  path[n] = '\0';
  return path_faults (path, f);
}

static int
fail (int e)
{
  __atomic_add_fetch (&hits, 1, __ATOMIC_SEQ_CST);
  errno = e;
  return -1;
}

/* --- open ---------------------------------------------------------------- */

/* The errno of an open (2) that fails, or 0 */
static int
open_fails (int dirfd, const char *path, int flags)
{
  FileFaults f;

  if (path == NULL || (dirfd != AT_FDCWD && path[0] != '/')
      || !path_faults (path, &f))
    return 0;
  if ((flags & O_DIRECT) && f.refuse_direct)
    return EINVAL;
  return (flags & O_CREAT) ? f.create_errno : 0;
}

static mode_t
open_mode (int flags, va_list ap)
{
  return (flags & (O_CREAT | O_TMPFILE)) ? va_arg (ap, mode_t) : 0;
}

#define DEFINE_OPENAT(name) \
EXPORT int \
name (int dirfd, const char *path, int flags, ...) \
{ \
  va_list ap; \
  mode_t mode; \
  int e; \
 \
  va_start (ap, flags); \
  mode = open_mode (flags, ap); \
  va_end (ap); \
  e = open_fails (dirfd, path, flags); \
  if (e) \
    return fail (e); \
  return REAL (int (*) (int, const char *, int, ...), name) (dirfd, path, \
      flags, mode); \
}

DEFINE_OPENAT (openat)
DEFINE_OPENAT (openat64)

/* open (2) is openat (2) in the current folder */
#define DEFINE_OPEN(name, at) \
EXPORT int \
name (const char *path, int flags, ...) \
{ \
  va_list ap; \
  mode_t mode; \
 \
  va_start (ap, flags); \
  mode = open_mode (flags, ap); \
  va_end (ap); \
  return at (AT_FDCWD, path, flags, mode); \
}

DEFINE_OPEN (open, openat)
DEFINE_OPEN (open64, openat64)

/* --- writes -------------------------------------------------------------- */

/* The errno of a write that finds the disk full */
static int
full_errno (const FileFaults * f)
{
  return f->nospace_errno ? f->nospace_errno : ENOSPC;
}

/* The errno of a write to @fd that finds the disk full */
static int
fd_full_errno (int fd)
{
  FileFaults f;

  return fd_faults (fd, &f) ? full_errno (&f) : ENOSPC;
}

/* How many of @len bytes at @offset of @fd may be written (< @len: a
 * short write), or -1 with errno set */
static ssize_t
write_room (int fd, size_t len, off_t offset)
{
  FileFaults f;
  int flags;

  if (len == 0 || !fd_faults (fd, &f))
    return len;
  flags = fcntl (fd, F_GETFL);
  if (flags >= 0 && (flags & O_DIRECT) && f.direct_einval_at >= 0
      && offset + (off_t) len > f.direct_einval_at)
    return fail (EINVAL);
  if (f.nospace_at >= 0 && offset + (off_t) len > f.nospace_at) {
    if (offset >= f.nospace_at)
      return fail (full_errno (&f));
    return f.nospace_at - offset;
  }
  return len;
}

static size_t
iov_len (const struct iovec *iov, int n)
{
  size_t len = 0;
  int i;

  for (i = 0; i < n; i++)
    len += iov[i].iov_len;
  return len;
}

#define DEFINE_PWRITE(name) \
EXPORT ssize_t \
name (int fd, const void *buf, size_t len, off_t offset) \
{ \
  ssize_t room = write_room (fd, len, offset); \
 \
  if (room < 0) \
    return -1; \
  return REAL (ssize_t (*) (int, const void *, size_t, off_t), name) (fd, \
      buf, room, offset); \
}

/* a vector across the end of the room is refused whole */
#define DEFINE_PWRITEV(name) \
EXPORT ssize_t \
name (int fd, const struct iovec *iov, int n, off_t offset) \
{ \
  size_t len = iov_len (iov, n); \
  ssize_t room = write_room (fd, len, offset); \
 \
  if (room < 0) \
    return -1; \
  if ((size_t) room < len) \
    return fail (fd_full_errno (fd)); \
  return REAL (ssize_t (*) (int, const struct iovec *, int, off_t), name) \
      (fd, iov, n, offset); \
}

DEFINE_PWRITE (pwrite)
DEFINE_PWRITE (pwrite64)
DEFINE_PWRITEV (pwritev)
DEFINE_PWRITEV (pwritev64)

EXPORT ssize_t
write (int fd, const void *buf, size_t len)
{
  ssize_t room = len;
  FileFaults f;

  /* the offset only for the files under the folder */
  if (fd_faults (fd, &f))
    room = write_room (fd, len, lseek (fd, 0, SEEK_CUR));
  if (room < 0)
    return -1;
  return REAL (ssize_t (*) (int, const void *, size_t), write) (fd, buf,
      room);
}

#define DEFINE_FALLOCATE(name) \
EXPORT int \
name (int fd, int mode, off_t offset, off_t len) \
{ \
  FileFaults f; \
 \
  if (fd_faults (fd, &f) && f.fallocate_errno) \
    return fail (f.fallocate_errno); \
  return REAL (int (*) (int, int, off_t, off_t), name) (fd, mode, offset, \
      len); \
}

DEFINE_FALLOCATE (fallocate)
DEFINE_FALLOCATE (fallocate64)

/* --- reads --------------------------------------------------------------- */

static int
read_fails (int fd)
{
  FileFaults f;

  return fd_faults (fd, &f) ? f.read_errno : 0;
}

#define DEFINE_PREAD(name) \
EXPORT ssize_t \
name (int fd, void *buf, size_t len, off_t offset) \
{ \
  int e = read_fails (fd); \
 \
  if (e) \
    return fail (e); \
  return REAL (ssize_t (*) (int, void *, size_t, off_t), name) (fd, buf, \
      len, offset); \
}

#define DEFINE_PREADV(name) \
EXPORT ssize_t \
name (int fd, const struct iovec *iov, int n, off_t offset) \
{ \
  int e = read_fails (fd); \
 \
  if (e) \
    return fail (e); \
  return REAL (ssize_t (*) (int, const struct iovec *, int, off_t), name) \
      (fd, iov, n, offset); \
}

DEFINE_PREAD (pread)
DEFINE_PREAD (pread64)
DEFINE_PREADV (preadv)
DEFINE_PREADV (preadv64)
