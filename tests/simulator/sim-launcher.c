/* Starts grokimagine-sim for a test and talks to its control endpoints.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#include "sim-launcher.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <glib/gstdio.h>
#include <json-glib/json-glib.h>
#include <libsoup/soup.h>

#define START_TIMEOUT_S 30
#define STOP_TIMEOUT_S 5

struct _SimProcess
{
  GPid pid;
  gint stdin_fd;
  gint stdout_fd;
  gchar *api_url;
  gchar *cdn_url;
  gchar *cdn2_url;
  gchar *ca_file;               /* HTTPS only */
};

/* The test CA and server certificate of the HTTPS simulators */
static struct
{
  gchar *dir;
  gint users;
  pid_t owner;
  gboolean atexit_set;
} tls;
G_LOCK_DEFINE_STATIC (tls);

static const gchar *tls_config[] = {
  "[req]",
  "distinguished_name = dn",
  "prompt = no",
  "[dn]",
  "CN = grokimagine-sim test CA",
  "[ca_ext]",
  "basicConstraints = critical, CA:TRUE",
  "keyUsage = critical, keyCertSign, cRLSign",
  "subjectKeyIdentifier = hash",
  "[server_ext]",
  "basicConstraints = critical, CA:FALSE",
  "keyUsage = critical, digitalSignature, keyEncipherment",
  "extendedKeyUsage = serverAuth",
  "subjectAltName = IP:127.0.0.1, DNS:localhost",
  "subjectKeyIdentifier = hash",
  "authorityKeyIdentifier = keyid",
  "",
  NULL
};

/* Runs "openssl" with the NULL-terminated arguments in @dir */
static gboolean
run_openssl (const gchar * dir, GError ** error, ...)
{
  g_autoptr (GPtrArray) argv = g_ptr_array_new ();
  g_autofree gchar *err = NULL;
  gchar *arg;
  va_list ap;
  gint status;

  g_ptr_array_add (argv, (gpointer) "openssl");
  va_start (ap, error);
  while ((arg = va_arg (ap, gchar *)) != NULL)
    g_ptr_array_add (argv, arg);
  va_end (ap);
  g_ptr_array_add (argv, NULL);

  if (!g_spawn_sync (dir, (gchar **) argv->pdata, NULL,
          G_SPAWN_SEARCH_PATH | G_SPAWN_STDOUT_TO_DEV_NULL, NULL, NULL, NULL,
          &err, &status, error))
    return FALSE;
  if (!WIFEXITED (status) || WEXITSTATUS (status) != 0) {
    g_set_error (error, G_SPAWN_ERROR, G_SPAWN_ERROR_FAILED,
        "openssl %s failed: %s", (gchar *) argv->pdata[1], err);
    return FALSE;
  }
  return TRUE;
}

static void
tls_remove (void)
{
  g_autoptr (GDir) dir = g_dir_open (tls.dir, 0, NULL);
  const gchar *name;

  while (dir && (name = g_dir_read_name (dir))) {
    g_autofree gchar *path = g_build_filename (tls.dir, name, NULL);

    g_unlink (path);
  }
  g_rmdir (tls.dir);
  g_clear_pointer (&tls.dir, g_free);
}

static void
tls_atexit (void)
{
  /* not in a forked child of the process that made the files */
  if (tls.dir && tls.owner == getpid ())
    tls_remove ();
}

