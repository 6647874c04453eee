/* gst-grokimagine
 * Copyright (C) 2026 gst-grokimagine authors
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * The job journal: one entry per request and account in a cache folder, so
 * that a re-run reattaches to the task it already paid for, or serves a
 * result it already downloaded. An entry is one task with all its result URLs; each
 * result index is stored in a file of its own. Entries are written
 * atomically (one temporary file, then a rename); a lock file makes
 * concurrent processes share one POST. The folder also keeps a ledger of
 * the credits its tasks were charged, under a folder-wide lock, and can
 * evict stored results to stay under a size. The job module and the
 * grokimagine-journal tool use it. No GStreamer types.
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
  /* what a person needs to recognise the task; NULL in older entries */
  gchar *api;                   /* "grokimagineapi" or "grok5imagine" */
  gchar *model;                 /* grok5imagine's model, else NULL */
  gchar *prompt;                /* the start of the prompt */
  gint64 credits;               /* what the ledger counts for this task:
                                 * the price at submit, then what the API
                                 * reported at its end; -1: not counted */
  gint64 updated_at;            /* unix µs of the last write, when read */
  /* whose entry it is, for the grokimagine-journal tool; NULL in entries of
   * earlier versions, which every account honours */
  gchar *base_url;              /* the API's, without any user info */
  gchar *account_tag;           /* grok_imagine_journal_account_tag() */
} GrokImagineEntry;

/* The longest prompt start an entry keeps, in characters */
#define GROK_IMAGINE_ENTRY_PROMPT_START 80

typedef struct _GrokImagineJournal GrokImagineJournal;

/* Which account an entry is of: an HMAC-SHA256 of @base_url (the API
 * origin) keyed with @api_key (NULL: none), so that nothing written to disk
 * tells the key */
gchar *grok_imagine_journal_account (const gchar * api_key,
    const gchar * base_url);

/* What an entry records of its account: a digest of
 * grok_imagine_journal_account() for @api_key and @base_url, which tells
 * neither the key nor the account its keys hold, and which only the key
 * can match */
gchar *grok_imagine_journal_account_tag (const gchar * api_key,
    const gchar * base_url);

/* The key of a request: what is sent, where and for which @account (from
 * grok_imagine_journal_account()), never the API key nor the result index
 * (one entry serves every result of the task). @account NULL: the key that
 * versions before accounts were told apart wrote their entries under. */
gchar *grok_imagine_journal_key (const gchar * api, const gchar * base_url,
    const gchar * request_json, const gchar * account);

/* Creates @dir if needed and removes the temporary files that processes
 * which no longer run left in it */
GrokImagineJournal *grok_imagine_journal_open (const gchar * dir,
    const gchar * key, GError ** error);
void grok_imagine_journal_free (GrokImagineJournal * journal);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (GrokImagineJournal, grok_imagine_journal_free);

/* The account whose entry @journal holds: its writes record @base_url
 * (without any user info) and the account's tag in the entry. Without it
 * they keep what the entry says. */
void grok_imagine_journal_set_account (GrokImagineJournal * journal,
    const gchar * api_key, const gchar * base_url);

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
 * entry (under the entry's lock, waited for until @deadline). An empty file
 * is refused and removed, and so is the result of a task the entry no
 * longer holds (@task_id). When the lock is not had (timed out, cancelled),
 * the file stays for a later try, or for the caller to remove. */
gboolean grok_imagine_journal_commit_result (GrokImagineJournal * journal,
    guint index, const gchar * task_id, const gchar * tmp_path,
    gint64 deadline, GCancellable * cancellable, guint64 * size,
    GError ** error);
/* The size of stored result @index when its file is whole, else 0 */
guint64 grok_imagine_journal_stored_size (GrokImagineJournal * journal,
    const GrokImagineEntry * entry, guint index);

/* --- the folder: ledger, size, listing ------------------------------------- */

/* Under the folder's lock (which an entry's holder may take, never the
 * other way round): adds @price to the ledger unless that would take it
 * past @cap (0: no cap). *total is the ledger after it (or unchanged when
 * refused); *charged says whether it was added. FALSE on an I/O error or a
 * damaged ledger. */
gboolean grok_imagine_journal_charge (GrokImagineJournal * journal,
    gint64 price, guint64 cap, gint64 deadline, GCancellable * cancellable,
    gint64 * total, gboolean * charged, GError ** error);
/* Adds @delta (a correction, negative for a refund) to the ledger */
gboolean grok_imagine_journal_credit (GrokImagineJournal * journal,
    gint64 delta, gint64 deadline, GCancellable * cancellable,
    gint64 * total, GError ** error);
/* The ledger's total, 0 when it has none yet */
gboolean grok_imagine_dir_read_ledger (const gchar * dir, gint64 * total,
    GError ** error);

/* Removes the least recently used stored results (never entries) until the
 * folder takes at most @max_size bytes; result @keep_index of this
 * journal's entry stays. */
gboolean grok_imagine_journal_evict (GrokImagineJournal * journal,
    guint64 max_size, guint keep_index, GCancellable * cancellable,
    GError ** error);
/* Marks stored result @index as used now, for the eviction order */
void grok_imagine_journal_touch_result (GrokImagineJournal * journal,
    guint index);

/* TRUE when @dir holds a journal (its lock file, ledger or an entry); else
 * an error saying why not */
gboolean grok_imagine_dir_is_journal (const gchar * dir, GError ** error);
/* The keys of the entries in @dir, sorted */
GStrv grok_imagine_dir_list_keys (const gchar * dir, GError ** error);
const gchar *grok_imagine_journal_get_key (GrokImagineJournal * journal);
const gchar *grok_imagine_journal_get_dir (GrokImagineJournal * journal);
/* Under the entry's lock: removes the entry and its stored results */
gboolean grok_imagine_journal_forget (GrokImagineJournal * journal,
    GError ** error);
/* Under this entry's lock, then that of entry @from (of the same folder):
 * moves entry @from and its stored results to this key when it holds task
 * @task_id and this key holds no other task. *adopted says whether it did.
 * An entry of an earlier version (keyed without an account) becomes the
 * entry of the account that the API showed the task to. */
gboolean grok_imagine_journal_adopt (GrokImagineJournal * journal,
    const gchar * from, const gchar * task_id, gint64 deadline,
    GCancellable * cancellable, gboolean * adopted, GError ** error);

void grok_imagine_entry_set_result_urls (GrokImagineEntry * entry,
    gchar ** urls);
void grok_imagine_entry_free (GrokImagineEntry * entry);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (GrokImagineEntry, grok_imagine_entry_free);

G_END_DECLS
