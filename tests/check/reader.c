/* The reader without a pipeline: every read, wherever it falls (in a chunk
 * still in memory, in the file, across both, behind a download that ran
 * ahead), gives the result's own bytes, and the end comes after COMPLETE. */
#include "common.h"

#include <fcntl.h>
#include <string.h>

#include <glib/gstdio.h>

#include "grokimagine-reader.h"

static GrokImagineHttp http;
static gchar *dir;

/* A large result (some 16 MB), its URL and bytes, made once */
static gchar *url;
static GBytes *origin;

static void
fresh (void)
{
  setup ();
  g_clear_object (&http.session);
  http.session = soup_session_new_with_options ("timeout", 10, NULL);
  http.retries = 2;
  g_free (dir);
  dir = g_dir_make_tmp ("grokimagine-reader-XXXXXX", NULL);
  fail_unless (dir != NULL);
  if (url == NULL) {
    g_autoptr (Run) r = NULL;

    fail_unless (sim_set_faults (sim, "{\"large_results\": true}"));
    r = run_src ("prompt=\"reader\"", "fakesink");
    assert_ok (r);
    url = g_strdup (result_url (last_task (r), 0));
    origin = http_get (url);
    fail_unless (g_bytes_get_size (origin) > 4 * 1024 * 1024);
  }
  fail_unless (sim_reset (sim));
  fail_unless (sim_set_faults (sim, "{\"large_results\": true}"));
}

static void
reader_teardown (void)
{
  remove_folder (dir);
  g_clear_object (&http.session);
  teardown ();
}

/* What the reader told, in order */
typedef struct
{
  GMutex lock;
  gboolean complete;
  gboolean failed;
} Told;

static void
on_event (GrokImagineReader * reader, GrokImagineReaderEvent event,
    gint percent, gpointer user_data)
{
  Told *told = user_data;

  g_mutex_lock (&told->lock);
  if (event == GROK_IMAGINE_READER_COMPLETE)
    told->complete = TRUE;
  if (event == GROK_IMAGINE_READER_FAILED)
    told->failed = TRUE;
  g_mutex_unlock (&told->lock);
}

static gboolean
was_told_complete (Told * told)
{
  gboolean complete;

  g_mutex_lock (&told->lock);
  complete = told->complete;
  g_mutex_unlock (&told->lock);
  return complete;
}

/* A reader into a new file of the test's folder (kept when whole with
 * @keep, named in @path) */
static GrokImagineReader *
new_reader_keeping (Told * told, gboolean keep, gchar ** path)
{
  g_autofree gchar *name = g_build_filename (dir, "result-XXXXXX", NULL);
  int fd = g_mkstemp_full (name, O_RDWR | O_CLOEXEC, 0600);

  fail_unless (fd >= 0);
  if (path)
    *path = g_strdup (name);
  return grok_imagine_reader_new (&http, url, fd, name, keep, on_event,
      told);
}

static GrokImagineReader *
new_reader (Told * told)
{
  return new_reader_keeping (told, FALSE, NULL);
}

/* The bytes at [offset, offset + n) are the result's */
static void
assert_bytes (GBytes * got, guint64 offset, gsize n)
{
  gsize size;
  const guint8 *data = g_bytes_get_data (got, &size);

  fail_unless (size == n, "%" G_GSIZE_FORMAT " bytes at %" G_GUINT64_FORMAT
      " instead of %" G_GSIZE_FORMAT, size, offset, n);
  fail_unless (memcmp (data, (const guint8 *) g_bytes_get_data (origin,
              NULL) + offset, n) == 0, "the bytes at %" G_GUINT64_FORMAT
      " differ", offset);
}

/* Reads at random offsets and lengths (many of them across the 256 KiB
 * chunks, some behind, some ahead of the download) while the download
 * runs, each of them whole */
GST_START_TEST (test_random_reads_while_downloading)
{
  Told told = { 0 };
  g_autoptr (GrokImagineReader) reader = NULL;
  gsize size = g_bytes_get_size (origin);
  GRand *rand = g_rand_new_with_seed (12);
  guint i;

  fail_unless (sim_set_faults (sim, "{\"large_results\": true, "
          "\"download_rate_kbps\": 60000}"));
  reader = new_reader (&told);
  for (i = 0; i < 300; i++) {
    guint64 offset = g_rand_int_range (rand, 0, size);
    gsize len = g_rand_int_range (rand, 1, 700 * 1024);
    g_autoptr (GError) err = NULL;
    g_autoptr (GBytes) got = grok_imagine_reader_read (reader, offset, len,
        TRUE, NULL, &err);

    fail_unless (got != NULL, "read %u: %s", i, err ? err->message : "");
    assert_bytes (got, offset, MIN (len, size - offset));
  }
  g_rand_free (rand);
  /* the extra ranged request at most once */
  fail_unless (sim_stat (sim, "cdn_requests") <= 2);
}

