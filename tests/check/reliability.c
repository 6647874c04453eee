/* Reliability and security of grokimaginesrc against the simulator's
 * faults: retries that never pay twice, rate limits, resumed downloads,
 * bad answers, cancellation, secrets and TLS. */
#include "common.h"

#include <gio/gio.h>
#include <json-glib/json-glib.h>
#include <stdlib.h>
#include <string.h>

static gboolean
has_warning (Run * r, const gchar * needle)
{
  guint i;

  for (i = 0; i < r->warnings->len; i++)
    if (strstr (g_ptr_array_index (r->warnings, i), needle))
      return TRUE;
  return FALSE;
}

/* --- retries that never pay twice ------------------------------------------ */

GST_START_TEST (test_poll_retries_server_errors)
{
  g_autoptr (Run) r = NULL;

  fail_unless (sim_set_faults (sim, "{\"status_status\": 503, "
          "\"fault_count\": 2}"));
  r = run_src ("prompt=x", "fakesink");
  assert_ok (r);
  fail_unless (has_warning (r, "retrying"));
  fail_unless_equals_int (sim_stat (sim, "accepted_submits"), 1);
}

GST_END_TEST;

GST_START_TEST (test_poll_retries_dropped_connections)
{
  g_autoptr (Run) r = NULL;

  fail_unless (sim_set_faults (sim, "{\"status_drop\": true, "
          "\"fault_count\": 2}"));
  r = run_src ("prompt=x", "fakesink");
  assert_ok (r);
  fail_unless_equals_int (sim_stat (sim, "accepted_submits"), 1);
}

GST_END_TEST;

/* A paid task's polls are bound by the job's timeout, not by retries; at
 * the deadline the error says so and how to reattach */
GST_START_TEST (test_poll_gives_up_at_deadline)
{
  g_autoptr (Run) r = NULL;
  const GstStructure *details;
  g_autofree gchar *hint = NULL;
  const gchar *task_id;

  fail_unless (sim_set_faults (sim, "{\"status_status\": 500}"));
  r = run_src ("prompt=x retries=2 timeout=3", "fakesink");
  details = assert_error (r, GST_RESOURCE_ERROR_FAILED, "did not finish "
      "within the timeout of 3 s");
  assert_error (r, GST_RESOURCE_ERROR_FAILED, "HTTP 500");
  task_id = gst_structure_get_string (details, "task-id");
  fail_unless (task_id != NULL);
  hint = g_strdup_printf ("set task-id=%s", task_id);
  assert_error (r, GST_RESOURCE_ERROR_FAILED, hint);
  /* more than the first poll and two retries: within 3 s the backoff
   * allows at least four */
  fail_unless (sim_stat (sim, "status_requests") >= 4, "%" G_GINT64_FORMAT
      " polls", sim_stat (sim, "status_requests"));
  fail_unless_equals_int (sim_stat (sim, "accepted_submits"), 1);
}

GST_END_TEST;

static void
check_submit_not_repeated (const gchar * faults, const gchar * props,
    gint64 accepted)
{
  g_autoptr (Run) r = NULL;

  fail_unless (sim_set_faults (sim, faults));
  r = run_src (props, "fakesink");
  assert_error (r, GST_RESOURCE_ERROR_READ, "credits charged");
  assert_error (r, GST_RESOURCE_ERROR_READ, "task-id=");
  fail_unless_equals_int (sim_stat (sim, "generate_requests"), 1);
  fail_unless_equals_int (sim_stat (sim, "accepted_submits"), accepted);
  fail_unless (sim_reset (sim));
}

GST_START_TEST (test_submit_never_repeated)
{
  /* a 5xx may come after the task was made */
  check_submit_not_repeated ("{\"generate_status\": 500}", "prompt=x", 0);
  check_submit_not_repeated ("{\"generate_status\": 503}", "prompt=x", 0);
  /* the server took the job, the answer was lost */
  check_submit_not_repeated ("{\"generate_drop\": true}", "prompt=x", 1);
  /* no answer within request-timeout: the task exists all the same */
  check_submit_not_repeated ("{\"generate_delay_ms\": 4000}",
      "prompt=x request-timeout=1", 1);
  /* an answer we cannot read may still stand for a task */
  check_submit_not_repeated ("{\"malformed_json\": \"generate\"}",
      "prompt=x", 1);
}

GST_END_TEST;

GST_START_TEST (test_submit_retried_after_429)
{
  g_autoptr (Run) r = NULL;

  fail_unless (sim_set_faults (sim, "{\"generate_status\": 429, "
          "\"fault_count\": 2}"));
  r = run_src ("prompt=x", "fakesink");
  assert_ok (r);
  fail_unless_equals_int (sim_stat (sim, "generate_requests"), 3);
  fail_unless_equals_int (sim_stat (sim, "accepted_submits"), 1);
}

