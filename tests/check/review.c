/* Holes found by a hostile review: where a URI sends the key, what a second
 * URI leaves behind, and answers of an outage the first retries missed. */
#include "common.h"

/* HTTP 408 (a proxy that gave up waiting) is an outage like a 5xx: the
 * polls and the download of a paid task retry it */
GST_START_TEST (test_408_retried_for_paid_task)
{
  g_autoptr (Run) r1 = NULL, r2 = NULL;

  fail_unless (sim_set_faults (sim, "{\"status_status\": 408, "
          "\"fault_count\": 2}"));
  r1 = run_src ("prompt=x", "fakesink");
  assert_ok (r1);
  fail_unless_equals_int (sim_stat (sim, "accepted_submits"), 1);

  fail_unless (sim_reset (sim));
  fail_unless (sim_set_faults (sim, "{\"cdn_status\": 408, "
          "\"fault_count\": 2}"));
  r2 = run_src ("prompt=y", "fakesink");
  assert_ok (r2);
  fail_unless_equals_int (sim_stat (sim, "accepted_submits"), 1);
}

GST_END_TEST;

static Suite *
review_suite (void)
{
  Suite *s = suite_create ("grokimaginesrc-review");
  TCase *tc = tcase_create ("general");

  suite_add_tcase (s, tc);
  tcase_set_timeout (tc, 120);
  tcase_add_unchecked_fixture (tc, start_simulator, stop_simulator);
  tcase_add_checked_fixture (tc, setup, teardown);
  tcase_add_test (tc, test_408_retried_for_paid_task);
  return s;
}

GST_CHECK_MAIN (review);
