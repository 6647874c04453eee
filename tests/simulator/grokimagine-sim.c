/* grokimagine-sim: a local simulator of the two Grok Imagine HTTP APIs
 *
 * One origin serves both API dialects (grokimagineapi "v1" and
 * grok5imagine), a second origin plays the CDN and serves real MP4/PNG
 * results rendered with GStreamer, a third one ("cdn2") only redirects to
 * the CDN. Faults can be injected and counters inspected through the
 * /_sim/ control endpoints of the API origin. With --tls-cert/--tls-key
 * every origin speaks HTTPS.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE             /* POLLRDHUP */
#endif

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <glib-unix.h>
#include <glib/gstdio.h>
#include <gst/gst.h>
#include <json-glib/json-glib.h>
#include <libsoup/soup.h>

#define V1_CREDITS 40
#define MAX_PROMPT_CHARS 5000
#define OVERLAY_MAX_CHARS 100
#define VIDEO_SHORT_SIDE 180
#define LARGE_SHORT_SIDE 480
#define MAX_LONG_SIDE 1920
#define IMAGE_SIZE 320
#define VIDEO_FRAMES 50         /* 2 s at 25 fps */
#define LARGE_MIN_PIXELS (480 * 480 * 50)       /* > 10.5 MB of noise */
#define RENDER_TIMEOUT_S 120
/* The elements the results are rendered with (scripts/gst-elements.txt
 * names their packages) */
static const gchar *const render_elements[] = { "videotestsrc", "textoverlay",
  "videoconvert", "pngenc", "x264enc", "mp4mux", "filesink", NULL
};

/* What the broken-render fault puts in place of textoverlay */
#define MISSING_ELEMENT "grokimagine-sim-missing-element"
#define HUGE_PADDING (3 * 1024 * 1024)  /* bytes of data.padding */
#define FEED_TICK_MS 50

#define SIM_ERROR (g_quark_from_static_string ("grokimagine-sim-error"))

typedef enum
{
  API_V1,
  API_GROK5
} ApiKind;

typedef enum
{
  RESULT_VIDEO,
  RESULT_IMAGE
} ResultKind;

typedef enum
{
  TASK_PENDING,
  TASK_PROCESSING,
  TASK_DONE,
  TASK_FAILED
} TaskState;

typedef enum
{
  RENDER_BUSY,
  RENDER_READY,
  RENDER_FAILED
} RenderState;

/* Faults: every key of POST /_sim/faults is described by a FaultSpec and
 * has a command line switch of the same meaning. */
typedef enum
{
  FT_INT,
  FT_BOOL,
  FT_STRING
} FaultType;

typedef enum
{
  F_GENERATE_STATUS,
  F_STATUS_STATUS,
  F_FAIL_TASKS,
  F_JOB_DURATION,
  F_RESPONSE_DELAY,
  F_GENERATE_DELAY,
  F_STATUS_DELAY,
  F_GENERATE_DROP,
  F_STATUS_DROP,
  F_GENERATE_BODY,
  F_STATUS_BODY,
  F_HUGE_BODY,
  F_MALFORMED_JSON,
  F_API_REDIRECT,
  F_STATUS_VALUE,
  F_LARGE_RESULTS,
  F_EMPTY_RESULTS,
  F_RATE_LIMIT,
  F_RATE_WINDOW,
  F_RATELIMIT_REMAINING_ZERO,
  F_DROP_DOWNLOAD_AT,
  F_CDN_STATUS,
  F_CDN_REDIRECT,
  F_DOWNLOAD_RATE,
  F_BROKEN_RENDER,
  F_STATUS_OUTAGE,
  F_TRUNCATED_ANSWER,
  F_GENERATE_SEE_OTHER,
  F_IGNORE_RANGE,
  F_CHANGE_RESULT_AFTER,
  F_CDN_DELAY,
  F_FASTSTART,
  F_CDN_CHUNKED,
  F_FAULT_COUNT,
  N_FAULTS
} FaultId;

typedef struct
{
  const gchar *name;            /* key of POST /_sim/faults */
  const gchar *option;          /* command line switch */
  FaultType type;
  gint64 min, max;              /* FT_INT */
  gint64 def;                   /* FT_INT, FT_BOOL: the value that is "off" */
  gboolean kind;                /* FT_STRING: "generate", "status" or null */
  gboolean counted;             /* limited by fault_count */
  const gchar *arg, *help;
} FaultSpec;

#define SPEC_INT(n, o, min, max, def, counted, arg, help) \
  {n, o, FT_INT, min, max, def, FALSE, counted, arg, help}
#define SPEC_BOOL(n, o, counted, help) \
  {n, o, FT_BOOL, 0, 1, FALSE, FALSE, counted, NULL, help}
#define SPEC_STRING(n, o, kind, counted, arg, help) \
  {n, o, FT_STRING, 0, 0, 0, kind, counted, arg, help}

static const FaultSpec fault_specs[N_FAULTS] = {
  [F_GENERATE_STATUS] = SPEC_INT ("generate_status", "generate-status", 0, 599,
      0, TRUE, "N", "Answer generate requests with this HTTP status"),
  [F_STATUS_STATUS] = SPEC_INT ("status_status", "status-status", 0, 599, 0,
      TRUE, "N", "Answer status requests with this HTTP status"),
  [F_FAIL_TASKS] = SPEC_STRING ("fail_tasks", "fail-tasks", FALSE, FALSE,
      "MSG", "Tasks fail with this error message"),
  [F_JOB_DURATION] = SPEC_INT ("job_duration_ms", "job-duration", 0, G_MAXINT,
      1000, FALSE, "MS", "Time from task creation to its end (default 1000)"),
  [F_RESPONSE_DELAY] = SPEC_INT ("response_delay_ms", "response-delay", 0,
      G_MAXINT, 0, FALSE, "MS", "Delay every API answer"),
  [F_GENERATE_DELAY] = SPEC_INT ("generate_delay_ms", "generate-delay", 0,
      G_MAXINT, 0, TRUE, "MS", "Delay generate answers (the task is made "
      "when the request arrives)"),
  [F_STATUS_DELAY] = SPEC_INT ("status_delay_ms", "status-delay", 0, G_MAXINT,
      0, TRUE, "MS", "Delay status answers"),
  [F_GENERATE_DROP] = SPEC_BOOL ("generate_drop", "generate-drop", TRUE,
      "Process generate requests, then close without an answer"),
  [F_STATUS_DROP] = SPEC_BOOL ("status_drop", "status-drop", TRUE,
      "Process status requests, then close without an answer"),
  [F_GENERATE_BODY] = SPEC_STRING ("generate_body", "generate-body", FALSE,
      TRUE, "TEXT", "Answer generate requests 200 with this body"),
  [F_STATUS_BODY] = SPEC_STRING ("status_body", "status-body", FALSE, TRUE,
      "TEXT", "Answer status requests 200 with this body"),
  [F_HUGE_BODY] = SPEC_STRING ("huge_body", "huge-body", TRUE, TRUE,
      "generate|status", "Pad generate or status answers beyond 2 MiB"),
  [F_MALFORMED_JSON] = SPEC_STRING ("malformed_json", "malformed-json", TRUE,
      TRUE, "generate|status", "Answer generate or status with invalid JSON"),
  [F_API_REDIRECT] = SPEC_STRING ("api_redirect", "api-redirect", TRUE, TRUE,
      "generate|status", "Answer 307 to the same path on the CDN origin"),
  [F_STATUS_VALUE] = SPEC_STRING ("status_value", "status-value", FALSE,
      FALSE, "S", "Raw status string reported while a task runs"),
  [F_LARGE_RESULTS] = SPEC_BOOL ("large_results", "large-results", FALSE,
      "Render videos over 10.5 MB"),
  [F_EMPTY_RESULTS] = SPEC_BOOL ("empty_results", "empty-results", FALSE,
      "Completed tasks have no result URLs"),
  [F_RATE_LIMIT] = SPEC_INT ("rate_limit", "rate-limit", 1, G_MAXINT, 1000,
      FALSE, "N", "API requests per window per key, and CDN requests per "
      "window (default 1000)"),
  [F_RATE_WINDOW] = SPEC_INT ("rate_window_ms", "rate-window", 1, G_MAXINT,
      60000, FALSE, "MS", "Length of the rate limit window (default 60000)"),
  [F_RATELIMIT_REMAINING_ZERO] = SPEC_BOOL ("ratelimit_remaining_zero",
      "ratelimit-remaining-zero", FALSE,
      "API answers claim X-RateLimit-Remaining: 0, reset in 1 s"),
  [F_DROP_DOWNLOAD_AT] = SPEC_INT ("drop_download_at", "drop-download-at", -1,
      G_MAXINT64, -1, TRUE, "BYTES", "CDN bodies break off at this offset"),
  [F_CDN_STATUS] = SPEC_INT ("cdn_status", "cdn-status", 0, 599, 0, TRUE, "N",
      "Answer result downloads with this HTTP status"),
  [F_CDN_REDIRECT] = SPEC_BOOL ("cdn_redirect", "cdn-redirect", FALSE,
      "Result URLs point at cdn2, which redirects to the CDN"),
  [F_DOWNLOAD_RATE] = SPEC_INT ("download_rate_kbps", "download-rate", 0,
      G_MAXINT, 0, FALSE, "KBIT/S", "Throttle result bodies (0: unlimited)"),
  [F_BROKEN_RENDER] = SPEC_BOOL ("broken_render", "broken-render", FALSE,
      "Renders fail: their pipeline names an element that does not exist"),
  [F_STATUS_OUTAGE] = SPEC_INT ("status_outage_ms", "status-outage", 0,
      G_MAXINT, 0, FALSE, "MS", "Answer status requests 503 for this long "
      "from when it is set (or from the start)"),
  [F_TRUNCATED_ANSWER] = SPEC_STRING ("truncated_answer", "truncated-answer",
      TRUE, TRUE, "generate|status", "Process generate or status requests, "
      "then break the answer off in its body"),
  [F_GENERATE_SEE_OTHER] = SPEC_BOOL ("generate_see_other",
      "generate-see-other", TRUE, "Process generate requests, then answer "
      "303 See Other to the generate URL itself"),
  [F_IGNORE_RANGE] = SPEC_BOOL ("ignore_range", "ignore-range", FALSE,
      "The CDN ignores Range: always 200 with the whole file"),
  [F_CHANGE_RESULT_AFTER] = SPEC_INT ("change_result_after",
      "change-result-after", -1, G_MAXINT, -1, FALSE, "N", "After N CDN "
      "requests every result changes: other bytes, ETag and Last-Modified"),
  [F_CDN_DELAY] = SPEC_INT ("cdn_delay_ms", "cdn-delay", 0, G_MAXINT, 0,
      FALSE, "MS", "Delay every CDN answer (a round trip to a far host)"),
  [F_FASTSTART] = SPEC_BOOL ("faststart", "faststart", FALSE,
      "Render new videos with the moov atom first"),
  [F_CDN_CHUNKED] = SPEC_BOOL ("cdn_chunked", "cdn-chunked", FALSE,
      "Result bodies are chunked, without a Content-Length"),
  [F_FAULT_COUNT] = SPEC_INT ("fault_count", "fault-count", -1, G_MAXINT, -1,
      FALSE, "N", "Requests hit by each counted fault (-1: all)"),
};

typedef union
{
  gint64 i;                     /* FT_INT, FT_BOOL */
  gchar *s;                     /* FT_STRING */
} FaultValue;

typedef struct
{
  FaultValue v[N_FAULTS];
} Faults;

/* the current value of a fault, e.g. FAULT (RATE_LIMIT) */
#define FAULT(id) (sim.faults.v[F_##id].i)
#define FAULT_STR(id) (sim.faults.v[F_##id].s)

