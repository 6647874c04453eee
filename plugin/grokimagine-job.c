/* gst-grokimagine
 * Copyright (C) 2026 gst-grokimagine authors
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "grokimagine-job.h"
#include "grokimagine-alarm.h"
#include "grokimagine-journal.h"

#include <glib/gstdio.h>
#include <string.h>

#define TABLE_POLL (50 * G_TIME_SPAN_MILLISECOND)
#define RECORD_LOCK_WAIT (10 * G_TIME_SPAN_SECOND)
/* A request still in flight at the deadline is cancelled this much later:
 * the last retry of a poll goes out at the deadline itself, and its answer
 * (the API's own words) makes a better error than the cancel */
#define DEADLINE_GRACE G_TIME_SPAN_SECOND

#define HOW_TO_GO_ON "Look for the task in your account's task history and " \
  "fetch it with task-id=<id>, or set refresh=true to pay for a new one."

struct _GrokImagineJob
{
  GrokImagineClient *client;
  const GrokImagineRequest *req;
  gchar *given_task_id;
  guint result_index;
  guint poll_interval;
  guint timeout;
  gboolean refresh;
  guint64 max_credits;
  gint64 *spent;                /* the owner's count, or own_spent */
  gint64 own_spent;
  guint64 cache_max_size;
  GrokImagineJobNotify notify;
  gpointer user_data;

  gchar *key;                   /* the request and the account, without the
                                 * result index */
  gchar *legacy_key;            /* the request's key in versions that did
                                 * not tell accounts apart */
  gchar *table_key;             /* its place in the task table: the request
                                 * and a hash of the account's key */
  GrokImagineJournal *journal;  /* with a cache-dir */
  GCancellable *stopped;        /* grok_imagine_job_stop(): waits for a
                                 * journal lock end */
  /* what a stop kept from the journal, tried again when the job is freed */
  GrokImagineEntry *unrecorded;
  gint64 unsettled;             /* the cost the ledger is to take; -1 */
  gint64 unrefunded;            /* credits it is to give back */
  gchar *unstored;              /* a whole download not yet stored */

  /* the streaming thread's */
  gboolean decided;             /* the task is known (or the stored file) */
  gboolean legacy;              /* following the task of an entry of an
                                 * earlier version, until the API answers */
  gboolean adopted;             /* ... and it became ours */
  gboolean claimed;             /* our SUBMITTING mark is in the table */
  GrokImagineEntry *table_prev; /* what the table held before the mark */
  gint64 deadline;
  gchar *task_id;
  gchar **result_urls;          /* once completed */
  guint64 stored_size;          /* serving the stored result */
  gchar *last_raw_status;
  guint http_status;
  gint64 credits;               /* what our task is counted for; -1: not */
  gint64 submitted_at;          /* of our task, when known */
  gboolean charged;             /* without a journal: we charged *spent */

  /* the POST guard: the streaming thread and a stop or unlock elsewhere */
  GMutex lock;
  GCond cond;
  GCancellable *post;           /* what the POST is cancelled with */
  gboolean posting;
  gboolean left;                /* some of it has left, no refusal came */
  gboolean cancel_asked;
  gboolean stopping;
  gchar *posted_task_id;
};

/* --- the task table: one per process ---------------------------------------- */

static GMutex table_lock;
static GCond table_cond;
static GHashTable *table;       /* table key -> GrokImagineEntry */

static GrokImagineEntry *
entry_copy (const GrokImagineEntry * e)
{
  GrokImagineEntry *c;

  if (e == NULL)
    return NULL;
  c = g_new0 (GrokImagineEntry, 1);
  c->state = e->state;
  c->task_id = g_strdup (e->task_id);
  c->submitted_at = e->submitted_at;
  c->error_message = g_strdup (e->error_message);
  c->api = g_strdup (e->api);
  c->model = g_strdup (e->model);
  c->prompt = g_strdup (e->prompt);
  c->credits = e->credits;
  c->updated_at = e->updated_at;
  c->base_url = g_strdup (e->base_url);
  c->account_tag = g_strdup (e->account_tag);
  grok_imagine_entry_set_result_urls (c, e->result_urls);
  if (e->sizes)
    memcpy (c->sizes, e->sizes, g_strv_length (c->result_urls) *
        sizeof (guint64));
  return c;
}

/* Waits while another element of this process submits the same request,
 * then marks it as ours to submit; *known is what the table knew */
static gboolean
table_claim (GrokImagineJob * job, GCancellable * cancellable,
    GrokImagineEntry ** known, GError ** error)
{
  GrokImagineEntry *e, *mark;

  g_mutex_lock (&table_lock);
  if (table == NULL)
    table = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
        (GDestroyNotify) grok_imagine_entry_free);
  while ((e = g_hash_table_lookup (table, job->table_key))
      && e->state == GROK_IMAGINE_ENTRY_SUBMITTING) {
    gint64 now = g_get_monotonic_time ();

    if (g_cancellable_set_error_if_cancelled (cancellable, error))
      goto failed;
    if (now >= job->deadline) {
      g_set_error (error, GROK_IMAGINE_ERROR, GROK_IMAGINE_ERROR_TIMEOUT,
          "Another element of this process was still submitting the same "
          "request when the timeout of %u s ran out", job->timeout);
      goto failed;
    }
    g_cond_wait_until (&table_cond, &table_lock, MIN (now + TABLE_POLL,
            job->deadline));
  }
  *known = entry_copy (e);
  job->table_prev = entry_copy (e);
  mark = g_new0 (GrokImagineEntry, 1);
  mark->state = GROK_IMAGINE_ENTRY_SUBMITTING;
  grok_imagine_entry_set_result_urls (mark, NULL);
  g_hash_table_replace (table, g_strdup (job->table_key), mark);
  job->claimed = TRUE;
  g_mutex_unlock (&table_lock);
  return TRUE;

