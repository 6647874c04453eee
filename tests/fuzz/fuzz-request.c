/* gst-grokimagine
 * Copyright (C) 2026 gst-grokimagine authors
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * libFuzzer target: the request side, from property values to the JSON body:
 * grok_imagine_ratio_is_valid, grok_imagine_request_validate and
 * grok_imagine_request_to_json.
 *
 * Input: one flag byte, then NUL-separated fields:
 *   flags: bit 0 the API (0 grokimagineapi, 1 grok5imagine), bits 1-2 the
 *          model, bit 3 public
 *   fields: prompt, mode, ratio, input-task-id, callback-url, then one field
 *          per image URL. An empty field is an unset property.
 */
#include "fuzz-common.h"

#include <json-glib/json-glib.h>
#include <string.h>

/* W:H, each side 1 to 4 digits and positive: every ratio a user would
 * write, which must be accepted */
static gboolean
plain_side (const gchar * s, gsize max_digits)
{
  gsize n = strlen (s), i;

  if (n == 0 || n > max_digits)
    return FALSE;
  for (i = 0; i < n; i++)
    if (!g_ascii_isdigit (s[i]))
      return FALSE;
  return g_ascii_strtoull (s, NULL, 10) > 0;
}

static void
check_ratio (const gchar * ratio)
{
  g_auto (GStrv) sides = g_strsplit (ratio, ":", -1);
  gboolean valid = grok_imagine_ratio_is_valid (ratio);
  gboolean plain = g_strv_length (sides) == 2 && plain_side (sides[0], 4)
      && plain_side (sides[1], 4);

  /* accepted: exactly two sides of digits, both positive */
  if (valid)
    FUZZ_CHECK (g_strv_length (sides) == 2 && plain_side (sides[0], 64)
        && plain_side (sides[1], 64));
  if (plain)
    FUZZ_CHECK (valid);
}

static const gchar *
member_string (JsonObject * obj, const gchar * name)
{
  JsonNode *node = obj ? json_object_get_member (obj, name) : NULL;

  if (node == NULL)
    return NULL;
  FUZZ_CHECK (JSON_NODE_HOLDS_VALUE (node) &&
      json_node_get_value_type (node) == G_TYPE_STRING);
  return json_node_get_string (node);
}

/* an optional property is sent as itself, or left out when unset */
static void
check_sent (JsonObject * obj, const gchar * name, const gchar * value)
{
  const gchar *sent = member_string (obj, name);

  if (value == NULL || *value == '\0')
    FUZZ_CHECK (sent == NULL);
  else
    FUZZ_CHECK (sent != NULL && strcmp (sent, value) == 0);
}

static void
check_images (JsonObject * obj, const gchar * name, gchar ** images)
{
  JsonNode *node = obj ? json_object_get_member (obj, name) : NULL;
  guint n = images ? g_strv_length (images) : 0, i;
  JsonArray *arr;

  if (n == 0) {
    FUZZ_CHECK (node == NULL);
    return;
  }
  FUZZ_CHECK (node != NULL && JSON_NODE_HOLDS_ARRAY (node));
  arr = json_node_get_array (node);
  FUZZ_CHECK (json_array_get_length (arr) == n);
  for (i = 0; i < n; i++)
    FUZZ_CHECK (g_strcmp0 (json_array_get_string_element (arr, i),
            images[i]) == 0);
}

/* The body must be a JSON object that says exactly what was set. */
static void
check_body (const GrokImagineRequest * req, const gchar * body)
{
  g_autoptr (JsonParser) parser = json_parser_new ();
  JsonNode *root;
  JsonObject *obj, *input = NULL;
  JsonNode *node;

  FUZZ_CHECK (body != NULL);
  FUZZ_CHECK (json_parser_load_from_data (parser, body, -1, NULL));
  root = json_parser_get_root (parser);
  FUZZ_CHECK (root != NULL && JSON_NODE_HOLDS_OBJECT (root));
  obj = json_node_get_object (root);

  if (req->api == GROK_IMAGINE_API_V1) {
    check_sent (obj, "prompt", req->prompt);
    check_sent (obj, "mode", req->mode);
    check_sent (obj, "ratio", req->ratio);
    check_images (obj, "images", req->images);
    return;
  }

  {
    g_autofree gchar *model = g_strconcat ("grok-imagine/",
        grok_imagine_model_get_nick (req->model), NULL);

    check_sent (obj, "model", model);
  }
  node = json_object_get_member (obj, "input");
  FUZZ_CHECK (node != NULL && JSON_NODE_HOLDS_OBJECT (node));
  input = json_node_get_object (node);
  check_sent (input, "prompt", req->prompt);
  check_sent (input, "task_id", req->input_task_id);
  check_images (input, "image_urls", req->images);
  check_sent (obj, "callback_url", req->callback_url);
  node = json_object_get_member (obj, "public");
  FUZZ_CHECK ((node != NULL) == (req->is_public != FALSE));
}

static gchar *
next_field (const gchar ** p, const gchar * end)
{
  const gchar *start = *p, *nul;

  if (start >= end)
    return NULL;
  nul = memchr (start, '\0', end - start);
  if (nul == NULL)
    nul = end;
  *p = nul + 1;
  return nul > start ? g_strndup (start, nul - start) : NULL;
}

int
LLVMFuzzerTestOneInput (const uint8_t * data, size_t size)
{
  GrokImagineRequest req = { 0, };
  g_autoptr (GPtrArray) images = g_ptr_array_new ();
  g_autoptr (GError) error = NULL;
  const gchar *p, *end;
  gboolean valid;

  if (size == 0)
    return 0;
  req.api = (data[0] & 1) ? GROK_IMAGINE_API_GROK5 : GROK_IMAGINE_API_V1;
  req.model = (data[0] >> 1) & 3;
  req.is_public = (data[0] >> 3) & 1;
  p = (const gchar *) data + 1;
  end = (const gchar *) data + size;
  req.prompt = next_field (&p, end);
  req.mode = next_field (&p, end);
  req.ratio = next_field (&p, end);
  req.input_task_id = next_field (&p, end);
  req.callback_url = next_field (&p, end);
  while (p < end) {
    gchar *image = next_field (&p, end);

    if (image)
      g_ptr_array_add (images, image);
  }
  if (images->len > 0) {
    g_ptr_array_add (images, NULL);
    req.images = (gchar **) g_ptr_array_steal (images, NULL);
  }

  if (req.ratio)
    check_ratio (req.ratio);

  valid = grok_imagine_request_validate (&req, &error);
  if (valid) {
    g_autofree gchar *body = NULL;

    FUZZ_CHECK (error == NULL);
    /* what validation lets through is well-formed */
    FUZZ_CHECK (req.prompt == NULL || g_utf8_validate (req.prompt, -1, NULL));
    if (req.api == GROK_IMAGINE_API_V1)
      FUZZ_CHECK (grok_imagine_ratio_is_valid (req.ratio));
    body = grok_imagine_request_to_json (&req);
    check_body (&req, body);
  } else {
    FUZZ_CHECK (error != NULL && error->domain == GROK_IMAGINE_ERROR &&
        error->code == GROK_IMAGINE_ERROR_SETTINGS);
  }

  grok_imagine_request_clear (&req);
  return 0;
}