typedef struct
{
  gint64 generate_requests;
  gint64 accepted_submits;
  gint64 status_requests;
  gint64 cdn_requests;
  gint64 cdn_bytes;             /* of result bodies, queued for sending */
  gint64 cdn_auth_headers;
  gint64 api_requests;
  gint64 rate_limited;
  gint64 rate_window_max;       /* most API requests one key made in a window */
  gint64 cdn2_requests;
  gint64 cdn2_auth_headers;
  gint64 generate_reused;       /* generate requests on a connection that
                                 * had carried an API request before */
  gchar *last_range;
  gchar *last_user_agent;
} Stats;

typedef struct
{
  gint64 reset_at;              /* unix microseconds */
  gint count;
} RateWindow;

typedef struct
{
  ResultKind kind;
  gchar *text;
  gint width, height;
  gboolean large;
  gboolean broken;              /* names a missing element (a fault) */
  gboolean faststart;
  RenderState state;            /* only touched by the main thread */
  GBytes *data;                 /* written by the worker before it reports */
  gchar *error;
} Render;

typedef struct
{
  gchar *id;
  ApiKind api;
  gchar *prompt;
  JsonNode *request;
  gchar *created_at;
  gint64 created_us;            /* monotonic */
  gint duration_ms;
  gint credits;
  gboolean charged;
  gchar *fail_message;
  gchar *error_message;
  gboolean empty_results;
  TaskState state;
  Render *render;
  const gchar *names[3];
} Task;

static struct
{
  gint port, cdn_port, cdn2_port;
  gchar **keys;                 /* accounts: one key each */
  gchar *tls_cert, *tls_key;
  gint64 initial_credits;
  gboolean exit_on_stdin_eof, verbose;
  Faults cli;

  Faults faults;
  gint left[N_FAULTS];          /* hits left of counted faults, -1: all */
  Stats stats;
  gint64 credits;
  GHashTable *api_rates;        /* Authorization value -> RateWindow */
  RateWindow cdn_rate;
  gchar *cdn_base, *cdn2_base;
  GHashTable *tasks;
  GHashTable *renders;
  GThreadPool *pool;
  GList *delayed;
  GMainLoop *loop;
  gint64 status_outage_end;     /* monotonic µs */
} sim;

static gint shutting_down;

/* ------------------------------------------------------------------ */
/* Faults */

static void
faults_clear (Faults * f)
{
  for (gint id = 0; id < N_FAULTS; id++) {
    if (fault_specs[id].type == FT_STRING)
      g_clear_pointer (&f->v[id].s, g_free);
  }
}

static void
faults_copy (Faults * dst, const Faults * src)
{
  faults_clear (dst);
  *dst = *src;
  for (gint id = 0; id < N_FAULTS; id++) {
    if (fault_specs[id].type == FT_STRING)
      dst->v[id].s = g_strdup (src->v[id].s);
  }
}

/* Switches fault @id of @f off (to its default) */
static void
fault_off (Faults * f, FaultId id)
{
  if (fault_specs[id].type == FT_STRING)
    g_clear_pointer (&f->v[id].s, g_free);
  else
    f->v[id].i = fault_specs[id].def;
}

static gboolean
fault_on (FaultId id)
{
  return fault_specs[id].type == FT_STRING ? sim.faults.v[id].s != NULL :
      sim.faults.v[id].i != fault_specs[id].def;
}

static void
faults_arm (void)
{
  for (gint id = 0; id < N_FAULTS; id++)
    sim.left[id] = FAULT (FAULT_COUNT);
}

/* Whether fault @id hits this request. A counted fault is switched off
 * once its fault_count budget is used up. */
static gboolean
fault_hit (FaultId id)
{
  if (!fault_on (id))
    return FALSE;
  if (!fault_specs[id].counted)
    return TRUE;
  if (sim.left[id] == 0)
    return FALSE;
  if (sim.left[id] > 0 && --sim.left[id] == 0)
    fault_off (&sim.faults, id);
  return TRUE;
}

/* A fault whose value names the requests it hits: "generate" or "status" */
static gboolean
fault_hit_kind (FaultId id, const gchar * kind)
{
  return g_strcmp0 (sim.faults.v[id].s, kind) == 0 && fault_hit (id);
}

/* The value of a numeric fault when it hits, else its default */
static gint64
fault_take (FaultId id)
{
  gint64 v = sim.faults.v[id].i;

  return fault_hit (id) ? v : fault_specs[id].def;
}

/* An outage begins when its fault is set */
static void
status_outage_begin (void)
{
  sim.status_outage_end = g_get_monotonic_time () +
      FAULT (STATUS_OUTAGE) * G_TIME_SPAN_MILLISECOND;
}

static void
sim_reset_state (void)
{
  faults_copy (&sim.faults, &sim.cli);
  faults_arm ();
  status_outage_begin ();
  g_clear_pointer (&sim.stats.last_range, g_free);
  g_clear_pointer (&sim.stats.last_user_agent, g_free);
  memset (&sim.stats, 0, sizeof (sim.stats));
  g_hash_table_remove_all (sim.api_rates);
  memset (&sim.cdn_rate, 0, sizeof (sim.cdn_rate));
  sim.credits = sim.initial_credits;
}

/* ------------------------------------------------------------------ */
/* Rendering */

static gboolean
run_pipeline (const gchar * desc, const gchar * text, const gchar * path,
    GError ** error)
{
  g_autoptr (GstElement) pipeline = NULL;
  g_autoptr (GstElement) overlay = NULL;
  g_autoptr (GstElement) sink = NULL;
  g_autoptr (GstBus) bus = NULL;
  gint64 deadline = g_get_monotonic_time () + RENDER_TIMEOUT_S * G_USEC_PER_SEC;
  gboolean ok = FALSE;

  pipeline = gst_parse_launch (desc, error);
  if (!pipeline)
    return FALSE;
  gst_object_ref_sink (pipeline);
  if (error && *error)
    return FALSE;

  overlay = gst_bin_get_by_name (GST_BIN (pipeline), "overlay");
  sink = gst_bin_get_by_name (GST_BIN (pipeline), "sink");
  g_object_set (overlay, "text", text, NULL);
  g_object_set (sink, "location", path, NULL);

  bus = gst_element_get_bus (pipeline);
  gst_element_set_state (pipeline, GST_STATE_PLAYING);

  /* a failing state change also posts an error message */
  for (;;) {
    g_autoptr (GstMessage) m = gst_bus_timed_pop_filtered (bus,
        100 * GST_MSECOND, GST_MESSAGE_EOS | GST_MESSAGE_ERROR);

    if (g_atomic_int_get (&shutting_down)) {
      g_set_error (error, SIM_ERROR, 500, "shutting down");
      break;
    }
    if (m && GST_MESSAGE_TYPE (m) == GST_MESSAGE_EOS) {
      ok = TRUE;
      break;
    }
    if (m) {
      gst_message_parse_error (m, error, NULL);
      break;
    }
    if (g_get_monotonic_time () > deadline) {
      g_set_error (error, SIM_ERROR, 500, "rendering timed out");
      break;
    }
  }

  gst_element_set_state (pipeline, GST_STATE_NULL);
  return ok;
}

static GBytes *
render_run (Render * r, GError ** error)
{
  g_autofree gchar *path = NULL;
  g_autofree gchar *desc = NULL;
  g_autofree gchar *text = NULL;
  g_autofree gchar *shown = NULL;
  gchar *contents = NULL;
  gsize length = 0;
  gint font = MAX (8, r->height / 12);
  gboolean ok;
  gint fd;

  fd = g_file_open_tmp (r->kind == RESULT_VIDEO ?
      "grokimagine-sim-XXXXXX.mp4" : "grokimagine-sim-XXXXXX.png", &path,
      error);
  if (fd < 0)
    return NULL;
  close (fd);

  if (g_utf8_strlen (r->text, -1) > OVERLAY_MAX_CHARS) {
    g_autofree gchar *head = g_utf8_substring (r->text, 0, OVERLAY_MAX_CHARS);
    shown = g_strconcat (head, "…", NULL);
  } else {
    shown = g_strdup (r->text);
  }
  text = g_markup_escape_text (shown, -1);

  if (r->kind == RESULT_IMAGE) {
    desc = g_strdup_printf ("videotestsrc num-buffers=1 pattern=smpte "
        "! video/x-raw,width=%d,height=%d "
        "! textoverlay name=overlay valignment=center halignment=center "
        "shaded-background=true font-desc=\"Sans %d\" "
        "! videoconvert ! pngenc ! filesink name=sink",
        r->width, r->height, font);
  } else {
    gint frames = VIDEO_FRAMES;

    /* noise does not compress: enough pixels make the file big */
    if (r->large)
      frames = MAX (frames, LARGE_MIN_PIXELS / (r->width * r->height) + 1);
    desc = g_strdup_printf ("videotestsrc num-buffers=%d pattern=%s "
        "horizontal-speed=%d ! video/x-raw,format=I420,width=%d,height=%d,"
        "framerate=25/1 ! textoverlay name=overlay valignment=center "
        "halignment=center shaded-background=true font-desc=\"Sans %d\" "
        "! x264enc speed-preset=ultrafast key-int-max=25 %s "
        "! mp4mux faststart=%s ! filesink name=sink", frames,
        r->large ? "snow" : "smpte", r->large ? 0 : 4, r->width, r->height,
        font, r->large ? "pass=quant quantizer=4" : "",
        r->faststart ? "true" : "false");
  }

  if (r->broken) {
    g_autofree gchar *good = g_steal_pointer (&desc);
    g_auto (GStrv) parts = g_strsplit (good, "textoverlay", 2);

    desc = g_strjoinv (MISSING_ELEMENT, parts);
  }
  ok = run_pipeline (desc, text, path, error);
  if (ok)
    ok = g_file_get_contents (path, &contents, &length, error);
  g_unlink (path);

  return ok ? g_bytes_new_take (contents, length) : NULL;
}

static gboolean
render_finished (gpointer data)
{
  Render *r = data;

  r->state = r->data ? RENDER_READY : RENDER_FAILED;
  return G_SOURCE_REMOVE;
}

static void
render_thread (gpointer data, gpointer user_data)
{
  Render *r = data;
  g_autoptr (GError) error = NULL;
  gint64 start = g_get_monotonic_time ();

  r->data = render_run (r, &error);
  if (g_atomic_int_get (&shutting_down))
    return;
  if (!r->data) {
    r->error = g_strdup (error ? error->message : "unknown error");
    g_printerr ("grokimagine-sim: render %dx%d failed: %s\n", r->width,
        r->height, r->error);
  } else if (sim.verbose) {
    g_printerr ("grokimagine-sim: rendered %s %dx%d%s, %" G_GSIZE_FORMAT
        " bytes in %.2f s\n", r->kind == RESULT_VIDEO ? "video" : "image",
        r->width, r->height, r->large ? " (large)" : "",
        g_bytes_get_size (r->data),
        (g_get_monotonic_time () - start) / (gdouble) G_USEC_PER_SEC);
  }
  g_idle_add (render_finished, r);
}

static Render *
render_request (ResultKind kind, const gchar * text, gint width, gint height,
    gboolean large, gboolean broken)
{
  gboolean faststart = kind == RESULT_VIDEO && FAULT (FASTSTART);
  g_autofree gchar *key = g_strdup_printf ("%c:%dx%d:%d:%d:%d:%s",
      kind == RESULT_VIDEO ? 'v' : 'i', width, height, large, broken,
      faststart, text);
  Render *r = g_hash_table_lookup (sim.renders, key);

  if (r)
    return r;

  r = g_new0 (Render, 1);
  r->kind = kind;
  r->text = g_strdup (text);
  r->width = width;
  r->height = height;
  r->large = large;
  r->broken = broken;
  r->faststart = faststart;
  r->state = RENDER_BUSY;
  g_hash_table_insert (sim.renders, g_steal_pointer (&key), r);
  g_thread_pool_push (sim.pool, r, NULL);
  return r;
}

