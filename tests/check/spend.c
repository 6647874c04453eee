/* Spend control: the credit cap (max-credits) and its ledger, the bounded
 * cache folder (cache-max-size), and the grokimagine-journal tool. */
#include "common.h"

#include <json-glib/json-glib.h>
#include <fcntl.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "grokimagine-api.h"
#include "grokimagine-journal.h"

static gchar *cache_dir;

static void
fresh_cache (void)
{
  setup ();
  g_free (cache_dir);
  cache_dir = g_dir_make_tmp ("grokimagine-spend-XXXXXX", NULL);
  fail_unless (cache_dir != NULL);
}

/* Removes the folder of the test (it holds files only) */
static void
remove_cache (void)
{
  teardown ();
  remove_folder (cache_dir);
}

/* A file of this process in the temporary folder */
static gchar *
own_temp (const gchar * what)
{
  g_autofree gchar *name = g_strdup_printf ("grokimagine-spend-%d-%s",
      (int) getpid (), what);

  return temp_path (name);
}

/* A run with the cache folder, its result into @out (NULL: fakesink) */
static Run *
run_cached (const gchar * props, const gchar * out)
{
  g_autofree gchar *all = g_strdup_printf ("cache-dir=%s %s", cache_dir,
      props);
  g_autofree gchar *tail = out ? g_strdup_printf ("filesink location=%s",
      out) : g_strdup ("fakesink");

  return run_src (all, tail);
}

static gint64
ledger_of (const GstStructure * task)
{
  gint64 credits = -1;

  fail_unless (gst_structure_get_int64 (task, "ledger-credits", &credits),
      "no ledger-credits in %" GST_PTR_FORMAT, task);
  return credits;
}

static gint64
ledger (void)
{
  g_autoptr (GError) err = NULL;
  gint64 total = -1;

  fail_unless (grok_imagine_dir_read_ledger (cache_dir, &total, &err), "%s",
      err ? err->message : "");
  return total;
}

/* The bytes of the folder's files, and how many end in @suffix */
static guint64
folder_size (const gchar * suffix, guint * count)
{
  g_autoptr (GDir) d = g_dir_open (cache_dir, 0, NULL);
  const gchar *name;
  guint64 total = 0;

  *count = 0;
  while (d && (name = g_dir_read_name (d))) {
    g_autofree gchar *path = g_build_filename (cache_dir, name, NULL);
    GStatBuf st;

    if (g_stat (path, &st) == 0)
      total += st.st_size;
    if (g_str_has_suffix (name, suffix))
      (*count)++;
  }
  return total;
}

static void
exited (GObject * p, GAsyncResult * res, gpointer loop)
{
  g_subprocess_wait_finish (G_SUBPROCESS (p), res, NULL);
  g_main_loop_quit (loop);
}

static gboolean
too_long (gpointer p)
{
  g_subprocess_force_exit (p);
  return G_SOURCE_REMOVE;
}

/* Waits for @p, killing it after 60 s; TRUE when it exited with 0 */
static gboolean
finished_ok (GSubprocess * p)
{
  g_autoptr (GMainContext) ctx = g_main_context_new ();
  g_autoptr (GMainLoop) loop = g_main_loop_new (ctx, FALSE);
  g_autoptr (GSource) timer = g_timeout_source_new_seconds (60);

  g_main_context_push_thread_default (ctx);
  g_source_set_callback (timer, too_long, p, NULL);
  g_source_attach (timer, ctx);
  g_subprocess_wait_async (p, NULL, exited, loop);
  g_main_loop_run (loop);
  g_source_destroy (timer);
  g_main_context_pop_thread_default (ctx);
  return g_subprocess_get_successful (p);
}

/* gst-launch-1.0 with the cache folder and GROK_IMAGINE_MAX_CREDITS */
static GSubprocess *
spawn_capped (const gchar * prompt, const gchar * max_credits)
{
  g_autoptr (GSubprocessLauncher) l =
      g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDOUT_SILENCE |
      G_SUBPROCESS_FLAGS_STDERR_SILENCE);
  g_autofree gchar *base = g_strdup_printf ("base-url=%s", sim_api_url (sim));
  g_autofree gchar *cache = g_strdup_printf ("cache-dir=%s", cache_dir);
  g_autofree gchar *p = g_strdup_printf ("prompt=%s", prompt);
  g_autoptr (GError) err = NULL;
  GSubprocess *proc;

  g_subprocess_launcher_setenv (l, "GROK_IMAGINE_MAX_CREDITS", max_credits,
      TRUE);
  proc = g_subprocess_launcher_spawn (l, &err, "gst-launch-1.0", "-q",
      "grokimaginesrc", base, "api-key=" SIM_KEY, cache, p,
      "poll-interval=50", "!", "fakesink", NULL);
  fail_unless (proc != NULL, "%s", err ? err->message : "");
  return proc;
}

