/* gst-grokimagine
 * Copyright (C) 2026 gst-grokimagine authors
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

/**
 * SECTION:element-grokimaginesrc
 * @title: grokimaginesrc
 *
 * grokimaginesrc turns a text prompt into a video. It submits a generation
 * job to a Grok Imagine API, follows the job until it ends and streams the
 * resulting file (an MP4, or a PNG for the text-to-image model) downstream.
 * One download fills a local file (in #GstGrokImagineSrc:cache-dir, or a
 * temporary file in #GstGrokImagineSrc:download-dir) in the background;
 * reads are served from it as soon as their bytes are there, so the element
 * is seekable, in pull and push mode, and posts BUFFERING messages when a
 * read has to wait for the network.
 *
 * Two APIs are spoken: `grokimagineapi` (the /v1 API, the default) and
 * `grok5imagine` (the /api API, with a choice of model). The key comes from
 * the #GstGrokImagineSrc:api-key property or the `GROK_IMAGINE_API_KEY`
 * environment variable and is only ever sent to the API's base URL.
 *
 * The job is submitted in the streaming thread when the element goes to
 * PAUSED, so gst_element_set_state() returns at once (ASYNC) and
 * set_state(NULL) cancels any request or wait, except a paid POST of which
 * anything has left: its answer is awaited (at most #GstGrokImagineSrc:
 * request-timeout, never more than 10 s) and its task recorded, as it is
 * for a seek. Elements of one process with the same request share its
 * task (#GstGrokImagineSrc:share-tasks). The task id is posted on the
 * bus in a `grokimagine-task` element message as soon as it exists, and at
 * every status change, with the fields `task-id`, `status` (submitted,
 * pending, completed, failed), `raw-status`, `api`, and on completion
 * `consumed-credits` and `result-urls`. Setting #GstGrokImagineSrc:task-id
 * reattaches to an existing task without submitting (and paying for) a new
 * one.
 *
 * ## Example launch lines
 * |[
 * gst-launch-1.0 grokimaginesrc prompt="a red fox running through snow" ratio=16:9 ! qtdemux ! h264parse ! mp4mux ! filesink location=fox.mp4
 * ]| Generates a video with the /v1 API and saves it.
 * |[
 * gst-launch-1.0 grokimaginesrc prompt="a lighthouse at dusk" ! decodebin ! videoconvert ! autovideosink
 * ]| Generates a video and plays it.
 * |[
 * gst-launch-1.0 grokimaginesrc api=grok5imagine model=text-to-video prompt="a dragon over a neon city" ! qtdemux ! h264parse ! mp4mux ! filesink location=dragon.mp4
 * ]| Generates a video with the grok5imagine API.
 * |[
 * gst-launch-1.0 grokimaginesrc api=grok5imagine model=text-to-image prompt="a dragon over a neon city" ! pngdec ! imagefreeze num-buffers=50 ! videoconvert ! autovideosink
 * ]| Generates a picture with the grok5imagine API.
 * |[
 * gst-launch-1.0 grokimaginesrc api=grok5imagine model=image-to-video images="<https://example.com/cat.png>" ! qtdemux ! h264parse ! mp4mux ! filesink location=cat.mp4
 * ]| Animates an image.
 * |[
 * gst-launch-1.0 grokimaginesrc api=grok5imagine model=upscale input-task-id=n31b6d54c8f4b4c4e8kie ! filesink location=upscaled.mp4
 * ]| Upscales the result of an earlier task.
 * |[
 * gst-launch-1.0 grokimaginesrc task-id=task_123456789 ! filesink location=again.mp4
 * ]| Reattaches to a task that was already submitted: no new job is paid for.
 * |[
 * gst-launch-1.0 grokimaginesrc prompt="a red fox" cache-dir=$HOME/.cache/grokimagine ! filesink location=fox.mp4
 * ]| Keeps a job journal: running it again reattaches to the task, or serves
 * the stored result without any request.
 * |[
 * gst-launch-1.0 grokimaginesrc prompt="a red fox" cache-dir=$HOME/.cache/grokimagine max-credits=500 cache-max-size=1000000000 ! filesink location=fox.mp4
 * ]| Refuses, before any request, a job that would take the credits the
 * folder's ledger counts past 500, and keeps the folder under 1 GB.
 * |[
 * gst-play-1.0 'grokimagine://?prompt=a%20quiet%20lake&ratio=16:9&api=grok5imagine&model=text-to-video'
 * ]| Plays a prompt through the URI handler. A URI describes the request
 * only: the key (`GROK_IMAGINE_API_KEY`) and the base URL
 * (`GROK_IMAGINE_BASE_URL`) come from the properties or the environment,
 * never from a URI.
 */

#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "gstgrokimaginesrc.h"
#include "grokimagine-api.h"
#include "grokimagine-client.h"
#include "grokimagine-job.h"
#include "grokimagine-reader.h"

#include <gst/base/gsttypefindhelper.h>
#include <glib/gstdio.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

GST_DEBUG_CATEGORY_STATIC (gst_grok_imagine_src_debug);
#define GST_CAT_DEFAULT gst_grok_imagine_src_debug

#define KEY_ENV "GROK_IMAGINE_API_KEY"
#define CACHE_ENV "GROK_IMAGINE_CACHE_DIR"
#define BASE_URL_ENV "GROK_IMAGINE_BASE_URL"
#define MAX_CREDITS_ENV "GROK_IMAGINE_MAX_CREDITS"

enum
{
  PROP_0,
  PROP_PROMPT,
  PROP_MODE,
  PROP_RATIO,
  PROP_IMAGES,
  PROP_API,
  PROP_BASE_URL,
  PROP_API_KEY,
  PROP_MODEL,
  PROP_INPUT_TASK_ID,
  PROP_CALLBACK_URL,
  PROP_PUBLIC,
  PROP_TASK_ID,
  PROP_RESULT_INDEX,
  PROP_POLL_INTERVAL,
  PROP_TIMEOUT,
  PROP_RETRIES,
  PROP_REQUEST_TIMEOUT,
  PROP_SSL_STRICT,
  PROP_SSL_CA_FILE,
  PROP_TLS_DATABASE,
  PROP_CACHE_DIR,
  PROP_REFRESH,
  PROP_SHARE_TASKS,
  PROP_MAX_CREDITS,
  PROP_CACHE_MAX_SIZE,
  PROP_RATE_LIMIT,
  PROP_DOWNLOAD_DIR,
  N_PROPS
};

#define DEFAULT_PROMPT NULL
#define DEFAULT_MODE "fun"
#define DEFAULT_RATIO "1:1"
#define DEFAULT_API GROK_IMAGINE_API_V1
#define DEFAULT_BASE_URL NULL
#define DEFAULT_MODEL GROK_IMAGINE_MODEL_TEXT_TO_VIDEO
#define DEFAULT_PUBLIC FALSE
#define DEFAULT_RESULT_INDEX 0
#define DEFAULT_POLL_INTERVAL 2000
#define DEFAULT_TIMEOUT 900
#define DEFAULT_RETRIES 5
#define DEFAULT_REQUEST_TIMEOUT 30
#define DEFAULT_SSL_STRICT TRUE
#define DEFAULT_REFRESH FALSE
#define DEFAULT_SHARE_TASKS TRUE
#define DEFAULT_MAX_CREDITS 0
#define DEFAULT_CACHE_MAX_SIZE 0
/* The longest a stop waits for the answer of a POST that has left */
#define STOP_WAIT_MAX (10 * G_TIME_SPAN_SECOND)
#define DEFAULT_RATE_LIMIT 0
#define DEFAULT_DOWNLOAD_DIR NULL
#define DEFAULT_BLOCKSIZE (256 * 1024)

static GParamSpec *properties[N_PROPS];
static gint serials;

/* What the properties set. Guarded by the object lock; start() takes a
 * copy for the run. */
typedef struct
{
  GrokImagineRequest req;
  gchar *base_url;
  gchar *api_key;
  gchar *task_id;
  guint result_index;
  guint poll_interval;
  guint timeout;
  guint retries;
  guint request_timeout;
  gboolean ssl_strict;
  gchar *ssl_ca_file;
  GTlsDatabase *tls_database;
  gchar *cache_dir;
  gboolean refresh;
  GrokImagineApi api_host;      /* api as the application set it (never a
                                 * URI): whose default host may get the key */
  gboolean share_tasks;
  guint64 max_credits;
  guint64 cache_max_size;
  guint rate_limit;
  gchar *download_dir;
} Settings;

struct _GstGrokImagineSrc
{
  GstBaseSrc parent;

  Settings settings;            /* object lock */
  gchar *submitted_task_id;     /* object lock: the task of the last run */
  guint64 serial;               /* tells this element's tasks from others' */
  gchar **uri_params;           /* the parameters the last URI set */
  gboolean applying_uri;        /* object lock: set_uri() sets properties */
  gint64 spent;                 /* credits of this element's jobs, for
                                 * max-credits without a journal */

  /* unlock() may come from any thread before, during or after a request:
   * it cancels this, and unlock_stop() puts a fresh one in its place */
  GMutex cancel_lock;
  GCancellable *cancellable;

  /* The run: set up in start(), used by the streaming thread, freed in stop() */
  Settings run;
  GrokImagineHttp http;
  GrokImagineClient *client;
  GrokImagineJob *job;          /* submit, poll and every pay-once rule */
  gchar *last_raw_status;
  const gchar *progress;        /* the operation under way, for CANCELED */
  gint download_percent;        /* download thread */
  GstTagList *pending_tags;     /* for downstream, once a segment went out */
  gboolean sent_buffer;
  GrokImagineReader *reader;    /* non-NULL once the result is known */
  gchar *journal_tmp;           /* the result being stored in the journal */
  guint64 announced_size;
  GstCaps *caps;
};

static void gst_grok_imagine_src_uri_handler_init (gpointer g_iface,
    gpointer iface_data);

#define gst_grok_imagine_src_parent_class parent_class
G_DEFINE_TYPE_WITH_CODE (GstGrokImagineSrc, gst_grok_imagine_src,
    GST_TYPE_BASE_SRC, G_IMPLEMENT_INTERFACE (GST_TYPE_URI_HANDLER,
        gst_grok_imagine_src_uri_handler_init));
GST_ELEMENT_REGISTER_DEFINE (grokimaginesrc, "grokimaginesrc",
    GST_RANK_NONE, GST_TYPE_GROK_IMAGINE_SRC);

static GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE ("src",
    GST_PAD_SRC, GST_PAD_ALWAYS, GST_STATIC_CAPS_ANY);

GType
gst_grok_imagine_api_get_type (void)
{
  static GType type = 0;
  static const GEnumValue values[] = {
    {GROK_IMAGINE_API_V1, "grokimagineapi: the /v1 API (grokimagineapi.com)",
        "grokimagineapi"},
    {GROK_IMAGINE_API_GROK5, "grok5imagine: the /api API (grok5imagine.com)",
        "grok5imagine"},
    {0, NULL, NULL}
  };

  if (g_once_init_enter (&type))
    g_once_init_leave (&type, g_enum_register_static ("GstGrokImagineApi",
            values));
  return type;
}

GType
gst_grok_imagine_model_get_type (void)
{
  static GType type = 0;
  static const GEnumValue values[] = {
    {GROK_IMAGINE_MODEL_TEXT_TO_VIDEO, "A video from the prompt",
        "text-to-video"},
    {GROK_IMAGINE_MODEL_TEXT_TO_IMAGE, "A PNG picture from the prompt",
        "text-to-image"},
    {GROK_IMAGINE_MODEL_IMAGE_TO_VIDEO,
        "A video animating 'images' or the result of 'input-task-id'",
        "image-to-video"},
    {GROK_IMAGINE_MODEL_UPSCALE, "The result of 'input-task-id', upscaled",
        "upscale"},
    {0, NULL, NULL}
  };

  if (g_once_init_enter (&type))
    g_once_init_leave (&type, g_enum_register_static ("GstGrokImagineModel",
            values));
  return type;
}

static void
settings_clear (Settings * s)
{
  grok_imagine_request_clear (&s->req);
  g_clear_pointer (&s->base_url, g_free);
  if (s->api_key)
    memset (s->api_key, 0, strlen (s->api_key));
  g_clear_pointer (&s->api_key, g_free);
  g_clear_pointer (&s->task_id, g_free);
  g_clear_pointer (&s->ssl_ca_file, g_free);
  g_clear_object (&s->tls_database);
  g_clear_pointer (&s->cache_dir, g_free);
  g_clear_pointer (&s->download_dir, g_free);
}

static void
settings_copy (Settings * dst, const Settings * src)
{
  settings_clear (dst);
  *dst = *src;
  dst->req.prompt = g_strdup (src->req.prompt);
  dst->req.mode = g_strdup (src->req.mode);
  dst->req.ratio = g_strdup (src->req.ratio);
  dst->req.images = g_strdupv (src->req.images);
  dst->req.input_task_id = g_strdup (src->req.input_task_id);
  dst->req.callback_url = g_strdup (src->req.callback_url);
  dst->base_url = g_strdup (src->base_url);
  dst->api_key = g_strdup (src->api_key);
  dst->task_id = g_strdup (src->task_id);
  dst->ssl_ca_file = g_strdup (src->ssl_ca_file);
  dst->cache_dir = g_strdup (src->cache_dir);
  dst->download_dir = g_strdup (src->download_dir);
  if (src->tls_database)
    dst->tls_database = g_object_ref (src->tls_database);
}

static gchar *
dup_nonempty (const GValue * value)
{
  const gchar *s = g_value_get_string (value);

  return s && *s ? g_strdup (s) : NULL;
}

/* --- cancellation --------------------------------------------------------- */

static GCancellable *
get_cancellable (GstGrokImagineSrc * self)
{
  GCancellable *c;

  g_mutex_lock (&self->cancel_lock);
  c = g_object_ref (self->cancellable);
  g_mutex_unlock (&self->cancel_lock);
  return c;
}

static gboolean
gst_grok_imagine_src_unlock (GstBaseSrc * bsrc)
{
  GstGrokImagineSrc *self = GST_GROK_IMAGINE_SRC (bsrc);

  GST_DEBUG_OBJECT (self, "unlock");
  g_mutex_lock (&self->cancel_lock);
  g_cancellable_cancel (self->cancellable);
  g_mutex_unlock (&self->cancel_lock);
  return TRUE;
}

static gboolean
gst_grok_imagine_src_unlock_stop (GstBaseSrc * bsrc)
{
  GstGrokImagineSrc *self = GST_GROK_IMAGINE_SRC (bsrc);

  GST_DEBUG_OBJECT (self, "unlock stop");
  g_mutex_lock (&self->cancel_lock);
  if (g_cancellable_is_cancelled (self->cancellable)) {
    g_object_unref (self->cancellable);
    self->cancellable = g_cancellable_new ();
  }
  g_mutex_unlock (&self->cancel_lock);
  return TRUE;
}

/* --- errors and messages -------------------------------------------------- */

/* Posts @err as an element error a person can act on. Returns the flow to
 * hand back: FLUSHING when the error is only our own cancellation. */
