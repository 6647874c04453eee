/* Holes found by a second hostile review of the pay-once and spend
 * promises: what a superseded task may still write, what a task given by id
 * teaches the task table, and which files of a shared cache folder are the
 * journal's to remove. */
#include "common.h"

#include <json-glib/json-glib.h>
#include <string.h>

#include "grokimagine-job.h"
#include "grokimagine-journal.h"

static gchar *cache_dir;
static GrokImagineHttp http;
static GrokImagineClient *client;
static GCancellable *cancelled;

static void
fresh (void)
{
  setup ();
  g_clear_object (&cancelled);
  cancelled = g_cancellable_new ();
  g_free (cache_dir);
  cache_dir = g_dir_make_tmp ("grokimagine-review2-XXXXXX", NULL);
  fail_unless (cache_dir != NULL);
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
cleanup (void)
{
  remove_folder (cache_dir);
  teardown ();
  g_clear_pointer (&client, grok_imagine_client_free);
  g_clear_object (&http.session);
}

static void
on_event (GrokImagineJobEvent event, const gchar * task_id,
    const GrokImagineStatus * st, const gchar * text, gpointer user_data)
{
}

typedef struct
{
  GrokImagineRequest req;
  GrokImagineJobSettings s;
} Spec;

/* Each test its own prompt: the task table lives as long as the process */
static void
spec_init (Spec * spec, const gchar * prompt, gboolean journal)
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
  spec->s.api_key = SIM_KEY;
  spec->s.cache_dir = journal ? cache_dir : NULL;
}

static void
spec_clear (Spec * spec)
{
  grok_imagine_request_clear (&spec->req);
}

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (Spec, spec_clear);

static GrokImagineJob *
job_new (Spec * spec)
{
  g_autoptr (GError) err = NULL;
  GrokImagineJob *job = grok_imagine_job_new (client, &spec->s, on_event,
      NULL, &err);

  fail_unless (job != NULL, "%s", err ? err->message : "");
  return job;
}

static void
job_run_ok (GrokImagineJob * job)
{
  g_autoptr (GCancellable) c = g_cancellable_new ();
  g_autoptr (GError) err = NULL;

  fail_unless (grok_imagine_job_run (job, c, NULL, &err), "%s",
      err ? err->message : "");
}

/* Runs a new job of @spec to its end; its task id */
static gchar *
run_ok (Spec * spec)
{
  g_autoptr (GrokImagineJob) job = job_new (spec);

  job_run_ok (job);
  return g_strdup (grok_imagine_job_get_task_id (job));
}

/* Stores @data as the job's result, as the element's download does */
static gboolean
store (GrokImagineJob * job, const gchar * data)
{
  g_autofree gchar *tmp = NULL;
  g_autoptr (GOutputStream) out = grok_imagine_job_create_result (job, &tmp,
      NULL);
  guint64 size;

  fail_unless (out != NULL);
  fail_unless (g_output_stream_write_all (out, data, strlen (data), NULL,
          NULL, NULL));
  fail_unless (g_output_stream_close (out, NULL, NULL));
  return grok_imagine_job_commit_result (job, tmp, &size, NULL);
}

/* An older take still downloading when refresh=true stored a new one: its
 * bytes must not replace the new task's result, or every later run serves
 * the old video as the new task, with no error */
GST_START_TEST (test_superseded_result_not_stored)
{
  g_auto (Spec) spec;
  g_autoptr (GrokImagineJob) old = NULL, fresh_take = NULL, again = NULL;
  g_autofree gchar *path = NULL, *data = NULL;
  guint64 size = 0;

  spec_init (&spec, "review2: superseded take", TRUE);
  old = job_new (&spec);
  job_run_ok (old);
  /* the old take's download is still under way when ... */
  spec.s.refresh = TRUE;
  fresh_take = job_new (&spec);
  job_run_ok (fresh_take);
  fail_if (g_strcmp0 (grok_imagine_job_get_task_id (old),
          grok_imagine_job_get_task_id (fresh_take)) == 0);
  fail_unless (store (fresh_take, "the new take"));
  /* ... it ends */
  fail_if (store (old, "the old take"));

  spec.s.refresh = FALSE;
  again = job_new (&spec);
  job_run_ok (again);
  fail_unless_equals_string (grok_imagine_job_get_task_id (again),
      grok_imagine_job_get_task_id (fresh_take));
  path = grok_imagine_job_get_stored_result (again, &size);
  fail_unless (path != NULL);
  fail_unless (g_file_get_contents (path, &data, NULL, NULL));
  fail_unless_equals_string (data, "the new take");
  fail_unless_equals_int (sim_stat (sim, "accepted_submits"), 2);
}