/* Runs grokimagine-journal with @args; its output (stdout and stderr) in
 * *out; TRUE when it exited with 0 */
static gboolean
run_tool (gchar ** out, const gchar * first, ...)
{
  g_autoptr (GSubprocessLauncher) l =
      g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDERR_MERGE);
  g_autofree gchar *log = own_temp ("tool.txt");
  g_autoptr (GPtrArray) argv = g_ptr_array_new ();
  g_autoptr (GSubprocess) p = NULL;
  g_autoptr (GError) err = NULL;
  const gchar *arg;
  gboolean ok;
  va_list args;

  fail_unless (g_getenv ("GROKIMAGINE_JOURNAL_TOOL") != NULL);
  g_ptr_array_add (argv, (gpointer) g_getenv ("GROKIMAGINE_JOURNAL_TOOL"));
  va_start (args, first);
  for (arg = first; arg; arg = va_arg (args, const gchar *))
    g_ptr_array_add (argv, (gpointer) arg);
  va_end (args);
  g_ptr_array_add (argv, NULL);

  g_subprocess_launcher_set_stdout_file_path (l, log);
  p = g_subprocess_launcher_spawnv (l, (const gchar * const *) argv->pdata,
      &err);
  fail_unless (p != NULL, "%s", err ? err->message : "");
  ok = finished_ok (p);
  fail_unless (g_file_get_contents (log, out, NULL, NULL));
  g_unlink (log);
  return ok;
}

static JsonObject *
tool_json (JsonParser * parser)
{
  g_autofree gchar *out = NULL;
  g_autoptr (GError) err = NULL;
  JsonNode *root;

  fail_unless (run_tool (&out, "--json", "list", cache_dir, NULL), "%s", out);
  fail_unless (json_parser_load_from_data (parser, out, -1, &err), "%s: %s",
      err ? err->message : "", out);
  root = json_parser_get_root (parser);
  fail_unless (root && JSON_NODE_HOLDS_OBJECT (root));
  return json_node_get_object (root);
}

/* --- the credit cap ---------------------------------------------------------- */

/* The case: 50 credits on the 40-credit v1 API pay for one job,
 * and the second fails before any request */
GST_START_TEST (test_v1_cap_one_paid_request)
{
  g_autoptr (Run) r1 = NULL, r2 = NULL;

  r1 = run_cached ("max-credits=50 prompt=first", NULL);
  assert_ok (r1);
  fail_unless_equals_int (ledger_of (last_task (r1)), 40);
  r2 = run_cached ("max-credits=50 prompt=second", NULL);
  assert_error (r2, GST_RESOURCE_ERROR_NOT_AUTHORIZED, "costs 40 credits");
  assert_error (r2, GST_RESOURCE_ERROR_NOT_AUTHORIZED, "counts 40");
  assert_error (r2, GST_RESOURCE_ERROR_NOT_AUTHORIZED, "max-credits=50");
  fail_unless_equals_int (sim_stat (sim, "generate_requests"), 1);
  fail_unless_equals_int (sim_stat (sim, "accepted_submits"), 1);
  fail_unless_equals_int (ledger (), 40);

  /* the request already paid for is still served */
  run_free (g_steal_pointer (&r1));
  r1 = run_cached ("max-credits=50 prompt=first", NULL);
  assert_ok (r1);
  fail_unless_equals_int (sim_stat (sim, "generate_requests"), 1);
}

GST_END_TEST;

/* Without a journal the element's own jobs are capped */
GST_START_TEST (test_cap_without_journal)
{
  g_autofree gchar *desc = src_desc ("max-credits=79 prompt=own");
  g_autofree gchar *full = g_strdup_printf ("%s ! fakesink", desc);
  g_autoptr (GstElement) pipeline = launch (full);
  g_autoptr (GstElement) src = NULL;
  g_autoptr (Run) r1 = NULL, r2 = NULL;

  fail_unless (pipeline != NULL);
  src = gst_bin_get_by_name (GST_BIN (pipeline), "src");
  r1 = run_pipeline (pipeline);
  assert_ok (r1);
  g_object_set (src, "prompt", "own again", NULL);
  r2 = run_pipeline (pipeline);
  assert_error (r2, GST_RESOURCE_ERROR_NOT_AUTHORIZED, "this element's");
  assert_error (r2, GST_RESOURCE_ERROR_NOT_AUTHORIZED, "max-credits=79");
  fail_unless_equals_int (sim_stat (sim, "generate_requests"), 1);
}