GST_END_TEST;

/* A read near the end opens the extra request there; the bytes just
 * before it, which the sequential download brings later, are the result's
 * too, whatever the reads of the far part kept in memory */
GST_START_TEST (test_reads_around_the_far_request)
{
  Told told = { 0 };
  g_autoptr (GrokImagineReader) reader = NULL;
  gsize size = g_bytes_get_size (origin);
  /* not on a 4 KiB boundary, as the moov atom of an MP4 is not */
  guint64 far = size - 100 * 1000 - 123;
  guint64 at[] = { far, far + 5000, far - 5000, far - 300 * 1024, far + 1 };
  guint i;

  fail_unless (sim_set_faults (sim, "{\"large_results\": true, "
          "\"download_rate_kbps\": 60000}"));
  reader = new_reader (&told);
  for (i = 0; i < G_N_ELEMENTS (at); i++) {
    g_autoptr (GError) err = NULL;
    g_autoptr (GBytes) got = grok_imagine_reader_read (reader, at[i], 4000,
        TRUE, NULL, &err);

    fail_unless (got != NULL, "read at %" G_GUINT64_FORMAT ": %s", at[i],
        err ? err->message : "");
    assert_bytes (got, at[i], 4000);
  }
  fail_unless_equals_int (sim_stat (sim, "cdn_requests"), 2);
}

GST_END_TEST;

/* A reader that reads nothing until the download is whole, then every byte
 * in order: all of it comes from the file, the same bytes */
GST_START_TEST (test_late_sequential_reader)
{
  Told told = { 0 };
  g_autoptr (GrokImagineReader) reader = new_reader (&told);
  gsize size = g_bytes_get_size (origin);
  guint64 offset = 0;
  guint i;

  /* bounded: 30 s */
  for (i = 0; i < 3000 && grok_imagine_reader_is_downloading (reader); i++)
    g_usleep (10 * 1000);
  fail_unless (was_told_complete (&told));
  for (i = 0; offset < size && i < 10000; i++) {
    g_autoptr (GError) err = NULL;
    g_autoptr (GBytes) got = grok_imagine_reader_read (reader, offset,
        100 * 1000, FALSE, NULL, &err);

    fail_unless (got != NULL && g_bytes_get_size (got) > 0, "read at %"
        G_GUINT64_FORMAT ": %s", offset, err ? err->message : "end");
    assert_bytes (got, offset, g_bytes_get_size (got));
    offset += g_bytes_get_size (got);
  }
  fail_unless_equals_uint64 (offset, size);
  fail_unless_equals_int (sim_stat (sim, "cdn_requests"), 1);
}

GST_END_TEST;

/* A sequential reader at the download's edge gets the last byte only after
 * COMPLETE was told, and then the end */
GST_START_TEST (test_end_after_complete)
{
  Told told = { 0 };
  g_autoptr (GrokImagineReader) reader = NULL;
  gsize size = g_bytes_get_size (origin);
  guint64 offset = 0;
  guint i;

  fail_unless (sim_set_faults (sim, "{\"large_results\": true, "
          "\"download_rate_kbps\": 200000}"));
  reader = new_reader (&told);
  for (i = 0; i < 100000; i++) {
    g_autoptr (GError) err = NULL;
    g_autoptr (GBytes) got = grok_imagine_reader_read (reader, offset,
        256 * 1024, FALSE, NULL, &err);

    fail_unless (got != NULL, "%s", err ? err->message : "");
    if (g_bytes_get_size (got) == 0)
      break;
    assert_bytes (got, offset, g_bytes_get_size (got));
    offset += g_bytes_get_size (got);
    if (offset == size)
      fail_unless (was_told_complete (&told), "the last byte came before "
          "the download was complete");
  }
  fail_unless_equals_uint64 (offset, size);
  fail_unless (was_told_complete (&told));
}

GST_END_TEST;

/* A read waiting for bytes ends when its cancellable is cancelled; the
 * download goes on, and a later read gets its bytes */
