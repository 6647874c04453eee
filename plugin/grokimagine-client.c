/* gst-grokimagine
 * Copyright (C) 2026 gst-grokimagine authors
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "grokimagine-client.h"
#include "grokimagine-ratelimit.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define BACKOFF_BASE (250 * G_TIME_SPAN_MILLISECOND)
#define BACKOFF_MAX (30 * G_TIME_SPAN_SECOND)
#define MAX_API_REDIRECTS 5

struct _GrokImagineClient
{
  GrokImagineHttp http;
  GrokImagineApi api;
  gchar *base_url;              /* without a trailing slash */
  gchar *host;                  /* host[:port], for messages */
  gchar *authorization;
  gint64 not_before;            /* rate limit: no request before this */
  GrokImagineSubmitNotify submit_notify;        /* during a submit */
  gpointer submit_data;
  GrokImagineRateLimit *rate;   /* the budget shared by the key's clients */
  gint64 last_poll;             /* monotonic µs, 0 before the first */
  gint64 rate_remaining;        /* -1 until an answer says */
  gchar *session_key;           /* of the shared session in http */
};

/* --- waits ---------------------------------------------------------------- */

typedef struct
{
  GMutex lock;
  GCond cond;
} Waiter;

static void
waiter_wake (GCancellable * cancellable, Waiter * w)
{
  g_mutex_lock (&w->lock);
  g_cond_broadcast (&w->cond);
  g_mutex_unlock (&w->lock);
}

gboolean
grok_imagine_wait (gint64 wait_us, GCancellable * cancellable, GError ** error)
{
  gint64 end = g_get_monotonic_time () + wait_us;
  Waiter w;
  gulong id;

  g_mutex_init (&w.lock);
  g_cond_init (&w.cond);
  id = g_cancellable_connect (cancellable, G_CALLBACK (waiter_wake), &w, NULL);
  g_mutex_lock (&w.lock);
  while (!g_cancellable_is_cancelled (cancellable)
      && g_cond_wait_until (&w.cond, &w.lock, end));
  g_mutex_unlock (&w.lock);
  g_cancellable_disconnect (cancellable, id);
  g_mutex_clear (&w.lock);
  g_cond_clear (&w.cond);
  return !g_cancellable_set_error_if_cancelled (cancellable, error);
}

GIOErrorEnum
grok_imagine_io_error_from_errno (int err_no)
{
  return err_no == EDQUOT ? G_IO_ERROR_NO_SPACE :
      g_io_error_from_errno (err_no);
}

/* --- shared HTTP ---------------------------------------------------------- */

GrokImagineError
grok_imagine_error_for_http_status (guint status)
{
  switch (status) {
    case SOUP_STATUS_BAD_REQUEST:
      return GROK_IMAGINE_ERROR_SETTINGS;
    case SOUP_STATUS_UNAUTHORIZED:
      return GROK_IMAGINE_ERROR_NOT_AUTHORIZED;
    case SOUP_STATUS_PAYMENT_REQUIRED:
      return GROK_IMAGINE_ERROR_PAYMENT_REQUIRED;
    case SOUP_STATUS_FORBIDDEN:
    case SOUP_STATUS_NOT_FOUND:
    case SOUP_STATUS_GONE:
      return GROK_IMAGINE_ERROR_NOT_FOUND;
    case 429:                  /* Too Many Requests */
      return GROK_IMAGINE_ERROR_RATE_LIMITED;
    case SOUP_STATUS_REQUEST_TIMEOUT:
      /* a proxy or server that gave up waiting: temporary, like a 5xx */
      return GROK_IMAGINE_ERROR_SERVER;
    default:
      return SOUP_STATUS_IS_SERVER_ERROR (status) ? GROK_IMAGINE_ERROR_SERVER :
          GROK_IMAGINE_ERROR_HTTP;
  }
}

static gboolean
accept_any_certificate (SoupMessage * msg, GTlsCertificate * cert,
    GTlsCertificateFlags errors, gpointer user_data)
{
  return TRUE;
}

