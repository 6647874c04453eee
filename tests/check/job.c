/* The job module without a pipeline: every pay-once rule, counted in the
 * tasks the simulator created. */
#include "common.h"

#include <string.h>
#include <unistd.h>

#include "grokimagine-job.h"
#include "grokimagine-journal.h"

static gchar *cache_dir;
static GrokImagineHttp http;
static GrokImagineClient *client;

/* What a job reported */
typedef struct
{
  GPtrArray *events;            /* gchar *: "<event> <task or text>" */
} Events;

static Events events;

static void
fresh (void)
{
  setup ();
  g_free (cache_dir);
  cache_dir = g_dir_make_tmp ("grokimagine-job-XXXXXX", NULL);
  fail_unless (cache_dir != NULL);
  g_clear_pointer (&events.events, g_ptr_array_unref);
  events.events = g_ptr_array_new_with_free_func (g_free);
  g_clear_pointer (&client, grok_imagine_client_free);
  g_clear_object (&http.session);
  http.session = soup_session_new_with_options ("timeout", 5, NULL);
  http.ssl_strict = TRUE;
  http.retries = 2;
  client = grok_imagine_client_new (&http, GROK_IMAGINE_API_V1,
      sim_api_url (sim), SIM_KEY, NULL);
  fail_unless (client != NULL);
}

static void
job_teardown (void)
{
  teardown ();
  g_clear_pointer (&client, grok_imagine_client_free);
  g_clear_object (&http.session);
}

G_LOCK_DEFINE_STATIC (events);

static void
on_event (GrokImagineJobEvent event, const gchar * task_id,
    const GrokImagineStatus * st, const gchar * text, gpointer user_data)
{
  static const gchar *names[] = { "submitting", "submitted", "reattached",
    "resubmitting", "status", "cached", "warning"
  };

  G_LOCK (events);
  g_ptr_array_add (events.events, g_strdup_printf ("%s %s", names[event],
          text ? text : task_id ? task_id : ""));
  G_UNLOCK (events);
}

static gboolean
seen (const gchar * prefix)
{
  gboolean found = FALSE;
  guint i;

  G_LOCK (events);
  for (i = 0; i < events.events->len; i++)
    found |= g_str_has_prefix (g_ptr_array_index (events.events, i), prefix);
  G_UNLOCK (events);
  return found;
}

typedef struct
{
  GrokImagineRequest req;
  GrokImagineJobSettings s;
} Spec;

static void
spec_init (Spec * spec, const gchar * prompt)
{
  memset (spec, 0, sizeof (*spec));
  spec->req.api = GROK_IMAGINE_API_V1;
  spec->req.prompt = g_strdup (prompt);
  spec->req.mode = g_strdup ("fun");
  spec->req.ratio = g_strdup ("1:1");
  spec->s.req = &spec->req;
  spec->s.poll_interval = 50;
  spec->s.timeout = 60;
  spec->s.share = TRUE;
  spec->s.cache_dir = cache_dir;
}

static GrokImagineJob *
job_new (Spec * spec)
{
  g_autoptr (GError) err = NULL;
  GrokImagineJob *job = grok_imagine_job_new (client, &spec->s, on_event,
      NULL, &err);

  fail_unless (job != NULL, "%s", err ? err->message : "");
  return job;
}

/* Runs a new job of @spec to its end; returns the error, if any */
static GError *
run_once (Spec * spec, gchar ** task_id)
{
  g_autoptr (GrokImagineJob) job = job_new (spec);
  g_autoptr (GCancellable) c = g_cancellable_new ();
  g_autofree gchar *stored = NULL;
  GError *err = NULL;
  guint64 size;

  if (grok_imagine_job_run (job, c, NULL, &err)) {
    stored = grok_imagine_job_get_stored_result (job, &size);
    fail_unless (grok_imagine_job_get_result_url (job) != NULL || stored);
  }
  if (task_id)
    *task_id = g_strdup (grok_imagine_job_get_task_id (job));
  return err;
}

static void
run_ok (Spec * spec, gchar ** task_id)
{
  g_autoptr (GError) err = run_once (spec, task_id);

  fail_unless (err == NULL, "%s", err ? err->message : "");
}

static void
assert_message (const GError * err, const gchar * needle)
{
  fail_unless (err != NULL, "expected an error with '%s'", needle);
  fail_unless (strstr (err->message, needle) != NULL, "'%s' lacks '%s'",
      err->message, needle);
}

/* The key of @spec's entry: its request and account */
static gchar *
entry_key (Spec * spec)
{
  g_autofree gchar *json = grok_imagine_request_to_json (&spec->req);
  g_autofree gchar *account = grok_imagine_journal_account (spec->s.api_key,
      grok_imagine_client_get_base_url (client));

  return grok_imagine_journal_key (grok_imagine_api_get_nick (spec->req.api),
      grok_imagine_client_get_base_url (client), json, account);
}

static GrokImagineEntry *
read_entry (Spec * spec)
{
  g_autofree gchar *key = entry_key (spec);
  g_autoptr (GrokImagineJournal) j = grok_imagine_journal_open (cache_dir,
      key, NULL);

  return grok_imagine_journal_read (j, NULL);
}

/* A job running in a thread, to be cancelled or stopped from the test */
typedef struct
{
  GrokImagineJob *job;
  GCancellable *cancellable;
  GThread *thread;
  GError *error;
  gboolean ok;
} Running;

static gpointer
running_main (gpointer data)
{
  Running *r = data;

  r->ok = grok_imagine_job_run (r->job, r->cancellable, NULL, &r->error);
  return NULL;
}