static GstFlowReturn
post_error (GstGrokImagineSrc * self, const GError * err, guint http_status,
    const gchar * task_id, const gchar * doing)
{
  GstResourceError code = GST_RESOURCE_ERROR_READ;
  GstStructure *details;
  gchar *text;

  if (g_error_matches (err, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    return GST_FLOW_FLUSHING;

  if (g_error_matches (err, G_IO_ERROR, G_IO_ERROR_NO_SPACE)) {
    code = GST_RESOURCE_ERROR_NO_SPACE_LEFT;
    text = g_strdup_printf ("The disk is full while %s (free some room, or "
        "choose another folder with download-dir or cache-dir): %s", doing,
        err->message);
  } else if (err->domain != GROK_IMAGINE_ERROR) {
    text = g_strdup_printf ("Failed while %s: %s", doing, err->message);
  } else {
    switch ((GrokImagineError) err->code) {
      case GROK_IMAGINE_ERROR_SETTINGS:
        code = GST_RESOURCE_ERROR_SETTINGS;
        text = g_strdup_printf ("The API rejected the settings while %s: %s",
            doing, err->message);
        break;
      case GROK_IMAGINE_ERROR_NOT_AUTHORIZED:
        code = GST_RESOURCE_ERROR_NOT_AUTHORIZED;
        text = g_strdup_printf ("Not authorized: the API key was missing or "
            "rejected (%s). Check the api-key property or " KEY_ENV ".",
            err->message);
        break;
      case GROK_IMAGINE_ERROR_PAYMENT_REQUIRED:
        code = GST_RESOURCE_ERROR_NOT_AUTHORIZED;
        text = g_strdup_printf ("Not authorized, insufficient credits: the "
            "account balance does not cover this task (%s).", err->message);
        break;
      case GROK_IMAGINE_ERROR_NOT_FOUND:
        code = GST_RESOURCE_ERROR_NOT_FOUND;
        text = g_strdup_printf ("Not found while %s: %s", doing, err->message);
        break;
      case GROK_IMAGINE_ERROR_UNREACHABLE:
        code = GST_RESOURCE_ERROR_OPEN_READ;
        text = g_strdup_printf ("%s (while %s).", err->message, doing);
        break;
      case GROK_IMAGINE_ERROR_NETWORK:
        text = g_strdup_printf ("%s (while %s).", err->message, doing);
        break;
      case GROK_IMAGINE_ERROR_TLS:
        code = GST_RESOURCE_ERROR_OPEN_READ;
        text = g_strdup_printf ("%s while %s. Trust its CA with tls-database "
            "or ssl-ca-file, or set ssl-strict=false to skip the check.",
            err->message, doing);
        break;
      case GROK_IMAGINE_ERROR_TASK_FAILED:
        code = GST_RESOURCE_ERROR_FAILED;
        text = g_strdup (err->message);
        break;
      case GROK_IMAGINE_ERROR_TIMEOUT:
        code = GST_RESOURCE_ERROR_FAILED;
        text = g_strdup (err->message);
        break;
      case GROK_IMAGINE_ERROR_CREDIT_CAP:
        code = GST_RESOURCE_ERROR_NOT_AUTHORIZED;
        text = g_strdup (err->message);
        break;
      case GROK_IMAGINE_ERROR_PROTOCOL:
        text = g_strdup_printf ("Unexpected answer while %s: %s", doing,
            err->message);
        break;
      case GROK_IMAGINE_ERROR_RATE_LIMITED:
      case GROK_IMAGINE_ERROR_SERVER:
      case GROK_IMAGINE_ERROR_HTTP:
      default:
        text = g_strdup_printf ("The server failed while %s: %s", doing,
            err->message);
        break;
    }
  }

  /* the job's own sentences are complete */
  if (doing == NULL) {
    g_free (text);
    text = g_strdup (err->message);
    doing = "running the job";
  }

  details = gst_structure_new_empty ("details");
  if (http_status)
    gst_structure_set (details, "http-status-code", G_TYPE_UINT, http_status,
        NULL);
  if (task_id)
    gst_structure_set (details, "task-id", G_TYPE_STRING, task_id, NULL);

  gst_element_message_full_with_details (GST_ELEMENT (self),
      GST_MESSAGE_ERROR, GST_RESOURCE_ERROR, code, text,
      g_strdup_printf ("%s: %s (%s %d)", doing, err->message,
          g_quark_to_string (err->domain), err->code),
      __FILE__, GST_FUNCTION, __LINE__, details);
  return GST_FLOW_ERROR;
}

/* With a journal: the credits its ledger counts, the folder's total */
static void
set_ledger_credits (GstGrokImagineSrc * self, GstStructure * s)
{
  gint64 total = self->job ? grok_imagine_job_get_ledger_credits (self->job) :
      -1;

  if (total >= 0)
    gst_structure_set (s, "ledger-credits", G_TYPE_INT64, total, NULL);
}

static void
post_task_message (GstGrokImagineSrc * self, const gchar * task_id,
    const gchar * status, const GrokImagineStatus * st)
{
  gint64 remaining = grok_imagine_client_get_rate_remaining (self->client);
  GstStructure *s = gst_structure_new ("grokimagine-task",
      "task-id", G_TYPE_STRING, task_id,
      "status", G_TYPE_STRING, status,
      "api", G_TYPE_STRING, grok_imagine_api_get_nick (self->run.req.api),
      NULL);

  if (remaining >= 0)
    gst_structure_set (s, "rate-limit-remaining", G_TYPE_INT64, remaining,
        NULL);
  if (st) {
    gst_structure_set (s, "raw-status", G_TYPE_STRING, st->raw_status, NULL);
    if (st->state != GROK_IMAGINE_STATE_PENDING && st->consumed_credits >= 0)
      gst_structure_set (s, "consumed-credits", G_TYPE_INT64,
          st->consumed_credits, NULL);
    if (st->state != GROK_IMAGINE_STATE_PENDING)
      set_ledger_credits (self, s);
    if (st->error_message)
      gst_structure_set (s, "error-message", G_TYPE_STRING,
          st->error_message, NULL);
    /* grok5imagine refunds a failed job and then reports 0 credits */
    if (st->state == GROK_IMAGINE_STATE_FAILED
        && self->run.req.api == GROK_IMAGINE_API_GROK5
        && st->consumed_credits == 0)
      gst_structure_set (s, "refunded", G_TYPE_BOOLEAN, TRUE, NULL);
    if (st->state == GROK_IMAGINE_STATE_COMPLETED) {
      GValue urls = G_VALUE_INIT;
      gchar **u;

      gst_value_array_init (&urls, g_strv_length (st->result_urls));
      for (u = st->result_urls; *u; u++) {
        GValue v = G_VALUE_INIT;

        g_value_init (&v, G_TYPE_STRING);
        g_value_set_string (&v, *u);
        gst_value_array_append_and_take_value (&urls, &v);
      }
      gst_structure_take_value (s, "result-urls", &urls);
    }
  }

  GST_INFO_OBJECT (self, "task %s: %s", task_id, status);
  gst_element_post_message (GST_ELEMENT (self),
      gst_message_new_element (GST_OBJECT (self), s));
}

/* GST_MESSAGE_PROGRESS for @code: "submit", "generate" or "download" */
static void
post_progress (GstGrokImagineSrc * self, GstProgressType type,
    const gchar * code, gint percent, const gchar * format, ...)
    G_GNUC_PRINTF (5, 6);

static void
post_progress (GstGrokImagineSrc * self, GstProgressType type,
    const gchar * code, gint percent, const gchar * format, ...)
{
  g_autofree gchar *text = NULL;
  GstMessage *msg;
  GstStructure *s;
  va_list args;

  va_start (args, format);
  text = g_strdup_vprintf (format, args);
  va_end (args);

  msg = gst_message_new_progress (GST_OBJECT (self), type, code, text);
  s = gst_message_writable_structure (msg);
  if (percent >= 0)
    gst_structure_set (s, "percent", G_TYPE_INT, percent, NULL);
  if (self->run.task_id)
    gst_structure_set (s, "task-id", G_TYPE_STRING, self->run.task_id, NULL);
  self->progress = (type == GST_PROGRESS_TYPE_START ||
      type == GST_PROGRESS_TYPE_CONTINUE) ? code : NULL;
  gst_element_post_message (GST_ELEMENT (self), msg);
}

/* Title and comment for muxers, on the bus and (pushing) downstream */
static void
post_tags (GstGrokImagineSrc * self, const GrokImagineStatus * st)
{
  const gchar *prompt = self->run.req.prompt ? self->run.req.prompt :
      st->request_prompt;
  g_autofree gchar *model = self->run.req.api == GROK_IMAGINE_API_GROK5 ?
      (st->request_model ? g_strdup (st->request_model) :
      g_strconcat ("grok-imagine/", grok_imagine_model_get_nick
          (self->run.req.model), NULL)) : g_strdup ("grokimagineapi v1");
  g_autofree gchar *comment = g_strdup_printf ("Generated by Grok Imagine: "
      "task %s, model %s", self->run.task_id, model);
  GstTagList *tags = gst_tag_list_new (GST_TAG_COMMENT, comment,
      GST_TAG_ENCODER, "gst-grokimagine " PACKAGE_VERSION, NULL);

  if (prompt && self->run.task_id)
    gst_tag_list_add (tags, GST_TAG_MERGE_REPLACE, GST_TAG_TITLE, prompt,
        NULL);
  gst_tag_list_set_scope (tags, GST_TAG_SCOPE_GLOBAL);
  gst_element_post_message (GST_ELEMENT (self),
      gst_message_new_tag (GST_OBJECT (self), gst_tag_list_ref (tags)));
  /* downstream too, from create() once the segment went out (never
   * gst_element_send_event() here: it takes the state lock, which a state
   * change holds while it waits for this thread) */
  gst_clear_tag_list (&self->pending_tags);
  self->pending_tags = tags;
}

/* A tag event must follow the segment, which GstBaseSrc sends with the
 * first buffer; in pull mode no event flows */
static void
push_pending_tags (GstGrokImagineSrc * self)
{
  GstPad *pad = GST_BASE_SRC_PAD (self);

  if (self->pending_tags == NULL || !self->sent_buffer)
    return;
  if (GST_PAD_MODE (pad) == GST_PAD_MODE_PUSH)
    gst_pad_push_event (pad, gst_event_new_tag (self->pending_tags));
  else
    gst_tag_list_unref (self->pending_tags);
  self->pending_tags = NULL;
}

static void announce_size (GstGrokImagineSrc * self, guint64 size);

/* --- the journal (cache-dir) ------------------------------------------------ */

/* The reader is the streaming thread's; the object lock guards its
 * coming and going for queries from other threads */
static void
set_reader (GstGrokImagineSrc * self, GrokImagineReader * reader)
{
  GrokImagineReader *old;

  GST_OBJECT_LOCK (self);
  old = self->reader;
  self->reader = reader;
  GST_OBJECT_UNLOCK (self);
  grok_imagine_reader_free (old);
}

/* Serves the stored result when it is whole */
static gboolean
open_stored_result (GstGrokImagineSrc * self)
{
  guint64 size = 0;
  g_autofree gchar *path = grok_imagine_job_get_stored_result (self->job,
      &size);
  int fd = path ? g_open (path, O_RDONLY | O_CLOEXEC, 0) : -1;
  GStatBuf st;

  if (fd < 0)
    return FALSE;
  if (fstat (fd, &st) != 0 || (guint64) st.st_size != size) {
    GST_WARNING_OBJECT (self, "stored result %s is not whole, ignoring it",
        path);
    close (fd);
    return FALSE;
  }
  set_reader (self, grok_imagine_reader_new_for_file (fd, path, size));
  announce_size (self, size);
  return TRUE;
}

static void
post_cached (GstGrokImagineSrc * self, const gchar * task_id)
{
  GrokImagineStatus st = { GROK_IMAGINE_STATE_COMPLETED, (gchar *) "cached",
    (gchar *) task_id, NULL, -1, grok_imagine_job_get_result_urls (self->job),
    NULL, NULL
  };
  GstStructure *s = gst_structure_new ("grokimagine-task",
      "task-id", G_TYPE_STRING, task_id,
      "status", G_TYPE_STRING, "completed",
      "api", G_TYPE_STRING, grok_imagine_api_get_nick (self->run.req.api),
      "cached", G_TYPE_BOOLEAN, TRUE, NULL);

  set_ledger_credits (self, s);
  GST_INFO_OBJECT (self, "serving task %s from the journal", task_id);
  gst_element_post_message (GST_ELEMENT (self),
      gst_message_new_element (GST_OBJECT (self), s));
  post_tags (self, &st);
}

/* With a journal, the download fills a temporary file beside the stored
 * result (renamed into place when whole, in store_result()); -1 without */
static int
create_stored_result (GstGrokImagineSrc * self)
{
  g_autoptr (GOutputStream) out = NULL;
  g_autoptr (GError) err = NULL;
  int fd;

  out = grok_imagine_job_create_result (self->job, &self->journal_tmp, &err);
  if (out == NULL) {
    GST_ELEMENT_WARNING (self, RESOURCE, WRITE, ("Cannot store the result "
            "in the cache folder, streaming it instead: %s", err->message),
        (NULL));
    return -1;
  }
  g_output_stream_close (out, NULL, NULL);
  fd = g_open (self->journal_tmp, O_RDWR | O_CLOEXEC, 0);
  if (fd < 0) {
    GST_ELEMENT_WARNING (self, RESOURCE, WRITE, ("Cannot store the result "
            "in the cache folder, streaming it instead: %s",
            g_strerror (errno)), (NULL));
    g_unlink (self->journal_tmp);
    g_clear_pointer (&self->journal_tmp, g_free);
  }
  return fd;
}

/* The download is whole (download thread): record it in the journal. An
 * empty result is refused there, and create() reports it */
static void
store_result (GstGrokImagineSrc * self)
{
  g_autoptr (GError) err = NULL;
  guint64 size = 0;

  if (!grok_imagine_job_commit_result (self->job, self->journal_tmp, &size,
          &err) && g_error_matches (err, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    GST_INFO_OBJECT (self, "stopped while another process held the journal "
        "lock: the job stores the result when it ends, or warns");
  else if (err)
    GST_ELEMENT_WARNING (self, RESOURCE, WRITE, ("Cannot record the result "
            "of task %s in the journal: %s", self->run.task_id, err->message),
        (NULL));
  else
    GST_INFO_OBJECT (self, "stored the result of task %s, %" G_GUINT64_FORMAT
        " bytes", self->run.task_id, size);
}

/* What the job reports, as bus messages and progress */
static void
on_job_event (GrokImagineJobEvent event, const gchar * task_id,
    const GrokImagineStatus * st, const gchar * text, gpointer user_data)
{
  GstGrokImagineSrc *self = user_data;

  if (task_id && g_strcmp0 (task_id, self->run.task_id) != 0) {
    g_free (self->run.task_id);
    self->run.task_id = g_strdup (task_id);
    GST_OBJECT_LOCK (self);
    g_free (self->submitted_task_id);
    self->submitted_task_id = g_strdup (task_id);
    GST_OBJECT_UNLOCK (self);
  }

  switch (event) {
    case GROK_IMAGINE_JOB_SUBMITTING:
      GST_INFO_OBJECT (self, "submitting a %s job",
          grok_imagine_api_get_nick (self->run.req.api));
      post_progress (self, GST_PROGRESS_TYPE_START, "submit", 0,
          "Submitting the job to %s",
          grok_imagine_client_get_host (self->client));
      break;
    case GROK_IMAGINE_JOB_SUBMITTED:
      post_task_message (self, task_id, "submitted", NULL);
      post_progress (self, GST_PROGRESS_TYPE_COMPLETE, "submit", 100,
          "Submitted task %s", task_id);
      g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_TASK_ID]);
      post_progress (self, GST_PROGRESS_TYPE_START, "generate", 0,
          "Waiting for task %s", task_id);
      break;
    case GROK_IMAGINE_JOB_REATTACHED:
      GST_INFO_OBJECT (self, "reattaching to task %s (from %s)", task_id,
          text);
      post_progress (self, GST_PROGRESS_TYPE_START, "generate", 0,
          "Waiting for task %s", task_id);
      break;
    case GROK_IMAGINE_JOB_RESUBMITTING:
      GST_ELEMENT_WARNING (self, RESOURCE, READ, ("%s", text), (NULL));
      break;
    case GROK_IMAGINE_JOB_STATUS:
      post_progress (self, GST_PROGRESS_TYPE_CONTINUE, "generate", -1,
          "Task %s: %s", task_id, st->raw_status);
      if (g_strcmp0 (st->raw_status, self->last_raw_status) != 0) {
        g_free (self->last_raw_status);
        self->last_raw_status = g_strdup (st->raw_status);
        post_task_message (self, task_id,
            grok_imagine_state_get_nick (st->state), st);
      }
      if (st->state == GROK_IMAGINE_STATE_COMPLETED)
        post_tags (self, st);
      break;
    case GROK_IMAGINE_JOB_CACHED:
      post_cached (self, task_id);
      break;
    case GROK_IMAGINE_JOB_WARNING:
      GST_ELEMENT_WARNING (self, RESOURCE, WRITE, ("%s", text), (NULL));
      break;
  }
}

/* --- the download -------------------------------------------------------- */

/* Without a journal: a temporary file in download-dir, deleted at stop */
static int
create_download_file (GstGrokImagineSrc * self, gchar ** path)
{
  const gchar *dir = self->run.download_dir;
  g_autofree gchar *cache = NULL;
  int fd, e;

  if (dir == NULL) {
    cache = g_build_filename (g_get_user_cache_dir (), "gst-grokimagine",
        NULL);
    dir = g_mkdir_with_parents (cache, 0700) == 0 ? cache : g_get_tmp_dir ();
  }
  *path = g_build_filename (dir, "result-XXXXXX.part", NULL);
  fd = g_mkstemp_full (*path, O_RDWR | O_CLOEXEC, 0600);
  if (fd >= 0)
    return fd;
  e = errno;
  if (grok_imagine_io_error_from_errno (e) == G_IO_ERROR_NO_SPACE)
    GST_ELEMENT_ERROR (self, RESOURCE, NO_SPACE_LEFT, ("The disk is full "
            "while creating a file for the result of task %s in the folder "
            "'%s' (free some room, or set download-dir to another folder): "
            "%s", self->run.task_id, dir, g_strerror (e)), (NULL));
  else
    GST_ELEMENT_ERROR (self, RESOURCE, OPEN_WRITE, ("Cannot create a file "
            "for the result of task %s in the folder '%s' (set download-dir "
            "to another folder): %s", self->run.task_id, dir, g_strerror (e)),
        (NULL));
  g_clear_pointer (path, g_free);
  return -1;
}

/* Download thread (and, for BUFFERING, the streaming thread) */
static void
on_reader_event (GrokImagineReader * reader, GrokImagineReaderEvent event,
    gint percent, gpointer user_data)
{
  GstGrokImagineSrc *self = user_data;
  guint64 size;

  switch (event) {
    case GROK_IMAGINE_READER_SIZE:
      if (grok_imagine_reader_get_size (reader, &size))
        announce_size (self, size);
      break;
    case GROK_IMAGINE_READER_PROGRESS:
      /* percentages of the bytes that arrived, each once. Each is a step
       * that is done, not an operation under way: gst-launch holds a
       * prerolled pipeline in PAUSED until a started operation completes,
       * and the download runs in the background whatever the pipeline
       * does, so it must not hold playback until its end. */
      if (percent >= 100 || percent <= self->download_percent)
        break;
      self->download_percent = percent;
      post_progress (self, GST_PROGRESS_TYPE_COMPLETE, "download", percent,
          "Downloading the result of task %s: %d%%", self->run.task_id,
          percent);
      break;
    case GROK_IMAGINE_READER_COMPLETE:
      if (self->journal_tmp)
        store_result (self);
      self->download_percent = 100;
      post_progress (self, GST_PROGRESS_TYPE_COMPLETE, "download", 100,
          "Downloaded the result of task %s", self->run.task_id);
      break;
    case GROK_IMAGINE_READER_FAILED:
      post_progress (self, GST_PROGRESS_TYPE_ERROR, "download", -1,
          "Downloading the result of task %s failed", self->run.task_id);
      break;
    case GROK_IMAGINE_READER_BUFFERING:
      GST_DEBUG_OBJECT (self, "buffering %d%%", percent);
      gst_element_post_message (GST_ELEMENT (self),
          gst_message_new_buffering (GST_OBJECT (self), percent));
      break;
  }
}

/* One download of the result into a local file, in the background: with a
 * journal into the journal's result file, else into a temporary file */
static GstFlowReturn
start_download (GstGrokImagineSrc * self, const gchar * url)
{
  g_autofree gchar *path = NULL;
  int fd = grok_imagine_job_has_journal (self->job) ?
      create_stored_result (self) : -1;

  if (fd >= 0)
    path = g_strdup (self->journal_tmp);
  else if ((fd = create_download_file (self, &path)) < 0)
    return GST_FLOW_ERROR;
  GST_DEBUG_OBJECT (self, "downloading %s into %s", url, path);
  set_reader (self, grok_imagine_reader_new (&self->http, url, fd, path,
          self->journal_tmp != NULL, on_reader_event, self));
  return GST_FLOW_OK;
}

/* Runs the job until its result is known, then opens the stored result or
 * the result URL. Runs in the streaming thread; every wait and request ends
 * at unlock(), except a POST that has started to leave. */
static GstFlowReturn
run_job (GstGrokImagineSrc * self)
{
  g_autoptr (GCancellable) cancellable = get_cancellable (self);
  g_autoptr (GError) err = NULL;
  const gchar *doing = NULL, *url;
  gboolean ok;

  /* after a flush: the task is known, the polls go on */
  if (grok_imagine_job_get_task_id (self->job) && self->progress == NULL)
    post_progress (self, GST_PROGRESS_TYPE_START, "generate", 0,
        "Waiting for task %s", self->run.task_id);
  ok = grok_imagine_job_run (self->job, cancellable, &doing, &err);
  if (!ok) {
    if (self->progress)
      post_progress (self, g_error_matches (err, G_IO_ERROR,
              G_IO_ERROR_CANCELLED) ? GST_PROGRESS_TYPE_CANCELED :
          GST_PROGRESS_TYPE_ERROR, self->progress, -1, "%s failed",
          g_str_equal (self->progress, "submit") ? "Submitting" :
          "Waiting for the task");
    return post_error (self, err, grok_imagine_job_get_http_status
        (self->job), grok_imagine_job_get_task_id (self->job), doing);
  }

  if (self->progress && g_str_equal (self->progress, "generate"))
    post_progress (self, GST_PROGRESS_TYPE_COMPLETE, "generate", 100,
        "Task %s completed", self->run.task_id);
  if (open_stored_result (self))
    return GST_FLOW_OK;
  url = grok_imagine_job_get_result_url (self->job);
  GST_INFO_OBJECT (self, "task %s completed, streaming result %u: %s",
      self->run.task_id, self->run.result_index, url);
  return start_download (self, url);
}
/* Called by the HTTP layer before it waits: says why on the bus */
static void
on_wait (GrokImagineWaitReason reason, gint64 wait_us, const GError * cause,
    gpointer user_data)
{
  GstGrokImagineSrc *self = user_data;
  gdouble secs = wait_us / (gdouble) G_TIME_SPAN_SECOND;

  if (reason == GROK_IMAGINE_WAIT_PACED) {
    if (wait_us > self->run.poll_interval * G_TIME_SPAN_MILLISECOND)
      post_progress (self, GST_PROGRESS_TYPE_CONTINUE, "generate", -1,
          "Task %s: polling every %.*f s to stay within the key's rate "
          "limit", self->run.task_id, secs < 10 ? 1 : 0, secs);
  } else if (reason == GROK_IMAGINE_WAIT_RATE_LIMIT)
    GST_ELEMENT_WARNING (self, RESOURCE, BUSY, ("Rate limited by the API: "
            "waiting %.1f s before the next request.", secs), (NULL));
  else
    GST_ELEMENT_WARNING (self, RESOURCE, READ, ("Temporary failure, retrying "
            "in %.1f s: %s", secs, cause->message), (NULL));
}

static gboolean
setup_http (GstGrokImagineSrc * self)
{
  g_autoptr (GTlsDatabase) db = NULL;
  g_autoptr (GError) err = NULL;

  if (self->run.tls_database) {
    db = g_object_ref (self->run.tls_database);
  } else if (self->run.ssl_ca_file) {
    db = g_tls_file_database_new (self->run.ssl_ca_file, &err);
    if (db == NULL) {
      GST_ELEMENT_ERROR (self, RESOURCE, SETTINGS, ("Cannot read the "
              "certificates of ssl-ca-file '%s': %s", self->run.ssl_ca_file,
              err->message), (NULL));
      return FALSE;
    }
  }

  self->http.session = soup_session_new_with_options ("user-agent",
      "gst-grokimagine/" PACKAGE_VERSION " ", "timeout",
      self->run.request_timeout, NULL);
  if (db)
    soup_session_set_tls_database (self->http.session, db);
  self->http.ssl_strict = self->run.ssl_strict;
  self->http.retries = self->run.retries;
  /* polls have the job's deadline; a download may wait out as long */
  self->http.outage_limit = self->run.timeout * G_TIME_SPAN_SECOND;
  self->http.rate_limit = self->run.rate_limit;
  self->http.notify = on_wait;
  self->http.notify_data = self;
  return TRUE;
}

/* --- GstBaseSrc ----------------------------------------------------------- */

static gboolean gst_grok_imagine_src_stop (GstBaseSrc * bsrc);

static gboolean
gst_grok_imagine_src_start (GstBaseSrc * bsrc)
{
  GstGrokImagineSrc *self = GST_GROK_IMAGINE_SRC (bsrc);
  g_autoptr (GError) err = NULL;
  GrokImagineJobSettings job = { 0, };

  GST_OBJECT_LOCK (self);
  settings_copy (&self->run, &self->settings);
  GST_OBJECT_UNLOCK (self);

  if (self->run.api_key == NULL && g_getenv (KEY_ENV) && *g_getenv (KEY_ENV))
    self->run.api_key = g_strdup (g_getenv (KEY_ENV));
  /* like the key, where it goes comes from the environment, never a URI */
  if (self->run.base_url == NULL && g_getenv (BASE_URL_ENV)
      && *g_getenv (BASE_URL_ENV))
    self->run.base_url = g_strdup (g_getenv (BASE_URL_ENV));
  /* the API's default host is where the key goes: a URI cannot pick it */
  if (self->run.base_url == NULL && self->run.req.api != self->run.api_host) {
    GST_ELEMENT_ERROR (self, RESOURCE, SETTINGS, ("The URI chose api=%s, "
            "but a URI never decides where the key is sent: set the "
            BASE_URL_ENV " environment variable or the base-url property "
            "to %s to send it there", grok_imagine_api_get_nick
            (self->run.req.api),
            grok_imagine_api_default_base_url (self->run.req.api)), (NULL));
    goto failed;
  }
  if (self->run.max_credits == 0 && g_getenv (MAX_CREDITS_ENV)
      && *g_getenv (MAX_CREDITS_ENV)
      && !g_ascii_string_to_unsigned (g_getenv (MAX_CREDITS_ENV), 10, 0,
          G_MAXINT64, &self->run.max_credits, &err)) {
    GST_ELEMENT_ERROR (self, RESOURCE, SETTINGS, (MAX_CREDITS_ENV " is not "
            "a number of credits: %s", err->message), (NULL));
    goto failed;
  }

  if (self->run.task_id == NULL) {
    if (!grok_imagine_request_validate (&self->run.req, &err)) {
      GST_ELEMENT_ERROR (self, RESOURCE, SETTINGS, ("%s", err->message),
          (NULL));
      goto failed;
    }
  }

  if (self->run.api_key == NULL) {
    GST_ELEMENT_ERROR (self, RESOURCE, NOT_AUTHORIZED,
        ("No API key: set the api-key property or the " KEY_ENV
            " environment variable."), (NULL));
    goto failed;
  }

  if (!setup_http (self))
    goto failed;
  self->client = grok_imagine_client_new (&self->http, self->run.req.api,
      self->run.base_url, self->run.api_key, &err);
  if (self->client == NULL) {
    GST_ELEMENT_ERROR (self, RESOURCE, SETTINGS, ("%s", err->message), (NULL));
    goto failed;
  }

  /* The job keys a request by what is sent and where, never the key */
  job.req = &self->run.req;
  job.task_id = self->run.task_id;
  job.cache_dir = self->run.cache_dir ? self->run.cache_dir :
      g_getenv (CACHE_ENV);
  job.result_index = self->run.result_index;
  job.poll_interval = self->run.poll_interval;
  job.timeout = self->run.timeout;
  job.refresh = self->run.refresh;
  job.share = self->run.share_tasks;
  job.owner = self->serial;
  job.api_key = self->run.api_key;
  job.max_credits = self->run.max_credits;
  job.spent = &self->spent;
  job.cache_max_size = self->run.cache_max_size;
  self->job = grok_imagine_job_new (self->client, &job, on_job_event, self,
      &err);
  if (self->job == NULL) {
    GST_ELEMENT_ERROR (self, RESOURCE, SETTINGS, ("%s", err->message), (NULL));
    goto failed;
  }
  GST_DEBUG_OBJECT (self, "started, api %s at %s, task %s",
      grok_imagine_api_get_nick (self->run.req.api),
      grok_imagine_client_get_host (self->client),
      GST_STR_NULL (self->run.task_id));
  return TRUE;

failed:
  /* GstBaseSrc does not call stop() after a failed start() */
  gst_grok_imagine_src_stop (bsrc);
  return FALSE;
}

static gboolean
gst_grok_imagine_src_stop (GstBaseSrc * bsrc)
{
  GstGrokImagineSrc *self = GST_GROK_IMAGINE_SRC (bsrc);

  GST_DEBUG_OBJECT (self, "stop");
  /* first: its threads may still report */
  set_reader (self, NULL);
  if (self->progress)
    post_progress (self, GST_PROGRESS_TYPE_CANCELED, self->progress, -1,
        "Stopped");
  self->download_percent = -1;
  self->sent_buffer = FALSE;
  gst_clear_tag_list (&self->pending_tags);
  g_clear_pointer (&self->journal_tmp, g_free);
  g_clear_pointer (&self->job, grok_imagine_job_free);
  g_clear_pointer (&self->client, grok_imagine_client_free);
  if (self->http.session)
    soup_session_abort (self->http.session);
  g_clear_object (&self->http.session);
  g_clear_pointer (&self->last_raw_status, g_free);
  gst_clear_caps (&self->caps);
  self->announced_size = 0;
  settings_clear (&self->run);
  return TRUE;
}

static gboolean
gst_grok_imagine_src_get_size (GstBaseSrc * bsrc, guint64 * size)
{
  GstGrokImagineSrc *self = GST_GROK_IMAGINE_SRC (bsrc);

  return self->reader && grok_imagine_reader_get_size (self->reader, size);
}

static gboolean
gst_grok_imagine_src_is_seekable (GstBaseSrc * bsrc)
{
  /* Reads come from the local copy of the result */
  return TRUE;
}

/* Like a network source: seekable in pull and push mode, and bandwidth
 * limited while the download runs, so that playbin and uridecodebin buffer
 * as they do for HTTP */
static gboolean
gst_grok_imagine_src_query (GstBaseSrc * bsrc, GstQuery * query)
{
  GstGrokImagineSrc *self = GST_GROK_IMAGINE_SRC (bsrc);
  GstSchedulingFlags flags = GST_SCHEDULING_FLAG_SEEKABLE;

  if (GST_QUERY_TYPE (query) != GST_QUERY_SCHEDULING)
    return GST_BASE_SRC_CLASS (parent_class)->query (bsrc, query);

  /* the streaming thread owns the reader; it only goes in stop() */
  GST_OBJECT_LOCK (self);
  if (self->reader == NULL
      || grok_imagine_reader_is_downloading (self->reader))
    flags |= GST_SCHEDULING_FLAG_BANDWIDTH_LIMITED;
  GST_OBJECT_UNLOCK (self);
  gst_query_set_scheduling (query, flags, 1, -1, 0);
  gst_query_add_scheduling_mode (query, GST_PAD_MODE_PUSH);
  gst_query_add_scheduling_mode (query, GST_PAD_MODE_PULL);
  return TRUE;
}

static gboolean
gst_grok_imagine_src_negotiate (GstBaseSrc * bsrc)
{
  GstGrokImagineSrc *self = GST_GROK_IMAGINE_SRC (bsrc);

  /* Caps come from typefinding the first bytes of the result, in create() */
  return self->caps == NULL || gst_base_src_set_caps (bsrc, self->caps);
}

static gboolean
gst_grok_imagine_src_event (GstBaseSrc * bsrc, GstEvent * event)
{
  GstGrokImagineSrc *self = GST_GROK_IMAGINE_SRC (bsrc);

  /* The caps come from the data and never change, and buffers are our own
   * memory: once the caps are set, a reconfigure has nothing to renegotiate.
   * Skipping it also keeps an allocation query away from a queue whose
   * downstream already returned EOS, which GStreamer 1.22's queue never
   * answers (a deadlock seen with queue ! qtdemux on a small file). */
  if (GST_EVENT_TYPE (event) == GST_EVENT_RECONFIGURE
      && g_atomic_pointer_get (&self->caps)) {
    gst_pad_check_reconfigure (bsrc->srcpad);
    return TRUE;
  }
  return GST_BASE_SRC_CLASS (parent_class)->event (bsrc, event);
}

static void
announce_size (GstGrokImagineSrc * self, guint64 size)
{
  GstBaseSrc *bsrc = GST_BASE_SRC (self);

  if (size == self->announced_size)
    return;
  self->announced_size = size;
  GST_DEBUG_OBJECT (self, "result size %" G_GUINT64_FORMAT, size);
  GST_OBJECT_LOCK (self);
  bsrc->segment.duration = size;
  GST_OBJECT_UNLOCK (self);
  gst_element_post_message (GST_ELEMENT (self),
      gst_message_new_duration_changed (GST_OBJECT (self)));
}

static void
set_caps_from_data (GstGrokImagineSrc * self, GstBuffer * buf)
{
  GstBaseSrc *bsrc = GST_BASE_SRC (self);
  g_autofree gchar *content_type = NULL;
  GstCaps *caps;

  /* In pull mode downstream typefinds for itself */
  if (self->caps || GST_PAD_MODE (bsrc->srcpad) != GST_PAD_MODE_PUSH)
    return;

  caps = GST_BUFFER_OFFSET (buf) == 0 ?
      gst_type_find_helper_for_buffer (GST_OBJECT (self), buf, NULL) : NULL;
  content_type = grok_imagine_reader_dup_content_type (self->reader);
  if (caps == NULL && content_type) {
    if (g_str_equal (content_type, "video/mp4"))
      caps = gst_caps_new_empty_simple ("video/quicktime");
    else if (g_str_has_prefix (content_type, "image/")
        || g_str_has_prefix (content_type, "video/"))
      caps = gst_caps_new_empty_simple (content_type);
  }
  if (caps == NULL)
    return;

  GST_DEBUG_OBJECT (self, "result caps %" GST_PTR_FORMAT, caps);
  g_atomic_pointer_set (&self->caps, caps);
  gst_base_src_set_caps (bsrc, caps);
}

static GstFlowReturn
gst_grok_imagine_src_create (GstBaseSrc * bsrc, guint64 offset, guint length,
    GstBuffer ** outbuf)
{
  GstGrokImagineSrc *self = GST_GROK_IMAGINE_SRC (bsrc);
  g_autoptr (GCancellable) cancellable = NULL;
  g_autoptr (GError) err = NULL;
  GstFlowReturn ret;
  GstBuffer *buf;
  GBytes *bytes;
  gsize n;

  if (self->reader == NULL && (ret = run_job (self)) != GST_FLOW_OK)
    return ret;
  push_pending_tags (self);

  /* Pulling demuxers want every byte they ask for; pushing, we hand on
   * what has arrived */
  cancellable = get_cancellable (self);
  bytes = grok_imagine_reader_read (self->reader, offset, length,
      GST_PAD_MODE (bsrc->srcpad) == GST_PAD_MODE_PULL, cancellable, &err);
  if (bytes == NULL) {
    g_autofree gchar *folder = g_path_get_dirname
        (grok_imagine_reader_get_path (self->reader));
    /* a full disk: which one */
    g_autofree gchar *doing = g_error_matches (err, G_IO_ERROR,
        G_IO_ERROR_NO_SPACE) ? g_strdup_printf ("storing the result of task "
        "%s in the folder '%s'", self->run.task_id, folder) :
        g_strdup_printf ("downloading the result of task %s",
        self->run.task_id);

    return post_error (self, err, grok_imagine_reader_get_http_status
        (self->reader), self->run.task_id, doing);
  }
  n = g_bytes_get_size (bytes);
  if (n == 0) {
    g_bytes_unref (bytes);
    if (offset > 0)
      return GST_FLOW_EOS;
    /* nothing at all: an empty result is no video (and is never stored) */
    err = g_error_new (GROK_IMAGINE_ERROR, GROK_IMAGINE_ERROR_PROTOCOL,
        "the result of task %s is empty", self->run.task_id);
    return post_error (self, err, 0, self->run.task_id,
        "downloading the result");
  }

  buf = gst_buffer_new_wrapped_bytes (bytes);
  g_bytes_unref (bytes);
  GST_BUFFER_OFFSET (buf) = offset;
  GST_BUFFER_OFFSET_END (buf) = offset + n;
  set_caps_from_data (self, buf);
  self->sent_buffer = TRUE;
  *outbuf = buf;
  return GST_FLOW_OK;
}

/* --- GstURIHandler: grokimagine://?prompt=...&ratio=16:9 --------------------- */

#define URI_SCHEME "grokimagine"

static GstURIType
gst_grok_imagine_src_uri_get_type (GType type)
{
  return GST_URI_SRC;
}

static const gchar *const *
gst_grok_imagine_src_uri_get_protocols (GType type)
{
  static const gchar *protocols[] = { URI_SCHEME, NULL };

  return protocols;
}

/* The request as a URI; never with the key nor where it goes */
static gchar *
gst_grok_imagine_src_uri_get_uri (GstURIHandler * handler)
{
  GstGrokImagineSrc *self = GST_GROK_IMAGINE_SRC (handler);
  g_autoptr (GString) uri = g_string_new (URI_SCHEME "://");
  g_autofree gchar *task_id = NULL, *prompt = NULL;
  GrokImagineApi api;

  g_object_get (self, "task-id", &task_id, "prompt", &prompt, "api", &api,
      NULL);
  if (task_id) {
    g_autofree gchar *id = g_uri_escape_string (task_id, NULL, FALSE);

    g_string_append_printf (uri, "task/%s?api=%s", id,
        grok_imagine_api_get_nick (api));
  } else {
    g_autofree gchar *p = g_uri_escape_string (prompt ? prompt : "", NULL,
        FALSE);

    g_string_append_printf (uri, "?prompt=%s&api=%s", p,
        grok_imagine_api_get_nick (api));
  }
  return g_string_free (g_steal_pointer (&uri), FALSE);
}

/* What a URI may carry: a request, never where the key goes, what is
 * written, published or paid for beyond the request itself. task-id comes
 * only from the grokimagine://task/<id> form. */
static const gchar *const uri_parameters[] = {
  "prompt", "mode", "ratio", "images", "api", "model", "input-task-id",
  "result-index", "poll-interval", "timeout", NULL
};

/* Checks one parameter of a URI and turns its value into @v */
static gboolean
parse_uri_parameter (GstGrokImagineSrc * self, const gchar * name,
    const gchar * value, GValue * v, GError ** error)
{
  GParamSpec *pspec;

  if (g_str_equal (name, "api-key")) {
    g_set_error (error, GST_URI_ERROR, GST_URI_ERROR_BAD_URI, "The key is "
        "never taken from a URI: set the api-key property or "
        KEY_ENV " instead");
    return FALSE;
  }
  if (g_str_equal (name, "base-url")) {
    g_set_error (error, GST_URI_ERROR, GST_URI_ERROR_BAD_URI, "A URI cannot "
        "set base-url, which decides where the key is sent: set the base-url "
        "property or the " BASE_URL_ENV " environment variable instead");
    return FALSE;
  }
  if (g_str_equal (name, "task-id")) {
    g_set_error (error, GST_URI_ERROR, GST_URI_ERROR_BAD_URI, "A URI "
        "names a task as grokimagine://task/<task-id>, not with a task-id "
        "parameter");
    return FALSE;
  }
  if (!g_strv_contains (uri_parameters, name)) {
    g_autofree gchar *allowed = g_strjoinv (", ", (GStrv) uri_parameters);

    g_set_error (error, GST_URI_ERROR, GST_URI_ERROR_BAD_URI, "A "
        "grokimagine:// URI cannot set '%s': it may set only %s; set "
        "anything else as a property", name, allowed);
    return FALSE;
  }

  pspec = g_object_class_find_property (G_OBJECT_GET_CLASS (self), name);
  g_value_init (v, pspec->value_type);
  if (pspec->value_type == G_TYPE_STRING)
    g_value_set_string (v, value);
  else if (!gst_value_deserialize_with_pspec (v, value, pspec)
      || g_param_value_validate (pspec, v)) {
    g_set_error (error, GST_URI_ERROR, GST_URI_ERROR_BAD_URI, "Invalid "
        "value '%s' for '%s'", value, name);
    return FALSE;
  }
  return TRUE;
}

static void
clear_value (GValue * v)
{
  if (G_IS_VALUE (v))
    g_value_unset (v);
}

/* grokimagine://?prop=value&... or grokimagine://task/<task-id>?prop=... */
static gboolean
gst_grok_imagine_src_uri_set_uri (GstURIHandler * handler, const gchar * uri,
    GError ** error)
{
  GstGrokImagineSrc *self = GST_GROK_IMAGINE_SRC (handler);
  g_autoptr (GUri) parsed = NULL;
  g_autoptr (GError) err = NULL;
  g_auto (GStrv) params = NULL;
  g_autoptr (GPtrArray) names = g_ptr_array_new_with_free_func (g_free);
  g_autoptr (GArray) values = g_array_new (FALSE, TRUE, sizeof (GValue));
  g_autofree gchar *task_id = NULL;
  const gchar *host, *path, *query;
  GrokImagineApi api_host;
  gboolean had_task;
  gchar **p;
  guint i;

  if (GST_STATE (self) > GST_STATE_READY) {
    g_set_error (error, GST_URI_ERROR, GST_URI_ERROR_BAD_STATE,
        "Changing the URI of a running grokimaginesrc is not supported");
    return FALSE;
  }
  parsed = g_uri_parse (uri, G_URI_FLAGS_ENCODED, &err);
  if (parsed == NULL || g_strcmp0 (g_uri_get_scheme (parsed), URI_SCHEME)) {
    g_set_error (error, GST_URI_ERROR, GST_URI_ERROR_BAD_URI,
        "Not a grokimagine:// URI: %s", err ? err->message : uri);
    return FALSE;
  }

  host = g_uri_get_host (parsed);
  path = g_uri_get_path (parsed);
  query = g_uri_get_query (parsed);
  if (host && *host && g_str_equal (host, "task")) {
    task_id = g_uri_unescape_string (path[0] == '/' ? path + 1 : path,
        NULL);
    if (task_id == NULL || *task_id == '\0' || strchr (task_id, '/')) {
      g_set_error (error, GST_URI_ERROR, GST_URI_ERROR_BAD_URI,
          "Expected grokimagine://task/<task-id>, got %s", uri);
      return FALSE;
    }
  } else if ((host && *host) || (*path && g_strcmp0 (path, "/"))) {
    g_set_error (error, GST_URI_ERROR, GST_URI_ERROR_BAD_URI, "Expected "
        "grokimagine://?prompt=... or grokimagine://task/<task-id>, got %s",
        uri);
    return FALSE;
  }

  /* every parameter is checked before any is set: a URI that fails
   * leaves the element as it was */
  g_array_set_clear_func (values, (GDestroyNotify) clear_value);
  params = g_strsplit (query ? query : "", "&", -1);
  for (p = params; *p; p++) {
    g_autofree gchar *name = NULL, *value = NULL;
    gchar *eq = strchr (*p, '=');
    GValue v = G_VALUE_INIT;

    if (**p == '\0')
      continue;
    name = g_uri_unescape_segment (*p, eq, NULL);
    value = eq ? g_uri_unescape_string (eq + 1, NULL) : g_strdup ("");
    if (name == NULL || value == NULL) {
      g_set_error (error, GST_URI_ERROR, GST_URI_ERROR_BAD_URI,
          "Badly escaped parameter '%s' in the URI", *p);
      return FALSE;
    }
    if (!parse_uri_parameter (self, name, value, &v, error)) {
      clear_value (&v);
      return FALSE;
    }
    g_ptr_array_add (names, g_steal_pointer (&name));
    g_array_append_val (values, v);
  }

  /* a new URI replaces the last one: what that set and this one does not
   * goes back to its default; a URI of the prompt form asks for a job, not
   * the task of the last URI; api goes back to the application's */
  GST_OBJECT_LOCK (self);
  self->applying_uri = TRUE;
  had_task = self->settings.task_id != NULL;
  api_host = self->settings.api_host;
  GST_OBJECT_UNLOCK (self);
  for (p = self->uri_params; p && *p; p++) {
    GParamSpec *pspec;
    GValue v = G_VALUE_INIT;

    if (g_ptr_array_find_with_equal_func (names, *p, g_str_equal, NULL))
      continue;
    pspec = g_object_class_find_property (G_OBJECT_GET_CLASS (self), *p);
    g_value_init (&v, pspec->value_type);
    g_param_value_set_default (pspec, &v);
    if (g_str_equal (*p, "api"))
      g_value_set_enum (&v, api_host);
    g_object_set_property (G_OBJECT (self), *p, &v);
    g_value_unset (&v);
  }
  if (task_id || had_task)
    g_object_set (self, "task-id", task_id, NULL);
  for (i = 0; i < names->len; i++)
    g_object_set_property (G_OBJECT (self), g_ptr_array_index (names, i),
        &g_array_index (values, GValue, i));
  GST_OBJECT_LOCK (self);
  self->applying_uri = FALSE;
  GST_OBJECT_UNLOCK (self);
  g_strfreev (self->uri_params);
  g_ptr_array_add (names, NULL);
  self->uri_params = g_strdupv ((GStrv) names->pdata);
  return TRUE;
}

static void
gst_grok_imagine_src_uri_handler_init (gpointer g_iface, gpointer iface_data)
{
  GstURIHandlerInterface *iface = (GstURIHandlerInterface *) g_iface;

  iface->get_type = gst_grok_imagine_src_uri_get_type;
  iface->get_protocols = gst_grok_imagine_src_uri_get_protocols;
  iface->get_uri = gst_grok_imagine_src_uri_get_uri;
  iface->set_uri = gst_grok_imagine_src_uri_set_uri;
}

/* --- GObject -------------------------------------------------------------- */

static void
gst_grok_imagine_src_set_property (GObject * object, guint prop_id,
    const GValue * value, GParamSpec * pspec)
{
  GstGrokImagineSrc *self = GST_GROK_IMAGINE_SRC (object);
  Settings *s = &self->settings;

  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_PROMPT:
      g_free (s->req.prompt);
      s->req.prompt = g_value_dup_string (value);
      break;
    case PROP_MODE:
      g_free (s->req.mode);
      s->req.mode = g_value_dup_string (value);
      break;
    case PROP_RATIO:
      g_free (s->req.ratio);
      s->req.ratio = g_value_dup_string (value);
      break;
    case PROP_IMAGES:{
      guint i, n = gst_value_array_get_size (value);

      g_strfreev (s->req.images);
      s->req.images = g_new0 (gchar *, n + 1);
      for (i = 0; i < n; i++)
        s->req.images[i] =
            g_value_dup_string (gst_value_array_get_value (value, i));
      break;
    }
    case PROP_API:
      s->req.api = g_value_get_enum (value);
      if (!self->applying_uri)
        s->api_host = s->req.api;
      break;
    case PROP_BASE_URL:
      g_free (s->base_url);
      s->base_url = dup_nonempty (value);
      break;
    case PROP_API_KEY:
      if (s->api_key)
        memset (s->api_key, 0, strlen (s->api_key));
      g_free (s->api_key);
      s->api_key = dup_nonempty (value);
      break;
    case PROP_MODEL:
      s->req.model = g_value_get_enum (value);
      break;
    case PROP_INPUT_TASK_ID:
      g_free (s->req.input_task_id);
      s->req.input_task_id = dup_nonempty (value);
      break;
    case PROP_CALLBACK_URL:
      g_free (s->req.callback_url);
      s->req.callback_url = dup_nonempty (value);
      break;
    case PROP_PUBLIC:
      s->req.is_public = g_value_get_boolean (value);
      break;
    case PROP_TASK_ID:
      g_free (s->task_id);
      s->task_id = dup_nonempty (value);
      g_clear_pointer (&self->submitted_task_id, g_free);
      break;
    case PROP_RESULT_INDEX:
      s->result_index = g_value_get_uint (value);
      break;
    case PROP_POLL_INTERVAL:
      s->poll_interval = g_value_get_uint (value);
      break;
    case PROP_TIMEOUT:
      s->timeout = g_value_get_uint (value);
      break;
    case PROP_RETRIES:
      s->retries = g_value_get_uint (value);
      break;
    case PROP_REQUEST_TIMEOUT:
      s->request_timeout = g_value_get_uint (value);
      break;
    case PROP_SSL_STRICT:
      s->ssl_strict = g_value_get_boolean (value);
      break;
    case PROP_SSL_CA_FILE:
      g_free (s->ssl_ca_file);
      s->ssl_ca_file = dup_nonempty (value);
      break;
    case PROP_TLS_DATABASE:
      g_clear_object (&s->tls_database);
      s->tls_database = g_value_dup_object (value);
      break;
    case PROP_CACHE_DIR:
      g_free (s->cache_dir);
      s->cache_dir = dup_nonempty (value);
      break;
    case PROP_REFRESH:
      s->refresh = g_value_get_boolean (value);
      break;
    case PROP_SHARE_TASKS:
      s->share_tasks = g_value_get_boolean (value);
      break;
    case PROP_MAX_CREDITS:
      s->max_credits = g_value_get_uint64 (value);
      break;
    case PROP_CACHE_MAX_SIZE:
      s->cache_max_size = g_value_get_uint64 (value);
      break;
    case PROP_RATE_LIMIT:
      s->rate_limit = g_value_get_uint (value);
      break;
    case PROP_DOWNLOAD_DIR:
      g_free (s->download_dir);
      s->download_dir = dup_nonempty (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

static void
gst_grok_imagine_src_get_property (GObject * object, guint prop_id,
    GValue * value, GParamSpec * pspec)
{
  GstGrokImagineSrc *self = GST_GROK_IMAGINE_SRC (object);
  Settings *s = &self->settings;

  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_PROMPT:
      g_value_set_string (value, s->req.prompt);
      break;
    case PROP_MODE:
      g_value_set_string (value, s->req.mode);
      break;
    case PROP_RATIO:
      g_value_set_string (value, s->req.ratio);
      break;
    case PROP_IMAGES:{
      gchar **i;

      for (i = s->req.images; i && *i; i++) {
        GValue v = G_VALUE_INIT;

        g_value_init (&v, G_TYPE_STRING);
        g_value_set_string (&v, *i);
        gst_value_array_append_and_take_value (value, &v);
      }
      break;
    }
    case PROP_API:
      g_value_set_enum (value, s->req.api);
      break;
    case PROP_BASE_URL:
      g_value_set_string (value, s->base_url);
      break;
    case PROP_MODEL:
      g_value_set_enum (value, s->req.model);
      break;
    case PROP_INPUT_TASK_ID:
      g_value_set_string (value, s->req.input_task_id);
      break;
    case PROP_CALLBACK_URL:
      g_value_set_string (value, s->req.callback_url);
      break;
    case PROP_PUBLIC:
      g_value_set_boolean (value, s->req.is_public);
      break;
    case PROP_TASK_ID:
      g_value_set_string (value, s->task_id ? s->task_id :
          self->submitted_task_id);
      break;
    case PROP_RESULT_INDEX:
      g_value_set_uint (value, s->result_index);
      break;
    case PROP_POLL_INTERVAL:
      g_value_set_uint (value, s->poll_interval);
      break;
    case PROP_TIMEOUT:
      g_value_set_uint (value, s->timeout);
      break;
    case PROP_RETRIES:
      g_value_set_uint (value, s->retries);
      break;
    case PROP_REQUEST_TIMEOUT:
      g_value_set_uint (value, s->request_timeout);
      break;
    case PROP_SSL_STRICT:
      g_value_set_boolean (value, s->ssl_strict);
      break;
    case PROP_SSL_CA_FILE:
      g_value_set_string (value, s->ssl_ca_file);
      break;
    case PROP_TLS_DATABASE:
      g_value_set_object (value, s->tls_database);
      break;
    case PROP_CACHE_DIR:
      g_value_set_string (value, s->cache_dir);
      break;
    case PROP_REFRESH:
      g_value_set_boolean (value, s->refresh);
      break;
    case PROP_SHARE_TASKS:
      g_value_set_boolean (value, s->share_tasks);
      break;
    case PROP_MAX_CREDITS:
      g_value_set_uint64 (value, s->max_credits);
      break;
    case PROP_CACHE_MAX_SIZE:
      g_value_set_uint64 (value, s->cache_max_size);
      break;
    case PROP_RATE_LIMIT:
      g_value_set_uint (value, s->rate_limit);
      break;
    case PROP_DOWNLOAD_DIR:
      g_value_set_string (value, s->download_dir);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

/* A stop during the paid POST: once any of it has left, its answer is
 * awaited (at most MIN (request-timeout, 10 s)) and its task recorded, the
 * one exception to set_state(NULL) returning at once */
static GstStateChangeReturn
gst_grok_imagine_src_change_state (GstElement * element,
    GstStateChange transition)
{
  GstGrokImagineSrc *self = GST_GROK_IMAGINE_SRC (element);

  if (transition == GST_STATE_CHANGE_PAUSED_TO_READY && self->job) {
    gint64 wait = self->run.request_timeout ? MIN (self->run.request_timeout *
        G_TIME_SPAN_SECOND, STOP_WAIT_MAX) : STOP_WAIT_MAX;
    g_autofree gchar *task_id = grok_imagine_job_stop (self->job, wait);

    if (task_id)
      GST_ELEMENT_WARNING_WITH_DETAILS (self, RESOURCE, READ,
          ("Stopped while the job was being submitted: waited for its answer "
              "and recorded it. Set task-id=%s to fetch this task without "
              "paying again.", task_id), (NULL), ("task-id", G_TYPE_STRING,
              task_id, NULL));
  }
  return GST_ELEMENT_CLASS (parent_class)->change_state (element, transition);
}

static void
gst_grok_imagine_src_finalize (GObject * object)
{
  GstGrokImagineSrc *self = GST_GROK_IMAGINE_SRC (object);

  settings_clear (&self->settings);
  settings_clear (&self->run);
  g_free (self->submitted_task_id);
  g_strfreev (self->uri_params);
  g_object_unref (self->cancellable);
  g_mutex_clear (&self->cancel_lock);
  G_OBJECT_CLASS (parent_class)->finalize (object);
}

static void
gst_grok_imagine_src_init (GstGrokImagineSrc * self)
{
  Settings *s = &self->settings;

  s->req.api = DEFAULT_API;
  s->api_host = DEFAULT_API;
  s->req.mode = g_strdup (DEFAULT_MODE);
  s->req.ratio = g_strdup (DEFAULT_RATIO);
  s->req.model = DEFAULT_MODEL;
  s->req.is_public = DEFAULT_PUBLIC;
  s->result_index = DEFAULT_RESULT_INDEX;
  s->poll_interval = DEFAULT_POLL_INTERVAL;
  s->timeout = DEFAULT_TIMEOUT;
  s->retries = DEFAULT_RETRIES;
  s->request_timeout = DEFAULT_REQUEST_TIMEOUT;
  s->ssl_strict = DEFAULT_SSL_STRICT;
  s->share_tasks = DEFAULT_SHARE_TASKS;
  s->max_credits = DEFAULT_MAX_CREDITS;
  s->cache_max_size = DEFAULT_CACHE_MAX_SIZE;
  s->rate_limit = DEFAULT_RATE_LIMIT;

  self->download_percent = -1;
  g_mutex_init (&self->cancel_lock);
  self->cancellable = g_cancellable_new ();
  self->serial = g_atomic_int_add (&serials, 1);

  gst_base_src_set_format (GST_BASE_SRC (self), GST_FORMAT_BYTES);
  gst_base_src_set_blocksize (GST_BASE_SRC (self), DEFAULT_BLOCKSIZE);
}

static void
gst_grok_imagine_src_class_init (GstGrokImagineSrcClass * klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);
  GstBaseSrcClass *basesrc_class = GST_BASE_SRC_CLASS (klass);
  const GParamFlags rw = G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
      GST_PARAM_MUTABLE_READY;

  gobject_class->set_property = gst_grok_imagine_src_set_property;
  gobject_class->get_property = gst_grok_imagine_src_get_property;
  gobject_class->finalize = gst_grok_imagine_src_finalize;
  element_class->change_state =
      GST_DEBUG_FUNCPTR (gst_grok_imagine_src_change_state);

  properties[PROP_PROMPT] = g_param_spec_string ("prompt", "Prompt",
      "What to generate (required for text-to-video and text-to-image; at "
      "most 5000 characters with grok5imagine)", DEFAULT_PROMPT, rw);
  properties[PROP_MODE] = g_param_spec_string ("mode", "Mode",
      "Generation mode (grokimagineapi)", DEFAULT_MODE, rw);
  properties[PROP_RATIO] = g_param_spec_string ("ratio", "Ratio",
      "Aspect ratio W:H with positive whole numbers, e.g. 16:9 "
      "(grokimagineapi)", DEFAULT_RATIO, rw);
  properties[PROP_IMAGES] = gst_param_spec_array ("images", "Images",
      "URLs of images to animate, e.g. images=\"<https://a.png,https://b.png>\"",
      g_param_spec_string ("image", "Image", "An image URL", NULL,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS), rw);
  properties[PROP_API] = g_param_spec_enum ("api", "API",
      "Which Grok Imagine API to speak", GST_TYPE_GROK_IMAGINE_API,
      DEFAULT_API, rw);
  properties[PROP_BASE_URL] = g_param_spec_string ("base-url", "Base URL",
      "API base URL; empty means the " BASE_URL_ENV " environment variable, "
      "else the chosen API's documented one (https://grokimagineapi.com or "
      "https://grok5imagine.com). Never taken from a URI",
      DEFAULT_BASE_URL, rw);
  properties[PROP_API_KEY] = g_param_spec_string ("api-key", "API key",
      "API key (write-only; when unset, the " KEY_ENV " environment "
      "variable). Sent to the base URL only", NULL,
      G_PARAM_WRITABLE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY);
  properties[PROP_MODEL] = g_param_spec_enum ("model", "Model",
      "Model to use (grok5imagine), sent as grok-imagine/<model>",
      GST_TYPE_GROK_IMAGINE_MODEL, DEFAULT_MODEL, rw);
  properties[PROP_INPUT_TASK_ID] = g_param_spec_string ("input-task-id",
      "Input task id", "An earlier task to upscale or animate "
      "(grok5imagine upscale and image-to-video)", NULL, rw);
  properties[PROP_CALLBACK_URL] = g_param_spec_string ("callback-url",
      "Callback URL", "Webhook the provider calls when the task ends "
      "(grok5imagine)", NULL, rw);
  properties[PROP_PUBLIC] = g_param_spec_boolean ("public", "Public",
      "Publish the result to the public gallery (grok5imagine)",
      DEFAULT_PUBLIC, rw);
  properties[PROP_TASK_ID] = g_param_spec_string ("task-id", "Task id",
      "The task this element submitted; set it to reattach to an existing "
      "task without submitting a new job", NULL, rw);
  properties[PROP_RESULT_INDEX] = g_param_spec_uint ("result-index",
      "Result index", "Which of the task's result URLs to stream", 0,
      G_MAXUINT, DEFAULT_RESULT_INDEX, rw);
  properties[PROP_POLL_INTERVAL] = g_param_spec_uint ("poll-interval",
      "Poll interval", "Milliseconds between status polls", 10, 3600000,
      DEFAULT_POLL_INTERVAL, rw);
  properties[PROP_TIMEOUT] = g_param_spec_uint ("timeout", "Timeout",
      "Seconds the job may take, from submission to completion, requests "
      "in flight included; status polls retry through an API outage until "
      "then, and the download through one as long", 1, 604800,
      DEFAULT_TIMEOUT, rw);
  properties[PROP_RETRIES] = g_param_spec_uint ("retries", "Retries",
      "How often the paid submit is retried when the server certainly did "
      "not take it (no connection, HTTP 429), with exponential backoff. "
      "Status polls and the download of a submitted task retry every "
      "temporary failure until the timeout instead", 0, 100, DEFAULT_RETRIES,
      rw);
  properties[PROP_REQUEST_TIMEOUT] = g_param_spec_uint ("request-timeout",
      "Request timeout", "Seconds an HTTP request may wait for the server "
      "(to connect, or for data) before it fails; 0 = no limit. A stop "
      "during the paid POST waits this long for its answer, at most 10 s", 0,
      3600, DEFAULT_REQUEST_TIMEOUT, rw);
  properties[PROP_SSL_STRICT] = g_param_spec_boolean ("ssl-strict",
      "SSL strict", "Refuse HTTPS servers whose certificate cannot be "
      "verified", DEFAULT_SSL_STRICT, rw);
  properties[PROP_SSL_CA_FILE] = g_param_spec_string ("ssl-ca-file",
      "SSL CA file", "PEM file of the certificate authorities to trust "
      "instead of the system's (ignored when tls-database is set)", NULL, rw);
  properties[PROP_TLS_DATABASE] = g_param_spec_object ("tls-database",
      "TLS database", "TLS database with the anchor certificates to trust "
      "instead of the system's", G_TYPE_TLS_DATABASE, rw);
  properties[PROP_CACHE_DIR] = g_param_spec_string ("cache-dir",
      "Cache folder", "Folder of the job journal: a re-run of the same "
      "request reattaches to its task or serves its stored result, and "
      "processes share one job (when unset, the " CACHE_ENV " environment "
      "variable; unset: no journal)", NULL, rw);
  properties[PROP_REFRESH] = g_param_spec_boolean ("refresh", "Refresh",
      "Generate anew (a new, paid job) even when this request already has a "
      "task, a stored result or a submit in doubt", DEFAULT_REFRESH, rw);
  properties[PROP_SHARE_TASKS] = g_param_spec_boolean ("share-tasks",
      "Share tasks", "Reattach to the task another element of this process "
      "has for the same request (running or done), and share one POST with "
      "it; false: only this element's own earlier runs are reattached",
      DEFAULT_SHARE_TASKS, rw);
  properties[PROP_MAX_CREDITS] = g_param_spec_uint64 ("max-credits",
      "Max credits", "Refuse, before any request, a job whose price would "
      "take the credits charged past this: those the cache folder's ledger "
      "counts across runs and processes, or without a cache folder this "
      "element's own jobs (0: no cap; when 0, the " MAX_CREDITS_ENV
      " environment variable)", 0, G_MAXINT64, DEFAULT_MAX_CREDITS, rw);
  properties[PROP_CACHE_MAX_SIZE] = g_param_spec_uint64 ("cache-max-size",
      "Cache max size", "Bytes the cache folder may take: beyond it the "
      "least recently used stored results are removed (never the task "
      "records; a re-run fetches the result again from its task). 0: no "
      "limit", 0, G_MAXUINT64, DEFAULT_CACHE_MAX_SIZE, rw);
  properties[PROP_RATE_LIMIT] = g_param_spec_uint ("rate-limit",
      "Rate limit", "API requests per minute that all elements of the "
      "process using the same API and key may send together; 0 = pace by "
      "the API's X-RateLimit headers alone", 0, 1000000, DEFAULT_RATE_LIMIT,
      rw);
  properties[PROP_DOWNLOAD_DIR] = g_param_spec_string ("download-dir",
      "Download folder", "Folder of the temporary file the result is "
      "downloaded into, deleted at stop (without cache-dir; with it the "
      "result goes into the cache folder). Empty: the user's cache folder, "
      "else the temporary folder", DEFAULT_DOWNLOAD_DIR, rw);
  g_object_class_install_properties (gobject_class, N_PROPS, properties);

  gst_element_class_add_static_pad_template (element_class, &src_template);
  gst_element_class_set_static_metadata (element_class,
      "Grok Imagine video source", "Source/Network",
      "Generates a video from a text prompt with a Grok Imagine API and "
      "streams the result", "gst-grokimagine authors");

  basesrc_class->start = GST_DEBUG_FUNCPTR (gst_grok_imagine_src_start);
  basesrc_class->stop = GST_DEBUG_FUNCPTR (gst_grok_imagine_src_stop);
  basesrc_class->unlock = GST_DEBUG_FUNCPTR (gst_grok_imagine_src_unlock);
  basesrc_class->unlock_stop =
      GST_DEBUG_FUNCPTR (gst_grok_imagine_src_unlock_stop);
  basesrc_class->get_size = GST_DEBUG_FUNCPTR (gst_grok_imagine_src_get_size);
  basesrc_class->is_seekable =
      GST_DEBUG_FUNCPTR (gst_grok_imagine_src_is_seekable);
  basesrc_class->negotiate =
      GST_DEBUG_FUNCPTR (gst_grok_imagine_src_negotiate);
  basesrc_class->create = GST_DEBUG_FUNCPTR (gst_grok_imagine_src_create);
  basesrc_class->event = GST_DEBUG_FUNCPTR (gst_grok_imagine_src_event);
  basesrc_class->query = GST_DEBUG_FUNCPTR (gst_grok_imagine_src_query);

  gst_type_mark_as_plugin_api (GST_TYPE_GROK_IMAGINE_API, 0);
  gst_type_mark_as_plugin_api (GST_TYPE_GROK_IMAGINE_MODEL, 0);
  GST_DEBUG_CATEGORY_INIT (gst_grok_imagine_src_debug, "grokimaginesrc", 0,
      "Grok Imagine video source");
}
