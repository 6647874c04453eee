/* gst-grokimagine
 * Copyright (C) 2026 gst-grokimagine authors
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "grokimagine-fetch.h"

struct _GrokImagineFetch
{
  GrokImagineHttp http;
  gchar *url;
  SoupMessage *msg;
  GInputStream *stream;
  guint64 position;
  guint64 size;                 /* G_MAXUINT64 while unknown */
  gchar *content_type;
  /* What identifies the file, from the first answer: later requests send
   * it in If-Range and must answer with the same */
  gchar *etag;
  gchar *last_modified;
  gboolean ranges;              /* the host answered a Range with 206 */
  /* A byte read from the stream ahead of the caller (see read_some()) */
  guint8 ahead;
  gboolean has_ahead;
};

GrokImagineFetch *
grok_imagine_fetch_new (const GrokImagineHttp * http, const gchar * url)
{
  GrokImagineFetch *fetch = g_new0 (GrokImagineFetch, 1);

  fetch->http = *http;
  g_object_ref (fetch->http.session);
  fetch->url = g_strdup (url);
  fetch->size = G_MAXUINT64;
  return fetch;
}

void
grok_imagine_fetch_close (GrokImagineFetch * fetch)
{
  if (fetch->stream)
    g_input_stream_close (fetch->stream, NULL, NULL);
  g_clear_object (&fetch->stream);
  g_clear_object (&fetch->msg);
  fetch->has_ahead = FALSE;
}

void
grok_imagine_fetch_free (GrokImagineFetch * fetch)
{
  if (fetch == NULL)
    return;
  grok_imagine_fetch_close (fetch);
  g_object_unref (fetch->http.session);
  g_free (fetch->url);
  g_free (fetch->content_type);
  g_free (fetch->etag);
  g_free (fetch->last_modified);
  g_free (fetch);
}

gboolean
grok_imagine_fetch_is_open (GrokImagineFetch * fetch)
{
  return fetch->stream != NULL;
}

guint64
grok_imagine_fetch_get_position (GrokImagineFetch * fetch)
{
  return fetch->position;
}

gboolean
grok_imagine_fetch_get_size (GrokImagineFetch * fetch, guint64 * size)
{
  *size = fetch->size;
  return fetch->size != G_MAXUINT64;
}

const gchar *
grok_imagine_fetch_get_content_type (GrokImagineFetch * fetch)
{
  return fetch->content_type;
}

const gchar *
grok_imagine_fetch_get_url (GrokImagineFetch * fetch)
{
  return fetch->url;
}

gboolean
grok_imagine_fetch_has_ranges (GrokImagineFetch * fetch)
{
  return fetch->ranges;
}

/* A second request for the same file: it must find the same file */
GrokImagineFetch *
grok_imagine_fetch_new_like (GrokImagineFetch * other)
{
  GrokImagineFetch *fetch = grok_imagine_fetch_new (&other->http, other->url);

  fetch->size = other->size;
  fetch->content_type = g_strdup (other->content_type);
  fetch->etag = g_strdup (other->etag);
  fetch->last_modified = g_strdup (other->last_modified);
  fetch->ranges = other->ranges;
  return fetch;
}

/* A server that ignored our Range: read up to the offset and drop it. */
static gboolean
skip_to (GrokImagineFetch * fetch, guint64 offset, GCancellable * cancellable,
    GError ** error)
{
  while (fetch->position < offset) {
    gssize n = g_input_stream_skip (fetch->stream,
        MIN (offset - fetch->position, 1 << 20), cancellable, error);

    if (n < 0)
      return FALSE;
    if (n == 0) {
      g_set_error (error, GROK_IMAGINE_ERROR, GROK_IMAGINE_ERROR_PROTOCOL,
          "the result ended at byte %" G_GUINT64_FORMAT " before the "
          "requested offset %" G_GUINT64_FORMAT, fetch->position, offset);
      return FALSE;
    }
    fetch->position += n;
  }
  return TRUE;
}

/* The result must stay the same file across requests */
static gboolean
set_size (GrokImagineFetch * fetch, guint64 size, GError ** error)
{
  if (fetch->size != G_MAXUINT64 && fetch->size != size) {
    g_set_error (error, GROK_IMAGINE_ERROR, GROK_IMAGINE_ERROR_PROTOCOL,
        "the result changed during the download: it had %" G_GUINT64_FORMAT
        " bytes, now %" G_GUINT64_FORMAT, fetch->size, size);
    grok_imagine_fetch_close (fetch);
    return FALSE;
  }
  fetch->size = size;
  return TRUE;
}

/* A weak ETag (W/"...") only promises equivalent content, not the same
 * bytes: it cannot make a ranged request safe */
