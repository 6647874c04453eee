/* gst-grokimagine
 * Copyright (C) 2026 gst-grokimagine authors
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#define _GNU_SOURCE             /* O_DIRECT, fallocate () */
#include "grokimagine-reader.h"
#include "grokimagine-fetch.h"

#include <glib/gstdio.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/uio.h>
#include <unistd.h>

/* What one request holds in memory at a time; the unit of the file's writes */
#define CHUNK_SIZE (256 * 1024)
/* Direct I/O wants buffers and offsets on this boundary */
#define CHUNK_ALIGN 4096
/* A read this far beyond the sequential download opens the extra request;
 * nearer ones wait for the download, which gets there in a moment */
#define FAR_DISTANCE (2 * 1024 * 1024)
/* A read that waits longer than this for the network starts buffering
 * (shorter waits are the reader catching up with a fast download), which
 * lasts until this much lies ahead of it, or the end */
#define BUFFERING_AFTER (200 * G_TIME_SPAN_MILLISECOND)
#define BUFFERING_AHEAD (1024 * 1024)

/* A block of the sequential download. It is read into memory, handed to
 * reads at the download's edge without a copy, and written to the file
 * behind them by a thread of its own: receiving waits for the disk only
 * when the file falls UNSTORED_CHUNKS behind. */
typedef struct
{
  gatomicrefcount ref;
  guint64 offset;               /* of data[0] in the file */
  gsize filled;                 /* reader lock; bytes below never change */
  gboolean stored;              /* reader lock: they are in the file */
  guint8 *data;                 /* CHUNK_SIZE bytes, aligned for direct I/O */
} Chunk;

/* How many of the sequential download's chunks stay in memory: those not
 * in the file yet, then the newest of those that are */
#define RECENT_CHUNKS 16
/* How far the file may fall behind the network before receiving waits */
#define UNSTORED_CHUNKS 14
/* The most chunks written in one request: half of those, so that the
 * network fills the other half while the disk writes one, and the disk
 * finds the next write waiting when it is done (a disk slower than the
 * network then never waits for it) */
#define STORE_BATCH (UNSTORED_CHUNKS / 2)
/* A reader that reads from memory keeps pace with the network: before a
 * chunk it has not read yet leaves memory, the download waits this long
 * for it. One that does not come reads from the file from then on, and the
 * download goes on as fast as the network gives. */
#define PACE_WAIT (50 * G_TIME_SPAN_MILLISECOND)

/* Buffers of chunks that went, kept for the next chunks of any reader in
 * the process: memory that is already there costs nothing to fill again,
 * where fresh memory costs a page fault for every page */
#define POOL_MAX 4
static GMutex pool_lock;
static GSList *pool;
static guint pool_len;

static guint8 *
buffer_take (void)
{
  void *data = NULL;

  g_mutex_lock (&pool_lock);
  if (pool) {
    data = pool->data;
    pool = g_slist_delete_link (pool, pool);
    pool_len--;
  }
  g_mutex_unlock (&pool_lock);
  if (data == NULL && posix_memalign (&data, CHUNK_ALIGN, CHUNK_SIZE) != 0)
    g_error ("cannot allocate %d bytes", CHUNK_SIZE);
  return data;
}

static void
buffer_give_back (guint8 * data)
{
  g_mutex_lock (&pool_lock);
  if (pool_len < POOL_MAX) {
    pool = g_slist_prepend (pool, data);
    pool_len++;
    data = NULL;
  }
  g_mutex_unlock (&pool_lock);
  free (data);
}

static Chunk *
chunk_new (guint64 offset)
{
  Chunk *c = g_new (Chunk, 1);

  g_atomic_ref_count_init (&c->ref);
  c->offset = offset;
  c->filled = 0;
  c->stored = FALSE;
  c->data = buffer_take ();
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

  if (g_atomic_ref_count_dec (&c->ref)) {
    buffer_give_back (c->data);
    g_free (c);
  }
}