static gboolean
tls_create (GError ** error)
{
  g_autofree gchar *dir = g_dir_make_tmp ("grokimagine-sim-tls-XXXXXX", error);
  g_autofree gchar *config = NULL;
  g_autofree gchar *text = g_strjoinv ("\n", (gchar **) tls_config);
  g_autofree gchar *serial = g_strdup_printf ("%u", g_random_int ());

  if (!dir)
    return FALSE;
  tls.dir = g_strdup (dir);
  tls.owner = getpid ();
  if (!tls.atexit_set)
    tls.atexit_set = atexit (tls_atexit) == 0;

  config = g_build_filename (dir, "openssl.cnf", NULL);
  if (!g_file_set_contents (config, text, -1, error) ||
      !run_openssl (dir, error, "req", "-x509", "-config", "openssl.cnf",
          "-extensions", "ca_ext", "-newkey", "ec", "-pkeyopt",
          "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", "ca.key",
          "-out", "ca.pem", "-days", "30", NULL) ||
      !run_openssl (dir, error, "req", "-new", "-config", "openssl.cnf",
          "-subj", "/CN=localhost", "-newkey", "ec", "-pkeyopt",
          "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", "server.key",
          "-out", "server.csr", NULL) ||
      !run_openssl (dir, error, "x509", "-req", "-in", "server.csr", "-CA",
          "ca.pem", "-CAkey", "ca.key", "-set_serial", serial, "-days", "30",
          "-extfile", "openssl.cnf", "-extensions", "server_ext", "-out",
          "server.pem", NULL)) {
    tls_remove ();
    return FALSE;
  }
  return TRUE;
}

/* Makes the files if need be; returns their directory or NULL */
static gchar *
tls_acquire (GError ** error)
{
  gchar *dir = NULL;

  G_LOCK (tls);
  if (tls.dir || tls_create (error)) {
    tls.users++;
    dir = g_strdup (tls.dir);
  }
  G_UNLOCK (tls);
  return dir;
}

static void
tls_release (void)
{
  G_LOCK (tls);
  if (--tls.users == 0 && tls.dir)
    tls_remove ();
  G_UNLOCK (tls);
}

/* Reads the startup lines until "ready", within the deadline. */
static gboolean
read_startup (SimProcess * sim, GError ** error)
{
  gint64 deadline = g_get_monotonic_time () + START_TIMEOUT_S * G_USEC_PER_SEC;
  g_autoptr (GString) buf = g_string_new (NULL);

  for (;;) {
    struct pollfd pfd = { sim->stdout_fd, POLLIN, 0 };
    gint64 left_ms = (deadline - g_get_monotonic_time ()) / 1000;
    gchar chunk[256], *nl;
    gssize n;
    gint r;

    if (left_ms <= 0) {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT,
          "grokimagine-sim was not ready within %d s", START_TIMEOUT_S);
      return FALSE;
    }
    r = poll (&pfd, 1, left_ms);
    if (r < 0 && errno == EINTR)
      continue;
    if (r == 0)
      continue;
    n = r < 0 ? -1 : read (sim->stdout_fd, chunk, sizeof (chunk));
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED,
          "grokimagine-sim exited before it was ready");
      return FALSE;
    }
    g_string_append_len (buf, chunk, n);

    while ((nl = strchr (buf->str, '\n'))) {
      g_autofree gchar *line = g_strndup (buf->str, nl - buf->str);

      g_string_erase (buf, 0, nl - buf->str + 1);
      if (g_str_has_prefix (line, "api ")) {
        g_free (sim->api_url);
        sim->api_url = g_strdup (line + 4);
      } else if (g_str_has_prefix (line, "cdn ")) {
        g_free (sim->cdn_url);
        sim->cdn_url = g_strdup (line + 4);
      } else if (g_str_has_prefix (line, "cdn2 ")) {
        g_free (sim->cdn2_url);
        sim->cdn2_url = g_strdup (line + 5);
      } else if (g_str_equal (line, "ready")) {
        if (sim->api_url && sim->cdn_url)
          return TRUE;
        g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
            "grokimagine-sim did not announce its URLs");
        return FALSE;
      }
    }
  }
}

