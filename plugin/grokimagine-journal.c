/* gst-grokimagine
 * Copyright (C) 2026 gst-grokimagine authors
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "grokimagine-journal.h"
#include "grokimagine-api.h"
#include "grokimagine-client.h"

#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define ENTRY_VERSION 2
#define LOCK_POLL (50 * G_TIME_SPAN_MILLISECOND)
#define COMMIT_LOCK_WAIT (10 * G_TIME_SPAN_SECOND)
/* temporary files are named <final name>.tmp-<pid>-XXXXXX */
#define TMP_MARK ".tmp-"
/* the folder's own files beside the entries (<key>.json, <key>.lock) and
 * results (<key>.<index>.result) */
#define FOLDER_LOCK "journal.lock"
#define LEDGER "journal.ledger"
#define LEDGER_VERSION 1
#define RESULT_SUFFIX ".result"
#define KEY_LENGTH 64           /* a SHA-256 in hex */

static const gchar *const state_names[] = {
  [GROK_IMAGINE_ENTRY_SUBMITTING] = "submitting",
  [GROK_IMAGINE_ENTRY_IN_DOUBT] = "in-doubt",
  [GROK_IMAGINE_ENTRY_SUBMITTED] = "submitted",
  [GROK_IMAGINE_ENTRY_COMPLETED] = "completed",
  [GROK_IMAGINE_ENTRY_FAILED] = "failed",
};

struct _GrokImagineJournal
{
  gchar *dir;
  gchar *key;
  gchar *entry_path;            /* <dir>/<key>.json */
  gchar *lock_path;             /* <dir>/<key>.lock */
  int lock_fd;
  gchar *folder_lock_path;      /* <dir>/journal.lock */
  /* the account its writes record: grok_imagine_journal_set_account() */
  gchar *base_url;
  gchar *account_tag;
};

gchar *
grok_imagine_journal_account (const gchar * api_key, const gchar * base_url)
{
  const gchar *key = api_key ? api_key : "";

  /* keyed with the API key: without it, nobody can tell which key it is */
  return g_compute_hmac_for_string (G_CHECKSUM_SHA256, (const guchar *) key,
      strlen (key), base_url, -1);
}

gchar *
grok_imagine_journal_account_tag (const gchar * api_key,
    const gchar * base_url)
{
  g_autofree gchar *account = grok_imagine_journal_account (api_key,
      base_url);

  /* one-way: the account itself is part of every key of its entries */
  return g_compute_checksum_for_string (G_CHECKSUM_SHA256, account, -1);
}

gchar *
grok_imagine_journal_key (const gchar * api, const gchar * base_url,
    const gchar * request_json, const gchar * account)
{
  g_autoptr (GChecksum) sum = g_checksum_new (G_CHECKSUM_SHA256);
  const gchar *parts[] = { api, base_url, request_json, account };
  guint i;

  /* each part with its terminating NUL, so parts cannot run together; the
   * entries of earlier versions were keyed without an account */
  for (i = 0; i < G_N_ELEMENTS (parts) && parts[i]; i++)
    g_checksum_update (sum, (const guchar *) parts[i], strlen (parts[i]) + 1);
  return g_strdup (g_checksum_get_string (sum));
}

/* Whether @name starts with a key of ours (KEY_LENGTH lower-case hex
 * digits) and a dot: what the folder holds beside its own files, as a
 * folder shared with other programs also holds their yarn.lock or
 * notes.result, which are never removed */
static gboolean
has_key_prefix (const gchar * name)
{
  guint i;

  for (i = 0; i < KEY_LENGTH; i++)
    if (!g_ascii_isxdigit (name[i]) || g_ascii_isupper (name[i]))
      return FALSE;
  return name[KEY_LENGTH] == '.';
}

/* Whether @name is <key>.<index>.result */
static gboolean
is_result_name (const gchar * name)
{
  const gchar *index = name + KEY_LENGTH + 1;
  gchar *end;

  if (!has_key_prefix (name) || !g_ascii_isdigit (*index))
    return FALSE;
  g_ascii_strtoull (index, &end, 10);
  return g_str_equal (end, RESULT_SUFFIX);
}

/* Removes the temporary files of processes that no longer run: a kill
 * during a write leaves one behind */
static void
remove_stale_temporaries (const gchar * dir)
{
  g_autoptr (GDir) d = g_dir_open (dir, 0, NULL);
  const gchar *name;

  while (d && (name = g_dir_read_name (d))) {
    const gchar *mark = strstr (name, TMP_MARK);
    gchar *end;
    gint64 pid;

    if (mark == NULL)
      continue;
    pid = g_ascii_strtoll (mark + strlen (TMP_MARK), &end, 10);
    if (end == mark + strlen (TMP_MARK) || *end != '-' || pid <= 0
        || pid == getpid () || kill (pid, 0) == 0 || errno != ESRCH)
      continue;
    {
      g_autofree gchar *path = g_build_filename (dir, name, NULL);

      g_unlink (path);
    }
  }
}