static Running *
running_start (Spec * spec)
{
  Running *r = g_new0 (Running, 1);

  r->job = job_new (spec);
  r->cancellable = g_cancellable_new ();
  r->thread = g_thread_new ("job", running_main, r);
  return r;
}

static void
running_join (Running * r)
{
  g_thread_join (r->thread);
  r->thread = NULL;
}

static void
running_free (Running * r)
{
  if (r->thread) {
    g_cancellable_cancel (r->cancellable);
    grok_imagine_job_stop (r->job, 0);
    running_join (r);
  }
  grok_imagine_job_free (r->job);
  g_object_unref (r->cancellable);
  g_clear_error (&r->error);
  g_free (r);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (Running, running_free);

static void
spec_clear (Spec * spec)
{
  grok_imagine_request_clear (&spec->req);
}

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (Spec, spec_clear);

/* --- rule 1: the paid POST is never abandoned once it has left ------------ */

GST_START_TEST (test_cancel_during_post_awaits_answer)
{
  g_auto (Spec) spec;
  g_autoptr (Running) r = NULL;
  g_autoptr (GError) err = NULL;

  spec_init (&spec, "cancelled during the POST");
  spec.s.cache_dir = NULL;
  fail_unless (sim_set_faults (sim, "{\"generate_delay_ms\": 800}"));
  r = running_start (&spec);
  fail_unless (sim_stat_reaches ("generate_requests", 1));
  /* a seek: unlock() cancels while the POST waits for its answer */
  g_cancellable_cancel (r->cancellable);
  running_join (r);
  fail_if (r->ok);
  fail_unless (g_error_matches (r->error, G_IO_ERROR, G_IO_ERROR_CANCELLED));
  /* ...but the answer was awaited and its task kept */
  fail_unless (grok_imagine_job_get_task_id (r->job) != NULL);
  fail_unless (seen ("submitted task_"));

  /* the seek goes on: the same job polls, no second POST */
  g_cancellable_reset (r->cancellable);
  fail_unless (grok_imagine_job_run (r->job, r->cancellable, NULL, &err),
      "%s", err ? err->message : "");
  fail_unless_equals_int (sim_stat (sim, "generate_requests"), 1);
  fail_unless_equals_int (sim_stat (sim, "accepted_submits"), 1);
}

GST_END_TEST;

/* A POST that has not left (waiting for a rate-limit window) is cancelled
 * at once */
GST_START_TEST (test_cancel_before_post_left)
{
  g_auto (Spec) spec;
  g_autoptr (Running) r = NULL;
  g_autofree gchar *url = g_strdup_printf ("%s/v1/status?task_id=none",
      sim_api_url (sim));
  g_autoptr (SoupMessage) msg = soup_message_new ("GET", url);
  g_autoptr (GBytes) body = NULL;

  spec_init (&spec, "rate limited");
  spec.s.cache_dir = NULL;
  /* a deadline beyond the window, so that only the cancel ends the wait */
  spec.s.timeout = 600;
  fail_unless (sim_set_faults (sim, "{\"rate_limit\": 1, "
          "\"rate_window_ms\": 20000}"));
  /* the one request of the key's window */
  soup_message_headers_replace (soup_message_get_request_headers (msg),
      "Authorization", "Bearer " SIM_KEY);
  body = soup_session_send_and_read (http.session, msg, NULL, NULL);
  r = running_start (&spec);
  /* refused with 429: the client waits some 20 s for the window */
  fail_unless (sim_stat_reaches ("rate_limited", 1));
  g_cancellable_cancel (r->cancellable);
  running_join (r);
  fail_unless (g_error_matches (r->error, G_IO_ERROR, G_IO_ERROR_CANCELLED),
      "%s", r->error ? r->error->message : "no error");
  fail_unless_equals_int (sim_stat (sim, "accepted_submits"), 0);
  fail_unless (grok_imagine_job_get_task_id (r->job) == NULL);
}

GST_END_TEST;

/* A stop waits for the answer, and the task is recorded */
GST_START_TEST (test_stop_awaits_answer)
{
  g_auto (Spec) spec;
  g_autoptr (Running) r = NULL;
  g_autoptr (GrokImagineEntry) e = NULL;
  g_autofree gchar *task_id = NULL;

  spec_init (&spec, "stopped during the POST");
  fail_unless (sim_set_faults (sim, "{\"generate_delay_ms\": 800}"));
  r = running_start (&spec);
  fail_unless (sim_stat_reaches ("generate_requests", 1));
  task_id = grok_imagine_job_stop (r->job, 10 * G_TIME_SPAN_SECOND);
  fail_unless (task_id != NULL);
  g_cancellable_cancel (r->cancellable);
  running_join (r);
  e = read_entry (&spec);
  fail_unless (e != NULL);
  fail_unless_equals_int (e->state, GROK_IMAGINE_ENTRY_SUBMITTED);
  fail_unless_equals_string (e->task_id, task_id);
  fail_unless_equals_int (sim_stat (sim, "accepted_submits"), 1);
}

GST_END_TEST;

/* ...at most as long as it is told; the request is then in doubt */
GST_START_TEST (test_stop_gives_up_in_doubt)
{
  g_auto (Spec) spec;
  g_autoptr (Running) r = NULL;
  g_autoptr (GrokImagineEntry) e = NULL;
  g_autoptr (GError) err = NULL;

  spec_init (&spec, "stopped, answer too late");
  fail_unless (sim_set_faults (sim, "{\"generate_delay_ms\": 4000}"));
  r = running_start (&spec);
  fail_unless (sim_stat_reaches ("generate_requests", 1));
  fail_unless (grok_imagine_job_stop (r->job, 100 * G_TIME_SPAN_MILLISECOND)
      == NULL);
  running_join (r);
  assert_message (r->error, "credits charged");
  e = read_entry (&spec);
  fail_unless (e != NULL);
  fail_unless_equals_int (e->state, GROK_IMAGINE_ENTRY_IN_DOUBT);

  /* and a re-run does not pay again */
  fail_unless (sim_reset (sim));
  err = run_once (&spec, NULL);
  assert_message (err, "refresh=true");
  fail_unless_equals_int (sim_stat (sim, "generate_requests"), 0);
}

GST_END_TEST;

/* --- rule 2: in doubt means no automatic second POST ------------------------ */

GST_START_TEST (test_submitting_marked_before_post)
{
  g_auto (Spec) spec;
  g_autoptr (Running) r = NULL;
  g_autoptr (GrokImagineEntry) e = NULL;

  spec_init (&spec, "marked");
  fail_unless (sim_set_faults (sim, "{\"generate_delay_ms\": 600}"));
  r = running_start (&spec);
  fail_unless (sim_stat_reaches ("generate_requests", 1));
  /* what a kill now would leave behind */
  e = read_entry (&spec);
  fail_unless (e != NULL);
  fail_unless_equals_int (e->state, GROK_IMAGINE_ENTRY_SUBMITTING);
  fail_unless (e->submitted_at > 0);
  running_join (r);
  fail_unless (r->ok);
}

GST_END_TEST;

static void
check_in_doubt (const gchar * faults, gboolean share)
{
  g_auto (Spec) spec;
  g_autoptr (GError) lost = NULL, again = NULL, refreshed = NULL;
  g_autoptr (GrokImagineEntry) e = NULL;

  fresh ();
  spec_init (&spec, faults);
  spec.s.share = share;
  spec.s.owner = 1;
  fail_unless (sim_set_faults (sim, faults));
  lost = run_once (&spec, NULL);
  assert_message (lost, "credits charged");
  assert_message (lost, "task-id=");
  e = read_entry (&spec);
  fail_unless (e != NULL);
  fail_unless_equals_int (e->state, GROK_IMAGINE_ENTRY_IN_DOUBT);

  /* another element, later: no POST, an error saying how to go on */
  fail_unless (sim_reset (sim));
  spec.s.owner = 2;
  again = run_once (&spec, NULL);
  assert_message (again, "was submitted at");
  assert_message (again, "credits charged");
  assert_message (again, "task-id=");
  assert_message (again, "refresh=true");
  fail_unless_equals_int (sim_stat (sim, "generate_requests"), 0);

  /* refresh=true pays for a new one */
  spec.s.refresh = TRUE;
  refreshed = run_once (&spec, NULL);
  fail_unless (refreshed == NULL, "%s", refreshed ? refreshed->message : "");
  fail_unless_equals_int (sim_stat (sim, "accepted_submits"), 1);
}

GST_START_TEST (test_lost_answer_in_doubt)
{
  /* the connection drops after the task was made */
  check_in_doubt ("{\"generate_drop\": true}", TRUE);
  check_in_doubt ("{\"generate_drop\": true}", FALSE);
  /* an answer that cannot be read, a 5xx */
  check_in_doubt ("{\"malformed_json\": \"generate\"}", FALSE);
  check_in_doubt ("{\"generate_status\": 502}", FALSE);
  /* rule 8: a refused redirect after the POST */
  check_in_doubt ("{\"api_redirect\": \"generate\"}", FALSE);
}

GST_END_TEST;

/* Killed during the POST: the trace stays "submitting"; no second POST */
GST_START_TEST (test_killed_during_post)
{
  g_auto (Spec) spec;
  g_autoptr (GError) err = NULL;
  g_autofree gchar *key = NULL;
  g_autoptr (GrokImagineJournal) j = NULL;
  GrokImagineEntry trace = { GROK_IMAGINE_ENTRY_SUBMITTING, NULL,
    G_GINT64_CONSTANT (1764620000) * G_USEC_PER_SEC, NULL, NULL, NULL
  };

  spec_init (&spec, "killed");
  key = entry_key (&spec);
  j = grok_imagine_journal_open (cache_dir, key, NULL);
  fail_unless (grok_imagine_journal_write (j, &trace, NULL));

  err = run_once (&spec, NULL);
  assert_message (err, "2025-12-01 20:13:20 UTC");
  assert_message (err, "refresh=true");
  fail_unless_equals_int (sim_stat (sim, "generate_requests"), 0);
}

GST_END_TEST;

/* --- rule 3: one entry per task, every result of it --------------------- */

GST_START_TEST (test_result_indexes_share_one_task)
{
  g_auto (Spec) spec;
  g_autoptr (GrokImagineJob) job = NULL, other = NULL, again = NULL;
  g_autoptr (GCancellable) c = g_cancellable_new ();
  g_autoptr (GOutputStream) out = NULL;
  g_autoptr (GError) err = NULL;
  g_autofree gchar *tmp = NULL, *stored = NULL;
  g_autofree gchar *url0 = NULL;
  guint64 size = 0;

  spec_init (&spec, "two results");
  spec.s.share = FALSE;
  job = job_new (&spec);
  fail_unless (grok_imagine_job_run (job, c, NULL, NULL));
  url0 = g_strdup (grok_imagine_job_get_result_url (job));
  /* result 0 is stored */
  out = grok_imagine_job_create_result (job, &tmp, NULL);
  fail_unless (g_output_stream_write_all (out, "data", 4, NULL, NULL, NULL));
  fail_unless (g_output_stream_close (out, NULL, NULL));
  fail_unless (grok_imagine_job_commit_result (job, tmp, &size, NULL));
  fail_unless_equals_int (size, 4);
  g_clear_pointer (&job, grok_imagine_job_free);

  /* result 1 of the same task: no POST, its own URL */
  spec.s.result_index = 1;
  other = job_new (&spec);
  fail_unless (grok_imagine_job_run (other, c, NULL, NULL));
  fail_unless (grok_imagine_job_get_stored_result (other, &size) == NULL);
  fail_if (g_str_equal (grok_imagine_job_get_result_url (other), url0));
  fail_unless_equals_int (sim_stat (sim, "accepted_submits"), 1);

  /* result 0 again: served from its file, without any request */
  fail_unless (sim_reset (sim));
  spec.s.result_index = 0;
  again = job_new (&spec);
  fail_unless (grok_imagine_job_run (again, c, NULL, NULL));
  stored = grok_imagine_job_get_stored_result (again, &size);
  fail_unless (stored != NULL);
  fail_unless_equals_int (size, 4);
  fail_unless_equals_int (sim_stat (sim, "api_requests"), 0);
  fail_unless (seen ("cached "));

  /* an index the task does not have never costs a job */
  spec.s.result_index = 2;
  err = run_once (&spec, NULL);
  fail_unless (g_error_matches (err, GROK_IMAGINE_ERROR,
          GROK_IMAGINE_ERROR_SETTINGS));
  assert_message (err, "result-index is 2");
  fail_unless_equals_int (sim_stat (sim, "api_requests"), 0);
}

GST_END_TEST;

/* --- rule 4: one process remembers its tasks ------------------------------ */

GST_START_TEST (test_table_reattaches)
{
  g_auto (Spec) spec;
  g_autofree gchar *t1 = NULL, *t2 = NULL, *t3 = NULL, *t4 = NULL;

  spec_init (&spec, "remembered");
  spec.s.cache_dir = NULL;
  run_ok (&spec, &t1);
  run_ok (&spec, &t2);
  fail_unless_equals_string (t1, t2);
  fail_unless (seen ("reattached this process"));
  fail_unless_equals_int (sim_stat (sim, "accepted_submits"), 1);

  /* refresh is the way to another take, which the table then holds */
  spec.s.refresh = TRUE;
  run_ok (&spec, &t3);
  fail_if (g_str_equal (t1, t3));
  spec.s.refresh = FALSE;
  run_ok (&spec, &t4);
  fail_unless_equals_string (t3, t4);
  fail_unless_equals_int (sim_stat (sim, "accepted_submits"), 2);
}

GST_END_TEST;

/* The tasks of another account are never followed */
GST_START_TEST (test_table_per_account)
{
  g_auto (Spec) spec;
  g_autofree gchar *t1 = NULL, *t2 = NULL;

  spec_init (&spec, "two accounts");
  spec.s.cache_dir = NULL;
  spec.s.api_key = "key-one";
  run_ok (&spec, &t1);
  spec.s.api_key = "key-two";
  run_ok (&spec, &t2);
  fail_if (g_str_equal (t1, t2));
  fail_unless_equals_int (sim_stat (sim, "accepted_submits"), 2);
}

GST_END_TEST;

/* Without sharing, only an element's own tasks are followed */
GST_START_TEST (test_table_per_owner)
{
  g_auto (Spec) spec;
  g_autofree gchar *t1 = NULL, *t2 = NULL, *t3 = NULL;

  spec_init (&spec, "not shared");
  spec.s.cache_dir = NULL;
  spec.s.share = FALSE;
  spec.s.owner = 1;
  run_ok (&spec, &t1);
  run_ok (&spec, &t2);
  fail_unless_equals_string (t1, t2);
  spec.s.owner = 2;
  run_ok (&spec, &t3);
  fail_if (g_str_equal (t1, t3));
  fail_unless_equals_int (sim_stat (sim, "accepted_submits"), 2);
}

GST_END_TEST;

/* Two jobs of one request at once share one POST */
GST_START_TEST (test_table_shares_one_post)
{
  g_auto (Spec) spec;
  g_autoptr (Running) a = NULL, b = NULL;

  spec_init (&spec, "at once");
  spec.s.cache_dir = NULL;
  fail_unless (sim_set_faults (sim, "{\"generate_delay_ms\": 500}"));
  a = running_start (&spec);
  b = running_start (&spec);
  running_join (a);
  running_join (b);
  fail_unless (a->ok && b->ok);
  fail_unless_equals_string (grok_imagine_job_get_task_id (a->job),
      grok_imagine_job_get_task_id (b->job));
  fail_unless_equals_int (sim_stat (sim, "generate_requests"), 1);
}

GST_END_TEST;

/* --- rule 5: a failed task is not a result -------------------------------- */

GST_START_TEST (test_failed_task_submitted_anew)
{
  g_auto (Spec) spec;
  g_autoptr (GError) err = NULL;
  g_autoptr (GrokImagineEntry) e = NULL;
  g_autofree gchar *t1 = NULL, *t2 = NULL;

  spec_init (&spec, "fails once");
  fail_unless (sim_set_faults (sim, "{\"fail_tasks\": \"Network error, "
          "please try again later.\"}"));
  err = run_once (&spec, &t1);
  fail_unless (g_error_matches (err, GROK_IMAGINE_ERROR,
          GROK_IMAGINE_ERROR_TASK_FAILED));
  e = read_entry (&spec);
  fail_unless_equals_int (e->state, GROK_IMAGINE_ENTRY_FAILED);
  fail_unless_equals_string (e->error_message,
      "Network error, please try again later.");

  fail_unless (sim_reset (sim));
  run_ok (&spec, &t2);
  fail_if (g_str_equal (t1, t2));
  fail_unless (seen ("resubmitting The earlier task"));
  fail_unless_equals_int (sim_stat (sim, "accepted_submits"), 1);
}

GST_END_TEST;

/* --- rule 6: damage is an error, not a payment ---------------------------- */

GST_START_TEST (test_damaged_entry_is_an_error)
{
  const gchar *bad[] = {
    "{\"version\": 2, \"sta",
    "{\"version\": 7, \"state\": \"submitted\", \"task_id\": \"t\"}",
    "{\"version\": 2, \"state\": \"done\", \"task_id\": \"t\"}",
    "[]",
  };
  g_auto (Spec) spec;
  guint i;

  spec_init (&spec, "damaged");
  run_ok (&spec, NULL);
  for (i = 0; i < G_N_ELEMENTS (bad); i++) {
    g_autofree gchar *key = entry_key (&spec);
    g_autoptr (GrokImagineJournal) j = grok_imagine_journal_open (cache_dir,
        key, NULL);
    g_autoptr (GError) err = NULL;

    fail_unless (g_file_set_contents (grok_imagine_journal_get_entry_path (j),
            bad[i], -1, NULL));
    spec.s.share = FALSE;
    spec.s.owner = 100 + i;
    err = run_once (&spec, NULL);
    assert_message (err, grok_imagine_journal_get_entry_path (j));
    assert_message (err, "refresh=true");
  }
  fail_unless_equals_int (sim_stat (sim, "accepted_submits"), 1);
}

GST_END_TEST;

GST_START_TEST (test_empty_result_never_stored)
{
  g_auto (Spec) spec;
  g_autoptr (GrokImagineJob) job = NULL;
  g_autoptr (GOutputStream) out = NULL;
  g_autoptr (GError) err = NULL;
  g_autoptr (GCancellable) c = g_cancellable_new ();
  g_autofree gchar *tmp = NULL;
  guint64 size = 0;

  spec_init (&spec, "empty");
  job = job_new (&spec);
  fail_unless (grok_imagine_job_run (job, c, NULL, NULL));
  out = grok_imagine_job_create_result (job, &tmp, NULL);
  fail_unless (g_output_stream_close (out, NULL, NULL));
  fail_if (grok_imagine_job_commit_result (job, tmp, &size, &err));
  fail_unless (g_error_matches (err, GROK_IMAGINE_ERROR,
          GROK_IMAGINE_ERROR_PROTOCOL));
  fail_if (g_file_test (tmp, G_FILE_TEST_EXISTS));
  fail_unless (grok_imagine_job_get_stored_result (job, &size) == NULL);
}

GST_END_TEST;

static guint
count_temporaries (void)
{
  g_autoptr (GDir) dir = g_dir_open (cache_dir, 0, NULL);
  const gchar *name;
  guint n = 0;

  while ((name = g_dir_read_name (dir)))
    n += strstr (name, ".tmp-") != NULL;
  return n;
}

GST_START_TEST (test_one_temporary_file)
{
  g_auto (Spec) spec;
  g_autoptr (GrokImagineJob) job = NULL;
  g_autoptr (GOutputStream) out = NULL;
  g_autoptr (GSubprocess) dead = NULL;
  g_autoptr (GCancellable) c = g_cancellable_new ();
  g_autofree gchar *tmp = NULL, *stale = NULL, *mine = NULL, *pid = NULL;

  spec_init (&spec, "temporaries");
  job = job_new (&spec);
  fail_unless (grok_imagine_job_run (job, c, NULL, NULL));
  out = grok_imagine_job_create_result (job, &tmp, NULL);
  /* a download under way is one temporary file */
  fail_unless_equals_int (count_temporaries (), 1);
  fail_unless (g_output_stream_close (out, NULL, NULL));
  g_unlink (tmp);

  /* what a killed process left: removed when the folder is opened; a
   * living process's file stays */
  dead = g_subprocess_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE, NULL, "sh", "-c",
      "echo $$", NULL);
  fail_unless (dead && g_subprocess_communicate_utf8 (dead, NULL, NULL,
          &pid, NULL, NULL));
  g_strstrip (pid);
  stale = g_strdup_printf ("%s/x.0.result.tmp-%s-AbC123", cache_dir, pid);
  mine = g_strdup_printf ("%s/y.json.tmp-%d-AbC123", cache_dir,
      (int) getpid ());
  fail_unless (g_file_set_contents (stale, "x", -1, NULL));
  fail_unless (g_file_set_contents (mine, "x", -1, NULL));
  grok_imagine_job_free (g_steal_pointer (&job));
  job = job_new (&spec);
  fail_if (g_file_test (stale, G_FILE_TEST_EXISTS));
  fail_unless (g_file_test (mine, G_FILE_TEST_EXISTS));
  g_unlink (mine);
}