GST_START_TEST (test_cancelled_read)
{
  Told told = { 0 };
  g_autoptr (GrokImagineReader) reader = NULL;
  g_autoptr (GCancellable) cancellable = g_cancellable_new ();
  g_autoptr (GError) err = NULL;
  g_autoptr (GBytes) got = NULL;
  gsize size = g_bytes_get_size (origin);

  fail_unless (sim_set_faults (sim, "{\"large_results\": true, "
          "\"download_rate_kbps\": 8000}"));
  reader = new_reader (&told);
  g_cancellable_cancel (cancellable);
  got = grok_imagine_reader_read (reader, size / 2, 1000, TRUE, cancellable,
      &err);
  fail_unless (got == NULL);
  fail_unless (g_error_matches (err, G_IO_ERROR, G_IO_ERROR_CANCELLED));
  got = grok_imagine_reader_read (reader, 1000, 1000, TRUE, NULL, NULL);
  fail_unless (got != NULL);
  assert_bytes (got, 1000, 1000);
}

GST_END_TEST;

/* What the reader told, counted, for the cases below; @complete_delay_us
 * holds COMPLETE back as a journal lock held elsewhere does */
typedef struct
{
  GMutex lock;
  guint buffering, buffering_done;
  gboolean complete, failed;
  gulong complete_delay_us;
  gint progress;                /* the last PROGRESS */
  GCancellable *cancel_on_buffering;    /* cancelled when BUFFERING starts */
} Counted;

static void
on_event_counted (GrokImagineReader * reader, GrokImagineReaderEvent event,
    gint percent, gpointer user_data)
{
  Counted *c = user_data;

  if (event == GROK_IMAGINE_READER_COMPLETE && c->complete_delay_us)
    g_usleep (c->complete_delay_us);
  g_mutex_lock (&c->lock);
  if (event == GROK_IMAGINE_READER_BUFFERING) {
    c->buffering++;
    if (percent == 100)
      c->buffering_done++;
  }
  if (event == GROK_IMAGINE_READER_COMPLETE)
    c->complete = TRUE;
  if (event == GROK_IMAGINE_READER_FAILED)
    c->failed = TRUE;
  if (event == GROK_IMAGINE_READER_PROGRESS)
    c->progress = percent;
  if (event == GROK_IMAGINE_READER_BUFFERING && percent < 100
      && c->cancel_on_buffering)
    g_cancellable_cancel (c->cancel_on_buffering);
  g_mutex_unlock (&c->lock);
}

static GrokImagineReader *
new_reader_at (const gchar * folder, const gchar * from, gboolean keep,
    Counted * c, gchar ** path_out)
{
  g_autofree gchar *path = g_build_filename (folder, "result-XXXXXX", NULL);
  int fd = g_mkstemp_full (path, O_RDWR | O_CLOEXEC, 0600);

  fail_unless (fd >= 0);
  if (path_out)
    *path_out = g_strdup (path);
  return grok_imagine_reader_new (&http, from, fd, path, keep,
      on_event_counted, c);
}

/* Reads @reader from byte 0 to the end in order, with @fill in pieces of
 * @len, else what is there (at most @len), each piece @expect's own
 * bytes; returns where the end came */
static guint64
read_whole (GrokImagineReader * reader, GBytes * expect, gsize len,
    gboolean fill)
{
  gsize size = g_bytes_get_size (expect);
  guint64 offset = 0;
  guint i;

  for (i = 0; i < 100000; i++) {
    g_autoptr (GError) err = NULL;
    g_autoptr (GBytes) got = grok_imagine_reader_read (reader, offset, len,
        fill, NULL, &err);
    gsize n;
    const guint8 *data;

    fail_unless (got != NULL, "read at %" G_GUINT64_FORMAT ": %s", offset,
        err ? err->message : "");
    data = g_bytes_get_data (got, &n);
    if (n == 0)
      break;
    fail_unless (offset + n <= size, "bytes beyond the end");
    fail_unless (!fill || n == MIN (len, size - offset), "a short read");
    fail_unless (memcmp (data, (const guint8 *) g_bytes_get_data (expect,
                NULL) + offset, n) == 0, "the bytes at %" G_GUINT64_FORMAT
        " differ", offset);
    offset += n;
  }
  return offset;
}

/* A read that wants more than the 1 MiB buffering looks ahead (a pulling
 * demuxer's big moov): BUFFERING reaches 100 once, and the read waits
 * quietly for the rest instead of telling 100 again and again */
