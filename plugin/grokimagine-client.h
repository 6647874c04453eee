/* gst-grokimagine
 * Copyright (C) 2026 gst-grokimagine authors
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * HTTP with libsoup: submit a job and poll its status. No GStreamer types.
 */
#pragma once

#include <libsoup/soup.h>
#include "grokimagine-api.h"

G_BEGIN_DECLS

typedef struct _GrokImagineClient GrokImagineClient;

GrokImagineClient *grok_imagine_client_new (SoupSession * session,
    GrokImagineApi api, const gchar * base_url, const gchar * api_key,
    GError ** error);
void grok_imagine_client_free (GrokImagineClient * client);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (GrokImagineClient, grok_imagine_client_free);

const gchar *grok_imagine_client_get_host (GrokImagineClient * client);

gchar *grok_imagine_client_submit (GrokImagineClient * client,
    const GrokImagineRequest * req, GCancellable * cancellable,
    guint * http_status, GError ** error);
GrokImagineStatus *grok_imagine_client_poll (GrokImagineClient * client,
    const gchar * task_id, GCancellable * cancellable, guint * http_status,
    GError ** error);

/* Shared by the API client and the result download. */
GInputStream *grok_imagine_send (SoupSession * session, SoupMessage * msg,
    GCancellable * cancellable, GError ** error);
GrokImagineError grok_imagine_error_for_http_status (guint status);

G_END_DECLS
