/* The reader without a pipeline: every read, wherever it falls (in a chunk
 * still in memory, in the file, across both, behind a download that ran
 * ahead), gives the result's own bytes, and the end comes after COMPLETE. */
#include "common.h"

#include <fcntl.h>
#include <string.h>

#include <glib/gstdio.h>

#include "grokimagine-reader.h"

static GrokImagineHttp http;
static gchar *dir;

/* A large result (some 16 MB), its URL and bytes, made once */
static gchar *url;
static GBytes *origin;

static void
fresh (void)
{
  setup ();
  g_clear_object (&http.session);
  http.session = soup_session_new_with_options ("timeout", 10, NULL);
  http.retries = 2;
  g_free (dir);
  dir = g_dir_make_tmp ("grokimagine-reader-XXXXXX", NULL);
  fail_unless (dir != NULL);
  if (url == NULL) {
    g_autoptr (Run) r = NULL;

    fail_unless (sim_set_faults (sim, "{\"large_results\": true}"));
    r = run_src ("prompt=\"reader\"", "fakesink");
    assert_ok (r);
    url = g_strdup (result_url (last_task (r), 0));
    origin = http_get (url);
    fail_unless (g_bytes_get_size (origin) > 4 * 1024 * 1024);
  }
  fail_unless (sim_reset (sim));
  fail_unless (sim_set_faults (sim, "{\"large_results\": true}"));
}

static void
reader_teardown (void)
{
  remove_folder (dir);
  g_clear_object (&http.session);
  teardown ();
}

/* What the reader told, in order */
typedef struct
{
  GMutex lock;
  gboolean complete;
  gboolean failed;
} Told;

static void
on_event (GrokImagineReader * reader, GrokImagineReaderEvent event,
    gint percent, gpointer user_data)
{
  Told *told = user_data;

  g_mutex_lock (&told->lock);
  if (event == GROK_IMAGINE_READER_COMPLETE)
    told->complete = TRUE;
  if (event == GROK_IMAGINE_READER_FAILED)
    told->failed = TRUE;
  g_mutex_unlock (&told->lock);
}

static gboolean
was_told_complete (Told * told)
{
  gboolean complete;

  g_mutex_lock (&told->lock);
  complete = told->complete;
  g_mutex_unlock (&told->lock);
  return complete;
}

static GrokImagineReader *
new_reader (Told * told)
{
  g_autofree gchar *path = g_build_filename (dir, "result-XXXXXX", NULL);
  int fd = g_mkstemp_full (path, O_RDWR | O_CLOEXEC, 0600);

  fail_unless (fd >= 0);
  return grok_imagine_reader_new (&http, url, fd, path, FALSE, on_event,
      told);
}

/* The bytes at [offset, offset + n) are the result's */
static void
assert_bytes (GBytes * got, guint64 offset, gsize n)
{
  gsize size;
  const guint8 *data = g_bytes_get_data (got, &size);

  fail_unless (size == n, "%" G_GSIZE_FORMAT " bytes at %" G_GUINT64_FORMAT
      " instead of %" G_GSIZE_FORMAT, size, offset, n);
  fail_unless (memcmp (data, (const guint8 *) g_bytes_get_data (origin,
              NULL) + offset, n) == 0, "the bytes at %" G_GUINT64_FORMAT
      " differ", offset);
}

/* Reads at random offsets and lengths (many of them across the 256 KiB
 * chunks, some behind, some ahead of the download) while the download
 * runs, each of them whole */
GST_START_TEST (test_random_reads_while_downloading)
{
  Told told = { 0 };
  g_autoptr (GrokImagineReader) reader = NULL;
  gsize size = g_bytes_get_size (origin);
  GRand *rand = g_rand_new_with_seed (12);
  guint i;

  fail_unless (sim_set_faults (sim, "{\"large_results\": true, "
          "\"download_rate_kbps\": 60000}"));
  reader = new_reader (&told);
  for (i = 0; i < 300; i++) {
    guint64 offset = g_rand_int_range (rand, 0, size);
    gsize len = g_rand_int_range (rand, 1, 700 * 1024);
    g_autoptr (GError) err = NULL;
    g_autoptr (GBytes) got = grok_imagine_reader_read (reader, offset, len,
        TRUE, NULL, &err);

    fail_unless (got != NULL, "read %u: %s", i, err ? err->message : "");
    assert_bytes (got, offset, MIN (len, size - offset));
  }
  g_rand_free (rand);
  /* the extra ranged request at most once */
  fail_unless (sim_stat (sim, "cdn_requests") <= 2);
}

