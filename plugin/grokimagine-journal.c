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
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define ENTRY_VERSION 1
#define LOCK_POLL (50 * G_TIME_SPAN_MILLISECOND)

struct _GrokImagineJournal
{
  gchar *entry_path;            /* <dir>/<key>.json */
  gchar *result_path;           /* <dir>/<key>.result */
  gchar *lock_path;             /* <dir>/<key>.lock */
  int lock_fd;
};

gchar *
grok_imagine_journal_key (const gchar * api, const gchar * base_url,
    const gchar * request_json, guint result_index)
{
  g_autoptr (GChecksum) sum = g_checksum_new (G_CHECKSUM_SHA256);
  g_autofree gchar *index = g_strdup_printf ("%u", result_index);
  const gchar *parts[] = { api, base_url, request_json, index };
  guint i;

  /* each part with its terminating NUL, so parts cannot run together */
  for (i = 0; i < G_N_ELEMENTS (parts); i++)
    g_checksum_update (sum, (const guchar *) parts[i], strlen (parts[i]) + 1);
  return g_strdup (g_checksum_get_string (sum));
}

GrokImagineJournal *
grok_imagine_journal_open (const gchar * dir, const gchar * key,
    GError ** error)
{
  GrokImagineJournal *j;

  if (g_mkdir_with_parents (dir, 0700) != 0) {
    int e = errno;

    g_set_error (error, G_IO_ERROR, g_io_error_from_errno (e),
        "Cannot create the cache folder '%s': %s", dir, g_strerror (e));
    return NULL;
  }
  j = g_new0 (GrokImagineJournal, 1);
  j->entry_path = g_strdup_printf ("%s/%s.json", dir, key);
  j->result_path = g_strdup_printf ("%s/%s.result", dir, key);
  j->lock_path = g_strdup_printf ("%s/%s.lock", dir, key);
  j->lock_fd = -1;
  return j;
}

void
grok_imagine_journal_free (GrokImagineJournal * journal)
{
  if (journal == NULL)
    return;
  grok_imagine_journal_unlock (journal);
  g_free (journal->entry_path);
  g_free (journal->result_path);
  g_free (journal->lock_path);
  g_free (journal);
}

const gchar *
grok_imagine_journal_get_entry_path (GrokImagineJournal * j)
{
  return j->entry_path;
}

const gchar *
grok_imagine_journal_get_result_path (GrokImagineJournal * j)
{
  return j->result_path;
}

gboolean
grok_imagine_journal_lock (GrokImagineJournal * j, gint64 deadline,
    GCancellable * cancellable, GError ** error)
{
  if (j->lock_fd < 0)
    j->lock_fd = g_open (j->lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (j->lock_fd < 0) {
    int e = errno;

    g_set_error (error, G_IO_ERROR, g_io_error_from_errno (e),
        "Cannot open the journal lock '%s': %s", j->lock_path, g_strerror (e));
    return FALSE;
  }

  /* Another process may hold it while it submits the same request: wait,
   * in short steps so that a flush or a state change ends the wait */
  while (flock (j->lock_fd, LOCK_EX | LOCK_NB) != 0) {
    if (errno != EWOULDBLOCK && errno != EINTR) {
      int e = errno;

      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (e),
          "Cannot lock '%s': %s", j->lock_path, g_strerror (e));
      return FALSE;
    }
    if (g_get_monotonic_time () + LOCK_POLL > deadline) {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT, "Another "
          "process held the journal lock '%s' past the deadline",
          j->lock_path);
      return FALSE;
    }
    if (!grok_imagine_wait (LOCK_POLL, cancellable, error))
      return FALSE;
  }
  return TRUE;
}

void
grok_imagine_journal_unlock (GrokImagineJournal * j)
{
  if (j->lock_fd < 0)
    return;
  flock (j->lock_fd, LOCK_UN);
  close (j->lock_fd);
  j->lock_fd = -1;
}

void
grok_imagine_entry_free (GrokImagineEntry * entry)
{
  if (entry == NULL)
    return;
  g_free (entry->task_id);
  g_strfreev (entry->result_urls);
  g_free (entry);
}

#define damaged(error, ...) \
  (g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, __VA_ARGS__), \
      NULL)

