/* Unit tests of the two API dialects: request JSON out, status in. */
#include <gst/check/gstcheck.h>
#include <json-glib/json-glib.h>
#include <string.h>

#include "grokimagine-api.h"

static GrokImagineRequest
make_request (GrokImagineApi api, GrokImagineModel model, const gchar * prompt)
{
  GrokImagineRequest req = { 0, };

  req.api = api;
  req.model = model;
  req.prompt = g_strdup (prompt);
  req.mode = g_strdup ("fun");
  req.ratio = g_strdup ("16:9");
  return req;
}

static void
assert_invalid (GrokImagineRequest * req, const gchar * needle)
{
  g_autoptr (GError) err = NULL;

  fail_if (grok_imagine_request_validate (req, &err));
  fail_unless (g_error_matches (err, GROK_IMAGINE_ERROR,
          GROK_IMAGINE_ERROR_SETTINGS));
  fail_unless (strstr (err->message, needle) != NULL, "'%s' lacks '%s'",
      err->message, needle);
  grok_imagine_request_clear (req);
}

GST_START_TEST (test_ratio)
{
  fail_unless (grok_imagine_ratio_is_valid ("1:1"));
  fail_unless (grok_imagine_ratio_is_valid ("16:9"));
  fail_unless (grok_imagine_ratio_is_valid ("9:16"));
  fail_if (grok_imagine_ratio_is_valid (NULL));
  fail_if (grok_imagine_ratio_is_valid (""));
  fail_if (grok_imagine_ratio_is_valid ("16x9"));
  fail_if (grok_imagine_ratio_is_valid ("0:1"));
  fail_if (grok_imagine_ratio_is_valid ("1:0"));
  fail_if (grok_imagine_ratio_is_valid ("-1:1"));
  fail_if (grok_imagine_ratio_is_valid ("1:"));
  fail_if (grok_imagine_ratio_is_valid (":1"));
  fail_if (grok_imagine_ratio_is_valid ("1.5:1"));
  fail_if (grok_imagine_ratio_is_valid ("16:9:1"));
  fail_if (grok_imagine_ratio_is_valid (" 16:9"));
  fail_if (grok_imagine_ratio_is_valid ("99999999999999999999:1"));
}

GST_END_TEST;

GST_START_TEST (test_validate)
{
  GrokImagineRequest req;
  gchar *long_prompt;

  req = make_request (GROK_IMAGINE_API_V1, 0, "a fox");
  fail_unless (grok_imagine_request_validate (&req, NULL));
  grok_imagine_request_clear (&req);

  req = make_request (GROK_IMAGINE_API_V1, 0, "");
  assert_invalid (&req, "prompt is empty");
  req = make_request (GROK_IMAGINE_API_V1, 0, NULL);
  assert_invalid (&req, "prompt is empty");

  req = make_request (GROK_IMAGINE_API_V1, 0, "a fox");
  g_free (req.ratio);
  req.ratio = g_strdup ("wide");
  assert_invalid (&req, "'wide'");

  req = make_request (GROK_IMAGINE_API_V1, 0, "a fox");
  req.images = g_strsplit ("https://a.example/a.png,not a url", ",", -1);
  assert_invalid (&req, "not a url");

  req = make_request (GROK_IMAGINE_API_GROK5,
      GROK_IMAGINE_MODEL_TEXT_TO_IMAGE, NULL);
  assert_invalid (&req, "prompt is empty");
  req = make_request (GROK_IMAGINE_API_GROK5,
      GROK_IMAGINE_MODEL_TEXT_TO_VIDEO, "");
  assert_invalid (&req, "prompt is empty");

  req = make_request (GROK_IMAGINE_API_GROK5,
      GROK_IMAGINE_MODEL_IMAGE_TO_VIDEO, NULL);
  assert_invalid (&req, "images");
  req = make_request (GROK_IMAGINE_API_GROK5,
      GROK_IMAGINE_MODEL_IMAGE_TO_VIDEO, NULL);
  req.images = g_strsplit ("https://a.example/a.png", ",", -1);
  fail_unless (grok_imagine_request_validate (&req, NULL));
  grok_imagine_request_clear (&req);

  req = make_request (GROK_IMAGINE_API_GROK5, GROK_IMAGINE_MODEL_UPSCALE,
      NULL);
  assert_invalid (&req, "input-task-id");
  req = make_request (GROK_IMAGINE_API_GROK5, GROK_IMAGINE_MODEL_UPSCALE,
      NULL);
  req.input_task_id = g_strdup ("n31b6d54c8f4b4c4e8kie");
  fail_unless (grok_imagine_request_validate (&req, NULL));
  grok_imagine_request_clear (&req);

  /* 5000 characters (not bytes) are allowed, 5001 are not */
  long_prompt = g_strnfill (5000, 'a');
  req = make_request (GROK_IMAGINE_API_GROK5,
      GROK_IMAGINE_MODEL_TEXT_TO_VIDEO, long_prompt);
  fail_unless (grok_imagine_request_validate (&req, NULL));
  grok_imagine_request_clear (&req);
  g_free (long_prompt);
  long_prompt = g_strnfill (5001, 'a');
  req = make_request (GROK_IMAGINE_API_GROK5,
      GROK_IMAGINE_MODEL_TEXT_TO_VIDEO, long_prompt);
  assert_invalid (&req, "5001 characters");
  g_free (long_prompt);

  /* the v1 API has no such limit; the ratio is not a grok5 setting */
  long_prompt = g_strnfill (6000, 'a');
  req = make_request (GROK_IMAGINE_API_V1, 0, long_prompt);
  fail_unless (grok_imagine_request_validate (&req, NULL));
  grok_imagine_request_clear (&req);
  g_free (long_prompt);
  req = make_request (GROK_IMAGINE_API_GROK5,
      GROK_IMAGINE_MODEL_TEXT_TO_VIDEO, "x");
  g_free (req.ratio);
  req.ratio = g_strdup ("bad");
  fail_unless (grok_imagine_request_validate (&req, NULL));
  grok_imagine_request_clear (&req);

  req = make_request (GROK_IMAGINE_API_GROK5,
      GROK_IMAGINE_MODEL_TEXT_TO_VIDEO, "x");
  req.callback_url = g_strdup ("ftp://x");
  assert_invalid (&req, "callback-url");
}

