/* Shared by the element tests: the simulator, running pipelines, and
 * asserting on what they posted. */
#include "common.h"

#include <gst/base/gstbasesink.h>

#include <signal.h>
#include <string.h>
#include <sys/resource.h>

SimProcess *sim;

/* Every pipeline a test made (weakly: the test still decides when it goes),
 * so that teardown() stops it even when a check failed half-way. A failed
 * check jumps out of the test, past its own cleanup: a pipeline left
 * running keeps its streaming threads, and the program would wait for them
 * forever at exit. */
static GPtrArray *live_pipelines;

static void
weak_ref_free (GWeakRef * ref)
{
  g_weak_ref_clear (ref);
  g_free (ref);
}

GstElement *
track_pipeline (GstElement * pipeline)
{
  GWeakRef *ref = g_new0 (GWeakRef, 1);

  if (live_pipelines == NULL)
    live_pipelines = g_ptr_array_new_with_free_func ((GDestroyNotify)
        weak_ref_free);
  g_weak_ref_init (ref, pipeline);
  g_ptr_array_add (live_pipelines, ref);
  return pipeline;
}

GstElement *
launch (const gchar * desc)
{
  g_autoptr (GError) err = NULL;
  GstElement *pipeline = gst_parse_launch (desc, &err);

  fail_unless (pipeline != NULL && err == NULL, "cannot parse '%s': %s",
      desc, err ? err->message : "");
  return track_pipeline (pipeline);
}

void
teardown (void)
{
  guint i;

  /* what a test set for the element, left by a failed check */
  g_unsetenv ("GROK_IMAGINE_API_KEY");
  g_unsetenv ("GROK_IMAGINE_BASE_URL");
  g_unsetenv ("GROK_IMAGINE_CACHE_DIR");
  if (live_pipelines == NULL)
    return;
  for (i = 0; i < live_pipelines->len; i++) {
    GstElement *pipeline = g_weak_ref_get (g_ptr_array_index (live_pipelines,
            i));

    if (pipeline) {
      gst_element_set_state (pipeline, GST_STATE_NULL);
      gst_object_unref (pipeline);
    }
  }
  g_ptr_array_set_size (live_pipelines, 0);
}

/* A grokimaginesrc pointed at the simulator, as a launch-line fragment.
 * Its tasks are its own (share-tasks=false): the tests of a program run in
 * one process and often repeat a request. */
gchar *
src_desc (const gchar * extra)
{
  return g_strdup_printf ("grokimaginesrc name=src base-url=%s api-key="
      SIM_KEY " poll-interval=50 share-tasks=false %s", sim_api_url (sim),
      extra);
}

void
run_free (Run * r)
{
  gst_clear_message (&r->error);
  g_ptr_array_unref (r->tasks);
  g_ptr_array_unref (r->warnings);
  g_ptr_array_unref (r->progress);
  gst_clear_tag_list (&r->src_tags);
  gst_clear_tag_list (&r->sink_tags);
  g_string_free (r->log, TRUE);
  g_free (r);
}

