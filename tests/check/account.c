/* Accounts and the cache folder: one cache-dir shared by two API keys keeps
 * each key's tasks and results apart, and writes neither key. */
#include "common.h"

#include <string.h>

#include "grokimagine-journal.h"

#define OTHER_KEY "second-account-key"

static gchar *cache_dir;

static void
start_two_key_simulator (void)
{
  const gchar *args[] = { "--key", SIM_KEY, "--key", OTHER_KEY,
    "--job-duration", "300", NULL
  };
  g_autoptr (GError) err = NULL;

  sim = sim_start (args, &err);
  fail_unless (sim != NULL, "cannot start the simulator: %s",
      err ? err->message : "?");
}

static void
fresh_cache (void)
{
  setup ();
  g_free (cache_dir);
  cache_dir = g_dir_make_tmp ("grokimagine-account-XXXXXX", NULL);
  fail_unless (cache_dir != NULL);
}

static void
remove_cache (void)
{
  teardown ();
  remove_folder (cache_dir);
}

static Run *
run_as (const gchar * key, const gchar * prompt)
{
  g_autofree gchar *props = g_strdup_printf ("cache-dir=%s api-key=%s "
      "prompt=\"%s\"", cache_dir, key, prompt);

  return run_src (props, "fakesink");
}

static gboolean
was_cached (Run * r)
{
  gboolean cached = FALSE;

  return gst_structure_get_boolean (last_task (r), "cached", &cached)
      && cached;
}

/* Whether a file of the folder holds @text */
static gboolean
folder_holds (const gchar * text)
{
  g_autoptr (GDir) d = g_dir_open (cache_dir, 0, NULL);
  const gchar *name;

  while (d && (name = g_dir_read_name (d))) {
    g_autofree gchar *path = g_build_filename (cache_dir, name, NULL);
    g_autofree gchar *data = NULL;
    gsize len = 0;

    if (strstr (name, text)
        || (g_file_get_contents (path, &data, &len, NULL)
            && g_strstr_len (data, len, text)))
      return TRUE;
  }
  return FALSE;
}

/* The same request with a second key on a shared cache-dir is a job of its
 * own: it is neither served the first key's stored result nor attached to
 * its task; each key is then served its own */
GST_START_TEST (test_two_keys_one_cache_dir)
{
  g_autoptr (Run) a = NULL, b = NULL, a2 = NULL, b2 = NULL;
  g_autofree gchar *task_a = NULL, *task_b = NULL;

  a = run_as (SIM_KEY, "one request, two accounts");
  assert_ok (a);
  fail_if (was_cached (a));
  task_a = g_strdup (gst_structure_get_string (last_task (a), "task-id"));

  b = run_as (OTHER_KEY, "one request, two accounts");
  assert_ok (b);
  fail_if (was_cached (b), "the second key was served the first's result");
  fail_unless_equals_int (sim_stat (sim, "accepted_submits"), 2);
  task_b = g_strdup (gst_structure_get_string (last_task (b), "task-id"));
  fail_if (g_strcmp0 (task_a, task_b) == 0);

  /* each key is served its own, with no request */
  a2 = run_as (SIM_KEY, "one request, two accounts");
  assert_ok (a2);
  fail_unless (was_cached (a2));
  fail_unless_equals_string (gst_structure_get_string (last_task (a2),
          "task-id"), task_a);
  b2 = run_as (OTHER_KEY, "one request, two accounts");
  assert_ok (b2);
  fail_unless (was_cached (b2));
  fail_unless_equals_string (gst_structure_get_string (last_task (b2),
          "task-id"), task_b);
  fail_unless_equals_int (sim_stat (sim, "accepted_submits"), 2);

  /* neither key is written to the folder */
  fail_if (folder_holds (SIM_KEY));
  fail_if (folder_holds (OTHER_KEY));
}

GST_END_TEST;

/* The other process: it takes the entry's lock when the task completes,
 * before the element records that (from the streaming thread) */
typedef struct
{
  GMutex lock;
  GCond cond;
  GrokImagineJournal *holder;
  gboolean taken, stopped;
  GstElement *pipeline;
  GString *warnings;            /* the bus is flushed at NULL: seen here */
} Holder;

