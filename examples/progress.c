/* grokimagine-progress: an application embedding grokimaginesrc
 *
 * Generates a video from a prompt, draws the job's progress in the terminal
 * from the bus messages of the element and saves the result as an MP4 whose
 * title is the prompt:
 *
 *   export GROK_IMAGINE_API_KEY=...
 *   grokimagine-progress --prompt "a red fox running through snow" \
 *       --ratio 16:9 --output fox.mp4
 *
 * What it shows:
 *  - the "grokimagine-task" element messages: the task id, each status
 *    change, and at the end the credits the job consumed;
 *  - the GST_MESSAGE_PROGRESS messages: a spinner with the API's status
 *    while the job runs ("generate"), a bar with the percentage while the
 *    result downloads ("download"). When standard output is not a terminal
 *    it prints plain lines instead;
 *  - the tag message (title = the prompt, comment = the task id), merged
 *    into mp4mux with GstTagSetter: qtdemux does not pass the tags of its
 *    upstream on, so the application hands them to the muxer itself.
 *
 * Ctrl-C (SIGINT) or SIGTERM sets the pipeline to NULL, which cancels
 * whatever request or wait the element is in, removes the unfinished file
 * and exits with 128 + the signal number. A task that was already submitted
 * may still complete: --task-id fetches it without paying again.
 *
 * Exit status: 0 saved, 1 failed, 2 bad options, 130 interrupted.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#include <gst/gst.h>
#include <glib-unix.h>
#include <glib/gstdio.h>

#include <signal.h>
#include <stdio.h>
#include <unistd.h>

#define BAR_WIDTH 30

typedef struct
{
  GMainLoop *loop;
  GstElement *pipeline;
  GstElement *src;
  GstElement *mux;              /* NULL when the result is saved as it is */
  gboolean tty;
  gint exit_code;

  gchar *task_id;
  gchar *status;                /* the API's last status */
  gint64 credits;               /* -1 until the job ended */
  gchar *phase;                 /* "submit", "generate", "download" */
  gint percent;                 /* of the download, -1 before it */
  gint printed_percent;         /* plain output: the last one printed */
  gint64 phase_started;         /* monotonic µs */
  guint spin;
  gboolean bar_shown;           /* the terminal's last line is the bar */
} App;

/* --- drawing -------------------------------------------------------------- */

/* Removes the bar so that a permanent line can be printed */
static void
clear_bar (App * app)
{
  if (app->bar_shown) {
    fputs ("\r\033[K", stdout);
    app->bar_shown = FALSE;
  }
}

/* A line that stays, on stdout or stderr */
static void
say (App * app, FILE * to, const gchar * format, ...)
    G_GNUC_PRINTF (3, 4);

static void
say (App * app, FILE * to, const gchar * format, ...)
{
  va_list args;

  clear_bar (app);
  fflush (stdout);
  va_start (args, format);
  vfprintf (to, format, args);
  va_end (args);
  fputc ('\n', to);
  fflush (to);
}

/* How far the download is: the element reports the share of the result's
 * bytes that arrived in its local copy, whatever order the demuxer reads
 * them in */
static gint
download_percent (App * app)
{
  return app->percent;
}

/* Plain output: a line at every 10 % */
static void
print_percent (App * app, gint percent)
{
  if (app->tty || percent < 0 || (app->printed_percent >= 0
          && percent / 10 <= app->printed_percent / 10))
    return;
  app->printed_percent = percent;
  say (app, stdout, "Downloading: %d%%", percent);
}

/* The last line of the terminal: a spinner while the job runs, a bar
 * while the result downloads */