/* Whether @path still names the file open as @fd: a holder removes its
 * lock file on unlock, and the next one may have made a new one since */
static gboolean
still_named (int fd, const gchar * path)
{
  GStatBuf held, now;

  return fstat (fd, &held) == 0 && g_stat (path, &now) == 0
      && held.st_ino == now.st_ino && held.st_dev == now.st_dev;
}

/* Removes the entry lock files nobody holds: a killed run leaves its own.
 * One that is being waited on is safe to remove: its waiter, once it has
 * the lock, sees that the file is gone and opens it anew. */
static void
remove_stale_locks (const gchar * dir)
{
  g_autoptr (GDir) d = g_dir_open (dir, 0, NULL);
  const gchar *name;

  while (d && (name = g_dir_read_name (d))) {
    g_autofree gchar *path = NULL;
    int fd;

    if (!has_key_prefix (name) || !g_str_equal (name + KEY_LENGTH, ".lock"))
      continue;
    path = g_build_filename (dir, name, NULL);
    fd = g_open (path, O_RDWR | O_CLOEXEC, 0);
    if (fd < 0)
      continue;
    /* the file opened may have been released and replaced by a new one,
     * held by its next holder, before the flock(): never remove that */
    if (flock (fd, LOCK_EX | LOCK_NB) == 0) {
      if (still_named (fd, path))
        g_unlink (path);
      flock (fd, LOCK_UN);
    }
    close (fd);
  }
}

GrokImagineJournal *
grok_imagine_journal_open (const gchar * dir, const gchar * key,
    GError ** error)
{
  GrokImagineJournal *j;
  int fd;

  if (g_mkdir_with_parents (dir, 0700) != 0) {
    int e = errno;

    g_set_error (error, G_IO_ERROR, g_io_error_from_errno (e),
        "Cannot create the cache folder '%s': %s", dir, g_strerror (e));
    return NULL;
  }
  remove_stale_temporaries (dir);
  remove_stale_locks (dir);
  j = g_new0 (GrokImagineJournal, 1);
  j->dir = g_strdup (dir);
  j->key = g_strdup (key);
  j->entry_path = g_strdup_printf ("%s/%s.json", dir, key);
  j->lock_path = g_strdup_printf ("%s/%s.lock", dir, key);
  j->lock_fd = -1;
  j->folder_lock_path = g_build_filename (dir, FOLDER_LOCK, NULL);
  /* it also marks the folder as a journal */
  fd = g_open (j->folder_lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd >= 0)
    close (fd);
  return j;
}

void
grok_imagine_journal_free (GrokImagineJournal * journal)
{
  if (journal == NULL)
    return;
  grok_imagine_journal_unlock (journal);
  g_free (journal->dir);
  g_free (journal->key);
  g_free (journal->entry_path);
  g_free (journal->lock_path);
  g_free (journal->folder_lock_path);
  g_free (journal->base_url);
  g_free (journal->account_tag);
  g_free (journal);
}

void
grok_imagine_journal_set_account (GrokImagineJournal * j,
    const gchar * api_key, const gchar * base_url)
{
  g_autoptr (GUri) uri = g_uri_parse (base_url, SOUP_HTTP_URI_FLAGS, NULL);

  g_clear_pointer (&j->base_url, g_free);
  g_clear_pointer (&j->account_tag, g_free);
  if (uri == NULL)
    return;
  /* a password in the URL is never written */
  j->base_url = g_uri_get_userinfo (uri) ? g_uri_to_string_partial (uri,
      G_URI_HIDE_USERINFO) : g_strdup (base_url);
  j->account_tag = grok_imagine_journal_account_tag (api_key, j->base_url);
}

const gchar *
grok_imagine_journal_get_entry_path (GrokImagineJournal * j)
{
  return j->entry_path;
}

gchar *
grok_imagine_journal_get_result_path (GrokImagineJournal * j, guint index)
{
  return g_strdup_printf ("%s/%s.%u.result", j->dir, j->key, index);
}

/* Opens and locks @path, waiting until @deadline (monotonic µs) in short
 * steps, so that a flush or a state change ends the wait. A holder that
 * removed the file on unlock leaves a stale one to whoever waited on it:
 * then the file is opened again. Returns the locked descriptor or -1. */
static int
lock_path (const gchar * path, gint64 deadline, GCancellable * cancellable,
    GError ** error)
{
  for (;;) {
    int fd = g_open (path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);

    if (fd < 0) {
      int e = errno;

      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (e),
          "Cannot open the journal lock '%s': %s", path, g_strerror (e));
      return -1;
    }
    while (flock (fd, LOCK_EX | LOCK_NB) != 0) {
      if (errno != EWOULDBLOCK && errno != EINTR) {
        int e = errno;

        g_set_error (error, G_IO_ERROR, g_io_error_from_errno (e),
            "Cannot lock '%s': %s", path, g_strerror (e));
        close (fd);
        return -1;
      }
      if (g_get_monotonic_time () + LOCK_POLL > deadline) {
        g_set_error (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT, "Another "
            "process held the journal lock '%s' past the deadline", path);
        close (fd);
        return -1;
      }
      if (!grok_imagine_wait (LOCK_POLL, cancellable, error)) {
        close (fd);
        return -1;
      }
    }
    if (still_named (fd, path))
      return fd;
    close (fd);
  }
}

