/* gst-grokimagine
 * Copyright (C) 2026 gst-grokimagine authors
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * libFuzzer target: grok_imagine_parse_error_body, the body of an HTTP error
 * answer (400, 401, 402, 429, 500, ...) of either API.
 */
#include "fuzz-common.h"

int
LLVMFuzzerTestOneInput (const uint8_t * data, size_t size)
{
  g_autofree gchar *message = grok_imagine_parse_error_body ((const gchar *)
      data, size);

  /* the message ends up in a GstMessage error text */
  if (message != NULL) {
    FUZZ_CHECK (message[0] != '\0');
    FUZZ_CHECK (g_utf8_validate (message, -1, NULL));
  }
  return 0;
}