/* ------------------------------------------------------------------ */
/* Tasks */

static gint
even (gdouble v)
{
  return MAX (2, 2 * (gint) (v / 2 + 0.5));
}

static void
ratio_size (guint rw, guint rh, gint short_side, gint * width, gint * height)
{
  gdouble r = (gdouble) MAX (rw, rh) / MIN (rw, rh);
  gint long_side = even (short_side * r);

  if (long_side > MAX_LONG_SIDE) {
    long_side = MAX_LONG_SIDE;
    short_side = MAX (16, even (MAX_LONG_SIDE / r));
  }
  *width = rw >= rh ? long_side : short_side;
  *height = rw >= rh ? short_side : long_side;
}

static gchar *
task_new_id (ApiKind api)
{
  for (;;) {
    g_autofree gchar *id = NULL;

    if (api == API_V1) {
      id = g_strdup_printf ("task_%09d",
          g_random_int_range (100000000, 1000000000));
    } else {
      GString *s = g_string_new ("n");

      for (gint i = 0; i < 17; i++)
        g_string_append_c (s, "0123456789abcdef"[g_random_int_range (0, 16)]);
      g_string_append (s, "kie");
      id = g_string_free (s, FALSE);
    }
    if (!g_hash_table_contains (sim.tasks, id))
      return g_steal_pointer (&id);
  }
}

/* Creates a task whose result is rendered from @text; @rw:@rh is the
 * aspect ratio of a video result. Takes @request. */
static Task *
task_create (ApiKind api, JsonNode * request, const gchar * prompt,
    const gchar * text, ResultKind kind, guint rw, guint rh, gint credits,
    gboolean charged)
{
  Task *t = g_new0 (Task, 1);
  g_autoptr (GDateTime) now = g_date_time_new_now_utc ();
  gboolean large = kind == RESULT_VIDEO && FAULT (LARGE_RESULTS);
  gint w = IMAGE_SIZE, h = IMAGE_SIZE;

  t->id = task_new_id (api);
  t->api = api;
  t->prompt = g_strdup (prompt);
  t->request = request;
  t->created_at = g_date_time_format (now, "%Y-%m-%dT%H:%M:%SZ");
  t->created_us = g_get_monotonic_time ();
  t->duration_ms = FAULT (JOB_DURATION);
  t->credits = credits;
  t->charged = charged;
  t->fail_message = g_strdup (FAULT_STR (FAIL_TASKS));
  t->empty_results = FAULT (EMPTY_RESULTS);
  t->state = TASK_PENDING;

  if (api == API_V1) {
    t->names[0] = "video1.mp4";
    t->names[1] = "video2.mp4";
  } else {
    t->names[0] = kind == RESULT_IMAGE ? "image_001.png" : "video_001.mp4";
  }

  if (kind == RESULT_VIDEO)
    ratio_size (rw, rh, large ? LARGE_SHORT_SIDE : VIDEO_SHORT_SIDE, &w, &h);
  if (!t->fail_message)
    t->render = render_request (kind, text, w, h, large,
        FAULT (BROKEN_RENDER));

  if (charged && api == API_GROK5)
    sim.credits -= credits;
  g_hash_table_insert (sim.tasks, t->id, t);
  if (sim.verbose)
    g_printerr ("grokimagine-sim: task %s created (%dx%d%s)\n", t->id, w, h,
        large ? ", large" : "");
  return t;
}

static void
task_fail (Task * t, const gchar * message)
{
  t->state = TASK_FAILED;
  t->error_message = g_strdup (message);
  if (t->charged && t->api == API_GROK5)
    sim.credits += t->credits;
}

/* Advances @t to the state it has reached by now. A task never completes
 * before its result is rendered. */
static void
task_update (Task * t)
{
  gint64 elapsed_ms = (g_get_monotonic_time () - t->created_us) / 1000;

  if (t->state == TASK_DONE || t->state == TASK_FAILED)
    return;

  if (elapsed_ms >= t->duration_ms) {
    if (t->fail_message)
      task_fail (t, t->fail_message);
    else if (t->render->state == RENDER_READY)
      t->state = TASK_DONE;
    else if (t->render->state == RENDER_FAILED) {
      /* the API allows any text here: say why, for the element's error */
      g_autofree gchar *why = g_strdup_printf ("grok imagine build failed: "
          "%s", t->render->error);

      task_fail (t, why);
    }
    else
      t->state = TASK_PROCESSING;
  } else if (elapsed_ms * 2 >= t->duration_ms) {
    t->state = TASK_PROCESSING;
  }
}

static Task *
task_lookup (ApiKind api, const gchar * id)
{
  Task *t = id ? g_hash_table_lookup (sim.tasks, id) : NULL;

  if (!t || t->api != api)
    return NULL;
  task_update (t);
  return t;
}

/* ------------------------------------------------------------------ */
/* JSON helpers and answers */

static gboolean
node_is_string (JsonNode * node)
{
  return JSON_NODE_HOLDS_VALUE (node) &&
      json_node_get_value_type (node) == G_TYPE_STRING;
}

static gboolean
node_is_int (JsonNode * node)
{
  return JSON_NODE_HOLDS_VALUE (node) &&
      json_node_get_value_type (node) == G_TYPE_INT64;
}

static gboolean
node_is_bool (JsonNode * node)
{
  return JSON_NODE_HOLDS_VALUE (node) &&
      json_node_get_value_type (node) == G_TYPE_BOOLEAN;
}

/* Returns the member @name, or NULL when it is absent or null. */
static JsonNode *
member (JsonObject * obj, const gchar * name)
{
  JsonNode *node = json_object_get_member (obj, name);

  return node && !JSON_NODE_HOLDS_NULL (node) ? node : NULL;
}

static gboolean
is_string_array (JsonNode * node, guint * length)
{
  JsonArray *array;

  if (!JSON_NODE_HOLDS_ARRAY (node))
    return FALSE;
  array = json_node_get_array (node);
  for (guint i = 0; i < json_array_get_length (array); i++) {
    if (!node_is_string (json_array_get_element (array, i)))
      return FALSE;
  }
  *length = json_array_get_length (array);
  return TRUE;
}

static JsonNode *
parse_body (SoupServerMessage * msg, GError ** error)
{
  g_autoptr (GBytes) body =
      soup_message_body_flatten (soup_server_message_get_request_body (msg));
  g_autoptr (JsonParser) parser = json_parser_new ();
  gsize size;
  const gchar *data = g_bytes_get_data (body, &size);

  if (!json_parser_load_from_data (parser, data ? data : "", size, NULL) ||
      !JSON_NODE_HOLDS_OBJECT (json_parser_get_root (parser))) {
    g_set_error (error, SIM_ERROR, 400,
        "Invalid request: the body must be a JSON object");
    return NULL;
  }
  return json_node_copy (json_parser_get_root (parser));
}

static void
set_status (SoupServerMessage * msg, guint status)
{
  SoupMessageHeaders *headers = soup_server_message_get_response_headers (msg);

  /* libsoup has no reason phrase for 429 */
  soup_server_message_set_status (msg, status,
      status == 429 ? "Too Many Requests" : NULL);
  if (status != 429)
    return;
  sim.stats.rate_limited++;
  if (!soup_message_headers_get_one (headers, "Retry-After"))
    soup_message_headers_replace (headers, "Retry-After", "1");
}

static void
reply_body (SoupServerMessage * msg, guint status, const gchar * type,
    const gchar * body)
{
  /* replaces any answer made before */
  soup_message_body_truncate (soup_server_message_get_response_body (msg));
  set_status (msg, status);
  soup_server_message_set_response (msg, type, SOUP_MEMORY_COPY, body,
      strlen (body));
}

/* A short text/plain answer, e.g. from the CDN */
static void
reply_text (SoupServerMessage * msg, guint status)
{
  g_autofree gchar *text = g_strdup_printf ("%s\n", status == 429 ?
      "Too Many Requests" : soup_status_get_phrase (status));

  reply_body (msg, status, "text/plain", text);
}

static void
reply_json (SoupServerMessage * msg, guint status, JsonNode * root)
{
  gchar *text = json_to_string (root, FALSE);
  gsize length = strlen (text);

  json_node_unref (root);
  set_status (msg, status);
  soup_server_message_set_response (msg, "application/json", SOUP_MEMORY_TAKE,
      text, length);
}

/* Answers @status with a Location on @base, same path and query */
static void
reply_redirect (SoupServerMessage * msg, guint status, const gchar * base)
{
  GUri *uri = soup_server_message_get_uri (msg);
  const gchar *query = g_uri_get_query (uri);
  g_autofree gchar *location = g_strconcat (base, g_uri_get_path (uri),
      query ? "?" : "", query, NULL);

  soup_server_message_set_redirect (msg, status, location);
}

static const gchar *
error_code (guint status)
{
  switch (status) {
    case 400:
      return "INVALID_REQUEST";
    case 401:
      return "UNAUTHORIZED";
    case 402:
      return "PAYMENT_REQUIRED";
    case 403:
      return "FORBIDDEN";
    case 404:
      return "NOT_FOUND";
    case 405:
      return "METHOD_NOT_ALLOWED";
    case 429:
      return "RATE_LIMITED";
    default:
      return status >= 500 ? "INTERNAL_ERROR" : "ERROR";
  }
}

static const gchar *
error_message (guint status)
{
  switch (status) {
    case 400:
      return "Invalid request: The request could not be processed";
    case 401:
      return "Unauthorized: missing or invalid API key";
    case 402:
      return "Payment required: insufficient credits";
    case 404:
      return "Not found: no such task";
    case 429:
      return "Rate limit exceeded: please slow down";
    case 500:
      return "Internal server error: please try again later";
    default:
      return soup_status_get_phrase (status);
  }
}

static void
reply_error (SoupServerMessage * msg, guint status, const gchar * message)
{
  g_autoptr (JsonBuilder) b = json_builder_new ();

  json_builder_begin_object (b);
  json_builder_set_member_name (b, "code");
  json_builder_add_int_value (b, status);
  json_builder_set_member_name (b, "message");
  json_builder_add_string_value (b, message ? message : error_message (status));
  json_builder_set_member_name (b, "error");
  json_builder_add_string_value (b, error_code (status));
  json_builder_end_object (b);

  reply_json (msg, status, json_builder_get_root (b));
}

static void
reply_gerror (SoupServerMessage * msg, GError * error)
{
  reply_error (msg, error->code, error->message);
}

/* Wraps @data (taken) in the success envelope; with the huge_body fault
 * data gets a padding member that makes the answer over 2 MiB. */
static void
reply_success (SoupServerMessage * msg, JsonNode * data)
{
  g_autoptr (JsonBuilder) b = json_builder_new ();
  static gchar *padding;

  if (g_object_get_data (G_OBJECT (msg), "sim-huge")) {
    if (!padding) {
      padding = g_malloc (HUGE_PADDING + 1);
      memset (padding, 'x', HUGE_PADDING);
      padding[HUGE_PADDING] = '\0';
    }
    json_object_set_string_member (json_node_get_object (data), "padding",
        padding);
  }

  json_builder_begin_object (b);
  json_builder_set_member_name (b, "code");
  json_builder_add_int_value (b, 200);
  json_builder_set_member_name (b, "message");
  json_builder_add_string_value (b, "success");
  json_builder_set_member_name (b, "data");
  json_builder_add_value (b, data);
  json_builder_end_object (b);
  reply_json (msg, 200, json_builder_get_root (b));
}

static void
set_rate_headers (SoupServerMessage * msg, gint64 remaining, gint64 reset_us)
{
  SoupMessageHeaders *headers = soup_server_message_get_response_headers (msg);
  g_autofree gchar *limit = g_strdup_printf ("%" G_GINT64_FORMAT,
      FAULT (RATE_LIMIT));
  g_autofree gchar *left = g_strdup_printf ("%" G_GINT64_FORMAT, remaining);
  g_autofree gchar *reset = g_strdup_printf ("%" G_GINT64_FORMAT,
      (reset_us + G_USEC_PER_SEC - 1) / G_USEC_PER_SEC);

  soup_message_headers_replace (headers, "X-RateLimit-Limit", limit);
  soup_message_headers_replace (headers, "X-RateLimit-Remaining", left);
  soup_message_headers_replace (headers, "X-RateLimit-Reset", reset);
}