GST_END_TEST;

/* A read near the end opens the extra request there; the bytes just
 * before it, which the sequential download brings later, are the result's
 * too, whatever the reads of the far part kept in memory */
GST_START_TEST (test_reads_around_the_far_request)
{
  Told told = { 0 };
  g_autoptr (GrokImagineReader) reader = NULL;
  gsize size = g_bytes_get_size (origin);
  /* not on a 4 KiB boundary, as the moov atom of an MP4 is not */
  guint64 far = size - 100 * 1000 - 123;
  guint64 at[] = { far, far + 5000, far - 5000, far - 300 * 1024, far + 1 };
  guint i;

  fail_unless (sim_set_faults (sim, "{\"large_results\": true, "
          "\"download_rate_kbps\": 60000}"));
  reader = new_reader (&told);
  for (i = 0; i < G_N_ELEMENTS (at); i++) {
    g_autoptr (GError) err = NULL;
    g_autoptr (GBytes) got = grok_imagine_reader_read (reader, at[i], 4000,
        TRUE, NULL, &err);

    fail_unless (got != NULL, "read at %" G_GUINT64_FORMAT ": %s", at[i],
        err ? err->message : "");
    assert_bytes (got, at[i], 4000);
  }
  fail_unless_equals_int (sim_stat (sim, "cdn_requests"), 2);
}

GST_END_TEST;

/* A reader that reads nothing until the download is whole, then every byte
 * in order: all of it comes from the file, the same bytes */
GST_START_TEST (test_late_sequential_reader)
{
  Told told = { 0 };
  g_autoptr (GrokImagineReader) reader = new_reader (&told);
  gsize size = g_bytes_get_size (origin);
  guint64 offset = 0;
  guint i;

  /* bounded: 30 s */
  for (i = 0; i < 3000 && grok_imagine_reader_is_downloading (reader); i++)
    g_usleep (10 * 1000);
  fail_unless (was_told_complete (&told));
  for (i = 0; offset < size && i < 10000; i++) {
    g_autoptr (GError) err = NULL;
    g_autoptr (GBytes) got = grok_imagine_reader_read (reader, offset,
        100 * 1000, FALSE, NULL, &err);

    fail_unless (got != NULL && g_bytes_get_size (got) > 0, "read at %"
        G_GUINT64_FORMAT ": %s", offset, err ? err->message : "end");
    assert_bytes (got, offset, g_bytes_get_size (got));
    offset += g_bytes_get_size (got);
  }
  fail_unless_equals_uint64 (offset, size);
  fail_unless_equals_int (sim_stat (sim, "cdn_requests"), 1);
}

GST_END_TEST;

/* A sequential reader at the download's edge gets the last byte only after
 * COMPLETE was told, and then the end */
GST_START_TEST (test_end_after_complete)
{
  Told told = { 0 };
  g_autoptr (GrokImagineReader) reader = NULL;
  gsize size = g_bytes_get_size (origin);
  guint64 offset = 0;
  guint i;

  fail_unless (sim_set_faults (sim, "{\"large_results\": true, "
          "\"download_rate_kbps\": 200000}"));
  reader = new_reader (&told);
  for (i = 0; i < 100000; i++) {
    g_autoptr (GError) err = NULL;
    g_autoptr (GBytes) got = grok_imagine_reader_read (reader, offset,
        256 * 1024, FALSE, NULL, &err);

    fail_unless (got != NULL, "%s", err ? err->message : "");
    if (g_bytes_get_size (got) == 0)
      break;
    assert_bytes (got, offset, g_bytes_get_size (got));
    offset += g_bytes_get_size (got);
    if (offset == size)
      fail_unless (was_told_complete (&told), "the last byte came before "
          "the download was complete");
  }
  fail_unless_equals_uint64 (offset, size);
  fail_unless (was_told_complete (&told));
}