GST_END_TEST;

static guint
free_port (void)
{
  g_autoptr (GSocket) s = g_socket_new (G_SOCKET_FAMILY_IPV4,
      G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP, NULL);
  g_autoptr (GInetAddress) lo = g_inet_address_new_loopback
      (G_SOCKET_FAMILY_IPV4);
  g_autoptr (GSocketAddress) any = g_inet_socket_address_new (lo, 0);
  g_autoptr (GSocketAddress) bound = NULL;

  fail_unless (g_socket_bind (s, any, TRUE, NULL));
  bound = g_socket_get_local_address (s, NULL);
  return g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (bound));
}

/* A POST that never left (connection refused) is sent again */
GST_START_TEST (test_submit_retried_when_unreachable)
{
  guint port = free_port ();
  g_autofree gchar *port_arg = g_strdup_printf ("%u", port);
  const gchar *args[] = { "--port", port_arg, "--job-duration", "300", NULL };
  g_autofree gchar *desc = g_strdup_printf ("grokimaginesrc base-url="
      "http://127.0.0.1:%u api-key=" SIM_KEY " poll-interval=50 retries=8 "
      "prompt=x ! fakesink", port);
  GstElement *pipeline = launch (desc);
  g_autoptr (Run) r = NULL;
  SimProcess *late;

  gst_element_set_state (pipeline, GST_STATE_PLAYING);
  g_usleep (400 * 1000);
  late = sim_start (args, NULL);
  fail_unless (late != NULL);
  r = run_pipeline (pipeline);
  assert_ok (r);
  fail_unless (has_warning (r, "Could not reach"));
  fail_unless_equals_int (sim_stat (late, "generate_requests"), 1);
  fail_unless_equals_int (sim_stat (late, "accepted_submits"), 1);
  sim_stop (late);
  gst_object_unref (pipeline);
}

GST_END_TEST;

/* --- rate limits ------------------------------------------------------------ */

GST_START_TEST (test_rate_limit_waits_for_reset)
{
  g_autoptr (Run) r = NULL;

  fail_unless (sim_set_faults (sim, "{\"rate_limit\": 3, "
          "\"rate_window_ms\": 1500, \"job_duration_ms\": 2000}"));
  r = run_src ("prompt=x", "fakesink");
  assert_ok (r);
  fail_unless (has_warning (r, "Rate limited by the API: waiting"));
  fail_unless_equals_int (sim_stat (sim, "accepted_submits"), 1);
}

GST_END_TEST;

GST_START_TEST (test_poll_429_waits_retry_after)
{
  g_autoptr (Run) r = NULL;

  fail_unless (sim_set_faults (sim, "{\"status_status\": 429, "
          "\"fault_count\": 1}"));
  r = run_src ("prompt=x", "fakesink");
  assert_ok (r);
  fail_unless_equals_int (sim_stat (sim, "rate_limited"), 1);
  fail_unless (has_warning (r, "Rate limited by the API: waiting 1.0 s"));
}

GST_END_TEST;

GST_START_TEST (test_rate_limit_remaining_zero)
{
  g_autoptr (Run) r = NULL;

  fail_unless (sim_set_faults (sim, "{\"ratelimit_remaining_zero\": true}"));
  r = run_src ("prompt=x", "fakesink");
  assert_ok (r);
  /* we waited instead of running into a 429 */
  fail_unless (has_warning (r, "Rate limited by the API: waiting"));
  fail_unless_equals_int (sim_stat (sim, "rate_limited"), 0);
}

GST_END_TEST;

GST_START_TEST (test_rate_limit_never_past_deadline)
{
  g_autoptr (Run) r = NULL;
  gint64 t0 = g_get_monotonic_time ();

  /* one request a minute: the wait would outlast the 2 s job timeout */
  fail_unless (sim_set_faults (sim, "{\"rate_limit\": 1, "
          "\"rate_window_ms\": 60000}"));
  r = run_src ("prompt=x timeout=2", "fakesink");
  assert_error (r, GST_RESOURCE_ERROR_FAILED, "did not finish");
  assert_error (r, GST_RESOURCE_ERROR_FAILED, "rate limit");
  fail_unless (g_get_monotonic_time () - t0 < 30 * G_TIME_SPAN_SECOND,
      "waited far past the deadline");
}

GST_END_TEST;

/* --- downloads that lose nothing -------------------------------------------- */

static GBytes *
download (const gchar * props, const gchar * path, Run ** run)
{
  g_autofree gchar *tail = g_strdup_printf ("filesink location=%s", path);
  Run *r = run_src (props, tail);
  GBytes *got;

  assert_ok (r);
  got = read_file (path);
  g_unlink (path);
  *run = r;
  return got;
}

