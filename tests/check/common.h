/* Shared by the element tests: the simulator, running pipelines, and
 * asserting on what they posted. */
#pragma once

#include <gst/check/gstcheck.h>
#include <libsoup/soup.h>
#include <glib/gstdio.h>

#include "sim-launcher.h"

#define RUN_TIMEOUT_S 60

/* The simulator every test of a program talks to (started by the fixture) */
extern SimProcess *sim;

typedef struct
{
  GstStateChangeReturn start_ret;
  GstMessage *error;            /* the first error, if any */
  GPtrArray *tasks;             /* GstStructure: grokimagine-task messages */
  GPtrArray *warnings;          /* gchar *: texts of warning messages */
  GString *log;                 /* every message, as text */
  GPtrArray *progress;          /* gchar *: "code type percent" */
  GstTagList *src_tags;         /* tags posted by grokimaginesrc */
  GstTagList *sink_tags;        /* tags that reached a sink */
  gboolean eos;
} Run;

void run_free (Run * r);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (Run, run_free);

gchar *src_desc (const gchar * extra);
/* Pipelines that teardown() sets to NULL, whatever the test did: make every
 * pipeline of a test with launch(), or hand it to track_pipeline() */
GstElement *launch (const gchar * desc);
GstElement *track_pipeline (GstElement * pipeline);
Run *run_pipeline (GstElement * pipeline);
Run *run_launch (const gchar * desc);
Run *run_src (const gchar * src_props, const gchar * tail);
Run *run_playbin (const gchar * uri, GstBusSyncHandler watch,
    gpointer data);

void assert_ok (Run * r);
const GstStructure *assert_error (Run * r, GstResourceError code,
    const gchar * needle);
void assert_http_status (const GstStructure * details, guint status);
const GstStructure *last_task (Run * r);
const gchar *result_url (const GstStructure * s, guint i);

GBytes *http_get (const gchar * url);
GBytes *read_file (const gchar * path);
gchar *temp_path (const gchar * name);
void wait_for (GstElement * pipeline, GstMessageType type);

gboolean sim_stat_reaches (const gchar * name, gint64 value);
gboolean run_has_warning (Run * r, const gchar * needle);
Run *run_drain (GstElement * pipeline);

/* Fixtures */
void setup (void);
void teardown (void);
void start_simulator (void);
void stop_simulator (void);

/* Removes @dir, a folder that holds files only */
void remove_folder (const gchar * dir);
/* Waits at most @seconds for @flag, set under @lock with @cond signalled */
gboolean wait_for_flag (GMutex * lock, GCond * cond, gboolean * flag,
    gint seconds);

/* Whether a journal entry in folder @cache holds @text */
gboolean cache_entry_has (const gchar * cache, const gchar * text);

/* Until unlimit_file_size (), no file of this process may grow beyond
 * @bytes: writes past it fail with EFBIG (SIGXFSZ is ignored meanwhile).
 * FALSE when the limit cannot be set. */
gboolean limit_file_size (guint64 bytes);
void unlimit_file_size (void);