GST_END_TEST;

/* A read waiting for bytes ends when its cancellable is cancelled; the
 * download goes on, and a later read gets its bytes */
GST_START_TEST (test_cancelled_read)
{
  Told told = { 0 };
  g_autoptr (GrokImagineReader) reader = NULL;
  g_autoptr (GCancellable) cancellable = g_cancellable_new ();
  g_autoptr (GError) err = NULL;
  g_autoptr (GBytes) got = NULL;
  gsize size = g_bytes_get_size (origin);

  fail_unless (sim_set_faults (sim, "{\"large_results\": true, "
          "\"download_rate_kbps\": 8000}"));
  reader = new_reader (&told);
  g_cancellable_cancel (cancellable);
  got = grok_imagine_reader_read (reader, size / 2, 1000, TRUE, cancellable,
      &err);
  fail_unless (got == NULL);
  fail_unless (g_error_matches (err, G_IO_ERROR, G_IO_ERROR_CANCELLED));
  got = grok_imagine_reader_read (reader, 1000, 1000, TRUE, NULL, NULL);
  fail_unless (got != NULL);
  assert_bytes (got, 1000, 1000);
}

GST_END_TEST;

/* What the reader told, counted, for the cases below; @complete_delay_us
 * holds COMPLETE back as a journal lock held elsewhere does */
typedef struct
{
  GMutex lock;
  guint buffering, buffering_done;
  gboolean complete, failed;
  gulong complete_delay_us;
} Counted;

static void
on_event_counted (GrokImagineReader * reader, GrokImagineReaderEvent event,
    gint percent, gpointer user_data)
{
  Counted *c = user_data;

  if (event == GROK_IMAGINE_READER_COMPLETE && c->complete_delay_us)
    g_usleep (c->complete_delay_us);
  g_mutex_lock (&c->lock);
  if (event == GROK_IMAGINE_READER_BUFFERING) {
    c->buffering++;
    if (percent == 100)
      c->buffering_done++;
  }
  if (event == GROK_IMAGINE_READER_COMPLETE)
    c->complete = TRUE;
  if (event == GROK_IMAGINE_READER_FAILED)
    c->failed = TRUE;
  g_mutex_unlock (&c->lock);
}

static GrokImagineReader *
new_reader_at (const gchar * folder, const gchar * from, gboolean keep,
    Counted * c, gchar ** path_out)
{
  g_autofree gchar *path = g_build_filename (folder, "result-XXXXXX", NULL);
  int fd = g_mkstemp_full (path, O_RDWR | O_CLOEXEC, 0600);

  fail_unless (fd >= 0);
  if (path_out)
    *path_out = g_strdup (path);
  return grok_imagine_reader_new (&http, from, fd, path, keep,
      on_event_counted, c);
}

/* A read that wants more than the 1 MiB buffering looks ahead (a pulling
 * demuxer's big moov): BUFFERING reaches 100 once, and the read waits
 * quietly for the rest instead of telling 100 again and again */
GST_START_TEST (test_long_read_buffers_once)
{
  Counted c = { 0 };
  g_autoptr (GrokImagineReader) reader = NULL;
  g_autoptr (GError) err = NULL;
  g_autoptr (GBytes) got = NULL;

  fail_unless (sim_set_faults (sim, "{\"large_results\": true, "
          "\"download_rate_kbps\": 16000}"));
  reader = new_reader_at (dir, url, FALSE, &c, NULL);
  got = grok_imagine_reader_read (reader, 0, 3 * 1024 * 1024, TRUE, NULL,
      &err);
  fail_unless (got != NULL, "%s", err ? err->message : "");
  assert_bytes (got, 0, 3 * 1024 * 1024);
  g_mutex_lock (&c.lock);
  fail_unless (c.buffering > 0, "the read never buffered");
  fail_unless (c.buffering_done <= 1, "BUFFERING 100 told %u times",
      c.buffering_done);
  g_mutex_unlock (&c.lock);
}