GST_END_TEST;

static JsonObject *
parse_object (JsonParser * parser, const gchar * json)
{
  fail_unless (json_parser_load_from_data (parser, json, -1, NULL));
  return json_node_get_object (json_parser_get_root (parser));
}

GST_START_TEST (test_request_json)
{
  g_autoptr (JsonParser) parser = json_parser_new ();
  GrokImagineRequest req;
  JsonObject *o, *input;
  gchar *json;

  req = make_request (GROK_IMAGINE_API_V1, 0, "a \"quoted\" fox");
  json = grok_imagine_request_to_json (&req);
  o = parse_object (parser, json);
  fail_unless_equals_string (json_object_get_string_member (o, "prompt"),
      "a \"quoted\" fox");
  fail_unless_equals_string (json_object_get_string_member (o, "mode"), "fun");
  fail_unless_equals_string (json_object_get_string_member (o, "ratio"),
      "16:9");
  fail_if (json_object_has_member (o, "images"));
  fail_if (json_object_has_member (o, "model"));
  g_free (json);
  req.images = g_strsplit ("https://a.example/1.png,https://a.example/2.png",
      ",", -1);
  json = grok_imagine_request_to_json (&req);
  o = parse_object (parser, json);
  fail_unless_equals_int (json_array_get_length (json_object_get_array_member
          (o, "images")), 2);
  g_free (json);
  grok_imagine_request_clear (&req);

  req = make_request (GROK_IMAGINE_API_GROK5, GROK_IMAGINE_MODEL_UPSCALE,
      NULL);
  req.input_task_id = g_strdup ("n1kie");
  req.callback_url = g_strdup ("https://hook.example/done");
  req.is_public = TRUE;
  json = grok_imagine_request_to_json (&req);
  o = parse_object (parser, json);
  fail_unless_equals_string (json_object_get_string_member (o, "model"),
      "grok-imagine/upscale");
  input = json_object_get_object_member (o, "input");
  fail_unless_equals_string (json_object_get_string_member (input, "task_id"),
      "n1kie");
  fail_if (json_object_has_member (input, "prompt"));
  fail_unless_equals_string (json_object_get_string_member (o,
          "callback_url"), "https://hook.example/done");
  fail_unless (json_object_get_boolean_member (o, "public"));
  fail_if (json_object_has_member (o, "ratio"));
  fail_if (json_object_has_member (o, "mode"));
  g_free (json);
  grok_imagine_request_clear (&req);

  req = make_request (GROK_IMAGINE_API_GROK5,
      GROK_IMAGINE_MODEL_IMAGE_TO_VIDEO, "move");
  req.images = g_strsplit ("https://a.example/1.png", ",", -1);
  json = grok_imagine_request_to_json (&req);
  o = parse_object (parser, json);
  fail_unless_equals_string (json_object_get_string_member (o, "model"),
      "grok-imagine/image-to-video");
  input = json_object_get_object_member (o, "input");
  fail_unless_equals_int (json_array_get_length
      (json_object_get_array_member (input, "image_urls")), 1);
  fail_if (json_object_has_member (o, "public"));
  g_free (json);
  grok_imagine_request_clear (&req);
}

