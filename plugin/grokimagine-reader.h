/* gst-grokimagine
 * Copyright (C) 2026 gst-grokimagine authors
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * The result, read at any offset: one sequential download fills a local
 * file from byte 0 in threads of its own (one receives, one writes behind
 * it, with direct I/O where the file system allows), and reads are served
 * as soon as their bytes are there: from the chunks still in memory at the
 * download's edge without a copy, else from the file. A read far beyond
 * what has arrived may open one extra ranged request, whose bytes land in
 * the same file. Memory stays bounded (a few chunks); the disk holds the
 * result. No GStreamer types.
 */
#pragma once

#include "grokimagine-client.h"

G_BEGIN_DECLS

typedef struct _GrokImagineReader GrokImagineReader;

typedef enum
{
  GROK_IMAGINE_READER_SIZE,     /* the size of the result is known */
  GROK_IMAGINE_READER_PROGRESS, /* more bytes arrived; @percent of the size */
  GROK_IMAGINE_READER_COMPLETE, /* every byte is in the file */
  GROK_IMAGINE_READER_FAILED,   /* the download gave up (see read's error) */
  GROK_IMAGINE_READER_BUFFERING,        /* a read waited for the network:
                                         * @percent of the bytes wanted
                                         * ahead of it are there (100: done) */
} GrokImagineReaderEvent;

/* Called from the download threads, or for the start of BUFFERING from the
 * reading thread; never with a lock of the reader held */
typedef void (*GrokImagineReaderNotify) (GrokImagineReader * reader,
    GrokImagineReaderEvent event, gint percent, gpointer user_data);

/* Downloads @url into the file @fd (taken; @path names it in messages) and
 * deletes the file when freed, or with @keep_complete only unless it was
 * complete. */
GrokImagineReader *grok_imagine_reader_new (const GrokImagineHttp * http,
    const gchar * url, int fd, const gchar * path, gboolean keep_complete,
    GrokImagineReaderNotify notify, gpointer user_data);
/* A file that is already whole: no request at all */
GrokImagineReader *grok_imagine_reader_new_for_file (int fd,
    const gchar * path, guint64 size);
void grok_imagine_reader_free (GrokImagineReader * reader);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (GrokImagineReader, grok_imagine_reader_free);

/* Bytes [offset, offset + len): waits until they are there, with @fill all
 * of them (up to the end of the result), else at least one. Without @fill
 * (a sequential reader) the last byte comes only once every byte is in the
 * file and COMPLETE was told: whoever sees the end sees the download's end
 * first. Empty at the end, which no read sees before COMPLETE was told
 * (without a Content-Length a sequential reader may get the last byte
 * before), NULL with @error on failure. The wait ends with G_IO_ERROR_CANCELLED
 * when @cancellable is cancelled; the download goes on. */
GBytes *grok_imagine_reader_read (GrokImagineReader * reader, guint64 offset,
    gsize len, gboolean fill, GCancellable * cancellable, GError ** error);

gboolean grok_imagine_reader_get_size (GrokImagineReader * reader,
    guint64 * size);
/* Whether the download still runs (the result is not whole yet) */
gboolean grok_imagine_reader_is_downloading (GrokImagineReader * reader);
/* The Content-Type of the result host's answer; NULL before it */
gchar *grok_imagine_reader_dup_content_type (GrokImagineReader * reader);
const gchar *grok_imagine_reader_get_path (GrokImagineReader * reader);
/* The HTTP status of the answer that made the download fail, or 0 */
guint grok_imagine_reader_get_http_status (GrokImagineReader * reader);

G_END_DECLS