SoupMessage *
grok_imagine_http_new_message (const GrokImagineHttp * http,
    const gchar * method, const gchar * url)
{
  SoupMessage *msg = soup_message_new (method, url);

  if (msg && !http->ssl_strict)
    g_signal_connect (msg, "accept-certificate",
        G_CALLBACK (accept_any_certificate), NULL);
  return msg;
}

static void
mark_sent (SoupMessage * msg, gboolean * sent)
{
  *sent = TRUE;
}

GInputStream *
grok_imagine_http_send (const GrokImagineHttp * http, SoupMessage * msg,
    GCancellable * cancellable, GError ** error)
{
  g_autoptr (GError) err = NULL;
  g_autofree gchar *where = NULL;
  gboolean sent = FALSE;
  GInputStream *stream;
  GUri *uri;
  gulong id;

  /* Whether any of the request left: a request never sent can be retried
   * even when it is the paid POST */
  id = g_signal_connect (msg, "wrote-headers", G_CALLBACK (mark_sent), &sent);
  stream = soup_session_send (http->session, msg, cancellable, &err);
  g_signal_handler_disconnect (msg, id);
  if (stream)
    return stream;

  if (g_error_matches (err, G_IO_ERROR, G_IO_ERROR_CANCELLED)) {
    g_propagate_error (error, g_steal_pointer (&err));
    return NULL;
  }

  uri = soup_message_get_uri (msg);
  where = g_uri_get_port (uri) > 0 ? g_strdup_printf ("%s:%d",
      g_uri_get_host (uri), g_uri_get_port (uri)) :
      g_strdup (g_uri_get_host (uri));
  /* Only a request that never left failed on TLS: after that it is a lost
   * answer, also when ssl-strict=false accepted a doubtful certificate */
  if (!sent && (err->domain == G_TLS_ERROR || (http->ssl_strict &&
              soup_message_get_tls_peer_certificate_errors (msg) != 0)))
    g_set_error (error, GROK_IMAGINE_ERROR, GROK_IMAGINE_ERROR_TLS,
        "The TLS certificate of %s was not accepted (%s)", where,
        err->message);
  else if (!sent)
    g_set_error (error, GROK_IMAGINE_ERROR, GROK_IMAGINE_ERROR_UNREACHABLE,
        "Could not reach %s: %s", where, err->message);
  else
    g_set_error (error, GROK_IMAGINE_ERROR, GROK_IMAGINE_ERROR_NETWORK,
        "The connection to %s failed after the request was sent: %s", where,
        err->message);
  return NULL;
}

static gboolean
is_transient (const GError * err, gboolean idempotent)
{
  if (err->domain != GROK_IMAGINE_ERROR)
    return FALSE;
  switch (err->code) {
    case GROK_IMAGINE_ERROR_UNREACHABLE:
    case GROK_IMAGINE_ERROR_RATE_LIMITED:
      return TRUE;
    case GROK_IMAGINE_ERROR_NETWORK:
    case GROK_IMAGINE_ERROR_SERVER:
      return idempotent;
    default:
      return FALSE;
  }
}

/* Exponential backoff with jitter: half the step plus a random half */
static gint64
backoff_delay (guint attempt)
{
  gint64 step = BACKOFF_BASE << MIN (attempt, 10);

  step = MIN (step, BACKOFF_MAX);
  return step / 2 + g_random_int_range (0, step / 2 + 1);
}

/* Whether @attempt used up the retries: they bound what is not yet paid
 * for; an idempotent request with a deadline is bound by that alone. */
static gboolean
out_of_retries (const GrokImagineHttp * http, gboolean idempotent,
    guint attempt, gint64 deadline)
{
  return (!idempotent || deadline == GROK_IMAGINE_NO_DEADLINE)
      && attempt >= http->retries;
}