static gboolean
strong_etag (const gchar * etag)
{
  return etag && etag[0] == '"';
}

/* The first answer names the file; every later one must name the same.
 * Either an ETag or a Last-Modified that differs means the file changed,
 * and its bytes must not be spliced with those already read. */
static gboolean
check_validators (GrokImagineFetch * fetch, SoupMessageHeaders * hdrs,
    GError ** error)
{
  const gchar *etag = soup_message_headers_get_one (hdrs, "ETag");
  const gchar *modified = soup_message_headers_get_one (hdrs,
      "Last-Modified");

  if (fetch->etag == NULL && fetch->last_modified == NULL) {
    fetch->etag = g_strdup (etag);
    fetch->last_modified = g_strdup (modified);
    return TRUE;
  }
  if ((fetch->etag && etag && g_strcmp0 (fetch->etag, etag) != 0)
      || (fetch->last_modified && modified
          && g_strcmp0 (fetch->last_modified, modified) != 0)) {
    g_set_error (error, GROK_IMAGINE_ERROR, GROK_IMAGINE_ERROR_PROTOCOL,
        "the result changed on the server during the download (%s %s, "
        "now %s)", fetch->etag && etag ? "ETag" : "Last-Modified",
        fetch->etag && etag ? fetch->etag : fetch->last_modified,
        fetch->etag && etag ? etag : modified);
    grok_imagine_fetch_close (fetch);
    return FALSE;
  }
  return TRUE;
}

static gboolean
open_once (GrokImagineFetch * fetch, guint64 offset,
    GCancellable * cancellable, guint * http_status, GError ** error)
{
  SoupMessageHeaders *hdrs;
  goffset start, end, total;
  GrokImagineError code;
  guint status;

  grok_imagine_fetch_close (fetch);
  *http_status = 0;

  fetch->msg = grok_imagine_http_new_message (&fetch->http, "GET",
      fetch->url);
  if (fetch->msg == NULL) {
    g_set_error (error, GROK_IMAGINE_ERROR, GROK_IMAGINE_ERROR_PROTOCOL,
        "the result URL '%s' is not a valid http(s) URL", fetch->url);
    return FALSE;
  }
  /* Byte offsets must be those of the file itself. */
  soup_message_disable_feature (fetch->msg, SOUP_TYPE_CONTENT_DECODER);
  hdrs = soup_message_get_request_headers (fetch->msg);
  /* From byte 0 too: a 206 tells that the host honours ranges */
  soup_message_headers_set_range (hdrs, offset, -1);
  if (strong_etag (fetch->etag))
    soup_message_headers_replace (hdrs, "If-Range", fetch->etag);
  else if (fetch->last_modified)
    soup_message_headers_replace (hdrs, "If-Range", fetch->last_modified);

  fetch->stream = grok_imagine_http_send (&fetch->http, fetch->msg,
      cancellable, error);
  if (fetch->stream == NULL) {
    g_clear_object (&fetch->msg);
    return FALSE;
  }

  status = *http_status = soup_message_get_status (fetch->msg);
  hdrs = soup_message_get_response_headers (fetch->msg);
  g_free (fetch->content_type);
  fetch->content_type =
      g_strdup (soup_message_headers_get_content_type (hdrs, NULL));
  if ((status == SOUP_STATUS_OK || status == SOUP_STATUS_PARTIAL_CONTENT)
      && !check_validators (fetch, hdrs, error))
    return FALSE;

  if (status == SOUP_STATUS_PARTIAL_CONTENT
      && soup_message_headers_get_content_range (hdrs, &start, &end, &total)) {
    if ((guint64) start != offset) {
      g_set_error (error, GROK_IMAGINE_ERROR, GROK_IMAGINE_ERROR_PROTOCOL,
          "asked for byte %" G_GUINT64_FORMAT " of the result, the server "
          "sent from byte %" G_GINT64_FORMAT, offset, (gint64) start);
      grok_imagine_fetch_close (fetch);
      return FALSE;
    }
    fetch->position = offset;
    fetch->ranges = TRUE;
    return total < 0 || set_size (fetch, total, error);
  }

  if (status == SOUP_STATUS_OK) {
    goffset length = soup_message_headers_get_content_length (hdrs);

    /* The whole file: the host ignores Range (or If-Range found another
     * file, which check_validators() has already refused) */
    fetch->ranges = FALSE;

    if ((length > 0 || soup_message_headers_get_encoding (hdrs) ==
            SOUP_ENCODING_CONTENT_LENGTH) && !set_size (fetch, length, error))
      return FALSE;
    fetch->position = 0;
    if (skip_to (fetch, offset, cancellable, error))
      return TRUE;
    grok_imagine_fetch_close (fetch);
    return FALSE;
  }

  if (status == SOUP_STATUS_REQUESTED_RANGE_NOT_SATISFIABLE) {
    /* Nothing left at that offset: reads return end-of-stream. */
    fetch->position = offset;
    if (soup_message_headers_get_content_range (hdrs, &start, &end, &total)
        && total >= 0)
      fetch->size = total;
    else
      fetch->size = offset;
    return TRUE;
  }

  code = grok_imagine_error_for_http_status (status);
  /* result URLs are signed for a while: a later download meets this */
  g_set_error (error, GROK_IMAGINE_ERROR, code, "HTTP %u %s%s", status,
      soup_message_get_reason_phrase (fetch->msg),
      code == GROK_IMAGINE_ERROR_NOT_FOUND ? ": the result URL has expired "
      "or was withdrawn by the provider" : "");
  grok_imagine_fetch_close (fetch);
  return FALSE;
}