gboolean
grok_imagine_journal_lock (GrokImagineJournal * j, gint64 deadline,
    GCancellable * cancellable, GError ** error)
{
  if (j->lock_fd >= 0)
    return TRUE;
  j->lock_fd = lock_path (j->lock_path, deadline, cancellable, error);
  return j->lock_fd >= 0;
}

/* The entry's lock file goes with the lock, so that finished runs leave
 * none behind */
void
grok_imagine_journal_unlock (GrokImagineJournal * j)
{
  if (j->lock_fd < 0)
    return;
  g_unlink (j->lock_path);
  flock (j->lock_fd, LOCK_UN);
  close (j->lock_fd);
  j->lock_fd = -1;
}

static int
lock_folder (GrokImagineJournal * j, gint64 deadline,
    GCancellable * cancellable, GError ** error)
{
  return lock_path (j->folder_lock_path, deadline, cancellable, error);
}

static void
unlock_folder (int fd)
{
  flock (fd, LOCK_UN);
  close (fd);
}

void
grok_imagine_entry_set_result_urls (GrokImagineEntry * entry, gchar ** urls)
{
  g_strfreev (entry->result_urls);
  g_free (entry->sizes);
  entry->result_urls = g_strdupv (urls);
  if (entry->result_urls == NULL)
    entry->result_urls = g_new0 (gchar *, 1);
  entry->sizes = g_new0 (guint64, g_strv_length (entry->result_urls) + 1);
}

void
grok_imagine_entry_free (GrokImagineEntry * entry)
{
  if (entry == NULL)
    return;
  g_free (entry->task_id);
  g_free (entry->error_message);
  g_strfreev (entry->result_urls);
  g_free (entry->sizes);
  g_free (entry->api);
  g_free (entry->model);
  g_free (entry->prompt);
  g_free (entry->base_url);
  g_free (entry->account_tag);
  g_free (entry);
}

#define damaged(error, ...) \
  (g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, __VA_ARGS__), \
      NULL)

static gboolean
parse_state (const gchar * name, GrokImagineEntryState * state)
{
  guint i;

  for (i = 0; name && i < G_N_ELEMENTS (state_names); i++) {
    if (g_str_equal (name, state_names[i])) {
      *state = i;
      return TRUE;
    }
  }
  return FALSE;
}

static gboolean
invalid (GError ** error, const gchar * why)
{
  g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, why);
  return FALSE;
}

/* result_urls and stored sizes of @obj into @entry */
static gboolean
read_results (JsonObject * obj, GrokImagineEntry * entry, GError ** error)
{
  JsonNode *urls = json_object_get_member (obj, "result_urls");
  JsonNode *stored = json_object_get_member (obj, "stored");
  g_auto (GStrv) list = NULL;
  guint i, n = 0;

  if (urls && JSON_NODE_HOLDS_ARRAY (urls)) {
    JsonArray *arr = json_node_get_array (urls);

    n = json_array_get_length (arr);
    list = g_new0 (gchar *, n + 1);
    for (i = 0; i < n; i++) {
      JsonNode *u = json_array_get_element (arr, i);

      if (!JSON_NODE_HOLDS_VALUE (u)
          || json_node_get_value_type (u) != G_TYPE_STRING)
        return invalid (error, "a result URL is not a string");
      list[i] = g_strdup (json_node_get_string (u));
    }
  } else if (urls) {
    return invalid (error, "result_urls is not an array");
  }
  grok_imagine_entry_set_result_urls (entry, list);

  if (stored && JSON_NODE_HOLDS_ARRAY (stored)) {
    JsonArray *arr = json_node_get_array (stored);

    if (json_array_get_length (arr) > n)
      return invalid (error, "more stored results than result URLs");
    for (i = 0; i < json_array_get_length (arr); i++) {
      JsonNode *s = json_array_get_element (arr, i);

      if (!JSON_NODE_HOLDS_VALUE (s)
          || json_node_get_value_type (s) != G_TYPE_INT64
          || json_node_get_int (s) < 0)
        return invalid (error, "a stored size is not a number");
      entry->sizes[i] = json_node_get_int (s);
    }
  } else if (stored) {
    return invalid (error, "stored is not an array");
  }
  return TRUE;
}