typedef struct
{
  GrokImagineReader *reader;
  GrokImagineFetch *fetch;
  GThread *thread;
  guint64 start, pos;           /* [start, pos) arrived: reader lock */
} Filler;

struct _GrokImagineReader
{
  int fd;
  int direct_fd;                /* the same file for direct I/O, or -1 */
  gboolean direct_writes;       /* the writer's: direct_fd takes them */
  gchar *path;
  gboolean keep_complete;       /* else the file goes when the reader goes */
  GrokImagineReaderNotify notify;
  gpointer user_data;
  GCancellable *cancellable;    /* ends the downloads */
  gulong cancel_id;

  GMutex lock;
  GCond cond;                   /* for reads: more bytes, the end, a failure */
  GCond work;                   /* for the writer: a chunk, or the end */
  GCond room;                   /* for seq: the writer or a read went on */
  guint reading;                /* reads waiting on cond */
  gboolean writer_waits, seq_waits;     /* ...on work, on room */
  guint64 size;                 /* G_MAXUINT64 while unknown */
  gboolean ranges;              /* the host honours Range */
  gchar *content_type;
  Filler seq;                   /* from byte 0 */
  Filler far;                   /* the one extra request, once far_used;
                                 * its bytes are in the file on arrival */
  gboolean far_used;
  gboolean seq_done;            /* seq needs no more bytes */
  gboolean seq_ended;           /* ...and has handed over its last chunk */
  GThread *writer;
  GQueue unstored;              /* Chunk: seq's, for the writer, in order */
  guint64 stored_end;           /* seq's [0, stored_end) is in the file */
  GQueue recent;                /* Chunk: seq's in memory, newest last */
  Chunk *back;                  /* the last chunk read back from the file */
  gboolean live;                /* the reads keep pace, from memory */
  guint64 read_end;             /* where the last read ended */
  gboolean complete;            /* every byte is in the file */
  gboolean settled;             /* COMPLETE was told: the end may be read */
  GError *error;                /* the download failed */
  guint http_status;
  gint percent;
  gboolean buffering;           /* a read waited for the network */
  guint64 buffer_from;          /* ...at this offset */
  gint buffer_percent;
  guint64 next_read;            /* where the last read ended */
};

static void
tell (GrokImagineReader * r, GrokImagineReaderEvent event, gint percent)
{
  if (r->notify)
    r->notify (r, event, percent, r->user_data);
}

/* The end of what is there from @offset on, when seq's bytes reach
 * @seq_end (arrived, or in the file) and far's are in the file. Reader
 * lock. */
static guint64
reach (GrokImagineReader * r, guint64 offset, guint64 seq_end)
{
  guint64 end = offset;

  if (offset < seq_end)
    end = seq_end;
  if (r->far_used && r->far.start <= end && end < r->far.pos)
    end = r->far.pos;
  return end;
}

/* The end of the bytes that can be read from @offset on. Reader lock. */
static guint64
arrived_end (GrokImagineReader * r, guint64 offset)
{
  return r->complete ? r->size : reach (r, offset, r->seq.pos);
}

/* Bytes arrived, each counted once. Reader lock. */
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

/* Once the file is whole, the chunks still in memory go as the reads
 * pass them: a reader behind the end of the download takes the rest from
 * memory, not from the disk. Reader lock. */
static void
drop_passed (GrokImagineReader * r)
{
  Chunk *c;

  while ((c = g_queue_peek_head (&r->recent))
      && c->offset + c->filled <= r->read_end)
    chunk_unref (g_queue_pop_head (&r->recent));
}

/* Whether the file just became whole. Reader lock. */
static gboolean
check_complete (GrokImagineReader * r)
{
  if (r->complete || r->size == G_MAXUINT64
      || reach (r, 0, r->stored_end) < r->size)
    return FALSE;
  r->complete = TRUE;
  drop_passed (r);
  return TRUE;
}

