/* The download of the result: one request per result (two with the moov
 * atom at the end), a local file, buffering, the SCHEDULING query, a
 * host that ignores Range and a result that changes on the server. */
#include "common.h"

#include <stdlib.h>
#include <string.h>

/* A result of some 16 MB that downloads in a few seconds: slow enough that
 * a read at its end is far ahead of the download */
#define LARGE_RATE_KBPS 40000

static gint64
cdn_requests (void)
{
  return sim_stat (sim, "cdn_requests");
}

/* Runs @props with a large result (and @faults) through @tail */
static Run *
run_large (const gchar * faults, const gchar * props, const gchar * tail)
{
  fail_unless (sim_set_faultsf (sim, "{\"large_results\": true, "
          "\"download_rate_kbps\": %d%s%s}", LARGE_RATE_KBPS,
          faults ? ", " : "", faults ? faults : ""));
  return run_src (props, tail);
}

/* The same request again is served from the journal in @dir with no
 * request, and the stored bytes are @origin's */
static void
assert_stored (const gchar * props, const gchar * dir, GBytes * origin)
{
  g_autofree gchar *out = g_build_filename (dir, "copy.mp4", NULL);
  g_autofree gchar *tail = g_strdup_printf ("filesink location=%s", out);
  g_autoptr (Run) again = NULL;
  g_autoptr (GBytes) got = NULL;

  fail_unless (sim_reset (sim));
  again = run_src (props, tail);
  assert_ok (again);
  fail_unless_equals_int (cdn_requests (), 0);
  got = read_file (out);
  g_unlink (out);
  fail_unless (g_bytes_equal (got, origin), "the stored result differs");
}

/* qtdemux pulls: the ftyp and mdat headers, then the moov atom at the end,
 * then the samples: one request from byte 0, one for the moov */
GST_START_TEST (test_requests_moov_at_end_pull)
{
  g_autoptr (Run) r = run_large (NULL, "prompt=\"moov at the end\"",
      "qtdemux ! fakesink");

  assert_ok (r);
  fail_unless_equals_int (cdn_requests (), 2);
}

GST_END_TEST;

/* The moov atom first: every read follows the one download */
GST_START_TEST (test_requests_faststart_pull)
{
  g_autoptr (Run) r = run_large ("\"faststart\": true",
      "prompt=\"moov first\"", "qtdemux ! fakesink");

  assert_ok (r);
  fail_unless_equals_int (cdn_requests (), 1);
}

GST_END_TEST;

/* A host that answers every Range with the whole file is read once, from
 * byte 0, and the element stays seekable from its local copy */
GST_START_TEST (test_requests_host_ignoring_range)
{
  g_autofree gchar *path = temp_path ("grokimagine-test-norange.mp4");
  g_autoptr (Run) r = NULL;
  g_autoptr (GBytes) got = NULL, origin = NULL;
  g_autofree gchar *tail = g_strdup_printf ("filesink location=%s", path);

  r = run_large ("\"ignore_range\": true", "prompt=\"no ranges\"",
      "qtdemux ! fakesink");
  assert_ok (r);
  fail_unless_equals_int (cdn_requests (), 1);

  /* push mode too, and the bytes are the origin's */
  fail_unless (sim_reset (sim));
  fail_unless (sim_set_faults (sim, "{\"ignore_range\": true}"));
  g_clear_pointer (&r, run_free);
  r = run_src ("prompt=\"no ranges either\"", tail);
  assert_ok (r);
  fail_unless_equals_int (cdn_requests (), 1);
  got = read_file (path);
  g_unlink (path);
  origin = http_get (result_url (last_task (r), 0));
  fail_unless (g_bytes_equal (got, origin));
}

GST_END_TEST;

/* With a journal, the moov read too lands in the stored file: the stored
 * result is the origin's, byte for byte, and a re-run makes no request */