gint64
grok_imagine_http_outage_deadline (const GrokImagineHttp * http)
{
  return http->outage_limit > 0 ? g_get_monotonic_time () +
      http->outage_limit : GROK_IMAGINE_NO_DEADLINE;
}

/* After a failed attempt: TRUE when the caller should try again (the
 * backoff has been waited and @error cleared); FALSE leaves the final error
 * in @error. An idempotent request keeps trying until @deadline, its last
 * backoff cut short to end there. */
gboolean
grok_imagine_http_retry (const GrokImagineHttp * http, gboolean idempotent,
    guint attempt, gint64 deadline, GCancellable * cancellable,
    GError ** error)
{
  gint64 delay = backoff_delay (attempt);
  GError *werr = NULL;

  if (!is_transient (*error, idempotent)
      || out_of_retries (http, idempotent, attempt, deadline))
    return FALSE;
  if (deadline != GROK_IMAGINE_NO_DEADLINE) {
    gint64 left = deadline - g_get_monotonic_time ();

    if (left <= 0 || (!idempotent && delay > left))
      return FALSE;
    delay = MIN (delay, left);
  }
  if (http->notify)
    http->notify (GROK_IMAGINE_WAIT_RETRY, delay, *error, http->notify_data);
  if (!grok_imagine_wait (delay, cancellable, &werr)) {
    g_clear_error (error);
    g_propagate_error (error, werr);
    return FALSE;
  }
  g_clear_error (error);
  return TRUE;
}

/* --- the API client ------------------------------------------------------- */

/* All clients of a process that talk to the same API with the same key and
 * session settings share one session, so that a thousand jobs share a pool
 * of connections instead of holding one each. The result downloads keep
 * the caller's session. */
#define API_MAX_CONNS 64

typedef struct
{
  SoupSession *session;
  guint users;
} SharedSession;

G_LOCK_DEFINE_STATIC (sessions);
static GHashTable *sessions;    /* gchar * -> SharedSession */

static gchar *
shared_session_key (const GrokImagineHttp * http, GrokImagineRateLimit * rl)
{
  SoupSession *own = http->session;

  return g_strdup_printf ("%s %u %d %p %s", grok_imagine_rate_limit_get_id
      (rl), soup_session_get_timeout (own), http->ssl_strict,
      (gpointer) soup_session_get_tls_database (own),
      soup_session_get_user_agent (own));
}

static SoupSession *
shared_session_get (const GrokImagineHttp * http, const gchar * key)
{
  SharedSession *shared;

  G_LOCK (sessions);
  if (sessions == NULL)
    sessions = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  shared = g_hash_table_lookup (sessions, key);
  if (shared == NULL) {
    SoupSession *own = http->session;
    GTlsDatabase *db = soup_session_get_tls_database (own);

    shared = g_new0 (SharedSession, 1);
    shared->session = soup_session_new_with_options ("user-agent",
        soup_session_get_user_agent (own), "timeout",
        soup_session_get_timeout (own), "max-conns", API_MAX_CONNS,
        "max-conns-per-host", API_MAX_CONNS, NULL);
    if (db)
      soup_session_set_tls_database (shared->session, db);
    g_hash_table_insert (sessions, g_strdup (key), shared);
  }
  shared->users++;
  G_UNLOCK (sessions);
  return g_object_ref (shared->session);
}

static void
shared_session_release (const gchar * key)
{
  SharedSession *shared;

  G_LOCK (sessions);
  shared = g_hash_table_lookup (sessions, key);
  if (shared && --shared->users == 0) {
    g_hash_table_remove (sessions, key);
    g_object_unref (shared->session);
    g_free (shared);
  }
  G_UNLOCK (sessions);
}