/* After COMPLETE was told, and only then, may a read see the end: whoever
 * waits for EOS sees the download complete (and stored) first */
static void
tell_complete (GrokImagineReader * r)
{
  tell (r, GROK_IMAGINE_READER_COMPLETE, 100);
  g_mutex_lock (&r->lock);
  r->settled = TRUE;
  g_cond_broadcast (&r->cond);
  g_mutex_unlock (&r->lock);
}

/* Every waiting thread looks again: a failure, or the end. Reader lock. */
static void
wake_all (GrokImagineReader * r)
{
  g_cond_broadcast (&r->cond);
  g_cond_signal (&r->work);
  g_cond_signal (&r->room);
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

      g_set_error (error, G_IO_ERROR, grok_imagine_io_error_from_errno (e),
          "cannot write the result to '%s': %s", r->path, g_strerror (e));
      return FALSE;
    }
    data += n;
    len -= n;
    offset += n;
  }
  return TRUE;
}

/* Whole chunks, one after the other, go to the disk in one request
 * without passing through the page cache, so the file costs no memory and
 * no copy; anything else, or a file system that refuses direct I/O, is
 * written the usual way (which also reports an error such as a full disk
 * in its own words) */
static gboolean
store_chunks (GrokImagineReader * r, Chunk ** chunks, guint n_chunks,
    GError ** error)
{
  struct iovec iov[STORE_BATCH];
  guint i;

  if (r->direct_writes && chunks[n_chunks - 1]->filled == CHUNK_SIZE) {
    gssize n;

    for (i = 0; i < n_chunks; i++) {
      iov[i].iov_base = chunks[i]->data;
      iov[i].iov_len = CHUNK_SIZE;
    }
    do
      n = pwritev (r->direct_fd, iov, n_chunks, chunks[0]->offset);
    while (n < 0 && errno == EINTR);
    if (n == (gssize) n_chunks * CHUNK_SIZE)
      return TRUE;
    /* not closed: the reads may be using it */
    if (n < 0 && errno == EINVAL)
      r->direct_writes = FALSE;
  }
  for (i = 0; i < n_chunks; i++)
    if (!write_at (r, chunks[i]->data, chunks[i]->filled, chunks[i]->offset,
            error))
      return FALSE;
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

/* Whether the oldest chunk in memory may go: it is in the file, and a
 * reader that keeps pace has read it. Reader lock. */
static gboolean
may_drop_oldest (GrokImagineReader * r)
{
  Chunk *c = g_queue_peek_head (&r->recent);

  return c->stored && (!r->live || r->read_end >= c->offset + c->filled);
}

/* The room for the whole file, before its first byte: a disk that lacks
 * it says so now, and the writes only fill the file (a file system that
 * cannot reserve room writes as it goes) */
static gboolean
reserve (GrokImagineReader * r, GError ** error)
{
  guint64 size;
  int e;

  g_mutex_lock (&r->lock);
  size = r->size;
  g_mutex_unlock (&r->lock);
  if (size == G_MAXUINT64 || size == 0 || size > G_MAXINT64)
    return TRUE;
  /* fallocate (2), not posix_fallocate (3), which writes zeros where the
   * file system cannot reserve */
  do
    e = fallocate (r->fd, 0, 0, size) == 0 ? 0 : errno;
  while (e == EINTR);
  /* a full disk, a used-up quota or the file size limit; any other
   * failure only means no reserve */
  if (e == 0 || (e != EFBIG
          && grok_imagine_io_error_from_errno (e) != G_IO_ERROR_NO_SPACE))
    return TRUE;
  g_set_error (error, G_IO_ERROR, grok_imagine_io_error_from_errno (e),
      "no room for the result (%" G_GUINT64_FORMAT " bytes) in '%s': %s",
      size, r->path, g_strerror (e));
  return FALSE;
}

/* Drops the oldest chunks beyond RECENT_CHUNKS that may go. Reader lock. */
static void
trim_recent (GrokImagineReader * r)
{
  while (g_queue_get_length (&r->recent) > RECENT_CHUNKS
      && may_drop_oldest (r))
    chunk_unref (g_queue_pop_head (&r->recent));
}

/* A new chunk of the sequential download, readable as it fills. When
 * memory is full of chunks a reader that keeps pace has still to read, it
 * waits for that reader a little. */
static void
keep_recent (GrokImagineReader * r, Chunk * c)
{
  gint64 until = g_get_monotonic_time () + PACE_WAIT;

  g_mutex_lock (&r->lock);
  while (g_queue_get_length (&r->recent) >= RECENT_CHUNKS && r->live
      && !may_drop_oldest (r) && r->error == NULL
      && !g_cancellable_is_cancelled (r->cancellable)) {
    r->seq_waits = TRUE;
    if (!g_cond_wait_until (&r->room, &r->lock, until))
      r->live = FALSE;
  }
  r->seq_waits = FALSE;
  g_queue_push_tail (&r->recent, chunk_ref (c));
  trim_recent (r);
  g_mutex_unlock (&r->lock);
}

/* Gives a chunk of seq (taken; may be NULL) to the writer, and waits
 * while the file is too far behind; FALSE when the download ends meanwhile */
static gboolean
hand_over (GrokImagineReader * r, Chunk * c, gboolean last)
{
  gboolean go_on;

  g_mutex_lock (&r->lock);
  if (c != NULL && c->filled > 0)
    g_queue_push_tail (&r->unstored, c);
  else if (c != NULL)
    chunk_unref (c);
  if (last)
    r->seq_ended = TRUE;
  if (r->writer_waits)
    g_cond_signal (&r->work);
  while (!last && g_queue_get_length (&r->unstored) >= UNSTORED_CHUNKS
      && r->error == NULL && !g_cancellable_is_cancelled (r->cancellable)) {
    r->seq_waits = TRUE;
    g_cond_wait (&r->room, &r->lock);
  }
  r->seq_waits = FALSE;
  go_on = r->error == NULL && !g_cancellable_is_cancelled (r->cancellable);
  g_mutex_unlock (&r->lock);
  return go_on;
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
  wake_all (r);
  g_mutex_unlock (&r->lock);
  if (!cancelled)
    tell (r, GROK_IMAGINE_READER_FAILED, -1);
}

/* Whether the writer ends: on a failure, or on a stop unless every byte
 * has arrived (a reader may have read the last one already): the file is
 * then made whole, and told COMPLETE, rather than lost. Reader lock. */
static gboolean
writer_ends (GrokImagineReader * r)
{
  return r->error != NULL || (g_cancellable_is_cancelled (r->cancellable)
      && (r->size == G_MAXUINT64 || reach (r, 0, r->seq.pos) < r->size));
}

/* The writer: seq's chunks into the file, in order, behind the reads */
static gpointer
store_behind (gpointer data)
{
  GrokImagineReader *r = data;
  g_autoptr (GError) err = NULL;
  Chunk *batch[STORE_BATCH], *c;
  guint i, n;

  g_mutex_lock (&r->lock);
  for (;;) {
    gboolean complete;

    while (g_queue_is_empty (&r->unstored) && !r->seq_ended
        && !writer_ends (r)) {
      r->writer_waits = TRUE;
      g_cond_wait (&r->work, &r->lock);
    }
    r->writer_waits = FALSE;
    if (g_queue_is_empty (&r->unstored) || writer_ends (r))
      break;
    /* the chunks waiting, up to the first that is not whole */
    n = 0;
    do
      batch[n] = g_queue_peek_nth (&r->unstored, n);
    while (batch[n++]->filled == CHUNK_SIZE && n < STORE_BATCH
        && n < g_queue_get_length (&r->unstored));
    g_mutex_unlock (&r->lock);

    if (!store_chunks (r, batch, n, &err)) {
      give_up (r, err, 0);
      return NULL;
    }

    g_mutex_lock (&r->lock);
    for (i = 0; i < n; i++) {
      c = g_queue_pop_head (&r->unstored);
      c->stored = TRUE;
      r->stored_end = c->offset + c->filled;
      chunk_unref (c);
    }
    trim_recent (r);
    complete = check_complete (r);
    if (r->seq_waits)
      g_cond_signal (&r->room);
    if (complete)
      g_cond_broadcast (&r->cond);
    if (complete) {
      g_mutex_unlock (&r->lock);
      tell_complete (r);
      g_mutex_lock (&r->lock);
    }
  }
  g_mutex_unlock (&r->lock);
  return NULL;
}

/* @n more bytes of @f (at the end of @c) arrived (far's: and are in the
 * file); FALSE when @f has done its part */
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
  complete = check_complete (r);
  if (r->size != G_MAXUINT64 && r->size > 0) {
    gint p = MIN (arrived_bytes (r) * 100 / r->size, 100);

    if (p > r->percent)
      percent = r->percent = p;
  }
  level = update_buffering (r);
  if (r->reading)
    g_cond_broadcast (&r->cond);
  g_mutex_unlock (&r->lock);

  if (level >= 0)
    tell (r, GROK_IMAGINE_READER_BUFFERING, level);
  if (percent >= 0)
    tell (r, GROK_IMAGINE_READER_PROGRESS, percent);
  if (complete)
    tell_complete (r);
  return !done && !complete;
}

