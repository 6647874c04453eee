/* The key's request budget: the limiter's rules on their own, then many
 * elements and processes on one limited key against the simulator. */
#include <gst/check/gstcheck.h>
#include <string.h>

#include "common.h"
#include "grokimagine-client.h"
#include "grokimagine-ratelimit.h"

#define ORIGIN "http://127.0.0.1:9"

/* --- the limiter ---------------------------------------------------------- */

static gint64
soon (void)
{
  return g_get_monotonic_time () + 100 * G_TIME_SPAN_MILLISECOND;
}

static guint64
take (GrokImagineRateLimit * rl, GrokImagineRateKind kind, gint64 deadline,
    gint64 * waited, GError ** error)
{
  guint64 ticket = 0;
  gint64 w = -1;

  if (!grok_imagine_rate_limit_acquire (rl, kind, deadline, NULL, &ticket,
          &w, error))
    return 0;
  if (waited)
    *waited = w;
  return ticket;
}

static gboolean
times_out (GrokImagineRateLimit * rl, GrokImagineRateKind kind)
{
  g_autoptr (GError) err = NULL;

  return take (rl, kind, soon (), NULL, &err) == 0 &&
      g_error_matches (err, GROK_IMAGINE_ERROR, GROK_IMAGINE_ERROR_TIMEOUT);
}

GST_START_TEST (test_one_request_until_first_answer)
{
  GrokImagineRateLimit *rl = grok_imagine_rate_limit_get (ORIGIN, "key-a", 0);
  guint64 probe, t;
  gint64 waited = -1;
  guint i;

  probe = take (rl, GROK_IMAGINE_RATE_SUBMIT, soon (), &waited, NULL);
  fail_unless (probe > 0);
  fail_unless_equals_int64 (waited, 0);
  /* nobody knows where the key stands yet: the next one waits */
  fail_unless (times_out (rl, GROK_IMAGINE_RATE_POLL));
  fail_unless (times_out (rl, GROK_IMAGINE_RATE_SUBMIT));

  /* 50 left for a minute: a burst of a tenth of submits goes at once */
  grok_imagine_rate_limit_answered (rl, probe, 200, "50", "60", NULL);
  for (i = 0; i < 4; i++) {
    t = take (rl, GROK_IMAGINE_RATE_SUBMIT, soon (), &waited, NULL);
    fail_unless (t > 0);
    fail_unless_equals_int64 (waited, 0);
    grok_imagine_rate_limit_answered (rl, t, 200, NULL, NULL, NULL);
  }
  /* polls never burst: one, then the next 1.2 s later */
  t = take (rl, GROK_IMAGINE_RATE_POLL, soon (), &waited, NULL);
  fail_unless (t > 0);
  grok_imagine_rate_limit_answered (rl, t, 200, NULL, NULL, NULL);
  fail_unless (times_out (rl, GROK_IMAGINE_RATE_POLL));
  grok_imagine_rate_limit_release (rl, 0);
}

GST_END_TEST;

GST_START_TEST (test_budget_spent_waits_for_reset)
{
  GrokImagineRateLimit *rl = grok_imagine_rate_limit_get (ORIGIN, "key-b", 0);
  guint64 t = take (rl, GROK_IMAGINE_RATE_POLL, soon (), NULL, NULL);

  grok_imagine_rate_limit_answered (rl, t, 200, "0", "3600", NULL);
  fail_unless (times_out (rl, GROK_IMAGINE_RATE_SUBMIT));
  grok_imagine_rate_limit_release (rl, 0);

  /* a 429 without headers: Retry-After */
  rl = grok_imagine_rate_limit_get (ORIGIN, "key-c", 0);
  t = take (rl, GROK_IMAGINE_RATE_POLL, soon (), NULL, NULL);
  grok_imagine_rate_limit_answered (rl, t, 429, NULL, NULL, "100");
  fail_unless (times_out (rl, GROK_IMAGINE_RATE_POLL));
  grok_imagine_rate_limit_release (rl, 0);
}

GST_END_TEST;

