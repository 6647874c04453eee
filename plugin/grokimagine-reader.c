/* gst-grokimagine
 * Copyright (C) 2026 gst-grokimagine authors
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "grokimagine-reader.h"
#include "grokimagine-fetch.h"

#include <glib/gstdio.h>
#include <errno.h>
#include <unistd.h>

/* What one request holds in memory at a time */
#define CHUNK_SIZE (256 * 1024)
/* A read this far beyond the sequential download opens the extra request;
 * nearer ones wait for the download, which gets there in a moment */
#define FAR_DISTANCE (2 * 1024 * 1024)
/* A read that waits longer than this for the network starts buffering
 * (shorter waits are the reader catching up with a fast download), which
 * lasts until this much lies ahead of it, or the end */
#define BUFFERING_AFTER (200 * G_TIME_SPAN_MILLISECOND)
#define BUFFERING_AHEAD (1024 * 1024)

/* A block of the download, kept in memory for a little while after it
 * went into the file: a read at the download's edge takes its bytes from
 * here without a copy */
typedef struct
{
  gatomicrefcount ref;
  guint64 offset;               /* of data[0] in the file */
  gsize filled;                 /* reader lock; bytes below never change */
  guint8 data[CHUNK_SIZE];
} Chunk;

/* How many of the sequential download's last chunks stay in memory */
#define RECENT_CHUNKS 8

static Chunk *
chunk_new (guint64 offset)
{
  Chunk *c = g_malloc (sizeof (Chunk));

  g_atomic_ref_count_init (&c->ref);
  c->offset = offset;
  c->filled = 0;
  return c;
}

static Chunk *
chunk_ref (Chunk * c)
{
  g_atomic_ref_count_inc (&c->ref);
  return c;
}

static void
chunk_unref (gpointer data)
{
  Chunk *c = data;

  if (g_atomic_ref_count_dec (&c->ref))
    g_free (c);
}

typedef struct
{
  GrokImagineReader *reader;
  GrokImagineFetch *fetch;
  GThread *thread;
  guint64 start, pos;           /* [start, pos) is in the file: reader lock */
} Filler;

struct _GrokImagineReader
{
  int fd;
  gchar *path;
  gboolean keep_complete;       /* else the file goes when the reader goes */
  GrokImagineReaderNotify notify;
  gpointer user_data;
  GCancellable *cancellable;    /* ends the downloads */

  GMutex lock;
  GCond cond;                   /* more bytes, the end, or a failure */
  guint64 size;                 /* G_MAXUINT64 while unknown */
  gboolean ranges;              /* the host honours Range */
  gchar *content_type;
  Filler seq;                   /* from byte 0 */
  Filler far;                   /* the one extra request, once far_used */
  gboolean far_used;
  gboolean seq_done;
  GQueue recent;                /* Chunk: the last ones of seq, newest last */
  gboolean complete;
  gboolean settled;             /* COMPLETE was told: the end may be read */
  GError *error;                /* the download failed */
  guint http_status;
  gint percent;
  gboolean buffering;           /* a read waited for the network */
  guint64 buffer_from;          /* ...at this offset */
  gint buffer_percent;
};

static void
tell (GrokImagineReader * r, GrokImagineReaderEvent event, gint percent)
{
  if (r->notify)
    r->notify (r, event, percent, r->user_data);
}

/* The end of the bytes that are there from @offset on. Reader lock. */
static guint64
arrived_end (GrokImagineReader * r, guint64 offset)
{
  guint64 end = offset;

  if (r->complete)
    return r->size;
  if (offset < r->seq.pos)
    end = r->seq.pos;
  if (r->far_used && r->far.start <= end && end < r->far.pos)
    end = r->far.pos;
  return end;
}

/* Bytes in the file, each counted once. Reader lock. */
static guint64
arrived_bytes (GrokImagineReader * r)
{
  guint64 n = r->seq.pos;

  if (r->far_used) {
    guint64 overlap = r->seq.pos > r->far.start ?
        MIN (r->seq.pos, r->far.pos) - r->far.start : 0;

    n += r->far.pos - r->far.start - overlap;
  }
  return n;
}

/* How much of BUFFERING_AHEAD has arrived after the read that waited.
 * Reader lock. */
static gint
buffer_level (GrokImagineReader * r)
{
  guint64 end = arrived_end (r, r->buffer_from);

  if (r->size != G_MAXUINT64 && end >= r->size)
    return 100;
  return MIN ((end - r->buffer_from) * 100 / BUFFERING_AHEAD, 100);
}

/* While buffering: the new level, or -1 when unchanged. Reader lock. */
static gint
update_buffering (GrokImagineReader * r)
{
  gint level;

  if (!r->buffering || (level = buffer_level (r)) == r->buffer_percent)
    return -1;
  r->buffer_percent = level;
  r->buffering = level < 100;
  return level;
}

