/* The element on the paths that used to pay twice: each costs one task (or
 * none), counted in the tasks the simulator created. */
#include "common.h"

#include <string.h>

static gchar *cache_dir;

static void
fresh_cache (void)
{
  setup ();
  g_free (cache_dir);
  cache_dir = g_dir_make_tmp ("grokimagine-payonce-XXXXXX", NULL);
  fail_unless (cache_dir != NULL);
}

/* A pipeline of grokimaginesrc (with the journal) and @sink */
static GstElement *
pipeline_with_sink (const gchar * props, const gchar * sink)
{
  g_autofree gchar *all = g_strdup_printf ("cache-dir=%s %s", cache_dir,
      props);
  g_autofree gchar *src = src_desc (all);
  g_autofree gchar *desc = g_strdup_printf ("%s ! %s", src, sink);
  GstElement *pipeline = launch (desc);

  fail_unless (pipeline != NULL);
  return pipeline;
}

static GstElement *
pipeline_new (const gchar * props)
{
  return pipeline_with_sink (props, "fakesink");
}

static Run *
run_props (const gchar * props)
{
  GstElement *pipeline = pipeline_new (props);
  Run *r = run_pipeline (pipeline);

  gst_object_unref (pipeline);
  return r;
}

/* Starts @pipeline and waits until its POST has reached the simulator */
static void
start_until_posted (GstElement * pipeline)
{
  fail_unless (gst_element_set_state (pipeline, GST_STATE_PLAYING) !=
      GST_STATE_CHANGE_FAILURE);
  if (!sim_stat_reaches ("generate_requests", 1)) {
    gst_element_set_state (pipeline, GST_STATE_NULL);
    fail ("the POST never arrived");
  }
}

/* A flushing seek while the POST waits for its answer: the answer is
 * awaited, then the seek goes on; one POST */
GST_START_TEST (test_seek_during_post)
{
  GstElement *pipeline = pipeline_new ("prompt=\"seek during the POST\"");
  GstElement *src = gst_bin_get_by_name (GST_BIN (pipeline), "src");
  g_autoptr (Run) r = NULL;

  fail_unless (sim_set_faults (sim, "{\"generate_delay_ms\": 800}"));
  start_until_posted (pipeline);
  fail_unless (gst_element_send_event (src, gst_event_new_seek (1.0,
              GST_FORMAT_BYTES, GST_SEEK_FLAG_FLUSH, GST_SEEK_TYPE_SET, 0,
              GST_SEEK_TYPE_NONE, -1)));
  r = run_pipeline (pipeline);
  assert_ok (r);
  fail_unless_equals_int (sim_stat (sim, "generate_requests"), 1);
  fail_unless_equals_int (sim_stat (sim, "accepted_submits"), 1);
  gst_object_unref (src);
  gst_object_unref (pipeline);
}

GST_END_TEST;

/* EOS during the POST, then the same request again: the task was
 * recorded, the re-run reattaches */
GST_START_TEST (test_eos_during_post)
{
  /* a sink that does not wait for preroll: an EOS before the first buffer
   * then never waits on the state change */
  GstElement *pipeline = pipeline_with_sink ("prompt=\"eos during the POST\"",
      "fakesink async=false");
  g_autoptr (Run) r1 = NULL, r2 = NULL;

  fail_unless (sim_set_faults (sim, "{\"generate_delay_ms\": 800}"));
  start_until_posted (pipeline);
  fail_unless (gst_element_send_event (pipeline, gst_event_new_eos ()));
  r1 = run_pipeline (pipeline);
  fail_unless (r1->eos || r1->error);
  gst_object_unref (pipeline);

  r2 = run_props ("prompt=\"eos during the POST\"");
  assert_ok (r2);
  fail_unless_equals_int (sim_stat (sim, "generate_requests"), 1);
  fail_unless_equals_int (sim_stat (sim, "accepted_submits"), 1);
}

GST_END_TEST;

/* set_state(NULL) during the POST waits for its answer, posts and records
 * the task: the same pipeline again costs nothing more */