GST_START_TEST (test_resume_at_many_offsets)
{
  g_autofree gchar *path = temp_path ("grokimagine-test-resume.mp4");
  g_autoptr (Run) plain = NULL;
  g_autoptr (GBytes) want = download ("prompt=\"cut me\"", path, &plain);
  g_autoptr (GBytes) origin = http_get (result_url (last_task (plain), 0));
  gsize size = g_bytes_get_size (want);
  const gsize offsets[] = { 1, 4095, 4096, 65535, 65536, 65537, 100000,
    size / 2, size - 1
  };
  guint i;

  fail_unless (g_bytes_equal (want, origin));
  for (i = 0; i < G_N_ELEMENTS (offsets); i++) {
    g_autoptr (Run) r = NULL;
    g_autoptr (GBytes) got = NULL;

    fail_unless (sim_reset (sim));
    fail_unless (sim_set_faultsf (sim, "{\"drop_download_at\": %"
            G_GSIZE_FORMAT ", \"fault_count\": 1}", offsets[i]));
    got = download ("prompt=\"cut me\"", path, &r);
    fail_unless (g_bytes_equal (got, want), "bytes differ after a cut at %"
        G_GSIZE_FORMAT, offsets[i]);
    fail_unless (sim_stat (sim, "cdn_requests") >= 2, "no resume at %"
        G_GSIZE_FORMAT, offsets[i]);
    fail_unless_equals_int (sim_stat (sim, "accepted_submits"), 1);
  }
}

GST_END_TEST;

GST_START_TEST (test_result_unavailable_names_task)
{
  const guint statuses[] = { 403, 404, 410 };
  guint i;

  for (i = 0; i < G_N_ELEMENTS (statuses); i++) {
    g_autoptr (Run) r = NULL;
    const GstStructure *details;
    const gchar *task_id;

    fail_unless (sim_reset (sim));
    fail_unless (sim_set_faultsf (sim, "{\"cdn_status\": %u}", statuses[i]));
    r = run_src ("prompt=x", "fakesink");
    details = assert_error (r, GST_RESOURCE_ERROR_NOT_FOUND, "HTTP");
    assert_http_status (details, statuses[i]);
    task_id = gst_structure_get_string (last_task (r), "task-id");
    assert_error (r, GST_RESOURCE_ERROR_NOT_FOUND, task_id);
  }
}

GST_END_TEST;

GST_START_TEST (test_result_server_error_retried)
{
  g_autoptr (Run) r = NULL;

  fail_unless (sim_set_faults (sim, "{\"cdn_status\": 503, "
          "\"fault_count\": 2}"));
  r = run_src ("prompt=x", "fakesink");
  assert_ok (r);
}

GST_END_TEST;

GST_START_TEST (test_result_redirect_followed_without_key)
{
  g_autofree gchar *path = temp_path ("grokimagine-test-redirect.mp4");
  g_autoptr (Run) r = NULL;
  g_autoptr (GBytes) got = NULL;

  fail_unless (sim_set_faults (sim, "{\"cdn_redirect\": true}"));
  got = download ("prompt=\"moved\"", path, &r);
  fail_unless (g_bytes_get_size (got) > 1000);
  fail_unless (sim_stat (sim, "cdn2_requests") >= 1);
  fail_unless (sim_stat (sim, "cdn_requests") >= 1);
  fail_unless_equals_int (sim_stat (sim, "cdn2_auth_headers"), 0);
  fail_unless_equals_int (sim_stat (sim, "cdn_auth_headers"), 0);
}

GST_END_TEST;

GST_START_TEST (test_api_redirect_keeps_key)
{
  g_autoptr (Run) r = NULL;

  fail_unless (sim_set_faults (sim, "{\"api_redirect\": \"status\"}"));
  r = run_src ("prompt=x", "fakesink");
  assert_error (r, GST_RESOURCE_ERROR_READ, "redirected");
  fail_unless_equals_int (sim_stat (sim, "cdn_auth_headers"), 0);
}

GST_END_TEST;

/* --- bad data from the server ------------------------------------------------ */

static void
check_bad_status (const gchar * body, const gchar * needle)
{
  g_autoptr (JsonBuilder) b = json_builder_new ();
  g_autoptr (JsonNode) root = NULL;
  g_autofree gchar *faults = NULL;
  g_autoptr (Run) r = NULL;

  json_builder_begin_object (b);
  json_builder_set_member_name (b, "status_body");
  json_builder_add_string_value (b, body);
  json_builder_end_object (b);
  root = json_builder_get_root (b);
  faults = json_to_string (root, FALSE);

  fail_unless (sim_reset (sim));
  fail_unless (sim_set_faults (sim, faults));
  r = run_src ("prompt=x", "fakesink");
  assert_error (r, GST_RESOURCE_ERROR_READ, needle);
  fail_unless_equals_int (sim_stat (sim, "accepted_submits"), 1);
}