GST_START_TEST (test_requests_cache_dir_moov_at_end)
{
  g_autofree gchar *dir = g_dir_make_tmp ("grokimagine-test-XXXXXX", NULL);
  g_autofree gchar *props = g_strdup_printf ("prompt=\"stored moov\" "
      "cache-dir=%s", dir);
  g_autoptr (Run) r = run_large (NULL, props, "qtdemux ! fakesink");
  g_autoptr (GBytes) origin = NULL;

  assert_ok (r);
  fail_unless_equals_int (cdn_requests (), 2);
  origin = http_get (result_url (last_task (r), 0));
  assert_stored (props, dir, origin);
  remove_folder (dir);
}

GST_END_TEST;

/* Both requests lose their connection near the end of the file: the extra
 * one resumes from its next missing byte, and the stored result is still
 * the origin's, byte for byte */
GST_START_TEST (test_far_request_resumes)
{
  g_autofree gchar *dir = g_dir_make_tmp ("grokimagine-test-XXXXXX", NULL);
  g_autofree gchar *props = g_strdup_printf ("prompt=\"cut near the end\" "
      "cache-dir=%s", dir);
  g_autoptr (Run) plain = NULL, r = NULL;
  g_autoptr (GBytes) origin = NULL;
  g_autofree gchar *faults = NULL;
  gsize size;

  /* the same result, whole, to learn its size */
  plain = run_large (NULL, "prompt=\"cut near the end\"", "fakesink");
  assert_ok (plain);
  origin = http_get (result_url (last_task (plain), 0));
  size = g_bytes_get_size (origin);

  fail_unless (sim_reset (sim));
  faults = g_strdup_printf ("\"drop_download_at\": %" G_GSIZE_FORMAT ", "
      "\"fault_count\": 2", size - 1000);
  r = run_large (faults, props, "qtdemux ! fakesink");
  assert_ok (r);
  fail_unless_equals_int (cdn_requests (), 3);
  assert_stored (props, dir, origin);
  remove_folder (dir);
}

GST_END_TEST;

/* --- first buffer, with a journal ---------------------------------------- */

typedef struct
{
  gint64 served_at_first;       /* cdn_bytes when the first buffer came */
} FirstBuffer;

static void
on_handoff (GstElement * sink, GstBuffer * buf, GstPad * pad,
    FirstBuffer * fb)
{
  if (fb->served_at_first < 0)
    fb->served_at_first = sim_stat (sim, "cdn_bytes");
}

/* The pipeline gets its first buffer while the single download (into the
 * journal) still runs: the CDN had not sent the whole file then */
GST_START_TEST (test_first_buffer_while_storing)
{
  g_autofree gchar *dir = g_dir_make_tmp ("grokimagine-test-XXXXXX", NULL);
  g_autofree gchar *props = g_strdup_printf ("prompt=\"early bytes\" "
      "cache-dir=%s", dir);
  g_autofree gchar *src = src_desc (props);
  g_autofree gchar *desc = g_strdup_printf ("%s ! fakesink name=sink "
      "signal-handoffs=true", src);
  GstElement *pipeline = launch (desc);
  GstElement *sink = gst_bin_get_by_name (GST_BIN (pipeline), "sink");
  FirstBuffer fb = { -1 };
  g_autoptr (Run) r = NULL;
  g_autoptr (GBytes) origin = NULL;

  /* some 300 KB at 400 kbit/s: about 6 s */
  fail_unless (sim_set_faults (sim, "{\"download_rate_kbps\": 400}"));
  g_signal_connect (sink, "handoff", G_CALLBACK (on_handoff), &fb);
  r = run_pipeline (pipeline);
  assert_ok (r);
  fail_unless_equals_int (cdn_requests (), 1);
  origin = http_get (result_url (last_task (r), 0));
  fail_unless (fb.served_at_first >= 0);
  fail_unless (fb.served_at_first < (gint64) g_bytes_get_size (origin),
      "the first buffer came after all %" G_GINT64_FORMAT " bytes were sent",
      fb.served_at_first);
  gst_object_unref (sink);
  gst_object_unref (pipeline);
  remove_folder (dir);
}