static void
draw_bar (App * app)
{
  static const gchar spinner[] = "|/-\\";
  g_autoptr (GString) line = g_string_new (NULL);
  gint64 secs;
  gint i;

  if (!app->tty || app->phase == NULL)
    return;

  secs = (g_get_monotonic_time () - app->phase_started) / G_TIME_SPAN_SECOND;
  if (g_str_equal (app->phase, "download")) {
    gint percent = MAX (download_percent (app), 0);
    gint filled = percent * BAR_WIDTH / 100;

    g_string_append_c (line, '[');
    for (i = 0; i < BAR_WIDTH; i++)
      g_string_append_c (line, i < filled ? '#' : '.');
    g_string_append_printf (line, "] %3d%% downloading", percent);
  } else if (g_str_equal (app->phase, "submit")) {
    g_string_append_printf (line, "%c submitting the job",
        spinner[app->spin % 4]);
  } else {
    g_string_append_printf (line, "%c generating: %s, %" G_GINT64_FORMAT
        " s", spinner[app->spin % 4], app->status ? app->status : "waiting",
        secs);
  }
  /* stay on one line of a narrow terminal */
  if (line->len > 78)
    g_string_truncate (line, 78);
  printf ("\r%s\033[K", line->str);
  fflush (stdout);
  app->bar_shown = TRUE;
}

static gboolean
tick (gpointer user_data)
{
  App *app = user_data;

  app->spin++;
  if (app->tty)
    draw_bar (app);
  else if (g_strcmp0 (app->phase, "download") == 0)
    print_percent (app, download_percent (app));
  return G_SOURCE_CONTINUE;
}

static void
set_phase (App * app, const gchar * phase)
{
  if (g_strcmp0 (app->phase, phase) == 0)
    return;
  g_free (app->phase);
  app->phase = g_strdup (phase);
  app->phase_started = g_get_monotonic_time ();
}

/* --- the bus -------------------------------------------------------------- */

/* Called in the thread that posts the tag message, before the element
 * streams anything: the muxer has the tags before it writes its header */
static void
on_sync_tag (GstBus * bus, GstMessage * msg, gpointer user_data)
{
  App *app = user_data;
  GstTagList *tags = NULL;

  if (app->mux == NULL || GST_MESSAGE_SRC (msg) != GST_OBJECT (app->src))
    return;
  gst_message_parse_tag (msg, &tags);
  gst_tag_setter_merge_tags (GST_TAG_SETTER (app->mux), tags,
      GST_TAG_MERGE_REPLACE);
  gst_tag_list_unref (tags);
}

static void
on_task_message (App * app, const GstStructure * s)
{
  const gchar *task_id = gst_structure_get_string (s, "task-id");
  const gchar *status = gst_structure_get_string (s, "status");
  const gchar *raw = gst_structure_get_string (s, "raw-status");
  const gchar *error_message = gst_structure_get_string (s, "error-message");
  gint64 credits;

  if (task_id && g_strcmp0 (app->task_id, task_id) != 0) {
    g_free (app->task_id);
    app->task_id = g_strdup (task_id);
  }
  if (gst_structure_get_int64 (s, "consumed-credits", &credits))
    app->credits = credits;

  if (g_strcmp0 (status, "submitted") == 0) {
    say (app, stdout, "Task %s submitted", app->task_id);
    return;
  }
  if (raw && g_strcmp0 (raw, app->status) != 0) {
    g_free (app->status);
    app->status = g_strdup (raw);
    say (app, stdout, "Task %s: %s%s%s", app->task_id, raw,
        error_message ? ": " : "", error_message ? error_message : "");
  }
}

static void
on_progress (App * app, GstMessage * msg)
{
  const GstStructure *s = gst_message_get_structure (msg);
  GstProgressType type;
  g_autofree gchar *code = NULL, *text = NULL;
  gint percent;

  gst_message_parse_progress (msg, &type, &code, &text);
  if (type == GST_PROGRESS_TYPE_ERROR || type == GST_PROGRESS_TYPE_CANCELED)
    return;                     /* the error message says more */

  set_phase (app, code);
  if (g_str_equal (code, "submit") && type == GST_PROGRESS_TYPE_START
      && !app->tty)
    say (app, stdout, "%s", text);
  if (g_str_equal (code, "download")
      && gst_structure_get_int (s, "percent", &percent)) {
    app->percent = percent;
    print_percent (app, download_percent (app));
  }
  draw_bar (app);
}