/* Counts the request in @w and sets the rate limit headers; FALSE (with
 * Retry-After set) when the window is exhausted. */
static gboolean
rate_limit (RateWindow * w, SoupServerMessage * msg)
{
  gint64 now = g_get_real_time ();
  g_autofree gchar *retry = NULL;

  if (now >= w->reset_at) {
    w->reset_at = now + FAULT (RATE_WINDOW) * 1000;
    w->count = 0;
  }
  w->count++;
  if (w != &sim.cdn_rate)
    sim.stats.rate_window_max = MAX (sim.stats.rate_window_max, w->count);
  set_rate_headers (msg, MAX (0, FAULT (RATE_LIMIT) - w->count), w->reset_at);
  if (w->count <= FAULT (RATE_LIMIT))
    return TRUE;

  retry = g_strdup_printf ("%" G_GINT64_FORMAT, MAX (1,
          (w->reset_at - now + G_USEC_PER_SEC - 1) / G_USEC_PER_SEC));
  soup_message_headers_replace (soup_server_message_get_response_headers
      (msg), "Retry-After", retry);
  return FALSE;
}

/* The API's window of the key a request carries: both APIs limit a key, so
 * requests with another key (or none) do not spend the real key's budget */
static RateWindow *
api_window (SoupServerMessage * msg)
{
  const gchar *auth =
      soup_message_headers_get_one (soup_server_message_get_request_headers
      (msg), "Authorization");
  RateWindow *w;

  if (auth == NULL)
    auth = "";
  w = g_hash_table_lookup (sim.api_rates, auth);
  if (w == NULL) {
    w = g_new0 (RateWindow, 1);
    g_hash_table_insert (sim.api_rates, g_strdup (auth), w);
  }
  return w;
}

/* ------------------------------------------------------------------ */
/* grokimagineapi (v1) */

static gboolean
parse_ratio (const gchar * s, guint * rw, guint * rh)
{
  g_auto (GStrv) parts = g_strsplit (s, ":", -1);
  guint64 w, h;

  if (g_strv_length (parts) != 2 ||
      !g_ascii_string_to_unsigned (parts[0], 10, 1, 10000, &w, NULL) ||
      !g_ascii_string_to_unsigned (parts[1], 10, 1, 10000, &h, NULL))
    return FALSE;
  *rw = w;
  *rh = h;
  return TRUE;
}

static Task *
v1_create (JsonNode * root, gboolean charged, GError ** error)
{
  JsonObject *body = json_node_get_object (root);
  JsonNode *node;
  const gchar *prompt;
  guint rw = 1, rh = 1, n;

  node = member (body, "prompt");
  if (!node || (node_is_string (node) && !*json_node_get_string (node))) {
    g_set_error (error, SIM_ERROR, 400,
        "Invalid request: The prompt parameter is required");
    return NULL;
  }
  if (!node_is_string (node)) {
    g_set_error (error, SIM_ERROR, 400,
        "Invalid request: The prompt parameter must be a string");
    return NULL;
  }
  prompt = json_node_get_string (node);

  node = member (body, "ratio");
  if (node && (!node_is_string (node) ||
          !parse_ratio (json_node_get_string (node), &rw, &rh))) {
    g_set_error (error, SIM_ERROR, 400, "Invalid request: The ratio parameter "
        "must be W:H with positive integers, e.g. 16:9");
    return NULL;
  }

  node = member (body, "mode");
  if (node && !node_is_string (node)) {
    g_set_error (error, SIM_ERROR, 400,
        "Invalid request: The mode parameter must be a string");
    return NULL;
  }

  node = member (body, "images");
  if (node && !is_string_array (node, &n)) {
    g_set_error (error, SIM_ERROR, 400,
        "Invalid request: The images parameter must be an array of URLs");
    return NULL;
  }

  return task_create (API_V1, json_node_ref (root), prompt, prompt,
      RESULT_VIDEO, rw, rh, V1_CREDITS, charged);
}

/* POST .../generate of either API: a task, then its id (and, grok5, its
 * first status) */
static void
generate (SoupServerMessage * msg, Task * (*create) (JsonNode *, gboolean,
        GError **), const gchar * status)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonNode) root = parse_body (msg, &error);
  g_autoptr (JsonBuilder) b = json_builder_new ();
  Task *t;

  if (!root || !(t = create (root, TRUE, &error))) {
    reply_gerror (msg, error);
    return;
  }
  sim.stats.accepted_submits++;

  json_builder_begin_object (b);
  json_builder_set_member_name (b, "task_id");
  json_builder_add_string_value (b, t->id);
  if (status) {
    json_builder_set_member_name (b, "status");
    json_builder_add_string_value (b, status);
  }
  json_builder_end_object (b);
  reply_success (msg, json_builder_get_root (b));
}

static void
v1_generate (SoupServerMessage * msg)
{
  generate (msg, v1_create, NULL);
}

static void
add_result_urls (JsonBuilder * b, Task * t)
{
  json_builder_begin_array (b);
  if (t->state == TASK_DONE && !t->empty_results) {
    for (guint i = 0; t->names[i]; i++) {
      g_autofree gchar *url = g_strdup_printf ("%s/generated/%s/%s",
          FAULT (CDN_REDIRECT) ? sim.cdn2_base : sim.cdn_base, t->id,
          t->names[i]);

      json_builder_add_string_value (b, url);
    }
  }
  json_builder_end_array (b);
}

static const gchar *
task_status_string (Task * t)
{
  static const gchar *v1[] = { "pending", "processing", "completed", "failed" };
  static const gchar *grok5[] =
      { "IN_PROGRESS", "IN_PROGRESS", "SUCCESS", "FAILED" };

  if (FAULT_STR (STATUS_VALUE) &&
      (t->state == TASK_PENDING || t->state == TASK_PROCESSING))
    return FAULT_STR (STATUS_VALUE);
  return t->api == API_V1 ? v1[t->state] : grok5[t->state];
}

static void
v1_status (SoupServerMessage * msg, const gchar * id)
{
  g_autoptr (JsonBuilder) b = json_builder_new ();
  Task *t = task_lookup (API_V1, id);

  if (!t) {
    g_autofree gchar *message = g_strdup_printf ("Task not found: %s", id);

    reply_error (msg, 404, message);
    return;
  }

  json_builder_begin_object (b);
  json_builder_set_member_name (b, "consumed_credits");
  json_builder_add_int_value (b, t->credits);
  json_builder_set_member_name (b, "created_at");
  json_builder_add_string_value (b, t->created_at);
  json_builder_set_member_name (b, "status");
  json_builder_add_string_value (b, task_status_string (t));
  json_builder_set_member_name (b, "task_id");
  json_builder_add_string_value (b, t->id);
  json_builder_set_member_name (b, "error_message");
  if (t->state == TASK_FAILED)
    json_builder_add_string_value (b, t->error_message);
  else
    json_builder_add_null_value (b);
  json_builder_set_member_name (b, "request");
  json_builder_add_value (b, json_node_copy (t->request));
  json_builder_set_member_name (b, "response");
  add_result_urls (b, t);
  json_builder_end_object (b);
  reply_success (msg, json_builder_get_root (b));
}

/* ------------------------------------------------------------------ */
/* grok5imagine */

static const struct
{
  const gchar *model;
  gint credits;
} grok5_models[] = {
  {"grok-imagine/text-to-image", 5},
  {"grok-imagine/text-to-video", 24},
  {"grok-imagine/image-to-video", 24},
  {"grok-imagine/upscale", 12},
};

enum
{ MODEL_T2I, MODEL_T2V, MODEL_I2V, MODEL_UPSCALE };

static Task *
grok5_create (JsonNode * root, gboolean charged, GError ** error)
{
  JsonObject *body = json_node_get_object (root);
  JsonObject *input;
  JsonNode *node, *prompt_node, *urls_node, *task_node;
  g_autoptr (JsonBuilder) b = json_builder_new ();
  const gchar *model = grok5_models[MODEL_T2I].model;
  const gchar *prompt = NULL, *text;
  Task *parent = NULL;
  gint kind = -1;
  guint n_urls = 0;

  node = member (body, "model");
  if (node && node_is_string (node))
    model = json_node_get_string (node);
  for (guint i = 0; i < G_N_ELEMENTS (grok5_models); i++) {
    if (g_str_equal (model, grok5_models[i].model))
      kind = i;
  }
  if ((node && !node_is_string (node)) || kind < 0) {
    g_set_error (error, SIM_ERROR, 400, "Invalid request: unknown model, "
        "use grok-imagine/text-to-image, grok-imagine/text-to-video, "
        "grok-imagine/image-to-video or grok-imagine/upscale");
    return NULL;
  }

  node = member (body, "input");
  if (!node || !JSON_NODE_HOLDS_OBJECT (node)) {
    g_set_error (error, SIM_ERROR, 400,
        "Invalid request: The input parameter is required");
    return NULL;
  }
  input = json_node_get_object (node);

  prompt_node = member (input, "prompt");
  if (prompt_node && !node_is_string (prompt_node)) {
    g_set_error (error, SIM_ERROR, 400,
        "Invalid request: input.prompt must be a string");
    return NULL;
  }
  if (prompt_node)
    prompt = json_node_get_string (prompt_node);
  if ((kind == MODEL_T2I || kind == MODEL_T2V) && (!prompt || !*prompt)) {
    g_set_error (error, SIM_ERROR, 400,
        "Invalid request: The prompt parameter is required");
    return NULL;
  }
  if (prompt && g_utf8_strlen (prompt, -1) > MAX_PROMPT_CHARS) {
    g_set_error (error, SIM_ERROR, 400, "Invalid request: The prompt "
        "parameter must be at most %d characters", MAX_PROMPT_CHARS);
    return NULL;
  }

  urls_node = member (input, "image_urls");
  if (urls_node && !is_string_array (urls_node, &n_urls)) {
    g_set_error (error, SIM_ERROR, 400,
        "Invalid request: input.image_urls must be an array of URLs");
    return NULL;
  }
  if (kind == MODEL_I2V && n_urls == 0) {
    g_set_error (error, SIM_ERROR, 400,
        "Invalid request: The image_urls parameter is required");
    return NULL;
  }

  task_node = member (input, "task_id");
  if (task_node && !node_is_string (task_node)) {
    g_set_error (error, SIM_ERROR, 400,
        "Invalid request: input.task_id must be a string");
    return NULL;
  }
  if (kind == MODEL_UPSCALE && !task_node) {
    g_set_error (error, SIM_ERROR, 400,
        "Invalid request: The task_id parameter is required");
    return NULL;
  }
  if (task_node && (kind == MODEL_UPSCALE || kind == MODEL_I2V)) {
    parent = task_lookup (API_GROK5, json_node_get_string (task_node));
    if (!parent) {
      g_set_error (error, SIM_ERROR, 400, "Invalid request: unknown task_id %s",
          json_node_get_string (task_node));
      return NULL;
    }
  }

  node = member (body, "callback_url");
  if (node && !node_is_string (node)) {
    g_set_error (error, SIM_ERROR, 400,
        "Invalid request: callback_url must be a string");
    return NULL;
  }
  node = member (body, "public");
  if (node && !node_is_bool (node)) {
    g_set_error (error, SIM_ERROR, 400,
        "Invalid request: public must be a boolean");
    return NULL;
  }

  if (charged && sim.credits < grok5_models[kind].credits) {
    g_set_error (error, SIM_ERROR, 402, "Payment required: the task needs %d "
        "credits, the balance is %" G_GINT64_FORMAT,
        grok5_models[kind].credits, sim.credits);
    return NULL;
  }

  /* the sanitised copy: known members only, default model filled in */
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "model");
  json_builder_add_string_value (b, model);
  json_builder_set_member_name (b, "input");
  json_builder_begin_object (b);
  if (prompt_node) {
    json_builder_set_member_name (b, "prompt");
    json_builder_add_string_value (b, prompt);
  }
  if (urls_node) {
    json_builder_set_member_name (b, "image_urls");
    json_builder_add_value (b, json_node_copy (urls_node));
  }
  if (task_node) {
    json_builder_set_member_name (b, "task_id");
    json_builder_add_value (b, json_node_copy (task_node));
  }
  json_builder_end_object (b);
  for (guint i = 0; i < 2; i++) {
    const gchar *name = i == 0 ? "callback_url" : "public";

    if ((node = member (body, name))) {
      json_builder_set_member_name (b, name);
      json_builder_add_value (b, json_node_copy (node));
    }
  }
  json_builder_end_object (b);

  text = prompt && *prompt ? prompt : parent && parent->prompt ?
      parent->prompt : kind == MODEL_UPSCALE ? "upscale" : "image-to-video";
  return task_create (API_GROK5, json_builder_get_root (b), prompt, text,
      kind == MODEL_T2I ? RESULT_IMAGE : RESULT_VIDEO, 16, 9,
      grok5_models[kind].credits, charged);
}