GrokImagineEntry *
grok_imagine_journal_read (GrokImagineJournal * j, GError ** error)
{
  g_autoptr (JsonParser) parser = json_parser_new_immutable ();
  g_autoptr (GrokImagineEntry) entry = NULL;
  g_autoptr (GError) err = NULL;
  g_autofree gchar *data = NULL;
  JsonObject *obj;
  JsonNode *root, *urls;
  const gchar *task_id, *state;
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
  if (json_object_get_int_member_with_default (obj, "version", 0)
      != ENTRY_VERSION)
    return damaged (error, "unknown version");
  task_id = json_object_get_string_member_with_default (obj, "task_id", NULL);
  state = json_object_get_string_member_with_default (obj, "state", "");
  if (task_id == NULL || *task_id == '\0')
    return damaged (error, "it has no task id");

  entry = g_new0 (GrokImagineEntry, 1);
  entry->task_id = g_strdup (task_id);
  entry->completed = g_str_equal (state, "completed");
  entry->size = json_object_get_int_member_with_default (obj, "size", 0);

  urls = json_object_get_member (obj, "result_urls");
  if (urls && JSON_NODE_HOLDS_ARRAY (urls)) {
    JsonArray *arr = json_node_get_array (urls);
    guint i, n = json_array_get_length (arr);

    entry->result_urls = g_new0 (gchar *, n + 1);
    for (i = 0; i < n; i++) {
      const gchar *u = json_array_get_string_element (arr, i);

      if (u == NULL)
        return damaged (error, "a result URL is not a string");
      entry->result_urls[i] = g_strdup (u);
    }
  } else {
    entry->result_urls = g_new0 (gchar *, 1);
  }
  if (entry->completed && entry->size == 0)
    return damaged (error, "a completed entry without a size");
  return g_steal_pointer (&entry);
}

gboolean
grok_imagine_journal_write (GrokImagineJournal * j,
    const GrokImagineEntry * entry, GError ** error)
{
  g_autoptr (JsonBuilder) b = json_builder_new ();
  g_autoptr (JsonNode) root = NULL;
  g_autoptr (GDateTime) now = g_date_time_new_now_utc ();
  g_autofree gchar *json = NULL, *stamp = g_date_time_format_iso8601 (now);
  gchar **u;

  json_builder_begin_object (b);
  json_builder_set_member_name (b, "version");
  json_builder_add_int_value (b, ENTRY_VERSION);
  json_builder_set_member_name (b, "task_id");
  json_builder_add_string_value (b, entry->task_id);
  json_builder_set_member_name (b, "state");
  json_builder_add_string_value (b, entry->completed ? "completed" :
      "submitted");
  json_builder_set_member_name (b, "result_urls");
  json_builder_begin_array (b);
  for (u = entry->result_urls; u && *u; u++)
    json_builder_add_string_value (b, *u);
  json_builder_end_array (b);
  if (entry->completed) {
    json_builder_set_member_name (b, "size");
    json_builder_add_int_value (b, entry->size);
  }
  json_builder_set_member_name (b, "updated");
  json_builder_add_string_value (b, stamp);
  json_builder_end_object (b);
  root = json_builder_get_root (b);
  json = json_to_string (root, TRUE);

  /* a temporary file and a rename: a crash leaves the old or the new
   * entry, never half of one */
  return g_file_set_contents_full (j->entry_path, json, -1,
      G_FILE_SET_CONTENTS_CONSISTENT | G_FILE_SET_CONTENTS_DURABLE, 0600,
      error);
}

GFileOutputStream *
grok_imagine_journal_create_result (GrokImagineJournal * j, gchar ** tmp_path,
    GError ** error)
{
  g_autofree gchar *tmpl = g_strdup_printf ("%s.XXXXXX", j->result_path);
  g_autoptr (GFile) file = NULL;
  int fd = g_mkstemp_full (tmpl, O_RDWR | O_CLOEXEC, 0600);

  if (fd < 0) {
    int e = errno;

    g_set_error (error, G_IO_ERROR, g_io_error_from_errno (e),
        "Cannot create a file beside '%s': %s", j->result_path,
        g_strerror (e));
    return NULL;
  }
  close (fd);
  file = g_file_new_for_path (tmpl);
  *tmp_path = g_steal_pointer (&tmpl);
  return g_file_replace (file, NULL, FALSE, G_FILE_CREATE_PRIVATE, NULL,
      error);
}

gboolean
grok_imagine_journal_commit_result (GrokImagineJournal * j,
    const gchar * tmp_path, GrokImagineEntry * entry, GError ** error)
{
  GStatBuf st;

  if (g_stat (tmp_path, &st) != 0 || g_rename (tmp_path, j->result_path)) {
    int e = errno;

    g_set_error (error, G_IO_ERROR, g_io_error_from_errno (e),
        "Cannot store the result as '%s': %s", j->result_path, g_strerror (e));
    g_unlink (tmp_path);
    return FALSE;
  }
  entry->completed = TRUE;
  entry->size = st.st_size;
  return grok_imagine_journal_write (j, entry, error);
}