static gboolean
write_at (GrokImagineReader * r, const guint8 * data, gsize len,
    guint64 offset, GError ** error)
{
  while (len > 0) {
    gssize n = pwrite (r->fd, data, len, offset);

    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      int e = errno;

      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (e),
          "cannot write the result to '%s': %s", r->path, g_strerror (e));
      return FALSE;
    }
    data += n;
    len -= n;
    offset += n;
  }
  return TRUE;
}

/* The first answer: what the file is */
static void
answered (GrokImagineReader * r)
{
  guint64 size;

  g_mutex_lock (&r->lock);
  if (grok_imagine_fetch_get_size (r->seq.fetch, &size))
    r->size = size;
  r->ranges = grok_imagine_fetch_has_ranges (r->seq.fetch);
  r->content_type =
      g_strdup (grok_imagine_fetch_get_content_type (r->seq.fetch));
  /* made here, in the thread that owns seq.fetch */
  if (r->ranges && r->size != G_MAXUINT64)
    r->far.fetch = grok_imagine_fetch_new_like (r->seq.fetch);
  g_cond_broadcast (&r->cond);
  g_mutex_unlock (&r->lock);
  if (r->size != G_MAXUINT64)
    tell (r, GROK_IMAGINE_READER_SIZE, -1);
}

/* A new chunk of the sequential download, in the recent ones */
static void
keep_recent (GrokImagineReader * r, Chunk * c)
{
  g_mutex_lock (&r->lock);
  g_queue_push_tail (&r->recent, chunk_ref (c));
  if (g_queue_get_length (&r->recent) > RECENT_CHUNKS)
    chunk_unref (g_queue_pop_head (&r->recent));
  g_mutex_unlock (&r->lock);
}

/* @n more bytes of @f (at the end of @c) are in the file; FALSE when @f
 * has done its part */
static gboolean
advance (GrokImagineReader * r, Filler * f, Chunk * c, gsize n)
{
  gboolean done = FALSE, complete = FALSE;
  gint percent = -1, level;

  g_mutex_lock (&r->lock);
  f->pos += n;
  c->filled += n;
  if (n == 0) {
    /* the end of the file; without a Content-Length, now its size */
    if (r->size == G_MAXUINT64)
      r->size = f->pos;
    done = TRUE;
  }
  /* the extra request goes on from there to the end */
  if (f == &r->seq && r->far_used && f->pos >= r->far.start)
    done = TRUE;
  if (f == &r->seq && done)
    r->seq_done = TRUE;
  if (r->size != G_MAXUINT64 && !r->complete && arrived_end (r, 0) >= r->size)
    r->complete = complete = TRUE;
  /* whole: reads come from the file, the memory goes */
  if (complete)
    g_queue_clear_full (&r->recent, chunk_unref);
  if (r->size != G_MAXUINT64 && r->size > 0) {
    gint p = MIN (arrived_bytes (r) * 100 / r->size, 100);

    if (p > r->percent)
      percent = r->percent = p;
  }
  level = update_buffering (r);
  g_cond_broadcast (&r->cond);
  g_mutex_unlock (&r->lock);

  if (level >= 0)
    tell (r, GROK_IMAGINE_READER_BUFFERING, level);
  if (percent >= 0)
    tell (r, GROK_IMAGINE_READER_PROGRESS, percent);
  if (complete) {
    tell (r, GROK_IMAGINE_READER_COMPLETE, 100);
    /* only now may a read see the end: whoever waits for EOS sees the
     * download complete (and stored) first */
    g_mutex_lock (&r->lock);
    r->settled = TRUE;
    g_cond_broadcast (&r->cond);
    g_mutex_unlock (&r->lock);
  }
  return !done && !complete;
}

static void
give_up (GrokImagineReader * r, GError * err, guint http_status)
{
  gboolean cancelled = g_error_matches (err, G_IO_ERROR,
      G_IO_ERROR_CANCELLED);

  g_mutex_lock (&r->lock);
  if (r->error == NULL) {
    r->error = g_error_copy (err);
    r->http_status = http_status;
  }
  g_cond_broadcast (&r->cond);
  g_mutex_unlock (&r->lock);
  if (!cancelled)
    tell (r, GROK_IMAGINE_READER_FAILED, -1);
}

/* One request: from f->start on, chunk by chunk into the file, resuming
 * from the next missing byte when the connection drops */
