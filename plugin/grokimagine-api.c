/* gst-grokimagine
 * Copyright (C) 2026 gst-grokimagine authors
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "grokimagine-api.h"

#include <json-glib/json-glib.h>
#include <string.h>

G_DEFINE_QUARK (grok-imagine-error-quark, grok_imagine_error);

const gchar *
grok_imagine_api_get_nick (GrokImagineApi api)
{
  return api == GROK_IMAGINE_API_GROK5 ? "grok5imagine" : "grokimagineapi";
}

const gchar *
grok_imagine_api_default_base_url (GrokImagineApi api)
{
  return api == GROK_IMAGINE_API_GROK5 ? "https://grok5imagine.com" :
      "https://grokimagineapi.com";
}

const gchar *
grok_imagine_api_generate_path (GrokImagineApi api)
{
  return api == GROK_IMAGINE_API_GROK5 ? "/api/generate" : "/v1/generate";
}

const gchar *
grok_imagine_api_status_path (GrokImagineApi api)
{
  return api == GROK_IMAGINE_API_GROK5 ? "/api/status" : "/v1/status";
}

const gchar *
grok_imagine_model_get_nick (GrokImagineModel model)
{
  switch (model) {
    case GROK_IMAGINE_MODEL_TEXT_TO_IMAGE:
      return "text-to-image";
    case GROK_IMAGINE_MODEL_IMAGE_TO_VIDEO:
      return "image-to-video";
    case GROK_IMAGINE_MODEL_UPSCALE:
      return "upscale";
    case GROK_IMAGINE_MODEL_TEXT_TO_VIDEO:
    default:
      return "text-to-video";
  }
}

const gchar *
grok_imagine_state_get_nick (GrokImagineState state)
{
  switch (state) {
    case GROK_IMAGINE_STATE_COMPLETED:
      return "completed";
    case GROK_IMAGINE_STATE_FAILED:
      return "failed";
    case GROK_IMAGINE_STATE_PENDING:
    default:
      return "pending";
  }
}

static gboolean
parse_positive_int (const gchar * s, const gchar * end)
{
  guint64 v = 0;

  if (s == end || end - s > 6)
    return FALSE;
  for (; s < end; s++) {
    if (!g_ascii_isdigit (*s))
      return FALSE;
    v = v * 10 + (*s - '0');
  }
  return v > 0;
}

gboolean
grok_imagine_ratio_is_valid (const gchar * ratio)
{
  const gchar *colon;

  if (ratio == NULL || (colon = strchr (ratio, ':')) == NULL)
    return FALSE;
  return parse_positive_int (ratio, colon) &&
      parse_positive_int (colon + 1, colon + 1 + strlen (colon + 1));
}

void
grok_imagine_request_clear (GrokImagineRequest * req)
{
  g_clear_pointer (&req->prompt, g_free);
  g_clear_pointer (&req->mode, g_free);
  g_clear_pointer (&req->ratio, g_free);
  g_clear_pointer (&req->images, g_strfreev);
  g_clear_pointer (&req->input_task_id, g_free);
  g_clear_pointer (&req->callback_url, g_free);
}

static gboolean
is_empty (const gchar * s)
{
  return s == NULL || *s == '\0';
}

static gboolean
is_web_url (const gchar * s)
{
  g_autoptr (GUri) uri = g_uri_parse (s, G_URI_FLAGS_NONE, NULL);
  const gchar *scheme;

  if (uri == NULL || is_empty (g_uri_get_host (uri)))
    return FALSE;
  scheme = g_uri_get_scheme (uri);
  return g_ascii_strcasecmp (scheme, "http") == 0 ||
      g_ascii_strcasecmp (scheme, "https") == 0;
}

#define settings_error(error, ...) \
  (g_set_error (error, GROK_IMAGINE_ERROR, GROK_IMAGINE_ERROR_SETTINGS, \
      __VA_ARGS__), FALSE)

gboolean
grok_imagine_request_validate (const GrokImagineRequest * req, GError ** error)
{
  gboolean needs_prompt = TRUE;
  guint i;
  const gchar *texts[] = { req->prompt, req->mode, req->ratio,
    req->input_task_id, req->callback_url
  };
  const gchar *names[] = { "prompt", "mode", "ratio", "input-task-id",
    "callback-url"
  };

  for (i = 0; i < G_N_ELEMENTS (texts); i++) {
    if (texts[i] && !g_utf8_validate (texts[i], -1, NULL))
      return settings_error (error, "The %s is not valid UTF-8 text.",
          names[i]);
  }
  for (i = 0; req->images && req->images[i]; i++) {
    if (!g_utf8_validate (req->images[i], -1, NULL))
      return settings_error (error, "Image %u is not valid UTF-8 text.", i);
  }

  for (i = 0; req->images && req->images[i]; i++) {
    if (!is_web_url (req->images[i]))
      return settings_error (error, "Image '%s' is not an http(s) URL.",
          req->images[i]);
  }

  if (req->api == GROK_IMAGINE_API_V1) {
    if (is_empty (req->mode))
      return settings_error (error, "The mode must not be empty.");
    if (!grok_imagine_ratio_is_valid (req->ratio))
      return settings_error (error,
          "The ratio '%s' is not of the form W:H with positive whole numbers "
          "(for example 16:9).", req->ratio ? req->ratio : "");
  } else {
    switch (req->model) {
      case GROK_IMAGINE_MODEL_IMAGE_TO_VIDEO:
        needs_prompt = FALSE;
        if ((req->images == NULL || req->images[0] == NULL)
            && is_empty (req->input_task_id))
          return settings_error (error, "The image-to-video model needs "
              "'images' (image URLs to animate) or 'input-task-id' "
              "(an earlier text-to-image task).");
        break;
      case GROK_IMAGINE_MODEL_UPSCALE:
        needs_prompt = FALSE;
        if (is_empty (req->input_task_id))
          return settings_error (error, "The upscale model needs "
              "'input-task-id': the earlier task whose result to upscale.");
        break;
      default:
        break;
    }
    if (req->prompt
        && g_utf8_strlen (req->prompt, -1) > GROK_IMAGINE_GROK5_MAX_PROMPT)
      return settings_error (error, "The prompt has %ld characters; "
          "grok5imagine accepts at most %d.",
          (glong) g_utf8_strlen (req->prompt, -1),
          GROK_IMAGINE_GROK5_MAX_PROMPT);
    if (!is_empty (req->callback_url) && !is_web_url (req->callback_url))
      return settings_error (error, "The callback-url '%s' is not an "
          "http(s) URL.", req->callback_url);
  }

  if (needs_prompt && is_empty (req->prompt))
    return settings_error (error, "The prompt is empty: set the 'prompt' "
        "property to describe the video.");

  return TRUE;
}

static void
add_string_array (JsonBuilder * b, const gchar * name, gchar ** strv)
{
  json_builder_set_member_name (b, name);
  json_builder_begin_array (b);
  for (; strv && *strv; strv++)
    json_builder_add_string_value (b, *strv);
  json_builder_end_array (b);
}

static void
add_string (JsonBuilder * b, const gchar * name, const gchar * value)
{
  if (is_empty (value))
    return;
  json_builder_set_member_name (b, name);
  json_builder_add_string_value (b, value);
}

/* The credits each provider documents for one generation */
gint64
grok_imagine_request_price (const GrokImagineRequest * req)
{
  if (req->api == GROK_IMAGINE_API_V1)
    return 40;
  switch (req->model) {
    case GROK_IMAGINE_MODEL_TEXT_TO_IMAGE:
      return 5;
    case GROK_IMAGINE_MODEL_UPSCALE:
      return 12;
    case GROK_IMAGINE_MODEL_IMAGE_TO_VIDEO:
    case GROK_IMAGINE_MODEL_TEXT_TO_VIDEO:
    default:
      return 24;
  }
}

