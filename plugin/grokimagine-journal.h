/* gst-grokimagine
 * Copyright (C) 2026 gst-grokimagine authors
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * The job journal: one entry per request in a cache folder, so that a
 * re-run reattaches to the task it already paid for, or serves the result
 * it already downloaded. Entries are written atomically (a temporary file,
 * then a rename); a lock file makes concurrent processes share one POST.
 * No GStreamer types.
 */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

typedef struct
{
  gchar *task_id;
  gchar **result_urls;          /* never NULL */
  gboolean completed;
  guint64 size;                 /* of the stored result, when completed */
} GrokImagineEntry;

typedef struct _GrokImagineJournal GrokImagineJournal;

/* The key of a request: never made from the API key */
gchar *grok_imagine_journal_key (const gchar * api, const gchar * base_url,
    const gchar * request_json, guint result_index);

GrokImagineJournal *grok_imagine_journal_open (const gchar * dir,
    const gchar * key, GError ** error);
void grok_imagine_journal_free (GrokImagineJournal * journal);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (GrokImagineJournal, grok_imagine_journal_free);

const gchar *grok_imagine_journal_get_entry_path (GrokImagineJournal * j);
const gchar *grok_imagine_journal_get_result_path (GrokImagineJournal * j);

/* Waits for the entry's lock, until @deadline (monotonic µs) */
gboolean grok_imagine_journal_lock (GrokImagineJournal * journal,
    gint64 deadline, GCancellable * cancellable, GError ** error);
void grok_imagine_journal_unlock (GrokImagineJournal * journal);

/* NULL without an error when there is no entry; NULL with an error when the
 * entry is damaged */
GrokImagineEntry *grok_imagine_journal_read (GrokImagineJournal * journal,
    GError ** error);
gboolean grok_imagine_journal_write (GrokImagineJournal * journal,
    const GrokImagineEntry * entry, GError ** error);

/* Opens a new temporary file for the result, beside its final place */
GFileOutputStream *grok_imagine_journal_create_result (GrokImagineJournal *
    journal, gchar ** tmp_path, GError ** error);
/* Moves the finished temporary file into place and records it */
gboolean grok_imagine_journal_commit_result (GrokImagineJournal * journal,
    const gchar * tmp_path, GrokImagineEntry * entry, GError ** error);

void grok_imagine_entry_free (GrokImagineEntry * entry);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (GrokImagineEntry, grok_imagine_entry_free);

G_END_DECLS