GST_END_TEST;

/* --- like a network source ------------------------------------------------ */

static gboolean
bandwidth_limited (GstElement * src, GstSchedulingFlags * flags)
{
  GstQuery *q = gst_query_new_scheduling ();
  GstPad *pad = gst_element_get_static_pad (src, "src");
  gboolean push = FALSE, pull = FALSE;
  guint i;

  fail_unless (gst_pad_query (pad, q));
  gst_query_parse_scheduling (q, flags, NULL, NULL, NULL);
  for (i = 0; i < gst_query_get_n_scheduling_modes (q); i++) {
    push |= gst_query_parse_nth_scheduling_mode (q, i) == GST_PAD_MODE_PUSH;
    pull |= gst_query_parse_nth_scheduling_mode (q, i) == GST_PAD_MODE_PULL;
  }
  fail_unless (push && pull);
  fail_unless (*flags & GST_SCHEDULING_FLAG_SEEKABLE);
  gst_query_unref (q);
  gst_object_unref (pad);
  return (*flags & GST_SCHEDULING_FLAG_BANDWIDTH_LIMITED) != 0;
}

/* Pops messages until a "download" progress: a step (@done FALSE: a
 * percent below 100) or the end (@done: 100), bounded in time. Counts in
 * @open_after_preroll the steps that came while an operation was under
 * way, as gst-launch reckons it (START or CONTINUE until COMPLETE, CANCELED
 * or ERROR), once the pipeline prerolled. */
static void
wait_for_download_counting (GstElement * pipeline, gboolean done,
    guint * open_after_preroll)
{
  GstBus *bus = gst_element_get_bus (pipeline);
  gint64 end = g_get_monotonic_time () + RUN_TIMEOUT_S * G_TIME_SPAN_SECOND;
  gboolean found = FALSE, in_progress = FALSE, prerolled = FALSE;

  while (!found && g_get_monotonic_time () < end) {
    GstMessage *msg = gst_bus_timed_pop_filtered (bus, 100 * GST_MSECOND,
        GST_MESSAGE_PROGRESS | GST_MESSAGE_ERROR | GST_MESSAGE_ASYNC_DONE);
    GstProgressType t;
    g_autofree gchar *code = NULL, *text = NULL;
    gint percent = -1;

    if (msg == NULL)
      continue;
    if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_ERROR) {
      gst_message_unref (msg);
      break;
    }
    if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_ASYNC_DONE) {
      prerolled = TRUE;
      gst_message_unref (msg);
      continue;
    }
    gst_message_parse_progress (msg, &t, &code, &text);
    in_progress = t == GST_PROGRESS_TYPE_START
        || t == GST_PROGRESS_TYPE_CONTINUE;
    if (g_str_equal (code, "download")) {
      gst_structure_get_int (gst_message_get_structure (msg), "percent",
          &percent);
      found = done ? percent == 100 : percent >= 0 && percent < 100;
      if (prerolled && in_progress && open_after_preroll)
        (*open_after_preroll)++;
    }
    gst_message_unref (msg);
  }
  gst_object_unref (bus);
  if (!found)
    gst_element_set_state (pipeline, GST_STATE_NULL);
  fail_unless (found, "no download progress (%s)", done ? "the end" :
      "a step");
}

static void
wait_for_download (GstElement * pipeline, gboolean done)
{
  wait_for_download_counting (pipeline, done, NULL);
}

/* Seekable, push and pull, and bandwidth limited until the download ends.
 * The pipeline stays in PAUSED: the download and its progress go on. */