failed:
  g_mutex_unlock (&table_lock);
  return FALSE;
}

/* Puts @e (or, when NULL and we hold the mark, what was there before) in
 * the table and wakes the elements waiting for it */
static void
table_set (GrokImagineJob * job, const GrokImagineEntry * e)
{
  g_mutex_lock (&table_lock);
  if (e)
    g_hash_table_replace (table, g_strdup (job->table_key), entry_copy (e));
  else if (job->claimed && job->table_prev)
    g_hash_table_replace (table, g_strdup (job->table_key),
        g_steal_pointer (&job->table_prev));
  else if (job->claimed)
    g_hash_table_remove (table, job->table_key);
  job->claimed = FALSE;
  g_clear_pointer (&job->table_prev, grok_imagine_entry_free);
  g_cond_broadcast (&table_cond);
  g_mutex_unlock (&table_lock);
}

/* What became of our task, unless another element has put another task
 * (refresh=true) or its submit there since, as the journal's record() */
static void
table_record (GrokImagineJob * job, const GrokImagineEntry * e)
{
  GrokImagineEntry *now;

  /* a task given by id is not known to be one of this request */
  if (job->given_task_id)
    return;
  g_mutex_lock (&table_lock);
  now = g_hash_table_lookup (table, job->table_key);
  if (now == NULL || g_strcmp0 (now->task_id, e->task_id) == 0
      || (now->task_id == NULL && now->state != GROK_IMAGINE_ENTRY_SUBMITTING))
    g_hash_table_replace (table, g_strdup (job->table_key), entry_copy (e));
  g_cond_broadcast (&table_cond);
  g_mutex_unlock (&table_lock);
}

/* --- records ---------------------------------------------------------------- */

static void
warn (GrokImagineJob * job, const gchar * format, ...) G_GNUC_PRINTF (2, 3);

static void
warn (GrokImagineJob * job, const gchar * format, ...)
{
  g_autofree gchar *text = NULL;
  va_list args;

  va_start (args, format);
  text = g_strdup_vprintf (format, args);
  va_end (args);
  job->notify (GROK_IMAGINE_JOB_WARNING, job->task_id, NULL, text,
      job->user_data);
}

static void
journal_write (GrokImagineJob * job, const GrokImagineEntry * e)
{
  g_autoptr (GError) err = NULL;

  if (!grok_imagine_journal_write (job->journal, e, &err))
    warn (job, "Cannot record %s in the journal: %s", e->task_id ?
        e->task_id : "the submit", err->message);
}

/* How long a record waits for a journal lock that another process holds:
 * until a stop, and once stopped one try only */
static gint64
lock_deadline (GrokImagineJob * job)
{
  return g_get_monotonic_time () + (g_cancellable_is_cancelled (job->stopped)
      ? 0 : RECORD_LOCK_WAIT);
}

/* A stop ended a wait for a lock: what was to be written is kept for one
 * more try when the job is freed */
static gboolean
kept_for_later (GrokImagineJob * job, const GError * err)
{
  return g_cancellable_is_cancelled (job->stopped)
      && (g_error_matches (err, G_IO_ERROR, G_IO_ERROR_CANCELLED)
      || g_error_matches (err, G_IO_ERROR, G_IO_ERROR_TIMED_OUT));
}

static gboolean
record_in_journal (GrokImagineJob * job, const GrokImagineEntry * e,
    GError ** error)
{
  g_autoptr (GrokImagineEntry) now = NULL;

  if (!grok_imagine_journal_lock (job->journal, lock_deadline (job),
          job->stopped, error))
    return FALSE;
  now = grok_imagine_journal_read (job->journal, NULL);
  if (now && now->state == GROK_IMAGINE_ENTRY_COMPLETED
      && e->state == GROK_IMAGINE_ENTRY_COMPLETED
      && g_strcmp0 (now->task_id, e->task_id) == 0
      && g_strv_length (now->result_urls) == g_strv_length (e->result_urls)) {
    /* fresh URLs; the results stored so far stay */
    g_strfreev (now->result_urls);
    now->result_urls = g_strdupv (e->result_urls);
    journal_write (job, now);
  } else if (now == NULL || now->task_id == NULL
      || g_strcmp0 (now->task_id, e->task_id) == 0) {
    journal_write (job, e);
  }
  grok_imagine_journal_unlock (job->journal);
  return TRUE;
}

/* Records what became of our task, in the table and (under its lock) in
 * the journal, unless another run has put another task there since. While
 * the ledger's correction waits for a later try, so does the end of the
 * task: an entry that still shows the task running makes the next run ask
 * the API again, and correct both. */
static void
record (GrokImagineJob * job, const GrokImagineEntry * e)
{
  g_autoptr (GError) err = NULL;

  table_record (job, e);
  if (job->journal == NULL)
    return;
  if (job->unsettled < 0 && record_in_journal (job, e, &err))
    return;
  if (err == NULL || kept_for_later (job, err)) {
    grok_imagine_entry_free (job->unrecorded);
    job->unrecorded = entry_copy (e);
    return;
  }
  warn (job, "Cannot record task %s in the journal: %s", e->task_id,
      err->message);
}

static gchar *
format_time (gint64 unix_us)
{
  g_autoptr (GDateTime) t = g_date_time_new_from_unix_utc (unix_us /
      G_USEC_PER_SEC);

  return t ? g_date_time_format (t, "%Y-%m-%d %H:%M:%S UTC") :
      g_strdup ("an unknown time");
}

