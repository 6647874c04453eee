/* The job journal (cache-dir): re-runs never pay twice. */
#include "common.h"

#include <signal.h>
#include <string.h>

#include "grokimagine-journal.h"

static gchar *cache_dir;

static void
fresh_cache (void)
{
  setup ();
  g_free (cache_dir);
  cache_dir = g_dir_make_tmp ("grokimagine-journal-XXXXXX", NULL);
  fail_unless (cache_dir != NULL);
}

static gchar *
cached_props (const gchar * extra)
{
  return g_strdup_printf ("cache-dir=%s %s", cache_dir, extra);
}

static gchar *
entry_path (void)
{
  g_autoptr (GDir) dir = g_dir_open (cache_dir, 0, NULL);
  const gchar *name;

  while (dir && (name = g_dir_read_name (dir)))
    if (g_str_has_suffix (name, ".json"))
      return g_build_filename (cache_dir, name, NULL);
  return NULL;
}

static gboolean
entry_has (const gchar * text)
{
  g_autofree gchar *path = entry_path ();
  g_autofree gchar *data = NULL;

  return path && g_file_get_contents (path, &data, NULL, NULL)
      && strstr (data, text) != NULL;
}

static GBytes *
run_to_file (const gchar * props, Run ** run)
{
  g_autofree gchar *path = temp_path ("grokimagine-test-journal.mp4");
  g_autofree gchar *tail = g_strdup_printf ("filesink location=%s", path);
  g_autofree gchar *all = cached_props (props);
  Run *r = run_src (all, tail);
  GBytes *got;

  assert_ok (r);
  got = read_file (path);
  g_unlink (path);
  *run = r;
  return got;
}

/* --- the journal itself -------------------------------------------------- */

GST_START_TEST (test_key)
{
  g_autofree gchar *a = grok_imagine_journal_key ("grokimagineapi",
      "https://grokimagineapi.com", "{\"prompt\":\"x\"}", NULL);
  g_autofree gchar *same = grok_imagine_journal_key ("grokimagineapi",
      "https://grokimagineapi.com", "{\"prompt\":\"x\"}", NULL);
  g_autofree gchar *host = grok_imagine_journal_key ("grokimagineapi",
      "http://127.0.0.1:1", "{\"prompt\":\"x\"}", NULL);
  g_autofree gchar *api = grok_imagine_journal_key ("grok5imagine",
      "https://grokimagineapi.com", "{\"prompt\":\"x\"}", NULL);
  g_autofree gchar *prompt = grok_imagine_journal_key ("grokimagineapi",
      "https://grokimagineapi.com", "{\"prompt\":\"y\"}", NULL);

  fail_unless_equals_int (strlen (a), 64);
  fail_unless_equals_string (a, same);
  fail_if (g_str_equal (a, host));
  fail_if (g_str_equal (a, api));
  fail_if (g_str_equal (a, prompt));
}

GST_END_TEST;

GST_START_TEST (test_entries)
{
  g_autoptr (GrokImagineJournal) j = NULL;
  g_autoptr (GrokImagineEntry) read = NULL;
  g_autoptr (GError) err = NULL;
  gchar *urls[] = { (gchar *) "https://cdn.example/1.mp4", NULL };
  guint64 sizes[] = { 1234, 0 };
  GrokImagineEntry submitted = { GROK_IMAGINE_ENTRY_SUBMITTED,
    (gchar *) "task_1", 0, NULL, NULL, NULL
  };
  GrokImagineEntry done = { GROK_IMAGINE_ENTRY_COMPLETED, (gchar *) "task_1",
    G_GINT64_CONSTANT (1764620000) * G_USEC_PER_SEC, NULL, urls, sizes
  };

  fresh_cache ();
  j = grok_imagine_journal_open (cache_dir, "k", &err);
  fail_unless (j != NULL);
  fail_unless (grok_imagine_journal_read (j, &err) == NULL && err == NULL,
      "no entry yet");

  fail_unless (grok_imagine_journal_write (j, &submitted, NULL));
  read = grok_imagine_journal_read (j, NULL);
  fail_unless_equals_string (read->task_id, "task_1");
  fail_unless_equals_int (read->state, GROK_IMAGINE_ENTRY_SUBMITTED);
  grok_imagine_entry_free (g_steal_pointer (&read));

  fail_unless (grok_imagine_journal_write (j, &done, NULL));
  read = grok_imagine_journal_read (j, NULL);
  fail_unless_equals_int (read->state, GROK_IMAGINE_ENTRY_COMPLETED);
  fail_unless_equals_int (read->sizes[0], 1234);
  fail_unless_equals_int (read->submitted_at, done.submitted_at);
  fail_unless_equals_string (read->result_urls[0], urls[0]);
  grok_imagine_entry_free (g_steal_pointer (&read));

  /* a half-written or foreign entry is damaged, not a crash */
  fail_unless (g_file_set_contents (grok_imagine_journal_get_entry_path (j),
          "{\"version\": 2, \"task_id\": \"task_", -1, NULL));
  fail_unless (grok_imagine_journal_read (j, &err) == NULL);
  fail_unless (g_error_matches (err, G_IO_ERROR, G_IO_ERROR_INVALID_DATA));
  g_clear_error (&err);
  fail_unless (g_file_set_contents (grok_imagine_journal_get_entry_path (j),
          "{\"version\": 2, \"state\": \"submitted\", \"task_id\": 5}",
          -1, NULL));
  fail_unless (grok_imagine_journal_read (j, &err) == NULL && err != NULL);
  g_clear_error (&err);
  /* another version is not guessed at */
  fail_unless (g_file_set_contents (grok_imagine_journal_get_entry_path (j),
          "{\"version\": 3, \"state\": \"submitted\", \"task_id\": \"t\"}",
          -1, NULL));
  fail_unless (grok_imagine_journal_read (j, &err) == NULL);
  fail_unless (strstr (err->message, "version 3") != NULL, "%s",
      err->message);
}