/* An ISO 8601 member as unix µs; FALSE when it is there but no date */
static gboolean
read_time (JsonObject * obj, const gchar * name, gint64 * unix_us)
{
  const gchar *when = json_object_get_string_member_with_default (obj, name,
      NULL);
  g_autoptr (GDateTime) t = when ? g_date_time_new_from_iso8601 (when,
      NULL) : NULL;

  if (when && t == NULL)
    return FALSE;
  if (t)
    *unix_us = g_date_time_to_unix (t) * G_USEC_PER_SEC;
  return TRUE;
}

static gchar *
dup_string_member (JsonObject * obj, const gchar * name)
{
  JsonNode *n = json_object_get_member (obj, name);

  if (n == NULL || !JSON_NODE_HOLDS_VALUE (n)
      || json_node_get_value_type (n) != G_TYPE_STRING)
    return NULL;
  return g_strdup (json_node_get_string (n));
}

GrokImagineEntry *
grok_imagine_journal_read (GrokImagineJournal * j, GError ** error)
{
  g_autoptr (JsonParser) parser = json_parser_new_immutable ();
  g_autoptr (GrokImagineEntry) entry = NULL;
  g_autoptr (GError) err = NULL;
  g_autofree gchar *data = NULL;
  JsonObject *obj;
  JsonNode *root, *version, *credits;
  const gchar *task_id;
  gsize len;

  if (!g_file_get_contents (j->entry_path, &data, &len, &err)) {
    if (g_error_matches (err, G_FILE_ERROR, G_FILE_ERROR_NOENT))
      return NULL;
    return damaged (error, "cannot read it: %s", err->message);
  }
  if (len > GROK_IMAGINE_MAX_BODY_SIZE
      || !json_parser_load_from_data (parser, data, len, &err))
    return damaged (error, "it is not valid JSON%s%s", err ? ": " : "",
        err ? err->message : "");
  root = json_parser_get_root (parser);
  if (root == NULL || !JSON_NODE_HOLDS_OBJECT (root))
    return damaged (error, "it is not a JSON object");
  obj = json_node_get_object (root);
  version = json_object_get_member (obj, "version");
  if (version == NULL || !JSON_NODE_HOLDS_VALUE (version)
      || json_node_get_value_type (version) != G_TYPE_INT64)
    return damaged (error, "it has no version");
  if (json_node_get_int (version) != ENTRY_VERSION)
    return damaged (error, "it is of version %" G_GINT64_FORMAT ", this "
        "element reads version %d", json_node_get_int (version),
        ENTRY_VERSION);

  entry = g_new0 (GrokImagineEntry, 1);
  if (!parse_state (json_object_get_string_member_with_default (obj, "state",
              NULL), &entry->state))
    return damaged (error, "its state is unknown");
  task_id = json_object_get_string_member_with_default (obj, "task_id", NULL);
  if (task_id && *task_id)
    entry->task_id = g_strdup (task_id);
  else if (entry->state >= GROK_IMAGINE_ENTRY_SUBMITTED)
    return damaged (error, "it has no task id");
  if (!read_time (obj, "submitted_at", &entry->submitted_at))
    return damaged (error, "its submit time is not a date");
  if (!read_time (obj, "updated", &entry->updated_at))
    return damaged (error, "its update time is not a date");
  entry->error_message = g_strdup
      (json_object_get_string_member_with_default (obj, "error_message",
          NULL));
  entry->api = dup_string_member (obj, "api");
  entry->model = dup_string_member (obj, "model");
  entry->prompt = dup_string_member (obj, "prompt");
  entry->base_url = dup_string_member (obj, "base_url");
  entry->account_tag = dup_string_member (obj, "account_tag");
  /* entries of older versions of the element: not in the ledger */
  entry->credits = -1;
  credits = json_object_get_member (obj, "credits");
  if (credits && (!JSON_NODE_HOLDS_VALUE (credits)
          || json_node_get_value_type (credits) != G_TYPE_INT64
          || json_node_get_int (credits) < 0))
    return damaged (error, "its credits are not a number");
  if (credits)
    entry->credits = json_node_get_int (credits);
  if (!read_results (obj, entry, error))
    return NULL;
  if (entry->state == GROK_IMAGINE_ENTRY_COMPLETED
      && entry->result_urls[0] == NULL)
    return damaged (error, "a completed entry without a result URL");
  return g_steal_pointer (&entry);
}

/* Writes @data to @path through one temporary file beside it, then a
 * rename: a crash leaves the old or the new file, never half of one, and
 * at most the one temporary file (removed by the next open) */
static gboolean
replace_file (const gchar * path, const gchar * data, gsize len,
    GError ** error)
{
  g_autofree gchar *tmp = g_strdup_printf ("%s" TMP_MARK "%d-XXXXXX", path,
      (int) getpid ());
  int fd = g_mkstemp_full (tmp, O_RDWR | O_CLOEXEC, 0600);
  gsize done = 0;
  int e = 0;

  if (fd < 0) {
    e = errno;
    goto failed;
  }
  while (done < len) {
    gssize n = write (fd, data + done, len - done);

    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      e = errno;
      break;
    }
    done += n;
  }
  if (e == 0 && fsync (fd) != 0)
    e = errno;
  if (close (fd) != 0 && e == 0)
    e = errno;
  if (e == 0 && g_rename (tmp, path) != 0)
    e = errno;
  if (e == 0)
    return TRUE;
  g_unlink (tmp);