GST_START_TEST (test_long_read_buffers_once)
{
  Counted c = { 0 };
  g_autoptr (GrokImagineReader) reader = NULL;
  g_autoptr (GError) err = NULL;
  g_autoptr (GBytes) got = NULL;

  fail_unless (sim_set_faults (sim, "{\"large_results\": true, "
          "\"download_rate_kbps\": 16000}"));
  reader = new_reader_at (dir, url, FALSE, &c, NULL);
  got = grok_imagine_reader_read (reader, 0, 3 * 1024 * 1024, TRUE, NULL,
      &err);
  fail_unless (got != NULL, "%s", err ? err->message : "");
  assert_bytes (got, 0, 3 * 1024 * 1024);
  g_mutex_lock (&c.lock);
  fail_unless (c.buffering > 0, "the read never buffered");
  fail_unless (c.buffering_done <= 1, "BUFFERING 100 told %u times",
      c.buffering_done);
  g_mutex_unlock (&c.lock);
}

GST_END_TEST;

/* A sequential reader at the last byte waits while COMPLETE is told (the
 * element stores the result then, perhaps behind another process's journal
 * lock): it waits quietly, not telling BUFFERING 100 again and again */
GST_START_TEST (test_last_byte_waits_quietly)
{
  Counted c = { 0 };
  g_autoptr (GrokImagineReader) reader = NULL;

  c.complete_delay_us = 600 * 1000;
  fail_unless (sim_set_faults (sim, "{\"large_results\": true}"));
  reader = new_reader_at (dir, url, FALSE, &c, NULL);
  fail_unless_equals_uint64 (read_whole (reader, origin, 256 * 1024, FALSE),
      g_bytes_get_size (origin));
  g_mutex_lock (&c.lock);
  fail_unless (c.complete);
  fail_unless (c.buffering_done <= 1, "BUFFERING 100 told %u times",
      c.buffering_done);
  g_mutex_unlock (&c.lock);
}

GST_END_TEST;

/* Every byte arrived (a pulling demuxer has read the last one) and the
 * reader goes at once, while the disk may still be behind the network: the
 * download is complete, so the file is stored whole and COMPLETE told,
 * never deleted as if it were broken off */
GST_START_TEST (test_free_after_last_byte_keeps_the_file)
{
  gsize size = g_bytes_get_size (origin);
  guint round;

  fail_unless (sim_set_faults (sim, "{\"large_results\": true}"));
  for (round = 0; round < 3; round++) {
    Counted c = { 0 };
    g_autofree gchar *path = NULL;
    g_autoptr (GError) err = NULL;
    g_autoptr (GBytes) got = NULL, stored = NULL;
    GrokImagineReader *reader = new_reader_at (dir, url, TRUE, &c, &path);
    guint64 offset;

    /* in order, as a demuxer pulls, up to the last byte */
    for (offset = 0; offset < size; offset += g_bytes_get_size (got)) {
      g_clear_pointer (&got, g_bytes_unref);
      got = grok_imagine_reader_read (reader, offset, 1024 * 1024, TRUE,
          NULL, &err);
      fail_unless (got != NULL, "%s", err ? err->message : "");
      assert_bytes (got, offset, MIN (1024 * 1024, size - offset));
    }
    grok_imagine_reader_free (reader);
    fail_unless (c.complete, "round %u: complete but not told", round);
    fail_unless (g_file_test (path, G_FILE_TEST_EXISTS), "round %u: the "
        "complete file was deleted", round);
    stored = read_file (path);
    g_unlink (path);
    fail_unless (g_bytes_equal (stored, origin), "round %u: the file differs",
        round);
  }
}

GST_END_TEST;

/* A host of our own on loopback, for answers the simulator does not give:
 * any size, empty, or without a Content-Length (chunked). It ignores
 * Range: 200 with the whole body. */
typedef struct
{
  GThread *thread;
  GMainContext *context;
  GMainLoop *loop;
  GBytes *body;
  gboolean chunked;
  gchar *url;
  GMutex lock;
  GCond cond;
} Host;

static void
host_handler (SoupServer * server, SoupServerMessage * msg, const char *path,
    GHashTable * query, gpointer user_data)
{
  Host *h = user_data;
  SoupMessageHeaders *resp = soup_server_message_get_response_headers (msg);
  SoupMessageBody *body = soup_server_message_get_response_body (msg);
  gsize size = g_bytes_get_size (h->body), at;

  soup_server_message_set_status (msg, 200, NULL);
  soup_message_headers_replace (resp, "Content-Type", "video/mp4");
  if (h->chunked)
    soup_message_headers_set_encoding (resp, SOUP_ENCODING_CHUNKED);
  else
    soup_message_headers_set_content_length (resp, size);
  /* in pieces that are not chunks of the reader's */
  for (at = 0; at < size; at += 100000) {
    g_autoptr (GBytes) piece = g_bytes_new_from_bytes (h->body, at,
        MIN (100000, size - at));

    soup_message_body_append_bytes (body, piece);
  }
  soup_message_body_complete (body);
}

