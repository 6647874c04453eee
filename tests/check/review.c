/* Holes found by a hostile review: where a URI sends the key, what a second
 * URI leaves behind, and answers of an outage the first retries missed. */
#include "common.h"

#include <string.h>

/* A pipeline of @src and a fakesink, torn down by teardown() */
static GstElement *
src_pipeline (GstElement * src)
{
  GstElement *pipeline = gst_pipeline_new (NULL);
  GstElement *sink = gst_element_factory_make ("fakesink", NULL);

  fail_unless (src != NULL && sink != NULL);
  gst_bin_add_many (GST_BIN (pipeline), src, sink, NULL);
  fail_unless (gst_element_link (src, sink));
  return track_pipeline (pipeline);
}

/* api= in a URI picks a dialect, never the host the key goes to: without a
 * base URL from the application or the environment, api=grok5imagine
 * would have sent the one GROK_IMAGINE_API_KEY to the other provider */
GST_START_TEST (test_uri_api_never_picks_key_host)
{
  const gchar *uri = "grokimagine://?prompt=x&api=grok5imagine"
      "&poll-interval=50";
  g_autoptr (GstElement) p1 = NULL, p2 = NULL, p3 = NULL, p4 = NULL;
  g_autoptr (Run) r1 = NULL, r2 = NULL, r3 = NULL, r4 = NULL;
  GstElement *src;

  g_setenv ("GROK_IMAGINE_API_KEY", SIM_KEY, TRUE);
  g_unsetenv ("GROK_IMAGINE_BASE_URL");
  p1 = src_pipeline (gst_element_make_from_uri (GST_URI_SRC, uri, NULL,
          NULL));
  r1 = run_pipeline (p1);
  assert_error (r1, GST_RESOURCE_ERROR_SETTINGS, "GROK_IMAGINE_BASE_URL");
  assert_error (r1, GST_RESOURCE_ERROR_SETTINGS, "https://grok5imagine.com");

  /* with the destination set outside the URI, the same URI runs */
  g_setenv ("GROK_IMAGINE_BASE_URL", sim_api_url (sim), TRUE);
  p2 = src_pipeline (gst_element_make_from_uri (GST_URI_SRC, uri, NULL,
          NULL));
  r2 = run_pipeline (p2);
  assert_ok (r2);
  fail_unless_equals_int (sim_stat (sim, "accepted_submits"), 1);
  g_unsetenv ("GROK_IMAGINE_BASE_URL");

  /* an application that sets api itself (source-setup) chose the host */
  fail_unless (sim_reset (sim));
  src = gst_element_make_from_uri (GST_URI_SRC, uri, NULL, NULL);
  fail_unless (src != NULL);
  gst_util_set_object_arg (G_OBJECT (src), "api", "grok5imagine");
  g_object_set (src, "base-url", sim_api_url (sim), NULL);
  p3 = src_pipeline (src);
  r3 = run_pipeline (p3);
  assert_ok (r3);

  /* nor can a URI take the key from the application's API to the other */
  src = gst_element_factory_make ("grokimaginesrc", NULL);
  fail_unless (src != NULL);
  gst_util_set_object_arg (G_OBJECT (src), "api", "grok5imagine");
  fail_unless (gst_uri_handler_set_uri (GST_URI_HANDLER (src),
          "grokimagine://?prompt=x&api=grokimagineapi", NULL));
  p4 = src_pipeline (src);
  r4 = run_pipeline (p4);
  assert_error (r4, GST_RESOURCE_ERROR_SETTINGS, "https://grokimagineapi.com");
  g_unsetenv ("GROK_IMAGINE_API_KEY");
}

GST_END_TEST;

/* A second URI describes a new request: the task of a first
 * grokimagine://task/<id> URI does not stay behind */
GST_START_TEST (test_uri_replaces_last_task)
{
  GstElement *src = gst_element_factory_make ("grokimaginesrc", NULL);
  g_autoptr (GstElement) pipeline = NULL;
  g_autofree gchar *task_id = NULL, *uri = NULL;
  g_autoptr (Run) r = NULL;

  fail_unless (src != NULL);
  fail_unless (gst_uri_handler_set_uri (GST_URI_HANDLER (src),
          "grokimagine://task/task_old", NULL));
  fail_unless (gst_uri_handler_set_uri (GST_URI_HANDLER (src),
          "grokimagine://?prompt=fresh&poll-interval=50", NULL));
  g_object_get (src, "task-id", &task_id, NULL);
  fail_unless (task_id == NULL, "task-id is still %s", task_id);
  uri = gst_uri_handler_get_uri (GST_URI_HANDLER (src));
  fail_unless (strstr (uri, "prompt=fresh") != NULL, "%s", uri);

  g_object_set (src, "base-url", sim_api_url (sim), "api-key", SIM_KEY, NULL);
  pipeline = src_pipeline (src);
  r = run_pipeline (pipeline);
  assert_ok (r);
  fail_unless_equals_int (sim_stat (sim, "accepted_submits"), 1);
}

