/* Element tests of grokimaginesrc against the local API simulator. */
#include <gst/check/gstcheck.h>
#include <libsoup/soup.h>
#include <glib/gstdio.h>
#include <string.h>

#include "common.h"

/* --- generating and streaming --------------------------------------------- */

GST_START_TEST (test_v1_video_streams_result_bytes)
{
  g_autofree gchar *path = temp_path ("grokimagine-test-v1.mp4");
  g_autofree gchar *tail = g_strdup_printf ("filesink location=%s", path);
  g_autoptr (Run) r = run_src ("prompt=\"a red fox running through snow\" "
      "ratio=16:9", tail);
  g_autoptr (GBytes) got = NULL, want = NULL;
  const GstStructure *submitted, *done;
  gint64 credits = 0;

  assert_ok (r);
  /* the task message: submitted first, then every change, then completed */
  submitted = g_ptr_array_index (r->tasks, 0);
  fail_unless_equals_string (gst_structure_get_string (submitted, "status"),
      "submitted");
  fail_unless (g_str_has_prefix (gst_structure_get_string (submitted, "task-id"),
          "task_"));
  fail_unless_equals_string (gst_structure_get_string (submitted, "api"),
      "grokimagineapi");
  done = last_task (r);
  fail_unless_equals_string (gst_structure_get_string (done, "status"),
      "completed");
  fail_unless_equals_string (gst_structure_get_string (done, "task-id"),
      gst_structure_get_string (submitted, "task-id"));
  fail_unless (gst_structure_get_int64 (done, "consumed-credits", &credits));
  fail_unless_equals_int (credits, 40);
  fail_unless (r->tasks->len >= 3, "no pending status was reported");
  fail_unless_equals_string (gst_structure_get_string (g_ptr_array_index
          (r->tasks, 1), "status"), "pending");

  /* the bytes are the result's, byte for byte */
  got = read_file (path);
  want = http_get (result_url (done, 0));
  fail_unless (g_bytes_get_size (got) > 1000);
  fail_unless (g_bytes_equal (got, want));

  fail_unless_equals_int (sim_stat (sim, "accepted_submits"), 1);
  fail_unless (sim_stat (sim, "cdn_requests") >= 1);
  fail_unless_equals_int (sim_stat (sim, "cdn_auth_headers"), 0);
  g_unlink (path);
}

GST_END_TEST;

/* The launch line of the README: demux, parse, remux; then check the video */
GST_START_TEST (test_v1_remux_keeps_ratio)
{
  g_autofree gchar *path = temp_path ("grokimagine-test-remux.mp4");
  g_autofree gchar *tail = g_strdup_printf ("qtdemux ! h264parse ! mp4mux ! "
      "filesink location=%s", path);
  g_autoptr (Run) r = run_src ("prompt=\"a lighthouse at dusk\" ratio=16:9",
      tail);
  g_autoptr (GstElement) check = NULL, out = NULL;
  g_autoptr (GstSample) sample = NULL;
  g_autofree gchar *desc = NULL;
  GstStructure *s;
  gint w = 0, h = 0;

  assert_ok (r);
  desc = g_strdup_printf ("filesrc location=%s ! qtdemux ! h264parse ! "
      "avdec_h264 ! appsink name=out sync=false", path);
  check = launch (desc);
  gst_element_set_state (check, GST_STATE_PLAYING);
  out = gst_bin_get_by_name (GST_BIN (check), "out");
  g_signal_emit_by_name (out, "try-pull-preroll", 10 * GST_SECOND, &sample);
  fail_unless (sample != NULL, "the saved file does not decode");
  s = gst_caps_get_structure (gst_sample_get_caps (sample), 0);
  fail_unless (gst_structure_get_int (s, "width", &w));
  fail_unless (gst_structure_get_int (s, "height", &h));
  fail_unless (w * 9 == h * 16, "%dx%d is not 16:9", w, h);
  gst_element_set_state (check, GST_STATE_NULL);
  g_unlink (path);
}

GST_END_TEST;

GST_START_TEST (test_decodebin_plays)
{
  g_autoptr (Run) r = run_src ("prompt=\"a quiet lake\"",
      "decodebin ! videoconvert ! fakesink");

  assert_ok (r);
  /* typefind pulls, then decodebin switches to push: start() runs twice,
   * the job is paid for once */
  fail_unless_equals_int (sim_stat (sim, "accepted_submits"), 1);
}

GST_END_TEST;

static void
check_grok5_model (const gchar * props, const gchar * tail, gint64 credits)
{
  g_autofree gchar *all = g_strdup_printf ("api=grok5imagine %s", props);
  g_autoptr (Run) r = run_src (all, tail);
  const GstStructure *done;
  gint64 got = -1;

  assert_ok (r);
  done = last_task (r);
  fail_unless_equals_string (gst_structure_get_string (done, "api"),
      "grok5imagine");
  fail_unless_equals_string (gst_structure_get_string (done, "raw-status"),
      "SUCCESS");
  fail_unless (gst_structure_get_int64 (done, "consumed-credits", &got));
  fail_unless_equals_int (got, credits);
  fail_unless_equals_int (sim_stat (sim, "cdn_auth_headers"), 0);
}

GST_START_TEST (test_grok5_text_to_video)
{
  /* typefinding gives the caps: a capsfilter would not negotiate otherwise */
  check_grok5_model ("prompt=\"a dragon\"",
      "capsfilter caps=video/quicktime ! qtdemux ! h264parse ! fakesink", 24);
}

GST_END_TEST;

GST_START_TEST (test_grok5_text_to_image)
{
  check_grok5_model ("model=text-to-image prompt=\"a dragon\"",
      "capsfilter caps=image/png ! pngdec ! fakesink", 5);
}

GST_END_TEST;

