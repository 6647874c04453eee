/* gst-grokimagine
 * Copyright (C) 2026 gst-grokimagine authors
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * grokimagine-journal: what a cache folder (cache-dir) of grokimaginesrc
 * paid for, and a way to drop an entry so that the next run submits anew.
 *
 *   grokimagine-journal [--json] list DIR
 *   grokimagine-journal [--json] forget DIR TASK-ID
 *
 * list says whose each entry is, when GROK_IMAGINE_API_KEY holds a key.
 */
#include "grokimagine-journal.h"

#include <json-glib/json-glib.h>
#include <locale.h>
#include <stdio.h>
#include <string.h>

/* An entry without a task id (submitting, in doubt) is named by the start
 * of its key */
#define SHORT_KEY 12

static gboolean json_output;
/* GROK_IMAGINE_API_KEY, to tell this account's entries: never printed */
static const gchar *api_key;

/* Whose entry @e is: "this" account's (of api_key at the entry's
 * base_url), "another" one's, "any" account's (an entry of an earlier
 * version, keyed without an account), or "unchecked" without api_key */
static const gchar *
account_of (const GrokImagineEntry * e)
{
  g_autofree gchar *tag = NULL;

  if (e->account_tag == NULL || e->base_url == NULL)
    return "any";
  if (api_key == NULL)
    return "unchecked";
  tag = grok_imagine_journal_account_tag (api_key, e->base_url);
  return g_str_equal (tag, e->account_tag) ? "this" : "another";
}

/* The account for a person: "this account at <base_url>", ... */
static gchar *
describe_account (const GrokImagineEntry * e)
{
  const gchar *account = account_of (e);

  if (g_str_equal (account, "any"))
    return g_strdup ("any account");
  if (g_str_equal (account, "unchecked"))
    return g_strdup_printf ("an account at %s (set GROK_IMAGINE_API_KEY to "
        "tell whose)", e->base_url);
  return g_strdup_printf ("%s account at %s", account, e->base_url);
}

static const gchar *
status_name (GrokImagineEntryState state, gboolean for_json)
{
  switch (state) {
    case GROK_IMAGINE_ENTRY_SUBMITTING:
      return "submitting";
    case GROK_IMAGINE_ENTRY_IN_DOUBT:
      return for_json ? "in-doubt" : "in doubt";
    case GROK_IMAGINE_ENTRY_SUBMITTED:
      return "pending";
    case GROK_IMAGINE_ENTRY_COMPLETED:
      return "completed";
    case GROK_IMAGINE_ENTRY_FAILED:
    default:
      return "failed";
  }
}

static gchar *
format_date (gint64 unix_us, gboolean for_json)
{
  g_autoptr (GDateTime) t = NULL;

  if (unix_us == 0)
    return NULL;
  t = g_date_time_new_from_unix_utc (unix_us / G_USEC_PER_SEC);
  if (t == NULL)
    return NULL;
  return for_json ? g_date_time_format_iso8601 (t) :
      g_date_time_format (t, "%Y-%m-%d %H:%M");
}

static gchar *
task_name (const gchar * key, const GrokImagineEntry * e)
{
  if (e && e->task_id)
    return g_strdup (e->task_id);
  return g_strdup_printf ("entry:%.*s", SHORT_KEY, key);
}

/* One line a person reads */
static void
print_entry (GrokImagineJournal * j, const gchar * key,
    const GrokImagineEntry * e, const GError * damage)
{
  g_autofree gchar *task = task_name (key, e);
  g_autofree gchar *submitted = NULL, *updated = NULL, *prompt = NULL;
  g_autofree gchar *api = NULL, *credits = NULL, *account = NULL;
  g_autoptr (GString) results = g_string_new (NULL);
  guint i, n;

  if (e == NULL) {
    g_print ("%-24s damaged: %s\n", task, damage->message);
    return;
  }
  api = e->api ? g_strdup_printf ("%s%s%s", e->api, e->model ? "/" : "",
      e->model ? e->model : "") : g_strdup ("?");
  prompt = e->prompt ? g_strdup_printf ("\"%s%s\"", e->prompt,
      g_utf8_strlen (e->prompt, -1) >= GROK_IMAGINE_ENTRY_PROMPT_START ?
      "..." : "") : g_strdup ("-");
  credits = e->credits >= 0 ? g_strdup_printf ("%" G_GINT64_FORMAT,
      e->credits) : g_strdup ("?");
  n = g_strv_length (e->result_urls);
  for (i = 0; i < n; i++) {
    guint64 size = grok_imagine_journal_stored_size (j, e, i);
    g_autofree gchar *human = size ? g_format_size (size) : NULL;

    g_string_append_printf (results, "%s#%u %s", i ? ", " : "", i,
        size ? human : "not stored");
  }
  if (n == 0)
    g_string_append (results, "no result");
  submitted = format_date (e->submitted_at, FALSE);
  updated = format_date (e->updated_at, FALSE);
  account = describe_account (e);
  g_print ("%-24s %-29s %-9s %5s credits  %s  %s  submitted %s  updated %s"
      "  %s%s%s\n", task, api, status_name (e->state, FALSE), credits, prompt,
      results->str, submitted ? submitted : "?", updated ? updated : "?",
      account, e->error_message ? "  error: " : "",
      e->error_message ? e->error_message : "");
}

