/* The job's timeout bounds the whole job, requests in flight included: a
 * server that takes the request and never answers ends in the timeout
 * error even with request-timeout=0 (no limit of a request's own), and a
 * submit ended so is never sent again; one ended before any of it left was
 * never sent, and is sent by the next run. */
#include "common.h"

#include <string.h>

#include "grokimagine-alarm.h"
#include "grokimagine-client.h"
#include "grokimagine-journal.h"

/* far longer than the job may take */
#define HANG_MS 120000
#define JOB_TIMEOUT_S 2
#define JOB_TIMEOUT G_STRINGIFY (JOB_TIMEOUT_S)
/* how long a job of that timeout may take to end before it counts as
 * hanging: not a measure of speed */
#define NO_HANG_S (JOB_TIMEOUT_S + 10)

/* Runs the pipeline @desc to its first error, waiting at most NO_HANG_S,
 * then stops it; a job still running by then fails the test. The run holds
 * the error and what the bus had besides. */
static Run *
run_launch_to_error (const gchar * desc)
{
  GstElement *pipeline = launch (desc);
  GstBus *bus = gst_element_get_bus (pipeline);
  GstMessage *msg;
  Run *r;

  gst_element_set_state (pipeline, GST_STATE_PLAYING);
  msg = gst_bus_timed_pop_filtered (bus, NO_HANG_S * GST_SECOND,
      GST_MESSAGE_ERROR | GST_MESSAGE_EOS);
  gst_object_unref (bus);
  fail_unless (msg != NULL, "no error within %d s: the job hangs", NO_HANG_S);
  if (GST_MESSAGE_TYPE (msg) != GST_MESSAGE_ERROR) {
    gst_message_unref (msg);
    fail ("the job ended without an error");
  }
  fail_unless_equals_int (gst_element_set_state (pipeline, GST_STATE_NULL),
      GST_STATE_CHANGE_SUCCESS);
  r = run_drain (pipeline);
  gst_clear_message (&r->error);
  r->error = msg;
  gst_object_unref (pipeline);
  return r;
}

/* ... of a source of @props pointed at the simulator */
static Run *
run_to_error (const gchar * props)
{
  g_autofree gchar *src = src_desc (props);
  g_autofree gchar *desc = g_strdup_printf ("%s ! fakesink", src);

  return run_launch_to_error (desc);
}

/* A status request that never gets its answer ends at the deadline with
 * the timeout error of a job that ran out of time between polls */
GST_START_TEST (test_hanging_poll_ends_at_timeout)
{
  g_autoptr (Run) r = NULL;
  g_autofree gchar *hint = NULL;
  const GstStructure *details;
  const gchar *task_id;

  fail_unless (sim_set_faultsf (sim, "{\"status_delay_ms\": %d}", HANG_MS));
  r = run_to_error ("prompt=x request-timeout=0 timeout=" JOB_TIMEOUT);
  details = assert_error (r, GST_RESOURCE_ERROR_FAILED, "did not finish "
      "within the timeout of " JOB_TIMEOUT " s");
  task_id = gst_structure_get_string (details, "task-id");
  fail_unless (task_id != NULL);
  hint = g_strdup_printf ("set task-id=%s", task_id);
  assert_error (r, GST_RESOURCE_ERROR_FAILED, hint);
  fail_unless_equals_int (sim_stat (sim, "accepted_submits"), 1);
}

GST_END_TEST;

/* The submit's answer never comes: at the deadline the POST is abandoned,
 * its task in doubt, and a run after it (@props again) does not POST */
static void
check_hanging_submit (const gchar * props)
{
  g_autoptr (Run) r = NULL, again = NULL;

  fail_unless (sim_set_faultsf (sim, "{\"generate_delay_ms\": %d}", HANG_MS));
  r = run_to_error (props);
  assert_error (r, GST_RESOURCE_ERROR_FAILED, "within the timeout of "
      JOB_TIMEOUT " s");
  assert_error (r, GST_RESOURCE_ERROR_FAILED, "credits charged");
  assert_error (r, GST_RESOURCE_ERROR_FAILED, "not submitted again");
  fail_unless_equals_int (sim_stat (sim, "generate_requests"), 1);
  /* the simulator made the task when the request arrived */
  fail_unless_equals_int (sim_stat (sim, "accepted_submits"), 1);

  fail_unless (sim_set_faults (sim, "{\"generate_delay_ms\": 0}"));
  again = run_to_error (props);
  assert_error (again, GST_RESOURCE_ERROR_READ, "no answer arrived");
  fail_unless_equals_int (sim_stat (sim, "generate_requests"), 1);
}