GST_END_TEST;

/* --- accounts: entries of earlier versions, stops at a held lock --------- */

/* The key that versions before accounts were told apart gave @spec's
 * entry */
static GrokImagineJournal *
open_legacy (Spec * spec)
{
  g_autofree gchar *json = grok_imagine_request_to_json (&spec->req);
  g_autofree gchar *key = grok_imagine_journal_key (grok_imagine_api_get_nick
      (spec->req.api), grok_imagine_client_get_base_url (client), json, NULL);

  return grok_imagine_journal_open (cache_dir, key, NULL);
}

/* A run of @spec over the entry of an earlier version @old: an error with
 * @needle, no POST, and the old entry stays */
static GError *
run_over_old (Spec * spec, GrokImagineJournal * old, const gchar * needle)
{
  GError *err = run_once (spec, NULL);

  assert_message (err, needle);
  fail_unless_equals_int (sim_stat (sim, "generate_requests"), 0);
  fail_unless (g_file_test (grok_imagine_journal_get_entry_path (old),
          G_FILE_TEST_EXISTS));
  return err;
}

/* An in-doubt entry of an earlier version is never submitted again, by
 * any account */
GST_START_TEST (test_old_in_doubt_entry_honoured)
{
  g_auto (Spec) spec;
  g_autoptr (GrokImagineJournal) old = NULL;
  GrokImagineEntry doubt = { GROK_IMAGINE_ENTRY_IN_DOUBT, NULL,
    G_GINT64_CONSTANT (1764620000) * G_USEC_PER_SEC, NULL, NULL, NULL
  };
  const gchar *keys[] = { NULL, "another account" };
  guint i;

  spec_init (&spec, "old in doubt");
  old = open_legacy (&spec);
  fail_unless (grok_imagine_journal_write (old, &doubt, NULL));
  for (i = 0; i < G_N_ELEMENTS (keys); i++) {
    g_autoptr (GError) err = NULL;

    spec.s.api_key = keys[i];
    err = run_over_old (&spec, old, "no answer arrived");
    assert_message (err, "refresh=true");
  }
}

