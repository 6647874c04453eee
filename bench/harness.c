/* gst-grokimagine benchmark harness
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Measurements that need to see inside a GStreamer process. bench/run
 * builds it with the C compiler and pkg-config and drives it; every mode
 * prints one JSON object on stdout and exits non-zero when something broke.
 *
 *   harness first-frame [--stop-at-first] [--timeout S] PIPELINE
 *       Runs PIPELINE (gst-launch syntax, one sink named "sink") and reports
 *       the monotonic time of the first buffer reaching that sink.
 *   harness play FILE
 *       The same for "filesrc location=FILE ! decodebin ! fakesink", stopping
 *       at the first decoded frame: the player of bench/curl-job.sh.
 *   harness latency --base-url URL --reps N --poll-interval MS --job-ms MS
 *       Whole jobs, one after another: sets the simulator's job duration,
 *       runs grokimaginesrc ! fakesink and reports, per job, the time from
 *       the task's completion to the first buffer at the sink.
 *   harness scale --base-url URL --jobs N --poll-interval MS [--timeout S]
 *       N pipelines grokimaginesrc ! fakesink in this one process, all
 *       running at once; reports completions, failures, peak RSS, threads,
 *       CPU time and, with --connections, the most TCP connections open to
 *       the API at once (sampled: it costs CPU time). --no-warm-up skips
 *       the warm-up job (for runs that share a limited key: bench/run sets
 *       the simulator up beforehand); --props adds element properties.
 *
 * The API key comes from GROK_IMAGINE_API_KEY, which the element reads. Times
 * are CLOCK_MONOTONIC microseconds (g_get_monotonic_time), the clock Python's
 * time.monotonic() reads too, so bench/run can compare them with its own.
 */

#include <gst/gst.h>
#include <libsoup/soup.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

/* ------------------------------------------------------------------ */
/* Process figures */

typedef struct
{
  gint64 rss_kb, hwm_kb, threads;
} ProcStatus;

static gboolean
read_proc_status (ProcStatus * ps)
{
  g_autofree gchar *text = NULL;
  gchar **lines, **l;

  memset (ps, 0, sizeof (*ps));
  if (!g_file_get_contents ("/proc/self/status", &text, NULL, NULL))
    return FALSE;
  lines = g_strsplit (text, "\n", -1);
  for (l = lines; *l; l++) {
    if (g_str_has_prefix (*l, "VmRSS:"))
      ps->rss_kb = g_ascii_strtoll (*l + 6, NULL, 10);
    else if (g_str_has_prefix (*l, "VmHWM:"))
      ps->hwm_kb = g_ascii_strtoll (*l + 6, NULL, 10);
    else if (g_str_has_prefix (*l, "Threads:"))
      ps->threads = g_ascii_strtoll (*l + 8, NULL, 10);
  }
  g_strfreev (lines);
  return TRUE;
}