static gpointer
fill (gpointer data)
{
  Filler *f = data;
  GrokImagineReader *r = f->reader;
  g_autoptr (GError) err = NULL;
  Chunk *c = NULL;
  guint http_status = 0;
  gssize n;

  if (!grok_imagine_fetch_open (f->fetch, f->start, r->cancellable,
          &http_status, &err))
    goto failed;
  if (f == &r->seq)
    answered (r);
  do {
    if (c == NULL || c->filled == CHUNK_SIZE) {
      g_clear_pointer (&c, chunk_unref);
      c = chunk_new (f->pos);
      if (f == &r->seq)
        keep_recent (r, c);
    }
    /* only this thread writes beyond c->filled */
    n = grok_imagine_fetch_read (f->fetch, c->data + c->filled,
        CHUNK_SIZE - c->filled, FALSE, r->cancellable, &err);
    if (n < 0 || (n > 0 && !write_at (r, c->data + c->filled, n, f->pos,
                &err)))
      goto failed;
  } while (advance (r, f, c, n));
  g_clear_pointer (&c, chunk_unref);
  grok_imagine_fetch_close (f->fetch);
  return NULL;

failed:
  g_clear_pointer (&c, chunk_unref);
  grok_imagine_fetch_close (f->fetch);
  give_up (r, err, http_status);
  return NULL;
}

static GrokImagineReader *
reader_new (int fd, const gchar * path, gboolean keep_complete)
{
  GrokImagineReader *r = g_new0 (GrokImagineReader, 1);

  r->fd = fd;
  r->path = g_strdup (path);
  r->keep_complete = keep_complete;
  r->cancellable = g_cancellable_new ();
  g_mutex_init (&r->lock);
  g_cond_init (&r->cond);
  r->size = G_MAXUINT64;
  r->percent = -1;
  r->seq.reader = r->far.reader = r;
  return r;
}

GrokImagineReader *
grok_imagine_reader_new (const GrokImagineHttp * http, const gchar * url,
    int fd, const gchar * path, gboolean keep_complete,
    GrokImagineReaderNotify notify, gpointer user_data)
{
  GrokImagineReader *r = reader_new (fd, path, keep_complete);

  r->notify = notify;
  r->user_data = user_data;
  r->seq.fetch = grok_imagine_fetch_new (http, url);
  r->seq.thread = g_thread_new ("grokimagine-download", fill, &r->seq);
  return r;
}

GrokImagineReader *
grok_imagine_reader_new_for_file (int fd, const gchar * path, guint64 size)
{
  GrokImagineReader *r = reader_new (fd, path, TRUE);

  r->size = r->seq.pos = size;
  r->complete = r->seq_done = r->settled = TRUE;
  return r;
}

void
grok_imagine_reader_free (GrokImagineReader * r)
{
  if (r == NULL)
    return;
  g_cancellable_cancel (r->cancellable);
  if (r->seq.thread)
    g_thread_join (r->seq.thread);
  if (r->far.thread)
    g_thread_join (r->far.thread);
  g_clear_pointer (&r->seq.fetch, grok_imagine_fetch_free);
  g_clear_pointer (&r->far.fetch, grok_imagine_fetch_free);
  if (r->fd >= 0)
    close (r->fd);
  if (!r->keep_complete || !r->complete)
    g_unlink (r->path);
  g_clear_error (&r->error);
  g_queue_clear_full (&r->recent, chunk_unref);
  g_object_unref (r->cancellable);
  g_mutex_clear (&r->lock);
  g_cond_clear (&r->cond);
  g_free (r->content_type);
  g_free (r->path);
  g_free (r);
}

/* A read far ahead of the sequential download (the index at the end of an
 * MP4): one more request, from there to the end. Reader lock. */
static void
maybe_reach_far (GrokImagineReader * r, guint64 offset)
{
  if (r->far_used || r->far.fetch == NULL || r->seq_done
      || offset >= r->size || offset < r->seq.pos + FAR_DISTANCE)
    return;
  r->far_used = TRUE;
  r->far.start = r->far.pos = offset;
  r->far.thread = g_thread_new ("grokimagine-download", fill, &r->far);
}

static void
wake (GCancellable * cancellable, GrokImagineReader * r)
{
  g_mutex_lock (&r->lock);
  g_cond_broadcast (&r->cond);
  g_mutex_unlock (&r->lock);
}

/* Waits until [offset, offset + len) is there (!fill: its first byte), or
 * the end. Returns how many bytes can be read, or -1. */
