/* gst-grokimagine
 * Copyright (C) 2026 gst-grokimagine authors
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * The job journal: one entry per request in a cache folder, so that a
 * re-run reattaches to the task it already paid for, or serves a result it
 * already downloaded. An entry is one task with all its result URLs; each
 * result index is stored in a file of its own. Entries are written
 * atomically (one temporary file, then a rename); a lock file makes
 * concurrent processes share one POST. Only the job module uses it.
 * No GStreamer types.
 */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

typedef enum
{
  GROK_IMAGINE_ENTRY_SUBMITTING,        /* the POST is (or was) under way */
  GROK_IMAGINE_ENTRY_IN_DOUBT,          /* the POST's answer was lost */
  GROK_IMAGINE_ENTRY_SUBMITTED,         /* the task exists */
  GROK_IMAGINE_ENTRY_COMPLETED,         /* ... and has its result URLs */
  GROK_IMAGINE_ENTRY_FAILED,            /* ... and ended in failure */
} GrokImagineEntryState;

typedef struct
{
  GrokImagineEntryState state;
  gchar *task_id;               /* NULL while submitting or in doubt */
  gint64 submitted_at;          /* unix µs when the POST started; 0: unknown */
  gchar *error_message;         /* of a failed task */
  gchar **result_urls;          /* never NULL */
  guint64 *sizes;               /* one per result URL: the stored file's
                                 * size, 0 when not stored */
} GrokImagineEntry;

typedef struct _GrokImagineJournal GrokImagineJournal;

/* The key of a request: what is sent and where, never the API key nor the
 * result index (one entry serves every result of the task) */
gchar *grok_imagine_journal_key (const gchar * api, const gchar * base_url,
    const gchar * request_json);

/* Creates @dir if needed and removes the temporary files that processes
 * which no longer run left in it */
GrokImagineJournal *grok_imagine_journal_open (const gchar * dir,
    const gchar * key, GError ** error);
void grok_imagine_journal_free (GrokImagineJournal * journal);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (GrokImagineJournal, grok_imagine_journal_free);

const gchar *grok_imagine_journal_get_entry_path (GrokImagineJournal * j);
gchar *grok_imagine_journal_get_result_path (GrokImagineJournal * j,
    guint index);

/* Waits for the entry's lock, until @deadline (monotonic µs) */
gboolean grok_imagine_journal_lock (GrokImagineJournal * journal,
    gint64 deadline, GCancellable * cancellable, GError ** error);
void grok_imagine_journal_unlock (GrokImagineJournal * journal);

/* NULL without an error when there is no entry; NULL with a
 * G_IO_ERROR_INVALID_DATA error when it is damaged or of another version */
GrokImagineEntry *grok_imagine_journal_read (GrokImagineJournal * journal,
    GError ** error);
gboolean grok_imagine_journal_write (GrokImagineJournal * journal,
    const GrokImagineEntry * entry, GError ** error);
gboolean grok_imagine_journal_remove (GrokImagineJournal * journal,
    GError ** error);

/* Opens a new temporary file for result @index, beside its final place */
GOutputStream *grok_imagine_journal_create_result (GrokImagineJournal *
    journal, guint index, gchar ** tmp_path, GError ** error);
/* Moves the finished temporary file into place and records its size in the
 * entry (under the entry's lock). An empty file is refused and removed. */
gboolean grok_imagine_journal_commit_result (GrokImagineJournal * journal,
    guint index, const gchar * tmp_path, guint64 * size, GError ** error);
/* The size of stored result @index when its file is whole, else 0 */
guint64 grok_imagine_journal_stored_size (GrokImagineJournal * journal,
    const GrokImagineEntry * entry, guint index);

void grok_imagine_entry_set_result_urls (GrokImagineEntry * entry,
    gchar ** urls);
void grok_imagine_entry_free (GrokImagineEntry * entry);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (GrokImagineEntry, grok_imagine_entry_free);

G_END_DECLS