/* An entry of our task, with what a person needs to recognise it */
static GrokImagineEntry *
new_entry (GrokImagineJob * job, GrokImagineEntryState state)
{
  GrokImagineEntry *e = g_new0 (GrokImagineEntry, 1);
  const gchar *prompt = job->req->prompt;

  e->state = state;
  e->task_id = g_strdup (job->task_id);
  e->api = g_strdup (grok_imagine_api_get_nick (job->req->api));
  if (job->req->api == GROK_IMAGINE_API_GROK5)
    e->model = g_strdup (grok_imagine_model_get_nick (job->req->model));
  if (prompt)
    e->prompt = g_utf8_validate (prompt, -1, NULL) ?
        g_utf8_substring (prompt, 0, MIN (g_utf8_strlen (prompt, -1),
            GROK_IMAGINE_ENTRY_PROMPT_START)) : NULL;
  e->credits = job->credits;
  e->submitted_at = job->submitted_at;
  grok_imagine_entry_set_result_urls (e, NULL);
  return e;
}

/* --- the credit cap --------------------------------------------------------- */

/* Before the POST: charges its price to the ledger (or the owner's count),
 * unless that would pass max-credits */
static gboolean
charge (GrokImagineJob * job, GCancellable * cancellable, GError ** error)
{
  gint64 price = grok_imagine_request_price (job->req), total = 0;
  g_autoptr (GError) err = NULL;
  gboolean charged = FALSE;

  if (job->journal == NULL) {
    total = *job->spent;
    charged = job->max_credits == 0
        || (guint64) (total + price) <= job->max_credits;
    if (charged) {
      *job->spent += price;
      job->charged = TRUE;
    }
  } else if (!grok_imagine_journal_charge (job->journal, price,
          job->max_credits, job->deadline, cancellable, &total, &charged,
          &err)) {
    if (job->max_credits == 0 && !g_error_matches (err, G_IO_ERROR,
            G_IO_ERROR_CANCELLED)) {
      /* no cap to keep: the ledger is only a record */
      warn (job, "Cannot count the job's %" G_GINT64_FORMAT " credits in the "
          "ledger: %s", price, err->message);
      return TRUE;
    }
    g_propagate_prefixed_error (error, g_steal_pointer (&err), "Not "
        "submitted, as max-credits cannot be checked: ");
    return FALSE;
  }
  if (!charged) {
    g_set_error (error, GROK_IMAGINE_ERROR, GROK_IMAGINE_ERROR_CREDIT_CAP,
        "Not submitted: this job costs %" G_GINT64_FORMAT " credits and %s "
        "already counts %" G_GINT64_FORMAT ", which would pass max-credits=%"
        G_GUINT64_FORMAT ". Nothing was sent. Raise max-credits to go on%s.",
        price, job->journal ? "the ledger of the cache folder" :
        "this element's earlier jobs", total, job->max_credits,
        job->journal ? ", or look at what was paid for with "
        "grokimagine-journal list" : "");
    return FALSE;
  }
  job->credits = price;
  return TRUE;
}

/* The POST certainly did not take the job: its price goes back */
static void
uncharge (GrokImagineJob * job)
{
  g_autoptr (GError) err = NULL;
  gint64 total;

  if (job->credits < 0)
    return;
  if (job->journal == NULL && job->charged)
    *job->spent -= job->credits;
  else if (job->journal && !grok_imagine_journal_credit (job->journal,
          -job->credits, lock_deadline (job), job->stopped, &total, &err)) {
    if (kept_for_later (job, err))
      job->unrefunded += job->credits;
    else
      warn (job, "Cannot take the unsent job's credits off the ledger: %s",
          err->message);
  }
  job->charged = FALSE;
  job->credits = -1;
}

/* The journal's entry of our task and the ledger take @cost instead of
 * what the entry counted (unless another run corrected it already) */
static gboolean
settle_ledger (GrokImagineJob * job, gint64 cost, GError ** error)
{
  g_autoptr (GrokImagineEntry) now = NULL;
  gint64 total;

  if (!grok_imagine_journal_lock (job->journal, lock_deadline (job),
          job->stopped, error))
    return FALSE;
  now = grok_imagine_journal_read (job->journal, NULL);
  if (now && g_strcmp0 (now->task_id, job->task_id) == 0
      && now->credits >= 0 && now->credits != cost) {
    if (!grok_imagine_journal_credit (job->journal, cost - now->credits,
            lock_deadline (job), job->stopped, &total, error)) {
      grok_imagine_journal_unlock (job->journal);
      return FALSE;
    }
    now->credits = cost;
    journal_write (job, now);
  }
  grok_imagine_journal_unlock (job->journal);
  return TRUE;
}

/* The task ended: the ledger (or the owner's count) takes what the API
 * reports it cost instead of the price: 0 for a failed grok5imagine task,
 * which is refunded */
static void
settle (GrokImagineJob * job, const GrokImagineStatus * st)
{
  gint64 cost = st->consumed_credits;

  if (cost < 0 && st->state == GROK_IMAGINE_STATE_FAILED
      && job->req->api == GROK_IMAGINE_API_GROK5)
    cost = 0;
  /* no report, or a task that is not counted (given by id, or recorded
   * before there was a ledger) */
  if (cost < 0 || job->credits < 0 || cost == job->credits)
    return;
  if (job->journal) {
    g_autoptr (GError) err = NULL;

    if (!settle_ledger (job, cost, &err)) {
      if (!kept_for_later (job, err)) {
        warn (job, "Cannot correct the ledger for task %s: %s",
            job->task_id, err->message);
      } else {
        /* the entry keeps what the ledger counts until then */
        job->unsettled = cost;
        return;
      }
    }
  } else if (job->charged) {
    *job->spent += cost - job->credits;
  }
  job->credits = cost;
}