gchar *
grok_imagine_request_to_json (const GrokImagineRequest * req)
{
  g_autoptr (JsonBuilder) b = json_builder_new ();
  g_autoptr (JsonNode) root = NULL;
  gboolean has_images = req->images && req->images[0];

  json_builder_begin_object (b);
  if (req->api == GROK_IMAGINE_API_V1) {
    add_string (b, "mode", req->mode);
    add_string (b, "prompt", req->prompt);
    if (has_images)
      add_string_array (b, "images", req->images);
    add_string (b, "ratio", req->ratio);
  } else {
    g_autofree gchar *model = g_strconcat ("grok-imagine/",
        grok_imagine_model_get_nick (req->model), NULL);

    add_string (b, "model", model);
    json_builder_set_member_name (b, "input");
    json_builder_begin_object (b);
    add_string (b, "prompt", req->prompt);
    if (has_images)
      add_string_array (b, "image_urls", req->images);
    add_string (b, "task_id", req->input_task_id);
    json_builder_end_object (b);
    add_string (b, "callback_url", req->callback_url);
    if (req->is_public) {
      json_builder_set_member_name (b, "public");
      json_builder_add_boolean_value (b, TRUE);
    }
  }
  json_builder_end_object (b);

  root = json_builder_get_root (b);
  return json_to_string (root, FALSE);
}