GrokImagineClient *
grok_imagine_client_new (const GrokImagineHttp * http, GrokImagineApi api,
    const gchar * base_url, const gchar * api_key, GError ** error)
{
  g_autoptr (GUri) uri = NULL;
  g_autofree gchar *origin = NULL, *tmp = NULL;
  GrokImagineClient *client;
  const gchar *scheme;

  if (base_url == NULL || *base_url == '\0')
    base_url = grok_imagine_api_default_base_url (api);
  uri = g_uri_parse (base_url, SOUP_HTTP_URI_FLAGS, NULL);
  scheme = uri ? g_uri_get_scheme (uri) : NULL;
  if (uri == NULL || g_uri_get_host (uri) == NULL || *g_uri_get_host (uri) == 0
      || (g_ascii_strcasecmp (scheme, "http") != 0
          && g_ascii_strcasecmp (scheme, "https") != 0)) {
    g_set_error (error, GROK_IMAGINE_ERROR, GROK_IMAGINE_ERROR_SETTINGS,
        "The base-url '%s' is not an http:// or https:// URL.", base_url);
    return NULL;
  }

  client = g_new0 (GrokImagineClient, 1);
  client->http = *http;
  client->api = api;
  client->base_url = g_strdup (base_url);
  g_strchomp (client->base_url);
  while (g_str_has_suffix (client->base_url, "/"))
    client->base_url[strlen (client->base_url) - 1] = '\0';
  client->host = g_uri_get_port (uri) > 0 ?
      g_strdup_printf ("%s:%d", g_uri_get_host (uri), g_uri_get_port (uri)) :
      g_strdup (g_uri_get_host (uri));
  client->authorization = g_strconcat ("Bearer ", api_key, NULL);
  tmp = g_strdup_printf ("%s://%s", scheme, client->host);
  origin = g_ascii_strdown (tmp, -1);
  client->rate = grok_imagine_rate_limit_get (origin, api_key,
      http->rate_limit);
  client->session_key = shared_session_key (http, client->rate);
  client->http.session = shared_session_get (http, client->session_key);
  client->rate_remaining = -1;
  return client;
}

void
grok_imagine_client_free (GrokImagineClient * client)
{
  if (client == NULL)
    return;
  g_object_unref (client->http.session);
  shared_session_release (client->session_key);
  g_free (client->session_key);
  grok_imagine_rate_limit_release (client->rate, client->http.rate_limit);
  g_free (client->base_url);
  g_free (client->host);
  if (client->authorization)
    memset (client->authorization, 0, strlen (client->authorization));
  g_free (client->authorization);
  g_free (client);
}

const gchar *
grok_imagine_client_get_host (GrokImagineClient * client)
{
  return client->host;
}

const gchar *
grok_imagine_client_get_base_url (GrokImagineClient * client)
{
  return client->base_url;
}

gint64
grok_imagine_client_get_rate_remaining (GrokImagineClient * client)
{
  return client->rate_remaining;
}

/* Seconds from a header holding either a delay or a unix time */
static gint64
header_seconds (SoupMessageHeaders * hdrs, const gchar * name)
{
  const gchar *value = soup_message_headers_get_one (hdrs, name);
  gchar *end;
  gint64 v;

  if (value == NULL)
    return -1;
  v = g_ascii_strtoll (value, &end, 10);
  if (end == value || v < 0)
    return -1;
  if (v > 1000000000)           /* a unix time */
    v = MAX (v - g_get_real_time () / G_TIME_SPAN_SECOND, 1);
  return v;
}

/* Remembers when the API allows the next request */
static void
update_rate_limit (GrokImagineClient * client, SoupMessage * msg)
{
  SoupMessageHeaders *hdrs = soup_message_get_response_headers (msg);
  const gchar *remaining = soup_message_headers_get_one (hdrs,
      "X-RateLimit-Remaining");
  gint64 wait = -1;

  if (soup_message_get_status (msg) == 429) {
    wait = header_seconds (hdrs, "Retry-After");
    if (wait < 0)
      wait = header_seconds (hdrs, "X-RateLimit-Reset");
  } else if (remaining && g_ascii_strtoll (remaining, NULL, 10) == 0
      && g_ascii_isdigit (remaining[0])) {
    wait = header_seconds (hdrs, "X-RateLimit-Reset");
  }
  if (wait > 0)
    client->not_before = g_get_monotonic_time () +
        MIN (wait * G_TIME_SPAN_SECOND, GROK_IMAGINE_MAX_RATE_WAIT);
}