GST_START_TEST (test_hand_cap_and_unmetered_api)
{
  GrokImagineRateLimit *rl = grok_imagine_rate_limit_get (ORIGIN, "key-d", 0);
  guint64 a, b;

  /* an API that sends no rate-limit headers is not held to one at a time */
  a = take (rl, GROK_IMAGINE_RATE_POLL, soon (), NULL, NULL);
  grok_imagine_rate_limit_answered (rl, a, 200, NULL, NULL, NULL);
  a = take (rl, GROK_IMAGINE_RATE_POLL, soon (), NULL, NULL);
  b = take (rl, GROK_IMAGINE_RATE_POLL, soon (), NULL, NULL);
  fail_unless (a > 0 && b > 0);
  grok_imagine_rate_limit_answered (rl, a, 200, NULL, NULL, NULL);
  grok_imagine_rate_limit_answered (rl, b, 200, NULL, NULL, NULL);
  grok_imagine_rate_limit_release (rl, 0);

  /* rate-limit=1: one request a minute, whatever the answers say */
  rl = grok_imagine_rate_limit_get (ORIGIN, "key-e", 1);
  a = take (rl, GROK_IMAGINE_RATE_POLL, soon (), NULL, NULL);
  grok_imagine_rate_limit_answered (rl, a, 200, "5000", "60", NULL);
  fail_unless (times_out (rl, GROK_IMAGINE_RATE_SUBMIT));
  grok_imagine_rate_limit_release (rl, 1);
}

GST_END_TEST;

typedef struct
{
  GrokImagineRateLimit *rl;
  GrokImagineRateKind kind;
  GCancellable *cancellable;
  GThread *thread;
  guint64 ticket;
  GError *error;
} Taker;

static gpointer
taker_run (gpointer data)
{
  Taker *t = data;
  gint64 waited;

  /* bounded: a broken limiter fails the test instead of hanging it */
  grok_imagine_rate_limit_acquire (t->rl, t->kind, g_get_monotonic_time () +
      20 * G_TIME_SPAN_SECOND, t->cancellable, &t->ticket, &waited, &t->error);
  return NULL;
}

static void
taker_start (Taker * t, GrokImagineRateLimit * rl, GrokImagineRateKind kind)
{
  t->rl = rl;
  t->kind = kind;
  t->cancellable = g_cancellable_new ();
  t->thread = g_thread_new ("taker", taker_run, t);
}

static void
taker_join (Taker * t)
{
  g_cancellable_cancel (t->cancellable);
  g_thread_join (t->thread);
  g_clear_object (&t->cancellable);
}

static gboolean
waiting_reaches (GrokImagineRateLimit * rl, guint n)
{
  gint i;

  for (i = 0; i < 10000; i++) {
    if (grok_imagine_rate_limit_get_waiting (rl) == n)
      return TRUE;
    g_usleep (1000);
  }
  return FALSE;
}

GST_START_TEST (test_submit_goes_before_waiting_poll)
{
  GrokImagineRateLimit *rl = grok_imagine_rate_limit_get (ORIGIN, "key-f", 0);
  guint64 probe = take (rl, GROK_IMAGINE_RATE_POLL, soon (), NULL, NULL);
  Taker poll = { 0 }, submit = { 0 };

  /* a poll queues first, then a submit; the answer leaves one slot */
  taker_start (&poll, rl, GROK_IMAGINE_RATE_POLL);
  fail_unless (waiting_reaches (rl, 1));
  taker_start (&submit, rl, GROK_IMAGINE_RATE_SUBMIT);
  fail_unless (waiting_reaches (rl, 2));
  grok_imagine_rate_limit_answered (rl, probe, 200, "1", "3600", NULL);

  g_thread_join (submit.thread);
  submit.thread = NULL;
  fail_unless (submit.ticket > 0, "the submit did not get the free slot");
  /* the poll still waits, until cancelled */
  fail_unless_equals_int (grok_imagine_rate_limit_get_waiting (rl), 1);
  taker_join (&poll);
  fail_unless_equals_uint64 (poll.ticket, 0);
  fail_unless (g_error_matches (poll.error, G_IO_ERROR, G_IO_ERROR_CANCELLED));
  g_clear_error (&poll.error);
  g_clear_object (&submit.cancellable);
  grok_imagine_rate_limit_answered (rl, submit.ticket, 200, "0", "3600", NULL);
  grok_imagine_rate_limit_release (rl, 0);
}