failed:
  g_set_error (error, G_IO_ERROR, grok_imagine_io_error_from_errno (e),
      "Cannot write '%s': %s", path, g_strerror (e));
  return FALSE;
}

static void
add_time (JsonBuilder * b, const gchar * name, gint64 unix_us)
{
  g_autoptr (GDateTime) t = g_date_time_new_from_unix_utc (0);
  g_autoptr (GDateTime) at = g_date_time_add (t, unix_us);
  g_autofree gchar *stamp = g_date_time_format_iso8601 (at);

  json_builder_set_member_name (b, name);
  json_builder_add_string_value (b, stamp);
}

static void
add_string (JsonBuilder * b, const gchar * name, const gchar * value)
{
  if (value == NULL)
    return;
  json_builder_set_member_name (b, name);
  json_builder_add_string_value (b, value);
}

gboolean
grok_imagine_journal_write (GrokImagineJournal * j,
    const GrokImagineEntry * entry, GError ** error)
{
  g_autoptr (JsonBuilder) b = json_builder_new ();
  g_autoptr (JsonNode) root = NULL;
  g_autofree gchar *json = NULL;
  guint i;

  json_builder_begin_object (b);
  json_builder_set_member_name (b, "version");
  json_builder_add_int_value (b, ENTRY_VERSION);
  json_builder_set_member_name (b, "state");
  json_builder_add_string_value (b, state_names[entry->state]);
  if (entry->task_id) {
    json_builder_set_member_name (b, "task_id");
    json_builder_add_string_value (b, entry->task_id);
  }
  if (entry->submitted_at)
    add_time (b, "submitted_at", entry->submitted_at);
  add_string (b, "error_message", entry->error_message);
  add_string (b, "api", entry->api);
  add_string (b, "model", entry->model);
  add_string (b, "prompt", entry->prompt);
  add_string (b, "base_url", j->account_tag ? j->base_url : entry->base_url);
  add_string (b, "account_tag", j->account_tag ? j->account_tag :
      entry->account_tag);
  if (entry->credits >= 0) {
    json_builder_set_member_name (b, "credits");
    json_builder_add_int_value (b, entry->credits);
  }
  json_builder_set_member_name (b, "result_urls");
  json_builder_begin_array (b);
  for (i = 0; entry->result_urls && entry->result_urls[i]; i++)
    json_builder_add_string_value (b, entry->result_urls[i]);
  json_builder_end_array (b);
  json_builder_set_member_name (b, "stored");
  json_builder_begin_array (b);
  for (i = 0; entry->sizes && entry->result_urls[i]; i++)
    json_builder_add_int_value (b, entry->sizes[i]);
  json_builder_end_array (b);
  add_time (b, "updated", g_get_real_time ());
  json_builder_end_object (b);
  root = json_builder_get_root (b);
  json = json_to_string (root, TRUE);
  return replace_file (j->entry_path, json, strlen (json), error);
}

gboolean
grok_imagine_journal_remove (GrokImagineJournal * j, GError ** error)
{
  if (g_unlink (j->entry_path) != 0 && errno != ENOENT) {
    int e = errno;

    g_set_error (error, G_IO_ERROR, g_io_error_from_errno (e),
        "Cannot remove '%s': %s", j->entry_path, g_strerror (e));
    return FALSE;
  }
  return TRUE;
}

GOutputStream *
grok_imagine_journal_create_result (GrokImagineJournal * j, guint index,
    gchar ** tmp_path, GError ** error)
{
  g_autofree gchar *path = grok_imagine_journal_get_result_path (j, index);
  g_autofree gchar *tmpl = g_strdup_printf ("%s" TMP_MARK "%d-XXXXXX", path,
      (int) getpid ());
  int fd = g_mkstemp_full (tmpl, O_RDWR | O_CLOEXEC, 0600);
  g_autoptr (GFile) file = NULL;
  GFileOutputStream *out;

  if (fd < 0) {
    int e = errno;

    g_set_error (error, G_IO_ERROR, grok_imagine_io_error_from_errno (e),
        "Cannot create a file beside '%s': %s", path, g_strerror (e));
    return NULL;
  }
  close (fd);
  /* appending to the file mkstemp made: no second temporary file, as
   * g_file_replace() would make */
  file = g_file_new_for_path (tmpl);
  out = g_file_append_to (file, G_FILE_CREATE_PRIVATE, NULL, error);
  if (out == NULL) {
    g_unlink (tmpl);
    return NULL;
  }
  *tmp_path = g_steal_pointer (&tmpl);
  return G_OUTPUT_STREAM (out);
}

