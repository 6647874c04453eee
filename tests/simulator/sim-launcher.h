/* Starts grokimagine-sim for a test and talks to its control endpoints.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#ifndef __SIM_LAUNCHER_H__
#define __SIM_LAUNCHER_H__

#include <glib.h>

G_BEGIN_DECLS

/* the API key the simulator accepts unless started with --key (which can
 * be given more than once, for more accounts) */
#define SIM_KEY "sim-key"

typedef struct _SimProcess SimProcess;

/* Spawns the simulator (path from $GROKIMAGINE_SIM, else the one built
 * with the project) with --exit-on-stdin-eof and @extra_args (may be
 * NULL), and waits at most 30 s until it is ready. */
SimProcess *sim_start (const gchar * const *extra_args, GError ** error);

/* Like sim_start(), but every origin serves HTTPS with a certificate for
 * 127.0.0.1 and localhost, signed by a throwaway test CA. The openssl
 * command line tool makes the CA and the certificate in a temporary
 * directory when the first HTTPS simulator starts; all running ones share
 * them. The directory goes when the last of them stops, or at exit. */
SimProcess *sim_start_https (const gchar * const *extra_args, GError ** error);

/* Base URLs without a trailing slash, e.g. "http://127.0.0.1:40123";
 * cdn2 is the origin that redirects to the CDN (cdn_redirect fault). */
const gchar *sim_api_url (SimProcess * sim);
const gchar *sim_cdn_url (SimProcess * sim);
const gchar *sim_cdn2_url (SimProcess * sim);

/* The PEM file of the CA that signed the simulator's certificate, or NULL
 * for a plain HTTP simulator. */
const gchar *sim_ca_file (SimProcess * sim);

/* One counter of GET /_sim/stats; -1 on error. */
gint64 sim_stat (SimProcess * sim, const gchar * name);

/* A string member of GET /_sim/stats such as "last_range"; NULL when it is
 * null or on error. Free with g_free(). */
gchar *sim_stat_string (SimProcess * sim, const gchar * name);

/* POST /_sim/faults with a JSON object, e.g. "{\"status_status\": 500}" */
gboolean sim_set_faults (SimProcess * sim, const gchar * json);

/* sim_set_faults() with a printf-style format */
gboolean sim_set_faultsf (SimProcess * sim, const gchar * format, ...)
    G_GNUC_PRINTF (2, 3);

/* POST /_sim/reset: counters to zero, faults back to the command line */
gboolean sim_reset (SimProcess * sim);

/* POST /_sim/tasks, e.g. "{\"api\": \"v1\", \"prompt\": \"a cat\"}";
 * returns the new task id (free with g_free()) or NULL. */
gchar *sim_create_task (SimProcess * sim, const gchar * json);

/* SIGTERM, a bounded wait (SIGKILL after 5 s), then frees @sim. */
void sim_stop (SimProcess * sim);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (SimProcess, sim_stop)

G_END_DECLS

#endif /* __SIM_LAUNCHER_H__ */