GST_START_TEST (test_scheduling_query_and_progress_in_paused)
{
  g_autofree gchar *src = src_desc ("prompt=\"scheduling\"");
  g_autofree gchar *desc = g_strdup_printf ("%s ! fakesink", src);
  GstElement *pipeline = launch (desc);
  GstElement *el = gst_bin_get_by_name (GST_BIN (pipeline), "src");
  GstSchedulingFlags flags;

  fail_unless (sim_set_faults (sim, "{\"download_rate_kbps\": 800}"));
  fail_unless (bandwidth_limited (el, &flags));
  gst_element_set_state (pipeline, GST_STATE_PAUSED);
  wait_for_download (pipeline, FALSE);
  fail_unless (bandwidth_limited (el, &flags));
  wait_for_download (pipeline, TRUE);
  fail_unless (!bandwidth_limited (el, &flags), "flags %x after the "
      "download", flags);
  fail_unless_equals_int (cdn_requests (), 1);
  gst_element_set_state (pipeline, GST_STATE_NULL);
  gst_object_unref (el);
  gst_object_unref (pipeline);
}

GST_END_TEST;

/* The BUFFERING levels grokimaginesrc posted (not those of a queue2
 * playbin may add), as a string: "0 35 100" */
static GstBusSyncReply
record_buffering (GstBus * bus, GstMessage * msg, gpointer data)
{
  GString *levels = data;
  gint percent;

  if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_BUFFERING
      && g_str_equal (G_OBJECT_TYPE_NAME (GST_MESSAGE_SRC (msg)),
          "GstGrokImagineSrc")) {
    gst_message_parse_buffering (msg, &percent);
    g_string_append_printf (levels, "%s%d", levels->len ? " " : "", percent);
  }
  return GST_BUS_PASS;
}

/* playbin on a slow host: the source buffers from below 100 % to 100 % */
GST_START_TEST (test_playbin_buffers_on_slow_host)
{
  g_autoptr (GString) levels = g_string_new (NULL);
  g_autoptr (Run) r = NULL;
  gint start_level;

  fail_unless (sim_set_faults (sim, "{\"download_rate_kbps\": 400}"));
  r = run_playbin ("grokimagine://?prompt=slow%20host&poll-interval=50",
      record_buffering, levels);
  assert_ok (r);
  fail_unless (levels->len > 0, "grokimaginesrc posted no BUFFERING");
  start_level = atoi (levels->str);
  fail_unless (start_level < 100, "buffering started at %d", start_level);
  fail_unless (g_str_has_suffix (levels->str, " 100"),
      "buffering did not end at 100 %%: %s", levels->str);
  fail_unless_equals_int (cdn_requests (), 1);
}

GST_END_TEST;

/* --- the local file ------------------------------------------------------ */

static guint
count_files (const gchar * dir)
{
  g_autoptr (GDir) d = g_dir_open (dir, 0, NULL);
  guint n = 0;

  fail_unless (d != NULL);
  while (g_dir_read_name (d))
    n++;
  return n;
}

/* Without a journal the result goes into download-dir, and the file is
 * gone after stop: in the middle of the download, and after EOS */
GST_START_TEST (test_download_dir_file_deleted_at_stop)
{
  g_autofree gchar *dir = g_dir_make_tmp ("grokimagine-test-XXXXXX", NULL);
  g_autofree gchar *props = g_strdup_printf ("prompt=\"temporary\" "
      "download-dir=%s", dir);
  g_autofree gchar *src = src_desc (props);
  g_autofree gchar *desc = g_strdup_printf ("%s ! fakesink", src);
  GstElement *pipeline = launch (desc);
  g_autoptr (Run) r = NULL;

  fail_unless (sim_set_faults (sim, "{\"download_rate_kbps\": 800}"));
  gst_element_set_state (pipeline, GST_STATE_PAUSED);
  wait_for_download (pipeline, FALSE);
  fail_unless_equals_int (count_files (dir), 1);
  gst_element_set_state (pipeline, GST_STATE_NULL);
  fail_unless_equals_int (count_files (dir), 0);

  fail_unless (sim_reset (sim));
  r = run_pipeline (pipeline);
  assert_ok (r);
  fail_unless_equals_int (count_files (dir), 0);
  gst_object_unref (pipeline);
  remove_folder (dir);
}