static void
grok5_generate (SoupServerMessage * msg)
{
  generate (msg, grok5_create, "IN_PROGRESS");
}

static void
grok5_status (SoupServerMessage * msg, const gchar * id)
{
  g_autoptr (JsonBuilder) b = json_builder_new ();
  Task *t = task_lookup (API_GROK5, id);

  if (!t) {
    g_autofree gchar *message = g_strdup_printf ("Task not found: %s", id);

    reply_error (msg, 404, message);
    return;
  }

  json_builder_begin_object (b);
  json_builder_set_member_name (b, "task_id");
  json_builder_add_string_value (b, t->id);
  json_builder_set_member_name (b, "status");
  json_builder_add_string_value (b, task_status_string (t));
  json_builder_set_member_name (b, "request");
  json_builder_add_value (b, json_node_copy (t->request));
  json_builder_set_member_name (b, "response");
  if (t->state == TASK_DONE) {
    json_builder_begin_object (b);
    json_builder_set_member_name (b, "resultUrls");
    add_result_urls (b, t);
    json_builder_end_object (b);
  } else {
    json_builder_add_null_value (b);
  }
  json_builder_set_member_name (b, "consumed_credits");
  json_builder_add_int_value (b, t->state == TASK_FAILED ? 0 : t->credits);
  json_builder_set_member_name (b, "error_message");
  if (t->state == TASK_FAILED)
    json_builder_add_string_value (b, t->error_message);
  else
    json_builder_add_null_value (b);
  json_builder_set_member_name (b, "created_at");
  json_builder_add_string_value (b, t->created_at);
  json_builder_end_object (b);
  reply_success (msg, json_builder_get_root (b));
}

/* ------------------------------------------------------------------ */
/* API origin */

typedef enum
{
  EP_NONE,
  EP_V1_GENERATE,
  EP_V1_STATUS,
  EP_GROK5_GENERATE,
  EP_GROK5_STATUS
} Endpoint;

static Endpoint
endpoint_for (const gchar * path)
{
  if (g_str_equal (path, "/v1/generate"))
    return EP_V1_GENERATE;
  if (g_str_equal (path, "/v1/status"))
    return EP_V1_STATUS;
  if (g_str_equal (path, "/api/generate"))
    return EP_GROK5_GENERATE;
  if (g_str_equal (path, "/api/status"))
    return EP_GROK5_STATUS;
  return EP_NONE;
}

static gboolean
check_auth (SoupServerMessage * msg)
{
  const gchar *auth =
      soup_message_headers_get_one (soup_server_message_get_request_headers
      (msg), "Authorization");

  return auth && g_ascii_strncasecmp (auth, "Bearer ", 7) == 0 &&
      g_strv_contains ((const gchar * const *) sim.keys, auth + 7);
}

/* The task id of a status request: query, or JSON body for a POST. */
static gchar *
status_task_id (SoupServerMessage * msg, GError ** error)
{
  const gchar *query = g_uri_get_query (soup_server_message_get_uri (msg));
  gchar *id = NULL;

  if (query) {
    g_autoptr (GHashTable) form = soup_form_decode (query);

    id = g_strdup (g_hash_table_lookup (form, "task_id"));
  }
  if (!id && soup_server_message_get_method (msg) == SOUP_METHOD_POST) {
    g_autoptr (JsonNode) root = parse_body (msg, error);
    JsonNode *node;

    if (!root)
      return NULL;
    node = member (json_node_get_object (root), "task_id");
    if (node && node_is_string (node))
      id = g_strdup (json_node_get_string (node));
  }
  if (!id || !*id) {
    g_free (id);
    g_set_error (error, SIM_ERROR, 400,
        "Invalid request: The task_id parameter is required");
    return NULL;
  }
  return id;
}

static void
message_finished (SoupServerMessage * msg)
{
  g_object_set_data (G_OBJECT (msg), "sim-finished", GINT_TO_POINTER (1));
}

static gboolean
message_is_finished (SoupServerMessage * msg)
{
  return g_object_get_data (G_OBJECT (msg), "sim-finished") != NULL;
}

static void
stream_closed (GObject * source, GAsyncResult * res, gpointer data)
{
  g_io_stream_close_finish (G_IO_STREAM (source), res, NULL);
  g_object_unref (source);
}

static gboolean
close_connection (gpointer data)
{
  SoupServerMessage *msg = data;
  GIOStream *stream = message_is_finished (msg) ? NULL :
      soup_server_message_steal_connection (msg);

  if (stream)
    g_io_stream_close_async (stream, G_PRIORITY_DEFAULT, NULL, stream_closed,
        NULL);
  return G_SOURCE_REMOVE;
}

/* Stealing a connection asks for its addresses, with a warning when the
 * client is already gone: ask while it is there. */
static void
cache_addresses (SoupServerMessage * msg)
{
  soup_server_message_get_local_address (msg);
  soup_server_message_get_remote_address (msg);
}

/* Closes the connection of @msg, paused with what is written so far. The
 * connection is taken over from an idle callback, outside libsoup's I/O. */
static void
drop_connection_with (SoupServerMessage * msg, GSourceFunc close)
{
  cache_addresses (msg);
  g_signal_connect (msg, "finished", G_CALLBACK (message_finished), NULL);
  g_idle_add_full (G_PRIORITY_DEFAULT_IDLE, close, g_object_ref (msg),
      g_object_unref);
}

static void
drop_connection (SoupServerMessage * msg)
{
  drop_connection_with (msg, close_connection);
}

/* Writes the head and the first bytes of a 200 answer on the connection of
 * @msg, then closes it: the answer breaks off in its body */
static gboolean
truncate_connection (gpointer data)
{
  static const gchar partial[] = "HTTP/1.1 200 OK\r\n"
      "Content-Type: application/json\r\nContent-Length: 1000\r\n"
      "Connection: close\r\n\r\n{\"code\": 200, \"message\": \"success\", "
      "\"data\": {";
  SoupServerMessage *msg = data;
  GIOStream *stream = message_is_finished (msg) ? NULL :
      soup_server_message_steal_connection (msg);

  if (stream) {
    g_output_stream_write_all (g_io_stream_get_output_stream (stream),
        partial, strlen (partial), NULL, NULL, NULL);
    g_io_stream_close_async (stream, G_PRIORITY_DEFAULT, NULL, stream_closed,
        NULL);
  }
  return G_SOURCE_REMOVE;
}

/* A generate or status request that passed the checks */
static void
api_process (SoupServerMessage * msg, Endpoint ep, gboolean generate)
{
  const gchar *kind = generate ? "generate" : "status";
  gint64 status = fault_take (generate ? F_GENERATE_STATUS : F_STATUS_STATUS);
  /* a copy: the fault goes when its budget is used up */
  g_autofree gchar *body = g_strdup (generate ? FAULT_STR (GENERATE_BODY) :
      FAULT_STR (STATUS_BODY));
  g_autoptr (GError) error = NULL;
  g_autofree gchar *id = NULL;

  if (status) {
    reply_error (msg, status, NULL);
    return;
  }
  if (!generate && g_get_monotonic_time () < sim.status_outage_end) {
    reply_error (msg, 503, "Service unavailable: status outage");
    return;
  }
  if (body && fault_hit (generate ? F_GENERATE_BODY : F_STATUS_BODY)) {
    reply_body (msg, 200, "application/json", body);
    return;
  }

  if (fault_hit_kind (F_HUGE_BODY, kind))
    g_object_set_data (G_OBJECT (msg), "sim-huge", GINT_TO_POINTER (1));
  if (ep == EP_V1_GENERATE)
    v1_generate (msg);
  else if (ep == EP_GROK5_GENERATE)
    grok5_generate (msg);
  else if (!(id = status_task_id (msg, &error)))
    reply_gerror (msg, error);
  else if (ep == EP_V1_STATUS)
    v1_status (msg, id);
  else
    grok5_status (msg, id);

  /* a truncated success answer: the request was processed */
  if (fault_hit_kind (F_MALFORMED_JSON, kind))
    reply_body (msg, 200, "application/json", "{\"code\": 200, \"message\": "
        "\"success\", \"data\": {\"task_id\": \"");
}

/* Answers an API request, or returns FALSE when a drop fault closes its
 * connection instead (@msg is then paused). */
static gboolean
api_answer (SoupServerMessage * msg)
{
  const gchar *method = soup_server_message_get_method (msg);
  const gchar *path = g_uri_get_path (soup_server_message_get_uri (msg));
  Endpoint ep = endpoint_for (path);
  gboolean generate = ep == EP_V1_GENERATE || ep == EP_GROK5_GENERATE;
  const gchar *allow = ep == EP_V1_STATUS ? "GET" :
      ep == EP_GROK5_STATUS ? "GET, POST" : "POST";
  const gchar *kind = generate ? "generate" : "status";

  if (!rate_limit (api_window (msg), msg)) {
    reply_error (msg, 429, NULL);
  } else if (ep == EP_NONE) {
    reply_error (msg, 404, "Not found: no such endpoint");
  } else if (!strstr (allow, method)) {
    soup_message_headers_replace (soup_server_message_get_response_headers
        (msg), "Allow", allow);
    reply_error (msg, 405, "Method not allowed");
  } else if (fault_hit_kind (F_API_REDIRECT, kind)) {
    reply_redirect (msg, 307, sim.cdn_base);
  } else if (!check_auth (msg)) {
    reply_error (msg, 401, NULL);
  } else {
    api_process (msg, ep, generate);
    if (generate && fault_hit (F_GENERATE_SEE_OTHER))
      soup_server_message_set_redirect (msg, 303, path);
    if (FAULT (RATELIMIT_REMAINING_ZERO) &&
        SOUP_STATUS_IS_SUCCESSFUL (soup_server_message_get_status (msg)))
      set_rate_headers (msg, 0, g_get_real_time () + G_USEC_PER_SEC);
    if (fault_hit (generate ? F_GENERATE_DROP : F_STATUS_DROP)) {
      soup_server_message_pause (msg);
      drop_connection (msg);
      return FALSE;
    }
    if (fault_hit_kind (F_TRUNCATED_ANSWER, kind)) {
      soup_server_message_pause (msg);
      drop_connection_with (msg, truncate_connection);
      return FALSE;
    }
  }
  return TRUE;
}

/* An API request answered after a delay fault. A status request is
 * dropped, never processed, when its client goes away meanwhile or on
 * /_sim/reset. A generate request was processed when its body arrived, as
 * a real server does: its task exists whether or not the answer reaches the
 * client. */