GST_START_TEST (test_grok5_image_to_video)
{
  check_grok5_model ("model=image-to-video "
      "images=\"<https://img.example/cat.png,https://img.example/dog.png>\"",
      "qtdemux ! fakesink", 24);
}

GST_END_TEST;

GST_START_TEST (test_grok5_upscale)
{
  g_autofree gchar *earlier = sim_create_task (sim, "{\"api\": \"grok5\", "
      "\"model\": \"grok-imagine/text-to-video\", \"input\": "
      "{\"prompt\": \"a cat\"}}");
  g_autofree gchar *props = NULL;

  fail_unless (earlier != NULL);
  props = g_strdup_printf ("model=upscale input-task-id=%s", earlier);
  check_grok5_model (props, "qtdemux ! fakesink", 12);
}

GST_END_TEST;

GST_START_TEST (test_result_index)
{
  g_autofree gchar *path = temp_path ("grokimagine-test-index.mp4");
  g_autofree gchar *tail = g_strdup_printf ("filesink location=%s", path);
  g_autoptr (Run) r = run_src ("prompt=\"two takes\" result-index=1", tail);
  g_autoptr (Run) r2 = NULL;
  g_autoptr (GBytes) got = NULL, want = NULL;

  assert_ok (r);
  got = read_file (path);
  want = http_get (result_url (last_task (r), 1));
  fail_unless (g_bytes_equal (got, want));
  g_unlink (path);

  r2 = run_src ("prompt=\"two takes\" result-index=2", "fakesink");
  assert_error (r2, GST_RESOURCE_ERROR_SETTINGS, "result-index is 2");
}

GST_END_TEST;

/* The task this element paid for is reused when it starts again */
GST_START_TEST (test_restart_reuses_task)
{
  g_autofree gchar *desc = src_desc ("prompt=\"once\"");
  g_autofree gchar *full = g_strdup_printf ("%s ! fakesink", desc);
  GstElement *pipeline = launch (full);
  GstElement *src = gst_bin_get_by_name (GST_BIN (pipeline), "src");
  g_autoptr (Run) r1 = run_pipeline (pipeline);
  g_autoptr (Run) r2 = NULL;
  g_autofree gchar *task_id = NULL;

  assert_ok (r1);
  g_object_get (src, "task-id", &task_id, NULL);
  fail_unless_equals_string (task_id,
      gst_structure_get_string (last_task (r1), "task-id"));
  r2 = run_pipeline (pipeline);
  assert_ok (r2);
  fail_unless_equals_int (sim_stat (sim, "accepted_submits"), 1);

  /* a new prompt is a new job */
  g_object_set (src, "prompt", "twice", NULL);
  run_free (run_pipeline (pipeline));
  fail_unless_equals_int (sim_stat (sim, "accepted_submits"), 2);
  gst_object_unref (src);
  gst_object_unref (pipeline);
}

GST_END_TEST;

/* --- reattach ------------------------------------------------------------- */

GST_START_TEST (test_reattach_by_task_id)
{
  g_autofree gchar *id = sim_create_task (sim, "{\"api\": \"v1\", "
      "\"mode\": \"fun\", \"prompt\": \"an old job\", \"ratio\": \"1:1\"}");
  g_autofree gchar *props = g_strdup_printf ("task-id=%s", id);
  g_autofree gchar *path = temp_path ("grokimagine-test-reattach.mp4");
  g_autofree gchar *tail = g_strdup_printf ("filesink location=%s", path);
  g_autoptr (Run) r = NULL;
  g_autoptr (GBytes) got = NULL, want = NULL;

  fail_unless (id != NULL);
  r = run_src (props, tail);
  assert_ok (r);
  fail_unless_equals_int (sim_stat (sim, "generate_requests"), 0);
  fail_unless (sim_stat (sim, "status_requests") >= 1);
  fail_unless_equals_string (gst_structure_get_string (last_task (r),
          "task-id"), id);
  got = read_file (path);
  want = http_get (result_url (last_task (r), 0));
  fail_unless (g_bytes_equal (got, want));
  g_unlink (path);
}

GST_END_TEST;

/* --- validation: the state change fails, nothing is sent -------------------- */

static void
check_invalid (const gchar * props, GstResourceError code,
    const gchar * needle)
{
  g_autoptr (Run) r = run_src (props, "fakesink");

  fail_unless_equals_int (r->start_ret, GST_STATE_CHANGE_FAILURE);
  assert_error (r, code, needle);
  fail_unless_equals_int (sim_stat (sim, "api_requests"), 0);
  fail_unless_equals_int (sim_stat (sim, "generate_requests"), 0);
}

GST_START_TEST (test_validation)
{
  g_autofree gchar *long_prompt = g_strnfill (5001, 'x');
  g_autofree gchar *props = g_strdup_printf ("api=grok5imagine prompt=%s",
      long_prompt);

  check_invalid ("", GST_RESOURCE_ERROR_SETTINGS, "prompt is empty");
  check_invalid ("prompt=\"\"", GST_RESOURCE_ERROR_SETTINGS,
      "prompt is empty");
  check_invalid ("prompt=x ratio=16x9", GST_RESOURCE_ERROR_SETTINGS,
      "'16x9'");
  check_invalid ("prompt=x ratio=0:1", GST_RESOURCE_ERROR_SETTINGS, "ratio");
  check_invalid ("prompt=x images=\"<not-a-url>\"",
      GST_RESOURCE_ERROR_SETTINGS, "not-a-url");
  check_invalid ("api=grok5imagine", GST_RESOURCE_ERROR_SETTINGS,
      "prompt is empty");
  check_invalid ("api=grok5imagine model=text-to-image",
      GST_RESOURCE_ERROR_SETTINGS, "prompt is empty");
  check_invalid ("api=grok5imagine model=image-to-video prompt=x",
      GST_RESOURCE_ERROR_SETTINGS, "images");
  check_invalid ("api=grok5imagine model=upscale",
      GST_RESOURCE_ERROR_SETTINGS, "input-task-id");
  check_invalid (props, GST_RESOURCE_ERROR_SETTINGS, "at most 5000");
}

