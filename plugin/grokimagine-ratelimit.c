/* gst-grokimagine
 * Copyright (C) 2026 gst-grokimagine authors
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * The budget of a key: every answer says how many requests the key has left
 * (X-RateLimit-Remaining) until its window resets (X-RateLimit-Reset). The
 * limiter spends what is left evenly until the reset. Submits may run ahead
 * of that pace by a burst of a tenth of it (a quarter once the process has
 * seen nobody else on the key); polls never burst. Other processes on the
 * key show as Remaining falling faster than this process's own requests
 * explain: the process then spends only its own share of what is left, and
 * nothing of a last request or two that belong to the others. Until an
 * answer has told where the key stands (at the start, and after each reset)
 * one request is in flight at a time.
 *
 * Callers queue in two lines: submits (the paid POST) go first, polls after
 * them, each line in order of arrival. A job that polls again joins the back
 * of the line, so when the budget is short every job's poll interval
 * stretches alike, and no poll waits longer than the line ahead of it.
 */
#include "grokimagine-ratelimit.h"
#include "grokimagine-client.h"

#include <stdlib.h>

/* A burst spends at most this fraction (1/N) of what is left; a process
 * that has seen nobody else on the key for a while may run further ahead */
#define BURST_DIVISOR 10
#define ALONE_BURST_DIVISOR 4
#define ALONE_AFTER 10
/* Weight, in requests, of the last window's share in this one's */
#define PRIOR_REQUESTS 2
/* Reset times closer than this belong to the same window */
#define SAME_WINDOW_US (1500 * G_TIME_SPAN_MILLISECOND)

typedef struct
{
  GCond cond;
} Waiter;

struct _GrokImagineRateLimit
{
  gchar *id;                    /* hex SHA-256 of origin and key */
  guint users;                  /* table lock */

  GMutex lock;
  GArray *caps;                 /* guint: rate-limit of each user, 0 = none */
  GQueue submits, polls;        /* Waiter *, oldest first */
  guint in_flight;
  guint64 last_ticket;
  gint64 last_grant;            /* monotonic µs */
  gint64 tat;                   /* the even pace's time for the next request */
  gint64 poll_tat;              /* the same for polls, which never burst */

  /* where the key stands, from the freshest answer */
  gboolean unmetered;           /* the answers carry no rate-limit headers */
  gboolean known;
  gint64 remaining;
  gint64 reset_at;              /* monotonic µs */
  guint64 known_ticket;         /* the request that answer belongs to */

  /* other users of the key */
  gboolean window_seen;
  gint64 own;                   /* our requests counted in this window */
  gint64 others;                /* theirs; requests that reach the server
                                 * out of order can make it negative */
  gdouble prior_share;          /* our share of the key in the last window */
};

G_LOCK_DEFINE_STATIC (limiters);
static GHashTable *limiters;    /* id -> GrokImagineRateLimit */

GrokImagineRateLimit *
grok_imagine_rate_limit_get (const gchar * origin, const gchar * api_key,
    guint per_minute)
{
  g_autoptr (GChecksum) sum = g_checksum_new (G_CHECKSUM_SHA256);
  GrokImagineRateLimit *rl;
  const gchar *id;

  g_checksum_update (sum, (const guchar *) origin, -1);
  g_checksum_update (sum, (const guchar *) "\n", 1);
  g_checksum_update (sum, (const guchar *) api_key, -1);
  id = g_checksum_get_string (sum);

  G_LOCK (limiters);
  if (limiters == NULL)
    limiters = g_hash_table_new (g_str_hash, g_str_equal);
  rl = g_hash_table_lookup (limiters, id);
  if (rl == NULL) {
    rl = g_new0 (GrokImagineRateLimit, 1);
    rl->id = g_strdup (id);
    g_mutex_init (&rl->lock);
    rl->caps = g_array_new (FALSE, FALSE, sizeof (guint));
    rl->prior_share = 1;
    g_queue_init (&rl->submits);
    g_queue_init (&rl->polls);
    g_hash_table_insert (limiters, rl->id, rl);
  }
  rl->users++;
  g_mutex_lock (&rl->lock);
  g_array_append_val (rl->caps, per_minute);
  g_mutex_unlock (&rl->lock);
  G_UNLOCK (limiters);
  return rl;
}

void
grok_imagine_rate_limit_release (GrokImagineRateLimit * rl, guint per_minute)
{
  guint i;

  G_LOCK (limiters);
  g_mutex_lock (&rl->lock);
  for (i = 0; i < rl->caps->len; i++) {
    if (g_array_index (rl->caps, guint, i) == per_minute) {
      g_array_remove_index_fast (rl->caps, i);
      break;
    }
  }
  g_mutex_unlock (&rl->lock);
  if (--rl->users == 0) {
    g_hash_table_remove (limiters, rl->id);
    g_array_unref (rl->caps);
    g_mutex_clear (&rl->lock);
    g_free (rl->id);
    g_free (rl);
  }
  G_UNLOCK (limiters);
}