GST_END_TEST;

/* The task of an entry of an earlier version is asked for with this key
 * before its stored result is served; then the entry and the result are
 * this account's, and the old entry is gone */
GST_START_TEST (test_old_entry_asked_then_adopted)
{
  g_auto (Spec) spec;
  g_autoptr (GrokImagineJournal) old = NULL;
  g_autoptr (GrokImagineEntry) mine = NULL;
  g_autoptr (GrokImagineJob) job = NULL;
  g_autoptr (GCancellable) c = g_cancellable_new ();
  g_autofree gchar *task_id = NULL, *stored = NULL, *path = NULL;
  g_autofree gchar *data = NULL, *tag = NULL;
  gchar *urls[] = { (gchar *) "https://cdn.example/a.mp4",
    (gchar *) "https://cdn.example/b.mp4", NULL
  };
  guint64 sizes[] = { 6, 0, 0 };
  GrokImagineEntry done = { GROK_IMAGINE_ENTRY_COMPLETED, NULL, 0, NULL,
    urls, sizes
  };
  guint64 size = 0;

  spec_init (&spec, "old and stored");
  task_id = sim_create_task (sim, "{\"api\": \"v1\", \"prompt\": \"old and "
      "stored\"}");
  fail_unless (task_id != NULL);
  done.task_id = task_id;
  done.credits = -1;
  old = open_legacy (&spec);
  fail_unless (grok_imagine_journal_write (old, &done, NULL));
  path = grok_imagine_journal_get_result_path (old, 0);
  fail_unless (g_file_set_contents (path, "stored", 6, NULL));

  job = job_new (&spec);
  fail_unless (grok_imagine_job_run (job, c, NULL, NULL));
  fail_unless (sim_stat (sim, "status_requests") >= 1, "served unasked");
  fail_unless_equals_int (sim_stat (sim, "generate_requests"), 0);
  stored = grok_imagine_job_get_stored_result (job, &size);
  fail_unless (stored != NULL);
  fail_unless_equals_int (size, 6);
  fail_unless (g_file_get_contents (stored, &data, NULL, NULL));
  fail_unless_equals_string (data, "stored");

  mine = read_entry (&spec);
  fail_unless (mine != NULL);
  fail_unless_equals_string (mine->task_id, task_id);
  fail_unless_equals_int (mine->state, GROK_IMAGINE_ENTRY_COMPLETED);
  fail_if (g_file_test (grok_imagine_journal_get_entry_path (old),
          G_FILE_TEST_EXISTS));
  fail_if (g_file_test (path, G_FILE_TEST_EXISTS));
  /* what grokimagine-journal list shows as this account's */
  tag = grok_imagine_journal_account_tag (spec.s.api_key,
      grok_imagine_client_get_base_url (client));
  fail_unless_equals_string (mine->account_tag, tag);
}