GST_END_TEST;

/* Two processes at once, room for one job: the ledger's lock lets exactly
 * one of them pay. While the test holds that lock, neither may send its
 * POST. GROK_IMAGINE_MAX_CREDITS sets the cap. */
GST_START_TEST (test_cap_across_two_processes)
{
  g_autofree gchar *lock = g_build_filename (cache_dir, "journal.lock", NULL);
  g_autoptr (GSubprocess) a = NULL, b = NULL;
  gboolean a_ok, b_ok;
  gint64 early;
  int fd = g_open (lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);

  fail_unless (fd >= 0 && flock (fd, LOCK_EX) == 0);
  a = spawn_capped ("process a", "60");
  b = spawn_capped ("process b", "60");
  /* both get to the ledger and wait there */
  g_usleep (1500 * G_TIME_SPAN_MILLISECOND);
  early = sim_stat (sim, "generate_requests");
  flock (fd, LOCK_UN);
  close (fd);
  a_ok = finished_ok (a);
  b_ok = finished_ok (b);
  fail_unless_equals_int (early, 0);
  fail_unless (a_ok != b_ok, "exactly one may succeed: %d %d", a_ok, b_ok);
  fail_unless_equals_int (sim_stat (sim, "generate_requests"), 1);
  fail_unless_equals_int (ledger (), 40);
}

GST_END_TEST;

GST_START_TEST (test_bad_max_credits_env)
{
  g_autoptr (Run) r = NULL;

  g_setenv ("GROK_IMAGINE_MAX_CREDITS", "lots", TRUE);
  r = run_cached ("prompt=env", NULL);
  g_unsetenv ("GROK_IMAGINE_MAX_CREDITS");
  assert_error (r, GST_RESOURCE_ERROR_SETTINGS, "GROK_IMAGINE_MAX_CREDITS");
  fail_unless_equals_int (sim_stat (sim, "generate_requests"), 0);
}

GST_END_TEST;

/* A failed grok5imagine task is refunded: the ledger gives its price back,
 * so a cap of one job still lets the next one through */
GST_START_TEST (test_refund_corrects_ledger)
{
  g_autoptr (Run) r1 = NULL, r2 = NULL;
  const gchar *props = "api=grok5imagine model=text-to-video max-credits=24";
  g_autofree gchar *p1 = g_strdup_printf ("%s prompt=refunded", props);
  g_autofree gchar *p2 = g_strdup_printf ("%s prompt=paid", props);

  fail_unless (sim_set_faults (sim, "{\"fail_tasks\": \"grok imagine build "
          "failed\"}"));
  r1 = run_cached (p1, NULL);
  assert_error (r1, GST_RESOURCE_ERROR_FAILED, "build failed");
  fail_unless_equals_int (ledger_of (last_task (r1)), 0);
  fail_unless_equals_int (ledger (), 0);

  fail_unless (sim_reset (sim));
  r2 = run_cached (p2, NULL);
  assert_ok (r2);
  fail_unless_equals_int (ledger_of (last_task (r2)), 24);
  fail_unless_equals_int (sim_stat (sim, "accepted_submits"), 1);
}

GST_END_TEST;

/* A POST the server certainly refused costs nothing */
GST_START_TEST (test_refused_post_not_counted)
{
  g_autoptr (Run) r = NULL;

  fail_unless (sim_set_faults (sim, "{\"generate_status\": 402}"));
  r = run_cached ("max-credits=40 prompt=broke", NULL);
  assert_error (r, GST_RESOURCE_ERROR_NOT_AUTHORIZED, "insufficient credits");
  fail_unless_equals_int (ledger (), 0);
}

GST_END_TEST;

/* --- the bounded folder ------------------------------------------------------ */

/* Past cache-max-size the oldest results go, never the task records; a
 * re-run of an evicted one polls its task and downloads again, no POST */