/* --- answers ------------------------------------------------------------ */

#define protocol_error(error, ...) \
  (g_set_error (error, GROK_IMAGINE_ERROR, GROK_IMAGINE_ERROR_PROTOCOL, \
      __VA_ARGS__), NULL)

/* json-glib parses recursively: a deeply nested answer would exhaust the
 * stack. Answers of both APIs nest a few levels; refuse more than this. */
#define MAX_JSON_DEPTH 64

static gboolean
nested_too_deep (const gchar * body, gsize len)
{
  gboolean in_string = FALSE;
  guint depth = 0;
  gsize i;

  for (i = 0; i < len; i++) {
    gchar c = body[i];

    if (in_string) {
      if (c == '\\')
        i++;
      else if (c == '"')
        in_string = FALSE;
    } else if (c == '"') {
      in_string = TRUE;
    } else if (c == '{' || c == '[') {
      if (++depth > MAX_JSON_DEPTH)
        return TRUE;
    } else if ((c == '}' || c == ']') && depth > 0) {
      depth--;
    }
  }
  return FALSE;
}

/* Parses the envelope and returns its "data" object (owned by @parser). */
static JsonObject *
parse_envelope (JsonParser * parser, const gchar * body, gsize len,
    GError ** error)
{
  g_autoptr (GError) err = NULL;
  JsonNode *root, *data;
  JsonObject *obj;

  if (body == NULL || len == 0)
    return protocol_error (error, "the answer was empty");
  if (len > GROK_IMAGINE_MAX_BODY_SIZE)
    return protocol_error (error, "the answer is larger than %d bytes",
        GROK_IMAGINE_MAX_BODY_SIZE);
  if (nested_too_deep (body, len))
    return protocol_error (error, "the answer nests deeper than %d levels",
        MAX_JSON_DEPTH);
  if (!json_parser_load_from_data (parser, body, len, &err))
    return protocol_error (error, "the answer is not valid JSON (%s)",
        err->message);

  root = json_parser_get_root (parser);
  if (root == NULL || !JSON_NODE_HOLDS_OBJECT (root))
    return protocol_error (error, "the answer is not a JSON object");
  obj = json_node_get_object (root);

  if (json_object_has_member (obj, "code")) {
    JsonNode *code = json_object_get_member (obj, "code");

    if (JSON_NODE_HOLDS_VALUE (code)
        && json_node_get_value_type (code) == G_TYPE_INT64
        && json_node_get_int (code) != 200) {
      JsonNode *message = json_object_get_member (obj, "message");
      const gchar *msg = message && JSON_NODE_HOLDS_VALUE (message)
          && json_node_get_value_type (message) == G_TYPE_STRING ?
          json_node_get_string (message) : "no message";

      g_set_error (error, GROK_IMAGINE_ERROR, GROK_IMAGINE_ERROR_SERVER,
          "the API answered code %" G_GINT64_FORMAT ": %s",
          json_node_get_int (code), msg);
      return NULL;
    }
  }

  data = json_object_get_member (obj, "data");
  if (data == NULL || !JSON_NODE_HOLDS_OBJECT (data))
    return protocol_error (error, "the answer has no \"data\" object");
  return json_node_get_object (data);
}