GST_END_TEST;

/* task-id=<id> on an element that also has a prompt: that task is not
 * known to belong to the prompt, so the table must not learn it as the
 * prompt's task; else the prompt alone, later in the process, serves
 * another prompt's video */
GST_START_TEST (test_given_task_not_learnt)
{
  g_auto (Spec) mine;
  g_auto (Spec) other;
  g_autofree gchar *mine_task = NULL, *other_task = NULL, *again = NULL;

  spec_init (&mine, "review2: a cat", FALSE);
  spec_init (&other, "review2: a dog", FALSE);
  mine_task = run_ok (&mine);
  other_task = run_ok (&other);

  mine.s.task_id = other_task;
  g_free (run_ok (&mine));
  mine.s.task_id = NULL;

  again = run_ok (&mine);
  fail_unless_equals_string (again, mine_task);
  fail_unless_equals_int (sim_stat (sim, "accepted_submits"), 2);
}

GST_END_TEST;

static gpointer
run_until_cancelled (gpointer job)
{
  return GINT_TO_POINTER (grok_imagine_job_run (job, cancelled, NULL, NULL));
}

/* refresh=true puts the new take in the table; an older take of the same
 * request that ends later must not put itself back */
GST_START_TEST (test_older_take_leaves_table)
{
  g_auto (Spec) spec;
  g_autoptr (GrokImagineJob) old = NULL;
  g_autofree gchar *new_task = NULL, *again = NULL;
  g_autoptr (GError) err = NULL;

  GThread *thread;

  spec_init (&spec, "review2: older take", FALSE);
  old = job_new (&spec);
  /* the old take is submitted, then stopped in its polls (a flush) */
  thread = g_thread_new ("old take", run_until_cancelled, old);
  if (!sim_stat_reaches ("status_requests", 1))
    g_cancellable_cancel (cancelled);
  g_cancellable_cancel (cancelled);
  fail_if (g_thread_join (thread));
  fail_unless (grok_imagine_job_get_task_id (old) != NULL);

  spec.s.refresh = TRUE;
  new_task = run_ok (&spec);
  spec.s.refresh = FALSE;

  /* the old take goes on to its end */
  g_cancellable_reset (cancelled);
  fail_unless (grok_imagine_job_run (old, cancelled, NULL, &err), "%s",
      err ? err->message : "");

  again = run_ok (&spec);
  fail_unless_equals_string (again, new_task);
  fail_unless_equals_int (sim_stat (sim, "accepted_submits"), 2);
}

GST_END_TEST;

/* A cache folder shared with other programs: their files that merely end
 * like the journal's (.lock, .result) are not the journal's to remove */
GST_START_TEST (test_foreign_files_kept)
{
  g_auto (Spec) spec;
  g_autoptr (GrokImagineJob) job = NULL, again = NULL;
  g_autofree gchar *lock = g_build_filename (cache_dir, "yarn.lock", NULL);
  g_autofree gchar *result = g_build_filename (cache_dir, "notes.result",
      NULL);

  fail_unless (g_file_set_contents (lock, "a lock file of another tool", -1,
          NULL));
  fail_unless (g_file_set_contents (result, "a person's notes", -1, NULL));
  spec_init (&spec, "review2: shared folder", TRUE);
  spec.s.cache_max_size = 1;
  job = job_new (&spec);
  job_run_ok (job);
  fail_unless (store (job, "a result larger than the folder may take"));
  again = job_new (&spec);
  fail_unless (g_file_test (lock, G_FILE_TEST_EXISTS));
  fail_unless (g_file_test (result, G_FILE_TEST_EXISTS));
  g_unlink (lock);
  g_unlink (result);
}