static void
add_member_string (JsonBuilder * b, const gchar * name, const gchar * value)
{
  json_builder_set_member_name (b, name);
  if (value)
    json_builder_add_string_value (b, value);
  else
    json_builder_add_null_value (b);
}

static void
build_entry (JsonBuilder * b, GrokImagineJournal * j, const gchar * key,
    const GrokImagineEntry * e, const GError * damage)
{
  g_autofree gchar *submitted = NULL, *updated = NULL;
  guint i;

  json_builder_begin_object (b);
  add_member_string (b, "entry", key);
  if (e == NULL) {
    add_member_string (b, "status", "damaged");
    add_member_string (b, "error", damage->message);
    json_builder_end_object (b);
    return;
  }
  add_member_string (b, "task_id", e->task_id);
  add_member_string (b, "api", e->api);
  add_member_string (b, "model", e->model);
  add_member_string (b, "prompt", e->prompt);
  add_member_string (b, "status", status_name (e->state, TRUE));
  json_builder_set_member_name (b, "credits");
  if (e->credits >= 0)
    json_builder_add_int_value (b, e->credits);
  else
    json_builder_add_null_value (b);
  json_builder_set_member_name (b, "results");
  json_builder_begin_array (b);
  for (i = 0; e->result_urls[i]; i++) {
    json_builder_begin_object (b);
    json_builder_set_member_name (b, "index");
    json_builder_add_int_value (b, i);
    add_member_string (b, "url", e->result_urls[i]);
    json_builder_set_member_name (b, "stored_size");
    json_builder_add_int_value (b, grok_imagine_journal_stored_size (j, e,
            i));
    json_builder_end_object (b);
  }
  json_builder_end_array (b);
  submitted = format_date (e->submitted_at, TRUE);
  updated = format_date (e->updated_at, TRUE);
  add_member_string (b, "submitted_at", submitted);
  add_member_string (b, "updated_at", updated);
  add_member_string (b, "error_message", e->error_message);
  add_member_string (b, "account", account_of (e));
  add_member_string (b, "base_url", e->base_url);
  json_builder_end_object (b);
}

static void
print_json (JsonBuilder * b)
{
  g_autoptr (JsonNode) root = json_builder_get_root (b);
  g_autofree gchar *text = json_to_string (root, TRUE);

  g_print ("%s\n", text);
}

static int
list (const gchar * dir)
{
  g_autoptr (GError) err = NULL;
  g_autoptr (JsonBuilder) b = json_builder_new ();
  g_auto (GStrv) keys = grok_imagine_dir_list_keys (dir, &err);
  gint64 total = 0;
  guint i;

  if (keys == NULL) {
    g_printerr ("Cannot list '%s': %s\n", dir, err->message);
    return 1;
  }
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "entries");
  json_builder_begin_array (b);
  for (i = 0; keys[i]; i++) {
    g_autoptr (GrokImagineJournal) j = grok_imagine_journal_open (dir,
        keys[i], &err);
    g_autoptr (GrokImagineEntry) e = NULL;

    if (j == NULL)
      break;
    e = grok_imagine_journal_read (j, &err);
    /* removed since the listing: nothing to show */
    if (e == NULL && err == NULL)
      continue;
    if (json_output)
      build_entry (b, j, keys[i], e, err);
    else
      print_entry (j, keys[i], e, err);
    g_clear_error (&err);
  }
  json_builder_end_array (b);
  if (err) {
    g_printerr ("Cannot read '%s': %s\n", dir, err->message);
    return 1;
  }
  if (!grok_imagine_dir_read_ledger (dir, &total, &err)) {
    g_printerr ("%s\n", err->message);
    return 1;
  }
  json_builder_set_member_name (b, "ledger_credits");
  json_builder_add_int_value (b, total);
  json_builder_end_object (b);
  if (json_output)
    print_json (b);
  else
    g_print ("Ledger: %" G_GINT64_FORMAT " credits charged in all (%u "
        "entr%s)\n", total, g_strv_length (keys),
        g_strv_length (keys) == 1 ? "y" : "ies");
  return 0;
}

