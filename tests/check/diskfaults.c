/* The local file of the result on a disk that fails: a file system
 * without direct I/O, one that refuses a direct write half-way, one that
 * cannot reserve room, a full disk (at the reserve, and in the middle of
 * the download) and a disk that cannot read back. The faults come from
 * filefaults.c, preloaded into this program, for the files of one folder
 * only. */
#include "common.h"
#include "filefaults.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>

#include "grokimagine-reader.h"

#define MiB (1024 * 1024)

static FileFaultsSet faults_set;
static FileFaultsHits faults_hits;

/* The folder the faults are in (download-dir or cache-dir), and one for
 * the copies the pipelines write */
static gchar *dir, *out_dir;

static void
fresh (void)
{
  setup ();
  faults_set = (FileFaultsSet) dlsym (RTLD_DEFAULT, FILE_FAULTS_SET);
  faults_hits = (FileFaultsHits) dlsym (RTLD_DEFAULT, FILE_FAULTS_HITS);
  fail_unless (faults_set && faults_hits, "the disk faults library is not "
      "preloaded (run this program with meson test)");
  dir = g_dir_make_tmp ("grokimagine-faults-XXXXXX", NULL);
  out_dir = g_dir_make_tmp ("grokimagine-copies-XXXXXX", NULL);
  fail_unless (dir && out_dir);
  fail_unless (sim_set_faults (sim, "{\"large_results\": true}"));
}

static void
faults_teardown (void)
{
  /* also when a check failed with faults set */
  if (faults_set)
    faults_set (NULL, NULL);
  teardown ();
  if (dir)
    remove_folder (dir);
  if (out_dir)
    remove_folder (out_dir);
  g_clear_pointer (&dir, g_free);
  g_clear_pointer (&out_dir, g_free);
}

static FileFaults
no_faults (void)
{
  FileFaults f = { 0 };

  f.direct_einval_at = -1;
  f.nospace_at = -1;
  return f;
}

static guint
count_files (const gchar * folder)
{
  g_autoptr (GDir) d = g_dir_open (folder, 0, NULL);
  guint n = 0;

  fail_unless (d != NULL);
  while (g_dir_read_name (d))
    n++;
  return n;
}

/* The properties that put the result into the folder: the journal's
 * result file (@journal), else a temporary file */
static gchar *
props_for (const gchar * prompt, gboolean journal)
{
  return g_strdup_printf ("prompt=\"%s\" %s=%s", prompt,
      journal ? "cache-dir" : "download-dir", dir);
}

/* Runs @props to a copy in out_dir with @f on the folder; the number of
 * calls that failed in @hits, the copy in @copy (when there is one) */
static Run *
run_faulty (const FileFaults * f, const gchar * props, guint * hits,
    GBytes ** copy)
{
  g_autofree gchar *path = g_build_filename (out_dir, "copy.mp4", NULL);
  g_autofree gchar *tail = g_strdup_printf ("filesink location=%s", path);
  Run *r;

  faults_set (dir, f);
  r = run_src (props, tail);
  *hits = faults_hits ();
  faults_set (NULL, NULL);
  if (copy)
    *copy = read_file (path);
  g_unlink (path);
  return r;
}

/* The copy is the origin's, byte for byte */
static void
assert_whole (Run * r, GBytes * copy)
{
  g_autoptr (GBytes) origin = http_get (result_url (last_task (r), 0));

  fail_unless (g_bytes_get_size (origin) > 8 * MiB);
  fail_unless (g_bytes_equal (copy, origin), "the copy differs from the "
      "result (%" G_GSIZE_FORMAT " bytes of %" G_GSIZE_FORMAT ")",
      g_bytes_get_size (copy), g_bytes_get_size (origin));
}

/* After a run with the journal: the same request again makes no request
 * at all, and gives the same bytes (the journal's file is whole); without
 * it, no file is left in download-dir */