GST_END_TEST;

/* A paid task whose polls or download meet @faults still completes, with
 * one submit */
static void
assert_outage_survived (const gchar * faults)
{
  g_autoptr (Run) r = NULL;

  fail_unless (sim_reset (sim));
  fail_unless (sim_set_faults (sim, faults));
  r = run_src ("prompt=x", "fakesink");
  assert_ok (r);
  fail_unless_equals_int (sim_stat (sim, "accepted_submits"), 1);
}

/* HTTP 408 (a proxy that gave up waiting) is an outage like a 5xx: the
 * polls and the download of a paid task retry it */
GST_START_TEST (test_408_retried_for_paid_task)
{
  assert_outage_survived ("{\"status_status\": 408, \"fault_count\": 2}");
  assert_outage_survived ("{\"cdn_status\": 408, \"fault_count\": 2}");
}

GST_END_TEST;

/* A 303 (or 301, 302) after the paid POST means the job may have been
 * taken: the POST is never sent again, and the error says credits may have
 * been charged */
GST_START_TEST (test_submit_redirect_not_reposted)
{
  g_autoptr (Run) r = NULL;

  fail_unless (sim_set_faults (sim, "{\"generate_see_other\": true, "
          "\"fault_count\": 1}"));
  r = run_src ("prompt=x", "fakesink");
  assert_error (r, GST_RESOURCE_ERROR_READ, "credits charged");
  assert_error (r, GST_RESOURCE_ERROR_READ, "HTTP 303");
  fail_unless_equals_int (sim_stat (sim, "generate_requests"), 1);
  fail_unless_equals_int (sim_stat (sim, "accepted_submits"), 1);
}

GST_END_TEST;

/* An HTTP 200 whose envelope says code 500 is an outage too: the polls
 * of the paid task retry it */
GST_START_TEST (test_poll_retries_envelope_server_error)
{
  assert_outage_survived ("{\"status_body\": \"{\\\"code\\\": 500, "
      "\\\"message\\\": \\\"Internal error\\\"}\", \"fault_count\": 2}");
}

GST_END_TEST;

/* What the last URI set and a new one does not goes back to its default
 * (api above all: it picks the host); what the application set stays */
GST_START_TEST (test_uri_replaces_last_uri)
{
  GstElement *src = gst_element_factory_make ("grokimaginesrc", NULL);
  g_autofree gchar *ratio = NULL;
  GEnumValue *api;
  GValue v = G_VALUE_INIT;
  guint timeout = 0, poll = 0;

  fail_unless (src != NULL);
  g_object_set (src, "timeout", 77, NULL);
  fail_unless (gst_uri_handler_set_uri (GST_URI_HANDLER (src),
          "grokimagine://?prompt=a&api=grok5imagine&ratio=16:9"
          "&poll-interval=100", NULL));
  fail_unless (gst_uri_handler_set_uri (GST_URI_HANDLER (src),
          "grokimagine://?prompt=b&poll-interval=200", NULL));
  g_value_init (&v, g_object_class_find_property (G_OBJECT_GET_CLASS (src),
          "api")->value_type);
  g_object_get_property (G_OBJECT (src), "api", &v);
  api = g_enum_get_value (g_type_class_peek (G_VALUE_TYPE (&v)),
      g_value_get_enum (&v));
  fail_unless_equals_string (api->value_nick, "grokimagineapi");
  g_object_get (src, "ratio", &ratio, "poll-interval", &poll, "timeout",
      &timeout, NULL);
  fail_unless_equals_string (ratio, "1:1");
  fail_unless_equals_int (poll, 200);
  fail_unless_equals_int (timeout, 77);
  gst_object_unref (src);
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
  tcase_add_test (tc, test_uri_api_never_picks_key_host);
  tcase_add_test (tc, test_uri_replaces_last_task);
  tcase_add_test (tc, test_uri_replaces_last_uri);
  tcase_add_test (tc, test_408_retried_for_paid_task);
  tcase_add_test (tc, test_submit_redirect_not_reposted);
  tcase_add_test (tc, test_poll_retries_envelope_server_error);
  return s;
}

GST_CHECK_MAIN (review);