GST_END_TEST;

GST_START_TEST (test_others_on_the_key_are_seen)
{
  GrokImagineRateLimit *rl = grok_imagine_rate_limit_get (ORIGIN, "key-g", 0);
  guint64 t;

  t = take (rl, GROK_IMAGINE_RATE_SUBMIT, soon (), NULL, NULL);
  grok_imagine_rate_limit_answered (rl, t, 200, "100", "60", NULL);
  t = take (rl, GROK_IMAGINE_RATE_SUBMIT, soon (), NULL, NULL);
  grok_imagine_rate_limit_answered (rl, t, 200, "99", "60", NULL);
  /* our own request explains the drop */
  fail_unless (grok_imagine_rate_limit_get_share (rl) == 1);
  t = take (rl, GROK_IMAGINE_RATE_SUBMIT, soon (), NULL, NULL);
  grok_imagine_rate_limit_answered (rl, t, 200, "80", "60", NULL);
  /* one request of ours, 19 gone: others use the key */
  fail_unless (grok_imagine_rate_limit_get_share (rl) < 0.5);
  grok_imagine_rate_limit_release (rl, 0);

  /* another key at the same origin has a budget of its own */
  rl = grok_imagine_rate_limit_get (ORIGIN, "key-h", 0);
  fail_unless (grok_imagine_rate_limit_get_share (rl) == 1);
  grok_imagine_rate_limit_release (rl, 0);
}

GST_END_TEST;

/* --- many elements on one limited key ------------------------------------- */

/* @n sources on the simulator's key with @props, each into a fakesink;
 * each its own job (the same request would share one task) */
static gchar *
many_sources (guint n, const gchar * props)
{
  GString *desc = g_string_new (NULL);
  guint i;

  for (i = 0; i < n; i++)
    g_string_append_printf (desc, "grokimaginesrc base-url=%s api-key="
        SIM_KEY " poll-interval=50 share-tasks=false prompt=many-jobs %s "
        "! fakesink ",
        sim_api_url (sim), props);
  return g_string_free (desc, FALSE);
}

GST_START_TEST (test_many_elements_stay_within_limit)
{
  g_autofree gchar *desc = many_sources (12, "");
  g_autoptr (Run) r = NULL;
  guint i;

  /* 30 requests per 3 s; unpaced, 12 elements polling every 50 ms would
   * spend that in a tenth of a second */
  fail_unless (sim_set_faults (sim, "{\"rate_limit\": 30, "
          "\"rate_window_ms\": 3000, \"job_duration_ms\": 500}"));
  r = run_launch (desc);
  assert_ok (r);
  fail_unless_equals_int (sim_stat (sim, "accepted_submits"), 12);
  fail_unless_equals_int (sim_stat (sim, "rate_limited"), 0);
  /* every task message says what the key has left */
  fail_unless (r->tasks->len >= 24);
  for (i = 0; i < r->tasks->len; i++) {
    gint64 left = -1;

    fail_unless (gst_structure_get_int64 (g_ptr_array_index (r->tasks, i),
            "rate-limit-remaining", &left));
    fail_unless (left >= 0 && left < 30);
  }
}

GST_END_TEST;

GST_START_TEST (test_rate_limit_property_caps_requests)
{
  g_autofree gchar *desc = many_sources (4, "rate-limit=120");
  g_autoptr (Run) r = NULL;

  /* the key allows 1000 a second; the property two */
  fail_unless (sim_set_faults (sim, "{\"rate_window_ms\": 1000, "
          "\"job_duration_ms\": 1000}"));
  r = run_launch (desc);
  assert_ok (r);
  fail_unless_equals_int (sim_stat (sim, "accepted_submits"), 4);
  fail_unless (sim_stat (sim, "api_requests") >= 8);
  /* two a second, spaced: at most three in any one-second window */
  fail_unless (sim_stat (sim, "rate_window_max") <= 3,
      "%" G_GINT64_FORMAT " requests in one window",
      sim_stat (sim, "rate_window_max"));
}