/* --- the paid POST ---------------------------------------------------------- */

/* From the client, in the streaming thread */
static void
post_progressed (gboolean in_flight, gpointer data)
{
  GrokImagineJob *job = data;

  g_mutex_lock (&job->lock);
  job->left = in_flight;
  if (!in_flight && (job->cancel_asked || job->stopping))
    g_cancellable_cancel (job->post);
  g_cond_broadcast (&job->cond);
  g_mutex_unlock (&job->lock);
}

/* unlock() of the element, from any thread: only a POST of which nothing
 * has left is cancelled */
static void
post_cancel_asked (GCancellable * cancellable, GrokImagineJob * job)
{
  g_mutex_lock (&job->lock);
  job->cancel_asked = TRUE;
  if (!job->left)
    g_cancellable_cancel (job->post);
  g_mutex_unlock (&job->lock);
}

/* Whether @err is the deadline's cancellation of a request or wait, not
 * the caller's */
static gboolean
deadline_cancelled (GrokImagineAlarm * alarm, GCancellable * cancellable,
    const GError * err)
{
  return grok_imagine_alarm_rang (alarm)
      && !g_cancellable_is_cancelled (cancellable)
      && g_error_matches (err, G_IO_ERROR, G_IO_ERROR_CANCELLED);
}

/* The POST, which the deadline ends too: then *expired is set, and even a
 * POST that has left is abandoned, its answer lost */
static gchar *
guarded_submit (GrokImagineJob * job, GCancellable * cancellable,
    gboolean * left, gboolean * expired, GError ** error)
{
  g_autoptr (GrokImagineAlarm) alarm = grok_imagine_alarm_new (job->deadline +
      DEADLINE_GRACE, NULL);
  gchar *task_id;
  gulong id;

  g_mutex_lock (&job->lock);
  g_clear_object (&job->post);
  job->post = g_object_ref (grok_imagine_alarm_get_cancellable (alarm));
  job->posting = TRUE;
  job->left = FALSE;
  job->cancel_asked = FALSE;
  if (job->stopping)
    g_cancellable_cancel (job->post);
  g_mutex_unlock (&job->lock);

  id = g_cancellable_connect (cancellable, G_CALLBACK (post_cancel_asked),
      job, NULL);
  task_id = grok_imagine_client_submit (job->client, job->req, job->deadline,
      post_progressed, job, job->post, &job->http_status, error);
  g_cancellable_disconnect (cancellable, id);

  g_mutex_lock (&job->lock);
  job->posting = FALSE;
  *left = job->left;
  *expired = task_id == NULL && deadline_cancelled (alarm, cancellable,
      *error);
  g_free (job->posted_task_id);
  job->posted_task_id = g_strdup (task_id);
  g_cond_broadcast (&job->cond);
  g_mutex_unlock (&job->lock);
  return task_id;
}

gchar *
grok_imagine_job_stop (GrokImagineJob * job, gint64 wait_us)
{
  gint64 end = g_get_monotonic_time () + wait_us;
  gboolean waited = FALSE;
  gchar *task_id = NULL;

  g_cancellable_cancel (job->stopped);
  g_mutex_lock (&job->lock);
  job->stopping = TRUE;
  while (job->posting && job->left) {
    waited = TRUE;
    if (!g_cond_wait_until (&job->cond, &job->lock, end))
      break;
  }
  if (job->posting)
    g_cancellable_cancel (job->post);
  else if (waited)
    task_id = g_strdup (job->posted_task_id);
  g_mutex_unlock (&job->lock);
  return task_id;
}

/* Under the journal's lock when there is one. @previous: the journal's
 * entry, put back when the server certainly did not take the job */
static gboolean
submit (GrokImagineJob * job, const GrokImagineEntry * previous,
    GCancellable * cancellable, const gchar ** doing, GError ** error)
{
  g_autoptr (GrokImagineEntry) e = NULL;
  g_autoptr (GError) err = NULL;
  g_autofree gchar *task_id = NULL;
  gboolean left = FALSE, expired = FALSE;

  *doing = "submitting the job";
  if (!charge (job, cancellable, error)) {
    table_set (job, NULL);
    *doing = NULL;
    return FALSE;
  }
  job->submitted_at = g_get_real_time ();
  e = new_entry (job, GROK_IMAGINE_ENTRY_SUBMITTING);
  /* a trace before the POST, so that even a kill during it is known */
  if (job->journal && !grok_imagine_journal_write (job->journal, e, &err)) {
    /* its code kept: a full disk is told as one */
    g_set_error (error, G_IO_ERROR, err->domain == G_IO_ERROR ? err->code :
        G_IO_ERROR_FAILED, "Cannot record the submit in the journal, so the "
        "job was not sent: %s", err->message);
    uncharge (job);
    table_set (job, NULL);
    return FALSE;
  }

  job->notify (GROK_IMAGINE_JOB_SUBMITTING, NULL, NULL, NULL,
      job->user_data);
  task_id = guarded_submit (job, cancellable, &left, &expired, &err);
  if (task_id) {
    e->state = GROK_IMAGINE_ENTRY_SUBMITTED;
    e->task_id = g_strdup (task_id);
    job->task_id = g_steal_pointer (&task_id);
    if (job->journal)
      journal_write (job, e);
    table_set (job, e);
    job->notify (GROK_IMAGINE_JOB_SUBMITTED, job->task_id, NULL, NULL,
        job->user_data);
    return TRUE;
  }

  if (left) {
    /* Neither API has an idempotency key: never send the POST again */
    e->state = GROK_IMAGINE_ENTRY_IN_DOUBT;
    if (job->journal)
      journal_write (job, e);
    table_set (job, e);
    if (expired)
      g_set_error (error, GROK_IMAGINE_ERROR, GROK_IMAGINE_ERROR_TIMEOUT,
          "The job may have been accepted and credits charged, but no answer "
          "to its submit came within the timeout of %u s. It is not "
          "submitted again. " HOW_TO_GO_ON, job->timeout);
    else
      g_set_error (error, GROK_IMAGINE_ERROR, GROK_IMAGINE_ERROR_NETWORK,
          "The job may have been accepted and credits charged, but the "
          "answer to its submit was lost (%s). It is not submitted again. "
          HOW_TO_GO_ON, err->message);
    *doing = NULL;
    return FALSE;
  }

  /* the server certainly did not take it */
  uncharge (job);
  if (job->journal && previous)
    journal_write (job, previous);
  else if (job->journal)
    grok_imagine_journal_remove (job->journal, NULL);
  table_set (job, NULL);
  if (expired) {
    g_clear_error (&err);
    g_set_error (&err, GROK_IMAGINE_ERROR, GROK_IMAGINE_ERROR_TIMEOUT,
        "the timeout of %u s ran out before the request could be sent to "
        "%s, so nothing was charged", job->timeout,
        grok_imagine_client_get_host (job->client));
  }
  if (g_error_matches (err, GROK_IMAGINE_ERROR, GROK_IMAGINE_ERROR_TIMEOUT))
    g_prefix_error (&err, "The job was not submitted: ");
  g_propagate_error (error, g_steal_pointer (&err));
  return FALSE;
}