GST_END_TEST;

#define PARSE(api, json, err) \
  grok_imagine_parse_status (api, json, strlen (json), err)

/* A status answer of @raw with @message (JSON) is in @state, and keeps a
 * non-empty message */
static void
assert_state (GrokImagineApi api, const gchar * raw, const gchar * message,
    GrokImagineState state)
{
  g_autofree gchar *json = g_strdup_printf ("{\"data\":{\"status\":\"%s\","
      "\"error_message\":%s}}", raw, message);
  g_autoptr (GrokImagineStatus) st = PARSE (api, json, NULL);

  fail_unless (st != NULL, "%s", json);
  fail_unless_equals_int (st->state, state);
  if (message[0] == '"' && message[1] != '"')
    fail_unless (st->error_message != NULL
        && strstr (message, st->error_message) != NULL, "%s", json);
}

GST_START_TEST (test_status_v1)
{
  const gchar *done = "{\"code\":200,\"message\":\"success\",\"data\":{"
      "\"consumed_credits\":40,\"created_at\":\"2024-01-01T00:00:00Z\","
      "\"status\":\"completed\",\"task_id\":\"task_1\",\"error_message\":null,"
      "\"request\":{\"mode\":\"fun\"},\"response\":["
      "\"https://cdn.example.com/1.mp4\",\"https://cdn.example.com/2.mp4\"]}}";
  g_autoptr (GrokImagineStatus) st = PARSE (GROK_IMAGINE_API_V1, done, NULL);
  g_autoptr (GError) err = NULL;

  fail_unless (st != NULL);
  fail_unless_equals_int (st->state, GROK_IMAGINE_STATE_COMPLETED);
  fail_unless_equals_string (st->task_id, "task_1");
  fail_unless_equals_int (st->consumed_credits, 40);
  fail_unless_equals_int (g_strv_length (st->result_urls), 2);
  fail_unless_equals_string (st->result_urls[1],
      "https://cdn.example.com/2.mp4");
  fail_unless (st->error_message == NULL);
  fail_unless (st->request_prompt == NULL);
  grok_imagine_status_free (g_steal_pointer (&st));

  st = PARSE (GROK_IMAGINE_API_V1, "{\"data\":{\"status\":\"pending\","
      "\"request\":{\"mode\":\"fun\",\"prompt\":\"a fox\"}}}", NULL);
  fail_unless_equals_string (st->request_prompt, "a fox");
  grok_imagine_status_free (g_steal_pointer (&st));
  /* an odd echo is ignored */
  st = PARSE (GROK_IMAGINE_API_V1, "{\"data\":{\"status\":\"pending\","
      "\"request\":{\"prompt\":7}}}", NULL);
  fail_unless (st != NULL && st->request_prompt == NULL);
  grok_imagine_status_free (g_steal_pointer (&st));

  st = PARSE (GROK_IMAGINE_API_V1, "{\"data\":{\"status\":\"processing\"}}",
      NULL);
  fail_unless_equals_int (st->state, GROK_IMAGINE_STATE_PENDING);
  fail_unless_equals_int (g_strv_length (st->result_urls), 0);
  fail_unless_equals_int (st->consumed_credits, -1);
  grok_imagine_status_free (g_steal_pointer (&st));

  /* unknown values mean "still running" */
  st = PARSE (GROK_IMAGINE_API_V1, "{\"data\":{\"status\":\"SUCCESS\"}}", NULL);
  fail_unless_equals_int (st->state, GROK_IMAGINE_STATE_PENDING);
  grok_imagine_status_free (g_steal_pointer (&st));

  st = PARSE (GROK_IMAGINE_API_V1, "{\"data\":{\"status\":\"failed\","
      "\"error_message\":\"grok imagine build failed\"}}", NULL);
  fail_unless_equals_int (st->state, GROK_IMAGINE_STATE_FAILED);
  fail_unless_equals_string (st->error_message, "grok imagine build failed");
  grok_imagine_status_free (g_steal_pointer (&st));

  /* an error message on a terminal status is a failure */
  st = PARSE (GROK_IMAGINE_API_V1, "{\"data\":{\"status\":\"completed\","
      "\"error_message\":\"File type not supported\",\"response\":[]}}", NULL);
  fail_unless_equals_int (st->state, GROK_IMAGINE_STATE_FAILED);
  grok_imagine_status_free (g_steal_pointer (&st));

  /* a status the page does not name, with an error message, is a failure;
   * without one the task still runs */
  assert_state (GROK_IMAGINE_API_V1, "error",
      "\"Network error, please try again later.\"",
      GROK_IMAGINE_STATE_FAILED);
  assert_state (GROK_IMAGINE_API_V1, "processing",
      "\"grok imagine build failed\"", GROK_IMAGINE_STATE_FAILED);
  assert_state (GROK_IMAGINE_API_V1, "error", "\"\"",
      GROK_IMAGINE_STATE_PENDING);
  assert_state (GROK_IMAGINE_API_V1, "error", "null",
      GROK_IMAGINE_STATE_PENDING);
  /* the terminal statuses are matched alike, whatever their case */
  assert_state (GROK_IMAGINE_API_V1, "Completed", "null",
      GROK_IMAGINE_STATE_COMPLETED);
  assert_state (GROK_IMAGINE_API_V1, "FAILED", "null",
      GROK_IMAGINE_STATE_FAILED);

  /* bad answers are errors, never crashes */
  fail_unless (PARSE (GROK_IMAGINE_API_V1, "{\"data\":{\"status\":5}}",
          &err) == NULL);
  fail_unless (g_error_matches (err, GROK_IMAGINE_ERROR,
          GROK_IMAGINE_ERROR_PROTOCOL));
  g_clear_error (&err);
  fail_unless (PARSE (GROK_IMAGINE_API_V1, "{\"data\":{\"status\":\"completed\","
          "\"response\":[1]}}", &err) == NULL);
  g_clear_error (&err);
  fail_unless (PARSE (GROK_IMAGINE_API_V1, "{\"data\":{\"status\":\"completed\","
          "\"response\":\"x\"}}", &err) == NULL);
  g_clear_error (&err);
  fail_unless (PARSE (GROK_IMAGINE_API_V1, "{\"data\":{}}", &err) == NULL);
  fail_unless (strstr (err->message, "no status") != NULL);
  g_clear_error (&err);
  fail_unless (PARSE (GROK_IMAGINE_API_V1, "{\"code\":500,\"message\":\"boom\"}",
          &err) == NULL);
  fail_unless (strstr (err->message, "boom") != NULL);
  g_clear_error (&err);
  fail_unless (PARSE (GROK_IMAGINE_API_V1, "<html>", &err) == NULL);
  fail_unless (strstr (err->message, "not valid JSON") != NULL);
  g_clear_error (&err);
  fail_unless (PARSE (GROK_IMAGINE_API_V1, "[1,2]", &err) == NULL);
  g_clear_error (&err);
  fail_unless (grok_imagine_parse_status (GROK_IMAGINE_API_V1, "", 0,
          &err) == NULL);
  g_clear_error (&err);
}