GST_END_TEST;

GST_START_TEST (test_missing_key)
{
  g_autofree gchar *desc = g_strdup_printf ("grokimaginesrc base-url=%s "
      "prompt=x ! fakesink", sim_api_url (sim));
  g_autoptr (Run) r = NULL;

  g_unsetenv ("GROK_IMAGINE_API_KEY");
  r = run_launch (desc);
  fail_unless_equals_int (r->start_ret, GST_STATE_CHANGE_FAILURE);
  assert_error (r, GST_RESOURCE_ERROR_NOT_AUTHORIZED, "No API key");
  fail_unless_equals_int (sim_stat (sim, "api_requests"), 0);
}

GST_END_TEST;

GST_START_TEST (test_key_from_environment)
{
  g_autofree gchar *desc = g_strdup_printf ("grokimaginesrc base-url=%s "
      "poll-interval=50 prompt=\"from env\" ! fakesink", sim_api_url (sim));
  g_autoptr (Run) r = NULL;

  g_setenv ("GROK_IMAGINE_API_KEY", SIM_KEY, TRUE);
  r = run_launch (desc);
  g_unsetenv ("GROK_IMAGINE_API_KEY");
  assert_ok (r);
}

GST_END_TEST;

GST_START_TEST (test_bad_base_url)
{
  g_autofree gchar *desc = g_strdup ("grokimaginesrc base-url=ftp://x "
      "api-key=k prompt=x ! fakesink");
  g_autoptr (Run) r = run_launch (desc);

  fail_unless_equals_int (r->start_ret, GST_STATE_CHANGE_FAILURE);
  assert_error (r, GST_RESOURCE_ERROR_SETTINGS, "base-url");
}

GST_END_TEST;

/* --- errors from the API ---------------------------------------------------- */

static void
check_generate_error (guint status, GstResourceError code,
    const gchar * needle)
{
  g_autofree gchar *faults = g_strdup_printf ("{\"generate_status\": %u}",
      status);
  g_autoptr (Run) r = NULL;
  const GstStructure *details;

  fail_unless (sim_set_faults (sim, faults));
  r = run_src ("prompt=x", "fakesink");
  details = assert_error (r, code, needle);
  assert_http_status (details, status);
  fail_unless (r->tasks->len == 0, "a task was announced");
  fail_unless (sim_reset (sim));
}

GST_START_TEST (test_http_errors)
{
  check_generate_error (400, GST_RESOURCE_ERROR_SETTINGS,
      "The API rejected the settings");
  check_generate_error (401, GST_RESOURCE_ERROR_NOT_AUTHORIZED,
      "Not authorized");
  check_generate_error (402, GST_RESOURCE_ERROR_NOT_AUTHORIZED,
      "insufficient credits");
  check_generate_error (429, GST_RESOURCE_ERROR_READ, "HTTP 429");
  check_generate_error (500, GST_RESOURCE_ERROR_READ, "HTTP 500");
}

GST_END_TEST;

GST_START_TEST (test_wrong_key)
{
  g_autofree gchar *desc = g_strdup_printf ("grokimaginesrc base-url=%s "
      "api-key=wrong-key prompt=x ! fakesink", sim_api_url (sim));
  g_autoptr (Run) r = run_launch (desc);
  g_autoptr (GError) err = NULL;
  g_autofree gchar *dbg = NULL;
  const GstStructure *details;

  details = assert_error (r, GST_RESOURCE_ERROR_NOT_AUTHORIZED,
      "Not authorized");
  assert_http_status (details, 401);
  /* the key is never repeated back */
  gst_message_parse_error (r->error, &err, &dbg);
  fail_if (strstr (err->message, "wrong-key") || strstr (dbg, "wrong-key"));
}

GST_END_TEST;

GST_START_TEST (test_insufficient_credits)
{
  g_autoptr (Run) r = NULL;
  const GstStructure *details;

  /* the balance is real: a fresh simulator with too few credits */
  SimProcess *poor;
  const gchar *args[] = { "--credits", "10", NULL };
  g_autofree gchar *desc = NULL;

  poor = sim_start (args, NULL);
  fail_unless (poor != NULL);
  desc = g_strdup_printf ("grokimaginesrc base-url=%s api-key=" SIM_KEY
      " api=grok5imagine prompt=x ! fakesink", sim_api_url (poor));
  r = run_launch (desc);
  details = assert_error (r, GST_RESOURCE_ERROR_NOT_AUTHORIZED,
      "insufficient credits");
  assert_http_status (details, 402);
  sim_stop (poor);
}

GST_END_TEST;

GST_START_TEST (test_status_error_names_task)
{
  g_autoptr (Run) r = NULL;
  const GstStructure *details;
  const gchar *task_id;

  /* an error that no retry mends (a temporary one is retried until the
   * timeout: reliability.c) */
  fail_unless (sim_set_faults (sim, "{\"status_status\": 404}"));
  r = run_src ("prompt=x", "fakesink");
  details = assert_error (r, GST_RESOURCE_ERROR_NOT_FOUND, "HTTP 404");
  assert_http_status (details, 404);
  task_id = gst_structure_get_string (details, "task-id");
  fail_unless (task_id != NULL);
  fail_unless_equals_string (task_id,
      gst_structure_get_string (last_task (r), "task-id"));
}

GST_END_TEST;