static void
assert_left_behind (const gchar * props, gboolean journal, GBytes * copy)
{
  FileFaults none = no_faults ();
  g_autoptr (Run) again = NULL;
  g_autoptr (GBytes) stored = NULL;
  guint hits;

  if (!journal) {
    fail_unless_equals_int (count_files (dir), 0);
    return;
  }
  fail_unless (sim_reset (sim));
  again = run_faulty (&none, props, &hits, &stored);
  assert_ok (again);
  fail_unless_equals_int (sim_stat (sim, "cdn_requests"), 0);
  fail_unless_equals_int (sim_stat (sim, "accepted_submits"), 0);
  fail_unless (g_bytes_equal (stored, copy), "the stored result differs");
}

/* A fault the download goes on through: the copy is whole, and so is the
 * journal's file; @hits calls failed, one each time */
static void
assert_survives (const FileFaults * f, const gchar * prompt, guint hits)
{
  gboolean journal;

  for (journal = FALSE; journal <= TRUE; journal++) {
    g_autofree gchar *props = props_for (prompt, journal);
    g_autoptr (Run) r = NULL;
    g_autoptr (GBytes) copy = NULL;
    guint got;

    fail_unless (sim_reset (sim));
    fail_unless (sim_set_faults (sim, "{\"large_results\": true}"));
    r = run_faulty (f, props, &got, &copy);
    assert_ok (r);
    fail_unless_equals_int (got, hits);
    assert_whole (r, copy);
    assert_left_behind (props, journal, copy);
  }
}

/* A file system that refuses O_DIRECT at open (tmpfs of old kernels, some
 * FUSE and network file systems): every write and read the usual way */
GST_START_TEST (test_direct_io_refused)
{
  FileFaults f = no_faults ();

  f.refuse_direct = TRUE;
  assert_survives (&f, "no direct I/O", 1);
}

GST_END_TEST;

/* Direct writes that start to fail with EINVAL half-way (a file system
 * that takes some of them only): the first failure ends them, the rest
 * is written the usual way. Every direct write beyond 4 MiB fails here,
 * so one failure only says that no other one was tried. */
GST_START_TEST (test_direct_write_refused_midway)
{
  FileFaults f = no_faults ();

  f.direct_einval_at = 4 * MiB;
  assert_survives (&f, "direct writes refused half-way", 1);
}

GST_END_TEST;

/* A file system that cannot reserve room: the file grows as it is
 * written */
GST_START_TEST (test_fallocate_unsupported)
{
  FileFaults f = no_faults ();

  f.fallocate_errno = EOPNOTSUPP;
  assert_survives (&f, "no fallocate", 1);
}

GST_END_TEST;

/* A full disk: an error that says so and names the folder, then, with the
 * journal, the same request again downloads the result (its file was not
 * recorded) without a second POST, and stores it whole */
static void
assert_disk_full (const FileFaults * f, const gchar * prompt, guint min_hits)
{
  gboolean journal;

  for (journal = FALSE; journal <= TRUE; journal++) {
    g_autofree gchar *props = props_for (prompt, journal);
    FileFaults none = no_faults ();
    g_autoptr (Run) r = NULL, again = NULL;
    g_autoptr (GBytes) copy = NULL;
    gint64 cdn;
    guint hits;

    fail_unless (sim_reset (sim));
    fail_unless (sim_set_faults (sim, "{\"large_results\": true}"));
    r = run_faulty (f, props, &hits, NULL);
    fail_unless (hits >= min_hits, "%u calls failed", hits);
    assert_error (r, GST_RESOURCE_ERROR_NO_SPACE_LEFT, "The disk is full");
    assert_error (r, GST_RESOURCE_ERROR_NO_SPACE_LEFT, dir);
    assert_error (r, GST_RESOURCE_ERROR_NO_SPACE_LEFT,
        g_strerror (ENOSPC));
    fail_if (r->eos);
    fail_unless_equals_int (sim_stat (sim, "accepted_submits"), 1);
    if (!journal) {
      fail_unless_equals_int (count_files (dir), 0);
      continue;
    }

    cdn = sim_stat (sim, "cdn_requests");
    again = run_faulty (&none, props, &hits, &copy);
    assert_ok (again);
    fail_unless_equals_int (sim_stat (sim, "accepted_submits"), 1);
    fail_unless (sim_stat (sim, "cdn_requests") > cdn, "the re-run served "
        "a file that was not whole");
    assert_whole (again, copy);
    assert_left_behind (props, journal, copy);
  }
}