GST_END_TEST;

GST_START_TEST (test_lock_is_exclusive)
{
  g_autoptr (GrokImagineJournal) a = NULL, b = NULL;
  g_autoptr (GCancellable) c = g_cancellable_new ();
  g_autoptr (GError) err = NULL;

  fresh_cache ();
  a = grok_imagine_journal_open (cache_dir, "k", NULL);
  b = grok_imagine_journal_open (cache_dir, "k", NULL);
  fail_unless (grok_imagine_journal_lock (a, g_get_monotonic_time () +
          G_TIME_SPAN_SECOND, c, NULL));
  /* a second holder waits until its deadline */
  fail_if (grok_imagine_journal_lock (b, g_get_monotonic_time () +
          200 * G_TIME_SPAN_MILLISECOND, c, &err));
  fail_unless (g_error_matches (err, G_IO_ERROR, G_IO_ERROR_TIMED_OUT));
  g_clear_error (&err);
  grok_imagine_journal_unlock (a);
  fail_unless (grok_imagine_journal_lock (b, g_get_monotonic_time () +
          G_TIME_SPAN_SECOND, c, NULL));
}

GST_END_TEST;

/* --- the element with a cache-dir ---------------------------------------- */

/* Completed once: the same request again costs no request at all */
GST_START_TEST (test_rerun_after_success)
{
  g_autoptr (Run) r1 = NULL, r2 = NULL, r3 = NULL;
  g_autoptr (GBytes) once = NULL, again = NULL, other = NULL;
  const GstStructure *s;
  gboolean cached = FALSE;

  fresh_cache ();
  once = run_to_file ("prompt=\"once only\"", &r1);
  fail_unless_equals_int (sim_stat (sim, "accepted_submits"), 1);

  fail_unless (sim_reset (sim));
  again = run_to_file ("prompt=\"once only\"", &r2);
  fail_unless_equals_int (sim_stat (sim, "api_requests"), 0);
  fail_unless_equals_int (sim_stat (sim, "cdn_requests"), 0);
  fail_unless (g_bytes_equal (once, again));
  s = last_task (r2);
  fail_unless (gst_structure_get_boolean (s, "cached", &cached) && cached);
  fail_unless_equals_string (gst_structure_get_string (s, "task-id"),
      gst_structure_get_string (last_task (r1), "task-id"));

  /* another prompt is another job */
  fail_unless (sim_reset (sim));
  other = run_to_file ("prompt=\"another\"", &r3);
  fail_unless_equals_int (sim_stat (sim, "accepted_submits"), 1);
}

GST_END_TEST;

/* The submitted message comes before the first poll, so an application can
 * persist the task id */
static GstBusSyncReply
polls_at_submit (GstBus * bus, GstMessage * msg, gpointer data)
{
  const GstStructure *s = gst_message_get_structure (msg);

  if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_ELEMENT
      && gst_structure_has_name (s, "grokimagine-task")
      && !g_strcmp0 (gst_structure_get_string (s, "status"), "submitted"))
    *(gint64 *) data = sim_stat (sim, "status_requests");
  return GST_BUS_PASS;
}

GST_START_TEST (test_task_id_before_first_poll)
{
  g_autofree gchar *src = src_desc ("prompt=x");
  g_autofree gchar *desc = g_strdup_printf ("%s ! fakesink", src);
  GstElement *pipeline = launch (desc);
  GstBus *bus = gst_element_get_bus (pipeline);
  gint64 polls = -1;
  g_autoptr (Run) r = NULL;

  gst_bus_set_sync_handler (bus, polls_at_submit, &polls, NULL);
  r = run_pipeline (pipeline);
  assert_ok (r);
  fail_unless_equals_int (polls, 0);
  gst_object_unref (bus);
  gst_object_unref (pipeline);
}