GST_START_TEST (test_failed_task)
{
  const gchar *why = "Inappropriate content, please try another prompt.";
  g_autofree gchar *faults = g_strdup_printf ("{\"fail_tasks\": \"%s\"}", why);
  g_autoptr (Run) r = NULL;
  const GstStructure *details;

  fail_unless (sim_set_faults (sim, faults));
  r = run_src ("prompt=x", "fakesink");
  details = assert_error (r, GST_RESOURCE_ERROR_FAILED, why);
  fail_unless (gst_structure_get_string (details, "task-id") != NULL);
  fail_unless_equals_string (gst_structure_get_string (last_task (r),
          "status"), "failed");
  fail_unless_equals_string (gst_structure_get_string (last_task (r),
          "error-message"), why);
}

GST_END_TEST;

/* A render that fails at the provider says why in the task's error_message,
 * and the element's error carries it */
GST_START_TEST (test_failed_render_says_why)
{
  g_autoptr (Run) r = NULL;

  fail_unless (sim_set_faults (sim, "{\"broken_render\": true}"));
  r = run_src ("prompt=\"a render that breaks\"", "fakesink");
  assert_error (r, GST_RESOURCE_ERROR_FAILED, "grok imagine build failed: "
      "no element \"grokimagine-sim-missing-element\"");
  fail_unless (strstr (gst_structure_get_string (last_task (r),
              "error-message"), "grokimagine-sim-missing-element") != NULL);
}

GST_END_TEST;

GST_START_TEST (test_grok5_failed_task_refunded)
{
  g_autoptr (Run) r = NULL;
  gint64 credits = -1;

  fail_unless (sim_set_faults (sim, "{\"fail_tasks\": \"grok imagine build "
          "failed\"}"));
  r = run_src ("api=grok5imagine prompt=x", "fakesink");
  assert_error (r, GST_RESOURCE_ERROR_FAILED, "grok imagine build failed");
  fail_unless (gst_structure_get_int64 (last_task (r), "consumed-credits",
          &credits));
  fail_unless_equals_int (credits, 0);
}

GST_END_TEST;

GST_START_TEST (test_timeout_names_task)
{
  g_autoptr (Run) r = NULL;
  const GstStructure *details;
  g_autofree gchar *hint = NULL;
  const gchar *task_id;

  fail_unless (sim_set_faults (sim, "{\"job_duration_ms\": 60000}"));
  r = run_src ("prompt=x timeout=1", "fakesink");
  details = assert_error (r, GST_RESOURCE_ERROR_FAILED, "did not finish");
  task_id = gst_structure_get_string (details, "task-id");
  fail_unless (task_id != NULL);
  hint = g_strdup_printf ("task-id=%s", task_id);
  assert_error (r, GST_RESOURCE_ERROR_FAILED, hint);
}

GST_END_TEST;

GST_START_TEST (test_unreachable_host)
{
  g_autoptr (Run) r = run_launch ("grokimaginesrc base-url=http://127.0.0.1:9 "
      "api-key=k prompt=x ! fakesink");

  assert_error (r, GST_RESOURCE_ERROR_OPEN_READ, "127.0.0.1:9");
}

GST_END_TEST;

GST_START_TEST (test_bad_answers)
{
  g_autoptr (Run) r1 = NULL, r2 = NULL, r3 = NULL;

  fail_unless (sim_set_faults (sim, "{\"malformed_json\": \"generate\"}"));
  r1 = run_src ("prompt=x", "fakesink");
  assert_error (r1, GST_RESOURCE_ERROR_READ, "not valid JSON");
  fail_unless (sim_reset (sim));

  fail_unless (sim_set_faults (sim, "{\"malformed_json\": \"status\"}"));
  r2 = run_src ("prompt=x", "fakesink");
  assert_error (r2, GST_RESOURCE_ERROR_READ, "not valid JSON");
  fail_unless (sim_reset (sim));

  fail_unless (sim_set_faults (sim, "{\"empty_results\": true}"));
  r3 = run_src ("prompt=x", "fakesink");
  assert_error (r3, GST_RESOURCE_ERROR_READ, "without any result URL");
}

GST_END_TEST;

GST_START_TEST (test_unknown_status_keeps_polling)
{
  g_autoptr (Run) r = NULL;
  gboolean saw_queued = FALSE;
  guint i;

  fail_unless (sim_set_faults (sim, "{\"status_value\": \"queued\"}"));
  r = run_src ("prompt=x", "fakesink");
  assert_ok (r);
  for (i = 0; i < r->tasks->len; i++) {
    const GstStructure *s = g_ptr_array_index (r->tasks, i);

    if (!g_strcmp0 (gst_structure_get_string (s, "raw-status"), "queued")) {
      saw_queued = TRUE;
      fail_unless_equals_string (gst_structure_get_string (s, "status"),
          "pending");
    }
  }
  fail_unless (saw_queued);
}

GST_END_TEST;

/* --- seeking a large moov-at-end MP4 --------------------------------------- */

static void
check_seek_large (const gchar * demux)
{
  g_autofree gchar *src = src_desc ("prompt=\"a long take\" ratio=16:9");
  g_autofree gchar *desc = g_strdup_printf ("%s ! %s ! fakesink sync=false",
      src, demux);
  GstElement *pipeline = launch (desc);
  GstElement *el = gst_bin_get_by_name (GST_BIN (pipeline), "src");
  gint64 duration = 0, size = 0;
  g_autofree gchar *range = NULL;

  fail_unless (sim_set_faults (sim, "{\"large_results\": true}"));
  gst_element_set_state (pipeline, GST_STATE_PAUSED);
  wait_for (pipeline, GST_MESSAGE_ASYNC_DONE);

  fail_unless (gst_element_query_duration (el, GST_FORMAT_BYTES, &size));
  fail_unless (size > 10 * 1000 * 1000, "only %" G_GINT64_FORMAT " bytes",
      size);
  fail_unless (gst_element_query_duration (pipeline, GST_FORMAT_TIME,
          &duration));
  fail_unless (duration > GST_SECOND);

  fail_unless (gst_element_seek_simple (pipeline, GST_FORMAT_TIME,
          GST_SEEK_FLAG_FLUSH | GST_SEEK_FLAG_KEY_UNIT, duration / 2));
  wait_for (pipeline, GST_MESSAGE_ASYNC_DONE);
  gst_element_set_state (pipeline, GST_STATE_PLAYING);
  wait_for (pipeline, GST_MESSAGE_EOS);
  gst_element_set_state (pipeline, GST_STATE_NULL);

  range = sim_stat_string (sim, "last_range");
  fail_unless (range != NULL && g_str_has_prefix (range, "bytes="),
      "no Range request reached the result host");
  fail_unless_equals_int (sim_stat (sim, "cdn_auth_headers"), 0);
  gst_object_unref (el);
  gst_object_unref (pipeline);
}