GST_START_TEST (test_bad_status_answers)
{
  g_autoptr (Run) r = NULL;

  check_bad_status ("{\"code\":200,\"data\":{\"status\":123}}",
      "\"status\" in the answer is not a string");
  check_bad_status ("{\"code\":200,\"data\":{\"task_id\":\"t\"}}",
      "no status");
  check_bad_status ("{\"code\":200,\"message\":\"success\"}", "no \"data\"");
  check_bad_status ("{\"code\":200,\"data\":[1]}", "no \"data\"");
  check_bad_status ("{\"code\":200,\"data\":{\"status\":\"completed\","
      "\"response\":\"https://x/1.mp4\"}}", "not an array");
  check_bad_status ("{\"code\":200,\"data\":{\"status\":\"completed\","
      "\"response\":[null]}}", "not a string");
  check_bad_status ("{\"code\":200,\"data\":{\"status\":\"completed\","
      "\"response\":[]}}", "without any result URL");
  check_bad_status ("", "empty");
  check_bad_status ("{\"code\":200,\"data\":{\"status\":\"completed\","
      "\"response\":[\"not a url\"]}}", "not a valid");

  fail_unless (sim_reset (sim));
  fail_unless (sim_set_faults (sim, "{\"huge_body\": \"status\"}"));
  r = run_src ("prompt=x", "fakesink");
  assert_error (r, GST_RESOURCE_ERROR_READ, "larger than");
}

GST_END_TEST;

/* --- cancellation ----------------------------------------------------------- */

/* Returns how long set_state(NULL) took, in ms */
static gint64
stop_after (GstElement * pipeline, gint64 delay_ms)
{
  gint64 t0;

  g_usleep (delay_ms * 1000);
  t0 = g_get_monotonic_time ();
  gst_element_set_state (pipeline, GST_STATE_NULL);
  return (g_get_monotonic_time () - t0) / 1000;
}

static GstElement *
launch_src (const gchar * props, const gchar * tail)
{
  g_autofree gchar *src = src_desc (props);
  g_autofree gchar *desc = g_strdup_printf ("%s ! %s", src, tail);

  return launch (desc);
}

GST_START_TEST (test_stop_during_download)
{
  GstElement *pipeline = launch_src ("prompt=\"slow cdn\"", "fakesink");
  gint64 ms;

  fail_unless (sim_set_faults (sim, "{\"download_rate_kbps\": 50}"));
  gst_element_set_state (pipeline, GST_STATE_PLAYING);
  /* the job ends after 300 ms; the download then takes seconds */
  wait_for (pipeline, GST_MESSAGE_ASYNC_DONE);
  ms = stop_after (pipeline, 200);
  fail_unless (ms < 200, "set_state(NULL) during the download took %"
      G_GINT64_FORMAT " ms", ms);
  gst_object_unref (pipeline);
}

GST_END_TEST;

GST_START_TEST (test_stop_during_backoff)
{
  GstElement *pipeline = launch_src ("prompt=x retries=50", "fakesink");
  gint64 ms;

  fail_unless (sim_set_faults (sim, "{\"status_status\": 503}"));
  gst_element_set_state (pipeline, GST_STATE_PLAYING);
  /* after three failed polls the backoff is over a second */
  ms = stop_after (pipeline, 2500);
  fail_unless (sim_stat (sim, "status_requests") >= 2);
  fail_unless (ms < 200, "set_state(NULL) during a backoff took %"
      G_GINT64_FORMAT " ms", ms);
  gst_object_unref (pipeline);
}

GST_END_TEST;

/* A flushing seek while the job runs returns at once, and the job goes on
 * without a second POST */
GST_START_TEST (test_flushing_seek_while_polling)
{
  GstElement *pipeline = launch_src ("prompt=x poll-interval=2000",
      "fakesink");
  g_autoptr (Run) r = NULL;
  gint64 t0, ms;

  fail_unless (sim_set_faults (sim, "{\"job_duration_ms\": 2500}"));
  gst_element_set_state (pipeline, GST_STATE_PLAYING);
  g_usleep (500 * 1000);
  t0 = g_get_monotonic_time ();
  fail_unless (gst_element_seek_simple (pipeline, GST_FORMAT_BYTES,
          GST_SEEK_FLAG_FLUSH, 0));
  ms = (g_get_monotonic_time () - t0) / 1000;
  fail_unless (ms < 200, "a flushing seek while polling took %"
      G_GINT64_FORMAT " ms", ms);
  r = run_pipeline (pipeline);
  assert_ok (r);
  fail_unless_equals_int (sim_stat (sim, "accepted_submits"), 1);
  gst_object_unref (pipeline);
}

GST_END_TEST;