/* The strictest hand cap of the users, 0 when none set one */
static guint
hand_cap (GrokImagineRateLimit * rl)
{
  guint cap = 0, i;

  for (i = 0; i < rl->caps->len; i++) {
    guint c = g_array_index (rl->caps, guint, i);

    if (c > 0 && (cap == 0 || c < cap))
      cap = c;
  }
  return cap;
}

/* The part of the key's use that is ours, from this window's counts and
 * the last window's share */
static gdouble
own_share (GrokImagineRateLimit * rl)
{
  return (rl->own + rl->prior_share * PRIOR_REQUESTS) / (rl->own +
      MAX (rl->others, 0) + PRIOR_REQUESTS);
}

gdouble
grok_imagine_rate_limit_get_share (GrokImagineRateLimit * rl)
{
  gdouble share;

  g_mutex_lock (&rl->lock);
  share = own_share (rl);
  g_mutex_unlock (&rl->lock);
  return share;
}

const gchar *
grok_imagine_rate_limit_get_id (GrokImagineRateLimit * rl)
{
  return rl->id;
}

guint
grok_imagine_rate_limit_get_waiting (GrokImagineRateLimit * rl)
{
  guint n;

  g_mutex_lock (&rl->lock);
  n = rl->submits.length + rl->polls.length;
  g_mutex_unlock (&rl->lock);
  return n;
}

/* The earliest time the next request may go (G_MAXINT64: after an answer),
 * and the pace's spacing it would take up */
static gint64
next_slot (GrokImagineRateLimit * rl, GrokImagineRateKind kind, gint64 now,
    gint64 * spacing)
{
  guint cap = hand_cap (rl);
  gint64 at = now;

  *spacing = 0;
  if (rl->known && now >= rl->reset_at)
    rl->known = FALSE;          /* a new window: ask where it stands */

  if (!rl->unmetered && !rl->known) {
    if (rl->in_flight > 0)
      return G_MAXINT64;
  } else if (!rl->unmetered) {
    gint64 left = rl->reset_at - now;
    gdouble budget = rl->remaining - (gdouble) rl->in_flight;
    gdouble share, burst;

    share = budget * own_share (rl);
    if (share < 1)
      return rl->reset_at;
    *spacing = left / share;
    /* a burst of a part of the share runs ahead of the even pace */
    burst = share / (rl->others <= 0 && rl->own >= ALONE_AFTER ?
        ALONE_BURST_DIVISOR : BURST_DIVISOR);
    at = rl->tat - (gint64) (*spacing * burst);
    if (kind == GROK_IMAGINE_RATE_POLL)
      at = MAX (at, rl->poll_tat);
  }
  if (cap > 0)
    at = MAX (at, rl->last_grant + 60 * G_TIME_SPAN_SECOND / cap);
  return at;
}

/* Lets the first in line look again: submits first, then polls */
static void
wake_heads (GrokImagineRateLimit * rl)
{
  Waiter *w;

  if ((w = g_queue_peek_head (&rl->submits)))
    g_cond_signal (&w->cond);
  if ((w = g_queue_peek_head (&rl->polls)))
    g_cond_signal (&w->cond);
}

static void
wake_all (GCancellable * cancellable, GrokImagineRateLimit * rl)
{
  GList *l;

  g_mutex_lock (&rl->lock);
  for (l = rl->submits.head; l; l = l->next)
    g_cond_signal (&((Waiter *) l->data)->cond);
  for (l = rl->polls.head; l; l = l->next)
    g_cond_signal (&((Waiter *) l->data)->cond);
  g_mutex_unlock (&rl->lock);
}