typedef struct
{
  SoupServerMessage *msg;
  GSource *timeout;
  GSource *watch;               /* socket source, then a periodic check */
  gboolean processed;           /* answered already, only held back */
} Delayed;

static void
delayed_finish (Delayed * d, gboolean answer)
{
  sim.delayed = g_list_remove (sim.delayed, d);
  g_source_destroy (d->timeout);
  g_source_unref (d->timeout);
  if (d->watch) {
    g_source_destroy (d->watch);
    g_source_unref (d->watch);
  }
  if (!message_is_finished (d->msg)) {
    if (!answer && !d->processed)
      reply_error (d->msg, 503, "Service unavailable: request dropped");
    if (!answer || d->processed || api_answer (d->msg))
      soup_server_message_unpause (d->msg);
  }
  g_object_unref (d->msg);
  g_free (d);
}

static gboolean
delayed_timeout (gpointer data)
{
  delayed_finish (data, TRUE);
  return G_SOURCE_REMOVE;
}

/* Whether the client of @d shut its side down (plain FIN, or after a TLS
 * close_notify, which a peek cannot tell from live data). */
static gboolean
delayed_client_gone (Delayed * d)
{
  GSocket *socket = soup_server_message_get_socket (d->msg);
  struct pollfd pfd = { socket ? g_socket_get_fd (socket) : -1, POLLRDHUP, 0 };

  return socket && poll (&pfd, 1, 0) > 0 &&
      (pfd.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

static gboolean
delayed_check (gpointer data)
{
  Delayed *d = data;

  if (!delayed_client_gone (d))
    return G_SOURCE_CONTINUE;
  g_clear_pointer (&d->watch, g_source_unref);
  delayed_finish (d, FALSE);
  return G_SOURCE_REMOVE;
}

static gboolean
delayed_client_event (GSocket * socket, GIOCondition condition, gpointer data)
{
  Delayed *d = data;

  if (!delayed_check (d))
    return G_SOURCE_REMOVE;
  /* data from a live client stays readable: check every 50 ms instead */
  g_source_unref (d->watch);
  d->watch = g_timeout_source_new (50);
  g_source_set_callback (d->watch, delayed_check, d, NULL);
  g_source_attach (d->watch, NULL);
  return G_SOURCE_REMOVE;
}

static void
delay_answer (SoupServerMessage * msg, gint64 delay_ms, gboolean processed)
{
  Delayed *d = g_new0 (Delayed, 1);
  GSocket *socket = soup_server_message_get_socket (msg);

  d->processed = processed;
  d->msg = g_object_ref (msg);
  g_signal_connect (msg, "finished", G_CALLBACK (message_finished), NULL);
  soup_server_message_pause (msg);

  d->timeout = g_timeout_source_new (MIN (delay_ms, G_MAXUINT));
  g_source_set_callback (d->timeout, delayed_timeout, d, NULL);
  g_source_attach (d->timeout, NULL);
  if (socket) {
    d->watch = g_socket_create_source (socket, G_IO_IN | G_IO_HUP | G_IO_ERR,
        NULL);
    g_source_set_callback (d->watch, G_SOURCE_FUNC (delayed_client_event), d,
        NULL);
    g_source_attach (d->watch, NULL);
  }
  sim.delayed = g_list_prepend (sim.delayed, d);
}

/* ------------------------------------------------------------------ */
/* Control endpoints */

#define ADD_INT(name, value) \
  json_builder_set_member_name (b, name); \
  json_builder_add_int_value (b, value)
#define ADD_STRING(name, value) \
  json_builder_set_member_name (b, name); \
  if (value) \
    json_builder_add_string_value (b, value); \
  else \
    json_builder_add_null_value (b)

static JsonNode *
faults_to_json (void)
{
  g_autoptr (JsonBuilder) b = json_builder_new ();

  json_builder_begin_object (b);
  for (gint id = 0; id < N_FAULTS; id++) {
    const FaultSpec *s = &fault_specs[id];
    FaultValue *v = &sim.faults.v[id];

    json_builder_set_member_name (b, s->name);
    if (s->type == FT_INT)
      json_builder_add_int_value (b, v->i);
    else if (s->type == FT_BOOL)
      json_builder_add_boolean_value (b, v->i);
    else if (v->s)
      json_builder_add_string_value (b, v->s);
    else
      json_builder_add_null_value (b);
  }
  ADD_INT ("credits", sim.credits);
  json_builder_end_object (b);
  return json_builder_get_root (b);
}

static JsonNode *
stats_to_json (void)
{
  g_autoptr (JsonBuilder) b = json_builder_new ();
  GHashTableIter iter;
  gpointer task;

  /* bring refunds up to date */
  g_hash_table_iter_init (&iter, sim.tasks);
  while (g_hash_table_iter_next (&iter, NULL, &task))
    task_update (task);

  json_builder_begin_object (b);
  ADD_INT ("generate_requests", sim.stats.generate_requests);
  ADD_INT ("accepted_submits", sim.stats.accepted_submits);
  ADD_INT ("status_requests", sim.stats.status_requests);
  ADD_INT ("cdn_requests", sim.stats.cdn_requests);
  ADD_INT ("cdn_bytes", sim.stats.cdn_bytes);
  ADD_INT ("cdn_auth_headers", sim.stats.cdn_auth_headers);
  ADD_INT ("cdn2_requests", sim.stats.cdn2_requests);
  ADD_INT ("cdn2_auth_headers", sim.stats.cdn2_auth_headers);
  ADD_INT ("generate_reused", sim.stats.generate_reused);
  ADD_INT ("api_requests", sim.stats.api_requests);
  ADD_INT ("rate_limited", sim.stats.rate_limited);
  ADD_INT ("rate_window_max", sim.stats.rate_window_max);
  ADD_STRING ("last_range", sim.stats.last_range);
  ADD_STRING ("last_user_agent", sim.stats.last_user_agent);
  ADD_INT ("credits", sim.credits);
  ADD_INT ("tasks", g_hash_table_size (sim.tasks));
  json_builder_end_object (b);
  return json_builder_get_root (b);
}

#undef ADD_INT
#undef ADD_STRING

/* Sets fault @id of @f from @node after checking its type and range */
static gboolean
fault_set (Faults * f, FaultId id, JsonNode * node, GError ** error)
{
  const FaultSpec *s = &fault_specs[id];
  const gchar *str;

  switch (s->type) {
    case FT_INT:
      if (!node_is_int (node) || json_node_get_int (node) < s->min ||
          json_node_get_int (node) > s->max) {
        g_set_error (error, SIM_ERROR, 400, "%s must be an integer in [%"
            G_GINT64_FORMAT ", %" G_GINT64_FORMAT "]", s->name, s->min, s->max);
        return FALSE;
      }
      f->v[id].i = json_node_get_int (node);
      return TRUE;
    case FT_BOOL:
      if (!node_is_bool (node)) {
        g_set_error (error, SIM_ERROR, 400, "%s must be a boolean", s->name);
        return FALSE;
      }
      f->v[id].i = json_node_get_boolean (node);
      return TRUE;
    default:
      str = node_is_string (node) ? json_node_get_string (node) : NULL;
      if ((!str && !JSON_NODE_HOLDS_NULL (node)) || (str && s->kind &&
              !g_str_equal (str, "generate") && !g_str_equal (str, "status"))) {
        g_set_error (error, SIM_ERROR, 400, s->kind ? "%s must be "
            "\"generate\", \"status\" or null" : "%s must be a string or null",
            s->name);
        return FALSE;
      }
      g_free (f->v[id].s);
      f->v[id].s = g_strdup (str);
      return TRUE;
  }
}

static gboolean
faults_apply (JsonObject * obj, GError ** error)
{
  g_autoptr (GList) names = json_object_get_members (obj);
  Faults f = { 0 };
  gint64 credits = sim.credits;
  gboolean ok = TRUE;

  faults_copy (&f, &sim.faults);
  for (GList * l = names; l && ok; l = l->next) {
    const gchar *name = l->data;
    JsonNode *node = json_object_get_member (obj, name);
    gint id = 0;

    while (id < N_FAULTS && !g_str_equal (name, fault_specs[id].name))
      id++;
    if (id < N_FAULTS) {
      ok = fault_set (&f, id, node, error);
    } else if (g_str_equal (name, "credits") && node_is_int (node) &&
        json_node_get_int (node) >= 0) {
      credits = json_node_get_int (node);
    } else {
      g_set_error (error, SIM_ERROR, 400, g_str_equal (name, "credits") ?
          "credits must be a non-negative integer" : "unknown fault %s", name);
      ok = FALSE;
    }
  }

  if (ok) {
    faults_copy (&sim.faults, &f);
    faults_arm ();
    if (json_object_has_member (obj, "status_outage_ms"))
      status_outage_begin ();
    sim.credits = credits;
  }
  faults_clear (&f);
  return ok;
}

static void
control_create_task (SoupServerMessage * msg)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonNode) root = parse_body (msg, &error);
  g_autoptr (JsonBuilder) b = json_builder_new ();
  JsonObject *obj;
  JsonNode *api;
  const gchar *name;
  gboolean v1;
  Task *t = NULL;

  if (root) {
    obj = json_node_get_object (root);
    api = member (obj, "api");
    name = api && node_is_string (api) ? json_node_get_string (api) : "";
    v1 = g_str_equal (name, "v1");
    if (v1 || g_str_equal (name, "grok5")) {
      json_object_remove_member (obj, "api");
      t = v1 ? v1_create (root, FALSE, &error) :
          grok5_create (root, FALSE, &error);
    } else {
      g_set_error (&error, SIM_ERROR, 400,
          "Invalid request: api must be \"v1\" or \"grok5\"");
    }
  }
  if (!t) {
    reply_gerror (msg, error);
    return;
  }

  json_builder_begin_object (b);
  json_builder_set_member_name (b, "task_id");
  json_builder_add_string_value (b, t->id);
  json_builder_end_object (b);
  reply_json (msg, 200, json_builder_get_root (b));
}

static void
control_answer (SoupServerMessage * msg, const gchar * path)
{
  const gchar *method = soup_server_message_get_method (msg);

  if (g_str_equal (path, "/_sim/stats") && method == SOUP_METHOD_GET) {
    reply_json (msg, 200, stats_to_json ());
  } else if (g_str_equal (path, "/_sim/reset") && method == SOUP_METHOD_POST) {
    while (sim.delayed)
      delayed_finish (sim.delayed->data, FALSE);
    sim_reset_state ();
    reply_json (msg, 200, faults_to_json ());
  } else if (g_str_equal (path, "/_sim/faults") && method == SOUP_METHOD_GET) {
    reply_json (msg, 200, faults_to_json ());
  } else if (g_str_equal (path, "/_sim/faults") && method == SOUP_METHOD_POST) {
    g_autoptr (GError) error = NULL;
    g_autoptr (JsonNode) root = parse_body (msg, &error);

    if (!root || !faults_apply (json_node_get_object (root), &error))
      reply_gerror (msg, error);
    else
      reply_json (msg, 200, faults_to_json ());
  } else if (g_str_equal (path, "/_sim/tasks") && method == SOUP_METHOD_POST) {
    control_create_task (msg);
  } else {
    reply_error (msg, 404, "Not found: no such control endpoint");
  }
}