static gssize
wait_for_bytes (GrokImagineReader * r, guint64 offset, gsize len,
    gboolean fill, GCancellable * cancellable, GError ** error)
{
  gint64 patience = 0;
  gssize ret;

  g_mutex_lock (&r->lock);
  for (;;) {
    gboolean known = r->size != G_MAXUINT64;
    guint64 want_end, end;
    gint level;

    if (known && offset >= r->size && r->complete && !r->settled
        && r->error == NULL) {
      if (g_cancellable_set_error_if_cancelled (cancellable, error)) {
        ret = -1;
        break;
      }
      g_cond_wait (&r->cond, &r->lock);
      continue;
    }
    if (known && offset >= r->size) {
      ret = 0;
      break;
    }
    want_end = offset + (known ? MIN (len, r->size - offset) : len);
    end = arrived_end (r, offset);
    if (end >= want_end || (!fill && end > offset)) {
      ret = MIN (end, want_end) - offset;
      break;
    }
    if (r->error) {
      g_propagate_error (error, g_error_copy (r->error));
      ret = -1;
      break;
    }
    if (g_cancellable_set_error_if_cancelled (cancellable, error)) {
      ret = -1;
      break;
    }
    maybe_reach_far (r, offset);

    if (r->buffering) {
      /* the level that matters is the one after this read */
      r->buffer_from = offset;
      g_cond_wait (&r->cond, &r->lock);
      continue;
    }
    if (patience == 0)
      patience = g_get_monotonic_time () + BUFFERING_AFTER;
    if (g_cond_wait_until (&r->cond, &r->lock, patience))
      continue;
    if (g_get_monotonic_time () < patience)
      continue;
    r->buffering = TRUE;
    r->buffer_from = offset;
    r->buffer_percent = -1;
    level = update_buffering (r);
    /* said without the lock: the application may do anything then */
    g_mutex_unlock (&r->lock);
    if (level >= 0)
      tell (r, GROK_IMAGINE_READER_BUFFERING, level);
    g_mutex_lock (&r->lock);
  }
  g_mutex_unlock (&r->lock);
  return ret;
}

/* The bytes from @offset on, at most @n (!fill: maybe fewer), without a
 * copy when a recent chunk holds them. Reader lock. */
static GBytes *
recent_bytes (GrokImagineReader * r, guint64 offset, gsize n, gboolean fill)
{
  GList *l;

  for (l = r->recent.tail; l; l = l->prev) {
    Chunk *c = l->data;
    gsize avail;

    if (offset < c->offset || offset >= c->offset + c->filled)
      continue;
    avail = c->offset + c->filled - offset;
    if (avail < n && fill)
      return NULL;
    return g_bytes_new_with_free_func (c->data + (offset - c->offset),
        MIN (avail, n), chunk_unref, chunk_ref (c));
  }
  return NULL;
}

GBytes *
grok_imagine_reader_read (GrokImagineReader * r, guint64 offset, gsize len,
    gboolean fill, GCancellable * cancellable, GError ** error)
{
  GBytes *bytes;
  guint8 *data;
  gulong id = 0;
  gssize n;
  gsize got = 0;

  /* before the lock: a cancellable already cancelled calls wake() at once */
  if (cancellable)
    id = g_cancellable_connect (cancellable, G_CALLBACK (wake), r, NULL);
  n = wait_for_bytes (r, offset, len, fill, cancellable, error);
  g_cancellable_disconnect (cancellable, id);
  if (n < 0)
    return NULL;
  if (n == 0)
    return g_bytes_new (NULL, 0);

  g_mutex_lock (&r->lock);
  bytes = recent_bytes (r, offset, n, fill);
  g_mutex_unlock (&r->lock);
  if (bytes)
    return bytes;

  /* from the file: the bytes are there and never change */
  data = g_malloc (n);
  while (got < (gsize) n) {
    gssize k = pread (r->fd, data + got, n - got, offset + got);

    if (k < 0 && errno == EINTR)
      continue;
    if (k <= 0) {
      int e = k < 0 ? errno : EIO;

      g_free (data);
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (e),
          "cannot read the result from '%s': %s", r->path, g_strerror (e));
      return NULL;
    }
    got += k;
  }
  return g_bytes_new_take (data, n);
}

gboolean
grok_imagine_reader_get_size (GrokImagineReader * r, guint64 * size)
{
  g_mutex_lock (&r->lock);
  *size = r->size;
  g_mutex_unlock (&r->lock);
  return *size != G_MAXUINT64;
}

gboolean
grok_imagine_reader_is_downloading (GrokImagineReader * r)
{
  gboolean downloading;

  g_mutex_lock (&r->lock);
  downloading = !r->complete && r->error == NULL;
  g_mutex_unlock (&r->lock);
  return downloading;
}

gchar *
grok_imagine_reader_dup_content_type (GrokImagineReader * r)
{
  gchar *type;

  g_mutex_lock (&r->lock);
  type = g_strdup (r->content_type);
  g_mutex_unlock (&r->lock);
  return type;
}

const gchar *
grok_imagine_reader_get_path (GrokImagineReader * r)
{
  return r->path;
}

guint
grok_imagine_reader_get_http_status (GrokImagineReader * r)
{
  guint status;

  g_mutex_lock (&r->lock);
  status = r->http_status;
  g_mutex_unlock (&r->lock);
  return status;
}
