/* The disk faults of tests/check/filefaults.c, a library for the tests
 * only, preloaded (LD_PRELOAD) into the program that uses it. It fails
 * the calls on the files under one folder as a file system or a disk
 * would, and passes every other call on unchanged. */
#pragma once

typedef struct
{
  /* open (2) with O_DIRECT: EINVAL, as a file system without direct I/O */
  int refuse_direct;
  /* >= 0: a direct write (to a file opened with O_DIRECT) that reaches
   * beyond this byte of the file fails with EINVAL */
  long long direct_einval_at;
  /* != 0: fallocate (2) fails with this errno (EOPNOTSUPP, ENOSPC) */
  int fallocate_errno;
  /* >= 0: the disk is full at this byte of the file: a write across it
   * writes up to it, one beyond it fails with ENOSPC */
  long long nospace_at;
  /* != 0: the errno of a write beyond nospace_at instead of ENOSPC
   * (EDQUOT: a quota used up) */
  int nospace_errno;
  /* != 0: every read fails with this errno (EIO) */
  int read_errno;
  /* != 0: open (2) that creates a file (O_CREAT) fails with this errno
   * (ENOSPC: a disk without room for one more file) */
  int create_errno;
} FileFaults;

/* The faults for the files under @folder from now on (NULL: none). The
 * program finds them with dlsym (RTLD_DEFAULT, FILE_FAULTS_SET), which
 * fails when the library is not preloaded. */
typedef void (*FileFaultsSet) (const char *folder, const FileFaults * faults);
#define FILE_FAULTS_SET "file_faults_set"
/* How many calls failed since the last file_faults_set () */
typedef unsigned (*FileFaultsHits) (void);
#define FILE_FAULTS_HITS "file_faults_hits"
