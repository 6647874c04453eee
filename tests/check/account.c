/* Accounts and the cache folder: one cache-dir shared by two API keys keeps
 * each key's tasks and results apart, and writes neither key. */
#include "common.h"

#include <string.h>

#define OTHER_KEY "second-account-key"

static gchar *cache_dir;

static void
start_two_key_simulator (void)
{
  const gchar *args[] = { "--key", SIM_KEY, "--key", OTHER_KEY,
    "--job-duration", "300", NULL
  };
  g_autoptr (GError) err = NULL;

  sim = sim_start (args, &err);
  fail_unless (sim != NULL, "cannot start the simulator: %s",
      err ? err->message : "?");
}

static void
fresh_cache (void)
{
  setup ();
  g_free (cache_dir);
  cache_dir = g_dir_make_tmp ("grokimagine-account-XXXXXX", NULL);
  fail_unless (cache_dir != NULL);
}

static void
remove_cache (void)
{
  teardown ();
  remove_folder (cache_dir);
}

static Run *
run_as (const gchar * key, const gchar * prompt)
{
  g_autofree gchar *props = g_strdup_printf ("cache-dir=%s api-key=%s "
      "prompt=\"%s\"", cache_dir, key, prompt);

  return run_src (props, "fakesink");
}

static gboolean
was_cached (Run * r)
{
  gboolean cached = FALSE;

  return gst_structure_get_boolean (last_task (r), "cached", &cached)
      && cached;
}

/* Whether a file of the folder holds @text */
static gboolean
folder_holds (const gchar * text)
{
  g_autoptr (GDir) d = g_dir_open (cache_dir, 0, NULL);
  const gchar *name;

  while (d && (name = g_dir_read_name (d))) {
    g_autofree gchar *path = g_build_filename (cache_dir, name, NULL);
    g_autofree gchar *data = NULL;
    gsize len = 0;

    if (strstr (name, text)
        || (g_file_get_contents (path, &data, &len, NULL)
            && g_strstr_len (data, len, text)))
      return TRUE;
  }
  return FALSE;
}

/* The same request with a second key on a shared cache-dir is a job of its
 * own: it is neither served the first key's stored result nor attached to
 * its task; each key is then served its own */
GST_START_TEST (test_two_keys_one_cache_dir)
{
  g_autoptr (Run) a = NULL, b = NULL, a2 = NULL, b2 = NULL;
  g_autofree gchar *task_a = NULL, *task_b = NULL;

  a = run_as (SIM_KEY, "one request, two accounts");
  assert_ok (a);
  fail_if (was_cached (a));
  task_a = g_strdup (gst_structure_get_string (last_task (a), "task-id"));

  b = run_as (OTHER_KEY, "one request, two accounts");
  assert_ok (b);
  fail_if (was_cached (b), "the second key was served the first's result");
  fail_unless_equals_int (sim_stat (sim, "accepted_submits"), 2);
  task_b = g_strdup (gst_structure_get_string (last_task (b), "task-id"));
  fail_if (g_strcmp0 (task_a, task_b) == 0);

  /* each key is served its own, with no request */
  a2 = run_as (SIM_KEY, "one request, two accounts");
  assert_ok (a2);
  fail_unless (was_cached (a2));
  fail_unless_equals_string (gst_structure_get_string (last_task (a2),
          "task-id"), task_a);
  b2 = run_as (OTHER_KEY, "one request, two accounts");
  assert_ok (b2);
  fail_unless (was_cached (b2));
  fail_unless_equals_string (gst_structure_get_string (last_task (b2),
          "task-id"), task_b);
  fail_unless_equals_int (sim_stat (sim, "accepted_submits"), 2);

  /* neither key is written to the folder */
  fail_if (folder_holds (SIM_KEY));
  fail_if (folder_holds (OTHER_KEY));
}

GST_END_TEST;

static Suite *
account_suite (void)
{
  Suite *s = suite_create ("grokimagine-account");
  TCase *tc = tcase_create ("general");

  suite_add_tcase (s, tc);
  tcase_set_timeout (tc, 120);
  tcase_add_unchecked_fixture (tc, start_two_key_simulator, stop_simulator);
  tcase_add_checked_fixture (tc, fresh_cache, remove_cache);
  tcase_add_test (tc, test_two_keys_one_cache_dir);
  return s;
}

GST_CHECK_MAIN (account);