GST_END_TEST;

GST_START_TEST (test_status_grok5)
{
  const gchar *done = "{\"code\":200,\"message\":\"success\",\"data\":{"
      "\"task_id\":\"n31kie\",\"status\":\"SUCCESS\",\"request\":{},"
      "\"response\":{\"resultUrls\":[\"https://cdn.example.com/i.png\"]},"
      "\"consumed_credits\":5,\"error_message\":null,"
      "\"created_at\":\"2025-06-14T05:21:11Z\"}}";
  g_autoptr (GrokImagineStatus) st = PARSE (GROK_IMAGINE_API_GROK5, done,
      NULL);
  g_autoptr (GError) err = NULL;

  fail_unless_equals_int (st->state, GROK_IMAGINE_STATE_COMPLETED);
  fail_unless_equals_int (st->consumed_credits, 5);
  fail_unless_equals_string (st->result_urls[0],
      "https://cdn.example.com/i.png");
  fail_unless (st->result_urls[1] == NULL);
  grok_imagine_status_free (g_steal_pointer (&st));

  st = PARSE (GROK_IMAGINE_API_GROK5, "{\"data\":{\"status\":\"IN_PROGRESS\","
      "\"request\":{\"model\":\"grok-imagine/text-to-image\",\"input\":"
      "{\"prompt\":\"A dragon\"}}}}", NULL);
  fail_unless_equals_string (st->request_prompt, "A dragon");
  fail_unless_equals_string (st->request_model, "grok-imagine/text-to-image");
  grok_imagine_status_free (g_steal_pointer (&st));

  st = PARSE (GROK_IMAGINE_API_GROK5, "{\"data\":{\"status\":\"IN_PROGRESS\","
      "\"response\":null}}", NULL);
  fail_unless_equals_int (st->state, GROK_IMAGINE_STATE_PENDING);
  grok_imagine_status_free (g_steal_pointer (&st));

  /* v1's word is not grok5's */
  st = PARSE (GROK_IMAGINE_API_GROK5, "{\"data\":{\"status\":\"completed\"}}",
      NULL);
  fail_unless_equals_int (st->state, GROK_IMAGINE_STATE_PENDING);
  grok_imagine_status_free (g_steal_pointer (&st));

  st = PARSE (GROK_IMAGINE_API_GROK5, "{\"data\":{\"status\":\"FAILED\","
      "\"consumed_credits\":0,\"error_message\":\"Inappropriate content\"}}",
      NULL);
  fail_unless_equals_int (st->state, GROK_IMAGINE_STATE_FAILED);
  fail_unless_equals_int (st->consumed_credits, 0);
  fail_unless_equals_string (st->error_message, "Inappropriate content");
  grok_imagine_status_free (g_steal_pointer (&st));

  /* a documented running status stays running, an undocumented one with
   * an error message is a failure */
  assert_state (GROK_IMAGINE_API_GROK5, "IN_PROGRESS", "\"upstream busy\"",
      GROK_IMAGINE_STATE_PENDING);
  assert_state (GROK_IMAGINE_API_GROK5, "ERROR",
      "\"Network error, please try again later.\"",
      GROK_IMAGINE_STATE_FAILED);

  fail_unless (PARSE (GROK_IMAGINE_API_GROK5, "{\"data\":{\"status\":"
          "\"SUCCESS\",\"response\":[\"https://x/1.png\"]}}", &err) == NULL);
  g_clear_error (&err);
}