GST_END_TEST;

typedef struct
{
  GMutex lock;
  GCond cond;
  GrokImagineJob *job;
  GrokImagineJournal *holder;   /* the other process's hold on the entry */
  gboolean take;                /* at status take_at */
  GrokImagineState take_at;
  gboolean stop_at_take;
  gboolean taken, ended, ok;
  GPtrArray *warnings;
  const gchar *tmp;             /* a download to store, for commit_main */
  GError *error;
} Held;

static void
on_held_event (GrokImagineJobEvent event, const gchar * task_id,
    const GrokImagineStatus * st, const gchar * text, gpointer data)
{
  Held *h = data;

  g_mutex_lock (&h->lock);
  if (event == GROK_IMAGINE_JOB_WARNING)
    g_ptr_array_add (h->warnings, g_strdup (text));
  if (event == GROK_IMAGINE_JOB_STATUS && h->take && st->state == h->take_at
      && !h->taken) {
    /* the entry is free now: the job holds no lock while it polls */
    h->taken = grok_imagine_journal_lock (h->holder,
        g_get_monotonic_time () + G_TIME_SPAN_SECOND, NULL, NULL);
    if (h->stop_at_take)
      grok_imagine_job_stop (h->job, 0);
    g_cond_broadcast (&h->cond);
  }
  g_mutex_unlock (&h->lock);
}