GST_START_TEST (test_flushing_seek_while_downloading)
{
  GstElement *pipeline = launch_src ("prompt=\"slow seek\"", "fakesink");
  gint64 t0, ms, requests;

  fail_unless (sim_set_faults (sim, "{\"download_rate_kbps\": 50}"));
  gst_element_set_state (pipeline, GST_STATE_PLAYING);
  wait_for (pipeline, GST_MESSAGE_ASYNC_DONE);
  t0 = g_get_monotonic_time ();
  fail_unless (gst_element_seek_simple (pipeline, GST_FORMAT_BYTES,
          GST_SEEK_FLAG_FLUSH, 1000));
  ms = (g_get_monotonic_time () - t0) / 1000;
  if (ms >= 200)
    gst_element_set_state (pipeline, GST_STATE_NULL);
  fail_unless (ms < 200, "a flushing seek while downloading took %"
      G_GINT64_FORMAT " ms", ms);
  /* the seek is served by the download under way: no new request */
  wait_for (pipeline, GST_MESSAGE_ASYNC_DONE);
  requests = sim_stat (sim, "cdn_requests");
  gst_element_set_state (pipeline, GST_STATE_NULL);
  gst_object_unref (pipeline);
  fail_unless_equals_int (requests, 1);
}

GST_END_TEST;

static GstTracer *
leaks_tracer (void)
{
  GList *tracers = gst_tracing_get_active_tracers (), *l;
  GstTracer *found = NULL;

  for (l = tracers; l; l = l->next)
    if (g_str_equal (G_OBJECT_TYPE_NAME (l->data), "GstLeaksTracer"))
      found = gst_object_ref (l->data);
  g_list_free_full (tracers, gst_object_unref);
  fail_unless (found != NULL, "run with GST_TRACERS=leaks");
  return found;
}

static void
count_addresses (GHashTable * counts, const GValue * list, gint step,
    GHashTable * types)
{
  guint i, n = gst_value_list_get_size (list);

  for (i = 0; i < n; i++) {
    const GstStructure *o =
        gst_value_get_structure (gst_value_list_get_value (list, i));
    const gchar *address = gst_structure_get_string (o, "address");
    gint c = GPOINTER_TO_INT (g_hash_table_lookup (counts, address));

    g_hash_table_insert (counts, (gpointer) address, GINT_TO_POINTER (c +
            step));
    if (types)
      g_hash_table_insert (types, (gpointer) address,
          (gpointer) gst_structure_get_string (o, "type-name"));
  }
}

/* GstObjects and GstMiniObjects made since the last checkpoint and still
 * alive: the tracer lists what was created and what was destroyed */
static guint
objects_left (GstTracer * tracer, GString * names)
{
  g_autoptr (GstStructure) cp = NULL;
  g_autoptr (GHashTable) counts = g_hash_table_new (g_str_hash, g_str_equal);
  g_autoptr (GHashTable) types = g_hash_table_new (g_str_hash, g_str_equal);
  GHashTableIter iter;
  gpointer address, count;
  guint left = 0;

  g_signal_emit_by_name (tracer, "activity-get-checkpoint", &cp);
  count_addresses (counts, gst_structure_get_value (cp,
          "objects-created-list"), 1, types);
  count_addresses (counts, gst_structure_get_value (cp,
          "objects-removed-list"), -1, NULL);
  g_hash_table_iter_init (&iter, counts);
  while (g_hash_table_iter_next (&iter, &address, &count)) {
    if (GPOINTER_TO_INT (count) <= 0)
      continue;
    if (left++ < 20)
      g_string_append_printf (names, " %s", (const gchar *)
          g_hash_table_lookup (types, address));
  }
  return left;
}

static void
run_random_cancellations (GRand * rand, guint n, gint64 * worst)
{
  guint i;

  for (i = 0; i < n; i++) {
    GstElement *pipeline = launch_src ("prompt=x", i % 2 ?
        "fakesink" : "qtdemux ! fakesink");

    gst_element_set_state (pipeline, GST_STATE_PLAYING);
    *worst = MAX (*worst, stop_after (pipeline, g_rand_int_range (rand, 0,
                200)));
    gst_object_unref (pipeline);
  }
}