static gdouble
cpu_seconds (void)
{
  struct rusage ru;

  getrusage (RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec +
      (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/* TCP connections of this process to @port on the loopback (IPv4) */
static gint
count_connections (gint port)
{
  g_autoptr (GHashTable) inodes = g_hash_table_new_full (g_str_hash,
      g_str_equal, g_free, NULL);
  g_autoptr (GDir) dir = g_dir_open ("/proc/self/fd", 0, NULL);
  g_autofree gchar *tcp = NULL;
  g_auto (GStrv) lines = NULL;
  const gchar *name;
  gint n = 0, i;

  if (dir == NULL || !g_file_get_contents ("/proc/self/net/tcp", &tcp, NULL,
          NULL))
    return -1;
  while ((name = g_dir_read_name (dir))) {
    g_autofree gchar *path = g_build_filename ("/proc/self/fd", name, NULL);
    g_autofree gchar *target = g_file_read_link (path, NULL);

    /* "socket:[12345]" */
    if (target && g_str_has_prefix (target, "socket:["))
      g_hash_table_add (inodes, g_strndup (target + 8, strlen (target) - 9));
  }
  lines = g_strsplit (tcp, "\n", -1);
  for (i = 1; lines[i]; i++) {
    /* sl local rem st tx:rx tr:when retrnsmt uid timeout inode */
    g_auto (GStrv) f = g_strsplit_set (g_strstrip (lines[i]), " ", -1);
    const gchar *fields[10];
    gint k = 0, j;
    const gchar *colon;

    for (j = 0; f[j] && k < 10; j++)
      if (*f[j])
        fields[k++] = f[j];
    if (k < 10 || !(colon = strchr (fields[2], ':')))
      continue;
    /* st 01: ESTABLISHED */
    if (strtol (colon + 1, NULL, 16) == port && g_str_equal (fields[3], "01")
        && g_hash_table_contains (inodes, fields[9]))
      n++;
  }
  return n;
}

/* 1,000 pipelines hold a few thousand sockets and eventfds */
static void
raise_fd_limit (void)
{
  struct rlimit rl;

  if (getrlimit (RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit (RLIMIT_NOFILE, &rl);
  }
}

static gchar *
json_escape (const gchar * s)
{
  GString *out = g_string_new (NULL);

  for (; s && *s; s++) {
    guchar c = *s;

    if (c == '"' || c == '\\')
      g_string_append_printf (out, "\\%c", c);
    else if (c < 0x20)
      g_string_append_printf (out, "\\u%04x", c);
    else
      g_string_append_c (out, c);
  }
  return g_string_free (out, FALSE);
}

/* ------------------------------------------------------------------ */
/* One pipeline, watched through a sync bus handler (no main loop needed) */

typedef struct
{
  GstElement *pipeline;
  gint64 started_us;            /* just before set_state (PLAYING) */
  gint64 submitted_us;          /* grokimagine-task status=submitted */
  gint64 first_us;              /* first buffer at the sink */
  gint64 done_us;               /* EOS or error */
  gint done;                    /* 1: EOS, 2: error (atomic) */
  gchar *error;
  gboolean stop_at_first;
  GMutex lock;
  GCond cond;
  gint *pending;                /* scale: jobs not finished yet (atomic) */
} Run;

static void
run_finish (Run * r, gint how)
{
  g_mutex_lock (&r->lock);
  if (r->done == 0) {
    r->done_us = g_get_monotonic_time ();
    g_atomic_int_set (&r->done, how);
    if (r->pending)
      g_atomic_int_add (r->pending, -1);
  }
  g_cond_broadcast (&r->cond);
  g_mutex_unlock (&r->lock);
}

static void
on_handoff (GstElement * sink, GstBuffer * buf, GstPad * pad, Run * r)
{
  if (r->first_us == 0) {
    r->first_us = g_get_monotonic_time ();
    if (r->stop_at_first)
      run_finish (r, 1);
  }
}

static GstBusSyncReply
on_message (GstBus * bus, GstMessage * msg, gpointer data)
{
  Run *r = data;

  switch (GST_MESSAGE_TYPE (msg)) {
    case GST_MESSAGE_EOS:
      run_finish (r, 1);
      break;
    case GST_MESSAGE_ERROR:{
      GError *err = NULL;

      gst_message_parse_error (msg, &err, NULL);
      g_mutex_lock (&r->lock);
      if (r->error == NULL)
        r->error = g_strdup_printf ("%s: %s", GST_OBJECT_NAME (msg->src),
            err->message);
      g_mutex_unlock (&r->lock);
      g_error_free (err);
      run_finish (r, 2);
      break;
    }
    case GST_MESSAGE_ELEMENT:{
      const GstStructure *s = gst_message_get_structure (msg);

      if (r->submitted_us == 0 && s
          && gst_structure_has_name (s, "grokimagine-task")
          && g_strcmp0 (gst_structure_get_string (s, "status"),
              "submitted") == 0)
        r->submitted_us = g_get_monotonic_time ();
      break;
    }
    default:
      break;
  }
  gst_message_unref (msg);
  return GST_BUS_DROP;
}

static gboolean
run_setup (Run * r, const gchar * desc, gboolean stop_at_first,
    GError ** error)
{
  GstElement *sink;
  GstBus *bus;

  memset (r, 0, sizeof (*r));
  g_mutex_init (&r->lock);
  g_cond_init (&r->cond);
  r->stop_at_first = stop_at_first;
  r->pipeline = gst_parse_launch (desc, error);
  if (r->pipeline == NULL)
    return FALSE;
  if (error && *error) {        /* a warning-level parse problem */
    gst_object_unref (r->pipeline);
    r->pipeline = NULL;
    return FALSE;
  }
  sink = gst_bin_get_by_name (GST_BIN (r->pipeline), "sink");
  if (sink == NULL) {
    g_set_error (error, GST_CORE_ERROR, GST_CORE_ERROR_FAILED,
        "the pipeline has no element named 'sink'");
    gst_object_unref (r->pipeline);
    r->pipeline = NULL;
    return FALSE;
  }
  g_object_set (sink, "signal-handoffs", TRUE, NULL);
  g_signal_connect (sink, "handoff", G_CALLBACK (on_handoff), r);
  gst_object_unref (sink);
  bus = gst_element_get_bus (r->pipeline);
  gst_bus_set_sync_handler (bus, on_message, r, NULL);
  gst_object_unref (bus);
  return TRUE;
}

static void
run_start (Run * r)
{
  r->started_us = g_get_monotonic_time ();
  if (gst_element_set_state (r->pipeline, GST_STATE_PLAYING) ==
      GST_STATE_CHANGE_FAILURE && g_atomic_int_get (&r->done) == 0) {
    g_mutex_lock (&r->lock);
    if (r->error == NULL)
      r->error = g_strdup ("the state change to PLAYING failed");
    g_mutex_unlock (&r->lock);
    run_finish (r, 2);
  }
}

/* Waits until the run ends or @deadline (monotonic µs); FALSE on timeout */
static gboolean
run_wait (Run * r, gint64 deadline)
{
  gboolean ok;

  g_mutex_lock (&r->lock);
  while (r->done == 0 && g_cond_wait_until (&r->cond, &r->lock, deadline));
  ok = r->done != 0;
  g_mutex_unlock (&r->lock);
  return ok;
}

static void
run_clear (Run * r)
{
  if (r->pipeline) {
    gst_element_set_state (r->pipeline, GST_STATE_NULL);
    gst_object_unref (r->pipeline);
  }
  g_free (r->error);
  g_mutex_clear (&r->lock);
  g_cond_clear (&r->cond);
}

/* ------------------------------------------------------------------ */
/* first-frame */

static int
first_frame (const gchar * desc, gboolean stop_at_first, gint timeout_s)
{
  g_autoptr (GError) err = NULL;
  g_autofree gchar *escaped = NULL;
  gboolean finished;
  Run r;

  if (!run_setup (&r, desc, stop_at_first, &err)) {
    g_printerr ("harness: %s\n", err->message);
    return 1;
  }
  run_start (&r);
  finished = run_wait (&r, r.started_us + timeout_s * G_USEC_PER_SEC);
  escaped = json_escape (r.error);
  printf ("{\"ok\": %s, \"started_us\": %" G_GINT64_FORMAT ", \"first_us\": %"
      G_GINT64_FORMAT ", \"done_us\": %" G_GINT64_FORMAT ", \"cpu_s\": %.4f, "
      "\"error\": \"%s\"}\n", finished && r.done == 1 && r.first_us ?
      "true" : "false", r.started_us, r.first_us, r.done_us, cpu_seconds (),
      finished ? escaped : "timed out");
  fflush (stdout);
  finished = finished && r.done == 1 && r.first_us;
  run_clear (&r);
  return finished ? 0 : 1;
}

static int
mode_first_frame (int argc, char **argv)
{
  gboolean stop_at_first = FALSE;
  gint timeout_s = 120;
  g_autoptr (GError) err = NULL;
  GOptionEntry entries[] = {
    {"stop-at-first", 0, 0, G_OPTION_ARG_NONE, &stop_at_first,
        "Stop at the first buffer instead of EOS", NULL},
    {"timeout", 0, 0, G_OPTION_ARG_INT, &timeout_s, "Give up after S s", "S"},
    {NULL}
  };
  g_autoptr (GOptionContext) ctx =
      g_option_context_new ("PIPELINE - time to the first buffer");

  g_option_context_add_main_entries (ctx, entries, NULL);
  if (!g_option_context_parse (ctx, &argc, &argv, &err) || argc != 2) {
    g_printerr ("harness first-frame: %s\n", err ? err->message :
        "one PIPELINE argument expected");
    return 2;
  }
  return first_frame (argv[1], stop_at_first, timeout_s);
}

/* The player of the curl script: the first decoded frame of a local file */
static int
mode_play (int argc, char **argv)
{
  g_autofree gchar *quoted = NULL, *desc = NULL;

  if (argc != 2) {
    g_printerr ("usage: harness play FILE\n");
    return 2;
  }
  quoted = g_strescape (argv[1], NULL);
  desc = g_strdup_printf ("filesrc location=\"%s\" ! decodebin "
      "! fakesink name=sink", quoted);
  return first_frame (desc, TRUE, 120);
}

/* ------------------------------------------------------------------ */
/* latency */

static gboolean
sim_set_faults (SoupSession * session, const gchar * base_url,
    const gchar * json, GError ** error)
{
  g_autofree gchar *url = g_strconcat (base_url, "/_sim/faults", NULL);
  g_autoptr (SoupMessage) msg = soup_message_new ("POST", url);
  g_autoptr (GBytes) body = g_bytes_new (json, strlen (json));
  g_autoptr (GBytes) answer = NULL;

  if (msg == NULL) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
        "bad URL %s", url);
    return FALSE;
  }
  soup_message_set_request_body_from_bytes (msg, "application/json", body);
  answer = soup_session_send_and_read (session, msg, NULL, error);
  if (answer == NULL)
    return FALSE;
  if (soup_message_get_status (msg) != 200) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED,
        "POST /_sim/faults answered %u", soup_message_get_status (msg));
    return FALSE;
  }
  return TRUE;
}