/* ENOSPC at the reserve, before the first byte */
GST_START_TEST (test_disk_full_at_reserve)
{
  FileFaults f = no_faults ();

  f.fallocate_errno = ENOSPC;
  assert_disk_full (&f, "full disk at the reserve", 1);
}

GST_END_TEST;

/* ENOSPC from a write at 3 MiB, on a file system that cannot reserve: a
 * short write up to there, then the error */
GST_START_TEST (test_disk_full_midway)
{
  FileFaults f = no_faults ();

  f.fallocate_errno = EOPNOTSUPP;
  f.nospace_at = 3 * MiB;
  assert_disk_full (&f, "full disk half-way", 2);
}

GST_END_TEST;

/* ENOSPC at the very last byte, once every byte has arrived and most of
 * them went down the pipeline: an error all the same, never an EOS */
GST_START_TEST (test_disk_full_at_last_byte)
{
  FileFaults f = no_faults ();
  g_autoptr (Run) r = run_src ("prompt=\"full disk at the end\"",
      "fakesink");
  g_autoptr (GBytes) origin = NULL;

  assert_ok (r);
  origin = http_get (result_url (last_task (r), 0));
  f.fallocate_errno = EOPNOTSUPP;
  f.nospace_at = g_bytes_get_size (origin) - 1;
  assert_disk_full (&f, "full disk at the end", 2);
}

GST_END_TEST;

/* The same full disk under qtdemux, which pulls the moov atom at the end
 * of the result: the extra request's bytes, written where they land, are
 * the first to find no room */
GST_START_TEST (test_disk_full_far_request)
{
  g_autofree gchar *props = props_for ("full disk, pulled", FALSE);
  g_autofree gchar *src = src_desc (props);
  g_autofree gchar *desc = g_strdup_printf ("%s ! qtdemux ! fakesink", src);
  FileFaults f = no_faults ();
  g_autoptr (Run) r = NULL;

  /* slow enough that the download from byte 0 is far from 3 MiB when
   * qtdemux asks for the end */
  fail_unless (sim_set_faults (sim, "{\"large_results\": true, "
          "\"download_rate_kbps\": 8000}"));
  f.fallocate_errno = EOPNOTSUPP;
  f.nospace_at = 3 * MiB;
  faults_set (dir, &f);
  r = run_launch (desc);
  faults_set (NULL, NULL);
  assert_error (r, GST_RESOURCE_ERROR_NO_SPACE_LEFT, "The disk is full");
  assert_error (r, GST_RESOURCE_ERROR_NO_SPACE_LEFT, dir);
  fail_unless_equals_int (sim_stat (sim, "cdn_requests"), 2);
  fail_unless_equals_int (count_files (dir), 0);
}

GST_END_TEST;

/* EIO reading the file back: an error that names the file and says what
 * the disk said, no hang. Pulled by qtdemux during the download (the moov
 * atom at the end comes from the file), and the whole stored result. */
GST_START_TEST (test_read_error)
{
  g_autofree gchar *pulled = g_strdup_printf ("prompt=\"read error\" "
      "download-dir=%s", dir);
  g_autofree gchar *stored = props_for ("stored, read error", TRUE);
  g_autofree gchar *src = src_desc (pulled);
  g_autofree gchar *desc = g_strdup_printf ("%s ! qtdemux ! fakesink", src);
  FileFaults f = no_faults (), none = no_faults ();
  g_autoptr (Run) r = NULL, storing = NULL, again = NULL;
  guint hits;

  f.read_errno = EIO;
  faults_set (dir, &f);
  r = run_launch (desc);
  hits = faults_hits ();
  faults_set (NULL, NULL);
  fail_unless (hits >= 1);
  assert_error (r, GST_RESOURCE_ERROR_READ, g_strerror (EIO));
  assert_error (r, GST_RESOURCE_ERROR_READ, dir);
  fail_unless_equals_int (count_files (dir), 0);

  fail_unless (sim_reset (sim));
  fail_unless (sim_set_faults (sim, "{\"large_results\": true}"));
  storing = run_faulty (&none, stored, &hits, NULL);
  assert_ok (storing);
  again = run_faulty (&f, stored, &hits, NULL);
  fail_unless (hits >= 1);
  assert_error (again, GST_RESOURCE_ERROR_READ, g_strerror (EIO));
  assert_error (again, GST_RESOURCE_ERROR_READ, dir);
  fail_unless_equals_int (sim_stat (sim, "accepted_submits"), 1);
}