gboolean
grok_imagine_journal_commit_result (GrokImagineJournal * j, guint index,
    const gchar * task_id, const gchar * tmp_path, gint64 deadline,
    GCancellable * cancellable, guint64 * size, GError ** error)
{
  g_autofree gchar *path = grok_imagine_journal_get_result_path (j, index);
  g_autoptr (GrokImagineEntry) entry = NULL;
  gboolean ok = FALSE;
  GStatBuf st;

  if (g_stat (tmp_path, &st) != 0) {
    int e = errno;

    g_set_error (error, G_IO_ERROR, g_io_error_from_errno (e),
        "Cannot store the result as '%s': %s", path, g_strerror (e));
    goto out;
  }
  if (st.st_size == 0) {
    g_set_error (error, GROK_IMAGINE_ERROR, GROK_IMAGINE_ERROR_PROTOCOL,
        "the result host sent an empty file");
    goto out;
  }
  /* the file stays for a later try */
  if (!grok_imagine_journal_lock (j, deadline, cancellable, error))
    return FALSE;
  entry = grok_imagine_journal_read (j, error);
  if (entry == NULL || index >= g_strv_length (entry->result_urls)) {
    if (error && *error == NULL)
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND, "The journal "
          "entry '%s' does not list result %u", j->entry_path, index);
  } else if (g_strcmp0 (entry->task_id, task_id) != 0) {
    /* another run (refresh=true) put its task there since: its results
     * are not ours to replace */
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_EXISTS, "The journal entry "
        "'%s' now holds task %s, not %s", j->entry_path, entry->task_id,
        task_id);
  } else if (g_rename (tmp_path, path) != 0) {
    int e = errno;

    g_set_error (error, G_IO_ERROR, g_io_error_from_errno (e),
        "Cannot store the result as '%s': %s", path, g_strerror (e));
  } else {
    entry->sizes[index] = st.st_size;
    *size = st.st_size;
    ok = grok_imagine_journal_write (j, entry, error);
  }
  grok_imagine_journal_unlock (j);

out:
  g_unlink (tmp_path);
  return ok;
}

guint64
grok_imagine_journal_stored_size (GrokImagineJournal * j,
    const GrokImagineEntry * entry, guint index)
{
  g_autofree gchar *path = NULL;
  GStatBuf st;

  if (entry->state != GROK_IMAGINE_ENTRY_COMPLETED
      || index >= g_strv_length (entry->result_urls)
      || entry->sizes[index] == 0)
    return 0;
  path = grok_imagine_journal_get_result_path (j, index);
  if (g_stat (path, &st) != 0 || (guint64) st.st_size != entry->sizes[index])
    return 0;
  return entry->sizes[index];
}

/* --- the ledger ------------------------------------------------------------- */

static gboolean
int_member (JsonObject * obj, const gchar * name, gint64 * value)
{
  JsonNode *n = json_object_get_member (obj, name);

  if (n == NULL || !JSON_NODE_HOLDS_VALUE (n)
      || json_node_get_value_type (n) != G_TYPE_INT64)
    return FALSE;
  *value = json_node_get_int (n);
  return TRUE;
}

gboolean
grok_imagine_dir_read_ledger (const gchar * dir, gint64 * total,
    GError ** error)
{
  g_autofree gchar *path = g_build_filename (dir, LEDGER, NULL);
  g_autoptr (JsonParser) parser = json_parser_new_immutable ();
  g_autoptr (GError) err = NULL;
  g_autofree gchar *data = NULL;
  JsonNode *root;
  gint64 version = 0;
  gsize len;

  *total = 0;
  if (!g_file_get_contents (path, &data, &len, &err)) {
    if (g_error_matches (err, G_FILE_ERROR, G_FILE_ERROR_NOENT))
      return TRUE;
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED, "Cannot read the "
        "credit ledger '%s': %s", path, err->message);
    return FALSE;
  }
  if (len > GROK_IMAGINE_MAX_BODY_SIZE
      || !json_parser_load_from_data (parser, data, len, NULL)
      || (root = json_parser_get_root (parser)) == NULL
      || !JSON_NODE_HOLDS_OBJECT (root)
      || !int_member (json_node_get_object (root), "version", &version)
      || version != LEDGER_VERSION
      || !int_member (json_node_get_object (root), "credits", total)
      || *total < 0) {
    *total = 0;
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "The credit "
        "ledger '%s' is damaged or of another version than %d", path,
        LEDGER_VERSION);
    return FALSE;
  }
  return TRUE;
}