GST_END_TEST;

static GSubprocess *
spawn_launch (const gchar * prompt, const gchar * out, GError ** error)
{
  g_autofree gchar *base = g_strdup_printf ("base-url=%s", sim_api_url (sim));
  g_autofree gchar *cache = g_strdup_printf ("cache-dir=%s", cache_dir);
  g_autofree gchar *p = g_strdup_printf ("prompt=%s", prompt);
  g_autofree gchar *loc = g_strdup_printf ("location=%s", out);

  return g_subprocess_new (G_SUBPROCESS_FLAGS_STDOUT_SILENCE |
      G_SUBPROCESS_FLAGS_STDERR_SILENCE, error, "gst-launch-1.0", "-q",
      "grokimaginesrc", base, "api-key=" SIM_KEY, cache, p,
      "poll-interval=50", "!", "filesink", loc, NULL);
}

static void
waited (GObject * p, GAsyncResult * res, gpointer done)
{
  g_subprocess_wait_finish (G_SUBPROCESS (p), res, NULL);
  *(gboolean *) done = TRUE;
}

/* Waits at most 60 s for @p; a process still running then is killed */
static gboolean
wait_subprocess (GSubprocess * p)
{
  GMainContext *ctx = g_main_context_new ();
  gint64 end = g_get_monotonic_time () + 60 * G_TIME_SPAN_SECOND;
  gboolean done = FALSE, ok;

  g_main_context_push_thread_default (ctx);
  g_subprocess_wait_async (p, NULL, waited, &done);
  while (!done) {
    if (g_get_monotonic_time () > end)
      g_subprocess_force_exit (p);
    g_main_context_iteration (ctx, FALSE);
    g_usleep (10 * 1000);
  }
  g_main_context_pop_thread_default (ctx);
  g_main_context_unref (ctx);
  ok = g_subprocess_get_if_exited (p) && g_subprocess_get_exit_status (p) == 0;
  return ok;
}

/* A run killed while polling; the re-run reattaches: one POST in all */
GST_START_TEST (test_rerun_after_sigkill)
{
  g_autofree gchar *out = temp_path ("grokimagine-test-killed.mp4");
  g_autoptr (GSubprocess) killed = NULL;
  g_autoptr (GError) err = NULL;
  g_autoptr (Run) r = NULL;
  g_autoptr (GBytes) got = NULL;
  gboolean recorded = FALSE;
  gint i;

  fresh_cache ();
  fail_unless (sim_set_faults (sim, "{\"job_duration_ms\": 3000}"));
  killed = spawn_launch ("killed", out, &err);
  fail_unless (killed != NULL, "%s", err ? err->message : "");
  /* the entry says "submitting" before the POST, "submitted" after it */
  for (i = 0; i < 400 && !(recorded = entry_has ("\"submitted\"")); i++)
    g_usleep (25 * 1000);
  g_subprocess_send_signal (killed, SIGKILL);
  g_subprocess_wait (killed, NULL, NULL);
  fail_unless (recorded, "the task was never recorded");
  fail_unless_equals_int (sim_stat (sim, "accepted_submits"), 1);

  got = run_to_file ("prompt=killed", &r);
  fail_unless_equals_int (sim_stat (sim, "generate_requests"), 1);
  fail_unless (g_bytes_get_size (got) > 1000);
  g_unlink (out);
}

GST_END_TEST;

/* Two processes with the same request at once: one POST */
GST_START_TEST (test_two_processes_share_one_job)
{
  g_autofree gchar *out1 = temp_path ("grokimagine-test-p1.mp4");
  g_autofree gchar *out2 = temp_path ("grokimagine-test-p2.mp4");
  g_autoptr (GSubprocess) p1 = NULL, p2 = NULL;
  g_autoptr (GBytes) b1 = NULL, b2 = NULL;

  fresh_cache ();
  fail_unless (sim_set_faults (sim, "{\"job_duration_ms\": 1000}"));
  p1 = spawn_launch ("shared", out1, NULL);
  p2 = spawn_launch ("shared", out2, NULL);
  fail_unless (p1 && p2);
  fail_unless (wait_subprocess (p1));
  fail_unless (wait_subprocess (p2));
  fail_unless_equals_int (sim_stat (sim, "generate_requests"), 1);
  b1 = read_file (out1);
  b2 = read_file (out2);
  fail_unless (g_bytes_get_size (b1) > 1000);
  fail_unless (g_bytes_equal (b1, b2));
  g_unlink (out1);
  g_unlink (out2);
}

GST_END_TEST;