GST_START_TEST (test_stop_during_post)
{
  GstElement *pipeline = pipeline_new ("prompt=\"stopped during the POST\"");
  g_autoptr (Run) stopped = NULL, again = NULL;
  g_autofree gchar *named = NULL;
  const gchar *task_id;

  fail_unless (sim_set_faults (sim, "{\"generate_delay_ms\": 800}"));
  start_until_posted (pipeline);
  /* the stop: PAUSED to READY (in NULL, the bus drops its messages) */
  gst_element_set_state (pipeline, GST_STATE_READY);
  stopped = run_drain (pipeline);
  gst_element_set_state (pipeline, GST_STATE_NULL);
  gst_object_unref (pipeline);
  task_id = gst_structure_get_string (last_task (stopped), "task-id");
  fail_unless_equals_string (gst_structure_get_string (last_task (stopped),
          "status"), "submitted");
  named = g_strdup_printf ("task-id=%s", task_id);
  fail_unless (run_has_warning (stopped, named));

  again = run_props ("prompt=\"stopped during the POST\"");
  assert_ok (again);
  fail_unless_equals_string (gst_structure_get_string (last_task (again),
          "task-id"), task_id);
  fail_unless_equals_int (sim_stat (sim, "generate_requests"), 1);
  fail_unless_equals_int (sim_stat (sim, "accepted_submits"), 1);
}

GST_END_TEST;

/* ...at most request-timeout: then the request is in doubt, and a re-run
 * says so instead of paying again */
GST_START_TEST (test_stop_during_post_gives_up)
{
  GstElement *pipeline = pipeline_new ("prompt=\"answer too late\" "
      "request-timeout=1");
  g_autoptr (Run) again = NULL;

  fail_unless (sim_set_faults (sim, "{\"generate_delay_ms\": 5000}"));
  start_until_posted (pipeline);
  gst_element_set_state (pipeline, GST_STATE_NULL);
  gst_object_unref (pipeline);

  again = run_props ("prompt=\"answer too late\"");
  assert_error (again, GST_RESOURCE_ERROR_READ, "was submitted at");
  assert_error (again, GST_RESOURCE_ERROR_READ, "refresh=true");
  fail_unless_equals_int (sim_stat (sim, "generate_requests"), 1);
}

GST_END_TEST;

/* One v1 task has two results: both indexes cost one task, an index out
 * of range none */
GST_START_TEST (test_result_indexes)
{
  g_autoptr (Run) r0 = NULL, r1 = NULL, r5 = NULL;

  r0 = run_props ("prompt=\"two results\" result-index=0");
  assert_ok (r0);
  r1 = run_props ("prompt=\"two results\" result-index=1");
  assert_ok (r1);
  fail_unless_equals_string (gst_structure_get_string (last_task (r0),
          "task-id"), gst_structure_get_string (last_task (r1), "task-id"));
  r5 = run_props ("prompt=\"two results\" result-index=5");
  assert_error (r5, GST_RESOURCE_ERROR_SETTINGS, "result-index is 5");
  fail_unless_equals_int (sim_stat (sim, "accepted_submits"), 1);
}

GST_END_TEST;

/* playbin's stop/play makes a new element: it reattaches through the
 * process's task table, without a journal; two at once share one POST */
GST_START_TEST (test_new_element_reattaches)
{
  g_autofree gchar *src = src_desc ("share-tasks=true prompt=\"shared\"");
  g_autofree gchar *desc = g_strdup_printf ("%s ! fakesink", src);
  g_autoptr (Run) r1 = NULL, r2 = NULL, ra = NULL, rb = NULL;
  GstElement *a, *b;

  r1 = run_launch (desc);
  assert_ok (r1);
  r2 = run_launch (desc);
  assert_ok (r2);
  fail_unless_equals_int (sim_stat (sim, "accepted_submits"), 1);

  /* another take, then two elements starting it at once */
  fail_unless (sim_reset (sim));
  g_free (src);
  g_free (desc);
  src = src_desc ("share-tasks=true prompt=\"at once\"");
  desc = g_strdup_printf ("%s ! fakesink", src);
  fail_unless (sim_set_faults (sim, "{\"generate_delay_ms\": 500}"));
  a = launch (desc);
  b = launch (desc);
  gst_element_set_state (a, GST_STATE_PLAYING);
  gst_element_set_state (b, GST_STATE_PLAYING);
  ra = run_pipeline (a);
  rb = run_pipeline (b);
  assert_ok (ra);
  assert_ok (rb);
  fail_unless_equals_int (sim_stat (sim, "generate_requests"), 1);
  gst_object_unref (a);
  gst_object_unref (b);
}