/* Waits for the rate limit, never past the deadline */
static gboolean
honour_rate_limit (GrokImagineClient * client, gint64 deadline,
    GCancellable * cancellable, GError ** error)
{
  gint64 wait = client->not_before - g_get_monotonic_time ();

  if (wait <= 0)
    return TRUE;
  if (deadline != GROK_IMAGINE_NO_DEADLINE
      && g_get_monotonic_time () + wait > deadline) {
    g_set_error (error, GROK_IMAGINE_ERROR, GROK_IMAGINE_ERROR_TIMEOUT,
        "the API's rate limit asks to wait %.1f s, past the deadline",
        wait / (gdouble) G_TIME_SPAN_SECOND);
    return FALSE;
  }
  if (client->http.notify)
    client->http.notify (GROK_IMAGINE_WAIT_RATE_LIMIT, wait, NULL,
        client->http.notify_data);
  return grok_imagine_wait (wait, cancellable, error);
}

/* Reads the whole answer, refusing more than GROK_IMAGINE_MAX_BODY_SIZE. */
static GBytes *
read_body (GInputStream * stream, GCancellable * cancellable, GError ** error)
{
  g_autoptr (GByteArray) buf = g_byte_array_new ();
  guint8 chunk[8192];

  for (;;) {
    gssize n = g_input_stream_read (stream, chunk, sizeof (chunk),
        cancellable, error);

    if (n < 0)
      return NULL;
    if (n == 0)
      break;
    if (buf->len + n > GROK_IMAGINE_MAX_BODY_SIZE) {
      g_set_error (error, GROK_IMAGINE_ERROR, GROK_IMAGINE_ERROR_PROTOCOL,
          "the answer is larger than %d bytes", GROK_IMAGINE_MAX_BODY_SIZE);
      return NULL;
    }
    g_byte_array_append (buf, chunk, n);
  }
  return g_byte_array_free_to_bytes (g_steal_pointer (&buf));
}

/* The body of an answer whose head arrived. A body that broke off or
 * stalled is a failure of the connection after the request was taken
 * (libsoup ends a body cut short of its Content-Length like a whole one). */
static GBytes *
read_answer (GrokImagineClient * client, SoupMessage * msg,
    GInputStream * stream, GCancellable * cancellable, GError ** error)
{
  SoupMessageHeaders *hdrs = soup_message_get_response_headers (msg);
  const gchar *coding = soup_message_headers_get_one (hdrs,
      "Content-Encoding");
  g_autoptr (GError) err = NULL;
  GBytes *body = read_body (stream, cancellable, &err);
  goffset expected = -1;

  if (soup_message_headers_get_encoding (hdrs) == SOUP_ENCODING_CONTENT_LENGTH
      && (coding == NULL || g_ascii_strcasecmp (coding, "identity") == 0))
    expected = soup_message_headers_get_content_length (hdrs);

  if (body && (expected < 0 || g_bytes_get_size (body) >= (gsize) expected))
    return body;
  if (body) {
    g_set_error (error, GROK_IMAGINE_ERROR, GROK_IMAGINE_ERROR_NETWORK,
        "The connection to %s broke off after %" G_GSIZE_FORMAT " of %"
        G_GINT64_FORMAT " bytes of the answer", client->host,
        g_bytes_get_size (body), (gint64) expected);
    g_bytes_unref (body);
  } else if (err->domain == G_IO_ERROR
      && !g_error_matches (err, G_IO_ERROR, G_IO_ERROR_CANCELLED)) {
    g_set_error (error, GROK_IMAGINE_ERROR, GROK_IMAGINE_ERROR_NETWORK,
        "The connection to %s failed while the answer was read: %s",
        client->host, err->message);
  } else {
    g_propagate_error (error, g_steal_pointer (&err));
  }
  return NULL;
}