GST_END_TEST;

typedef struct
{
  GMutex lock;
  GCond cond;
  gboolean complete;
} Told;

static void
on_event (GrokImagineReader * reader, GrokImagineReaderEvent event,
    gint percent, gpointer user_data)
{
  Told *told = user_data;

  g_mutex_lock (&told->lock);
  if (event == GROK_IMAGINE_READER_COMPLETE)
    told->complete = TRUE;
  g_cond_broadcast (&told->cond);
  g_mutex_unlock (&told->lock);
}

/* A reader behind the download reads it back from the file (here after
 * its end, from byte 0: the chunks still in memory are the last ones):
 * EIO there, on the direct read and the usual one, is an error naming the
 * file, at once */
GST_START_TEST (test_read_back_error)
{
  g_autoptr (Run) r = run_src ("prompt=\"read back\"", "fakesink");
  g_autofree gchar *path = g_build_filename (dir, "result.part", NULL);
  FileFaults f = no_faults ();
  GrokImagineHttp http = { 0 };
  g_autoptr (GrokImagineReader) reader = NULL;
  g_autoptr (GBytes) got = NULL;
  g_autoptr (GError) err = NULL;
  Told told = { 0 };
  gboolean complete;
  guint hits;
  int fd;

  assert_ok (r);
  fd = g_open (path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  fail_unless (fd >= 0);
  http.session = soup_session_new_with_options ("timeout", 10, NULL);
  http.retries = 2;
  g_mutex_init (&told.lock);
  g_cond_init (&told.cond);

  f.read_errno = EIO;
  faults_set (dir, &f);
  reader = grok_imagine_reader_new (&http, result_url (last_task (r), 0), fd,
      path, FALSE, on_event, &told);
  complete = wait_for_flag (&told.lock, &told.cond, &told.complete,
      RUN_TIMEOUT_S);
  if (complete)
    got = grok_imagine_reader_read (reader, 0, 64 * 1024, TRUE, NULL, &err);
  hits = faults_hits ();
  faults_set (NULL, NULL);
  g_clear_pointer (&reader, grok_imagine_reader_free);
  g_object_unref (http.session);
  g_mutex_clear (&told.lock);
  g_cond_clear (&told.cond);

  fail_unless (complete, "the download did not complete");
  fail_unless (got == NULL, "read bytes the disk could not give");
  fail_unless (err != NULL && strstr (err->message, path) != NULL
      && strstr (err->message, g_strerror (EIO)) != NULL, "%s",
      err ? err->message : "no error");
  fail_unless (hits >= 1);
}

GST_END_TEST;

/* A run that ran faulty and ended with the error of a full disk, which
 * names the folder, @what, @detail and the system's words for @err_no */
static void
run_says_disk_full (const FileFaults * f, const gchar * props,
    const gchar * what, const gchar * detail, int err_no)
{
  g_autoptr (Run) r = NULL;
  guint hits;

  r = run_faulty (f, props, &hits, NULL);
  fail_unless (hits >= 1, "%u calls failed", hits);
  assert_error (r, GST_RESOURCE_ERROR_NO_SPACE_LEFT, what);
  assert_error (r, GST_RESOURCE_ERROR_NO_SPACE_LEFT, detail);
  assert_error (r, GST_RESOURCE_ERROR_NO_SPACE_LEFT, dir);
  assert_error (r, GST_RESOURCE_ERROR_NO_SPACE_LEFT, g_strerror (err_no));
  fail_if (r->eos);
}

/* A cache-dir whose disk is full before the POST: the journal cannot
 * note the submit, so nothing is sent, and the error says the disk is full
 * (RESOURCE/NO_SPACE_LEFT), not that something failed */
GST_START_TEST (test_disk_full_journal_before_submit)
{
  g_autofree gchar *props = props_for ("full disk, no submit", TRUE);
  g_autofree gchar *capped = g_strdup_printf ("%s max-credits=100000", props);
  FileFaults f = no_faults ();

  f.nospace_at = 0;
  run_says_disk_full (&f, props, "The disk is full while submitting the job",
      "the job was not sent", ENOSPC);
  fail_unless_equals_int (sim_stat (sim, "generate_requests"), 0);

  /* with max-credits, the ledger is the first to find no room: the job's
   * own sentence, with the code of a full disk */
  run_says_disk_full (&f, capped, "Not submitted",
      "max-credits cannot be checked", ENOSPC);
  fail_unless_equals_int (sim_stat (sim, "generate_requests"), 0);
}

GST_END_TEST;

/* A download-dir without room for one more file: the temporary file of
 * the result cannot be made, and the error says the disk is full */
GST_START_TEST (test_disk_full_download_file)
{
  g_autofree gchar *props = props_for ("full disk, no file", FALSE);
  FileFaults f = no_faults ();

  f.create_errno = ENOSPC;
  run_says_disk_full (&f, props, "The disk is full while creating a file",
      "download-dir", ENOSPC);
  fail_unless_equals_int (sim_stat (sim, "accepted_submits"), 1);
  fail_unless_equals_int (count_files (dir), 0);
}

GST_END_TEST;

/* A quota used up (EDQUOT) is a full disk too: at the reserve, then (on a
 * file system that cannot reserve) at a write half-way */
GST_START_TEST (test_quota_exceeded)
{
  gboolean at_reserve;

  for (at_reserve = FALSE; at_reserve <= TRUE; at_reserve++) {
    g_autofree gchar *props = props_for ("quota used up", FALSE);
    FileFaults f = no_faults ();

    fail_unless (sim_reset (sim));
    fail_unless (sim_set_faults (sim, "{\"large_results\": true}"));
    f.fallocate_errno = at_reserve ? EDQUOT : EOPNOTSUPP;
    f.nospace_at = 3 * MiB;
    f.nospace_errno = EDQUOT;
    run_says_disk_full (&f, props, "The disk is full while storing the "
        "result of task", at_reserve ? "no room for the result" :
        "cannot write the result", EDQUOT);
    fail_unless_equals_int (count_files (dir), 0);
  }
}

GST_END_TEST;

static Suite *
diskfaults_suite (void)
{
  Suite *s = suite_create ("diskfaults");
  TCase *tc = tcase_create ("general");

  tcase_set_timeout (tc, 300);
  tcase_add_unchecked_fixture (tc, start_simulator, stop_simulator);
  tcase_add_checked_fixture (tc, fresh, faults_teardown);
  tcase_add_test (tc, test_direct_io_refused);
  tcase_add_test (tc, test_direct_write_refused_midway);
  tcase_add_test (tc, test_fallocate_unsupported);
  tcase_add_test (tc, test_disk_full_at_reserve);
  tcase_add_test (tc, test_disk_full_midway);
  tcase_add_test (tc, test_disk_full_at_last_byte);
  tcase_add_test (tc, test_disk_full_far_request);
  tcase_add_test (tc, test_read_error);
  tcase_add_test (tc, test_read_back_error);
  tcase_add_test (tc, test_disk_full_journal_before_submit);
  tcase_add_test (tc, test_disk_full_download_file);
  tcase_add_test (tc, test_quota_exceeded);
  suite_add_tcase (s, tc);
  return s;
}

GST_CHECK_MAIN (diskfaults);