GST_START_TEST (test_refresh_pays_again)
{
  g_autoptr (Run) r1 = NULL, r2 = NULL, r3 = NULL;
  g_autoptr (GBytes) b1 = NULL, b2 = NULL, b3 = NULL;
  const gchar *t1, *t2;

  fresh_cache ();
  b1 = run_to_file ("prompt=again", &r1);
  b2 = run_to_file ("prompt=again refresh=true", &r2);
  fail_unless_equals_int (sim_stat (sim, "accepted_submits"), 2);
  t1 = gst_structure_get_string (last_task (r1), "task-id");
  t2 = gst_structure_get_string (last_task (r2), "task-id");
  fail_if (g_str_equal (t1, t2));

  /* the journal now holds the new take */
  b3 = run_to_file ("prompt=again", &r3);
  fail_unless_equals_int (sim_stat (sim, "accepted_submits"), 2);
  fail_unless_equals_string (gst_structure_get_string (last_task (r3),
          "task-id"), t2);
}

GST_END_TEST;

/* A damaged entry stops the run with an error naming the file and
 * refresh=true: it never pays again */
GST_START_TEST (test_damaged_entry)
{
  g_autoptr (Run) r1 = NULL, r2 = NULL, r3 = NULL;
  g_autoptr (GBytes) b1 = NULL, b3 = NULL;
  g_autofree gchar *entry = NULL, *props = NULL;

  fresh_cache ();
  props = cached_props ("prompt=damaged");
  b1 = run_to_file ("prompt=damaged", &r1);
  entry = entry_path ();
  fail_unless (entry != NULL);
  fail_unless (g_file_set_contents (entry, "{\"version\": 2, \"tas", -1,
          NULL));
  r2 = run_src (props, "fakesink");
  assert_error (r2, GST_RESOURCE_ERROR_READ, entry);
  assert_error (r2, GST_RESOURCE_ERROR_READ, "refresh=true");
  fail_unless_equals_int (sim_stat (sim, "accepted_submits"), 1);
  /* an entry of a version this element does not know, likewise */
  fail_unless (g_file_set_contents (entry, "{\"version\": 9, \"state\": "
          "\"submitted\", \"task_id\": \"task_1\"}", -1, NULL));
  run_free (g_steal_pointer (&r2));
  r2 = run_src (props, "fakesink");
  assert_error (r2, GST_RESOURCE_ERROR_READ, "version 9");
  assert_error (r2, GST_RESOURCE_ERROR_READ, "refresh=true");
  fail_unless_equals_int (sim_stat (sim, "accepted_submits"), 1);

  /* refresh=true is the way on: a new job, and a good entry again */
  b3 = run_to_file ("prompt=damaged refresh=true", &r3);
  fail_unless_equals_int (sim_stat (sim, "accepted_submits"), 2);
  run_free (g_steal_pointer (&r3));
  g_bytes_unref (g_steal_pointer (&b3));
  b3 = run_to_file ("prompt=damaged", &r3);
  fail_unless_equals_int (sim_stat (sim, "accepted_submits"), 2);
}

GST_END_TEST;

/* grok5imagine refunds a failed job: the message says so */
GST_START_TEST (test_refund_reported)
{
  g_autoptr (Run) r = NULL;
  gboolean refunded = FALSE;
  gint64 credits = -1;

  fail_unless (sim_set_faults (sim, "{\"fail_tasks\": \"grok imagine build "
          "failed\"}"));
  r = run_src ("api=grok5imagine prompt=x", "fakesink");
  fail_unless (r->error != NULL);
  fail_unless (gst_structure_get_int64 (last_task (r), "consumed-credits",
          &credits));
  fail_unless_equals_int (credits, 0);
  fail_unless (gst_structure_get_boolean (last_task (r), "refunded",
          &refunded) && refunded);
}

GST_END_TEST;

static Suite *
journal_suite (void)
{
  Suite *s = suite_create ("grokimagine-journal");
  TCase *tc = tcase_create ("general");

  suite_add_tcase (s, tc);
  tcase_set_timeout (tc, 300);
  tcase_add_unchecked_fixture (tc, start_simulator, stop_simulator);
  tcase_add_checked_fixture (tc, fresh_cache, teardown);
  tcase_add_test (tc, test_key);
  tcase_add_test (tc, test_entries);
  tcase_add_test (tc, test_lock_is_exclusive);
  tcase_add_test (tc, test_rerun_after_success);
  tcase_add_test (tc, test_task_id_before_first_poll);
  tcase_add_test (tc, test_rerun_after_sigkill);
  tcase_add_test (tc, test_two_processes_share_one_job);
  tcase_add_test (tc, test_refresh_pays_again);
  tcase_add_test (tc, test_damaged_entry);
  tcase_add_test (tc, test_refund_reported);
  return s;
}

GST_CHECK_MAIN (journal);