static gboolean
same_origin (GUri * a, GUri * b)
{
  return g_ascii_strcasecmp (g_uri_get_scheme (a), g_uri_get_scheme (b)) == 0
      && g_ascii_strcasecmp (g_uri_get_host (a), g_uri_get_host (b)) == 0
      && g_uri_get_port (a) == g_uri_get_port (b);
}

static void
submit_left (SoupMessage * msg, GrokImagineClient * client)
{
  client->submit_notify (TRUE, client->submit_data);
}

static void
submit_answered (SoupMessage * msg, GrokImagineClient * client)
{
  /* a 4xx answer says the server did not take the job */
  if (SOUP_STATUS_IS_CLIENT_ERROR (soup_message_get_status (msg)))
    client->submit_notify (FALSE, client->submit_data);
}

/* A poll held back at least this long by the key's budget is announced */
#define PACED_NOTICE (100 * G_TIME_SPAN_MILLISECOND)

/* Sends an API request within the key's budget, then tells the budget what
 * the answer said of it */
static GInputStream *
send_within_budget (GrokImagineClient * client, SoupMessage * msg,
    gint64 deadline, GCancellable * cancellable, GError ** error)
{
  GrokImagineRateKind kind = soup_message_get_method (msg) == SOUP_METHOD_POST
      ? GROK_IMAGINE_RATE_SUBMIT : GROK_IMAGINE_RATE_POLL;
  SoupMessageHeaders *hdrs = soup_message_get_response_headers (msg);
  const gchar *remaining;
  GInputStream *stream;
  guint64 ticket;
  gint64 waited, now;

  if (!grok_imagine_rate_limit_acquire (client->rate, kind, deadline,
          cancellable, &ticket, &waited, error))
    return NULL;
  now = g_get_monotonic_time ();
  if (kind == GROK_IMAGINE_RATE_POLL) {
    if (waited >= PACED_NOTICE && client->last_poll > 0 && client->http.notify)
      client->http.notify (GROK_IMAGINE_WAIT_PACED, now - client->last_poll,
          NULL, client->http.notify_data);
    client->last_poll = now;
  }

  stream = grok_imagine_http_send (&client->http, msg, cancellable, error);
  remaining = soup_message_headers_get_one (hdrs, "X-RateLimit-Remaining");
  grok_imagine_rate_limit_answered (client->rate, ticket,
      stream ? soup_message_get_status (msg) : 0, remaining,
      soup_message_headers_get_one (hdrs, "X-RateLimit-Reset"),
      soup_message_headers_get_one (hdrs, "Retry-After"));
  if (stream && remaining && g_ascii_isdigit (*remaining))
    client->rate_remaining = g_ascii_strtoll (remaining, NULL, 10);
  return stream;
}

/* One API request with the key; the body of a 2xx answer. Redirects are
 * followed within the base URL's origin only: the key goes nowhere else.
 * A POST is never sent again to follow one: the job may exist. */