/* ... the journal keeps it in doubt for a later process */
GST_START_TEST (test_hanging_submit_never_repeated)
{
  g_autofree gchar *cache = g_dir_make_tmp ("grokimagine-deadline-XXXXXX",
      NULL);
  g_autofree gchar *props = NULL;
  gboolean in_doubt;

  fail_unless (cache != NULL);
  props = g_strdup_printf ("prompt=x request-timeout=0 timeout=" JOB_TIMEOUT
      " cache-dir=%s", cache);
  check_hanging_submit (props);
  in_doubt = cache_entry_has (cache, "\"in-doubt\"");
  remove_folder (cache);
  fail_unless (in_doubt, "the journal entry is not in doubt");
}

GST_END_TEST;

/* ... and without a journal, the task table for this process */
GST_START_TEST (test_hanging_submit_in_doubt_in_process)
{
  check_hanging_submit ("prompt=\"hanging submit, shared\" share-tasks=true "
      "request-timeout=0 timeout=" JOB_TIMEOUT);
}

GST_END_TEST;

/* A stop while a status request waits for an answer still ends it at once,
 * and is no error */
GST_START_TEST (test_stop_during_hanging_poll)
{
  g_autofree gchar *src = src_desc ("prompt=x request-timeout=0");
  g_autofree gchar *desc = g_strdup_printf ("%s ! fakesink", src);
  GstElement *pipeline = launch (desc);
  g_autoptr (Run) r = NULL;

  fail_unless (sim_set_faultsf (sim, "{\"status_delay_ms\": %d}", HANG_MS));
  gst_element_set_state (pipeline, GST_STATE_PLAYING);
  fail_unless (sim_stat_reaches ("status_requests", 1));
  fail_unless_equals_int (gst_element_set_state (pipeline, GST_STATE_NULL),
      GST_STATE_CHANGE_SUCCESS);
  r = run_drain (pipeline);
  fail_unless (r->error == NULL, "a stop posted an error");
  gst_object_unref (pipeline);
}

GST_END_TEST;

/* --- the alarm ------------------------------------------------------------ */

/* Waits at most 10 s for @cancellable: TRUE when it was cancelled */
static gboolean
cancelled_soon (GCancellable * cancellable)
{
  g_autoptr (GError) err = NULL;

  return !grok_imagine_wait (10 * G_TIME_SPAN_SECOND, cancellable, &err);
}

GST_START_TEST (test_alarm_rings_at_deadline)
{
  g_autoptr (GCancellable) parent = g_cancellable_new ();
  g_autoptr (GrokImagineAlarm) alarm = grok_imagine_alarm_new
      (g_get_monotonic_time () + 50 * G_TIME_SPAN_MILLISECOND, parent);
  g_autoptr (GrokImagineAlarm) past = grok_imagine_alarm_new (0, NULL);

  fail_unless (cancelled_soon (grok_imagine_alarm_get_cancellable (alarm)));
  fail_unless (grok_imagine_alarm_rang (alarm));
  fail_if (g_cancellable_is_cancelled (parent));
  /* a deadline already passed rings at once */
  fail_unless (cancelled_soon (grok_imagine_alarm_get_cancellable (past)));
  fail_unless (grok_imagine_alarm_rang (past));
}

GST_END_TEST;

/* The parent's cancel is not the deadline's; an alarm freed before its
 * deadline never rings */
GST_START_TEST (test_alarm_follows_parent)
{
  g_autoptr (GCancellable) parent = g_cancellable_new ();
  g_autoptr (GrokImagineAlarm) alarm = grok_imagine_alarm_new
      (g_get_monotonic_time () + 600 * G_TIME_SPAN_SECOND, parent);
  g_autoptr (GrokImagineAlarm) never = grok_imagine_alarm_new (G_MAXINT64,
      NULL);
  GCancellable *c = grok_imagine_alarm_get_cancellable (alarm);

  fail_if (g_cancellable_is_cancelled (c));
  g_cancellable_cancel (parent);
  fail_unless (g_cancellable_is_cancelled (c));
  fail_if (grok_imagine_alarm_rang (alarm));
  fail_if (grok_imagine_alarm_rang (never));
  fail_if (g_cancellable_is_cancelled (grok_imagine_alarm_get_cancellable
          (never)));
}