/* --- what the request already has ------------------------------------------- */

static gboolean
out_of_range (GrokImagineJob * job, gchar ** urls, GError ** error)
{
  guint n = g_strv_length (urls);

  if (job->result_index < n)
    return FALSE;
  g_set_error (error, GROK_IMAGINE_ERROR, GROK_IMAGINE_ERROR_SETTINGS,
      "result-index is %u but task %s has %u result%s (0 to %u)",
      job->result_index, job->task_id, n, n == 1 ? "" : "s", n - 1);
  return TRUE;
}

/* Follows @earlier, a task of this request in the table or the journal */
static gboolean
follow (GrokImagineJob * job, const GrokImagineEntry * earlier,
    const GrokImagineEntry * stored, const gchar ** doing, GError ** error)
{
  const gchar *where = earlier != stored ? "this process" : job->legacy ?
      "an entry of an earlier version in the journal" : "the journal";

  job->task_id = g_strdup (earlier->task_id);
  job->credits = earlier->credits;
  job->submitted_at = earlier->submitted_at;
  if (earlier->state == GROK_IMAGINE_ENTRY_COMPLETED) {
    if (out_of_range (job, earlier->result_urls, error)) {
      *doing = NULL;
      return FALSE;
    }
    /* an entry of an earlier version may be another account's: its
     * stored result waits until the API shows the task to this key */
    if (earlier == stored && !job->legacy)
      job->stored_size = grok_imagine_journal_stored_size (job->journal,
          stored, job->result_index);
    if (job->stored_size) {
      grok_imagine_journal_touch_result (job->journal, job->result_index);
      job->result_urls = g_strdupv (earlier->result_urls);
      job->notify (GROK_IMAGINE_JOB_CACHED, job->task_id, NULL, NULL,
          job->user_data);
      return TRUE;
    }
  }
  job->notify (GROK_IMAGINE_JOB_REATTACHED, job->task_id, NULL, where,
      job->user_data);
  return TRUE;
}

static void
set_unusable (GrokImagineJournal * j, const GError * err, GError ** error)
{
  g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "The journal "
      "entry %s cannot be used: %s. Nothing was submitted, as that could "
      "pay for this request again: set refresh=true to pay for a new "
      "job, or remove the file.", grok_imagine_journal_get_entry_path (j),
      err->message);
}

/* The entry of this request that a version before accounts were told
 * apart wrote (no lock: it is replaced by a rename, and only this version
 * removes it, under the lock of our own entry); NULL with an error when
 * it is damaged */
static GrokImagineEntry *
read_legacy (GrokImagineJob * job, GError ** error)
{
  g_autoptr (GrokImagineJournal) old = NULL;
  g_autoptr (GError) err = NULL;
  GrokImagineEntry *e;

  old = grok_imagine_journal_open (grok_imagine_journal_get_dir
      (job->journal), job->legacy_key, error);
  if (old == NULL)
    return NULL;
  e = grok_imagine_journal_read (old, &err);
  if (err)
    set_unusable (old, err, error);
  return e;
}

/* Serves the stored result, follows the task this request already has, or
 * submits it. Two elements of a process share one POST through the table,
 * two processes through the journal's lock. An entry of an earlier version
 * (keyed without the account) is honoured by every account: one in doubt
 * is never submitted again, and the task of one is asked for with this key
 * before its stored result is served. */
