/* gst-grokimagine
 * Copyright (C) 2026 gst-grokimagine authors
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * libFuzzer target: grok_imagine_parse_submit, the answer to the POST that
 * creates a task, read as both dialects.
 */
#include "fuzz-common.h"

static void
parse_as (GrokImagineApi api, const uint8_t * data, size_t size)
{
  g_autoptr (GError) error = NULL;
  g_autofree gchar *task_id = grok_imagine_parse_submit (api,
      (const gchar *) data, size, &error);

  FUZZ_CHECK_ERROR (task_id, error);
  if (task_id == NULL)
    return;
  /* the task id goes into a query string and into bus messages */
  FUZZ_CHECK (task_id[0] != '\0');
  FUZZ_CHECK (g_utf8_validate (task_id, -1, NULL));
}

int
LLVMFuzzerTestOneInput (const uint8_t * data, size_t size)
{
  parse_as (GROK_IMAGINE_API_V1, data, size);
  parse_as (GROK_IMAGINE_API_GROK5, data, size);
  return 0;
}