GST_END_TEST;

/* Keeps the texts of progress messages: the test's Run only has their type */
static GstBusSyncReply
keep_progress_text (GstBus * bus, GstMessage * msg, gpointer texts)
{
  if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_PROGRESS) {
    gchar *text = NULL;

    gst_message_parse_progress (msg, NULL, NULL, &text);
    g_ptr_array_add (texts, text);
  }
  return GST_BUS_PASS;
}

GST_START_TEST (test_stretched_polling_is_announced)
{
  g_autofree gchar *desc = src_desc ("prompt=x ! fakesink");
  g_autoptr (GPtrArray) texts = g_ptr_array_new_with_free_func (g_free);
  g_autoptr (GstElement) pipeline = gst_parse_launch (desc, NULL);
  g_autoptr (GstBus) bus = gst_element_get_bus (pipeline);
  g_autoptr (Run) r = NULL;
  gboolean announced = FALSE;
  guint i;

  /* 8 requests per 4 s: polls every 50 ms would want 80 */
  fail_unless (sim_set_faults (sim, "{\"rate_limit\": 8, "
          "\"rate_window_ms\": 4000, \"job_duration_ms\": 2500}"));
  gst_bus_set_sync_handler (bus, keep_progress_text, texts, NULL);
  r = run_pipeline (pipeline);
  gst_bus_set_sync_handler (bus, NULL, NULL, NULL);
  assert_ok (r);
  for (i = 0; i < texts->len; i++)
    if (strstr (g_ptr_array_index (texts, i), "to stay within the key's "
            "rate limit") && strstr (g_ptr_array_index (texts, i),
            "polling every "))
      announced = TRUE;
  fail_unless (announced, "no progress text about the stretched polling");
  fail_unless_equals_int (sim_stat (sim, "rate_limited"), 0);
}

GST_END_TEST;

GST_START_TEST (test_simulator_limits_each_key)
{
  g_autofree gchar *url = g_strdup_printf ("%s/v1/status?task_id=x",
      sim_api_url (sim));
  g_autoptr (SoupSession) session = soup_session_new ();
  guint i;

  /* requests without the key do not spend the key's window */
  fail_unless (sim_set_faults (sim, "{\"rate_limit\": 4, "
          "\"rate_window_ms\": 60000}"));
  for (i = 0; i < 7; i++) {
    g_autoptr (SoupMessage) msg = soup_message_new ("GET", url);
    g_autoptr (GBytes) body = NULL;
    const gchar *left;

    if (i == 6)
      soup_message_headers_replace (soup_message_get_request_headers (msg),
          "Authorization", "Bearer " SIM_KEY);
    body = soup_session_send_and_read (session, msg, NULL, NULL);
    fail_unless (body != NULL);
    /* every answer, errors too, says where its key stands */
    left = soup_message_headers_get_one (soup_message_get_response_headers
        (msg), "X-RateLimit-Remaining");
    fail_unless (left != NULL);
    if (i == 6)
      fail_unless_equals_string (left, "3");
  }
}

GST_END_TEST;

/* --- processes sharing a key ---------------------------------------------- */

static GSubprocess *
spawn_sources (guint n, GError ** error)
{
  g_autofree gchar *desc = many_sources (n, "");
  g_auto (GStrv) args = NULL;
  g_autoptr (GStrvBuilder) argv = g_strv_builder_new ();

  if (!g_shell_parse_argv (desc, NULL, &args, error))
    return NULL;
  g_strv_builder_add_many (argv, "gst-launch-1.0", "-q", NULL);
  g_strv_builder_addv (argv, (const gchar **) args);
  g_strfreev (args);
  args = g_strv_builder_end (argv);
  return g_subprocess_newv ((const gchar * const *) args,
      G_SUBPROCESS_FLAGS_STDOUT_SILENCE | G_SUBPROCESS_FLAGS_STDERR_SILENCE,
      error);
}