GST_START_TEST (test_eviction_keeps_folder_under_size)
{
  g_autofree gchar *out = own_temp ("evicted.mp4");
  g_autofree gchar *props = NULL, *p0 = NULL;
  g_auto (GStrv) keys = NULL;
  g_autoptr (Run) r = NULL;
  g_autoptr (GBytes) before = NULL, again = NULL;
  guint64 one, max;
  guint n, i;
  gint64 polls;

  r = run_cached ("prompt=evict-0", out);
  assert_ok (r);
  before = read_file (out);
  one = folder_size (".result", &n);
  fail_unless_equals_int (n, 1);
  /* room for one result and some, not for two */
  max = one + g_bytes_get_size (before) / 2;
  props = g_strdup_printf ("cache-max-size=%" G_GUINT64_FORMAT, max);

  for (i = 1; i < 3; i++) {
    g_autofree gchar *p = g_strdup_printf ("%s prompt=evict-%u", props, i);

    run_free (g_steal_pointer (&r));
    r = run_cached (p, NULL);
    assert_ok (r);
    fail_unless (folder_size (".result", &n) <= max);
    fail_unless_equals_int (n, 1);
  }
  keys = grok_imagine_dir_list_keys (cache_dir, NULL);
  fail_unless_equals_int (g_strv_length (keys), 3);
  /* finished runs leave no entry lock and no temporary file */
  folder_size (".lock", &n);
  fail_unless_equals_int (n, 1);        /* the folder's own */
  folder_size (".tmp-", &n);
  fail_unless_equals_int (n, 0);

  /* the first result was evicted: its task is polled, nothing is paid */
  polls = sim_stat (sim, "status_requests");
  p0 = g_strdup_printf ("%s prompt=evict-0", props);
  run_free (g_steal_pointer (&r));
  r = run_cached (p0, out);
  assert_ok (r);
  again = read_file (out);
  g_unlink (out);
  fail_unless_equals_int (sim_stat (sim, "accepted_submits"), 3);
  fail_unless (sim_stat (sim, "status_requests") > polls);
  fail_unless (g_bytes_equal (before, again));
  fail_unless (folder_size (".result", &n) <= max);
}

GST_END_TEST;

/* An evicted result whose URL has expired by the re-run: an error that
 * says so and names the task, still no POST */
GST_START_TEST (test_evicted_result_url_expired)
{
  g_autoptr (Run) r1 = NULL, r2 = NULL, r3 = NULL;
  g_autofree gchar *task = NULL;

  r1 = run_cached ("cache-max-size=1 prompt=expiring", NULL);
  assert_ok (r1);
  task = g_strdup (gst_structure_get_string (last_task (r1), "task-id"));
  r2 = run_cached ("cache-max-size=1 prompt=newer", NULL);
  assert_ok (r2);
  fail_unless (sim_set_faults (sim, "{\"cdn_status\": 410}"));
  r3 = run_cached ("cache-max-size=1 prompt=expiring", NULL);
  assert_error (r3, GST_RESOURCE_ERROR_NOT_FOUND, "expired");
  assert_error (r3, GST_RESOURCE_ERROR_NOT_FOUND, task);
  fail_unless_equals_int (sim_stat (sim, "accepted_submits"), 2);
}

GST_END_TEST;

/* --- grokimagine-journal ----------------------------------------------------- */

GST_START_TEST (test_tool_list_and_forget)
{
  g_autoptr (Run) r1 = NULL, r2 = NULL, r3 = NULL;
  g_autofree gchar *out = NULL, *forgot = NULL;
  const gchar *task;

  r1 = run_cached ("prompt=listed", NULL);
  assert_ok (r1);
  task = gst_structure_get_string (last_task (r1), "task-id");
  fail_unless (sim_set_faults (sim, "{\"fail_tasks\": \"Inappropriate "
          "content\"}"));
  r2 = run_cached ("api=grok5imagine model=text-to-image prompt=failing",
      NULL);
  fail_unless (r2->error != NULL);

  fail_unless (run_tool (&out, "list", cache_dir, NULL), "%s", out);
  fail_unless (strstr (out, task) != NULL, "%s", out);
  fail_unless (strstr (out, "grokimagineapi") != NULL, "%s", out);
  fail_unless (strstr (out, "grok5imagine/text-to-image") != NULL, "%s",
      out);
  fail_unless (strstr (out, "\"listed\"") != NULL, "%s", out);
  fail_unless (strstr (out, "completed") != NULL, "%s", out);
  fail_unless (strstr (out, "failed") != NULL, "%s", out);
  fail_unless (strstr (out, "Ledger: 40 credits") != NULL, "%s", out);

  /* forgotten, the request is submitted anew */
  fail_unless (run_tool (&forgot, "forget", cache_dir, task, NULL), "%s",
      forgot);
  fail_unless (sim_reset (sim));
  r3 = run_cached ("prompt=listed", NULL);
  assert_ok (r3);
  fail_unless_equals_int (sim_stat (sim, "accepted_submits"), 1);
  fail_if (g_str_equal (gst_structure_get_string (last_task (r3), "task-id"),
          task));
}