static int
mode_latency (int argc, char **argv)
{
  gchar *base_url = NULL, *prompt = NULL;
  gint reps = 10, poll_ms = 500, job_ms = 2000, timeout_s = 60;
  g_autoptr (GError) err = NULL;
  GOptionEntry entries[] = {
    {"base-url", 0, 0, G_OPTION_ARG_STRING, &base_url, "Simulator API", "URL"},
    {"reps", 0, 0, G_OPTION_ARG_INT, &reps, "Measured jobs", "N"},
    {"poll-interval", 0, 0, G_OPTION_ARG_INT, &poll_ms, "poll-interval", "MS"},
    {"job-ms", 0, 0, G_OPTION_ARG_INT, &job_ms,
        "Longest job duration (the others are shorter by up to one poll "
          "interval)", "MS"},
    {"prompt", 0, 0, G_OPTION_ARG_STRING, &prompt, "Prompt", "TEXT"},
    {"timeout", 0, 0, G_OPTION_ARG_INT, &timeout_s, "Per job, in s", "S"},
    {NULL}
  };
  g_autoptr (GOptionContext) ctx =
      g_option_context_new ("- completion to first buffer");
  g_autoptr (SoupSession) session = NULL;
  g_autoptr (GString) out = g_string_new (NULL);
  gboolean ok = TRUE;
  gint i;

  g_option_context_add_main_entries (ctx, entries, NULL);
  if (!g_option_context_parse (ctx, &argc, &argv, &err) || !base_url
      || reps < 1 || poll_ms < 10 || job_ms <= poll_ms) {
    g_printerr ("harness latency: %s\n", err ? err->message :
        "--base-url needed, --job-ms must exceed --poll-interval");
    return 2;
  }
  if (!prompt)
    prompt = g_strdup ("latency benchmark");
  session = soup_session_new ();

  g_string_append (out, "{\"jobs\": [");
  /* Job -1 warms up: plugin loading, the simulator's render of the result */
  for (i = -1; i < reps && ok; i++) {
    /* The task completes at creation + duration. Polls come at about
     * submit + k * poll-interval, so the phase between completion and the
     * next poll is set by the duration: shortening the job by phase makes
     * the detection delay about phase. The phases are spread evenly over
     * the interval (stratified sampling of a uniformly random phase). */
    gdouble phase = (i + 0.5) / reps * poll_ms;
    gint duration = i < 0 ? job_ms : job_ms - (gint) (phase + 0.5);
    g_autofree gchar *faults = g_strdup_printf ("{\"job_duration_ms\": %d}",
        duration);
    g_autofree gchar *desc = NULL, *escaped = NULL, *qprompt = NULL;
    Run r;
    gboolean finished;

    if (!sim_set_faults (session, base_url, faults, &err)) {
      g_printerr ("harness latency: %s\n", err->message);
      return 1;
    }
    qprompt = g_strescape (prompt, NULL);
    /* every repetition a job of its own, not the last one's task again */
    desc = g_strdup_printf ("grokimaginesrc base-url=\"%s\" prompt=\"%s\" "
        "poll-interval=%d share-tasks=false ! fakesink name=sink", base_url,
        qprompt, poll_ms);
    if (!run_setup (&r, desc, FALSE, &err)) {
      g_printerr ("harness latency: %s\n", err->message);
      return 1;
    }
    run_start (&r);
    finished = run_wait (&r, r.started_us + (timeout_s * G_USEC_PER_SEC));
    ok = finished && r.done == 1 && r.first_us && r.submitted_us;
    if (i >= 0) {
      /* The task was created while the POST was under way: after
       * started_us, before submitted_us. */
      escaped = json_escape (r.error);
      g_string_append_printf (out, "%s{\"ok\": %s, \"job_ms\": %d, "
          "\"phase_ms\": %.1f, \"latency_ms\": %.3f, "
          "\"latency_upper_ms\": %.3f, \"total_ms\": %.1f, \"error\": \"%s\"}",
          i ? ", " : "", ok ? "true" : "false", duration, phase,
          (r.first_us - r.submitted_us - duration * 1000.0) / 1000.0,
          (r.first_us - r.started_us - duration * 1000.0) / 1000.0,
          (r.done_us - r.started_us) / 1000.0,
          finished ? escaped : "timed out");
    } else if (!ok) {
      g_printerr ("harness latency: the warm-up job failed: %s\n",
          finished ? r.error : "timed out");
    }
    run_clear (&r);
  }
  g_string_append_printf (out, "], \"ok\": %s}\n", ok ? "true" : "false");
  fputs (out->str, stdout);
  fflush (stdout);
  g_free (base_url);
  g_free (prompt);
  return ok ? 0 : 1;
}