static GBytes *
call_api_once (GrokImagineClient * client, const gchar * method,
    const gchar * path_and_query, GBytes * json, gint64 deadline,
    GCancellable * cancellable, guint * http_status, GError ** error)
{
  g_autofree gchar *url = g_strconcat (client->base_url, path_and_query, NULL);
  g_autoptr (SoupMessage) msg = NULL;
  g_autoptr (GInputStream) stream = NULL;
  g_autoptr (GBytes) body = NULL;
  g_autofree gchar *api_message = NULL;
  SoupMessageHeaders *hdrs;
  guint status, redirects = 0;

  *http_status = 0;
  for (;;) {
    g_autoptr (GUri) next = NULL;
    const gchar *location;

    g_clear_object (&msg);
    msg = grok_imagine_http_new_message (&client->http, method, url);
    if (msg == NULL) {
      g_set_error (error, GROK_IMAGINE_ERROR, GROK_IMAGINE_ERROR_SETTINGS,
          "Cannot build a request to '%s'.", url);
      return NULL;
    }
    soup_message_add_flags (msg, SOUP_MESSAGE_NO_REDIRECT);
    hdrs = soup_message_get_request_headers (msg);
    soup_message_headers_replace (hdrs, "Authorization",
        client->authorization);
    soup_message_headers_replace (hdrs, "Accept", "application/json");
    if (json)
      soup_message_set_request_body_from_bytes (msg, "application/json",
          json);
    if (client->submit_notify) {
      g_signal_connect (msg, "wrote-headers", G_CALLBACK (submit_left),
          client);
      g_signal_connect (msg, "got-headers", G_CALLBACK (submit_answered),
          client);
    }

    g_clear_object (&stream);
    stream = send_within_budget (client, msg, deadline, cancellable, error);
    if (stream == NULL)
      return NULL;
    status = *http_status = soup_message_get_status (msg);
    update_rate_limit (client, msg);
    if (!SOUP_STATUS_IS_REDIRECTION (status))
      break;
    if (g_str_equal (method, "POST")) {
      g_set_error (error, GROK_IMAGINE_ERROR, GROK_IMAGINE_ERROR_HTTP,
          "HTTP %u %s: the API answered the submit with a redirect, which "
          "is never followed with a second POST", status,
          soup_message_get_reason_phrase (msg));
      return NULL;
    }

    /* only 307 and 308 ask to send the same POST again: after any other
     * redirect the job may have been taken, and a second POST pays twice */
    if (json && status != SOUP_STATUS_TEMPORARY_REDIRECT
        && status != SOUP_STATUS_PERMANENT_REDIRECT) {
      g_set_error (error, GROK_IMAGINE_ERROR, GROK_IMAGINE_ERROR_NETWORK,
          "HTTP %u %s: the API answered the job's POST with a redirect, "
          "which is not followed", status,
          soup_message_get_reason_phrase (msg));
      return NULL;
    }
    location = soup_message_headers_get_one (soup_message_get_response_headers
        (msg), "Location");
    if (location)
      next = g_uri_parse_relative (soup_message_get_uri (msg), location,
          SOUP_HTTP_URI_FLAGS, NULL);
    if (next == NULL || !same_origin (next, soup_message_get_uri (msg))
        || ++redirects > MAX_API_REDIRECTS) {
      g_autofree gchar *target = next == NULL ?
          g_strdup ("an invalid address") : g_uri_get_port (next) > 0 ?
          g_strdup_printf ("%s:%d", g_uri_get_host (next),
          g_uri_get_port (next)) : g_strdup (g_uri_get_host (next));

      g_set_error (error, GROK_IMAGINE_ERROR, GROK_IMAGINE_ERROR_HTTP,
          "HTTP %u %s: the API redirected to %s; the key is only sent to "
          "the base-url's own host, so set base-url to the new address",
          status, soup_message_get_reason_phrase (msg), target);
      return NULL;
    }
    g_free (url);
    url = g_uri_to_string (next);
  }

  body = read_answer (client, msg, stream, cancellable, error);
  if (body == NULL)
    return NULL;
  if (SOUP_STATUS_IS_SUCCESSFUL (status))
    return g_steal_pointer (&body);

  api_message = grok_imagine_parse_error_body (g_bytes_get_data (body, NULL),
      g_bytes_get_size (body));
  g_set_error (error, GROK_IMAGINE_ERROR,
      grok_imagine_error_for_http_status (status), "HTTP %u %s%s%s", status,
      soup_message_get_reason_phrase (msg), api_message ? ": " : "",
      api_message ? api_message : "");
  return NULL;
}

/* grok_imagine_http_retry() for an API request; an idempotent one that
 * was still failing at its deadline ends in a timeout error */