GST_END_TEST;

GST_START_TEST (test_tool_json)
{
  g_autoptr (JsonParser) parser = json_parser_new ();
  g_autoptr (Run) r = NULL;
  JsonObject *top, *e, *res;
  JsonArray *entries;

  r = run_cached ("prompt=scripted", NULL);
  assert_ok (r);
  top = tool_json (parser);
  fail_unless_equals_int (json_object_get_int_member (top, "ledger_credits"),
      40);
  entries = json_object_get_array_member (top, "entries");
  fail_unless_equals_int (json_array_get_length (entries), 1);
  e = json_array_get_object_element (entries, 0);
  fail_unless_equals_string (json_object_get_string_member (e, "task_id"),
      gst_structure_get_string (last_task (r), "task-id"));
  fail_unless_equals_string (json_object_get_string_member (e, "api"),
      "grokimagineapi");
  fail_unless_equals_string (json_object_get_string_member (e, "prompt"),
      "scripted");
  fail_unless_equals_string (json_object_get_string_member (e, "status"),
      "completed");
  fail_unless_equals_int (json_object_get_int_member (e, "credits"), 40);
  res = json_array_get_object_element (json_object_get_array_member (e,
          "results"), 0);
  fail_unless (json_object_get_int_member (res, "stored_size") > 1000);
  fail_unless (json_object_get_string_member (e, "submitted_at") != NULL);
}

GST_END_TEST;

/* An entry in doubt has no task id: it is forgotten by its entry name */
GST_START_TEST (test_tool_forgets_in_doubt)
{
  g_autoptr (JsonParser) parser = json_parser_new ();
  g_autoptr (Run) r1 = NULL, r2 = NULL;
  g_autofree gchar *out = NULL, *name = NULL;
  JsonObject *e;

  fail_unless (sim_set_faults (sim, "{\"generate_drop\": true}"));
  r1 = run_cached ("prompt=doubtful", NULL);
  assert_error (r1, GST_RESOURCE_ERROR_READ, "not submitted again");
  e = json_array_get_object_element (json_object_get_array_member
      (tool_json (parser), "entries"), 0);
  fail_unless_equals_string (json_object_get_string_member (e, "status"),
      "in-doubt");
  name = g_strdup_printf ("entry:%.12s", json_object_get_string_member (e,
          "entry"));
  fail_unless (run_tool (&out, "forget", cache_dir, name, NULL), "%s", out);

  fail_unless (sim_reset (sim));
  r2 = run_cached ("prompt=doubtful", NULL);
  assert_ok (r2);
  fail_unless_equals_int (sim_stat (sim, "accepted_submits"), 1);
}

GST_END_TEST;

GST_START_TEST (test_tool_refuses_other_folders)
{
  g_autofree gchar *dir = g_dir_make_tmp ("grokimagine-notes-XXXXXX", NULL);
  g_autofree gchar *file = g_build_filename (dir, "notes.txt", NULL);
  g_autofree gchar *out = NULL, *out2 = NULL;

  fail_unless (g_file_set_contents (file, "mine", -1, NULL));
  fail_if (run_tool (&out, "list", dir, NULL));
  fail_unless (strstr (out, "not a journal") != NULL, "%s", out);
  fail_if (run_tool (&out2, "forget", dir, "task_1", NULL));
  fail_unless (g_file_test (file, G_FILE_TEST_EXISTS));
  g_unlink (file);
  g_rmdir (dir);
}

GST_END_TEST;

/* The ledger takes what the API reports a task cost over the price */
GST_START_TEST (test_ledger_takes_reported_credits)
{
  g_autoptr (JsonBuilder) b = json_builder_new ();
  g_autoptr (JsonNode) root = NULL;
  g_autoptr (Run) r1 = NULL, r2 = NULL;
  g_autofree gchar *body = NULL, *faults = NULL;

  r1 = run_cached ("prompt=priced", NULL);
  assert_ok (r1);
  body = g_strdup_printf ("{\"code\": 200, \"message\": \"success\", "
      "\"data\": {\"task_id\": \"task_1\", \"status\": \"completed\", "
      "\"consumed_credits\": 30, \"response\": [\"%s\"]}}",
      result_url (last_task (r1), 0));
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "status_body");
  json_builder_add_string_value (b, body);
  json_builder_end_object (b);
  root = json_builder_get_root (b);
  faults = json_to_string (root, FALSE);
  fail_unless (sim_set_faults (sim, faults));

  r2 = run_cached ("prompt=discounted", NULL);
  assert_ok (r2);
  fail_unless_equals_int (ledger_of (last_task (r2)), 70);
  fail_unless_equals_int (ledger (), 70);
}