/* ------------------------------------------------------------------ */
/* scale */

static int
mode_scale (int argc, char **argv)
{
  gchar *base_url = NULL, *prompt = NULL, *props = NULL;
  gint jobs = 1000, poll_ms = 1000, timeout_s = 300, ramp_ms = 0;
  gint job_ms = 0, api_port, conns, peak_conns = 0;
  gboolean no_warm_up = FALSE, connections = FALSE;
  g_autoptr (GError) err = NULL;
  GOptionEntry entries[] = {
    {"base-url", 0, 0, G_OPTION_ARG_STRING, &base_url, "Simulator API", "URL"},
    {"jobs", 0, 0, G_OPTION_ARG_INT, &jobs, "Concurrent jobs", "N"},
    {"poll-interval", 0, 0, G_OPTION_ARG_INT, &poll_ms, "poll-interval", "MS"},
    {"prompt", 0, 0, G_OPTION_ARG_STRING, &prompt, "Prompt", "TEXT"},
    {"timeout", 0, 0, G_OPTION_ARG_INT, &timeout_s, "For the whole run", "S"},
    {"job-ms", 0, 0, G_OPTION_ARG_INT, &job_ms,
        "Set the simulator's job duration (after a short warm-up job)", "MS"},
    {"ramp-ms", 0, 0, G_OPTION_ARG_INT, &ramp_ms,
        "Spread the starts evenly over this time", "MS"},
    {"props", 0, 0, G_OPTION_ARG_STRING, &props,
        "More properties of grokimaginesrc", "PROPS"},
    {"no-warm-up", 0, 0, G_OPTION_ARG_NONE, &no_warm_up,
        "No warm-up job: the simulator is set up already", NULL},
    {"connections", 0, 0, G_OPTION_ARG_NONE, &connections,
        "Count the connections to the API", NULL},
    {NULL}
  };
  g_autoptr (GOptionContext) ctx =
      g_option_context_new ("- many concurrent jobs in one process");
  g_autofree gchar *desc = NULL, *qprompt = NULL, *first_error = NULL;
  g_autofree gchar *escaped = NULL;
  g_autoptr (SoupSession) session = soup_session_new ();
  ProcStatus base, now;
  gint64 peak_rss = 0, peak_threads = 0, t0, t_started, deadline, t_end;
  gint64 t_clear, wait_end;
  gdouble wait_cpu0, wait_cpu = -1, wait_s = 0;
  gdouble cpu0, cpu_end;
  gint pending, completed = 0, failed = 0, unfinished = 0, i;
  Run *runs;

  g_option_context_add_main_entries (ctx, entries, NULL);
  if (!g_option_context_parse (ctx, &argc, &argv, &err) || !base_url
      || jobs < 1) {
    g_printerr ("harness scale: %s\n", err ? err->message :
        "--base-url needed");
    return 2;
  }
  if (!prompt)
    prompt = g_strdup ("scale benchmark");
  raise_fd_limit ();
  qprompt = g_strescape (prompt, NULL);
  /* N jobs, not one task shared by N elements */
  desc = g_strdup_printf ("grokimaginesrc base-url=\"%s\" prompt=\"%s\" "
      "poll-interval=%d share-tasks=false %s ! fakesink name=sink", base_url,
      qprompt, poll_ms,
      props ? props : "");

  /* The baseline: one whole job first, so that the plugin, libsoup, the
   * typefinders and GStreamer's own one-time allocations are in place */
  {
    g_autoptr (GUri) uri = g_uri_parse (base_url, G_URI_FLAGS_NONE, NULL);

    api_port = uri ? g_uri_get_port (uri) : -1;
  }
  if (job_ms > 0 && !no_warm_up && !sim_set_faults (session, base_url,
          "{\"job_duration_ms\": 100}", &err)) {
    g_printerr ("harness scale: %s\n", err->message);
    return 1;
  }
  if (!no_warm_up) {
    Run warm;

    if (!run_setup (&warm, desc, FALSE, &err)) {
      g_printerr ("harness scale: %s\n", err->message);
      return 1;
    }
    run_start (&warm);
    if (!run_wait (&warm, warm.started_us + 60 * G_USEC_PER_SEC)
        || warm.done != 1) {
      g_printerr ("harness scale: the warm-up job failed: %s\n",
          warm.error ? warm.error : "timed out");
      return 1;
    }
    run_clear (&warm);
  }
  if (job_ms > 0 && !no_warm_up) {
    g_autofree gchar *faults = g_strdup_printf ("{\"job_duration_ms\": %d}",
        job_ms);

    if (!sim_set_faults (session, base_url, faults, &err)) {
      g_printerr ("harness scale: %s\n", err->message);
      return 1;
    }
  }
  read_proc_status (&base);
  cpu0 = cpu_seconds ();

  runs = g_new0 (Run, jobs);
  pending = jobs;
  t0 = g_get_monotonic_time ();
  for (i = 0; i < jobs; i++) {
    gint64 at = t0 + (gint64) ramp_ms * 1000 * i / jobs;

    if (g_get_monotonic_time () < at)
      g_usleep (at - g_get_monotonic_time ());
    if (!run_setup (&runs[i], desc, FALSE, &err)) {
      g_printerr ("harness scale: %s\n", err->message);
      return 1;
    }
    runs[i].pending = &pending;
    run_start (&runs[i]);
  }
  t_started = g_get_monotonic_time ();

  /* Sample RSS and threads every 20 ms until every job has ended; the CPU
   * time from the last start to shortly before the first job can end is
   * what all the jobs cost while they wait */
  deadline = t0 + timeout_s * G_USEC_PER_SEC;
  wait_end = t0 + (job_ms - 200) * (gint64) 1000;
  wait_cpu0 = cpu_seconds ();
  while (g_atomic_int_get (&pending) > 0 && g_get_monotonic_time () < deadline) {
    if (read_proc_status (&now)) {
      peak_rss = MAX (peak_rss, now.rss_kb);
      peak_threads = MAX (peak_threads, now.threads);
    }
    if (connections && (conns = count_connections (api_port)) > peak_conns)
      peak_conns = conns;
    if (wait_cpu < 0 && g_get_monotonic_time () >= wait_end) {
      wait_cpu = cpu_seconds () - wait_cpu0;
      wait_s = (g_get_monotonic_time () - t_started) / 1e6;
    }
    g_usleep (20 * 1000);
  }
  t_end = g_get_monotonic_time ();
  cpu_end = cpu_seconds ();
  read_proc_status (&now);
  peak_rss = MAX (peak_rss, now.hwm_kb);
  peak_threads = MAX (peak_threads, now.threads);

  for (i = 0; i < jobs; i++) {
    gint done = g_atomic_int_get (&runs[i].done);

    if (done == 1 && runs[i].first_us)
      completed++;
    else if (done == 0)
      unfinished++;
    else
      failed++;
    if (done != 1 && first_error == NULL)
      first_error = g_strdup (runs[i].error ? runs[i].error :
          done == 0 ? "timed out" : "EOS without data");
  }
  t_clear = g_get_monotonic_time ();
  for (i = 0; i < jobs; i++)
    run_clear (&runs[i]);
  g_free (runs);
  t_clear = g_get_monotonic_time () - t_clear;

  escaped = json_escape (first_error);
  printf ("{\"ok\": %s, \"jobs\": %d, \"completed\": %d, \"failed\": %d, "
      "\"unfinished\": %d, \"wall_s\": %.3f, \"start_s\": %.3f, "
      "\"cpu_s\": %.3f, \"wait_cpu_s\": %.3f, \"wait_s\": %.3f, "
      "\"teardown_s\": %.3f, \"base_rss_kb\": %" G_GINT64_FORMAT ", "
      "\"peak_rss_kb\": %" G_GINT64_FORMAT ", \"peak_threads\": %"
      G_GINT64_FORMAT ", \"base_threads\": %" G_GINT64_FORMAT ", "
      "\"peak_api_connections\": %d, \"first_error\": \"%s\"}\n",
      completed == jobs ? "true" : "false", jobs, completed, failed,
      unfinished, (t_end - t0) / 1e6, (t_started - t0) / 1e6,
      cpu_end - cpu0, wait_cpu, wait_s, t_clear / 1e6, base.rss_kb,
      peak_rss, peak_threads, base.threads, peak_conns, escaped);
  fflush (stdout);
  g_free (base_url);
  g_free (prompt);
  g_free (props);
  return completed == jobs ? 0 : 1;
}

int
main (int argc, char **argv)
{
  if (argc < 2) {
    g_printerr ("usage: harness first-frame|play|latency|scale [OPTION...]\n");
    return 2;
  }
  gst_init (NULL, NULL);
  if (g_str_equal (argv[1], "first-frame"))
    return mode_first_frame (argc - 1, argv + 1);
  if (g_str_equal (argv[1], "play"))
    return mode_play (argc - 1, argv + 1);
  if (g_str_equal (argv[1], "latency"))
    return mode_latency (argc - 1, argv + 1);
  if (g_str_equal (argv[1], "scale"))
    return mode_scale (argc - 1, argv + 1);
  g_printerr ("harness: unknown mode %s\n", argv[1]);
  return 2;
}