GST_END_TEST;

GST_START_TEST (test_submit_and_errors)
{
  const gchar *v1 = "{\"code\":200,\"message\":\"success\",\"data\":"
      "{\"task_id\":\"task_123456789\"}}";
  const gchar *g5 = "{\"code\":200,\"message\":\"success\",\"data\":"
      "{\"task_id\":\"n31b6d54c8f4b4c4e8kie\",\"status\":\"IN_PROGRESS\"}}";
  const gchar *e400 = "{\"code\":400,\"message\":\"Invalid request: The "
      "prompt parameter is required\",\"error\":\"INVALID_REQUEST\"}";
  g_autoptr (GError) err = NULL;
  gchar *id;

  id = grok_imagine_parse_submit (GROK_IMAGINE_API_V1, v1, strlen (v1), NULL);
  fail_unless_equals_string (id, "task_123456789");
  g_free (id);
  id = grok_imagine_parse_submit (GROK_IMAGINE_API_GROK5, g5, strlen (g5),
      NULL);
  fail_unless_equals_string (id, "n31b6d54c8f4b4c4e8kie");
  g_free (id);

  fail_unless (grok_imagine_parse_submit (GROK_IMAGINE_API_V1,
          "{\"data\":{}}", 11, &err) == NULL);
  fail_unless (strstr (err->message, "no task_id") != NULL);
  g_clear_error (&err);
  fail_unless (grok_imagine_parse_submit (GROK_IMAGINE_API_V1,
          "{\"data\":{\"task_id\":7}}", 21, &err) == NULL);
  g_clear_error (&err);

  id = grok_imagine_parse_error_body (e400, strlen (e400));
  fail_unless_equals_string (id, "Invalid request: The prompt parameter is "
      "required (INVALID_REQUEST)");
  g_free (id);
  fail_unless (grok_imagine_parse_error_body ("<h1>oops", 8) == NULL);
  fail_unless (grok_imagine_parse_error_body ("{\"message\":3}", 13) == NULL);
}

