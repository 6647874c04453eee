/* gst-grokimagine
 * Copyright (C) 2026 gst-grokimagine authors
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * The result download: ranged GET, size and Content-Type. No GStreamer types.
 * The request never carries the API key. A connection that drops is
 * resumed with a Range request from the next byte. Temporary failures are
 * retried through an outage of up to the http's outage_limit (the retries
 * when it is 0).
 */
#pragma once

#include "grokimagine-client.h"

G_BEGIN_DECLS

typedef struct _GrokImagineFetch GrokImagineFetch;

GrokImagineFetch *grok_imagine_fetch_new (const GrokImagineHttp * http,
    const gchar * url);
GrokImagineFetch *grok_imagine_fetch_new_like (GrokImagineFetch * other);
void grok_imagine_fetch_free (GrokImagineFetch * fetch);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (GrokImagineFetch, grok_imagine_fetch_free);

gboolean grok_imagine_fetch_open (GrokImagineFetch * fetch, guint64 offset,
    GCancellable * cancellable, guint * http_status, GError ** error);
gssize grok_imagine_fetch_read (GrokImagineFetch * fetch, guint8 * data,
    gsize len, gboolean fill, GCancellable * cancellable, GError ** error);
void grok_imagine_fetch_close (GrokImagineFetch * fetch);

gboolean grok_imagine_fetch_is_open (GrokImagineFetch * fetch);
guint64 grok_imagine_fetch_get_position (GrokImagineFetch * fetch);
gboolean grok_imagine_fetch_get_size (GrokImagineFetch * fetch,
    guint64 * size);
const gchar *grok_imagine_fetch_get_content_type (GrokImagineFetch * fetch);
const gchar *grok_imagine_fetch_get_url (GrokImagineFetch * fetch);
gboolean grok_imagine_fetch_has_ranges (GrokImagineFetch * fetch);

G_END_DECLS