GST_START_TEST (test_seek_large_moov_at_end_pull)
{
  check_seek_large ("qtdemux");
}

GST_END_TEST;

GST_START_TEST (test_seek_large_moov_at_end_push)
{
  /* the queue makes qtdemux run in push mode: seeks become Range requests */
  check_seek_large ("queue ! qtdemux");
}

GST_END_TEST;

/* --- set_state(NULL) is prompt at every stage -------------------------------- */

static gboolean
task_status_seen (GstBus * bus, const gchar * status)
{
  gint64 end = g_get_monotonic_time () + 10 * G_TIME_SPAN_SECOND;

  while (g_get_monotonic_time () < end) {
    g_autoptr (GstMessage) msg = gst_bus_timed_pop_filtered (bus,
        100 * GST_MSECOND, GST_MESSAGE_ELEMENT);
    const GstStructure *s = msg ? gst_message_get_structure (msg) : NULL;

    if (s && gst_structure_has_name (s, "grokimagine-task") &&
        !g_strcmp0 (gst_structure_get_string (s, "status"), status))
      return TRUE;
  }
  return FALSE;
}

static gboolean
stat_reaches (const gchar * name, gint64 value)
{
  gint i;

  for (i = 0; i < 200; i++) {
    if (sim_stat (sim, name) >= value)
      return TRUE;
    g_usleep (20 * 1000);
  }
  return FALSE;
}

/* @stage: "post" (the POST waits for a rate-limit window: nothing of it
 * has left, so it is cancelled at once; one that has left is awaited, see
 * payonce.c), "poll" (a poll hangs), "wait" (between polls) */
static void
check_prompt_stop (const gchar * stage)
{
  g_autofree gchar *src = src_desc ("prompt=x poll-interval=5000");
  g_autofree gchar *desc = g_strdup_printf ("%s ! fakesink", src);
  GstElement *pipeline = launch (desc);
  GstBus *bus = gst_element_get_bus (pipeline);
  gint64 t0, elapsed;

  fail_unless (sim_set_faults (sim, "{\"job_duration_ms\": 60000}"));
  if (g_str_equal (stage, "post")) {
    g_autofree gchar *url = g_strdup_printf ("%s/v1/status?task_id=none",
        sim_api_url (sim));
    g_autoptr (SoupSession) session = soup_session_new ();
    g_autoptr (SoupMessage) msg = soup_message_new ("GET", url);
    g_autoptr (GBytes) body = NULL;

    /* the one request of the key's window of a minute goes elsewhere */
    fail_unless (sim_set_faults (sim, "{\"rate_limit\": 1, "
            "\"rate_window_ms\": 60000}"));
    soup_message_headers_replace (soup_message_get_request_headers (msg),
        "Authorization", "Bearer " SIM_KEY);
    body = soup_session_send_and_read (session, msg, NULL, NULL);
  }

  fail_unless_equals_int (gst_element_set_state (pipeline,
          GST_STATE_PLAYING), GST_STATE_CHANGE_ASYNC);
  if (g_str_equal (stage, "post")) {
    fail_unless (stat_reaches ("rate_limited", 1));
  } else {
    fail_unless (task_status_seen (bus, "pending"));
    if (g_str_equal (stage, "poll")) {
      gint64 polls = sim_stat (sim, "status_requests");

      fail_unless (sim_set_faults (sim, "{\"response_delay_ms\": 20000}"));
      /* the next poll, 5 s later, hangs: wait till it is under way */
      fail_unless (stat_reaches ("status_requests", polls + 1) ||
          stat_reaches ("status_requests", polls + 1));
    }
  }
  g_usleep (50 * 1000);

  t0 = g_get_monotonic_time ();
  gst_element_set_state (pipeline, GST_STATE_NULL);
  elapsed = (g_get_monotonic_time () - t0) / 1000;
  fail_unless (elapsed < 200, "set_state(NULL) during the %s took %"
      G_GINT64_FORMAT " ms", stage, elapsed);

  gst_object_unref (bus);
  gst_object_unref (pipeline);
}

GST_START_TEST (test_stop_during_post)
{
  check_prompt_stop ("post");
}

GST_END_TEST;

GST_START_TEST (test_stop_during_poll)
{
  check_prompt_stop ("poll");
}

GST_END_TEST;

GST_START_TEST (test_stop_between_polls)
{
  check_prompt_stop ("wait");
}

GST_END_TEST;

/* set_state(PAUSED) never blocks for the job: it returns ASYNC at once */
GST_START_TEST (test_paused_is_async)
{
  g_autofree gchar *src = src_desc ("prompt=x");
  g_autofree gchar *desc = g_strdup_printf ("%s ! fakesink", src);
  GstElement *pipeline = launch (desc);

  fail_unless (sim_set_faults (sim, "{\"job_duration_ms\": 60000, "
          "\"response_delay_ms\": 20000}"));
  fail_unless_equals_int (gst_element_set_state (pipeline, GST_STATE_PAUSED),
      GST_STATE_CHANGE_ASYNC);
  gst_element_set_state (pipeline, GST_STATE_NULL);
  gst_object_unref (pipeline);
}