static void
api_handler (SoupServer * server, SoupServerMessage * msg, const char *path,
    GHashTable * query, gpointer user_data)
{
  const gchar *method = soup_server_message_get_method (msg);
  Endpoint ep = endpoint_for (path);
  gint64 delay = 0;
  gboolean generate = FALSE, reused = FALSE;
  GSocket *sock;

  if (sim.verbose)
    g_printerr ("grokimagine-sim: api %s %s\n", method, path);

  if (g_str_has_prefix (path, "/_sim/")) {
    control_answer (msg, path);
    return;
  }

  sim.stats.api_requests++;
  /* the requests each connection carried */
  sock = soup_server_message_get_socket (msg);
  if (sock) {
    reused = g_object_get_data (G_OBJECT (sock), "sim-requests") != NULL;
    g_object_set_data (G_OBJECT (sock), "sim-requests", GINT_TO_POINTER (1));
  }
  g_free (sim.stats.last_user_agent);
  sim.stats.last_user_agent =
      g_strdup (soup_message_headers_get_one
      (soup_server_message_get_request_headers (msg), "User-Agent"));
  if ((ep == EP_V1_GENERATE || ep == EP_GROK5_GENERATE) &&
      method == SOUP_METHOD_POST) {
    sim.stats.generate_requests++;
    if (reused)
      sim.stats.generate_reused++;
    delay = fault_take (F_GENERATE_DELAY);
    generate = TRUE;
  }
  if (ep == EP_V1_STATUS || ep == EP_GROK5_STATUS) {
    sim.stats.status_requests++;
    delay = fault_take (F_STATUS_DELAY);
  }

  if (!delay)
    delay = FAULT (RESPONSE_DELAY);
  if (delay > 0 && generate) {
    /* the task is made now; only its answer waits (unless dropped) */
    if (api_answer (msg))
      delay_answer (msg, delay, TRUE);
  } else if (delay > 0) {
    delay_answer (msg, delay, FALSE);
  } else {
    api_answer (msg);
  }
}

/* ------------------------------------------------------------------ */
/* CDN origin */

/* A result body sent at download_rate_kbps, or cut short by
 * drop_download_at: then the connection closes once all of @body (the part
 * before the cut) is written. */
typedef struct
{
  SoupServerMessage *msg;
  GBytes *body;
  gsize queued, written;
  gsize rate;                   /* bytes per second, 0: all at once */
  gboolean drop;
  GSource *tick;
} Feed;

static void
feed_free (Feed * f)
{
  g_signal_handlers_disconnect_by_data (f->msg, f);
  if (f->tick) {
    g_source_destroy (f->tick);
    g_source_unref (f->tick);
  }
  g_object_unref (f->msg);
  g_bytes_unref (f->body);
  g_free (f);
}

/* Queues up to @n more bytes; TRUE when all of the body is queued. */
static gboolean
feed_push (Feed * f, gsize n)
{
  SoupMessageBody *body = soup_server_message_get_response_body (f->msg);
  gsize size = g_bytes_get_size (f->body);
  g_autoptr (GBytes) chunk = NULL;

  n = MIN (n, size - f->queued);
  if (n > 0) {
    chunk = g_bytes_new_from_bytes (f->body, f->queued, n);
    soup_message_body_append_bytes (body, chunk);
    f->queued += n;
    sim.stats.cdn_bytes += n;
  }
  if (f->queued < size)
    return FALSE;
  if (!f->drop)
    soup_message_body_complete (body);
  return TRUE;
}

static gboolean
feed_tick (gpointer data)
{
  Feed *f = data;
  gboolean done = feed_push (f, MAX (1, f->rate * FEED_TICK_MS / 1000));

  /* libsoup paused the message when it ran out of body */
  soup_server_message_unpause (f->msg);
  if (!done)
    return G_SOURCE_CONTINUE;
  g_clear_pointer (&f->tick, g_source_unref);
  if (!f->drop)
    feed_free (f);
  return G_SOURCE_REMOVE;
}

static void
feed_wrote (SoupServerMessage * msg, guint size, Feed * f)
{
  f->written += size;
  if (f->written >= g_bytes_get_size (f->body)) {
    drop_connection (msg);
    feed_free (f);
  }
}

static void
feed_wrote_headers (SoupServerMessage * msg, Feed * f)
{
  feed_wrote (msg, 0, f);
}

/* Sends @body (taken) as the response body of @msg */
static void
send_body (SoupServerMessage * msg, GBytes * body, gboolean drop)
{
  Feed *f;

  if (!drop && !FAULT (DOWNLOAD_RATE)) {
    sim.stats.cdn_bytes += g_bytes_get_size (body);
    soup_message_body_append_bytes (soup_server_message_get_response_body
        (msg), body);
    soup_message_body_complete (soup_server_message_get_response_body (msg));
    g_bytes_unref (body);
    return;
  }

  f = g_new0 (Feed, 1);
  f->msg = g_object_ref (msg);
  f->body = body;
  f->rate = FAULT (DOWNLOAD_RATE) * 1000 / 8;
  f->drop = drop;
  g_signal_connect_swapped (msg, "finished", G_CALLBACK (feed_free), f);
  if (drop) {
    cache_addresses (msg);
    g_signal_connect (msg, "wrote-headers", G_CALLBACK (feed_wrote_headers), f);
    g_signal_connect (msg, "wrote-body-data", G_CALLBACK (feed_wrote), f);
  }
  if (f->rate) {
    f->tick = g_timeout_source_new (FEED_TICK_MS);
    g_source_set_callback (f->tick, feed_tick, f, NULL);
    g_source_attach (f->tick, NULL);
  } else {
    feed_push (f, G_MAXSIZE);
  }
}

typedef enum
{
  RANGE_NONE,
  RANGE_OK,
  RANGE_UNSATISFIABLE
} RangeResult;

static gboolean
parse_offset (const gchar * s, guint64 * out)
{
  g_autofree gchar *copy = g_strstrip (g_strdup (s));

  return g_ascii_string_to_unsigned (copy, 10, 0, G_MAXUINT64, out, NULL);
}

/* A single byte range; anything else is ignored (a full answer). */
static RangeResult
parse_range (const gchar * header, guint64 total, guint64 * start,
    guint64 * end)
{
  g_autofree gchar *first = NULL;
  const gchar *spec, *dash;
  guint64 a, b;

  if (!header || g_ascii_strncasecmp (header, "bytes=", 6) != 0)
    return RANGE_NONE;
  spec = header + 6;
  dash = strchr (spec, '-');
  if (strchr (spec, ',') || !dash)
    return RANGE_NONE;
  first = g_strstrip (g_strndup (spec, dash - spec));

  if (!*first) {                /* bytes=-n: the last n bytes */
    if (!parse_offset (dash + 1, &b))
      return RANGE_NONE;
    if (b == 0 || total == 0)
      return RANGE_UNSATISFIABLE;
    *start = total - MIN (b, total);
    *end = total - 1;
    return RANGE_OK;
  }

  if (!parse_offset (first, &a))
    return RANGE_NONE;
  b = G_MAXUINT64;
  if (*g_strchug ((gchar *) dash + 1) == '\0') {
    /* bytes=a- */
  } else if (!parse_offset (dash + 1, &b) || b < a) {
    return RANGE_NONE;
  }
  if (a >= total)
    return RANGE_UNSATISFIABLE;
  *start = a;
  *end = MIN (b, total - 1);
  return RANGE_OK;
}

/* The result as the CDN has it now: change_result_after makes it another
 * file of the same size, with other validators */
static GBytes *
cdn_version (Task * t, gchar ** etag, gchar ** modified)
{
  gint64 after = FAULT (CHANGE_RESULT_AFTER);
  gboolean changed = after >= 0 && sim.stats.cdn_requests > after;
  GBytes *data = t->render->data;
  gsize size = g_bytes_get_size (data);
  guint8 *copy;

  *etag = g_strdup_printf ("\"%s-%d\"", t->id, changed ? 2 : 1);
  *modified = g_strdup (changed ? "Tue, 01 Dec 2026 12:00:01 GMT" :
      "Tue, 01 Dec 2026 12:00:00 GMT");
  if (!changed || size == 0)
    return g_bytes_ref (data);
  copy = g_memdup2 (g_bytes_get_data (data, NULL), size);
  copy[size - 1] ^= 0xff;
  return g_bytes_new_take (copy, size);
}

static void cdn_answer (SoupServerMessage * msg, const char *path);

/* A CDN answer held back by cdn_delay_ms */
typedef struct
{
  SoupServerMessage *msg;
  gchar *path;
  gboolean gone;
} CdnDelayed;

static void
cdn_delayed_gone (CdnDelayed * d)
{
  d->gone = TRUE;
}

static gboolean
cdn_delayed_answer (gpointer data)
{
  CdnDelayed *d = data;

  g_signal_handlers_disconnect_by_data (d->msg, d);
  if (!d->gone) {
    cdn_answer (d->msg, d->path);
    soup_server_message_unpause (d->msg);
  }
  g_object_unref (d->msg);
  g_free (d->path);
  g_free (d);
  return G_SOURCE_REMOVE;
}

static void
cdn_handler (SoupServer * server, SoupServerMessage * msg, const char *path,
    GHashTable * query, gpointer user_data)
{
  SoupMessageHeaders *req = soup_server_message_get_request_headers (msg);
  const gchar *range = soup_message_headers_get_one (req, "Range");
  gint64 delay = FAULT (CDN_DELAY);

  if (sim.verbose)
    g_printerr ("grokimagine-sim: cdn %s %s%s%s\n",
        soup_server_message_get_method (msg), path,
        range ? " Range: " : "", range ? range : "");

  sim.stats.cdn_requests++;
  if (soup_message_headers_get_one (req, "Authorization"))
    sim.stats.cdn_auth_headers++;
  g_free (sim.stats.last_range);
  sim.stats.last_range = g_strdup (range);

  if (delay > 0) {
    CdnDelayed *d = g_new0 (CdnDelayed, 1);

    d->msg = g_object_ref (msg);
    d->path = g_strdup (path);
    g_signal_connect_swapped (msg, "finished", G_CALLBACK (cdn_delayed_gone),
        d);
    g_signal_connect_swapped (msg, "disconnected",
        G_CALLBACK (cdn_delayed_gone), d);
    soup_server_message_pause (msg);
    g_timeout_add (MIN (delay, G_MAXUINT), cdn_delayed_answer, d);
    return;
  }
  cdn_answer (msg, path);
}