GST_END_TEST;

/* The ledger's total after a job */
static gint64
ledger (void)
{
  gint64 total = -1;

  fail_unless (grok_imagine_dir_read_ledger (cache_dir, &total, NULL));
  return total;
}

static void
set_ledger (const gchar * credits)
{
  g_autofree gchar *path = g_build_filename (cache_dir, "journal.ledger",
      NULL);
  g_autofree gchar *json = g_strdup_printf ("{\"version\": 1, "
      "\"credits\": %s}", credits);

  fail_unless (g_file_set_contents (path, json, -1, NULL));
}

/* A task's end reporting a figure no task costs: the ledger's correction
 * wrapped past G_MAXINT64 and was clamped to 0, so max-credits let every
 * later job through */
GST_START_TEST (test_absurd_reported_credits)
{
  g_auto (Spec) spec;
  g_auto (Spec) next;
  g_autoptr (GrokImagineJob) job = NULL;
  g_autoptr (GCancellable) c = g_cancellable_new ();
  g_autoptr (GError) err = NULL;
  g_autofree gchar *body = g_strdup_printf ("{\"code\": 200, \"message\": "
      "\"success\", \"data\": {\"task_id\": \"task_1\", \"status\": "
      "\"completed\", \"consumed_credits\": %" G_GINT64_FORMAT ", "
      "\"response\": [\"%s/x.mp4\"]}}", G_MAXINT64, sim_cdn_url (sim));
  g_autoptr (JsonBuilder) b = json_builder_new ();
  g_autoptr (JsonNode) faults = NULL;
  g_autofree gchar *faults_json = NULL;

  json_builder_begin_object (b);
  json_builder_set_member_name (b, "status_body");
  json_builder_add_string_value (b, body);
  json_builder_end_object (b);
  faults = json_builder_get_root (b);
  faults_json = json_to_string (faults, FALSE);
  set_ledger ("100");
  fail_unless (sim_set_faults (sim, faults_json));
  spec_init (&spec, "review2: absurd credits", TRUE);
  g_free (run_ok (&spec));
  fail_unless (ledger () >= 140, "ledger %" G_GINT64_FORMAT, ledger ());

  fail_unless (sim_reset (sim));
  spec_init (&next, "review2: after absurd credits", TRUE);
  next.s.max_credits = 150;
  job = job_new (&next);
  fail_if (grok_imagine_job_run (job, c, NULL, &err));
  fail_unless (g_error_matches (err, GROK_IMAGINE_ERROR,
          GROK_IMAGINE_ERROR_CREDIT_CAP), "%s", err ? err->message : "");
  fail_unless_equals_int (sim_stat (sim, "generate_requests"), 0);
}

GST_END_TEST;

/* A ledger edited by hand to a huge figure: the next job wrapped it to a
 * negative total, which every later run then called damaged */
GST_START_TEST (test_huge_ledger_saturates)
{
  g_auto (Spec) spec;
  g_autofree gchar *near = g_strdup_printf ("%" G_GINT64_FORMAT,
      G_MAXINT64 - 10);

  set_ledger (near);
  spec_init (&spec, "review2: huge ledger", TRUE);
  g_free (run_ok (&spec));
  fail_unless (ledger () == G_MAXINT64, "ledger %" G_GINT64_FORMAT,
      ledger ());
}

GST_END_TEST;

static Suite *
review2_suite (void)
{
  Suite *s = suite_create ("grokimagine-review2");
  TCase *tc = tcase_create ("general");

  suite_add_tcase (s, tc);
  tcase_set_timeout (tc, 120);
  tcase_add_unchecked_fixture (tc, start_simulator, stop_simulator);
  tcase_add_checked_fixture (tc, fresh, cleanup);
  tcase_add_test (tc, test_superseded_result_not_stored);
  tcase_add_test (tc, test_given_task_not_learnt);
  tcase_add_test (tc, test_older_take_leaves_table);
  tcase_add_test (tc, test_foreign_files_kept);
  tcase_add_test (tc, test_absurd_reported_credits);
  tcase_add_test (tc, test_huge_ledger_saturates);
  return s;
}

GST_CHECK_MAIN (review2);