static gboolean
write_ledger (const gchar * dir, gint64 total, GError ** error)
{
  g_autofree gchar *path = g_build_filename (dir, LEDGER, NULL);
  g_autoptr (JsonBuilder) b = json_builder_new ();
  g_autoptr (JsonNode) root = NULL;
  g_autofree gchar *json = NULL;

  json_builder_begin_object (b);
  json_builder_set_member_name (b, "version");
  json_builder_add_int_value (b, LEDGER_VERSION);
  json_builder_set_member_name (b, "credits");
  json_builder_add_int_value (b, total);
  add_time (b, "updated", g_get_real_time ());
  json_builder_end_object (b);
  root = json_builder_get_root (b);
  json = json_to_string (root, TRUE);
  return replace_file (path, json, strlen (json), error);
}

/* @total + @delta, kept within 0 and G_MAXINT64: a ledger edited by hand
 * to a huge figure stays at the most it can count, never wraps to 0 */
static gint64
credits_add (gint64 total, gint64 delta)
{
  if (delta > 0 && total > G_MAXINT64 - delta)
    return G_MAXINT64;
  return MAX (total + delta, 0);
}

gboolean
grok_imagine_journal_charge (GrokImagineJournal * j, gint64 price,
    guint64 cap, gint64 deadline, GCancellable * cancellable, gint64 * total,
    gboolean * charged, GError ** error)
{
  int fd = lock_folder (j, deadline, cancellable, error);
  gboolean ok;

  *charged = FALSE;
  *total = 0;
  if (fd < 0)
    return FALSE;
  ok = grok_imagine_dir_read_ledger (j->dir, total, error);
  if (ok && (cap == 0 || (guint64) credits_add (*total, price) <= cap)) {
    ok = write_ledger (j->dir, credits_add (*total, price), error);
    if (ok) {
      *total = credits_add (*total, price);
      *charged = TRUE;
    }
  }
  unlock_folder (fd);
  return ok;
}

gboolean
grok_imagine_journal_credit (GrokImagineJournal * j, gint64 delta,
    gint64 deadline, GCancellable * cancellable, gint64 * total,
    GError ** error)
{
  int fd = lock_folder (j, deadline, cancellable, error);
  gboolean ok;

  *total = 0;
  if (fd < 0)
    return FALSE;
  ok = grok_imagine_dir_read_ledger (j->dir, total, error)
      && write_ledger (j->dir, credits_add (*total, delta), error);
  if (ok)
    *total = credits_add (*total, delta);
  unlock_folder (fd);
  return ok;
}

/* --- the folder's size ------------------------------------------------------ */

typedef struct
{
  gchar *path;
  gint64 used;                  /* mtime in ns */
  guint64 size;
} Stored;

static void
stored_clear (gpointer p)
{
  g_free (((Stored *) p)->path);
}

static gint
least_recent_first (gconstpointer a, gconstpointer b)
{
  gint64 x = ((const Stored *) a)->used, y = ((const Stored *) b)->used;

  return x < y ? -1 : x > y;
}

gboolean
grok_imagine_journal_evict (GrokImagineJournal * j, guint64 max_size,
    guint keep_index, GCancellable * cancellable, GError ** error)
{
  g_autofree gchar *keep = g_strdup_printf ("%s.%u" RESULT_SUFFIX, j->key,
      keep_index);
  g_autoptr (GArray) results = NULL;
  g_autoptr (GDir) d = NULL;
  guint64 total = 0;
  const gchar *name;
  guint i;
  int fd;

  if (max_size == 0)
    return TRUE;
  fd = lock_folder (j, g_get_monotonic_time () + COMMIT_LOCK_WAIT,
      cancellable, error);
  if (fd < 0)
    return FALSE;
  d = g_dir_open (j->dir, 0, error);
  if (d == NULL) {
    unlock_folder (fd);
    return FALSE;
  }
  results = g_array_new (FALSE, FALSE, sizeof (Stored));
  g_array_set_clear_func (results, stored_clear);
  while ((name = g_dir_read_name (d))) {
    g_autofree gchar *path = g_build_filename (j->dir, name, NULL);
    GStatBuf st;

    if (g_lstat (path, &st) != 0 || !S_ISREG (st.st_mode))
      continue;
    total += st.st_size;
    if (is_result_name (name) && !g_str_equal (name, keep)) {
      Stored r = { g_steal_pointer (&path), st.st_mtim.tv_sec *
            G_GINT64_CONSTANT (1000000000) + st.st_mtim.tv_nsec, st.st_size
      };

      g_array_append_val (results, r);
    }
  }
  g_array_sort (results, least_recent_first);
  for (i = 0; i < results->len && total > max_size; i++) {
    Stored *r = &g_array_index (results, Stored, i);

    if (g_unlink (r->path) == 0)
      total -= r->size;
  }
  unlock_folder (fd);
  return TRUE;
}

void
grok_imagine_journal_touch_result (GrokImagineJournal * j, guint index)
{
  g_autofree gchar *path = grok_imagine_journal_get_result_path (j, index);

  utimensat (AT_FDCWD, path, NULL, 0);
}

/* --- listing ---------------------------------------------------------------- */