/* One request: from f->start on, chunk by chunk, resuming from the next
 * missing byte when the connection drops. seq's chunks go to the writer;
 * far's (a small region) go into the file at once. */
static gpointer
fill (gpointer data)
{
  Filler *f = data;
  GrokImagineReader *r = f->reader;
  gboolean seq = f == &r->seq;
  g_autoptr (GError) err = NULL;
  Chunk *c = NULL;
  guint http_status = 0;
  gssize n;

  if (!grok_imagine_fetch_open (f->fetch, f->start, r->cancellable,
          &http_status, &err))
    goto failed;
  if (seq) {
    answered (r);
    if (!reserve (r, &err))
      goto failed;
  }
  do {
    if (c == NULL || c->filled == CHUNK_SIZE) {
      if (seq && c != NULL && !hand_over (r, g_steal_pointer (&c), FALSE))
        break;
      g_clear_pointer (&c, chunk_unref);
      c = chunk_new (f->pos);
      if (seq)
        keep_recent (r, c);
    }
    /* only this thread writes beyond c->filled */
    n = grok_imagine_fetch_read (f->fetch, c->data + c->filled,
        CHUNK_SIZE - c->filled, FALSE, r->cancellable, &err);
    if (n < 0 || (!seq && n > 0 && !write_at (r, c->data + c->filled, n,
                f->pos, &err)))
      goto failed;
  } while (advance (r, f, c, n));
  grok_imagine_fetch_close (f->fetch);
  if (seq)
    hand_over (r, g_steal_pointer (&c), TRUE);
  g_clear_pointer (&c, chunk_unref);
  return NULL;

failed:
  g_clear_pointer (&c, chunk_unref);
  grok_imagine_fetch_close (f->fetch);
  give_up (r, err, http_status);
  return NULL;
}

