/* gst-grokimagine
 * Copyright (C) 2026 gst-grokimagine authors
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * A cancellable that a deadline cancels: it bounds a blocking request that
 * has no deadline of its own. One thread of the process rings the alarms
 * of every job, for as long as there are any. No GStreamer types.
 */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

typedef struct _GrokImagineAlarm GrokImagineAlarm;

/* Its cancellable is cancelled at @deadline (monotonic time in µs, at once
 * when it has passed, never when G_MAXINT64) and with @parent, which may
 * be NULL */
GrokImagineAlarm *grok_imagine_alarm_new (gint64 deadline,
    GCancellable * parent);
void grok_imagine_alarm_free (GrokImagineAlarm * alarm);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (GrokImagineAlarm, grok_imagine_alarm_free);

GCancellable *grok_imagine_alarm_get_cancellable (GrokImagineAlarm * alarm);
/* Whether the deadline has cancelled it */
gboolean grok_imagine_alarm_rang (GrokImagineAlarm * alarm);

G_END_DECLS