static gboolean
decide (GrokImagineJob * job, GCancellable * cancellable,
    const gchar ** doing, GError ** error)
{
  g_autoptr (GrokImagineEntry) known = NULL, stored = NULL;
  g_autoptr (GError) err = NULL, unusable = NULL;
  const GrokImagineEntry *earlier;
  gboolean ok;

  *doing = "waiting for the same request of another element";
  if (!table_claim (job, cancellable, &known, error))
    return FALSE;
  if (job->journal) {
    *doing = "waiting for the journal lock";
    if (!grok_imagine_journal_lock (job->journal, job->deadline, cancellable,
            error)) {
      table_set (job, NULL);
      return FALSE;
    }
    stored = grok_imagine_journal_read (job->journal, &err);
    if (err && !job->refresh)
      set_unusable (job->journal, err, &unusable);
    else if (stored == NULL && err == NULL && !job->refresh
        && (stored = read_legacy (job, &unusable)))
      job->legacy = TRUE;
    if (unusable) {
      g_propagate_error (error, g_steal_pointer (&unusable));
      grok_imagine_journal_unlock (job->journal);
      table_set (job, NULL);
      *doing = NULL;
      return FALSE;
    }
  }

  /* the journal, unless only the table knows the task */
  earlier = stored;
  if (known && (stored == NULL || (known->task_id && stored->task_id == NULL)))
    earlier = known;
  if (earlier != stored)
    job->legacy = FALSE;

  if (job->refresh || earlier == NULL
      || earlier->state == GROK_IMAGINE_ENTRY_FAILED) {
    if (earlier && !job->refresh) {
      g_autofree gchar *text = g_strdup_printf ("The earlier task %s of this "
          "request failed (%s): submitting it anew.", earlier->task_id,
          earlier->error_message ? earlier->error_message : "no message");

      job->notify (GROK_IMAGINE_JOB_RESUBMITTING, NULL, NULL, text,
          job->user_data);
    }
    /* our own entry, not the earlier version's */
    if (job->legacy)
      g_clear_pointer (&stored, grok_imagine_entry_free);
    job->legacy = FALSE;
    ok = submit (job, stored, cancellable, doing, error);
  } else if (earlier->task_id == NULL) {
    g_autofree gchar *when = format_time (earlier->submitted_at);

    g_set_error (error, GROK_IMAGINE_ERROR, GROK_IMAGINE_ERROR_NETWORK,
        "This request was submitted at %s and no answer arrived: the job "
        "may have been accepted and credits charged, so it is not submitted "
        "again. " HOW_TO_GO_ON, when);
    *doing = NULL;
    table_set (job, earlier);
    ok = FALSE;
  } else {
    ok = follow (job, earlier, stored, doing, error);
    if (job->journal && earlier != stored)
      journal_write (job, earlier);
    table_set (job, earlier);
  }
  if (job->journal)
    grok_imagine_journal_unlock (job->journal);
  return ok;
}

/* --- following the task ----------------------------------------------------- */

/* The API answered for the task of an entry of an earlier version with this
 * key: the entry, and the results stored with it, become this account's */
static void
adopt (GrokImagineJob * job)
{
  g_autoptr (GError) err = NULL;

  job->legacy = FALSE;
  if (!grok_imagine_journal_adopt (job->journal, job->legacy_key,
          job->task_id, lock_deadline (job), job->stopped, &job->adopted,
          &err))
    warn (job, "Cannot move task %s from the journal entry of an earlier "
        "version to this account's entry: %s", job->task_id, err->message);
}

static gboolean
completed (GrokImagineJob * job, const GrokImagineStatus * st,
    const gchar ** doing, GError ** error)
{
  g_autoptr (GrokImagineEntry) e = NULL;

  if (st->result_urls[0] == NULL) {
    g_set_error (error, GROK_IMAGINE_ERROR, GROK_IMAGINE_ERROR_PROTOCOL,
        "task %s completed without any result URL", job->task_id);
    *doing = "reading the result";
    return FALSE;
  }

  e = new_entry (job, GROK_IMAGINE_ENTRY_COMPLETED);
  grok_imagine_entry_set_result_urls (e, st->result_urls);
  record (job, e);
  if (out_of_range (job, st->result_urls, error)) {
    *doing = NULL;
    return FALSE;
  }
  job->result_urls = g_strdupv (st->result_urls);
  if (job->adopted) {
    g_autoptr (GrokImagineEntry) now = grok_imagine_journal_read
        (job->journal, NULL);

    if (now && g_strcmp0 (now->task_id, job->task_id) == 0)
      job->stored_size = grok_imagine_journal_stored_size (job->journal, now,
          job->result_index);
  }
  return TRUE;
}

static gboolean
failed (GrokImagineJob * job, const GrokImagineStatus * st,
    const gchar ** doing, GError ** error)
{
  g_autoptr (GrokImagineEntry) e = new_entry (job,
      GROK_IMAGINE_ENTRY_FAILED);
  const gchar *message = st->error_message ? st->error_message :
      st->raw_status;

  e->error_message = g_strdup (message);
  record (job, e);
  g_set_error (error, GROK_IMAGINE_ERROR, GROK_IMAGINE_ERROR_TASK_FAILED,
      "Video generation failed for task %s: %s", job->task_id, message);
  *doing = "generating";
  return FALSE;
}

static gboolean
timed_out (GrokImagineJob * job, const GError * cause, const gchar ** doing,
    GError ** error)
{
  g_set_error (error, GROK_IMAGINE_ERROR, GROK_IMAGINE_ERROR_TIMEOUT,
      "Task %s did not finish within the timeout of %u s (last status "
      "'%s'%s%s). It may still complete: set task-id=%s to reattach without "
      "paying again.", job->task_id, job->timeout,
      job->last_raw_status ? job->last_raw_status : "unknown",
      cause ? "; " : "", cause ? cause->message : "", job->task_id);
  *doing = "waiting";
  return FALSE;
}

/* The deadline also ends a status request in flight, however long the
 * server takes to answer */
