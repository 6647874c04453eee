/* gst-grokimagine
 * Copyright (C) 2026 gst-grokimagine authors
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * libFuzzer target: grok_imagine_parse_status, the answer to a status poll,
 * read as both dialects (the bytes are the HTTP body as received).
 */
#include "fuzz-common.h"

#include <string.h>

static void
parse_as (GrokImagineApi api, const uint8_t * data, size_t size)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GrokImagineStatus) st = grok_imagine_parse_status (api,
      (const gchar *) data, size, &error);
  guint i;

  FUZZ_CHECK_ERROR (st, error);
  if (st == NULL)
    return;

  FUZZ_CHECK (st->raw_status != NULL);
  FUZZ_CHECK (st->result_urls != NULL);
  FUZZ_CHECK (st->state == GROK_IMAGINE_STATE_PENDING ||
      st->state == GROK_IMAGINE_STATE_COMPLETED ||
      st->state == GROK_IMAGINE_STATE_FAILED);
  /* a terminal status with an error message is a failure, never a success */
  FUZZ_CHECK (st->state != GROK_IMAGINE_STATE_COMPLETED ||
      st->error_message == NULL);
  FUZZ_CHECK (st->error_message == NULL || st->error_message[0] != '\0');

  /* the element copies these into bus messages: they must be readable */
  FUZZ_CHECK (g_utf8_validate (st->raw_status, -1, NULL));
  FUZZ_CHECK (st->task_id == NULL || g_utf8_validate (st->task_id, -1, NULL));
  FUZZ_CHECK (st->error_message == NULL ||
      g_utf8_validate (st->error_message, -1, NULL));
  for (i = 0; st->result_urls[i]; i++)
    FUZZ_CHECK (g_utf8_validate (st->result_urls[i], -1, NULL));
  FUZZ_CHECK (g_strv_length (st->result_urls) == i);

  /* the nick of every state exists */
  FUZZ_CHECK (strlen (grok_imagine_state_get_nick (st->state)) > 0);
}

int
LLVMFuzzerTestOneInput (const uint8_t * data, size_t size)
{
  parse_as (GROK_IMAGINE_API_V1, data, size);
  parse_as (GROK_IMAGINE_API_GROK5, data, size);
  return 0;
}