GST_END_TEST;

/* A download-dir where no file can be made: an error that says so */
GST_START_TEST (test_download_dir_unusable)
{
  g_autofree gchar *dir = g_dir_make_tmp ("grokimagine-test-XXXXXX", NULL);
  g_autofree gchar *props = g_strdup_printf ("prompt=\"nowhere\" "
      "download-dir=%s/missing", dir);
  g_autoptr (Run) r = run_src (props, "fakesink");

  assert_error (r, GST_RESOURCE_ERROR_OPEN_WRITE, "download-dir");
  fail_unless_equals_int (cdn_requests (), 0);
  remove_folder (dir);
}

GST_END_TEST;

/* A result that changes between two requests (the second of them a resume
 * after a dropped connection) is an error naming the task, never a splice */
GST_START_TEST (test_changed_result_is_an_error)
{
  g_autoptr (Run) r = NULL;
  g_autofree gchar *range = NULL;
  const gchar *task_id;

  fail_unless (sim_set_faults (sim, "{\"drop_download_at\": 50000, "
          "\"fault_count\": 1, \"change_result_after\": 1}"));
  r = run_src ("prompt=\"changing\"", "fakesink");
  task_id = gst_structure_get_string (last_task (r), "task-id");
  assert_error (r, GST_RESOURCE_ERROR_READ, "changed");
  assert_error (r, GST_RESOURCE_ERROR_READ, task_id);
  fail_unless_equals_int (cdn_requests (), 2);
  range = sim_stat_string (sim, "last_range");
  fail_unless_equals_string (range, "bytes=50000-");
}

GST_END_TEST;

/* gst-launch holds a prerolled pipeline in PAUSED while an operation is
 * under way: the background download is no such operation, so playback
 * starts on the first bytes, not when the download ends */
GST_START_TEST (test_download_never_holds_preroll)
{
  g_autofree gchar *src = src_desc ("prompt=\"no holding\"");
  g_autofree gchar *desc = g_strdup_printf ("%s ! fakesink", src);
  GstElement *pipeline = launch (desc);
  guint open = 0;

  fail_unless (sim_set_faults (sim, "{\"download_rate_kbps\": 800}"));
  gst_element_set_state (pipeline, GST_STATE_PAUSED);
  wait_for_download_counting (pipeline, FALSE, &open);
  wait_for_download_counting (pipeline, FALSE, &open);
  wait_for_download_counting (pipeline, TRUE, &open);
  fail_unless_equals_int (open, 0);
  gst_element_set_state (pipeline, GST_STATE_NULL);
  gst_object_unref (pipeline);
}

GST_END_TEST;

/* A host that sends the result chunked, without a Content-Length, and
 * ignores Range: pushed to a file with a cache-dir, the download is
 * reported complete before EOS, the copy is whole, and so is the stored
 * result */
GST_START_TEST (test_chunked_result_stored_before_eos)
{
  g_autofree gchar *dir = g_dir_make_tmp ("grokimagine-test-XXXXXX", NULL);
  g_autofree gchar *out = g_build_filename (dir, "out.mp4", NULL);
  g_autofree gchar *props = g_strdup_printf ("prompt=\"chunked\" "
      "cache-dir=%s", dir);
  g_autofree gchar *tail = g_strdup_printf ("filesink location=%s", out);
  g_autoptr (Run) r = run_large ("\"cdn_chunked\": true, "
      "\"ignore_range\": true", props, tail);
  g_autoptr (GBytes) origin = NULL, got = NULL;
  const gchar *done, *eos;

  assert_ok (r);
  fail_unless_equals_int (cdn_requests (), 1);
  /* as the log has it: a progress message's text */
  done = strstr (r->log->str, "(string)\"Downloaded");
  eos = strstr (r->log->str, "\neos ");
  fail_unless (done != NULL && eos != NULL && done < eos, "EOS came before "
      "the download was complete");
  origin = http_get (result_url (last_task (r), 0));
  got = read_file (out);
  g_unlink (out);
  fail_unless (g_bytes_equal (got, origin), "the copy differs");
  assert_stored (props, dir, origin);
  remove_folder (dir);
}