static void
on_error (App * app, GstMessage * msg)
{
  g_autoptr (GError) err = NULL;
  const GstStructure *details = NULL;
  const gchar *task_id = NULL;
  guint http_status = 0;

  gst_message_parse_error (msg, &err, NULL);
  gst_message_parse_error_details (msg, &details);
  if (details) {
    task_id = gst_structure_get_string (details, "task-id");
    gst_structure_get_uint (details, "http-status-code", &http_status);
  }
  say (app, stderr, "Error from %s: %s", GST_OBJECT_NAME (GST_MESSAGE_SRC
          (msg)), err->message);
  if (http_status >= 400)
    say (app, stderr, "  HTTP status: %u", http_status);
  if (task_id)
    say (app, stderr, "  Task: %s", task_id);
}

static gboolean
on_message (GstBus * bus, GstMessage * msg, gpointer user_data)
{
  App *app = user_data;

  switch (GST_MESSAGE_TYPE (msg)) {
    case GST_MESSAGE_ELEMENT:{
      const GstStructure *s = gst_message_get_structure (msg);

      if (GST_MESSAGE_SRC (msg) == GST_OBJECT (app->src)
          && gst_structure_has_name (s, "grokimagine-task"))
        on_task_message (app, s);
      break;
    }
    case GST_MESSAGE_PROGRESS:
      if (GST_MESSAGE_SRC (msg) == GST_OBJECT (app->src))
        on_progress (app, msg);
      break;
    case GST_MESSAGE_WARNING:{
      g_autoptr (GError) err = NULL;

      gst_message_parse_warning (msg, &err, NULL);
      say (app, stderr, "Warning: %s", err->message);
      break;
    }
    case GST_MESSAGE_ERROR:
      on_error (app, msg);
      app->exit_code = 1;
      g_main_loop_quit (app->loop);
      break;
    case GST_MESSAGE_EOS:
      print_percent (app, 100);
      app->exit_code = 0;
      g_main_loop_quit (app->loop);
      break;
    default:
      break;
  }
  return G_SOURCE_CONTINUE;
}

static gboolean
on_signal (gpointer user_data, gint signum)
{
  App *app = user_data;

  /* Cancels the request or wait the element is in, at once */
  gst_element_set_state (app->pipeline, GST_STATE_NULL);
  clear_bar (app);
  if (app->task_id)
    say (app, stderr, "Interrupted: stopped following task %s before its "
        "result was saved. The job may still complete: fetch it without "
        "paying again with --task-id %s", app->task_id, app->task_id);
  else
    say (app, stderr, "Interrupted before the job was submitted: nothing "
        "was paid for.");
  app->exit_code = 128 + signum;
  g_main_loop_quit (app->loop);
  return G_SOURCE_CONTINUE;     /* removed in main() */
}

static gboolean
on_sigint (gpointer user_data)
{
  return on_signal (user_data, SIGINT);
}

static gboolean
on_sigterm (gpointer user_data)
{
  return on_signal (user_data, SIGTERM);
}

/* --- setup ---------------------------------------------------------------- */

/* Sets an enum property from its nick, e.g. api=grok5imagine */
static gboolean
set_enum_property (GstElement * element, const gchar * name, const gchar * nick)
{
  GParamSpec *pspec =
      g_object_class_find_property (G_OBJECT_GET_CLASS (element), name);
  GEnumClass *klass;
  GEnumValue *value;
  g_autoptr (GString) nicks = g_string_new (NULL);
  guint i;

  g_assert (G_IS_PARAM_SPEC_ENUM (pspec));
  klass = G_PARAM_SPEC_ENUM (pspec)->enum_class;
  value = g_enum_get_value_by_nick (klass, nick);
  if (value) {
    g_object_set (element, name, value->value, NULL);
    return TRUE;
  }
  for (i = 0; i < klass->n_values; i++)
    g_string_append_printf (nicks, "%s%s", i ? ", " : "",
        klass->values[i].value_nick);
  g_printerr ("Unknown --%s '%s': one of %s\n", name, nick, nicks->str);
  return FALSE;
}