/* The entry of task @id, or the entry whose key starts with @id (at least
 * SHORT_KEY characters: an entry without a task) */
static gchar *
find_entry (const gchar * dir, const gchar * id, GError ** error)
{
  g_auto (GStrv) keys = grok_imagine_dir_list_keys (dir, error);
  const gchar *key = id;
  guint i;

  if (keys == NULL)
    return NULL;
  if (g_str_has_prefix (key, "entry:"))
    key += strlen ("entry:");
  for (i = 0; keys[i]; i++) {
    g_autoptr (GrokImagineJournal) j = grok_imagine_journal_open (dir,
        keys[i], NULL);
    g_autoptr (GrokImagineEntry) e = j ? grok_imagine_journal_read (j,
        NULL) : NULL;

    if ((e && g_strcmp0 (e->task_id, id) == 0)
        || (strlen (key) >= SHORT_KEY && g_str_has_prefix (keys[i], key)))
      return g_strdup (keys[i]);
  }
  g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND, "No entry of the "
      "journal '%s' is task or entry '%s' (see grokimagine-journal list)",
      dir, id);
  return NULL;
}

static int
forget (const gchar * dir, const gchar * id)
{
  g_autoptr (GError) err = NULL;
  g_autoptr (GrokImagineJournal) j = NULL;
  g_autofree gchar *key = find_entry (dir, id, &err);

  if (key)
    j = grok_imagine_journal_open (dir, key, &err);
  if (j == NULL || !grok_imagine_journal_forget (j, &err)) {
    g_printerr ("Cannot forget '%s': %s\n", id, err->message);
    return 1;
  }
  if (json_output) {
    g_autoptr (JsonBuilder) b = json_builder_new ();

    json_builder_begin_object (b);
    add_member_string (b, "forgotten", id);
    add_member_string (b, "entry", key);
    json_builder_end_object (b);
    print_json (b);
  } else {
    g_print ("Forgot %s: the next run of its request submits it anew (and "
        "pays again). The ledger keeps its credits.\n", id);
  }
  return 0;
}

int
main (int argc, char **argv)
{
  GOptionEntry options[] = {
    {"json", 'j', 0, G_OPTION_ARG_NONE, &json_output,
        "Print JSON for scripts", NULL},
    {NULL}
  };
  g_autoptr (GOptionContext) ctx = NULL;
  g_autoptr (GError) err = NULL;

  setlocale (LC_ALL, "");
  api_key = g_getenv ("GROK_IMAGINE_API_KEY");
  if (api_key && *api_key == '\0')
    api_key = NULL;
  ctx = g_option_context_new ("list DIR | forget DIR TASK-ID");
  g_option_context_set_summary (ctx, "Shows what a grokimaginesrc cache "
      "folder (cache-dir) paid for, and the credits its ledger counts; "
      "forget drops an entry (e.g. one in doubt, after checking the "
      "account's history) so that the next run submits anew. With "
      "GROK_IMAGINE_API_KEY set, list tells the entries of its account "
      "from those of others.");
  g_option_context_add_main_entries (ctx, options, NULL);
  if (!g_option_context_parse (ctx, &argc, &argv, &err)) {
    g_printerr ("%s\n", err->message);
    return 2;
  }
  if (argc < 2 || (!(g_str_equal (argv[1], "list") && argc == 3)
          && !(g_str_equal (argv[1], "forget") && argc == 4))) {
    g_autofree gchar *help = g_option_context_get_help (ctx, TRUE, NULL);

    g_printerr ("%s", help);
    return 2;
  }
  if (!grok_imagine_dir_is_journal (argv[2], &err)) {
    g_printerr ("Refusing to touch it: %s\n", err->message);
    return 1;
  }
  return g_str_equal (argv[1], "list") ? list (argv[2]) :
      forget (argv[2], argv[3]);
}