static void
held_ended (Held * h, gboolean ok)
{
  g_mutex_lock (&h->lock);
  h->ok = ok;
  h->ended = TRUE;
  g_cond_broadcast (&h->cond);
  g_mutex_unlock (&h->lock);
}

static gpointer
held_main (gpointer data)
{
  Held *h = data;
  g_autoptr (GCancellable) c = g_cancellable_new ();

  held_ended (h, grok_imagine_job_run (h->job, c, NULL, NULL));
  return NULL;
}

static gpointer
commit_main (gpointer data)
{
  Held *h = data;
  guint64 size = 0;

  held_ended (h, grok_imagine_job_commit_result (h->job, h->tmp, &size,
          &h->error));
  return NULL;
}

/* Waits at most @seconds for @flag */
static gboolean
held_wait (Held * h, gboolean * flag, gint seconds)
{
  return wait_for_flag (&h->lock, &h->cond, flag, seconds);
}

static gboolean
held_warned (Held * h, const gchar * needle)
{
  guint i;

  for (i = 0; i < h->warnings->len; i++)
    if (strstr (g_ptr_array_index (h->warnings, i), needle))
      return TRUE;
  return FALSE;
}

/* A job of @spec, and another holder of its entry */
static void
held_init (Held * h, Spec * spec)
{
  g_autofree gchar *key = entry_key (spec);

  g_mutex_init (&h->lock);
  g_cond_init (&h->cond);
  h->warnings = g_ptr_array_new_with_free_func (g_free);
  h->holder = grok_imagine_journal_open (cache_dir, key, NULL);
  h->job = grok_imagine_job_new (client, &spec->s, on_held_event, h, NULL);
  fail_unless (h->job != NULL);
}