SimProcess *
sim_start (const gchar * const *extra_args, GError ** error)
{
  const gchar *path = g_getenv ("GROKIMAGINE_SIM");
  g_autoptr (GPtrArray) argv = g_ptr_array_new ();
  SimProcess *sim;

  if (!path || !*path)
    path = GROKIMAGINE_SIM_PATH;
  g_ptr_array_add (argv, (gpointer) path);
  g_ptr_array_add (argv, (gpointer) "--exit-on-stdin-eof");
  for (guint i = 0; extra_args && extra_args[i]; i++)
    g_ptr_array_add (argv, (gpointer) extra_args[i]);
  g_ptr_array_add (argv, NULL);

  sim = g_new0 (SimProcess, 1);
  sim->stdin_fd = sim->stdout_fd = -1;
  if (!g_spawn_async_with_pipes (NULL, (gchar **) argv->pdata, NULL,
          G_SPAWN_DO_NOT_REAP_CHILD, NULL, NULL, &sim->pid, &sim->stdin_fd,
          &sim->stdout_fd, NULL, error)) {
    g_free (sim);
    return NULL;
  }

  if (!read_startup (sim, error)) {
    sim_stop (sim);
    return NULL;
  }
  return sim;
}

SimProcess *
sim_start_https (const gchar * const *extra_args, GError ** error)
{
  g_autofree gchar *dir = tls_acquire (error);
  g_autoptr (GPtrArray) args = g_ptr_array_new_with_free_func (g_free);
  SimProcess *sim;

  if (!dir)
    return NULL;
  g_ptr_array_add (args, g_strdup ("--tls-cert"));
  g_ptr_array_add (args, g_build_filename (dir, "server.pem", NULL));
  g_ptr_array_add (args, g_strdup ("--tls-key"));
  g_ptr_array_add (args, g_build_filename (dir, "server.key", NULL));
  for (guint i = 0; extra_args && extra_args[i]; i++)
    g_ptr_array_add (args, g_strdup (extra_args[i]));
  g_ptr_array_add (args, NULL);

  if (!(sim = sim_start ((const gchar * const *) args->pdata, error))) {
    tls_release ();
    return NULL;
  }
  sim->ca_file = g_build_filename (dir, "ca.pem", NULL);
  return sim;
}

const gchar *
sim_api_url (SimProcess * sim)
{
  return sim->api_url;
}

const gchar *
sim_cdn_url (SimProcess * sim)
{
  return sim->cdn_url;
}

const gchar *
sim_cdn2_url (SimProcess * sim)
{
  return sim->cdn2_url;
}

const gchar *
sim_ca_file (SimProcess * sim)
{
  return sim->ca_file;
}

/* Sends a control request; returns the parsed JSON answer of a 200. */
static JsonNode *
control_request (SimProcess * sim, const gchar * method, const gchar * path,
    const gchar * json)
{
  g_autoptr (SoupSession) session = soup_session_new_with_options ("timeout",
      30, NULL);
  g_autofree gchar *url = g_strconcat (sim->api_url, path, NULL);
  g_autoptr (SoupMessage) msg = soup_message_new (method, url);
  g_autoptr (JsonParser) parser = json_parser_new ();
  g_autoptr (GBytes) body = NULL;
  g_autoptr (GError) error = NULL;
  gsize size;
  const gchar *data;

  soup_session_set_proxy_resolver (session, NULL);
  if (sim->ca_file) {
    g_autoptr (GTlsDatabase) db = g_tls_file_database_new (sim->ca_file,
        &error);

    if (!db) {
      g_warning ("sim-launcher: %s: %s", sim->ca_file, error->message);
      return NULL;
    }
    soup_session_set_tls_database (session, db);
  }
  if (json) {
    g_autoptr (GBytes) request = g_bytes_new (json, strlen (json));

    soup_message_set_request_body_from_bytes (msg, "application/json", request);
  }

  body = soup_session_send_and_read (session, msg, NULL, &error);
  if (!body) {
    g_warning ("sim-launcher: %s %s: %s", method, path, error->message);
    return NULL;
  }
  data = g_bytes_get_data (body, &size);
  if (soup_message_get_status (msg) != SOUP_STATUS_OK) {
    g_warning ("sim-launcher: %s %s: HTTP %u: %.*s", method, path,
        soup_message_get_status (msg), (gint) size, data ? data : "");
    return NULL;
  }
  if (!json_parser_load_from_data (parser, data ? data : "", size, &error)) {
    g_warning ("sim-launcher: %s %s: %s", method, path, error->message);
    return NULL;
  }
  return json_node_copy (json_parser_get_root (parser));
}

