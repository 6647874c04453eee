/* gst-grokimagine
 * Copyright (C) 2026 gst-grokimagine authors
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "grokimagine-client.h"

#include <string.h>

struct _GrokImagineClient
{
  SoupSession *session;
  GrokImagineApi api;
  gchar *base_url;              /* without a trailing slash */
  gchar *host;                  /* host[:port], for messages */
  gchar *authorization;
};

GrokImagineClient *
grok_imagine_client_new (SoupSession * session, GrokImagineApi api,
    const gchar * base_url, const gchar * api_key, GError ** error)
{
  g_autoptr (GUri) uri = NULL;
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
  client->session = g_object_ref (session);
  client->api = api;
  client->base_url = g_strdup (base_url);
  g_strchomp (client->base_url);
  while (g_str_has_suffix (client->base_url, "/"))
    client->base_url[strlen (client->base_url) - 1] = '\0';
  client->host = g_uri_get_port (uri) > 0 ?
      g_strdup_printf ("%s:%d", g_uri_get_host (uri), g_uri_get_port (uri)) :
      g_strdup (g_uri_get_host (uri));
  client->authorization = g_strconcat ("Bearer ", api_key, NULL);
  return client;
}

void
grok_imagine_client_free (GrokImagineClient * client)
{
  if (client == NULL)
    return;
  g_object_unref (client->session);
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
    case 429:                    /* Too Many Requests */
      return GROK_IMAGINE_ERROR_RATE_LIMITED;
    default:
      return GROK_IMAGINE_ERROR_SERVER;
  }
}

GInputStream *
grok_imagine_send (SoupSession * session, SoupMessage * msg,
    GCancellable * cancellable, GError ** error)
{
  g_autoptr (GError) err = NULL;
  GInputStream *stream;
  GUri *uri;

  stream = soup_session_send (session, msg, cancellable, &err);
  if (stream)
    return stream;

  if (g_error_matches (err, G_IO_ERROR, G_IO_ERROR_CANCELLED)) {
    g_propagate_error (error, g_steal_pointer (&err));
    return NULL;
  }
  uri = soup_message_get_uri (msg);
  if (g_uri_get_port (uri) > 0)
    g_set_error (error, GROK_IMAGINE_ERROR, GROK_IMAGINE_ERROR_NETWORK,
        "Could not reach %s:%d: %s", g_uri_get_host (uri),
        g_uri_get_port (uri), err->message);
  else
    g_set_error (error, GROK_IMAGINE_ERROR, GROK_IMAGINE_ERROR_NETWORK,
        "Could not reach %s: %s", g_uri_get_host (uri), err->message);
  return NULL;
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

/* Sends one API request with the key and returns the body of a 2xx answer.
 * Redirects are not followed: the key goes to the base URL's origin only. */
static GBytes *
call_api (GrokImagineClient * client, const gchar * method,
    const gchar * path_and_query, GBytes * json, GCancellable * cancellable,
    guint * http_status, GError ** error)
{
  g_autofree gchar *url = g_strconcat (client->base_url, path_and_query, NULL);
  g_autoptr (SoupMessage) msg = soup_message_new (method, url);
  g_autoptr (GInputStream) stream = NULL;
  g_autoptr (GBytes) body = NULL;
  g_autofree gchar *api_message = NULL;
  SoupMessageHeaders *hdrs;
  guint status;

  *http_status = 0;
  if (msg == NULL) {
    g_set_error (error, GROK_IMAGINE_ERROR, GROK_IMAGINE_ERROR_SETTINGS,
        "Cannot build a request to '%s'.", url);
    return NULL;
  }
  soup_message_add_flags (msg, SOUP_MESSAGE_NO_REDIRECT);
  hdrs = soup_message_get_request_headers (msg);
  soup_message_headers_replace (hdrs, "Authorization", client->authorization);
  soup_message_headers_replace (hdrs, "Accept", "application/json");
  if (json)
    soup_message_set_request_body_from_bytes (msg, "application/json", json);

  stream = grok_imagine_send (client->session, msg, cancellable, error);
  if (stream == NULL)
    return NULL;
  status = *http_status = soup_message_get_status (msg);
  body = read_body (stream, cancellable, error);
  if (body == NULL)
    return NULL;
  if (SOUP_STATUS_IS_SUCCESSFUL (status))
    return g_steal_pointer (&body);

  api_message = grok_imagine_parse_error_body (g_bytes_get_data (body, NULL),
      g_bytes_get_size (body));
  if (SOUP_STATUS_IS_REDIRECTION (status))
    g_set_error (error, GROK_IMAGINE_ERROR, GROK_IMAGINE_ERROR_SERVER,
        "HTTP %u %s: the API redirected elsewhere; the key is only sent to "
        "the base-url, set base-url to the new address", status,
        soup_message_get_reason_phrase (msg));
  else
    g_set_error (error, GROK_IMAGINE_ERROR,
        grok_imagine_error_for_http_status (status), "HTTP %u %s%s%s", status,
        soup_message_get_reason_phrase (msg), api_message ? ": " : "",
        api_message ? api_message : "");
  return NULL;
}

gchar *
grok_imagine_client_submit (GrokImagineClient * client,
    const GrokImagineRequest * req, GCancellable * cancellable,
    guint * http_status, GError ** error)
{
  gchar *json = grok_imagine_request_to_json (req);
  g_autoptr (GBytes) body = g_bytes_new_take (json, strlen (json));
  g_autoptr (GBytes) answer = call_api (client, "POST",
      grok_imagine_api_generate_path (client->api), body, cancellable,
      http_status, error);

  if (answer == NULL)
    return NULL;
  return grok_imagine_parse_submit (client->api,
      g_bytes_get_data (answer, NULL), g_bytes_get_size (answer), error);
}

GrokImagineStatus *
grok_imagine_client_poll (GrokImagineClient * client, const gchar * task_id,
    GCancellable * cancellable, guint * http_status, GError ** error)
{
  g_autofree gchar *escaped = g_uri_escape_string (task_id, NULL, FALSE);
  g_autofree gchar *path = g_strdup_printf ("%s?task_id=%s",
      grok_imagine_api_status_path (client->api), escaped);
  g_autoptr (GBytes) answer = call_api (client, "GET", path, NULL,
      cancellable, http_status, error);

  if (answer == NULL)
    return NULL;
  return grok_imagine_parse_status (client->api,
      g_bytes_get_data (answer, NULL), g_bytes_get_size (answer), error);
}