/* A member that must be a string when present; NULL when absent or null. */
static gboolean
get_optional_string (JsonObject * obj, const gchar * name,
    const gchar ** out, GError ** error)
{
  JsonNode *node = json_object_get_member (obj, name);

  *out = NULL;
  if (node == NULL || JSON_NODE_HOLDS_NULL (node))
    return TRUE;
  if (!JSON_NODE_HOLDS_VALUE (node)
      || json_node_get_value_type (node) != G_TYPE_STRING) {
    g_set_error (error, GROK_IMAGINE_ERROR, GROK_IMAGINE_ERROR_PROTOCOL,
        "\"%s\" in the answer is not a string", name);
    return FALSE;
  }
  if (!g_utf8_validate (json_node_get_string (node), -1, NULL)) {
    g_set_error (error, GROK_IMAGINE_ERROR, GROK_IMAGINE_ERROR_PROTOCOL,
        "\"%s\" in the answer is not valid UTF-8", name);
    return FALSE;
  }
  *out = json_node_get_string (node);
  return TRUE;
}

gchar *
grok_imagine_parse_submit (GrokImagineApi api, const gchar * body, gsize len,
    GError ** error)
{
  g_autoptr (JsonParser) parser = json_parser_new_immutable ();
  JsonObject *data = parse_envelope (parser, body, len, error);
  const gchar *task_id;

  if (data == NULL)
    return NULL;
  if (!get_optional_string (data, "task_id", &task_id, error))
    return NULL;
  if (is_empty (task_id))
    return protocol_error (error, "the answer has no task_id");
  return g_strdup (task_id);
}

static gchar **
parse_url_array (JsonNode * node, GError ** error)
{
  g_autoptr (GPtrArray) urls = g_ptr_array_new_with_free_func (g_free);
  JsonArray *arr;
  guint i, n;

  if (node == NULL || JSON_NODE_HOLDS_NULL (node))
    return g_new0 (gchar *, 1);
  if (!JSON_NODE_HOLDS_ARRAY (node))
    return protocol_error (error, "the result list is not an array");

  arr = json_node_get_array (node);
  n = json_array_get_length (arr);
  for (i = 0; i < n; i++) {
    JsonNode *el = json_array_get_element (arr, i);

    if (!JSON_NODE_HOLDS_VALUE (el)
        || json_node_get_value_type (el) != G_TYPE_STRING)
      return protocol_error (error, "result %u is not a string", i);
    if (!g_utf8_validate (json_node_get_string (el), -1, NULL))
      return protocol_error (error, "result %u is not valid UTF-8", i);
    g_ptr_array_add (urls, g_strdup (json_node_get_string (el)));
  }
  g_ptr_array_add (urls, NULL);
  return (gchar **) g_ptr_array_free (g_steal_pointer (&urls), FALSE);
}

/* The "request" echo: informative only, so anything odd is ignored */
static void
read_request_echo (GrokImagineStatus * st, JsonObject * data)
{
  JsonNode *request = json_object_get_member (data, "request");
  JsonNode *input;
  JsonObject *obj;
  const gchar *prompt = NULL, *model = NULL;

  if (request == NULL || !JSON_NODE_HOLDS_OBJECT (request))
    return;
  obj = json_node_get_object (request);
  input = json_object_get_member (obj, "input");
  if (!get_optional_string (obj, "model", &model, NULL))
    model = NULL;
  if (input && JSON_NODE_HOLDS_OBJECT (input))
    obj = json_node_get_object (input);
  if (!get_optional_string (obj, "prompt", &prompt, NULL))
    prompt = NULL;
  st->request_prompt = g_strdup (prompt);
  st->request_model = g_strdup (model);
}

/* A status the documents name for a task that still runs (v1 names none) */
static gboolean
is_documented_running (GrokImagineApi api, const gchar * raw)
{
  return api == GROK_IMAGINE_API_GROK5 && g_str_equal (raw, "IN_PROGRESS");
}