GST_END_TEST;

/* qtdemux pulls the last bytes as soon as they arrive, and the pipeline
 * stops at the EOS that follows, while the disk may still be behind the
 * network: the result is stored whole all the same, and a re-run makes no
 * request */
GST_START_TEST (test_pull_stop_at_eos_stores_the_result)
{
  guint round;

  for (round = 0; round < 3; round++) {
    g_autofree gchar *dir = g_dir_make_tmp ("grokimagine-test-XXXXXX", NULL);
    g_autofree gchar *props = g_strdup_printf ("prompt=\"stop at eos %u\" "
        "cache-dir=%s", round, dir);
    g_autoptr (Run) r = NULL;
    g_autoptr (GBytes) origin = NULL;

    fail_unless (sim_reset (sim));
    fail_unless (sim_set_faults (sim, "{\"large_results\": true, "
            "\"faststart\": true}"));
    r = run_src (props, "qtdemux ! fakesink");
    assert_ok (r);
    origin = http_get (result_url (last_task (r), 0));
    assert_stored (props, dir, origin);
    remove_folder (dir);
  }
}

GST_END_TEST;

/* A download-dir where the result may not grow to its size (RLIMIT_FSIZE
 * with SIGXFSZ ignored: EFBIG, as a full disk gives ENOSPC): an element
 * error naming the folder, no crash, and no file left behind */
GST_START_TEST (test_download_dir_too_small_is_an_error)
{
  g_autofree gchar *dir = g_dir_make_tmp ("grokimagine-test-XXXXXX", NULL);
  g_autofree gchar *props = g_strdup_printf ("prompt=\"no room\" "
      "download-dir=%s", dir);
  g_autoptr (Run) r = NULL;
  gboolean limited;

  limited = limit_file_size (1024 * 1024);
  r = run_large (NULL, props, "fakesink");
  unlimit_file_size ();

  fail_unless (limited);
  assert_error (r, GST_RESOURCE_ERROR_READ, "no room for the result");
  assert_error (r, GST_RESOURCE_ERROR_READ, dir);
  fail_unless_equals_int (count_files (dir), 0);
  remove_folder (dir);
}

GST_END_TEST;

static Suite *
download_suite (void)
{
  Suite *s = suite_create ("download");
  TCase *tc = tcase_create ("general");

  tcase_set_timeout (tc, 120);
  tcase_add_unchecked_fixture (tc, start_simulator, stop_simulator);
  tcase_add_checked_fixture (tc, setup, teardown);
  tcase_add_test (tc, test_requests_moov_at_end_pull);
  tcase_add_test (tc, test_requests_faststart_pull);
  tcase_add_test (tc, test_requests_host_ignoring_range);
  tcase_add_test (tc, test_requests_cache_dir_moov_at_end);
  tcase_add_test (tc, test_far_request_resumes);
  tcase_add_test (tc, test_first_buffer_while_storing);
  tcase_add_test (tc, test_scheduling_query_and_progress_in_paused);
  tcase_add_test (tc, test_playbin_buffers_on_slow_host);
  tcase_add_test (tc, test_download_dir_file_deleted_at_stop);
  tcase_add_test (tc, test_download_dir_unusable);
  tcase_add_test (tc, test_changed_result_is_an_error);
  tcase_add_test (tc, test_download_never_holds_preroll);
  tcase_add_test (tc, test_chunked_result_stored_before_eos);
  tcase_add_test (tc, test_pull_stop_at_eos_stores_the_result);
  tcase_add_test (tc, test_download_dir_too_small_is_an_error);
  suite_add_tcase (s, tc);
  return s;
}

GST_CHECK_MAIN (download);