gboolean
grok_imagine_rate_limit_acquire (GrokImagineRateLimit * rl,
    GrokImagineRateKind kind, gint64 deadline, GCancellable * cancellable,
    guint64 * ticket, gint64 * waited_us, GError ** error)
{
  GQueue *line = kind == GROK_IMAGINE_RATE_SUBMIT ? &rl->submits : &rl->polls;
  gint64 start = g_get_monotonic_time ();
  gboolean granted = FALSE, late = FALSE, at_once = TRUE;
  gulong id = 0;
  Waiter me;

  g_cond_init (&me.cond);
  if (cancellable)
    id = g_cancellable_connect (cancellable, G_CALLBACK (wake_all), rl, NULL);
  g_mutex_lock (&rl->lock);
  g_queue_push_tail (line, &me);
  while (!g_cancellable_is_cancelled (cancellable)) {
    gint64 now = g_get_monotonic_time (), spacing = 0, at = G_MAXINT64;

    if (g_queue_peek_head (line) == &me && (kind == GROK_IMAGINE_RATE_SUBMIT
            || g_queue_is_empty (&rl->submits)))
      at = next_slot (rl, kind, now, &spacing);
    if (at <= now) {
      rl->in_flight++;
      *ticket = ++rl->last_ticket;
      rl->tat = MAX (rl->tat, now) + spacing;
      if (kind == GROK_IMAGINE_RATE_POLL)
        rl->poll_tat = MAX (rl->poll_tat, now) + spacing;
      rl->last_grant = now;
      granted = TRUE;
      break;
    }
    if (deadline != GROK_IMAGINE_NO_DEADLINE && now >= deadline) {
      late = TRUE;
      break;
    }
    at = MIN (at, deadline);
    at_once = FALSE;
    if (at == G_MAXINT64)
      g_cond_wait (&me.cond, &rl->lock);
    else
      g_cond_wait_until (&me.cond, &rl->lock, at);
  }
  g_queue_remove (line, &me);
  wake_heads (rl);
  g_mutex_unlock (&rl->lock);
  if (id)
    g_cancellable_disconnect (cancellable, id);
  g_cond_clear (&me.cond);

  if (granted) {
    *waited_us = at_once ? 0 : g_get_monotonic_time () - start;
    return TRUE;
  }
  if (late)
    g_set_error (error, GROK_IMAGINE_ERROR, GROK_IMAGINE_ERROR_TIMEOUT,
        "the key's rate limit left no slot for a request before the "
        "deadline");
  else
    g_cancellable_set_error_if_cancelled (cancellable, error);
  return FALSE;
}

/* µs until the time a header names, as a delay in seconds or a unix time;
 * -1 when absent or not a number */
static gint64
parse_until (const gchar * value)
{
  gchar *end;
  gint64 v;

  if (value == NULL || !g_ascii_isdigit (*value))
    return -1;
  v = g_ascii_strtoll (value, &end, 10);
  if (*end != '\0' && !g_ascii_isspace (*end))
    return -1;
  if (v > 1000000000)           /* a unix time */
    return MAX (v * G_TIME_SPAN_SECOND - g_get_real_time (), 0);
  return MIN (v, G_MAXINT64 / G_TIME_SPAN_SECOND) * G_TIME_SPAN_SECOND;
}

/* The first answer of a window: what others did in the last one becomes the
 * prior for this one */
static void
start_window (GrokImagineRateLimit * rl)
{
  if (rl->window_seen)
    rl->prior_share = own_share (rl);
  rl->window_seen = TRUE;
  rl->own = 1;
  rl->others = 0;
  rl->tat = rl->poll_tat = 0;
}

void
grok_imagine_rate_limit_answered (GrokImagineRateLimit * rl, guint64 ticket,
    guint status, const gchar * remaining, const gchar * reset,
    const gchar * retry_after)
{
  gint64 now = g_get_monotonic_time ();
  gint64 until = parse_until (reset);
  gint64 left = -1;

  if (remaining && g_ascii_isdigit (*remaining))
    left = g_ascii_strtoll (remaining, NULL, 10);

  g_mutex_lock (&rl->lock);
  rl->in_flight--;
  if (status == 429) {
    gint64 wait = parse_until (retry_after);

    if (wait < 0)
      wait = until >= 0 ? until : G_TIME_SPAN_SECOND;
    if (!rl->known)
      start_window (rl);
    rl->unmetered = FALSE;
    rl->known = TRUE;
    rl->remaining = 0;
    rl->reset_at = now + MIN (wait, GROK_IMAGINE_MAX_RATE_WAIT);
    rl->known_ticket = MAX (rl->known_ticket, ticket);
  } else if (status != 0 && (left < 0 || until < 0)) {
    /* an API that does not say: only a hand cap paces it */
    if (!rl->known)
      rl->unmetered = TRUE;
  } else if (status != 0) {
    gint64 reset_at = now + MIN (until, GROK_IMAGINE_MAX_RATE_WAIT);

    rl->unmetered = FALSE;
    if (!rl->known || reset_at > rl->reset_at + SAME_WINDOW_US) {
      start_window (rl);
      rl->known = TRUE;
      rl->remaining = left;
      rl->reset_at = reset_at;
      rl->known_ticket = ticket;
    } else if (ticket > rl->known_ticket
        && reset_at > rl->reset_at - SAME_WINDOW_US) {
      /* the same window, a fresher answer: what our own requests since the
       * last one do not explain, others spent. Ours that reached the server
       * out of order even out over the next answers. */
      gint64 own = ticket - rl->known_ticket;

      rl->own += own;
      rl->others += rl->remaining - left - own;
      rl->remaining = left;
      rl->known_ticket = ticket;
    }
  }
  wake_heads (rl);
  g_mutex_unlock (&rl->lock);
}
