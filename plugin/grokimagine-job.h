/* gst-grokimagine
 * Copyright (C) 2026 gst-grokimagine authors
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * One job: submit -> poll -> result. It owns every "never pay twice" rule:
 * the paid POST is never abandoned once any of it has left, but at the
 * job's deadline, a lost answer (also one the deadline cut off) leaves the
 * request "in doubt" (no automatic second POST), a process-wide
 * table and the journal (cache-dir) make the same request reattach to its
 * task, a failed task is submitted anew, a damaged journal entry is an
 * error. It keeps the credit cap (max-credits): the journal's ledger, or
 * without one the owner's own count, is charged the price before the POST
 * and corrected when the task ends. The only user of the journal and of
 * the task table.
 * No GStreamer types.
 */
#pragma once

#include "grokimagine-api.h"
#include "grokimagine-client.h"

G_BEGIN_DECLS

typedef enum
{
  GROK_IMAGINE_JOB_SUBMITTING,  /* the paid POST is about to be sent */
  GROK_IMAGINE_JOB_SUBMITTED,   /* @task_id: the POST's answer */
  GROK_IMAGINE_JOB_REATTACHED,  /* @task_id: an earlier task of this request;
                                 * @text says where it was found */
  GROK_IMAGINE_JOB_RESUBMITTING,        /* @text: why a new POST follows */
  GROK_IMAGINE_JOB_STATUS,      /* @status: a status poll's answer */
  GROK_IMAGINE_JOB_CACHED,      /* @task_id: the stored result is served */
  GROK_IMAGINE_JOB_WARNING,     /* @text: something the user should know */
} GrokImagineJobEvent;

/* Called from the thread that runs the job */
typedef void (*GrokImagineJobNotify) (GrokImagineJobEvent event,
    const gchar * task_id, const GrokImagineStatus * status,
    const gchar * text, gpointer user_data);

typedef struct
{
  const GrokImagineRequest *req;
  const gchar *task_id;         /* reattach to it: no POST, no journal */
  const gchar *cache_dir;       /* NULL: no journal */
  guint result_index;
  guint poll_interval;          /* ms */
  guint timeout;                /* s, from the first run to completion */
  gboolean refresh;             /* a new POST even when the request has a
                                 * task */
  gboolean share;               /* follow the tasks of other elements of the
                                 * process, and share a POST with them */
  guint64 owner;                /* without @share: whose tasks to follow */
  const gchar *api_key;         /* only hashed, for the task table: the tasks
                                 * of another account are never followed */
  guint64 max_credits;          /* 0: no cap */
  gint64 *spent;                /* without a journal: the credits the
                                 * owner's jobs were charged so far, kept
                                 * up to date by the job; NULL: this job's
                                 * own count */
  guint64 cache_max_size;       /* bytes of the journal folder; 0: any */
} GrokImagineJobSettings;

typedef struct _GrokImagineJob GrokImagineJob;

/* @client must outlive the job; @settings are copied */
GrokImagineJob *grok_imagine_job_new (GrokImagineClient * client,
    const GrokImagineJobSettings * settings, GrokImagineJobNotify notify,
    gpointer user_data, GError ** error);
void grok_imagine_job_free (GrokImagineJob * job);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (GrokImagineJob, grok_imagine_job_free);

/* Runs until the result is known (a stored file or a URL). Cancelling ends
 * waits and polls at once, and a POST of which nothing has left; a POST
 * that has started to leave is awaited and its task recorded first. The
 * deadline (timeout from the first run) ends any of them, a request still
 * in flight (a POST too) a second after it, with
 * GROK_IMAGINE_ERROR_TIMEOUT. May be called again after a
 * cancellation: it goes on where it stopped. On failure, *doing says what
 * failed ("submitting the job", ...) or is NULL when the error's message is
 * complete in itself. */
gboolean grok_imagine_job_run (GrokImagineJob * job,
    GCancellable * cancellable, const gchar ** doing, GError ** error);

/* From any thread, before a stop: waits at most @wait_us for a POST that
 * has started to leave, then abandons it. Returns the task id when such a
 * POST ended with one during the wait (free with g_free()), else NULL. */
gchar *grok_imagine_job_stop (GrokImagineJob * job, gint64 wait_us);

const gchar *grok_imagine_job_get_task_id (GrokImagineJob * job);
guint grok_imagine_job_get_http_status (GrokImagineJob * job);
/* After a successful run: all URLs of the task, and the chosen one */
gchar **grok_imagine_job_get_result_urls (GrokImagineJob * job);
const gchar *grok_imagine_job_get_result_url (GrokImagineJob * job);

/* With a journal: the credits its ledger counts, else -1 */
gint64 grok_imagine_job_get_ledger_credits (GrokImagineJob * job);

/* With a journal: the stored result of the chosen index. Committing it
 * evicts older results to keep the folder under cache_max_size. */
gboolean grok_imagine_job_has_journal (GrokImagineJob * job);
gchar *grok_imagine_job_get_stored_result (GrokImagineJob * job,
    guint64 * size);
GOutputStream *grok_imagine_job_create_result (GrokImagineJob * job,
    gchar ** tmp_path, GError ** error);
gboolean grok_imagine_job_commit_result (GrokImagineJob * job,
    const gchar * tmp_path, guint64 * size, GError ** error);

G_END_DECLS