static void
cdn_answer (SoupServerMessage * msg, const char *path)
{
  const gchar *method = soup_server_message_get_method (msg);
  SoupMessageHeaders *req = soup_server_message_get_request_headers (msg);
  SoupMessageHeaders *resp = soup_server_message_get_response_headers (msg);
  g_autofree gchar *range = g_strdup (soup_message_headers_get_one (req,
          "Range"));
  const gchar *if_range = soup_message_headers_get_one (req, "If-Range");
  g_auto (GStrv) parts = NULL;
  g_autofree gchar *content_range = NULL, *etag = NULL, *modified = NULL;
  g_autoptr (GBytes) data = NULL;
  Task *t = NULL;
  const gchar *name = NULL;
  guint64 total, start = 0, end = 0;
  gint64 drop = FAULT (DROP_DOWNLOAD_AT), status;
  RangeResult rr;

  if (!rate_limit (&sim.cdn_rate, msg)) {
    reply_error (msg, 429, NULL);
    return;
  }
  if (!g_str_has_prefix (path, "/generated/")) {
    reply_text (msg, 404);
    return;
  }
  if (method != SOUP_METHOD_GET && method != SOUP_METHOD_HEAD) {
    soup_message_headers_replace (resp, "Allow", "GET, HEAD");
    soup_server_message_set_status (msg, 405, NULL);
    return;
  }

  parts = g_strsplit (path + strlen ("/generated/"), "/", -1);
  if (g_strv_length (parts) == 2)
    t = g_hash_table_lookup (sim.tasks, parts[0]);
  if (t) {
    task_update (t);
    for (guint i = 0; t->names[i]; i++) {
      if (g_str_equal (t->names[i], parts[1]))
        name = t->names[i];
    }
  }
  if (!name || t->state != TASK_DONE || t->empty_results) {
    reply_text (msg, 404);
    return;
  }
  if ((status = fault_take (F_CDN_STATUS))) {
    reply_text (msg, status);
    return;
  }

  data = cdn_version (t, &etag, &modified);
  total = g_bytes_get_size (data);
  soup_message_headers_replace (resp, "Content-Type",
      g_str_has_suffix (name, ".png") ? "image/png" : "video/mp4");
  soup_message_headers_replace (resp, "ETag", etag);
  soup_message_headers_replace (resp, "Last-Modified", modified);
  if (!FAULT (IGNORE_RANGE))
    soup_message_headers_replace (resp, "Accept-Ranges", "bytes");
  /* keep libsoup's own Range handling out of the way */
  soup_message_headers_remove (req, "Range");
  /* a Range for another version of the file is void (RFC 9110 13.1.5) */
  if (FAULT (IGNORE_RANGE) || (if_range && g_strcmp0 (if_range, etag)
          && g_strcmp0 (if_range, modified)))
    g_clear_pointer (&range, g_free);

  /* ranges only apply to GET (RFC 9110) */
  rr = method == SOUP_METHOD_GET ?
      parse_range (range, total, &start, &end) : RANGE_NONE;
  if (rr == RANGE_UNSATISFIABLE) {
    content_range = g_strdup_printf ("bytes */%" G_GUINT64_FORMAT, total);
    soup_message_headers_replace (resp, "Content-Range", content_range);
    soup_server_message_set_status (msg, 416, NULL);
    return;
  }
  if (rr == RANGE_OK) {
    content_range = g_strdup_printf ("bytes %" G_GUINT64_FORMAT "-%"
        G_GUINT64_FORMAT "/%" G_GUINT64_FORMAT, start, end, total);
    soup_message_headers_replace (resp, "Content-Range", content_range);
  } else {
    end = total - 1;
  }
  soup_server_message_set_status (msg, rr == RANGE_OK ? 206 : 200, NULL);
  if (FAULT (CDN_CHUNKED))
    soup_message_headers_set_encoding (resp, SOUP_ENCODING_CHUNKED);
  else
    soup_message_headers_set_content_length (resp, end + 1 - start);
  if (method == SOUP_METHOD_HEAD)
    return;

  /* drop_download_at is a file offset: a body that would carry it breaks
   * off just before it, unless it starts there (a resume) */
  if (drop >= 0 && (guint64) drop <= end && (guint64) drop >= start &&
      ((guint64) drop > start || start == 0) && fault_hit (F_DROP_DOWNLOAD_AT))
    send_body (msg, g_bytes_new_from_bytes (data, start, drop - start), TRUE);
  else
    send_body (msg, g_bytes_new_from_bytes (data, start, end + 1 - start),
        FALSE);
}

/* The second CDN origin: redirects result URLs to the CDN */
static void
cdn2_handler (SoupServer * server, SoupServerMessage * msg, const char *path,
    GHashTable * query, gpointer user_data)
{
  if (sim.verbose)
    g_printerr ("grokimagine-sim: cdn2 %s %s\n",
        soup_server_message_get_method (msg), path);

  sim.stats.cdn2_requests++;
  if (soup_message_headers_get_one (soup_server_message_get_request_headers
          (msg), "Authorization"))
    sim.stats.cdn2_auth_headers++;
  if (g_str_has_prefix (path, "/generated/"))
    reply_redirect (msg, 302, sim.cdn_base);
  else
    reply_text (msg, 404);
}

/* ------------------------------------------------------------------ */
/* Main */

static gboolean
quit_on_signal (gpointer data)
{
  g_main_loop_quit (sim.loop);
  return G_SOURCE_CONTINUE;
}

static gboolean
stdin_ready (gint fd, GIOCondition condition, gpointer data)
{
  gchar buf[256];
  gssize n = read (fd, buf, sizeof (buf));

  if (n > 0 || (n < 0 && (errno == EINTR || errno == EAGAIN)))
    return G_SOURCE_CONTINUE;
  g_main_loop_quit (sim.loop);
  return G_SOURCE_REMOVE;
}

/* Sets a fault of the command line (option name "--generate-status") */
static gboolean
option_fault (const gchar * option, const gchar * value, gpointer data,
    GError ** error)
{
  g_autoptr (JsonNode) node = json_node_alloc ();
  gint id = 0;
  gint64 n;

  while (id < N_FAULTS - 1 && !g_str_equal (option + 2, fault_specs[id].option))
    id++;
  if (fault_specs[id].type == FT_BOOL)
    json_node_init_boolean (node, TRUE);
  else if (fault_specs[id].type == FT_INT &&
      g_ascii_string_to_signed (value, 10, G_MININT64, G_MAXINT64, &n, NULL))
    json_node_init_int (node, n);
  else
    json_node_init_string (node, value);
  if (fault_set (&sim.cli, id, node, error))
    return TRUE;
  g_prefix_error (error, "%s: ", option);
  return FALSE;
}

static SoupServer *
listen_local (gint port, SoupServerCallback callback, GTlsCertificate * tls,
    gchar ** base, GError ** error)
{
  g_autoptr (SoupServer) server = soup_server_new ("server-header",
      "grokimagine-sim ", "tls-certificate", tls, NULL);
  g_autoptr (GInetAddress) lo = g_inet_address_new_loopback
      (G_SOCKET_FAMILY_IPV4);
  g_autoptr (GSocketAddress) addr = g_inet_socket_address_new (lo, port);
  g_autoptr (GSocket) sock = g_socket_new (G_SOCKET_FAMILY_IPV4,
      G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP, error);
  GSList *uris;

  /* GSocketListener's backlog of 10 resets connections when a thousand
   * clients connect at once; a real API takes them */
  if (sock == NULL)
    return NULL;
  g_socket_set_listen_backlog (sock, 4096);
  if (!g_socket_bind (sock, addr, TRUE, error) || !g_socket_listen (sock,
          error))
    return NULL;
  soup_server_add_handler (server, NULL, callback, NULL, NULL);
  if (!soup_server_listen_socket (server, sock, tls ?
          SOUP_SERVER_LISTEN_HTTPS : 0, error))
    return NULL;
  uris = soup_server_get_uris (server);
  *base = g_strdup_printf ("%s://127.0.0.1:%d", tls ? "https" : "http",
      g_uri_get_port (uris->data));
  g_slist_free_full (uris, (GDestroyNotify) g_uri_unref);
  return g_steal_pointer (&server);
}

int
main (int argc, char **argv)
{
  g_autoptr (GOptionContext) ctx = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (GTlsCertificate) tls = NULL;
  g_autoptr (SoupServer) api = NULL;
  g_autoptr (SoupServer) cdn = NULL;
  g_autoptr (SoupServer) cdn2 = NULL;
  g_autofree gchar *api_base = NULL;
  g_autofree GOptionEntry *fault_entries = g_new0 (GOptionEntry, N_FAULTS + 1);
  GOptionEntry entries[] = {
    {"port", 0, 0, G_OPTION_ARG_INT, &sim.port,
        "Port of the API origin (0: any free port)", "N"},
    {"cdn-port", 0, 0, G_OPTION_ARG_INT, &sim.cdn_port,
        "Port of the CDN origin (0: any free port)", "N"},
    {"cdn2-port", 0, 0, G_OPTION_ARG_INT, &sim.cdn2_port,
        "Port of the redirecting CDN origin (0: any free port)", "N"},
    {"key", 0, 0, G_OPTION_ARG_STRING_ARRAY, &sim.keys,
        "An accepted API key (default sim-key); repeat it for more accounts "
          "(tasks are not kept apart by account)", "KEY"},
    {"credits", 0, 0, G_OPTION_ARG_INT64, &sim.initial_credits,
        "grok5imagine credit balance (default 100000)", "N"},
    {"tls-cert", 0, 0, G_OPTION_ARG_FILENAME, &sim.tls_cert,
        "Serve HTTPS with this PEM certificate (needs --tls-key)", "FILE"},
    {"tls-key", 0, 0, G_OPTION_ARG_FILENAME, &sim.tls_key,
        "PEM private key of --tls-cert", "FILE"},
    {"exit-on-stdin-eof", 0, 0, G_OPTION_ARG_NONE, &sim.exit_on_stdin_eof,
        "Exit when standard input reaches end of file", NULL},
    {"verbose", 'v', 0, G_OPTION_ARG_NONE, &sim.verbose,
        "Log requests and renders to stderr", NULL},
    {NULL}
  };

  for (gint id = 0; id < N_FAULTS; id++) {
    const FaultSpec *s = &fault_specs[id];

    fault_entries[id] = (GOptionEntry) {
    s->option, 0, s->type == FT_BOOL ? G_OPTION_FLAG_NO_ARG : 0,
          G_OPTION_ARG_CALLBACK, (gpointer) option_fault, s->help, s->arg};
    fault_off (&sim.cli, id);
  }
  sim.initial_credits = 100000;

  ctx = g_option_context_new ("- Grok Imagine API simulator");
  g_option_context_add_main_entries (ctx, entries, NULL);
  g_option_context_add_main_entries (ctx, fault_entries, NULL);
  if (!g_option_context_parse (ctx, &argc, &argv, &error)) {
    g_printerr ("grokimagine-sim: %s\n", error->message);
    return 2;
  }
  if (!sim.keys) {
    sim.keys = g_new0 (gchar *, 2);
    sim.keys[0] = g_strdup ("sim-key");
  }
  if (!sim.tls_cert != !sim.tls_key) {
    g_printerr ("grokimagine-sim: --tls-cert and --tls-key go together\n");
    return 2;
  }
  if (sim.tls_cert &&
      !(tls = g_tls_certificate_new_from_files (sim.tls_cert, sim.tls_key,
              &error))) {
    g_printerr ("grokimagine-sim: %s\n", error->message);
    return 2;
  }

  signal (SIGPIPE, SIG_IGN);
  gst_init (NULL, NULL);

  /* Every job would fail without them: refuse to start instead */
  for (const gchar * const *e = render_elements; *e; e++) {
    g_autoptr (GstElementFactory) f = gst_element_factory_find (*e);

    if (f == NULL) {
      g_printerr ("grokimagine-sim: cannot render results: the GStreamer "
          "element '%s' is missing. scripts/install-deps.sh installs its "
          "package (scripts/gst-elements.txt names it).\n", *e);
      return 1;
    }
  }

  sim.tasks = g_hash_table_new (g_str_hash, g_str_equal);
  sim.api_rates = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
      g_free);
  sim.renders = g_hash_table_new (g_str_hash, g_str_equal);
  sim.pool = g_thread_pool_new (render_thread, NULL,
      MAX (1, (gint) g_get_num_processors ()), FALSE, NULL);
  sim.loop = g_main_loop_new (NULL, FALSE);
  sim_reset_state ();

  if (!(api = listen_local (sim.port, api_handler, tls, &api_base, &error)) ||
      !(cdn = listen_local (sim.cdn_port, cdn_handler, tls, &sim.cdn_base,
              &error)) ||
      !(cdn2 = listen_local (sim.cdn2_port, cdn2_handler, tls,
              &sim.cdn2_base, &error))) {
    g_printerr ("grokimagine-sim: cannot listen: %s\n", error->message);
    return 1;
  }

  g_unix_signal_add (SIGTERM, quit_on_signal, NULL);
  g_unix_signal_add (SIGINT, quit_on_signal, NULL);
  if (sim.exit_on_stdin_eof)
    g_unix_fd_add (STDIN_FILENO, G_IO_IN | G_IO_HUP | G_IO_ERR, stdin_ready,
        NULL);

  printf ("api %s\ncdn %s\ncdn2 %s\nready\n", api_base, sim.cdn_base,
      sim.cdn2_base);
  fflush (stdout);

  g_main_loop_run (sim.loop);

  /* renders in progress notice this within 100 ms and clean up */
  g_atomic_int_set (&shutting_down, 1);
  g_thread_pool_free (sim.pool, TRUE, TRUE);
  soup_server_disconnect (api);
  soup_server_disconnect (cdn);
  soup_server_disconnect (cdn2);
  g_main_loop_unref (sim.loop);
  return 0;
}