GST_END_TEST;

/* Answers that once broke parsers: deep nesting (json-glib recurses),
 * numbers out of range, strings that are not UTF-8 */
GST_START_TEST (test_hostile_answers)
{
  const gchar *bad_message = "{\"code\":500,\"message\":{\"a\":1}}";
  g_autoptr (GString) deep = g_string_new ("{\"code\":200,\"data\":");
  g_autoptr (GrokImagineStatus) st = NULL;
  g_autoptr (GError) err = NULL;
  guint i;

  for (i = 0; i < 200000; i++)
    g_string_append_c (deep, '[');
  fail_unless (grok_imagine_parse_status (GROK_IMAGINE_API_V1, deep->str,
          deep->len, &err) == NULL);
  fail_unless (strstr (err->message, "nests deeper") != NULL);
  g_clear_error (&err);
  fail_unless (grok_imagine_parse_submit (GROK_IMAGINE_API_V1, deep->str,
          deep->len, &err) == NULL);
  g_clear_error (&err);
  fail_unless (grok_imagine_parse_error_body (deep->str, deep->len) == NULL);

  /* an error envelope whose message is not a string (found by fuzzing) */
  fail_unless (grok_imagine_parse_submit (GROK_IMAGINE_API_V1, bad_message,
          strlen (bad_message), &err) == NULL);
  fail_unless (strstr (err->message, "code 500: no message") != NULL,
      "%s", err->message);
  g_clear_error (&err);

  /* nesting inside strings does not count */
  st = PARSE (GROK_IMAGINE_API_V1, "{\"data\":{\"status\":\"[[[[[[[[[[[[[["
      "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\"}}",
      NULL);
  fail_unless (st != NULL);
  grok_imagine_status_free (g_steal_pointer (&st));

  st = PARSE (GROK_IMAGINE_API_V1, "{\"data\":{\"status\":\"completed\","
      "\"consumed_credits\":1e300,\"response\":[\"https://x/1.mp4\"]}}",
      NULL);
  fail_unless (st != NULL);
  fail_unless_equals_int (st->consumed_credits, -1);
  grok_imagine_status_free (g_steal_pointer (&st));

  fail_unless (PARSE (GROK_IMAGINE_API_V1, "{\"data\":{\"status\":"
          "\"\\ud83\\e\"}}", &err) == NULL);
  g_clear_error (&err);
  fail_unless (PARSE (GROK_IMAGINE_API_V1, "{\"data\":{\"status\":\"x\","
          "\"response\":[\"\\udc00\"]}}", &err) == NULL);
  g_clear_error (&err);
}

GST_END_TEST;

GST_START_TEST (test_request_not_utf8)
{
  GrokImagineRequest req = make_request (GROK_IMAGINE_API_GROK5,
      GROK_IMAGINE_MODEL_UPSCALE, NULL);

  req.input_task_id = g_strdup ("task\xed\xa0\xb0");
  assert_invalid (&req, "input-task-id is not valid UTF-8");
  req = make_request (GROK_IMAGINE_API_V1, 0, "x");
  g_free (req.mode);
  req.mode = g_strdup ("\xff");
  assert_invalid (&req, "mode is not valid UTF-8");
}

GST_END_TEST;

/* A critical of a library we call (json-glib's precondition checks) is a
 * bug of ours, as it is for the fuzzers: fail on it */
static void
fail_on_critical (const gchar * domain, GLogLevelFlags level,
    const gchar * message, gpointer user_data)
{
  fail ("%s: %s", domain, message);
}

static void
json_criticals_fail (void)
{
  g_log_set_handler ("Json", G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_WARNING,
      fail_on_critical, NULL);
}

static Suite *
api_suite (void)
{
  Suite *s = suite_create ("grokimagine-api");
  TCase *tc = tcase_create ("general");

  suite_add_tcase (s, tc);
  tcase_add_unchecked_fixture (tc, json_criticals_fail, NULL);
  tcase_add_test (tc, test_ratio);
  tcase_add_test (tc, test_validate);
  tcase_add_test (tc, test_request_json);
  tcase_add_test (tc, test_status_v1);
  tcase_add_test (tc, test_status_grok5);
  tcase_add_test (tc, test_submit_and_errors);
  tcase_add_test (tc, test_hostile_answers);
  tcase_add_test (tc, test_request_not_utf8);
  return s;
}

GST_CHECK_MAIN (api);