GrokImagineStatus *
grok_imagine_parse_status (GrokImagineApi api, const gchar * body, gsize len,
    GError ** error)
{
  g_autoptr (JsonParser) parser = json_parser_new_immutable ();
  g_autoptr (GrokImagineStatus) st = NULL;
  JsonObject *data = parse_envelope (parser, body, len, error);
  JsonNode *response, *credits;
  const gchar *raw, *task_id, *message;

  if (data == NULL)
    return NULL;
  if (!get_optional_string (data, "status", &raw, error) ||
      !get_optional_string (data, "task_id", &task_id, error) ||
      !get_optional_string (data, "error_message", &message, error))
    return NULL;
  if (raw == NULL)
    return protocol_error (error, "the answer has no status");

  st = g_new0 (GrokImagineStatus, 1);
  st->raw_status = g_strdup (raw);
  st->task_id = g_strdup (task_id);
  st->error_message = is_empty (message) ? NULL : g_strdup (message);

  st->consumed_credits = -1;
  credits = json_object_get_member (data, "consumed_credits");
  if (credits && JSON_NODE_HOLDS_VALUE (credits)) {
    GType t = json_node_get_value_type (credits);

    /* as the doubles: a figure no task costs is no report (it would take
     * the ledger past what it can count) */
    if (t == G_TYPE_INT64 && json_node_get_int (credits) >= 0
        && json_node_get_int (credits) < G_GINT64_CONSTANT (1000000000000000))
      st->consumed_credits = json_node_get_int (credits);
    else if (t == G_TYPE_DOUBLE && json_node_get_double (credits) >= 0
        && json_node_get_double (credits) < 1e15)
      st->consumed_credits = (gint64) json_node_get_double (credits);
  }

  response = json_object_get_member (data, "response");
  if (api == GROK_IMAGINE_API_GROK5 && response
      && JSON_NODE_HOLDS_OBJECT (response))
    response = json_object_get_member (json_node_get_object (response),
        "resultUrls");
  else if (api == GROK_IMAGINE_API_GROK5 && response
      && !JSON_NODE_HOLDS_NULL (response))
    return protocol_error (error, "\"response\" is not an object");
  st->result_urls = parse_url_array (response, error);
  if (st->result_urls == NULL)
    return NULL;

  read_request_echo (st, data);

  if (g_ascii_strcasecmp (raw, "failed") == 0)
    st->state = GROK_IMAGINE_STATE_FAILED;
  else if (g_ascii_strcasecmp (raw, api == GROK_IMAGINE_API_GROK5 ?
          "SUCCESS" : "completed") == 0)
    st->state = st->error_message ? GROK_IMAGINE_STATE_FAILED :
        GROK_IMAGINE_STATE_COMPLETED;
  else if (st->error_message && !is_documented_running (api, raw))
    /* the v1 page names no failure status: its error_message carries
     * "error details if the task failed", whatever the status says */
    st->state = GROK_IMAGINE_STATE_FAILED;
  else
    st->state = GROK_IMAGINE_STATE_PENDING;

  return g_steal_pointer (&st);
}

gchar *
grok_imagine_parse_error_body (const gchar * body, gsize len)
{
  g_autoptr (JsonParser) parser = json_parser_new_immutable ();
  JsonNode *root;
  JsonObject *obj;
  const gchar *message = NULL, *code = NULL;

  if (body == NULL || len == 0 || len > GROK_IMAGINE_MAX_BODY_SIZE ||
      nested_too_deep (body, len) ||
      !json_parser_load_from_data (parser, body, len, NULL))
    return NULL;
  root = json_parser_get_root (parser);
  if (root == NULL || !JSON_NODE_HOLDS_OBJECT (root))
    return NULL;
  obj = json_node_get_object (root);
  if (!get_optional_string (obj, "message", &message, NULL) ||
      !get_optional_string (obj, "error", &code, NULL) || is_empty (message))
    return NULL;
  return is_empty (code) ? g_strdup (message) :
      g_strdup_printf ("%s (%s)", message, code);
}

void
grok_imagine_status_free (GrokImagineStatus * status)
{
  if (status == NULL)
    return;
  g_free (status->raw_status);
  g_free (status->task_id);
  g_free (status->error_message);
  g_strfreev (status->result_urls);
  g_free (status->request_prompt);
  g_free (status->request_model);
  g_free (status);
}