static void
collect (Run * r, GstMessage * msg)
{
  const GstStructure *s = gst_message_get_structure (msg);
  g_autoptr (GError) err = NULL;
  g_autofree gchar *dbg = NULL;
  g_autofree gchar *text = s ? gst_structure_to_string (s) : NULL;

  /* everything a bus watcher could see, for tests that look for leaks */
  g_string_append_printf (r->log, "%s %s\n", GST_MESSAGE_TYPE_NAME (msg),
      text ? text : "");
  switch (GST_MESSAGE_TYPE (msg)) {
    case GST_MESSAGE_ERROR:
      gst_message_parse_error (msg, &err, &dbg);
      g_string_append_printf (r->log, "%s %s\n", err->message, dbg);
      if (r->error == NULL)
        r->error = gst_message_ref (msg);
      break;
    case GST_MESSAGE_WARNING:
      gst_message_parse_warning (msg, &err, &dbg);
      g_string_append_printf (r->log, "%s %s\n", err->message, dbg);
      g_ptr_array_add (r->warnings, g_strdup (err->message));
      break;
    case GST_MESSAGE_EOS:
      r->eos = TRUE;
      break;
    case GST_MESSAGE_PROGRESS:{
      GstProgressType type;
      g_autofree gchar *code = NULL, *ptext = NULL;
      gint percent = -1;

      gst_message_parse_progress (msg, &type, &code, &ptext);
      gst_structure_get_int (s, "percent", &percent);
      g_ptr_array_add (r->progress, g_strdup_printf ("%s %s %d", code,
              g_enum_get_value (g_type_class_peek (GST_TYPE_PROGRESS_TYPE),
                  type)->value_nick, percent));
      break;
    }
    case GST_MESSAGE_TAG:{
      GstTagList *tags, **into;

      gst_message_parse_tag (msg, &tags);
      into = GST_IS_BASE_SINK (GST_MESSAGE_SRC (msg)) ? &r->sink_tags :
          &r->src_tags;
      if (*into)
        gst_tag_list_insert (*into, tags, GST_TAG_MERGE_REPLACE);
      else
        *into = gst_tag_list_copy (tags);
      gst_tag_list_unref (tags);
      break;
    }
    case GST_MESSAGE_ELEMENT:
      if (gst_structure_has_name (s, "grokimagine-task"))
        g_ptr_array_add (r->tasks, gst_structure_copy (s));
      break;
    default:
      break;
  }
}

/* Runs @pipeline to EOS or error, bounded in time, collecting messages */
Run *
run_pipeline (GstElement * pipeline)
{
  Run *r = g_new0 (Run, 1);
  GstBus *bus = gst_element_get_bus (pipeline);
  gint64 end = g_get_monotonic_time () + RUN_TIMEOUT_S * G_TIME_SPAN_SECOND;

  r->tasks = g_ptr_array_new_with_free_func ((GDestroyNotify)
      gst_structure_free);
  r->warnings = g_ptr_array_new_with_free_func (g_free);
  r->progress = g_ptr_array_new_with_free_func (g_free);
  r->log = g_string_new (NULL);
  track_pipeline (pipeline);
  r->start_ret = gst_element_set_state (pipeline, GST_STATE_PLAYING);
  while (!r->eos && r->error == NULL && g_get_monotonic_time () < end) {
    GstMessage *msg = gst_bus_timed_pop (bus, 100 * GST_MSECOND);

    if (msg) {
      collect (r, msg);
      gst_message_unref (msg);
    } else if (r->start_ret == GST_STATE_CHANGE_FAILURE) {
      break;
    }
  }
  fail_unless (r->eos || r->error, "pipeline neither ended nor failed");
  gst_element_set_state (pipeline, GST_STATE_NULL);
  /* messages posted while going down */
  while (TRUE) {
    GstMessage *msg = gst_bus_pop (bus);

    if (msg == NULL)
      break;
    collect (r, msg);
    gst_message_unref (msg);
  }
  gst_object_unref (bus);
  return r;
}

Run *
run_launch (const gchar * desc)
{
  GstElement *pipeline = launch (desc);
  Run *r;

  r = run_pipeline (pipeline);
  gst_object_unref (pipeline);
  return r;
}

Run *
run_src (const gchar * src_props, const gchar * tail)
{
  g_autofree gchar *src = src_desc (src_props);
  g_autofree gchar *desc = g_strdup_printf ("%s ! %s", src, tail);

  return run_launch (desc);
}

void
assert_ok (Run * r)
{
  if (r->error) {
    g_autoptr (GError) err = NULL;
    g_autofree gchar *dbg = NULL;

    gst_message_parse_error (r->error, &err, &dbg);
    fail ("unexpected error: %s (%s)", err->message, dbg);
  }
  fail_unless (r->eos);
}