static gpointer
host_run (gpointer data)
{
  Host *h = data;
  g_autoptr (SoupServer) server = NULL;
  g_autoptr (GInetAddress) lo = g_inet_address_new_loopback
      (G_SOCKET_FAMILY_IPV4);
  g_autoptr (GSocketAddress) any = g_inet_socket_address_new (lo, 0);
  g_autoptr (GSocketAddress) bound = NULL;
  g_autoptr (GSocket) sock = g_socket_new (G_SOCKET_FAMILY_IPV4,
      G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP, NULL);

  g_main_context_push_thread_default (h->context);
  server = soup_server_new (NULL, NULL);
  soup_server_add_handler (server, "/r", host_handler, h, NULL);
  /* our own socket: the port comes from it, not from libsoup's URIs */
  if (sock && g_socket_bind (sock, any, TRUE, NULL)
      && g_socket_listen (sock, NULL)
      && (bound = g_socket_get_local_address (sock, NULL))
      && soup_server_listen_socket (server, sock, 0, NULL)) {
    g_mutex_lock (&h->lock);
    h->url = g_strdup_printf ("http://127.0.0.1:%u/r",
        g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (bound)));
    g_cond_signal (&h->cond);
    g_mutex_unlock (&h->lock);
    g_main_loop_run (h->loop);
  } else {
    g_mutex_lock (&h->lock);
    h->url = g_strdup ("");
    g_cond_signal (&h->cond);
    g_mutex_unlock (&h->lock);
  }
  soup_server_disconnect (server);
  g_main_context_pop_thread_default (h->context);
  return NULL;
}

/* Serves @size bytes of a pattern (not the same in any two places) */
static Host *
host_start (gsize size, gboolean chunked)
{
  Host *h = g_new0 (Host, 1);
  guint8 *data = g_malloc (MAX (size, 1));
  gint64 until = g_get_monotonic_time () + 10 * G_TIME_SPAN_SECOND;
  gsize i;

  for (i = 0; i < size; i++)
    data[i] = (i * 7 + i / 4093) & 0xff;
  h->body = g_bytes_new_take (data, size);
  h->chunked = chunked;
  h->context = g_main_context_new ();
  h->loop = g_main_loop_new (h->context, FALSE);
  g_mutex_init (&h->lock);
  g_cond_init (&h->cond);
  h->thread = g_thread_new ("test-host", host_run, h);
  g_mutex_lock (&h->lock);
  while (h->url == NULL && g_cond_wait_until (&h->cond, &h->lock, until));
  g_mutex_unlock (&h->lock);
  fail_unless (h->url && h->url[0], "the test host did not start");
  return h;
}

static gboolean
host_quit (gpointer data)
{
  g_main_loop_quit (data);
  return G_SOURCE_REMOVE;
}