/* Hundreds of set_state(NULL) at random moments: none hanging, none leaking */
GST_START_TEST (test_random_cancellations)
{
  GRand *rand = g_rand_new_with_seed (20261121);
  GstTracer *tracer = leaks_tracer ();
  GString *left = g_string_new (NULL);
  guint n = 300, left_n;
  gint64 worst = 0;

  fail_unless (sim_set_faults (sim, "{\"job_duration_ms\": 100}"));
  if (g_getenv ("GROKIMAGINE_TEST_ITERATIONS"))
    n = atoi (g_getenv ("GROKIMAGINE_TEST_ITERATIONS"));
  /* a first full run loads every plugin and type the loop needs */
  run_free (run_src ("prompt=x", "qtdemux ! fakesink"));
  run_free (run_src ("prompt=x", "fakesink"));
  g_signal_emit_by_name (tracer, "activity-start-tracking");
  run_random_cancellations (rand, n, &worst);
  left_n = objects_left (tracer, left);
  fail_unless (left_n == 0, "%u objects left behind:%s", left_n, left->str);
  g_signal_emit_by_name (tracer, "activity-stop-tracking");

  /* no stop hangs: none waits longer than the one documented wait, for the
   * answer of a POST that has left (at most 10 s); how fast they are is
   * the benchmark's business, not a test's */
  fail_unless (worst < 12000, "the slowest set_state(NULL) took %"
      G_GINT64_FORMAT " ms", worst);
  fail_unless (sim_stat (sim, "accepted_submits") <= n + 2);
  g_string_free (left, TRUE);
  gst_object_unref (tracer);
  g_rand_free (rand);
}

GST_END_TEST;

/* --- the key ------------------------------------------------------------------ */

#define SECRET "sk-live-TOPSECRET-4242"

static void
capture_log (GstDebugCategory * category, GstDebugLevel level,
    const gchar * file, const gchar * function, gint line, GObject * object,
    GstDebugMessage * message, gpointer user_data)
{
  static GMutex lock;
  const gchar *text = gst_debug_message_get (message);

  /* every thread logs */
  g_mutex_lock (&lock);
  if (text)
    g_string_append_printf (user_data, "%s\n", text);
  g_mutex_unlock (&lock);
}

static Run *
run_with_key (SimProcess * s, const gchar * key, const gchar * prompt,
    gchar ** dot)
{
  GstElement *pipeline = gst_pipeline_new (NULL);
  GstElement *src = gst_element_factory_make ("grokimaginesrc", NULL);
  GstElement *sink = gst_element_factory_make ("fakesink", NULL);
  Run *r;

  g_object_set (src, "base-url", sim_api_url (s), "api-key", key, "prompt",
      prompt, "poll-interval", 50, NULL);
  gst_bin_add_many (GST_BIN (pipeline), src, sink, NULL);
  fail_unless (gst_element_link (src, sink));
  r = run_pipeline (pipeline);
  gst_element_set_state (pipeline, GST_STATE_PAUSED);
  *dot = gst_debug_bin_to_dot_data (GST_BIN (pipeline),
      GST_DEBUG_GRAPH_SHOW_ALL);
  gst_element_set_state (pipeline, GST_STATE_NULL);
  gst_object_unref (pipeline);
  return r;
}

GST_START_TEST (test_key_never_shown)
{
  const gchar *args[] = { "--key", SECRET, "--job-duration", "200", NULL };
  SimProcess *s = sim_start (args, NULL);
  GString *log = g_string_new (NULL);
  g_autoptr (Run) ok = NULL, refused = NULL;
  g_autofree gchar *dot1 = NULL, *dot2 = NULL;
  GstDebugLevel level;
  GstElement *probe = gst_element_factory_make ("grokimaginesrc", NULL);
  GParamSpec *pspec;

  fail_unless (s != NULL);
  pspec = g_object_class_find_property (G_OBJECT_GET_CLASS (probe),
      "api-key");
  fail_unless (pspec != NULL);
  fail_if (pspec->flags & G_PARAM_READABLE, "the key can be read back");
  gst_object_unref (probe);

  level = gst_debug_get_default_threshold ();
  gst_debug_remove_log_function (gst_debug_log_default);
  gst_debug_add_log_function (capture_log, log, NULL);
  gst_debug_set_default_threshold (GST_LEVEL_MEMDUMP);
  ok = run_with_key (s, SECRET, "a secret fox", &dot1);
  refused = run_with_key (s, SECRET "-wrong", "a refused fox", &dot2);
  gst_debug_set_default_threshold (level);
  gst_debug_remove_log_function (capture_log);
  gst_debug_add_log_function (gst_debug_log_default, NULL, NULL);

  assert_ok (ok);
  assert_error (refused, GST_RESOURCE_ERROR_NOT_AUTHORIZED, "Not authorized");
  /* the log did see the run */
  fail_unless (strstr (log->str, "submitting a grokimagineapi job") != NULL);
  fail_unless (strstr (log->str, "TOPSECRET") == NULL, "the key is in the "
      "debug log");
  fail_unless (strstr (ok->log->str, "TOPSECRET") == NULL);
  fail_unless (strstr (refused->log->str, "TOPSECRET") == NULL);
  fail_unless (strstr (dot1, "TOPSECRET") == NULL);
  fail_unless (strstr (dot2, "TOPSECRET") == NULL);
  fail_unless_equals_int (sim_stat (s, "cdn_auth_headers"), 0);
  g_string_free (log, TRUE);
  sim_stop (s);
}

GST_END_TEST;

/* --- TLS -------------------------------------------------------------------- */

