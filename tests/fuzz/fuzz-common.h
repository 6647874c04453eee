/* gst-grokimagine
 * Copyright (C) 2026 gst-grokimagine authors
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Shared by the libFuzzer targets: each defines LLVMFuzzerTestOneInput and
 * checks the properties the rest of the plugin relies on, aborting (which
 * libFuzzer reports as a crash) when one does not hold.
 */
#pragma once

#include <glib.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "grokimagine-api.h"

int LLVMFuzzerInitialize (int *argc, char ***argv);
int LLVMFuzzerTestOneInput (const uint8_t * data, size_t size);

#define FUZZ_CHECK(cond) G_STMT_START { \
    if (G_UNLIKELY (!(cond))) { \
      fprintf (stderr, "%s:%d: property violated: %s\n", __FILE__, __LINE__, \
          #cond); \
      abort (); \
    } \
  } G_STMT_END

/* A failed parse sets a GError of our domain, a successful one none. */
#define FUZZ_CHECK_ERROR(result, error) G_STMT_START { \
    if ((result) == NULL) { \
      FUZZ_CHECK ((error) != NULL); \
      FUZZ_CHECK ((error)->domain == GROK_IMAGINE_ERROR); \
      FUZZ_CHECK ((error)->message != NULL); \
    } else { \
      FUZZ_CHECK ((error) == NULL); \
    } \
  } G_STMT_END