GST_END_TEST;

/* A ledger that cannot be read stops a capped job before any request; an
 * uncapped one only warns */
GST_START_TEST (test_damaged_ledger)
{
  g_autofree gchar *path = g_build_filename (cache_dir, "journal.ledger",
      NULL);
  g_autoptr (Run) r1 = NULL, r2 = NULL;

  fail_unless (g_file_set_contents (path, "{\"version\": 1, \"cred", -1,
          NULL));
  r1 = run_cached ("max-credits=100 prompt=unchecked", NULL);
  assert_error (r1, GST_RESOURCE_ERROR_READ, "max-credits cannot be checked");
  assert_error (r1, GST_RESOURCE_ERROR_READ, path);
  fail_unless_equals_int (sim_stat (sim, "generate_requests"), 0);

  r2 = run_cached ("prompt=unchecked", NULL);
  assert_ok (r2);
  fail_unless (run_has_warning (r2, "ledger"));
}

GST_END_TEST;

/* Entries written before the ledger existed still read, as not counted */
GST_START_TEST (test_older_entry_reads)
{
  g_autoptr (GrokImagineJournal) j = grok_imagine_journal_open (cache_dir,
      "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
      NULL);
  g_autoptr (GrokImagineEntry) e = NULL;
  g_autoptr (GError) err = NULL;
  g_autofree gchar *out = NULL;

  fail_unless (g_file_set_contents (grok_imagine_journal_get_entry_path (j),
          "{\"version\": 2, \"state\": \"submitted\", \"task_id\": "
          "\"task_old\", \"result_urls\": [], \"stored\": []}", -1, NULL));
  e = grok_imagine_journal_read (j, &err);
  fail_unless (e != NULL, "%s", err ? err->message : "");
  fail_unless_equals_int (e->credits, -1);
  fail_unless (e->api == NULL && e->prompt == NULL);
  fail_unless (run_tool (&out, "list", cache_dir, NULL), "%s", out);
  fail_unless (strstr (out, "task_old") != NULL, "%s", out);
  fail_unless (strstr (out, "pending") != NULL, "%s", out);
}

GST_END_TEST;

/* Serving a stored result makes it recent: the one not used goes first */
GST_START_TEST (test_eviction_is_least_recently_used)
{
  g_autoptr (Run) r = NULL;
  g_autofree gchar *props = NULL;
  const gchar *order[] = { "lru-a", "lru-b", "lru-a", "lru-c", "lru-a" };
  guint64 one;
  guint n, i;

  r = run_cached ("prompt=lru-0", NULL);
  assert_ok (r);
  one = folder_size (".result", &n);
  /* room for two results, not three */
  props = g_strdup_printf ("cache-max-size=%" G_GUINT64_FORMAT, 2 * one +
      one / 4);
  for (i = 0; i < G_N_ELEMENTS (order); i++) {
    g_autofree gchar *p = g_strdup_printf ("%s prompt=%s", props, order[i]);

    run_free (g_steal_pointer (&r));
    r = run_cached (p, NULL);
    assert_ok (r);
  }
  /* lru-a was served from the folder each time it came again */
  fail_unless_equals_int (sim_stat (sim, "accepted_submits"), 4);
  fail_unless (gst_structure_has_field (last_task (r), "cached"));
}

GST_END_TEST;

/* The documented prices the ledger counts at submit */
GST_START_TEST (test_prices)
{
  GrokImagineRequest req = { GROK_IMAGINE_API_V1, };
  const struct
  {
    GrokImagineModel model;
    gint64 credits;
  } grok5[] = {
    {GROK_IMAGINE_MODEL_TEXT_TO_IMAGE, 5},
    {GROK_IMAGINE_MODEL_TEXT_TO_VIDEO, 24},
    {GROK_IMAGINE_MODEL_IMAGE_TO_VIDEO, 24},
    {GROK_IMAGINE_MODEL_UPSCALE, 12},
  };
  guint i;

  fail_unless_equals_int (grok_imagine_request_price (&req), 40);
  req.api = GROK_IMAGINE_API_GROK5;
  for (i = 0; i < G_N_ELEMENTS (grok5); i++) {
    req.model = grok5[i].model;
    fail_unless_equals_int (grok_imagine_request_price (&req),
        grok5[i].credits);
  }
}