static gboolean
poll_until_done (GrokImagineJob * job, GCancellable * cancellable,
    const gchar ** doing, GError ** error)
{
  g_autoptr (GrokImagineAlarm) alarm = grok_imagine_alarm_new (job->deadline +
      DEADLINE_GRACE, cancellable);
  GCancellable *bounded = grok_imagine_alarm_get_cancellable (alarm);

  for (;;) {
    g_autoptr (GrokImagineStatus) st = NULL;
    g_autoptr (GError) err = NULL;
    gint64 now;

    *doing = "checking the task status";
    st = grok_imagine_client_poll (job->client, job->task_id, job->deadline,
        bounded, &job->http_status, &err);
    if (st == NULL && deadline_cancelled (alarm, cancellable, err)) {
      g_clear_error (&err);
      g_set_error_literal (&err, GROK_IMAGINE_ERROR,
          GROK_IMAGINE_ERROR_TIMEOUT, "a status request was still waiting "
          "for its answer");
    }
    if (st == NULL && g_error_matches (err, GROK_IMAGINE_ERROR,
            GROK_IMAGINE_ERROR_TIMEOUT))
      return timed_out (job, err, doing, error);
    if (st == NULL) {
      if (job->legacy && g_error_matches (err, GROK_IMAGINE_ERROR,
              GROK_IMAGINE_ERROR_NOT_FOUND)) {
        g_prefix_error (&err, "The journal entry of this request was written "
            "by an earlier version, which did not note the account, and its "
            "task %s cannot be asked for with this key: it may be another "
            "account's (grokimagine-journal forget drops it). ",
            job->task_id);
        *doing = NULL;
      }
      g_propagate_error (error, g_steal_pointer (&err));
      return FALSE;
    }
    if (job->legacy)
      adopt (job);

    g_free (job->last_raw_status);
    job->last_raw_status = g_strdup (st->raw_status);
    /* before the notify, whose message carries the ledger's total */
    if (st->state != GROK_IMAGINE_STATE_PENDING)
      settle (job, st);
    job->notify (GROK_IMAGINE_JOB_STATUS, job->task_id, st, NULL,
        job->user_data);
    if (st->state == GROK_IMAGINE_STATE_COMPLETED)
      return completed (job, st, doing, error);
    if (st->state == GROK_IMAGINE_STATE_FAILED)
      return failed (job, st, doing, error);

    now = g_get_monotonic_time ();
    if (now >= job->deadline)
      return timed_out (job, NULL, doing, error);
    if (!grok_imagine_wait (MIN (job->poll_interval *
                G_TIME_SPAN_MILLISECOND, job->deadline - now), bounded,
            &err)) {
      if (deadline_cancelled (alarm, cancellable, err))
        return timed_out (job, NULL, doing, error);
      g_propagate_error (error, g_steal_pointer (&err));
      return FALSE;
    }
  }
}

gboolean
grok_imagine_job_run (GrokImagineJob * job, GCancellable * cancellable,
    const gchar ** doing, GError ** error)
{
  const gchar *unused;

  if (doing == NULL)
    doing = &unused;
  *doing = NULL;
  /* a flush interrupts the job; the deadline stays that of the first try */
  if (job->deadline == 0)
    job->deadline = g_get_monotonic_time () +
        job->timeout * G_TIME_SPAN_SECOND;
  if (!job->decided && job->given_task_id) {
    job->task_id = g_strdup (job->given_task_id);
    job->decided = TRUE;
    job->notify (GROK_IMAGINE_JOB_REATTACHED, job->task_id, NULL, "task-id",
        job->user_data);
  }
  if (!job->decided) {
    if (!decide (job, cancellable, doing, error))
      return FALSE;
    job->decided = TRUE;
  }
  if (job->stored_size || job->result_urls)
    return TRUE;
  /* a seek during the POST: its task is recorded, now the seek goes on */
  if (g_cancellable_set_error_if_cancelled (cancellable, error))
    return FALSE;
  return poll_until_done (job, cancellable, doing, error);
}

/* --- the job ---------------------------------------------------------------- */

/* What a stop kept from the journal: one more try (it does not wait), then
 * a warning that says what the journal and its ledger lack */
static void
finish_records (GrokImagineJob * job)
{
  g_autoptr (GError) err = NULL;
  gint64 total;

  if (job->unstored && !grok_imagine_journal_commit_result (job->journal,
          job->result_index, job->task_id, job->unstored, lock_deadline (job),
          job->stopped, &job->stored_size, &err)) {
    warn (job, "Stopped before the result of task %s could be stored in the "
        "cache folder (%s): the next run downloads it again.", job->task_id,
        err->message);
    g_unlink (job->unstored);
    g_clear_error (&err);
  }
  if (job->unrefunded && !grok_imagine_journal_credit (job->journal,
          -job->unrefunded, lock_deadline (job), job->stopped, &total, &err)) {
    warn (job, "Stopped before the ledger of the cache folder could give "
        "back the %" G_GINT64_FORMAT " credits of a job that was never sent "
        "(%s): max-credits counts them as spent.", job->unrefunded,
        err->message);
    g_clear_error (&err);
  }
  if (job->unsettled >= 0) {
    if (!settle_ledger (job, job->unsettled, &err)) {
      warn (job, "Stopped before the end of task %s was recorded: the ledger "
          "of the cache folder counts %" G_GINT64_FORMAT " credits for it, "
          "the API reported %" G_GINT64_FORMAT " (%s). The next run of this "
          "request asks the API again and corrects it.", job->task_id,
          job->credits, job->unsettled, err->message);
      return;
    }
    job->credits = job->unsettled;
    if (job->unrecorded)
      job->unrecorded->credits = job->credits;
    job->unsettled = -1;
  }
  if (job->unrecorded && !record_in_journal (job, job->unrecorded, &err))
    warn (job, "Stopped before the end of task %s was recorded in the "
        "journal (%s): the next run of this request asks the API again.",
        job->task_id, err->message);
}