GST_START_TEST (test_https)
{
  SimProcess *s = sim_start_https (NULL, NULL);
  g_autofree gchar *base = NULL, *desc = NULL;
  g_autoptr (Run) trusted = NULL, untrusted = NULL, lax = NULL, db = NULL;
  g_autoptr (GTlsDatabase) database = NULL;
  GstElement *pipeline;
  GstElement *src;

  fail_unless (s != NULL);
  fail_unless (g_str_has_prefix (sim_api_url (s), "https://"));
  base = g_strdup_printf ("grokimaginesrc name=src base-url=%s api-key="
      SIM_KEY
      " poll-interval=50 prompt=x", sim_api_url (s));

  /* verified by default: a private CA is refused */
  desc = g_strdup_printf ("%s ! fakesink", base);
  untrusted = run_launch (desc);
  assert_error (untrusted, GST_RESOURCE_ERROR_OPEN_READ, "certificate");
  fail_unless_equals_int (sim_stat (s, "generate_requests"), 0);
  g_free (desc);

  desc = g_strdup_printf ("%s ssl-ca-file=%s ! fakesink", base,
      sim_ca_file (s));
  trusted = run_launch (desc);
  assert_ok (trusted);
  g_free (desc);

  desc = g_strdup_printf ("%s ssl-strict=false ! fakesink", base);
  lax = run_launch (desc);
  assert_ok (lax);
  g_free (desc);

  desc = g_strdup_printf ("%s ! fakesink", base);
  pipeline = launch (desc);
  src = gst_bin_get_by_name (GST_BIN (pipeline), "src");
  database = g_tls_file_database_new (sim_ca_file (s), NULL);
  fail_unless (database != NULL);
  g_object_set (src, "tls-database", database, NULL);
  db = run_pipeline (pipeline);
  assert_ok (db);
  gst_object_unref (src);
  gst_object_unref (pipeline);
  sim_stop (s);
}

GST_END_TEST;

/* --- a paid task is followed to its end ------------------------------------ */

static guint
count_warnings (Run * r, const gchar * needle)
{
  guint i, n = 0;

  for (i = 0; i < r->warnings->len; i++)
    if (strstr (g_ptr_array_index (r->warnings, i), needle))
      n++;
  return n;
}

/* The status endpoint down for 12 s while a 16 s job runs: the polls wait
 * it out (retries bounds only the submit), with a warning at each retry */
GST_START_TEST (test_poll_outlasts_outage)
{
  g_autoptr (Run) r = NULL;
  guint warned;

  fail_unless (sim_set_faults (sim, "{\"job_duration_ms\": 16000, "
          "\"status_outage_ms\": 12000}"));
  r = run_src ("prompt=x retries=0", "fakesink");
  assert_ok (r);
  fail_unless_equals_int (sim_stat (sim, "generate_requests"), 1);
  fail_unless_equals_int (sim_stat (sim, "accepted_submits"), 1);
  warned = count_warnings (r, "Temporary failure, retrying");
  fail_unless (warned >= 3, "%u retry warnings", warned);
  fail_unless (has_warning (r, "status outage"));
  fail_unless_equals_string (gst_structure_get_string (last_task (r),
          "status"), "completed");
}

GST_END_TEST;

/* The download of a completed task is not bound by retries either */
GST_START_TEST (test_download_outlasts_retries)
{
  g_autoptr (Run) r = NULL;

  fail_unless (sim_set_faults (sim, "{\"cdn_status\": 503, "
          "\"fault_count\": 4}"));
  r = run_src ("prompt=x retries=1", "fakesink");
  assert_ok (r);
  fail_unless (sim_stat (sim, "cdn_requests") >= 5);
  fail_unless (count_warnings (r, "Temporary failure, retrying") >= 4);
  fail_unless_equals_int (sim_stat (sim, "accepted_submits"), 1);
}

GST_END_TEST;

/* ... but by the timeout: a download that never recovers ends in an
 * error naming the task */
GST_START_TEST (test_download_gives_up_after_timeout)
{
  g_autoptr (Run) r = NULL;
  const GstStructure *details;
  const gchar *task_id;

  fail_unless (sim_set_faults (sim, "{\"cdn_status\": 503}"));
  r = run_src ("prompt=x retries=0 timeout=3", "fakesink");
  details = assert_error (r, GST_RESOURCE_ERROR_READ, "HTTP 503");
  task_id = gst_structure_get_string (details, "task-id");
  fail_unless (task_id != NULL);
  assert_error (r, GST_RESOURCE_ERROR_READ, task_id);
  fail_unless (sim_stat (sim, "cdn_requests") >= 3);
}

GST_END_TEST;

/* An answer that breaks off in its body (libsoup ends it like a whole one)
 * is a dropped connection: a poll retries it ... */