static void
exited (GObject * p, GAsyncResult * res, gpointer left)
{
  g_subprocess_wait_finish (G_SUBPROCESS (p), res, NULL);
  (*(gint *) left)--;
}

GST_START_TEST (test_processes_share_a_key)
{
  GSubprocess *procs[4] = { NULL };
  GMainContext *ctx = g_main_context_new ();
  gint64 end = g_get_monotonic_time () + 90 * G_TIME_SPAN_SECOND;
  gint64 requests, limited;
  gint left = G_N_ELEMENTS (procs), ok = 0;
  guint i;

  /* 4 processes of 4 jobs want far more than 40 requests per 2 s */
  fail_unless (sim_set_faults (sim, "{\"rate_limit\": 40, "
          "\"rate_window_ms\": 2000, \"job_duration_ms\": 1000}"));
  g_main_context_push_thread_default (ctx);
  for (i = 0; i < G_N_ELEMENTS (procs); i++) {
    g_autoptr (GError) err = NULL;

    procs[i] = spawn_sources (4, &err);
    if (procs[i] == NULL) {
      left--;
      continue;
    }
    g_subprocess_wait_async (procs[i], NULL, exited, &left);
  }
  while (left > 0) {
    if (g_get_monotonic_time () > end)
      for (i = 0; i < G_N_ELEMENTS (procs); i++)
        if (procs[i])
          g_subprocess_force_exit (procs[i]);
    g_main_context_iteration (ctx, FALSE);
    g_usleep (10 * 1000);
  }
  for (i = 0; i < G_N_ELEMENTS (procs); i++) {
    if (procs[i] && g_subprocess_get_if_exited (procs[i])
        && g_subprocess_get_exit_status (procs[i]) == 0)
      ok++;
    g_clear_object (&procs[i]);
  }
  g_main_context_pop_thread_default (ctx);
  g_main_context_unref (ctx);

  fail_unless_equals_int (ok, 4);
  fail_unless_equals_int (sim_stat (sim, "accepted_submits"), 16);
  requests = sim_stat (sim, "api_requests");
  limited = sim_stat (sim, "rate_limited");
  GST_INFO ("%" G_GINT64_FORMAT " requests, %" G_GINT64_FORMAT " of them 429",
      requests, limited);
  /* at most 2% answered 429 */
  fail_unless (limited * 50 <= requests, "%" G_GINT64_FORMAT " of %"
      G_GINT64_FORMAT " requests answered 429", limited, requests);
}

GST_END_TEST;

static Suite *
ratelimit_suite (void)
{
  Suite *s = suite_create ("grokimagine-ratelimit");
  TCase *unit = tcase_create ("limiter");
  TCase *tc = tcase_create ("key");

  suite_add_tcase (s, unit);
  tcase_add_test (unit, test_one_request_until_first_answer);
  tcase_add_test (unit, test_budget_spent_waits_for_reset);
  tcase_add_test (unit, test_hand_cap_and_unmetered_api);
  tcase_add_test (unit, test_submit_goes_before_waiting_poll);
  tcase_add_test (unit, test_others_on_the_key_are_seen);

  suite_add_tcase (s, tc);
  tcase_set_timeout (tc, 300);
  tcase_add_unchecked_fixture (tc, start_simulator, stop_simulator);
  tcase_add_checked_fixture (tc, setup, NULL);
  tcase_add_test (tc, test_many_elements_stay_within_limit);
  tcase_add_test (tc, test_rate_limit_property_caps_requests);
  tcase_add_test (tc, test_stretched_polling_is_announced);
  tcase_add_test (tc, test_processes_share_a_key);
  tcase_add_test (tc, test_simulator_limits_each_key);
  return s;
}

GST_CHECK_MAIN (ratelimit);