static GstBusSyncReply
take_lock_at_completion (GstBus * bus, GstMessage * msg, gpointer data)
{
  Holder *h = data;
  const GstStructure *s = gst_message_get_structure (msg);
  g_auto (GStrv) keys = NULL;

  if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_WARNING) {
    g_autoptr (GError) err = NULL;

    gst_message_parse_warning (msg, &err, NULL);
    g_mutex_lock (&h->lock);
    g_string_append_printf (h->warnings, "%s\n", err->message);
    g_mutex_unlock (&h->lock);
    return GST_BUS_PASS;
  }
  if (GST_MESSAGE_TYPE (msg) != GST_MESSAGE_ELEMENT
      || !gst_structure_has_name (s, "grokimagine-task")
      || g_strcmp0 (gst_structure_get_string (s, "status"), "completed"))
    return GST_BUS_PASS;
  g_mutex_lock (&h->lock);
  keys = grok_imagine_dir_list_keys (cache_dir, NULL);
  if (!h->taken && keys && keys[0] && !keys[1]) {
    h->holder = grok_imagine_journal_open (cache_dir, keys[0], NULL);
    h->taken = h->holder && grok_imagine_journal_lock (h->holder,
        g_get_monotonic_time () + G_TIME_SPAN_SECOND, NULL, NULL);
  }
  g_cond_broadcast (&h->cond);
  g_mutex_unlock (&h->lock);
  return GST_BUS_PASS;
}

static gpointer
stop_main (gpointer data)
{
  Holder *h = data;

  gst_element_set_state (h->pipeline, GST_STATE_NULL);
  g_mutex_lock (&h->lock);
  h->stopped = TRUE;
  g_cond_broadcast (&h->cond);
  g_mutex_unlock (&h->lock);
  return NULL;
}

/* Waits at most @seconds for @flag */
static gboolean
holder_wait (Holder * h, gboolean * flag, gint seconds)
{
  return wait_for_flag (&h->lock, &h->cond, flag, seconds);
}

/* set_state(NULL) while another process holds the entry's lock (as for a
 * slow POST of its own) does not wait for it; the element warns what the
 * journal lacks, and the next run asks the API again instead of paying */
GST_START_TEST (test_stop_while_entry_locked_elsewhere)
{
  g_autofree gchar *props = g_strdup_printf ("cache-dir=%s "
      "prompt=\"stopped at a held lock\"", cache_dir);
  g_autofree gchar *desc = src_desc (props);
  g_autofree gchar *full = g_strdup_printf ("%s ! fakesink", desc);
  g_autofree gchar *warnings = NULL;
  g_autoptr (GstBus) bus = NULL;
  g_autoptr (Run) again = NULL;
  Holder h = { 0, };
  GThread *stopper = NULL;
  gboolean stopped;

  g_mutex_init (&h.lock);
  g_cond_init (&h.cond);
  h.warnings = g_string_new (NULL);
  h.pipeline = launch (full);
  bus = gst_element_get_bus (h.pipeline);
  gst_bus_set_sync_handler (bus, take_lock_at_completion, &h, NULL);
  gst_element_set_state (h.pipeline, GST_STATE_PLAYING);
  if (holder_wait (&h, &h.taken, 30))
    stopper = g_thread_new ("stop", stop_main, &h);
  /* far below the journal's lock wait, far above a stop's own time */
  stopped = stopper && holder_wait (&h, &h.stopped, 5);
  if (h.holder)
    grok_imagine_journal_unlock (h.holder);
  if (stopper)
    g_thread_join (stopper);
  gst_element_set_state (h.pipeline, GST_STATE_NULL);
  gst_bus_set_sync_handler (bus, NULL, NULL, NULL);
  gst_object_unref (h.pipeline);
  g_clear_pointer (&h.holder, grok_imagine_journal_free);
  g_mutex_clear (&h.lock);
  g_cond_clear (&h.cond);
  warnings = g_string_free (h.warnings, FALSE);
  fail_unless (h.taken, "the task did not complete");
  fail_unless (stopped, "set_state(NULL) waited for the other's lock");
  fail_unless (strstr (warnings, "Stopped before the end of task"), "%s",
      warnings);

  again = run_src (props, "fakesink");
  assert_ok (again);
  fail_unless_equals_int (sim_stat (sim, "accepted_submits"), 1);
}

GST_END_TEST;

static Suite *
account_suite (void)
{
  Suite *s = suite_create ("grokimagine-account");
  TCase *tc = tcase_create ("general");

  suite_add_tcase (s, tc);
  tcase_set_timeout (tc, 120);
  tcase_add_unchecked_fixture (tc, start_two_key_simulator, stop_simulator);
  tcase_add_checked_fixture (tc, fresh_cache, remove_cache);
  tcase_add_test (tc, test_two_keys_one_cache_dir);
  tcase_add_test (tc, test_stop_while_entry_locked_elsewhere);
  return s;
}

GST_CHECK_MAIN (account);