/* Asserts an error of @code whose text contains @needle; returns details */
const GstStructure *
assert_error (Run * r, GstResourceError code, const gchar * needle)
{
  g_autoptr (GError) err = NULL;
  const GstStructure *details = NULL;

  fail_unless (r->error != NULL, "expected an error with '%s'", needle);
  gst_message_parse_error (r->error, &err, NULL);
  fail_unless (err->domain == GST_RESOURCE_ERROR, "domain %s: %s",
      g_quark_to_string (err->domain), err->message);
  fail_unless_equals_int (err->code, code);
  fail_unless (strstr (err->message, needle) != NULL,
      "error '%s' lacks '%s'", err->message, needle);
  gst_message_parse_error_details (r->error, &details);
  return details;
}

void
assert_http_status (const GstStructure * details, guint status)
{
  guint got = 0;

  fail_unless (details != NULL);
  fail_unless (gst_structure_get_uint (details, "http-status-code", &got));
  fail_unless_equals_int (got, status);
}

const GstStructure *
last_task (Run * r)
{
  fail_unless (r->tasks->len > 0, "no grokimagine-task message");
  return g_ptr_array_index (r->tasks, r->tasks->len - 1);
}

const gchar *
result_url (const GstStructure * s, guint i)
{
  const GValue *urls = gst_structure_get_value (s, "result-urls");

  fail_unless (urls && GST_VALUE_HOLDS_ARRAY (urls));
  fail_unless (i < gst_value_array_get_size (urls));
  return g_value_get_string (gst_value_array_get_value (urls, i));
}

GBytes *
http_get (const gchar * url)
{
  g_autoptr (SoupSession) session = soup_session_new ();
  g_autoptr (SoupMessage) msg = soup_message_new ("GET", url);
  GBytes *body = soup_session_send_and_read (session, msg, NULL, NULL);

  fail_unless (body != NULL);
  fail_unless_equals_int (soup_message_get_status (msg), 200);
  return body;
}

GBytes *
read_file (const gchar * path)
{
  gchar *data;
  gsize len;

  fail_unless (g_file_get_contents (path, &data, &len, NULL));
  return g_bytes_new_take (data, len);
}

gchar *
temp_path (const gchar * name)
{
  return g_build_filename (g_get_tmp_dir (), name, NULL);
}

void
setup (void)
{
  fail_unless (sim_reset (sim));
}

void
wait_for (GstElement * pipeline, GstMessageType type)
{
  GstBus *bus = gst_element_get_bus (pipeline);
  GstMessage *msg = gst_bus_timed_pop_filtered (bus, RUN_TIMEOUT_S *
      GST_SECOND, type | GST_MESSAGE_ERROR);

  fail_unless (msg != NULL, "timed out");
  if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_ERROR) {
    g_autoptr (GError) err = NULL;

    gst_message_parse_error (msg, &err, NULL);
    fail ("error: %s", err->message);
  }
  gst_message_unref (msg);
  gst_object_unref (bus);
}

void
start_simulator (void)
{
  const gchar *args[] = { "--job-duration", "300", NULL };
  g_autoptr (GError) err = NULL;

  sim = sim_start (args, &err);
  fail_unless (sim != NULL, "cannot start the simulator: %s",
      err ? err->message : "?");
}

void
stop_simulator (void)
{
  g_clear_pointer (&sim, sim_stop);
}


/* Polls a counter of the simulator until it reaches @value, for at most
 * 10 s */
gboolean
sim_stat_reaches (const gchar * name, gint64 value)
{
  guint i;

  for (i = 0; i < 500; i++) {
    if (sim_stat (sim, name) >= value)
      return TRUE;
    g_usleep (20 * 1000);
  }
  return FALSE;
}

gboolean
run_has_warning (Run * r, const gchar * needle)
{
  guint i;

  for (i = 0; i < r->warnings->len; i++)
    if (strstr (g_ptr_array_index (r->warnings, i), needle))
      return TRUE;
  return FALSE;
}