GST_END_TEST;

/* --- native GStreamer: URI, progress, tags ----------------------------------- */

GST_START_TEST (test_uri_handler)
{
  g_autoptr (GError) err = NULL;
  g_autofree gchar *prompt = NULL, *ratio = NULL, *task = NULL, *uri = NULL;
  GstElement *src;
  gint api = 0, model = 0;
  guint poll = 0;
  GValue arr = G_VALUE_INIT;

  src = gst_element_make_from_uri (GST_URI_SRC, "grokimagine://?prompt="
      "a%20quiet%20lake%20%26%20a%20%3D%20sign&ratio=16:9&api=grok5imagine"
      "&model=image-to-video&poll-interval=250"
      "&images=%3Chttps://a.example/1.png,https://a.example/2.png%3E",
      NULL, &err);
  fail_unless (src != NULL, "%s", err ? err->message : "");
  g_object_get (src, "prompt", &prompt, "ratio", &ratio, "api", &api,
      "model", &model, "poll-interval", &poll, NULL);
  fail_unless_equals_string (prompt, "a quiet lake & a = sign");
  fail_unless_equals_string (ratio, "16:9");
  fail_unless_equals_int (api, 1);
  fail_unless_equals_int (model, 2);
  fail_unless_equals_int (poll, 250);
  g_value_init (&arr, GST_TYPE_ARRAY);
  g_object_get_property (G_OBJECT (src), "images", &arr);
  fail_unless_equals_int (gst_value_array_get_size (&arr), 2);
  fail_unless_equals_string (g_value_get_string (gst_value_array_get_value
          (&arr, 1)), "https://a.example/2.png");
  g_value_unset (&arr);

  /* the URI round-trips the request, and never carries a key */
  g_object_set (src, "api-key", "sk-never-in-uri", NULL);
  uri = gst_uri_handler_get_uri (GST_URI_HANDLER (src));
  fail_unless (strstr (uri, "sk-never") == NULL);
  fail_unless (strstr (uri, "prompt=a%20quiet%20lake") != NULL, "%s", uri);

  /* ... nor takes one */
  fail_if (gst_uri_handler_set_uri (GST_URI_HANDLER (src),
          "grokimagine://?prompt=x&api-key=sk-1", &err));
  fail_unless (strstr (err->message, "never taken from a URI") != NULL);
  g_clear_error (&err);
  fail_if (gst_uri_handler_set_uri (GST_URI_HANDLER (src),
          "grokimagine://?prompt=x&no-such-thing=1", &err));
  fail_unless (strstr (err->message, "no-such-thing") != NULL);
  g_clear_error (&err);
  fail_if (gst_uri_handler_set_uri (GST_URI_HANDLER (src),
          "grokimagine://?ratio=1:1&timeout=forever", &err));
  g_clear_error (&err);
  fail_if (gst_uri_handler_set_uri (GST_URI_HANDLER (src),
          "grokimagine://elsewhere/x", &err));
  g_clear_error (&err);

  fail_unless (gst_uri_handler_set_uri (GST_URI_HANDLER (src),
          "grokimagine://task/n31b6d54c8f4b4c4e8kie?api=grok5imagine", &err));
  g_object_get (src, "task-id", &task, NULL);
  fail_unless_equals_string (task, "n31b6d54c8f4b4c4e8kie");
  gst_object_unref (src);
}

GST_END_TEST;

/* playbin's stop and play (and gst-play's "previous", looping) make a new
 * source element for the same URI: it reattaches to the task, one job */
GST_START_TEST (test_playbin_stop_play_pays_once)
{
  const gchar *uri = "grokimagine://?prompt=played%20twice&poll-interval=50";
  g_autoptr (Run) once = run_playbin (uri, NULL, NULL);
  g_autoptr (Run) again = NULL;

  assert_ok (once);
  again = run_playbin (uri, NULL, NULL);
  assert_ok (again);
  fail_unless_equals_int (sim_stat (sim, "accepted_submits"), 1);
  fail_unless_equals_string (gst_structure_get_string (last_task (again),
          "task-id"), gst_structure_get_string (last_task (once),
          "task-id"));
}

GST_END_TEST;

/* playbin (uridecodebin, typefind, qtdemux) plays a grokimagine:// URI */
GST_START_TEST (test_playbin_uri)
{
  g_autoptr (Run) r = run_playbin ("grokimagine://?prompt=a%20quiet%20lake"
      "&ratio=16:9&poll-interval=50", NULL, NULL);

  assert_ok (r);
  fail_unless_equals_int (sim_stat (sim, "accepted_submits"), 1);
}

GST_END_TEST;

static gboolean
has_progress (Run * r, const gchar * entry)
{
  guint i;

  for (i = 0; i < r->progress->len; i++)
    if (g_str_equal (g_ptr_array_index (r->progress, i), entry))
      return TRUE;
  return FALSE;
}

static gint
progress_index (Run * r, const gchar * prefix)
{
  guint i;

  for (i = 0; i < r->progress->len; i++)
    if (g_str_has_prefix (g_ptr_array_index (r->progress, i), prefix))
      return i;
  return -1;
}

GST_START_TEST (test_progress_messages)
{
  g_autoptr (Run) r = run_src ("prompt=x", "fakesink");

  assert_ok (r);
  fail_unless (has_progress (r, "submit start 0"));
  fail_unless (has_progress (r, "submit complete 100"));
  fail_unless (has_progress (r, "generate start 0"));
  fail_unless (progress_index (r, "generate continue") >= 0);
  fail_unless (has_progress (r, "generate complete 100"));
  fail_unless (has_progress (r, "download complete 100"));
  fail_unless (progress_index (r, "submit complete") <
      progress_index (r, "generate start"));
  fail_unless (progress_index (r, "generate complete") <
      progress_index (r, "download complete"));
}

