/* gst-grokimagine
 * Copyright (C) 2026 gst-grokimagine authors
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "grokimagine-alarm.h"

/* The thread that rings the alarms: it runs while any alarm is set */
typedef struct
{
  GMainContext *context;
  GThread *thread;
  gint quit;
} Ringer;

static GMutex ringer_lock;
static Ringer *ringer;
static guint ringer_users;

struct _GrokImagineAlarm
{
  GCancellable *cancellable;
  GCancellable *parent;
  gulong parent_id;
  GSource *source;
  gint rang;
};

static gpointer
ringer_run (gpointer data)
{
  Ringer *r = data;

  while (!g_atomic_int_get (&r->quit))
    g_main_context_iteration (r->context, TRUE);
  return NULL;
}

static GMainContext *
ringer_ref (void)
{
  GMainContext *context;

  g_mutex_lock (&ringer_lock);
  if (ringer_users++ == 0) {
    ringer = g_new0 (Ringer, 1);
    ringer->context = g_main_context_new ();
    ringer->thread = g_thread_new ("grokimagine-alarm", ringer_run, ringer);
  }
  context = ringer->context;
  g_mutex_unlock (&ringer_lock);
  return context;
}

static void
ringer_unref (void)
{
  g_mutex_lock (&ringer_lock);
  if (--ringer_users == 0) {
    g_atomic_int_set (&ringer->quit, TRUE);
    g_main_context_wakeup (ringer->context);
    g_thread_join (ringer->thread);
    g_main_context_unref (ringer->context);
    g_clear_pointer (&ringer, g_free);
  }
  g_mutex_unlock (&ringer_lock);
}

/* The source holds a reference of its own: a ring may still be under way
 * while the alarm is freed */
static void
alarm_clear (GrokImagineAlarm * alarm)
{
  g_object_unref (alarm->cancellable);
}

static void
alarm_release (gpointer data)
{
  g_atomic_rc_box_release_full (data, (GDestroyNotify) alarm_clear);
}

static gboolean
ring (gpointer data)
{
  GrokImagineAlarm *alarm = data;

  g_atomic_int_set (&alarm->rang, TRUE);
  g_cancellable_cancel (alarm->cancellable);
  return G_SOURCE_REMOVE;
}

static gboolean
alarm_dispatch (GSource * source, GSourceFunc callback, gpointer data)
{
  return callback (data);
}

static GSourceFuncs alarm_funcs = {
  NULL, NULL, alarm_dispatch, NULL, NULL, NULL
};

static void
cancel_with_parent (GCancellable * parent, GCancellable * cancellable)
{
  g_cancellable_cancel (cancellable);
}

GrokImagineAlarm *
grok_imagine_alarm_new (gint64 deadline, GCancellable * parent)
{
  GrokImagineAlarm *alarm = g_atomic_rc_box_new0 (GrokImagineAlarm);

  alarm->cancellable = g_cancellable_new ();
  if (parent) {
    alarm->parent = g_object_ref (parent);
    alarm->parent_id = g_cancellable_connect (parent,
        G_CALLBACK (cancel_with_parent), alarm->cancellable, NULL);
  }
  alarm->source = g_source_new (&alarm_funcs, sizeof (GSource));
  g_source_set_name (alarm->source, "grokimagine deadline");
  g_source_set_callback (alarm->source, ring, g_atomic_rc_box_acquire (alarm),
      alarm_release);
  g_source_set_ready_time (alarm->source, deadline == G_MAXINT64 ? -1 :
      MAX (deadline, 0));
  g_source_attach (alarm->source, ringer_ref ());
  return alarm;
}

void
grok_imagine_alarm_free (GrokImagineAlarm * alarm)
{
  if (alarm == NULL)
    return;
  g_source_destroy (alarm->source);
  g_source_unref (alarm->source);
  ringer_unref ();
  if (alarm->parent) {
    g_cancellable_disconnect (alarm->parent, alarm->parent_id);
    g_object_unref (alarm->parent);
  }
  alarm_release (alarm);
}

GCancellable *
grok_imagine_alarm_get_cancellable (GrokImagineAlarm * alarm)
{
  return alarm->cancellable;
}

gboolean
grok_imagine_alarm_rang (GrokImagineAlarm * alarm)
{
  return g_atomic_int_get (&alarm->rang);
}