/* What the bus of @pipeline holds now, collected as run_pipeline() does */
Run *
run_drain (GstElement * pipeline)
{
  Run *r = g_new0 (Run, 1);
  GstBus *bus = gst_element_get_bus (pipeline);
  GstMessage *msg;

  r->tasks = g_ptr_array_new_with_free_func ((GDestroyNotify)
      gst_structure_free);
  r->warnings = g_ptr_array_new_with_free_func (g_free);
  r->progress = g_ptr_array_new_with_free_func (g_free);
  r->log = g_string_new (NULL);
  while ((msg = gst_bus_pop (bus))) {
    collect (r, msg);
    gst_message_unref (msg);
  }
  gst_object_unref (bus);
  return r;
}

/* Runs playbin on @uri, with fake sinks, the key and the simulator's base
 * URL from the environment (a URI never names the host); @watch (may be
 * NULL) sees every message as it is posted */
Run *
run_playbin (const gchar * uri, GstBusSyncHandler watch, gpointer data)
{
  GstElement *playbin = gst_element_factory_make ("playbin", NULL);
  Run *r;

  g_setenv ("GROK_IMAGINE_API_KEY", SIM_KEY, TRUE);
  g_setenv ("GROK_IMAGINE_BASE_URL", sim_api_url (sim), TRUE);
  g_object_set (playbin, "uri", uri, "video-sink",
      gst_element_factory_make ("fakesink", NULL), "audio-sink",
      gst_element_factory_make ("fakesink", NULL), NULL);
  if (watch) {
    GstBus *bus = gst_element_get_bus (playbin);

    gst_bus_set_sync_handler (bus, watch, data, NULL);
    gst_object_unref (bus);
  }
  r = run_pipeline (playbin);
  g_unsetenv ("GROK_IMAGINE_API_KEY");
  g_unsetenv ("GROK_IMAGINE_BASE_URL");
  gst_object_unref (playbin);
  return r;
}

/* Removes @dir, a folder that holds files only */
void
remove_folder (const gchar * dir)
{
  g_autoptr (GDir) d = g_dir_open (dir, 0, NULL);
  const gchar *name;

  while (d && (name = g_dir_read_name (d))) {
    g_autofree gchar *path = g_build_filename (dir, name, NULL);

    g_unlink (path);
  }
  g_rmdir (dir);
}

static struct rlimit unlimited_size;
static void (*unlimited_xfsz) (int);

gboolean
limit_file_size (guint64 bytes)
{
  struct rlimit small;

  if (getrlimit (RLIMIT_FSIZE, &unlimited_size) != 0)
    return FALSE;
  small = unlimited_size;
  small.rlim_cur = bytes;
  unlimited_xfsz = signal (SIGXFSZ, SIG_IGN);
  return setrlimit (RLIMIT_FSIZE, &small) == 0;
}

void
unlimit_file_size (void)
{
  setrlimit (RLIMIT_FSIZE, &unlimited_size);
  signal (SIGXFSZ, unlimited_xfsz);
}

gboolean
wait_for_flag (GMutex * lock, GCond * cond, gboolean * flag, gint seconds)
{
  gint64 end = g_get_monotonic_time () + seconds * G_TIME_SPAN_SECOND;
  gboolean got;

  g_mutex_lock (lock);
  while (!*flag && g_cond_wait_until (cond, lock, end));
  got = *flag;
  g_mutex_unlock (lock);
  return got;
}

gboolean
cache_entry_has (const gchar * cache, const gchar * text)
{
  g_autoptr (GDir) dir = g_dir_open (cache, 0, NULL);
  const gchar *name;

  while (dir && (name = g_dir_read_name (dir))) {
    g_autofree gchar *path = g_build_filename (cache, name, NULL);
    g_autofree gchar *data = NULL;

    if (g_str_has_suffix (name, ".json")
        && g_file_get_contents (path, &data, NULL, NULL)
        && strstr (data, text))
      return TRUE;
  }
  return FALSE;
}