GST_END_TEST;

static GstBusSyncReply
record_progress (GstBus * bus, GstMessage * msg, gpointer data)
{
  if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_PROGRESS) {
    GstProgressType type;
    g_autofree gchar *code = NULL, *text = NULL;

    gst_message_parse_progress (msg, &type, &code, &text);
    if (type == GST_PROGRESS_TYPE_CANCELED)
      g_atomic_int_set ((gint *) data, 1);
  }
  return GST_BUS_PASS;
}

/* Going to NULL while waiting for the job cancels the operation */
GST_START_TEST (test_progress_canceled)
{
  g_autofree gchar *src = src_desc ("prompt=x");
  g_autofree gchar *desc = g_strdup_printf ("%s ! fakesink", src);
  GstElement *pipeline = launch (desc);
  GstBus *bus = gst_element_get_bus (pipeline);
  gint canceled = 0;
  gint i;

  fail_unless (sim_set_faults (sim, "{\"job_duration_ms\": 60000}"));
  gst_bus_set_sync_handler (bus, record_progress, &canceled, NULL);
  gst_element_set_state (pipeline, GST_STATE_PLAYING);
  for (i = 0; i < 100 && sim_stat (sim, "status_requests") < 1; i++)
    g_usleep (20 * 1000);
  gst_element_set_state (pipeline, GST_STATE_NULL);
  fail_unless (g_atomic_int_get (&canceled));
  gst_bus_set_sync_handler (bus, NULL, NULL, NULL);
  gst_object_unref (bus);
  gst_object_unref (pipeline);
}

GST_END_TEST;

GST_START_TEST (test_tags)
{
  g_autoptr (Run) r = run_src ("prompt=\"a tagged fox\"", "fakesink");
  g_autofree gchar *title = NULL, *comment = NULL, *sink_title = NULL;
  const gchar *task_id;

  assert_ok (r);
  task_id = gst_structure_get_string (last_task (r), "task-id");
  /* a tag message on the bus */
  fail_unless (r->src_tags != NULL);
  fail_unless (gst_tag_list_get_string (r->src_tags, GST_TAG_TITLE, &title));
  fail_unless_equals_string (title, "a tagged fox");
  fail_unless (gst_tag_list_get_string (r->src_tags, GST_TAG_COMMENT,
          &comment));
  fail_unless (strstr (comment, task_id) != NULL, "%s", comment);
  /* and a tag event downstream */
  fail_unless (r->sink_tags != NULL);
  fail_unless (gst_tag_list_get_string (r->sink_tags, GST_TAG_TITLE,
          &sink_title));
  fail_unless_equals_string (sink_title, "a tagged fox");
}

GST_END_TEST;

/* Reattached, the title comes from the API's echo of the request */
GST_START_TEST (test_tags_when_reattached)
{
  g_autofree gchar *id = sim_create_task (sim, "{\"api\": \"v1\", "
      "\"mode\": \"fun\", \"prompt\": \"an echoed prompt\", "
      "\"ratio\": \"1:1\"}");
  g_autofree gchar *props = g_strdup_printf ("task-id=%s", id);
  g_autoptr (Run) r = run_src (props, "fakesink");
  g_autofree gchar *title = NULL;

  assert_ok (r);
  fail_unless (gst_tag_list_get_string (r->src_tags, GST_TAG_TITLE, &title));
  fail_unless_equals_string (title, "an echoed prompt");
}

GST_END_TEST;

/* --- what a URI may carry ----------------------------------------------------- */

static const gchar *const uri_may_set[] = {
  "prompt", "mode", "ratio", "images", "api", "model", "input-task-id",
  "result-index", "poll-interval", "timeout", NULL
};

/* Every writable property but the request's own is refused in a URI, with
 * an error naming it, and a refused URI changes nothing */
GST_START_TEST (test_uri_refuses_other_parameters)
{
  GstElement *src = gst_element_factory_make ("grokimaginesrc", NULL);
  g_autofree GParamSpec **pspecs = NULL;
  g_autofree gchar *prompt = NULL, *base_url = NULL;
  guint n, i, refused = 0;

  fail_unless (src != NULL);
  g_object_set (src, "prompt", "before", NULL);
  pspecs = g_object_class_list_properties (G_OBJECT_GET_CLASS (src), &n);
  for (i = 0; i < n; i++) {
    const gchar *name = g_param_spec_get_name (pspecs[i]);
    g_autofree gchar *uri = NULL;
    g_autoptr (GError) err = NULL;

    if (!(pspecs[i]->flags & G_PARAM_WRITABLE)
        || g_strv_contains (uri_may_set, name))
      continue;
    uri = g_strdup_printf ("grokimagine://?prompt=after&%s=1", name);
    fail_if (gst_uri_handler_set_uri (GST_URI_HANDLER (src), uri, &err),
        "a URI set %s", name);
    fail_unless (err != NULL && strstr (err->message, name) != NULL,
        "the error does not name %s: %s", name, err ? err->message : "");
    refused++;
  }
  /* base-url, api-key, cache-dir, ssl-strict, refresh, public, ... */
  fail_unless (refused >= 10, "only %u parameters refused", refused);
  g_object_get (src, "prompt", &prompt, "base-url", &base_url, NULL);
  fail_unless_equals_string (prompt, "before");
  fail_unless (base_url == NULL);

  /* the allowed ones are taken */
  fail_unless (gst_uri_handler_set_uri (GST_URI_HANDLER (src),
          "grokimagine://?prompt=after&mode=fun&ratio=16:9&api=grok5imagine"
          "&model=upscale&input-task-id=t1&result-index=1&poll-interval=100"
          "&timeout=30&images=%3Chttps://a.example/1.png%3E", NULL));
  g_clear_pointer (&prompt, g_free);
  g_object_get (src, "prompt", &prompt, NULL);
  fail_unless_equals_string (prompt, "after");
  gst_object_unref (src);
}