GST_END_TEST;

#define ALARM_THREADS 4
#define ALARMS_EACH 200

/* Alarms set and freed from several threads at once, the ringing thread
 * started and stopped as they come and go: every other one rings at once
 * and is awaited, the others are freed long before their deadline. Returns
 * how many did as told. */
static gpointer
set_alarms (gpointer data)
{
  guint i, right = 0;

  for (i = 0; i < ALARMS_EACH; i++) {
    gboolean now = i % 2 == 0;
    g_autoptr (GrokImagineAlarm) alarm = grok_imagine_alarm_new (now ? 0 :
        g_get_monotonic_time () + 600 * G_TIME_SPAN_SECOND, NULL);

    if (now)
      right += cancelled_soon (grok_imagine_alarm_get_cancellable (alarm))
          && grok_imagine_alarm_rang (alarm);
    else
      right += !grok_imagine_alarm_rang (alarm);
  }
  return GUINT_TO_POINTER (right);
}

GST_START_TEST (test_alarms_from_many_threads)
{
  GThread *threads[ALARM_THREADS];
  guint i;

  for (i = 0; i < ALARM_THREADS; i++)
    threads[i] = g_thread_new ("alarms", set_alarms, NULL);
  for (i = 0; i < ALARM_THREADS; i++)
    fail_unless_equals_int (GPOINTER_TO_UINT (g_thread_join (threads[i])),
        ALARMS_EACH);
}

GST_END_TEST;

/* --- a submit cut off before it left ----------------------------------- */

/* An address whose TCP connect never completes: a listening socket on
 * loopback that takes no connection (backlog 0), its accept queue full
 * with the one connection made here, so that the kernel drops the SYNs of
 * any other. Static, so that the tcase's teardown closes it on any exit. */
static GSocket *unanswered, *filler;
static SimProcess *sim2;

static GSocket *
tcp_socket (void)
{
  g_autoptr (GError) err = NULL;
  GSocket *sock = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM,
      G_SOCKET_PROTOCOL_TCP, &err);

  fail_unless (sock != NULL, "%s", err ? err->message : "");
  return sock;
}

/* Its port; fails the test when a connect to it completes anyway */
static guint16
unanswered_start (void)
{
  g_autoptr (GInetAddress) lo = g_inet_address_new_loopback
      (G_SOCKET_FAMILY_IPV4);
  g_autoptr (GSocketAddress) any = g_inet_socket_address_new (lo, 0);
  g_autoptr (GSocketAddress) addr = NULL;
  g_autoptr (GSocket) probe = tcp_socket ();
  g_autoptr (GError) err = NULL;

  unanswered = tcp_socket ();
  g_socket_set_listen_backlog (unanswered, 0);
  fail_unless (g_socket_bind (unanswered, any, FALSE, &err), "%s",
      err ? err->message : "");
  fail_unless (g_socket_listen (unanswered, &err), "%s",
      err ? err->message : "");
  addr = g_socket_get_local_address (unanswered, &err);
  fail_unless (addr != NULL, "%s", err ? err->message : "");
  filler = tcp_socket ();
  fail_unless (g_socket_connect (filler, addr, NULL, &err),
      "the connection that fills the accept queue: %s",
      err ? err->message : "");

  /* the precondition: a further connect waits */
  g_socket_set_blocking (probe, FALSE);
  fail_if (g_socket_connect (probe, addr, NULL, &err));
  fail_unless (g_error_matches (err, G_IO_ERROR, G_IO_ERROR_PENDING), "%s",
      err->message);
  g_clear_error (&err);
  fail_if (g_socket_condition_timed_wait (probe, G_IO_OUT,
          500 * G_TIME_SPAN_MILLISECOND, NULL, NULL),
      "this kernel completes connects beyond a full accept queue");
  return g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (addr));
}

static void
unanswered_stop (void)
{
  if (filler)
    g_socket_close (filler, NULL);
  if (unanswered)
    g_socket_close (unanswered, NULL);
  g_clear_object (&filler);
  g_clear_object (&unanswered);
}

static void
unsent_teardown (void)
{
  teardown ();
  unanswered_stop ();
  g_clear_pointer (&sim2, sim_stop);
}

