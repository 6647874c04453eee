/* gst-grokimagine
 * Copyright (C) 2026 gst-grokimagine authors
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * The two Grok Imagine API dialects: request JSON out, response JSON in.
 * Pure functions, no I/O.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef enum
{
  GROK_IMAGINE_API_V1,          /* grokimagineapi: /v1 */
  GROK_IMAGINE_API_GROK5,       /* grok5imagine: /api */
} GrokImagineApi;

typedef enum
{
  GROK_IMAGINE_MODEL_TEXT_TO_VIDEO,
  GROK_IMAGINE_MODEL_TEXT_TO_IMAGE,
  GROK_IMAGINE_MODEL_IMAGE_TO_VIDEO,
  GROK_IMAGINE_MODEL_UPSCALE,
} GrokImagineModel;

typedef enum
{
  GROK_IMAGINE_STATE_PENDING,
  GROK_IMAGINE_STATE_COMPLETED,
  GROK_IMAGINE_STATE_FAILED,
} GrokImagineState;

#define GROK_IMAGINE_ERROR (grok_imagine_error_quark ())
GQuark grok_imagine_error_quark (void);

typedef enum
{
  GROK_IMAGINE_ERROR_SETTINGS,          /* invalid settings, or HTTP 400 */
  GROK_IMAGINE_ERROR_NOT_AUTHORIZED,    /* HTTP 401 */
  GROK_IMAGINE_ERROR_PAYMENT_REQUIRED,  /* HTTP 402 */
  GROK_IMAGINE_ERROR_NOT_FOUND,         /* HTTP 403/404/410 */
  GROK_IMAGINE_ERROR_RATE_LIMITED,      /* HTTP 429 */
  GROK_IMAGINE_ERROR_SERVER,            /* HTTP 5xx: temporary */
  GROK_IMAGINE_ERROR_HTTP,              /* any other unexpected status */
  GROK_IMAGINE_ERROR_PROTOCOL,          /* an answer we cannot read */
  GROK_IMAGINE_ERROR_UNREACHABLE,       /* the request was never sent */
  GROK_IMAGINE_ERROR_NETWORK,           /* sent, but the answer was lost */
  GROK_IMAGINE_ERROR_TLS,               /* the certificate was refused */
  GROK_IMAGINE_ERROR_TASK_FAILED,       /* the job ended in failure */
  GROK_IMAGINE_ERROR_TIMEOUT,           /* the job deadline passed */
  GROK_IMAGINE_ERROR_CREDIT_CAP,        /* max-credits would be passed */
} GrokImagineError;

/* The largest API answer we parse. */
#define GROK_IMAGINE_MAX_BODY_SIZE (1024 * 1024)
#define GROK_IMAGINE_GROK5_MAX_PROMPT 5000

typedef struct
{
  GrokImagineApi api;
  gchar *prompt;
  gchar *mode;                  /* v1 */
  gchar *ratio;                 /* v1 */
  gchar **images;               /* v1 images, grok5 input.image_urls */
  GrokImagineModel model;       /* grok5 */
  gchar *input_task_id;         /* grok5 input.task_id */
  gchar *callback_url;          /* grok5 */
  gboolean is_public;           /* grok5 */
} GrokImagineRequest;

typedef struct
{
  GrokImagineState state;
  gchar *raw_status;
  gchar *task_id;
  gchar *error_message;
  gint64 consumed_credits;      /* -1 when the answer has none */
  gchar **result_urls;          /* never NULL */
  gchar *request_prompt;        /* the prompt echoed back, if any */
  gchar *request_model;         /* grok5: the model echoed back, if any */
} GrokImagineStatus;

const gchar *grok_imagine_api_get_nick (GrokImagineApi api);
const gchar *grok_imagine_api_default_base_url (GrokImagineApi api);
const gchar *grok_imagine_api_generate_path (GrokImagineApi api);
const gchar *grok_imagine_api_status_path (GrokImagineApi api);
const gchar *grok_imagine_model_get_nick (GrokImagineModel model);
const gchar *grok_imagine_state_get_nick (GrokImagineState state);

gboolean grok_imagine_ratio_is_valid (const gchar * ratio);

void grok_imagine_request_clear (GrokImagineRequest * req);
gboolean grok_imagine_request_validate (const GrokImagineRequest * req,
    GError ** error);
gchar *grok_imagine_request_to_json (const GrokImagineRequest * req);
/* The documented credits a generation of @req costs */
gint64 grok_imagine_request_price (const GrokImagineRequest * req);

gchar *grok_imagine_parse_submit (GrokImagineApi api, const gchar * body,
    gsize len, GError ** error);
GrokImagineStatus *grok_imagine_parse_status (GrokImagineApi api,
    const gchar * body, gsize len, GError ** error);
gchar *grok_imagine_parse_error_body (const gchar * body, gsize len);

void grok_imagine_status_free (GrokImagineStatus * status);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (GrokImagineStatus, grok_imagine_status_free);

G_END_DECLS