GST_END_TEST;

/* A killed run leaves its entry's lock file and a temporary file: the
 * next run in the folder removes both */
GST_START_TEST (test_leftovers_of_killed_runs_removed)
{
  g_autofree gchar *lock = g_build_filename (cache_dir,
      "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef.lock",
      NULL);
  /* pid 0x7ffffffe: no such process */
  g_autofree gchar *tmp = g_build_filename (cache_dir,
      "journal.ledger.tmp-2147483646-AbCdEf", NULL);
  g_autoptr (Run) r = NULL;

  fail_unless (g_file_set_contents (lock, "", -1, NULL));
  fail_unless (g_file_set_contents (tmp, "half", -1, NULL));
  r = run_cached ("prompt=tidy", NULL);
  assert_ok (r);
  fail_if (g_file_test (lock, G_FILE_TEST_EXISTS));
  fail_if (g_file_test (tmp, G_FILE_TEST_EXISTS));
}

GST_END_TEST;

/* --- whose entry: grokimagine-journal list and the account ----------------- */

#define OLD_ENTRY \
  "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define OTHERS_ENTRY \
  "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"

/* The entry of @task in the tool's JSON listing */
static JsonObject *
listed_task (JsonObject * top, const gchar * task)
{
  JsonArray *entries = json_object_get_array_member (top, "entries");
  guint i;

  for (i = 0; i < json_array_get_length (entries); i++) {
    JsonObject *e = json_array_get_object_element (entries, i);

    if (g_strcmp0 (json_object_get_string_member_with_default (e, "task_id",
                NULL), task) == 0)
      return e;
  }
  fail ("task %s is not listed", task);
  return NULL;
}

/* What list says of the account of @task's entry with @key in
 * GROK_IMAGINE_API_KEY (NULL: unset) */
static gchar *
listed_account (const gchar * key, const gchar * task)
{
  g_autoptr (JsonParser) parser = json_parser_new ();

  if (key)
    g_setenv ("GROK_IMAGINE_API_KEY", key, TRUE);
  else
    g_unsetenv ("GROK_IMAGINE_API_KEY");
  return g_strdup (json_object_get_string_member (listed_task (tool_json
              (parser), task), "account"));
}

/* Whether an entry of the cache folder, or @out, holds @text */
static gboolean
told (const gchar * out, const gchar * text)
{
  return cache_entry_has (cache_dir, text) || strstr (out, text) != NULL;
}

/* list says whose each entry is: that of the account of the key in
 * GROK_IMAGINE_API_KEY at the entry's base URL, another account's, or, for
 * an entry of an earlier version, any account's; neither the key nor the
 * account the entry keys hold is written or printed */
GST_START_TEST (test_tool_shows_account)
{
  g_autoptr (GrokImagineJournal) old = grok_imagine_journal_open (cache_dir,
      OLD_ENTRY, NULL);
  g_autoptr (GrokImagineJournal) others = grok_imagine_journal_open
      (cache_dir, OTHERS_ENTRY, NULL);
  g_autoptr (JsonParser) parser = json_parser_new ();
  g_autoptr (Run) r = NULL;
  g_autofree gchar *out = NULL, *account = NULL, *unset = NULL;
  g_autofree gchar *mine_then = NULL, *others_then = NULL;
  g_autofree gchar *mine_now = NULL, *others_now = NULL, *old_now = NULL;
  gchar *no_urls[] = { NULL };
  GrokImagineEntry pending = { .state = GROK_IMAGINE_ENTRY_SUBMITTED,
    .result_urls = no_urls, .credits = -1
  };
  JsonObject *mine;
  const gchar *task;

  fail_unless (old != NULL && others != NULL);
  pending.task_id = (gchar *) "task_old";
  fail_unless (grok_imagine_journal_write (old, &pending, NULL));
  grok_imagine_journal_set_account (others, "other-key", sim_api_url (sim));
  pending.task_id = (gchar *) "task_others";
  fail_unless (grok_imagine_journal_write (others, &pending, NULL));
  r = run_cached ("prompt=whose", NULL);
  assert_ok (r);
  task = gst_structure_get_string (last_task (r), "task-id");

  g_setenv ("GROK_IMAGINE_API_KEY", SIM_KEY, TRUE);
  fail_unless (run_tool (&out, "list", cache_dir, NULL), "%s", out);
  fail_unless (strstr (out, "this account at ") != NULL, "%s", out);
  fail_unless (strstr (out, "another account at ") != NULL, "%s", out);
  fail_unless (strstr (out, "any account") != NULL, "%s", out);
  mine = listed_task (tool_json (parser), task);
  fail_unless_equals_string (json_object_get_string_member (mine, "account"),
      "this");
  fail_unless_equals_string (json_object_get_string_member (mine,
          "base_url"), sim_api_url (sim));
  account = grok_imagine_journal_account (SIM_KEY, sim_api_url (sim));
  fail_if (told (out, SIM_KEY), "the key is told: %s", out);
  fail_if (told (out, account), "the account is told: %s", out);

  mine_then = listed_account (SIM_KEY, task);
  others_then = listed_account (SIM_KEY, "task_others");
  mine_now = listed_account ("other-key", task);
  others_now = listed_account ("other-key", "task_others");
  old_now = listed_account ("other-key", "task_old");
  unset = listed_account (NULL, task);
  fail_unless_equals_string (mine_then, "this");
  fail_unless_equals_string (others_then, "another");
  fail_unless_equals_string (mine_now, "another");
  fail_unless_equals_string (others_now, "this");
  fail_unless_equals_string (old_now, "any");
  fail_unless_equals_string (unset, "unchecked");
}