/* The member @name of the stats object, or NULL. */
static JsonNode *
stats_member (SimProcess * sim, const gchar * name, JsonNode ** root)
{
  *root = control_request (sim, "GET", "/_sim/stats", NULL);
  if (!*root || !JSON_NODE_HOLDS_OBJECT (*root))
    return NULL;
  return json_object_get_member (json_node_get_object (*root), name);
}

gint64
sim_stat (SimProcess * sim, const gchar * name)
{
  g_autoptr (JsonNode) root = NULL;
  JsonNode *node = stats_member (sim, name, &root);

  if (!node || !JSON_NODE_HOLDS_VALUE (node) ||
      json_node_get_value_type (node) != G_TYPE_INT64)
    return -1;
  return json_node_get_int (node);
}

gchar *
sim_stat_string (SimProcess * sim, const gchar * name)
{
  g_autoptr (JsonNode) root = NULL;
  JsonNode *node = stats_member (sim, name, &root);

  if (!node || !JSON_NODE_HOLDS_VALUE (node))
    return NULL;
  if (json_node_get_value_type (node) == G_TYPE_STRING)
    return json_node_dup_string (node);
  return json_to_string (node, FALSE);
}

gboolean
sim_set_faults (SimProcess * sim, const gchar * json)
{
  g_autoptr (JsonNode) answer = control_request (sim, "POST", "/_sim/faults",
      json);

  return answer != NULL;
}

gboolean
sim_set_faultsf (SimProcess * sim, const gchar * format, ...)
{
  g_autofree gchar *json = NULL;
  va_list ap;

  va_start (ap, format);
  json = g_strdup_vprintf (format, ap);
  va_end (ap);
  return sim_set_faults (sim, json);
}

gboolean
sim_reset (SimProcess * sim)
{
  g_autoptr (JsonNode) answer = control_request (sim, "POST", "/_sim/reset",
      NULL);

  return answer != NULL;
}

gchar *
sim_create_task (SimProcess * sim, const gchar * json)
{
  g_autoptr (JsonNode) answer = control_request (sim, "POST", "/_sim/tasks",
      json);
  JsonObject *obj;

  if (!answer || !JSON_NODE_HOLDS_OBJECT (answer))
    return NULL;
  obj = json_node_get_object (answer);
  if (!json_object_has_member (obj, "task_id"))
    return NULL;
  return g_strdup (json_object_get_string_member (obj, "task_id"));
}

void
sim_stop (SimProcess * sim)
{
  if (!sim)
    return;

  if (sim->pid > 0) {
    gint64 deadline = g_get_monotonic_time () + STOP_TIMEOUT_S * G_USEC_PER_SEC;
    gboolean reaped = FALSE;
    gint status;

    kill (sim->pid, SIGTERM);
    while (!reaped && g_get_monotonic_time () < deadline) {
      pid_t r = waitpid (sim->pid, &status, WNOHANG);

      if (r == sim->pid || (r < 0 && errno != EINTR))
        reaped = TRUE;
      else
        g_usleep (10 * 1000);
    }
    if (!reaped) {
      g_warning ("sim-launcher: grokimagine-sim ignored SIGTERM, killing it");
      kill (sim->pid, SIGKILL);
      while (waitpid (sim->pid, &status, 0) < 0 && errno == EINTR);
    }
    g_spawn_close_pid (sim->pid);
  }
  if (sim->stdin_fd >= 0)
    close (sim->stdin_fd);
  if (sim->stdout_fd >= 0)
    close (sim->stdout_fd);
  g_free (sim->api_url);
  g_free (sim->cdn_url);
  g_free (sim->cdn2_url);
  if (sim->ca_file) {
    g_free (sim->ca_file);
    tls_release ();
  }
  g_free (sim);
}