/* Runs a job of @spec in a thread; another holder takes the entry's lock
 * when the task reaches @take_at */
static GThread *
held_start (Held * h, Spec * spec, GrokImagineState take_at,
    gboolean stop_at_take)
{

  h->take = TRUE;
  h->take_at = take_at;
  h->stop_at_take = stop_at_take;
  held_init (h, spec);
  return g_thread_new ("held", held_main, h);
}

static void
held_clear (Held * h, GThread * thread)
{
  if (h->holder)
    grok_imagine_journal_unlock (h->holder);
  if (thread)
    g_thread_join (thread);
  g_clear_pointer (&h->job, grok_imagine_job_free);
  g_clear_pointer (&h->holder, grok_imagine_journal_free);
  g_ptr_array_unref (h->warnings);
  g_clear_error (&h->error);
  g_mutex_clear (&h->lock);
  g_cond_clear (&h->cond);
}

/* A stop while another process holds the entry's lock (as for a slow POST
 * of its own) ends the job's wait to record the task's end: no hang. What
 * was not recorded is said, and the next run asks the API again. */
GST_START_TEST (test_stop_while_entry_locked)
{
  g_auto (Spec) spec;
  g_autoptr (GrokImagineEntry) e = NULL;
  g_autofree gchar *task_id = NULL;
  Held h = { 0, };
  GThread *thread;
  gboolean ended;

  spec_init (&spec, "stopped at a held lock");
  thread = held_start (&h, &spec, GROK_IMAGINE_STATE_COMPLETED, FALSE);
  if (!held_wait (&h, &h.taken, 30)) {
    held_clear (&h, thread);
    fail ("the task did not complete, or the lock was not taken");
  }
  /* as set_state(NULL): the element stops the job, then unlocks */
  grok_imagine_job_stop (h.job, 0);
  /* far below the lock wait of a record, far above a stop's own time */
  ended = held_wait (&h, &h.ended, 5);
  if (!ended) {
    held_clear (&h, thread);
    fail ("the stop waited for the lock another process held");
  }
  g_thread_join (thread);
  task_id = g_strdup (grok_imagine_job_get_task_id (h.job));
  g_clear_pointer (&h.job, grok_imagine_job_free);
  fail_unless (held_warned (&h, "Stopped before the end of task"));
  fail_unless (held_warned (&h, "asks the API again"));
  held_clear (&h, NULL);

  /* nothing lost: the entry still shows the task, the next run asks */
  e = read_entry (&spec);
  fail_unless (e != NULL);
  fail_unless_equals_string (e->task_id, task_id);
  fail_unless_equals_int (e->state, GROK_IMAGINE_ENTRY_SUBMITTED);
  run_ok (&spec, NULL);
  fail_unless_equals_int (sim_stat (sim, "accepted_submits"), 1);
  g_clear_pointer (&e, grok_imagine_entry_free);
  e = read_entry (&spec);
  fail_unless_equals_int (e->state, GROK_IMAGINE_ENTRY_COMPLETED);
}

GST_END_TEST;

/* A refund that a stop kept from the ledger (its lock held elsewhere) is
 * not lost: the warning says what the ledger counts, the entry keeps the
 * price, and the next run gives it back */
GST_START_TEST (test_stop_keeps_refund)
{
  g_auto (Spec) spec;
  g_autoptr (GrokImagineEntry) e = NULL;
  Held h = { 0, };
  GThread *thread;
  gint64 total = -1;

  g_clear_pointer (&client, grok_imagine_client_free);
  client = grok_imagine_client_new (&http, GROK_IMAGINE_API_GROK5,
      sim_api_url (sim), SIM_KEY, NULL);
  fail_unless (sim_set_faults (sim, "{\"fail_tasks\": \"build failed\"}"));
  spec_init (&spec, "refund at a held lock");
  spec.req.api = GROK_IMAGINE_API_GROK5;
  spec.req.model = GROK_IMAGINE_MODEL_TEXT_TO_VIDEO;
  thread = held_start (&h, &spec, GROK_IMAGINE_STATE_PENDING, TRUE);
  if (!held_wait (&h, &h.ended, 30)) {
    held_clear (&h, thread);
    fail ("the job did not end");
  }
  g_thread_join (thread);
  fail_if (h.ok);
  g_clear_pointer (&h.job, grok_imagine_job_free);
  fail_unless (h.taken);
  fail_unless (held_warned (&h, "counts 24 credits for it, the API reported "
          "0"));
  held_clear (&h, NULL);
  fail_unless (grok_imagine_dir_read_ledger (cache_dir, &total, NULL));
  fail_unless_equals_int (total, 24);
  e = read_entry (&spec);
  fail_unless_equals_int (e->state, GROK_IMAGINE_ENTRY_SUBMITTED);
  fail_unless_equals_int (e->credits, 24);

  /* the next run asks, and the ledger gives the price back */
  {
    g_autoptr (GError) err = run_once (&spec, NULL);

    assert_message (err, "build failed");
  }
  fail_unless (grok_imagine_dir_read_ledger (cache_dir, &total, NULL));
  fail_unless_equals_int (total, 0);
  fail_unless_equals_int (sim_stat (sim, "accepted_submits"), 1);
}