GrokImagineJob *
grok_imagine_job_new (GrokImagineClient * client,
    const GrokImagineJobSettings * s, GrokImagineJobNotify notify,
    gpointer user_data, GError ** error)
{
  g_autoptr (GrokImagineJob) job = g_new0 (GrokImagineJob, 1);
  g_autofree gchar *json = grok_imagine_request_to_json (s->req);
  g_autofree gchar *account = NULL;

  g_mutex_init (&job->lock);
  g_cond_init (&job->cond);
  job->client = client;
  job->req = s->req;
  job->given_task_id = g_strdup (s->task_id);
  job->result_index = s->result_index;
  job->poll_interval = s->poll_interval;
  job->timeout = s->timeout;
  job->refresh = s->refresh;
  job->max_credits = s->max_credits;
  job->spent = s->spent ? s->spent : &job->own_spent;
  job->cache_max_size = s->cache_max_size;
  job->credits = -1;
  job->unsettled = -1;
  job->notify = notify;
  job->user_data = user_data;
  job->stopped = g_cancellable_new ();
  account = grok_imagine_journal_account (s->api_key,
      grok_imagine_client_get_base_url (client));
  job->key = grok_imagine_journal_key (grok_imagine_api_get_nick
      (s->req->api), grok_imagine_client_get_base_url (client), json,
      account);
  job->legacy_key = grok_imagine_journal_key (grok_imagine_api_get_nick
      (s->req->api), grok_imagine_client_get_base_url (client), json, NULL);
  job->table_key = s->share ? g_strdup_printf ("%s/%s", job->key, account) :
      g_strdup_printf ("%s/%s#%" G_GUINT64_FORMAT, job->key, account,
      s->owner);

  /* a task given by id needs no journal */
  if (s->task_id == NULL && s->cache_dir && *s->cache_dir) {
    job->journal = grok_imagine_journal_open (s->cache_dir, job->key, error);
    if (job->journal == NULL)
      return NULL;
    grok_imagine_journal_set_account (job->journal, s->api_key,
        grok_imagine_client_get_base_url (client));
  }
  return g_steal_pointer (&job);
}

void
grok_imagine_job_free (GrokImagineJob * job)
{
  if (job == NULL)
    return;
  if (job->claimed)
    table_set (job, NULL);
  if (job->journal)
    finish_records (job);
  g_clear_pointer (&job->journal, grok_imagine_journal_free);
  g_clear_object (&job->stopped);
  grok_imagine_entry_free (job->unrecorded);
  g_free (job->unstored);
  g_free (job->given_task_id);
  g_free (job->key);
  g_free (job->legacy_key);
  g_free (job->table_key);
  g_free (job->task_id);
  g_strfreev (job->result_urls);
  g_free (job->last_raw_status);
  g_clear_object (&job->post);
  g_free (job->posted_task_id);
  g_mutex_clear (&job->lock);
  g_cond_clear (&job->cond);
  g_free (job);
}

const gchar *
grok_imagine_job_get_task_id (GrokImagineJob * job)
{
  return job->task_id;
}

guint
grok_imagine_job_get_http_status (GrokImagineJob * job)
{
  return job->http_status;
}

gchar **
grok_imagine_job_get_result_urls (GrokImagineJob * job)
{
  return job->result_urls;
}

const gchar *
grok_imagine_job_get_result_url (GrokImagineJob * job)
{
  return job->result_urls ? job->result_urls[job->result_index] : NULL;
}

gboolean
grok_imagine_job_has_journal (GrokImagineJob * job)
{
  return job->journal != NULL;
}

gchar *
grok_imagine_job_get_stored_result (GrokImagineJob * job, guint64 * size)
{
  if (job->journal == NULL || job->stored_size == 0)
    return NULL;
  *size = job->stored_size;
  return grok_imagine_journal_get_result_path (job->journal,
      job->result_index);
}

GOutputStream *
grok_imagine_job_create_result (GrokImagineJob * job, gchar ** tmp_path,
    GError ** error)
{
  return grok_imagine_journal_create_result (job->journal, job->result_index,
      tmp_path, error);
}

gboolean
grok_imagine_job_commit_result (GrokImagineJob * job, const gchar * tmp_path,
    guint64 * size, GError ** error)
{
  g_autoptr (GError) err = NULL;

  if (!grok_imagine_journal_commit_result (job->journal, job->result_index,
          job->task_id, tmp_path, lock_deadline (job), job->stopped,
          &job->stored_size, &err)) {
    if (kept_for_later (job, err) && g_file_test (tmp_path,
            G_FILE_TEST_EXISTS)) {
      g_free (job->unstored);
      job->unstored = g_strdup (tmp_path);
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_CANCELLED, "Stopped while "
          "another process held the journal lock: the result is stored when "
          "the job ends, if the lock is free by then");
      return FALSE;
    }
    /* a lock not had leaves the file */
    g_unlink (tmp_path);
    g_propagate_error (error, g_steal_pointer (&err));
    return FALSE;
  }
  *size = job->stored_size;
  if (!grok_imagine_journal_evict (job->journal, job->cache_max_size,
          job->result_index, job->stopped, &err))
    warn (job, "Cannot keep the cache folder under cache-max-size: %s",
        err->message);
  return TRUE;
}

gint64
grok_imagine_job_get_ledger_credits (GrokImagineJob * job)
{
  gint64 total;

  if (job->journal == NULL)
    return -1;
  return grok_imagine_dir_read_ledger (grok_imagine_journal_get_dir
      (job->journal), &total, NULL) ? total : -1;
}