GST_START_TEST (test_poll_retries_truncated_answers)
{
  g_autoptr (Run) r = NULL;

  fail_unless (sim_set_faults (sim, "{\"truncated_answer\": \"status\", "
          "\"fault_count\": 2}"));
  r = run_src ("prompt=x retries=0", "fakesink");
  assert_ok (r);
  fail_unless (has_warning (r, "broke off after"));
  fail_unless_equals_int (sim_stat (sim, "accepted_submits"), 1);
}

GST_END_TEST;

/* ... and the submit's is a lost answer: never sent again */
GST_START_TEST (test_submit_truncated_answer_not_repeated)
{
  check_submit_not_repeated ("{\"truncated_answer\": \"generate\"}",
      "prompt=x", 1);
}

GST_END_TEST;

/* The submit while an earlier job's connections to the API are kept alive
 * (the elements share the API session, and the first one still plays):
 * libsoup sends a request that is not idempotent on a new connection,
 * never on a kept one that the server may have closed meanwhile (which it
 * would send again), so a POST that the server reads, takes and then
 * closes without an answer is in doubt and not repeated, and one that
 * could not connect never left */
GST_START_TEST (test_submit_never_on_a_kept_connection)
{
  g_autofree gchar *src = src_desc ("prompt=first");
  g_autofree gchar *desc = g_strconcat (src, " ! fakesink", NULL);
  g_autoptr (GstElement) earlier = launch (desc);
  g_autoptr (Run) r = NULL;

  fail_unless (gst_element_set_state (earlier, GST_STATE_PLAYING) !=
      GST_STATE_CHANGE_FAILURE);
  wait_for (earlier, GST_MESSAGE_EOS);
  fail_unless_equals_int (sim_stat (sim, "generate_requests"), 1);
  fail_unless (sim_stat (sim, "status_requests") >= 1);

  fail_unless (sim_set_faults (sim, "{\"generate_drop\": true}"));
  r = run_src ("prompt=second", "fakesink");
  assert_error (r, GST_RESOURCE_ERROR_READ, "credits charged");
  assert_error (r, GST_RESOURCE_ERROR_READ, "task-id=");
  fail_unless_equals_int (sim_stat (sim, "generate_requests"), 2);
  fail_unless_equals_int (sim_stat (sim, "accepted_submits"), 2);
  fail_unless_equals_int (sim_stat (sim, "generate_reused"), 0);
  gst_element_set_state (earlier, GST_STATE_NULL);
}

GST_END_TEST;

static Suite *
reliability_suite (void)
{
  Suite *s = suite_create ("grokimaginesrc-reliability");
  TCase *tc = tcase_create ("general");

  suite_add_tcase (s, tc);
  tcase_set_timeout (tc, 300);
  tcase_add_unchecked_fixture (tc, start_simulator, stop_simulator);
  tcase_add_checked_fixture (tc, setup, teardown);
  tcase_add_test (tc, test_poll_retries_server_errors);
  tcase_add_test (tc, test_poll_retries_dropped_connections);
  tcase_add_test (tc, test_poll_gives_up_at_deadline);
  tcase_add_test (tc, test_submit_never_repeated);
  tcase_add_test (tc, test_submit_retried_after_429);
  tcase_add_test (tc, test_submit_retried_when_unreachable);
  tcase_add_test (tc, test_rate_limit_waits_for_reset);
  tcase_add_test (tc, test_poll_429_waits_retry_after);
  tcase_add_test (tc, test_rate_limit_remaining_zero);
  tcase_add_test (tc, test_rate_limit_never_past_deadline);
  tcase_add_test (tc, test_resume_at_many_offsets);
  tcase_add_test (tc, test_result_unavailable_names_task);
  tcase_add_test (tc, test_result_server_error_retried);
  tcase_add_test (tc, test_result_redirect_followed_without_key);
  tcase_add_test (tc, test_api_redirect_keeps_key);
  tcase_add_test (tc, test_bad_status_answers);
  tcase_add_test (tc, test_stop_during_download);
  tcase_add_test (tc, test_stop_during_backoff);
  tcase_add_test (tc, test_flushing_seek_while_polling);
  tcase_add_test (tc, test_flushing_seek_while_downloading);
  tcase_add_test (tc, test_random_cancellations);
  tcase_add_test (tc, test_key_never_shown);
  tcase_add_test (tc, test_https);
  tcase_add_test (tc, test_poll_outlasts_outage);
  tcase_add_test (tc, test_download_outlasts_retries);
  tcase_add_test (tc, test_download_gives_up_after_timeout);
  tcase_add_test (tc, test_poll_retries_truncated_answers);
  tcase_add_test (tc, test_submit_truncated_answer_not_repeated);
  tcase_add_test (tc, test_submit_never_on_a_kept_connection);
  return s;
}

GST_CHECK_MAIN (reliability);
