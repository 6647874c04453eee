/* A check that fails while a pipeline runs a job. The program must still
 * end within seconds and report the failure: teardown() sets every
 * pipeline to NULL, so no streaming thread is left for GStreamer to wait
 * for at exit. failing-check-ends.sh runs it and expects exactly this
 * failure; it is no test of its own. */
#include "common.h"

GST_START_TEST (test_failure_while_a_job_runs)
{
  g_autofree gchar *src = src_desc ("prompt=\"a job that outlives its test\"");
  g_autofree gchar *desc = g_strdup_printf ("%s ! fakesink", src);
  GstElement *pipeline;

  fail_unless (sim_set_faults (sim, "{\"job_duration_ms\": 600000}"));
  pipeline = launch (desc);
  gst_element_set_state (pipeline, GST_STATE_PLAYING);
  /* the task message: the streaming thread now polls a job of 10 minutes */
  wait_for (pipeline, GST_MESSAGE_ELEMENT);
  fail ("deliberate failure while the job runs");
}

GST_END_TEST;

static Suite *
teardown_suite (void)
{
  Suite *s = suite_create ("teardown");
  TCase *tc = tcase_create ("general");

  suite_add_tcase (s, tc);
  tcase_set_timeout (tc, 60);
  tcase_add_unchecked_fixture (tc, start_simulator, stop_simulator);
  tcase_add_checked_fixture (tc, setup, teardown);
  tcase_add_test (tc, test_failure_while_a_job_runs);
  return s;
}

GST_CHECK_MAIN (teardown);