static gint64
ledger_total (const gchar * cache)
{
  g_autoptr (GError) err = NULL;
  gint64 total = -1;

  fail_unless (grok_imagine_dir_read_ledger (cache, &total, &err), "%s",
      err ? err->message : "");
  return total;
}

/* The deadline cuts off the submit while its TCP connect still waits:
 * nothing left, so the error says the job was not submitted (no word of
 * credits charged), nothing is in doubt or charged, and a run of the same
 * request with the same cache-dir, once the address answers, submits it:
 * one POST, one task, one price in the ledger */
GST_START_TEST (test_submit_cut_before_it_left_is_not_in_doubt)
{
  g_autofree gchar *cache = g_dir_make_tmp ("grokimagine-deadline-XXXXXX",
      NULL);
  g_autofree gchar *props = NULL, *port_arg = NULL, *host = NULL;
  g_autoptr (GError) said = NULL, err = NULL;
  g_autoptr (Run) r = NULL, again = NULL;
  const gchar *args[] = { "--job-duration", "300", "--port", NULL, NULL };
  guint16 port;

  fail_unless (cache != NULL);
  port = unanswered_start ();
  props = g_strdup_printf ("grokimaginesrc base-url=http://127.0.0.1:%u "
      "api-key=" SIM_KEY " poll-interval=50 share-tasks=false prompt=x "
      "request-timeout=0 timeout=" JOB_TIMEOUT " cache-dir=%s ! fakesink",
      port, cache);

  r = run_launch_to_error (props);
  host = g_strdup_printf ("127.0.0.1:%u", port);
  assert_error (r, GST_RESOURCE_ERROR_FAILED, "The job was not submitted: "
      "the timeout of " JOB_TIMEOUT " s ran out before the request could be "
      "sent to");
  assert_error (r, GST_RESOURCE_ERROR_FAILED, host);
  assert_error (r, GST_RESOURCE_ERROR_FAILED, "nothing was charged");
  gst_message_parse_error (r->error, &said, NULL);
  fail_if (strstr (said->message, "credits charged") != NULL
      || strstr (said->message, "may have been accepted") != NULL,
      "'%s' says the job may have been charged", said->message);
  fail_if (cache_entry_has (cache, "\"in-doubt\""),
      "the journal holds the unsent submit in doubt");
  fail_unless_equals_int (ledger_total (cache), 0);

  /* the same origin answers now: the same journal entry */
  unanswered_stop ();
  port_arg = g_strdup_printf ("%u", port);
  args[3] = port_arg;
  sim2 = sim_start (args, &err);
  fail_unless (sim2 != NULL, "cannot start a simulator on port %u: %s", port,
      err ? err->message : "?");
  again = run_launch (props);
  assert_ok (again);
  fail_unless_equals_int (sim_stat (sim2, "generate_requests"), 1);
  fail_unless_equals_int (sim_stat (sim2, "accepted_submits"), 1);
  /* the price of one v1 job */
  fail_unless_equals_int (ledger_total (cache), 40);
  g_clear_pointer (&sim2, sim_stop);
  remove_folder (cache);
}

GST_END_TEST;

static Suite *
deadline_suite (void)
{
  Suite *s = suite_create ("grokimaginesrc-deadline");
  TCase *tc = tcase_create ("general");

  suite_add_tcase (s, tc);
  tcase_set_timeout (tc, 120);
  tcase_add_unchecked_fixture (tc, start_simulator, stop_simulator);
  tcase_add_checked_fixture (tc, setup, teardown);
  tcase_add_test (tc, test_hanging_poll_ends_at_timeout);
  tcase_add_test (tc, test_hanging_submit_never_repeated);
  tcase_add_test (tc, test_hanging_submit_in_doubt_in_process);
  tcase_add_test (tc, test_stop_during_hanging_poll);
  tcase_add_test (tc, test_alarm_rings_at_deadline);
  tcase_add_test (tc, test_alarm_follows_parent);
  tcase_add_test (tc, test_alarms_from_many_threads);

  /* at the end: its own teardown closes the address that never answers */
  tc = tcase_create ("unsent");
  suite_add_tcase (s, tc);
  tcase_set_timeout (tc, 120);
  tcase_add_unchecked_fixture (tc, start_simulator, stop_simulator);
  tcase_add_checked_fixture (tc, setup, unsent_teardown);
  tcase_add_test (tc, test_submit_cut_before_it_left_is_not_in_doubt);
  return s;
}

GST_CHECK_MAIN (deadline);