static void
wake (GCancellable * cancellable, GrokImagineReader * r)
{
  g_mutex_lock (&r->lock);
  wake_all (r);
  g_mutex_unlock (&r->lock);
}

static GrokImagineReader *
reader_new (int fd, const gchar * path, gboolean keep_complete)
{
  GrokImagineReader *r = g_new0 (GrokImagineReader, 1);

  r->fd = fd;
  r->direct_fd = -1;
  r->path = g_strdup (path);
  r->keep_complete = keep_complete;
  r->cancellable = g_cancellable_new ();
  g_mutex_init (&r->lock);
  g_cond_init (&r->cond);
  g_cond_init (&r->work);
  g_cond_init (&r->room);
  r->size = G_MAXUINT64;
  r->percent = -1;
  r->seq.reader = r->far.reader = r;
  r->live = TRUE;
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
#ifdef O_DIRECT
  r->direct_fd = g_open (path, O_RDWR | O_DIRECT | O_CLOEXEC, 0);
#endif
  r->direct_writes = r->direct_fd >= 0;
  /* the threads waiting in the reader's cond wake when it is freed */
  r->cancel_id = g_cancellable_connect (r->cancellable, G_CALLBACK (wake),
      r, NULL);
  r->seq.fetch = grok_imagine_fetch_new (http, url);
  r->writer = g_thread_new ("grokimagine-store", store_behind, r);
  r->seq.thread = g_thread_new ("grokimagine-download", fill, &r->seq);
  return r;
}

