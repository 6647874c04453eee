/* gst-grokimagine
 * Copyright (C) 2026 gst-grokimagine authors
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * HTTP with libsoup: submit a job and poll its status, with retries,
 * backoff, rate-limit waits and cancellable waits. No GStreamer types.
 */
#pragma once

#include <libsoup/soup.h>
#include "grokimagine-api.h"

G_BEGIN_DECLS

typedef enum
{
  GROK_IMAGINE_WAIT_RETRY,      /* backing off after a transient failure */
  GROK_IMAGINE_WAIT_RATE_LIMIT, /* the API asked us to slow down */
  GROK_IMAGINE_WAIT_PACED,      /* a poll waited for the key's budget */
} GrokImagineWaitReason;

/* Called before every wait longer than nothing; @cause is the failure that
 * led to it (NULL for a rate-limit wait announced by a successful answer).
 * GROK_IMAGINE_WAIT_PACED comes after the wait instead: @wait_us is then
 * the time since the client's previous poll. */
typedef void (*GrokImagineWaitNotify) (GrokImagineWaitReason reason,
    gint64 wait_us, const GError * cause, gpointer user_data);

/* What every request of a run shares: the session and the policies. */
typedef struct
{
  SoupSession *session;
  gboolean ssl_strict;
  guint retries;                /* retries of what is not yet paid for,
                                 * and of idempotent requests without a
                                 * deadline or outage_limit */
  gint64 outage_limit;          /* µs an idempotent request without a
                                 * deadline of its own keeps retrying
                                 * through an outage; 0: retries bound it */
  guint rate_limit;             /* API requests per minute per key, 0: learn */
  GrokImagineWaitNotify notify;
  gpointer notify_data;
} GrokImagineHttp;

/* The longest wait a rate-limit header can impose */
#define GROK_IMAGINE_MAX_RATE_WAIT (120 * G_TIME_SPAN_SECOND)
/* No deadline */
#define GROK_IMAGINE_NO_DEADLINE G_MAXINT64

typedef struct _GrokImagineClient GrokImagineClient;

GrokImagineClient *grok_imagine_client_new (const GrokImagineHttp * http,
    GrokImagineApi api, const gchar * base_url, const gchar * api_key,
    GError ** error);
void grok_imagine_client_free (GrokImagineClient * client);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (GrokImagineClient, grok_imagine_client_free);

const gchar *grok_imagine_client_get_host (GrokImagineClient * client);
const gchar *grok_imagine_client_get_base_url (GrokImagineClient * client);
/* X-RateLimit-Remaining of the last API answer, -1 when none said */
gint64 grok_imagine_client_get_rate_remaining (GrokImagineClient * client);

/* Called from the submitting thread: with TRUE when the first part of the
 * paid POST has left, with FALSE when an answer (HTTP 4xx) says that the
 * server did not take it */
typedef void (*GrokImagineSubmitNotify) (gboolean in_flight,
    gpointer user_data);

/* The paid POST: retried only when the server certainly did not take it
 * (HTTP 429, or no connection), at most retries times; a redirect is never
 * followed. @deadline is monotonic time in µs. @notify may be NULL. A poll
 * retries every temporary failure until @deadline; then the error is
 * GROK_IMAGINE_ERROR_TIMEOUT. */
gchar *grok_imagine_client_submit (GrokImagineClient * client,
    const GrokImagineRequest * req, gint64 deadline,
    GrokImagineSubmitNotify notify, gpointer notify_data,
    GCancellable * cancellable, guint * http_status, GError ** error);
GrokImagineStatus *grok_imagine_client_poll (GrokImagineClient * client,
    const gchar * task_id, gint64 deadline, GCancellable * cancellable,
    guint * http_status, GError ** error);

/* Shared by the API client and the result download. */
SoupMessage *grok_imagine_http_new_message (const GrokImagineHttp * http,
    const gchar * method, const gchar * url);
GInputStream *grok_imagine_http_send (const GrokImagineHttp * http,
    SoupMessage * msg, GCancellable * cancellable, GError ** error);
gboolean grok_imagine_http_retry (const GrokImagineHttp * http,
    gboolean idempotent, guint attempt, gint64 deadline,
    GCancellable * cancellable, GError ** error);
/* The deadline of an outage that begins now: outage_limit from now, or
 * GROK_IMAGINE_NO_DEADLINE (then retries bound the attempts) */
gint64 grok_imagine_http_outage_deadline (const GrokImagineHttp * http);
GrokImagineError grok_imagine_error_for_http_status (guint status);
/* g_io_error_from_errno() for a write to a file: a quota that is used up
 * (EDQUOT) is a full disk too, G_IO_ERROR_NO_SPACE */
GIOErrorEnum grok_imagine_io_error_from_errno (int err_no);
gboolean grok_imagine_wait (gint64 wait_us, GCancellable * cancellable,
    GError ** error);

G_END_DECLS