GST_END_TEST;

/* get_uri never says where the key goes */
GST_START_TEST (test_uri_never_carries_base_url)
{
  GstElement *src = gst_element_factory_make ("grokimaginesrc", NULL);
  g_autofree gchar *uri = NULL;

  g_object_set (src, "prompt", "x", "base-url", "http://127.0.0.1:9", NULL);
  uri = gst_uri_handler_get_uri (GST_URI_HANDLER (src));
  fail_unless (strstr (uri, "127.0.0.1") == NULL, "%s", uri);
  fail_unless (strstr (uri, "base-url") == NULL, "%s", uri);
  gst_object_unref (src);
}

GST_END_TEST;

/* A URI from a playlist or a link cannot send the key to its own host */
GST_START_TEST (test_uri_key_stays_home)
{
  g_autoptr (SimProcess) other = sim_start (NULL, NULL);
  g_autofree gchar *base = NULL, *uri = NULL, *dbg = NULL;
  g_autoptr (GError) err = NULL;
  g_autoptr (Run) r = NULL;

  fail_unless (other != NULL);
  base = g_uri_escape_string (sim_api_url (other), NULL, FALSE);
  uri = g_strdup_printf ("grokimagine://?prompt=x&poll-interval=50"
      "&base-url=%s", base);
  r = run_playbin (uri, NULL, NULL);
  fail_unless (r->error != NULL, "playbin played a URI with base-url");
  gst_message_parse_error (r->error, &err, &dbg);
  fail_unless (strstr (err->message, "cannot set base-url") != NULL, "%s",
      err->message);
  /* neither host saw a request, let alone the key */
  fail_unless_equals_int (sim_stat (other, "api_requests"), 0);
  fail_unless_equals_int (sim_stat (sim, "api_requests"), 0);
}

GST_END_TEST;

/* v1: "status": "error" with an error_message is a failure at once, not a
 * task polled until the timeout */
GST_START_TEST (test_undocumented_failure_status)
{
  const gchar *why = "Network error, please try again later.";
  g_autoptr (Run) r = NULL;
  const GstStructure *details;

  fail_unless (sim_set_faultsf (sim, "{\"status_body\": \"{\\\"code\\\": 200, "
          "\\\"message\\\": \\\"success\\\", \\\"data\\\": {\\\"status\\\": "
          "\\\"error\\\", \\\"error_message\\\": \\\"%s\\\"}}\"}", why));
  r = run_src ("prompt=x timeout=10", "fakesink");
  details = assert_error (r, GST_RESOURCE_ERROR_FAILED, why);
  fail_unless (gst_structure_get_string (details, "task-id") != NULL);
  fail_unless_equals_int (sim_stat (sim, "status_requests"), 1);
  fail_unless_equals_string (gst_structure_get_string (last_task (r),
          "status"), "failed");
}

GST_END_TEST;

static Suite *
grokimaginesrc_suite (void)
{
  Suite *s = suite_create ("grokimaginesrc");
  TCase *tc = tcase_create ("general");

  suite_add_tcase (s, tc);
  tcase_set_timeout (tc, 120);
  tcase_add_unchecked_fixture (tc, start_simulator, stop_simulator);
  tcase_add_checked_fixture (tc, setup, teardown);
  tcase_add_test (tc, test_v1_video_streams_result_bytes);
  tcase_add_test (tc, test_v1_remux_keeps_ratio);
  tcase_add_test (tc, test_decodebin_plays);
  tcase_add_test (tc, test_grok5_text_to_video);
  tcase_add_test (tc, test_grok5_text_to_image);
  tcase_add_test (tc, test_grok5_image_to_video);
  tcase_add_test (tc, test_grok5_upscale);
  tcase_add_test (tc, test_result_index);
  tcase_add_test (tc, test_restart_reuses_task);
  tcase_add_test (tc, test_reattach_by_task_id);
  tcase_add_test (tc, test_validation);
  tcase_add_test (tc, test_missing_key);
  tcase_add_test (tc, test_key_from_environment);
  tcase_add_test (tc, test_bad_base_url);
  tcase_add_test (tc, test_http_errors);
  tcase_add_test (tc, test_wrong_key);
  tcase_add_test (tc, test_insufficient_credits);
  tcase_add_test (tc, test_status_error_names_task);
  tcase_add_test (tc, test_failed_task);
  tcase_add_test (tc, test_grok5_failed_task_refunded);
  tcase_add_test (tc, test_failed_render_says_why);
  tcase_add_test (tc, test_timeout_names_task);
  tcase_add_test (tc, test_unreachable_host);
  tcase_add_test (tc, test_bad_answers);
  tcase_add_test (tc, test_unknown_status_keeps_polling);
  tcase_add_test (tc, test_seek_large_moov_at_end_pull);
  tcase_add_test (tc, test_seek_large_moov_at_end_push);
  tcase_add_test (tc, test_stop_during_post);
  tcase_add_test (tc, test_stop_during_poll);
  tcase_add_test (tc, test_stop_between_polls);
  tcase_add_test (tc, test_paused_is_async);
  tcase_add_test (tc, test_uri_handler);
  tcase_add_test (tc, test_playbin_uri);
  tcase_add_test (tc, test_playbin_stop_play_pays_once);
  tcase_add_test (tc, test_progress_messages);
  tcase_add_test (tc, test_progress_canceled);
  tcase_add_test (tc, test_tags);
  tcase_add_test (tc, test_tags_when_reattached);
  tcase_add_test (tc, test_uri_refuses_other_parameters);
  tcase_add_test (tc, test_uri_never_carries_base_url);
  tcase_add_test (tc, test_uri_key_stays_home);
  tcase_add_test (tc, test_undocumented_failure_status);
  return s;
}

GST_CHECK_MAIN (grokimaginesrc);