GrokImagineReader *
grok_imagine_reader_new_for_file (int fd, const gchar * path, guint64 size)
{
  GrokImagineReader *r = reader_new (fd, path, TRUE);

  r->size = r->seq.pos = r->stored_end = size;
  r->complete = r->seq_done = r->seq_ended = r->settled = TRUE;
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
  if (r->writer)
    g_thread_join (r->writer);
  g_cancellable_disconnect (r->cancellable, r->cancel_id);
  g_clear_pointer (&r->seq.fetch, grok_imagine_fetch_free);
  g_clear_pointer (&r->far.fetch, grok_imagine_fetch_free);
  if (r->direct_fd >= 0)
    close (r->direct_fd);
  if (r->fd >= 0)
    close (r->fd);
  if (!r->keep_complete || !r->complete)
    g_unlink (r->path);
  g_clear_error (&r->error);
  g_queue_clear_full (&r->unstored, chunk_unref);
  g_queue_clear_full (&r->recent, chunk_unref);
  g_clear_pointer (&r->back, chunk_unref);
  g_object_unref (r->cancellable);
  g_mutex_clear (&r->lock);
  g_cond_clear (&r->cond);
  g_cond_clear (&r->work);
  g_cond_clear (&r->room);
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

/* Waits until [offset, offset + len) is there (!fill: its first byte), or
 * the end. Returns how many bytes can be read, or -1. */
static gssize
wait_for_bytes (GrokImagineReader * r, guint64 offset, gsize len,
    gboolean fill, GCancellable * cancellable, GError ** error)
{
  gint64 patience = 0;
  gboolean waited, buffered = FALSE;
  gint rebased = -1;
  gssize ret;

  g_mutex_lock (&r->lock);
  for (;;) {
    gboolean known = r->size != G_MAXUINT64;
    guint64 want_end, end;
    gint level;

    /* the end is there once every byte is in the file, and told so (the
     * writer may be behind a download that has ended) */
    if (known && offset >= r->size && !r->settled && r->error == NULL) {
      if (g_cancellable_set_error_if_cancelled (cancellable, error)) {
        ret = -1;
        break;
      }
      r->reading++;
      g_cond_wait (&r->cond, &r->lock);
      r->reading--;
      continue;
    }
    if (known && offset >= r->size) {
      /* a download that failed after its last byte (the file could not
       * take it) has no end */
      if (!r->settled && r->error) {
        g_propagate_error (error, g_error_copy (r->error));
        ret = -1;
        break;
      }
      ret = 0;
      break;
    }
    want_end = offset + (known ? MIN (len, r->size - offset) : len);
    end = arrived_end (r, offset);
    /* a sequential reader gets the last byte once the end is there; when
     * the file could not take the bytes that all arrived, never (it would
     * stop at the size it knows, as if the result were whole) */
    if (!fill && known && end >= r->size && !r->settled)
      end = MAX (offset, r->size - 1);
    if (end >= want_end || (!fill && end > offset)) {
      ret = MIN (end, want_end) - offset;
      /* while buffering, a read that does not go on from the last one (a
       * seek) and has its bytes: the level is the one after it */
      if (r->buffering && offset != r->next_read) {
        r->buffer_from = offset;
        rebased = update_buffering (r);
      }
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

    /* once this read has buffered, the rest of its wait is told by the
     * download (a read of more than BUFFERING_AHEAD, or the end held back
     * until COMPLETE was told, waits on after 100 %) */
    if (r->buffering || buffered) {
      /* the level that matters is the one after this read */
      r->buffer_from = offset;
      r->reading++;
      g_cond_wait (&r->cond, &r->lock);
      r->reading--;
      continue;
    }
    if (patience == 0)
      patience = g_get_monotonic_time () + BUFFERING_AFTER;
    r->reading++;
    waited = g_cond_wait_until (&r->cond, &r->lock, patience);
    r->reading--;
    if (waited)
      continue;
    if (g_get_monotonic_time () < patience)
      continue;
    r->buffering = buffered = TRUE;
    r->buffer_from = offset;
    r->buffer_percent = -1;
    level = update_buffering (r);
    /* said without the lock: the application may do anything then */
    g_mutex_unlock (&r->lock);
    if (level >= 0)
      tell (r, GROK_IMAGINE_READER_BUFFERING, level);
    g_mutex_lock (&r->lock);
  }
  /* a read that failed (a flush) ended where it began */
  r->next_read = offset + MAX (ret, 0);
  g_mutex_unlock (&r->lock);
  if (rebased >= 0)
    tell (r, GROK_IMAGINE_READER_BUFFERING, rebased);
  return ret;
}

/* The bytes from @offset on, at most @n, of @c: no copy */
static GBytes *
bytes_of_chunk (Chunk * c, guint64 offset, gsize n)
{
  return g_bytes_new_with_free_func (c->data + (offset - c->offset),
      MIN (c->offset + c->filled - offset, n), chunk_unref, chunk_ref (c));
}

static gboolean
chunk_holds (Chunk * c, guint64 offset)
{
  return c && offset >= c->offset && offset < c->offset + c->filled;
}

/* The bytes from @offset on, at most @n, when a chunk of the download
 * still in memory holds them (@live: the read keeps pace with it), or the
 * chunk last read back from the file. Reader lock. */
static GBytes *
bytes_in_memory (GrokImagineReader * r, guint64 offset, gsize n,
    gboolean * live)
{
  GList *l;

  *live = FALSE;
  if (chunk_holds (r->back, offset))
    return bytes_of_chunk (r->back, offset, n);
  for (l = r->recent.tail; l; l = l->prev)
    if (chunk_holds (l->data, offset)) {
      *live = TRUE;
      return bytes_of_chunk (l->data, offset, n);
    }
  return NULL;
}

static gboolean
read_at (int fd, guint8 * data, gsize len, guint64 offset, gsize * got,
    const gchar * path, GError ** error)
{
  *got = 0;
  while (*got < len) {
    gssize k = pread (fd, data + *got, len - *got, offset + *got);

    if (k < 0 && errno == EINTR)
      continue;
    if (k == 0)
      break;
    if (k < 0) {
      int e = errno;

      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (e),
          "cannot read the result from '%s': %s", path, g_strerror (e));
      return FALSE;
    }
    *got += k;
  }
  return TRUE;
}

/* Up to @n bytes from @offset on, from the file, where they are (the
 * caller knows that there are @stored of them). With direct I/O and
 * @from_start (the file is whole from byte 0 up to them), the whole chunk
 * around them comes straight from the disk into memory, for the reads that
 * follow. */
static GBytes *
bytes_from_file (GrokImagineReader * r, guint64 offset, gsize n,
    guint64 stored, gboolean from_start, GError ** error)
{
  guint8 *data;
  gsize got;
  gboolean live;

  if (r->direct_fd >= 0 && from_start) {
    Chunk *c = chunk_new (offset - offset % CHUNK_SIZE);
    GBytes *bytes;

    if (read_at (r->direct_fd, c->data, CHUNK_SIZE, c->offset, &got,
            r->path, NULL)) {
      c->filled = MIN (got, offset + stored - c->offset);
      c->stored = TRUE;
      g_mutex_lock (&r->lock);
      g_clear_pointer (&r->back, chunk_unref);
      r->back = c;
      bytes = bytes_in_memory (r, offset, n, &live);
      g_mutex_unlock (&r->lock);
      if (bytes)
        return bytes;
    } else {
      chunk_unref (c);
    }
    /* a file system that takes direct writes but not reads: the usual way */
  }

  n = MIN (n, stored);
  data = g_malloc (n);
  if (!read_at (r->fd, data, n, offset, &got, r->path, error)) {
    g_free (data);
    return NULL;
  }
  if (got < n) {
    g_free (data);
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED, "cannot read the "
        "result from '%s': the file is shorter than what was written to it",
        r->path);
    return NULL;
  }
  return g_bytes_new_take (data, n);
}