GST_END_TEST;

/* A sequential reader at the last byte waits while COMPLETE is told (the
 * element stores the result then, perhaps behind another process's journal
 * lock): it waits quietly, not telling BUFFERING 100 again and again */
GST_START_TEST (test_last_byte_waits_quietly)
{
  Counted c = { 0 };
  g_autoptr (GrokImagineReader) reader = NULL;
  gsize size = g_bytes_get_size (origin);
  guint64 offset = 0;
  guint i;

  c.complete_delay_us = 600 * 1000;
  fail_unless (sim_set_faults (sim, "{\"large_results\": true}"));
  reader = new_reader_at (dir, url, FALSE, &c, NULL);
  for (i = 0; i < 100000; i++) {
    g_autoptr (GError) err = NULL;
    g_autoptr (GBytes) got = grok_imagine_reader_read (reader, offset,
        256 * 1024, FALSE, NULL, &err);

    fail_unless (got != NULL, "%s", err ? err->message : "");
    if (g_bytes_get_size (got) == 0)
      break;
    assert_bytes (got, offset, g_bytes_get_size (got));
    offset += g_bytes_get_size (got);
  }
  fail_unless_equals_uint64 (offset, size);
  g_mutex_lock (&c.lock);
  fail_unless (c.complete);
  fail_unless (c.buffering_done <= 1, "BUFFERING 100 told %u times",
      c.buffering_done);
  g_mutex_unlock (&c.lock);
}

GST_END_TEST;

/* Every byte arrived (a pulling demuxer has read the last one) and the
 * reader goes at once, while the disk may still be behind the network: the
 * download is complete, so the file is stored whole and COMPLETE told,
 * never deleted as if it were broken off */
GST_START_TEST (test_free_after_last_byte_keeps_the_file)
{
  gsize size = g_bytes_get_size (origin);
  guint round;

  fail_unless (sim_set_faults (sim, "{\"large_results\": true}"));
  for (round = 0; round < 3; round++) {
    Counted c = { 0 };
    g_autofree gchar *path = NULL;
    g_autoptr (GError) err = NULL;
    g_autoptr (GBytes) got = NULL, stored = NULL;
    GrokImagineReader *reader = new_reader_at (dir, url, TRUE, &c, &path);
    guint64 offset;

    /* in order, as a demuxer pulls, up to the last byte */
    for (offset = 0; offset < size; offset += g_bytes_get_size (got)) {
      g_clear_pointer (&got, g_bytes_unref);
      got = grok_imagine_reader_read (reader, offset, 1024 * 1024, TRUE,
          NULL, &err);
      fail_unless (got != NULL, "%s", err ? err->message : "");
      assert_bytes (got, offset, MIN (1024 * 1024, size - offset));
    }
    grok_imagine_reader_free (reader);
    fail_unless (c.complete, "round %u: complete but not told", round);
    fail_unless (g_file_test (path, G_FILE_TEST_EXISTS), "round %u: the "
        "complete file was deleted", round);
    stored = read_file (path);
    g_unlink (path);
    fail_unless (g_bytes_equal (stored, origin), "round %u: the file differs",
        round);
  }
}

GST_END_TEST;

static Suite *
reader_suite (void)
{
  Suite *s = suite_create ("grokimagine-reader");
  TCase *tc = tcase_create ("general");

  tcase_set_timeout (tc, 120);
  tcase_add_unchecked_fixture (tc, start_simulator, stop_simulator);
  tcase_add_checked_fixture (tc, fresh, reader_teardown);
  tcase_add_test (tc, test_random_reads_while_downloading);
  tcase_add_test (tc, test_reads_around_the_far_request);
  tcase_add_test (tc, test_late_sequential_reader);
  tcase_add_test (tc, test_end_after_complete);
  tcase_add_test (tc, test_cancelled_read);
  tcase_add_test (tc, test_long_read_buffers_once);
  tcase_add_test (tc, test_last_byte_waits_quietly);
  tcase_add_test (tc, test_free_after_last_byte_keeps_the_file);
  suite_add_tcase (s, tc);
  return s;
}

GST_CHECK_MAIN (reader);