GST_END_TEST;

/* The task of an entry of an earlier version that this key cannot see (it
 * may be another account's) is an error that says so, never a new POST */
GST_START_TEST (test_old_entry_of_unknown_task)
{
  g_auto (Spec) spec;
  g_autoptr (GrokImagineJournal) old = NULL;
  g_autoptr (GError) err = NULL;
  GrokImagineEntry pending = { GROK_IMAGINE_ENTRY_SUBMITTED,
    (gchar *) "task_of_someone_else", 0, NULL, NULL, NULL
  };

  spec_init (&spec, "old, unknown task");
  old = open_legacy (&spec);
  fail_unless (grok_imagine_journal_write (old, &pending, NULL));
  err = run_over_old (&spec, old, "earlier version");
  assert_message (err, "task_of_someone_else");
  assert_message (err, "grokimagine-journal forget");
}

GST_END_TEST;

/* A stop while another process holds the entry ends the wait to store a
 * whole download; the result is stored when the job ends, the lock being
 * free by then */
GST_START_TEST (test_stop_keeps_result_to_store)
{
  g_auto (Spec) spec;
  g_autoptr (GCancellable) c = g_cancellable_new ();
  g_autoptr (GOutputStream) out = NULL;
  g_autoptr (GrokImagineEntry) e = NULL;
  g_autofree gchar *tmp = NULL, *path = NULL, *data = NULL;
  Held h = { 0, };
  GThread *thread;

  spec_init (&spec, "stored as the job ends");
  held_init (&h, &spec);
  fail_unless (grok_imagine_job_run (h.job, c, NULL, NULL));
  out = grok_imagine_job_create_result (h.job, &tmp, NULL);
  fail_unless (g_output_stream_write_all (out, "data", 4, NULL, NULL, NULL));
  fail_unless (g_output_stream_close (out, NULL, NULL));
  fail_unless (grok_imagine_journal_lock (h.holder, g_get_monotonic_time () +
          G_TIME_SPAN_SECOND, NULL, NULL));
  h.tmp = tmp;
  thread = g_thread_new ("commit", commit_main, &h);
  grok_imagine_job_stop (h.job, 0);
  /* far below the lock wait of a commit, far above a stop's own time */
  if (!held_wait (&h, &h.ended, 5)) {
    held_clear (&h, thread);
    fail ("the stop waited for the lock another process held");
  }
  g_thread_join (thread);
  fail_if (h.ok);
  fail_unless (g_error_matches (h.error, G_IO_ERROR, G_IO_ERROR_CANCELLED));
  fail_unless (g_file_test (tmp, G_FILE_TEST_EXISTS));

  grok_imagine_journal_unlock (h.holder);
  g_clear_pointer (&h.job, grok_imagine_job_free);
  fail_unless (h.warnings->len == 0, "%s",
      h.warnings->len ? (gchar *) g_ptr_array_index (h.warnings, 0) : "");
  path = grok_imagine_journal_get_result_path (h.holder, 0);
  held_clear (&h, NULL);
  fail_if (g_file_test (tmp, G_FILE_TEST_EXISTS));
  fail_unless (g_file_get_contents (path, &data, NULL, NULL));
  fail_unless_equals_string (data, "data");
  e = read_entry (&spec);
  fail_unless_equals_int (e->sizes[0], 4);
}

GST_END_TEST;

static Suite *
job_suite (void)
{
  Suite *s = suite_create ("grokimagine-job");
  TCase *tc = tcase_create ("general");

  suite_add_tcase (s, tc);
  tcase_set_timeout (tc, 120);
  tcase_add_unchecked_fixture (tc, start_simulator, stop_simulator);
  tcase_add_checked_fixture (tc, fresh, job_teardown);
  tcase_add_test (tc, test_cancel_during_post_awaits_answer);
  tcase_add_test (tc, test_cancel_before_post_left);
  tcase_add_test (tc, test_stop_awaits_answer);
  tcase_add_test (tc, test_stop_gives_up_in_doubt);
  tcase_add_test (tc, test_submitting_marked_before_post);
  tcase_add_test (tc, test_lost_answer_in_doubt);
  tcase_add_test (tc, test_killed_during_post);
  tcase_add_test (tc, test_result_indexes_share_one_task);
  tcase_add_test (tc, test_table_reattaches);
  tcase_add_test (tc, test_table_per_owner);
  tcase_add_test (tc, test_table_per_account);
  tcase_add_test (tc, test_table_shares_one_post);
  tcase_add_test (tc, test_failed_task_submitted_anew);
  tcase_add_test (tc, test_damaged_entry_is_an_error);
  tcase_add_test (tc, test_empty_result_never_stored);
  tcase_add_test (tc, test_one_temporary_file);
  tcase_add_test (tc, test_old_in_doubt_entry_honoured);
  tcase_add_test (tc, test_old_entry_asked_then_adopted);
  tcase_add_test (tc, test_stop_while_entry_locked);
  tcase_add_test (tc, test_stop_keeps_refund);
  tcase_add_test (tc, test_old_entry_of_unknown_task);
  tcase_add_test (tc, test_stop_keeps_result_to_store);
  return s;
}

GST_CHECK_MAIN (job);