GST_END_TEST;

/* The answer is lost after the request left: the re-run does not POST */
GST_START_TEST (test_lost_answer_rerun)
{
  g_autoptr (Run) lost = NULL, again = NULL;

  fail_unless (sim_set_faults (sim, "{\"generate_drop\": true, "
          "\"fault_count\": 1}"));
  lost = run_props ("prompt=\"lost answer\"");
  assert_error (lost, GST_RESOURCE_ERROR_READ, "credits charged");
  again = run_props ("prompt=\"lost answer\"");
  assert_error (again, GST_RESOURCE_ERROR_READ, "was submitted at");
  assert_error (again, GST_RESOURCE_ERROR_READ, "task-id=");
  assert_error (again, GST_RESOURCE_ERROR_READ, "refresh=true");
  fail_unless_equals_int (sim_stat (sim, "generate_requests"), 1);
}

GST_END_TEST;

/* A failed task is no result: the re-run submits anew and says so */
GST_START_TEST (test_failed_task_rerun)
{
  g_autoptr (Run) failed = NULL, again = NULL;

  fail_unless (sim_set_faults (sim, "{\"fail_tasks\": \"Network error, "
          "please try again later.\"}"));
  failed = run_props ("prompt=\"fails once\"");
  assert_error (failed, GST_RESOURCE_ERROR_FAILED, "Network error");
  fail_unless (sim_reset (sim));
  again = run_props ("prompt=\"fails once\"");
  assert_ok (again);
  fail_unless (run_has_warning (again, "submitting it anew"));
  fail_unless_equals_int (sim_stat (sim, "accepted_submits"), 1);
}

GST_END_TEST;

/* ssl-strict=false and a connection that drops after the POST left: a lost
 * answer with the credit warning, not a certificate problem */
GST_START_TEST (test_tls_lax_lost_answer)
{
  g_autoptr (SimProcess) s = sim_start_https (NULL, NULL);
  g_autofree gchar *desc = NULL;
  g_autoptr (Run) r = NULL;
  g_autoptr (GError) err = NULL;

  fail_unless (s != NULL);
  fail_unless (sim_set_faults (s, "{\"generate_drop\": true}"));
  desc = g_strdup_printf ("grokimaginesrc base-url=%s api-key=" SIM_KEY
      " ssl-strict=false prompt=\"lax\" ! fakesink", sim_api_url (s));
  r = run_launch (desc);
  assert_error (r, GST_RESOURCE_ERROR_READ, "credits charged");
  gst_message_parse_error (r->error, &err, NULL);
  fail_if (strstr (err->message, "certificate") != NULL, "%s",
      err->message);
  fail_unless_equals_int (sim_stat (s, "generate_requests"), 1);
}

GST_END_TEST;

static Suite *
payonce_suite (void)
{
  Suite *s = suite_create ("grokimagine-payonce");
  TCase *tc = tcase_create ("general");

  suite_add_tcase (s, tc);
  tcase_set_timeout (tc, 300);
  tcase_add_unchecked_fixture (tc, start_simulator, stop_simulator);
  tcase_add_checked_fixture (tc, fresh_cache, teardown);
  tcase_add_test (tc, test_seek_during_post);
  tcase_add_test (tc, test_eos_during_post);
  tcase_add_test (tc, test_stop_during_post);
  tcase_add_test (tc, test_stop_during_post_gives_up);
  tcase_add_test (tc, test_result_indexes);
  tcase_add_test (tc, test_new_element_reattaches);
  tcase_add_test (tc, test_lost_answer_rerun);
  tcase_add_test (tc, test_failed_task_rerun);
  tcase_add_test (tc, test_tls_lax_lost_answer);
  return s;
}

GST_CHECK_MAIN (payonce);