static gboolean
is_entry_name (const gchar * name)
{
  return has_key_prefix (name) && g_str_equal (name + KEY_LENGTH, ".json");
}

static gint
compare_strings (gconstpointer a, gconstpointer b)
{
  return strcmp (*(const gchar * const *) a, *(const gchar * const *) b);
}

GStrv
grok_imagine_dir_list_keys (const gchar * dir, GError ** error)
{
  g_autoptr (GDir) d = g_dir_open (dir, 0, error);
  g_autoptr (GPtrArray) keys = NULL;
  const gchar *name;

  if (d == NULL)
    return NULL;
  keys = g_ptr_array_new_with_free_func (g_free);
  while ((name = g_dir_read_name (d)))
    if (is_entry_name (name))
      g_ptr_array_add (keys, g_strndup (name, KEY_LENGTH));
  g_ptr_array_sort (keys, compare_strings);
  g_ptr_array_add (keys, NULL);
  return (GStrv) g_ptr_array_steal (keys, NULL);
}

gboolean
grok_imagine_dir_is_journal (const gchar * dir, GError ** error)
{
  g_autofree gchar *lock = g_build_filename (dir, FOLDER_LOCK, NULL);
  g_autofree gchar *ledger = g_build_filename (dir, LEDGER, NULL);
  g_auto (GStrv) keys = NULL;

  if (!g_file_test (dir, G_FILE_TEST_IS_DIR)) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_DIRECTORY,
        "'%s' is not a folder", dir);
    return FALSE;
  }
  if (g_file_test (lock, G_FILE_TEST_IS_REGULAR)
      || g_file_test (ledger, G_FILE_TEST_IS_REGULAR))
    return TRUE;
  keys = grok_imagine_dir_list_keys (dir, error);
  if (keys == NULL)
    return FALSE;
  if (keys[0])
    return TRUE;
  g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT, "'%s' is not "
      "a journal of grokimaginesrc: it has no " FOLDER_LOCK ", no " LEDGER
      " and no entries", dir);
  return FALSE;
}

const gchar *
grok_imagine_journal_get_key (GrokImagineJournal * j)
{
  return j->key;
}

const gchar *
grok_imagine_journal_get_dir (GrokImagineJournal * j)
{
  return j->dir;
}

gboolean
grok_imagine_journal_forget (GrokImagineJournal * j, GError ** error)
{
  g_autofree gchar *prefix = g_strconcat (j->key, ".", NULL);
  g_autoptr (GDir) d = NULL;
  const gchar *name;
  gboolean ok;

  if (!grok_imagine_journal_lock (j, g_get_monotonic_time () +
          COMMIT_LOCK_WAIT, NULL, error))
    return FALSE;
  d = g_dir_open (j->dir, 0, NULL);
  while (d && (name = g_dir_read_name (d))) {
    if (g_str_has_prefix (name, prefix) && g_str_has_suffix (name,
            RESULT_SUFFIX)) {
      g_autofree gchar *path = g_build_filename (j->dir, name, NULL);

      g_unlink (path);
    }
  }
  ok = grok_imagine_journal_remove (j, error);
  grok_imagine_journal_unlock (j);
  return ok;
}

gboolean
grok_imagine_journal_adopt (GrokImagineJournal * j, const gchar * from,
    const gchar * task_id, gint64 deadline, GCancellable * cancellable,
    gboolean * adopted, GError ** error)
{
  g_autoptr (GrokImagineJournal) old = NULL;
  g_autoptr (GrokImagineEntry) e = NULL, mine = NULL;
  g_autoptr (GError) err = NULL;
  gboolean ok = FALSE;
  guint i;

  *adopted = FALSE;
  if (!grok_imagine_journal_lock (j, deadline, cancellable, error))
    return FALSE;
  old = grok_imagine_journal_open (j->dir, from, error);
  if (old == NULL || !grok_imagine_journal_lock (old, deadline, cancellable,
          error))
    goto out;
  e = grok_imagine_journal_read (old, &err);
  mine = grok_imagine_journal_read (j, NULL);
  /* gone, or no longer that task, or this key has an entry of its own */
  ok = err == NULL;
  if (e == NULL || g_strcmp0 (e->task_id, task_id) != 0
      || (mine && g_strcmp0 (mine->task_id, task_id) != 0))
    goto out;
  for (i = 0; e->result_urls[i]; i++) {
    g_autofree gchar *stored = grok_imagine_journal_get_result_path (old, i);
    g_autofree gchar *path = grok_imagine_journal_get_result_path (j, i);

    if (e->sizes[i] && g_rename (stored, path) != 0)
      e->sizes[i] = 0;
  }
  ok = *adopted = grok_imagine_journal_write (j, e, error);
  if (ok)
    ok = grok_imagine_journal_remove (old, error);

out:
  if (err)
    g_propagate_error (error, g_steal_pointer (&err));
  grok_imagine_journal_unlock (j);
  return ok;
}