/* The result of a paid task is worth waiting for: a download retries
 * through an outage of up to the http's outage_limit, which @deadline
 * (0 until the first failure) ends. */
static gboolean
open_retrying (GrokImagineFetch * fetch, guint64 offset, guint attempt,
    gint64 deadline, GCancellable * cancellable, guint * http_status,
    GError ** error)
{
  for (;; attempt++) {
    if (open_once (fetch, offset, cancellable, http_status, error))
      return TRUE;
    if (deadline == 0)
      deadline = grok_imagine_http_outage_deadline (&fetch->http);
    if (!grok_imagine_http_retry (&fetch->http, TRUE, attempt, deadline,
            cancellable, error))
      return FALSE;
  }
}

gboolean
grok_imagine_fetch_open (GrokImagineFetch * fetch, guint64 offset,
    GCancellable * cancellable, guint * http_status, GError ** error)
{
  return open_retrying (fetch, offset, 0, 0, cancellable, http_status, error);
}

/* libsoup reads the end of a chunked body into the caller's buffer and
 * fails on one of a single byte: such a read asks for two, and keeps the
 * second for the next read */
static gssize
read_some (GrokImagineFetch * fetch, guint8 * data, gsize len,
    GCancellable * cancellable, GError ** error)
{
  guint8 two[2];
  gssize n;

  if (fetch->has_ahead) {
    fetch->has_ahead = FALSE;
    data[0] = fetch->ahead;
    return 1;
  }
  if (len > 1)
    return g_input_stream_read (fetch->stream, data, len, cancellable, error);
  n = g_input_stream_read (fetch->stream, two, 2, cancellable, error);
  if (n > 0)
    data[0] = two[0];
  if (n == 2) {
    fetch->ahead = two[1];
    fetch->has_ahead = TRUE;
    n = 1;
  }
  return n;
}

/* Reads what has arrived, at most @len bytes, or with @fill all @len
 * unless the result ends first. A dropped connection is resumed from the
 * next byte, retrying through an outage as grok_imagine_fetch_open() does. */
gssize
grok_imagine_fetch_read (GrokImagineFetch * fetch, guint8 * data, gsize len,
    gboolean fill, GCancellable * cancellable, GError ** error)
{
  gboolean known = fetch->size != G_MAXUINT64;
  gint64 deadline = 0;
  guint failures = 0;
  gsize got = 0;

  if (known) {
    if (fetch->position >= fetch->size)
      return 0;
    len = MIN (len, fetch->size - fetch->position);
  }

  while (got < len) {
    g_autoptr (GError) err = NULL;
    guint http_status;
    gssize n = read_some (fetch, data + got, len - got, cancellable, &err);

    if (n > 0) {
      got += n;
      fetch->position += n;
      failures = 0;
      deadline = 0;
      if (!fill)
        break;
      continue;
    }
    if (n == 0 && !known)
      break;
    if (g_error_matches (err, G_IO_ERROR, G_IO_ERROR_CANCELLED)) {
      g_propagate_error (error, g_steal_pointer (&err));
      return -1;
    }

    g_clear_error (&err);
    g_set_error (&err, GROK_IMAGINE_ERROR, GROK_IMAGINE_ERROR_NETWORK,
        "the connection closed at byte %" G_GUINT64_FORMAT " of %"
        G_GUINT64_FORMAT, fetch->position, fetch->size);
    if (deadline == 0)
      deadline = grok_imagine_http_outage_deadline (&fetch->http);
    if (!grok_imagine_http_retry (&fetch->http, TRUE, failures++, deadline,
            cancellable, &err)) {
      g_propagate_error (error, g_steal_pointer (&err));
      return -1;
    }
    if (!open_retrying (fetch, fetch->position, failures, deadline,
            cancellable, &http_status, error))
      return -1;
  }
  return got;
}