int
main (int argc, char **argv)
{
  g_autofree gchar *prompt = NULL, *output = NULL, *base_url = NULL;
  g_autofree gchar *api = NULL, *model = NULL, *ratio = NULL;
  g_autofree gchar *task_id = NULL;
  gint poll_interval = 0, timeout = 0;
  GOptionEntry entries[] = {
    {"prompt", 'p', 0, G_OPTION_ARG_STRING, &prompt,
        "What to generate", "TEXT"},
    {"output", 'o', 0, G_OPTION_ARG_FILENAME, &output,
        "The file to write (default grokimagine.mp4, or .png for "
          "text-to-image)", "FILE"},
    {"base-url", 0, 0, G_OPTION_ARG_STRING, &base_url,
          "API base URL (default: $GROK_IMAGINE_BASE_URL, else the API's own)",
        "URL"},
    {"api", 0, 0, G_OPTION_ARG_STRING, &api,
        "grokimagineapi (default) or grok5imagine", "API"},
    {"model", 0, 0, G_OPTION_ARG_STRING, &model,
          "With --api grok5imagine: text-to-video (default) or text-to-image",
        "MODEL"},
    {"ratio", 0, 0, G_OPTION_ARG_STRING, &ratio,
        "Aspect ratio W:H (grokimagineapi; default 1:1)", "W:H"},
    {"poll-interval", 0, 0, G_OPTION_ARG_INT, &poll_interval,
        "Milliseconds between status polls (default 2000)", "MS"},
    {"timeout", 0, 0, G_OPTION_ARG_INT, &timeout,
        "Seconds the job may take (default 900)", "S"},
    {"task-id", 0, 0, G_OPTION_ARG_STRING, &task_id,
        "Fetch the result of a task already submitted: no new job is paid "
          "for", "ID"},
    {NULL}
  };
  g_autoptr (GOptionContext) ctx = NULL;
  g_autoptr (GError) err = NULL;
  g_autoptr (GstBus) bus = NULL;
  gboolean image;
  GStatBuf st;
  App app = {
    .exit_code = 1,
    .credits = -1,
    .percent = -1,
    .printed_percent = -1,
  };
  guint ticker = 0, sigint_id, sigterm_id;

  ctx = g_option_context_new ("- generate a video from a prompt with "
      "grokimaginesrc, showing its progress");
  g_option_context_set_description (ctx, "The API key comes from the "
      "GROK_IMAGINE_API_KEY environment variable.\n");
  g_option_context_add_main_entries (ctx, entries, NULL);
  g_option_context_add_group (ctx, gst_init_get_option_group ());
  if (!g_option_context_parse (ctx, &argc, &argv, &err)) {
    g_printerr ("%s\n", err->message);
    return 2;
  }
  if ((prompt == NULL || *prompt == '\0') && task_id == NULL) {
    g_printerr ("Give a --prompt (or the --task-id of an earlier job); "
        "--help lists the options.\n");
    return 2;
  }
  if (poll_interval < 0 || timeout < 0) {
    g_printerr ("--poll-interval and --timeout must be positive\n");
    return 2;
  }
  if (model && g_strcmp0 (api, "grok5imagine") != 0) {
    g_printerr ("--model belongs to the grok5imagine API: add --api "
        "grok5imagine\n");
    return 2;
  }
  image = g_strcmp0 (model, "text-to-image") == 0;
  if (output == NULL)
    output = g_strdup (image ? "grokimagine.png" : "grokimagine.mp4");
  app.tty = isatty (STDOUT_FILENO);

  /* A PNG is saved as it is; a video is remuxed, which lets the tags in */
  app.pipeline = gst_parse_launch (image ?
      "grokimaginesrc name=src ! filesink name=sink" :
      "grokimaginesrc name=src ! qtdemux ! h264parse ! mp4mux name=mux "
      "! filesink name=sink", &err);
  if (app.pipeline == NULL || err) {
    g_printerr ("Cannot build the pipeline: %s\n", err ? err->message : "?");
    if (g_error_matches (err, GST_PARSE_ERROR, GST_PARSE_ERROR_NO_SUCH_ELEMENT))
      g_printerr ("Is the plugin installed, or GST_PLUGIN_PATH set to the "
          "directory of libgstgrokimagine.so?\n");
    gst_clear_object (&app.pipeline);
    return 1;
  }
  app.src = gst_bin_get_by_name (GST_BIN (app.pipeline), "src");
  app.mux = image ? NULL : gst_bin_get_by_name (GST_BIN (app.pipeline), "mux");
  {
    GstElement *sink = gst_bin_get_by_name (GST_BIN (app.pipeline), "sink");

    g_object_set (sink, "location", output, NULL);
    gst_object_unref (sink);
  }

  /* Properties are set on the element rather than written into the
   * pipeline description: no quoting problems with any prompt */
  if (prompt)
    g_object_set (app.src, "prompt", prompt, NULL);
  if (task_id)
    g_object_set (app.src, "task-id", task_id, NULL);
  if (base_url)
    g_object_set (app.src, "base-url", base_url, NULL);
  if (ratio)
    g_object_set (app.src, "ratio", ratio, NULL);
  if (poll_interval)
    g_object_set (app.src, "poll-interval", (guint) poll_interval, NULL);
  if (timeout)
    g_object_set (app.src, "timeout", (guint) timeout, NULL);
  if ((api && !set_enum_property (app.src, "api", api))
      || (model && !set_enum_property (app.src, "model", model))) {
    app.exit_code = 2;
    goto done;
  }

  bus = gst_element_get_bus (app.pipeline);
  gst_bus_enable_sync_message_emission (bus);
  g_signal_connect (bus, "sync-message::tag", G_CALLBACK (on_sync_tag), &app);
  gst_bus_add_watch (bus, on_message, &app);
  app.loop = g_main_loop_new (NULL, FALSE);
  sigint_id = g_unix_signal_add (SIGINT, on_sigint, &app);
  sigterm_id = g_unix_signal_add (SIGTERM, on_sigterm, &app);
  ticker = g_timeout_add (100, tick, &app);

  if (gst_element_set_state (app.pipeline, GST_STATE_PLAYING) ==
      GST_STATE_CHANGE_FAILURE) {
    /* the element posted an error saying what to fix */
    GstMessage *msg = gst_bus_pop_filtered (bus, GST_MESSAGE_ERROR);

    if (msg) {
      on_error (&app, msg);
      gst_message_unref (msg);
    } else {
      say (&app, stderr, "Cannot start the pipeline");
    }
  } else {
    g_main_loop_run (app.loop);
  }

  gst_element_set_state (app.pipeline, GST_STATE_NULL);
  if (ticker)
    g_source_remove (ticker);
  g_source_remove (sigint_id);
  g_source_remove (sigterm_id);
  gst_bus_remove_watch (bus);
  clear_bar (&app);

  if (app.exit_code == 0) {
    g_autofree gchar *size = NULL;

    size = g_stat (output, &st) == 0 ? g_format_size (st.st_size) :
        g_strdup ("?");
    printf ("Task:    %s\n", app.task_id ? app.task_id : "?");
    if (app.credits >= 0)
      printf ("Credits: %" G_GINT64_FORMAT "\n", app.credits);
    else
      printf ("Credits: unknown\n");
    printf ("Saved:   %s (%s)\n", output, size);
  } else if (g_remove (output) == 0) {
    /* an MP4 without its moov atom is of no use */
    g_printerr ("Removed the unfinished %s\n", output);
  }

done:
  g_clear_pointer (&app.loop, g_main_loop_unref);
  gst_clear_object (&app.src);
  gst_clear_object (&app.mux);
  gst_clear_object (&app.pipeline);
  g_free (app.task_id);
  g_free (app.status);
  g_free (app.phase);
  return app.exit_code;
}