static gboolean
retry_api (GrokImagineClient * client, gboolean idempotent, guint attempt,
    gint64 deadline, GCancellable * cancellable, GError ** error)
{
  GError *last;

  if (grok_imagine_http_retry (&client->http, idempotent, attempt, deadline,
          cancellable, error))
    return TRUE;
  if (idempotent && deadline != GROK_IMAGINE_NO_DEADLINE
      && g_get_monotonic_time () >= deadline && is_transient (*error, TRUE)) {
    last = *error;
    *error = g_error_new (GROK_IMAGINE_ERROR, GROK_IMAGINE_ERROR_TIMEOUT,
        "the API was still failing at the deadline, after %u attempts: %s",
        attempt + 1, last->message);
    g_error_free (last);
  }
  return FALSE;
}

/* An API request with rate-limit waits and retries. */
static GBytes *
call_api (GrokImagineClient * client, const gchar * method,
    const gchar * path_and_query, GBytes * json, gboolean idempotent,
    gint64 deadline, GCancellable * cancellable, guint * http_status,
    GError ** error)
{
  guint attempt;

  for (attempt = 0;; attempt++) {
    GBytes *body;
    gint64 rate_wait;

    if (!honour_rate_limit (client, deadline, cancellable, error))
      return NULL;
    body = call_api_once (client, method, path_and_query, json, deadline,
        cancellable, http_status, error);
    if (body)
      return body;

    rate_wait = client->not_before - g_get_monotonic_time ();
    if (g_error_matches (*error, GROK_IMAGINE_ERROR,
            GROK_IMAGINE_ERROR_RATE_LIMITED) && rate_wait > 0) {
      /* the next round waits as long as the API asked, and says so when
       * that is past the deadline */
      if (out_of_retries (&client->http, idempotent, attempt, deadline)
          || (!idempotent && deadline != GROK_IMAGINE_NO_DEADLINE
              && g_get_monotonic_time () + rate_wait > deadline))
        return NULL;
      g_clear_error (error);
      continue;
    }
    if (!retry_api (client, idempotent, attempt, deadline, cancellable,
            error))
      return NULL;
  }
}

gchar *
grok_imagine_client_submit (GrokImagineClient * client,
    const GrokImagineRequest * req, gint64 deadline,
    GrokImagineSubmitNotify notify, gpointer notify_data,
    GCancellable * cancellable, guint * http_status, GError ** error)
{
  gchar *json = grok_imagine_request_to_json (req);
  g_autoptr (GBytes) body = g_bytes_new_take (json, strlen (json));
  g_autoptr (GBytes) answer = NULL;

  client->submit_notify = notify;
  client->submit_data = notify_data;
  answer = call_api (client, "POST", grok_imagine_api_generate_path
      (client->api), body, FALSE, deadline, cancellable, http_status, error);
  client->submit_notify = NULL;
  client->submit_data = NULL;
  if (answer == NULL)
    return NULL;
  return grok_imagine_parse_submit (client->api,
      g_bytes_get_data (answer, NULL), g_bytes_get_size (answer), error);
}

GrokImagineStatus *
grok_imagine_client_poll (GrokImagineClient * client, const gchar * task_id,
    gint64 deadline, GCancellable * cancellable, guint * http_status,
    GError ** error)
{
  g_autofree gchar *escaped = g_uri_escape_string (task_id, NULL, FALSE);
  g_autofree gchar *path = g_strdup_printf ("%s?task_id=%s",
      grok_imagine_api_status_path (client->api), escaped);
  guint attempt;

  for (attempt = 0;; attempt++) {
    g_autoptr (GBytes) answer = call_api (client, "GET", path, NULL, TRUE,
        deadline, cancellable, http_status, error);
    GrokImagineStatus *st;

    if (answer == NULL)
      return NULL;
    st = grok_imagine_parse_status (client->api,
        g_bytes_get_data (answer, NULL), g_bytes_get_size (answer), error);
    /* an HTTP 200 whose envelope says the server failed (code 500) is an
     * outage like an HTTP 500 */
    if (st || !retry_api (client, TRUE, attempt, deadline, cancellable,
            error))
      return st;
  }
}