static void
host_stop (Host * h)
{
  g_main_context_invoke (h->context, host_quit, h->loop);
  g_thread_join (h->thread);
  g_main_loop_unref (h->loop);
  g_main_context_unref (h->context);
  g_bytes_unref (h->body);
  g_mutex_clear (&h->lock);
  g_cond_clear (&h->cond);
  g_free (h->url);
  g_free (h);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (Host, host_stop);

/* Reads the whole result in order, with @fill in pieces of @len, else what
 * is there; asserts it is @h's body and that the end came after COMPLETE */
static void
assert_reads_whole (GrokImagineReader * reader, Host * h, Counted * c,
    gsize len, gboolean fill)
{
  gsize size = g_bytes_get_size (h->body);
  guint64 offset = read_whole (reader, h->body, len, fill), total;

  fail_unless_equals_uint64 (offset, size);
  g_mutex_lock (&c->lock);
  fail_unless (c->complete, "the end came before COMPLETE");
  fail_unless (!c->failed);
  g_mutex_unlock (&c->lock);
  fail_unless (grok_imagine_reader_get_size (reader, &total));
  fail_unless_equals_uint64 (total, size);
  fail_if (grok_imagine_reader_is_downloading (reader));
}

/* Without a Content-Length the size is known at the end of the download:
 * the end is told after COMPLETE, as with one */
GST_START_TEST (test_end_without_length_after_complete)
{
  const gsize sizes[] = { 1, 4097, 256 * 1024 + 1 };
  guint i, k;

  for (i = 0; i < G_N_ELEMENTS (sizes); i++) {
    for (k = 0; k < 2; k++) {
      g_autoptr (Host) h = host_start (sizes[i], TRUE);
      Counted c = { 0 };
      g_autoptr (GrokImagineReader) reader = new_reader_at (dir, h->url,
          FALSE, &c, NULL);

      assert_reads_whole (reader, h, &c, 64 * 1024, k);
    }
  }
}

GST_END_TEST;

/* Sizes around the reader's boundaries (direct I/O's 4 KiB, the 256 KiB
 * chunks), with and without a Content-Length, read in order both ways */
GST_START_TEST (test_odd_sizes)
{
  const gsize sizes[] = { 1, 4095, 4097, 256 * 1024, 256 * 1024 + 1,
    6 * 256 * 1024 - 1, 9 * 256 * 1024, 9 * 256 * 1024 + 4096 * 3 + 17
  };
  guint i, k;

  for (i = 0; i < G_N_ELEMENTS (sizes); i++) {
    for (k = 0; k < 4; k++) {
      g_autoptr (Host) h = host_start (sizes[i], k & 1);
      Counted c = { 0 };
      g_autoptr (GrokImagineReader) reader = new_reader_at (dir, h->url,
          FALSE, &c, NULL);

      GST_INFO ("%" G_GSIZE_FORMAT " bytes, %s, %s", sizes[i],
          k & 1 ? "chunked" : "with a length", k & 2 ? "fill" : "in order");
      assert_reads_whole (reader, h, &c, k & 2 ? 300 * 1000 : 64 * 1024,
          k & 2);
    }
  }
}

GST_END_TEST;

/* An empty result, with Content-Length: 0 or chunked: the end at once,
 * after COMPLETE, no failure */
GST_START_TEST (test_empty_result)
{
  guint k;

  for (k = 0; k < 4; k++) {
    g_autoptr (Host) h = host_start (0, k & 1);
    Counted c = { 0 };
    g_autoptr (GrokImagineReader) reader = new_reader_at (dir, h->url,
        FALSE, &c, NULL);

    assert_reads_whole (reader, h, &c, 4096, k & 2);
  }
}

GST_END_TEST;

/* A file that may not grow to the result's size (RLIMIT_FSIZE, with
 * SIGXFSZ ignored: EFBIG), with and without a Content-Length: the
 * download fails with an error naming the file, which is deleted, and a
 * reader in order never sees the end (bytes that arrived in memory before
 * the writer failed may still be read) */
GST_START_TEST (test_file_too_large_is_an_error)
{
  guint k;

  for (k = 0; k < 2; k++) {
    g_autoptr (Host) h = host_start (3 * 1024 * 1024, k);
    Counted c = { 0 };
    g_autofree gchar *path = NULL;
    g_autoptr (GError) err = NULL;
    g_autoptr (GBytes) got = NULL;
    GrokImagineReader *reader;
    gboolean limited;
    guint64 offset;
    guint n;

    /* limited only here: nothing below fails before it is lifted */
    limited = limit_file_size (1024 * 1024);
    reader = new_reader_at (dir, h->url, FALSE, &c, &path);
    for (offset = 0, n = 0; n < 1000; n++) {
      got = grok_imagine_reader_read (reader, offset, 64 * 1024, FALSE, NULL,
          &err);
      if (got == NULL || g_bytes_get_size (got) == 0)
        break;
      offset += g_bytes_get_size (got);
      g_clear_pointer (&got, g_bytes_unref);
    }
    grok_imagine_reader_free (reader);
    unlimit_file_size ();

    fail_unless (limited);
    fail_unless (got == NULL, "%s: read to the end past the limit",
        k ? "chunked" : "with a length");
    fail_unless (err != NULL && strstr (err->message, dir) != NULL
        && strstr (err->message, g_strerror (EFBIG)) != NULL, "%s: %s",
        k ? "chunked" : "with a length", err ? err->message : "no error");
    fail_unless (c.failed && !c.complete);
    fail_if (g_file_test (path, G_FILE_TEST_EXISTS));
  }
}

GST_END_TEST;

/* The same reads on a memory file system (tmpfs: direct I/O, or its
 * refusal, and no page cache of its own) give the same bytes */
GST_START_TEST (test_reads_on_tmpfs)
{
  g_autofree gchar *shm = NULL;
  gsize size = g_bytes_get_size (origin);
  GRand *rand = g_rand_new_with_seed (34);
  g_autoptr (GrokImagineReader) reader = NULL;
  Counted c = { 0 };
  guint i;

  shm = g_strdup ("/dev/shm/grokimagine-reader-XXXXXX");
  if (!g_file_test ("/dev/shm", G_FILE_TEST_IS_DIR)
      || g_mkdtemp (shm) == NULL) {
    GST_INFO ("no /dev/shm: skipped");
    g_rand_free (rand);
    return;
  }
  fail_unless (sim_set_faults (sim, "{\"large_results\": true, "
          "\"download_rate_kbps\": 60000}"));
  reader = new_reader_at (shm, url, FALSE, &c, NULL);
  for (i = 0; i < 100; i++) {
    guint64 at = g_rand_int_range (rand, 0, size);
    gsize len = g_rand_int_range (rand, 1, 700 * 1024);
    g_autoptr (GError) err = NULL;
    g_autoptr (GBytes) got = grok_imagine_reader_read (reader, at, len,
        TRUE, NULL, &err);

    fail_unless (got != NULL, "read %u: %s", i, err ? err->message : "");
    assert_bytes (got, at, MIN (len, size - at));
  }
  fail_unless_equals_uint64 (read_whole (reader, origin, 100 * 1000, FALSE),
      size);
  g_rand_free (rand);
  g_clear_pointer (&reader, grok_imagine_reader_free);
  remove_folder (shm);
}

GST_END_TEST;

/* The connection drops twice, off the chunks' and direct I/O's
 * boundaries, once in the sequential download and once in the far one:
 * every read, in memory, in the file, around the far request and across
 * the places of the drops, gives the result's bytes */
GST_START_TEST (test_reads_across_dropped_connections)
{
  Counted c = { 0 };
  g_autoptr (GrokImagineReader) reader = NULL;
  gsize size = g_bytes_get_size (origin);
  guint64 drop = 5 * 256 * 1024 + 4096 + 77;
  guint64 far = size - 700 * 1000 - 5;
  guint64 at[] = { drop + 1000, far, far + 300 * 1000 - 10, drop - 1000, 0,
    drop - 300 * 1024, far - 5000, size - 3000
  };
  guint i;

  http.retries = 5;
  fail_unless (sim_set_faultsf (sim, "{\"large_results\": true, "
          "\"download_rate_kbps\": 60000, \"drop_download_at\": %"
          G_GUINT64_FORMAT ", \"fault_count\": 1}", drop));
  reader = new_reader_at (dir, url, FALSE, &c, NULL);
  for (i = 0; i < G_N_ELEMENTS (at); i++) {
    g_autoptr (GError) err = NULL;
    g_autoptr (GBytes) got = NULL;

    /* once the sequential download has resumed: the far request's own
     * drop, a little after its first byte */
    if (i == 1)
      fail_unless (sim_set_faultsf (sim, "{\"drop_download_at\": %"
              G_GUINT64_FORMAT ", \"fault_count\": 1}", far + 200 * 1000));
    got = grok_imagine_reader_read (reader, at[i], 600 * 1000, TRUE, NULL,
        &err);
    fail_unless (got != NULL, "read at %" G_GUINT64_FORMAT ": %s", at[i],
        err ? err->message : "");
    assert_bytes (got, at[i], MIN (600 * 1000, size - at[i]));
  }
  fail_unless_equals_uint64 (read_whole (reader, origin, 256 * 1024, FALSE),
      size);
  /* the first request, the far one, and one resume for each */
  fail_unless_equals_int (sim_stat (sim, "cdn_requests"), 4);
}

GST_END_TEST;

/* The reader goes at random moments of the download (the socket, the
 * writer, the pacing wait, the end), after a read or not: it goes at once,
 * and a file kept for a cache is either gone or whole, told COMPLETE */
GST_START_TEST (test_free_at_random_moments)
{
  GRand *rand = g_rand_new_with_seed (56);
  gsize size = g_bytes_get_size (origin);
  guint i, kept = 0;

  for (i = 0; i < 40; i++) {
    Counted c = { 0 };
    g_autofree gchar *path = NULL;
    GrokImagineReader *reader;
    gboolean exists;

    fail_unless (sim_set_faultsf (sim, "{\"large_results\": true, "
            "\"download_rate_kbps\": %d}", i % 2 ? 0 : 400000));
    reader = new_reader_at (dir, url, TRUE, &c, &path);
    g_usleep (g_rand_int_range (rand, 0, 400 * 1000));
    if (i % 3 == 0) {
      g_autoptr (GBytes) got = grok_imagine_reader_read (reader,
          g_rand_int_range (rand, 0, size), 64 * 1024, i % 2, NULL, NULL);

      fail_unless (got != NULL);
    }
    grok_imagine_reader_free (reader);
    exists = g_file_test (path, G_FILE_TEST_EXISTS);
    fail_unless (exists == c.complete, "round %u: %s", i, exists ?
        "a file kept, not told complete" : "told complete, no file");
    if (exists) {
      g_autoptr (GBytes) stored = read_file (path);

      g_unlink (path);
      fail_unless (g_bytes_equal (stored, origin), "round %u: the kept file "
          "differs", i);
      kept++;
    }
  }
  g_rand_free (rand);
  GST_INFO ("%u of %u files kept", kept, i);
}

GST_END_TEST;

/* A read that buffered is flushed away (a seek back), and the next read
 * finds its bytes there at once: the buffering ends as soon as 1 MiB lies
 * ahead of that read, not of the one that went */
GST_START_TEST (test_seek_back_ends_buffering)
{
  Counted c = { 0 };
  g_autoptr (GCancellable) flush = g_cancellable_new ();
  g_autoptr (GrokImagineReader) reader = NULL;
  g_autoptr (GError) err = NULL;
  g_autoptr (GBytes) got = NULL;
  gsize size = g_bytes_get_size (origin);
  guint i;

  /* one request (no far one), some 1 MB/s */
  fail_unless (sim_set_faults (sim, "{\"large_results\": true, "
          "\"ignore_range\": true, \"download_rate_kbps\": 8000}"));
  c.cancel_on_buffering = flush;
  reader = new_reader_at (dir, url, FALSE, &c, NULL);
  got = grok_imagine_reader_read (reader, 3 * 1024 * 1024 / 2, 1000, TRUE,
      flush, &err);
  fail_unless (got == NULL && g_error_matches (err, G_IO_ERROR,
          G_IO_ERROR_CANCELLED));
  /* bounded: 30 s, until some 1.2 MiB arrived */
  for (i = 0; i < 3000; i++) {
    gint progress;

    g_mutex_lock (&c.lock);
    progress = c.progress;
    g_mutex_unlock (&c.lock);
    if ((guint64) progress * size / 100 >= 1200 * 1024)
      break;
    g_usleep (10 * 1000);
  }
  got = grok_imagine_reader_read (reader, 0, 1000, TRUE, NULL, NULL);
  fail_unless (got != NULL);
  assert_bytes (got, 0, 1000);
  g_mutex_lock (&c.lock);
  fail_unless (c.buffering_done == 1, "buffering did not end at the read "
      "after the seek (BUFFERING 100 told %u times)", c.buffering_done);
  g_mutex_unlock (&c.lock);
}

GST_END_TEST;

static Suite *
reader_suite (void)
{
  Suite *s = suite_create ("grokimagine-reader");
  TCase *tc = tcase_create ("general");

  tcase_set_timeout (tc, 120);
  tcase_add_unchecked_fixture (tc, start_simulator, stop_simulator);
  tcase_add_checked_fixture (tc, fresh, reader_teardown);
  tcase_add_test (tc, test_random_reads_while_downloading);
  tcase_add_test (tc, test_reads_around_the_far_request);
  tcase_add_test (tc, test_late_sequential_reader);
  tcase_add_test (tc, test_end_after_complete);
  tcase_add_test (tc, test_cancelled_read);
  tcase_add_test (tc, test_long_read_buffers_once);
  tcase_add_test (tc, test_last_byte_waits_quietly);
  tcase_add_test (tc, test_free_after_last_byte_keeps_the_file);
  tcase_add_test (tc, test_end_without_length_after_complete);
  tcase_add_test (tc, test_odd_sizes);
  tcase_add_test (tc, test_empty_result);
  tcase_add_test (tc, test_file_too_large_is_an_error);
  tcase_add_test (tc, test_reads_on_tmpfs);
  tcase_add_test (tc, test_reads_across_dropped_connections);
  tcase_add_test (tc, test_free_at_random_moments);
  tcase_add_test (tc, test_seek_back_ends_buffering);
  suite_add_tcase (s, tc);
  return s;
}

GST_CHECK_MAIN (reader);
