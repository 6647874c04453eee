/* gst-grokimagine
 * Copyright (C) 2026 gst-grokimagine authors
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * One request budget per API origin and key in a process: every client of
 * the same key takes a slot here before it sends and reports the answer's
 * rate-limit headers afterwards. No GStreamer types.
 */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

typedef enum
{
  GROK_IMAGINE_RATE_POLL,       /* a status request: yields to submits */
  GROK_IMAGINE_RATE_SUBMIT,     /* the paid POST: the next free slot */
} GrokImagineRateKind;

typedef struct _GrokImagineRateLimit GrokImagineRateLimit;

/* The budget of @api_key at @origin ("scheme://host:port"), shared by every
 * caller in the process; the table keeps a hash of the two, never the key.
 * @per_minute caps it by hand for as long as the reference lives (0: learn
 * the pace from the answers). */
GrokImagineRateLimit *grok_imagine_rate_limit_get (const gchar * origin,
    const gchar * api_key, guint per_minute);
void grok_imagine_rate_limit_release (GrokImagineRateLimit * rl,
    guint per_minute);

/* Waits for a slot, at most until @deadline (monotonic µs, or
 * GROK_IMAGINE_NO_DEADLINE). On success @ticket names the request for
 * grok_imagine_rate_limit_answered() and @waited_us says how long the
 * budget held it back. Fails with GROK_IMAGINE_ERROR_TIMEOUT when no slot
 * comes before the deadline, or G_IO_ERROR_CANCELLED. */
gboolean grok_imagine_rate_limit_acquire (GrokImagineRateLimit * rl,
    GrokImagineRateKind kind, gint64 deadline, GCancellable * cancellable,
    guint64 * ticket, gint64 * waited_us, GError ** error);

/* After the request of @ticket: @status is its HTTP status (0: it got no
 * answer), the header values are as received (NULL when absent). */
void grok_imagine_rate_limit_answered (GrokImagineRateLimit * rl,
    guint64 ticket, guint status, const gchar * remaining,
    const gchar * reset, const gchar * retry_after);

/* The part of the key's use the process believes is its own, 0 to 1 (for
 * logs and tests) */
gdouble grok_imagine_rate_limit_get_share (GrokImagineRateLimit * rl);

/* A hex SHA-256 of origin and key: names the key without showing it */
const gchar *grok_imagine_rate_limit_get_id (GrokImagineRateLimit * rl);

/* How many callers wait for a slot (for tests) */
guint grok_imagine_rate_limit_get_waiting (GrokImagineRateLimit * rl);

G_END_DECLS