GST_END_TEST;

/* A base URL with a password in it: the entry records it without */
GST_START_TEST (test_entry_account_without_user_info)
{
  g_autoptr (GrokImagineJournal) j = grok_imagine_journal_open (cache_dir,
      OTHERS_ENTRY, NULL);
  g_autoptr (GrokImagineEntry) e = NULL;
  g_autofree gchar *data = NULL, *tag = NULL;
  gchar *no_urls[] = { NULL };
  GrokImagineEntry pending = { .state = GROK_IMAGINE_ENTRY_SUBMITTED,
    .task_id = (gchar *) "task_1", .result_urls = no_urls, .credits = -1
  };

  fail_unless (j != NULL);
  grok_imagine_journal_set_account (j, "k",
      "http://someone:hush@127.0.0.1:9/api");
  fail_unless (grok_imagine_journal_write (j, &pending, NULL));
  fail_unless (g_file_get_contents (grok_imagine_journal_get_entry_path (j),
          &data, NULL, NULL));
  fail_if (strstr (data, "hush") || strstr (data, "someone"), "%s", data);
  e = grok_imagine_journal_read (j, NULL);
  fail_unless (e != NULL);
  fail_unless_equals_string (e->base_url, "http://127.0.0.1:9/api");
  tag = grok_imagine_journal_account_tag ("k", e->base_url);
  fail_unless_equals_string (e->account_tag, tag);
}

GST_END_TEST;

static Suite *
spend_suite (void)
{
  Suite *s = suite_create ("grokimagine-spend");
  TCase *tc = tcase_create ("general");

  suite_add_tcase (s, tc);
  tcase_set_timeout (tc, 300);
  tcase_add_unchecked_fixture (tc, start_simulator, stop_simulator);
  tcase_add_checked_fixture (tc, fresh_cache, remove_cache);
  tcase_add_test (tc, test_v1_cap_one_paid_request);
  tcase_add_test (tc, test_cap_without_journal);
  tcase_add_test (tc, test_cap_across_two_processes);
  tcase_add_test (tc, test_bad_max_credits_env);
  tcase_add_test (tc, test_refund_corrects_ledger);
  tcase_add_test (tc, test_refused_post_not_counted);
  tcase_add_test (tc, test_eviction_keeps_folder_under_size);
  tcase_add_test (tc, test_evicted_result_url_expired);
  tcase_add_test (tc, test_tool_list_and_forget);
  tcase_add_test (tc, test_tool_json);
  tcase_add_test (tc, test_tool_forgets_in_doubt);
  tcase_add_test (tc, test_tool_refuses_other_folders);
  tcase_add_test (tc, test_ledger_takes_reported_credits);
  tcase_add_test (tc, test_damaged_ledger);
  tcase_add_test (tc, test_older_entry_reads);
  tcase_add_test (tc, test_eviction_is_least_recently_used);
  tcase_add_test (tc, test_prices);
  tcase_add_test (tc, test_leftovers_of_killed_runs_removed);
  tcase_add_test (tc, test_tool_shows_account);
  tcase_add_test (tc, test_entry_account_without_user_info);
  return s;
}

GST_CHECK_MAIN (spend);