/* Up to @n of the bytes from @offset on, which are there: from memory when
 * a chunk holds them, else from the file */
static GBytes *
bytes_at (GrokImagineReader * r, guint64 offset, gsize n, GError ** error)
{
  GBytes *bytes;
  guint64 stored;
  gboolean from_start;

  g_mutex_lock (&r->lock);
  bytes = bytes_in_memory (r, offset, n, &r->live);
  from_start = r->complete || offset < r->stored_end;
  if (r->live) {
    r->read_end = offset + g_bytes_get_size (bytes);
    if (r->seq_waits)
      g_cond_signal (&r->room);
    if (r->complete)
      drop_passed (r);
  }
  /* not in memory: in the file (only bytes that are there leave memory) */
  stored = (r->complete ? r->size : reach (r, offset, r->stored_end)) - offset;
  g_mutex_unlock (&r->lock);
  if (bytes)
    return bytes;
  if (stored == 0) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED, "bytes %"
        G_GUINT64_FORMAT " of the result are neither in memory nor in '%s'",
        offset, r->path);
    return NULL;
  }
  return bytes_from_file (r, offset, n, stored, from_start, error);
}

GBytes *
grok_imagine_reader_read (GrokImagineReader * r, guint64 offset, gsize len,
    gboolean fill, GCancellable * cancellable, GError ** error)
{
  g_autoptr (GByteArray) all = NULL;
  GBytes *bytes;
  gulong id = 0;
  gssize n;

  /* before the lock: a cancellable already cancelled calls wake() at once */
  if (cancellable)
    id = g_cancellable_connect (cancellable, G_CALLBACK (wake), r, NULL);
  n = wait_for_bytes (r, offset, len, fill, cancellable, error);
  g_cancellable_disconnect (cancellable, id);
  if (n < 0)
    return NULL;
  if (n == 0)
    return g_bytes_new (NULL, 0);

  /* the bytes are there and never change; one piece is the usual case */
  bytes = bytes_at (r, offset, n, error);
  if (bytes == NULL || !fill || g_bytes_get_size (bytes) == (gsize) n)
    return bytes;

  /* a read across pieces (chunks, or the file and memory): one copy */
  all = g_byte_array_sized_new (n);
  do {
    gsize k;
    const guint8 *data = g_bytes_get_data (bytes, &k);

    g_byte_array_append (all, data, k);
    g_bytes_unref (bytes);
    if (all->len == (guint) n)
      return g_byte_array_free_to_bytes (g_steal_pointer (&all));
  } while ((bytes = bytes_at (r, offset + all->len, n - all->len, error)));
  return NULL;
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
