#!/usr/bin/env bash
# What a user would write without grokimaginesrc: submit the job with curl,
# poll its status with curl and jq, download the whole result, then play it.
# bench/run times it against the element (submit to first decoded frame).
#
#   curl-job.sh PROMPT OUTPUT-FILE
#
# Environment: GROK_IMAGINE_API_KEY (required), BASE_URL (default
# https://grokimagineapi.com), POLL_SECONDS (default 2), MAX_POLLS (default
# 900), PLAYER (default gst-play-1.0; the file name is appended).
set -euo pipefail

prompt=${1:?usage: curl-job.sh PROMPT OUTPUT-FILE}
out=${2:?usage: curl-job.sh PROMPT OUTPUT-FILE}
base=${BASE_URL:-https://grokimagineapi.com}
poll=${POLL_SECONDS:-2}
max_polls=${MAX_POLLS:-900}
: "${GROK_IMAGINE_API_KEY:?set GROK_IMAGINE_API_KEY}"

# The key goes through standard input, not the command line (ps shows that)
api() {
  printf 'Authorization: Bearer %s\n' "$GROK_IMAGINE_API_KEY" |
    curl -sS --fail -H @- "$@"
}

body=$(jq -cn --arg p "$prompt" '{mode: "fun", prompt: $p, ratio: "1:1"}')
task=$(api -H 'Content-Type: application/json' -d "$body" \
  "$base/v1/generate" | jq -er '.data.task_id')

status=
for ((i = 0; i < max_polls; i++)); do
  answer=$(api "$base/v1/status?task_id=$task")
  status=$(jq -r '.data.status' <<<"$answer")
  case $status in
    completed) break ;;
    failed)
      echo "task $task failed: $(jq -r '.data.error_message' <<<"$answer")" >&2
      exit 1 ;;
  esac
  sleep "$poll"
done
if [[ $status != completed ]]; then
  echo "task $task did not complete after $max_polls polls" >&2
  exit 1
fi

url=$(jq -er '.data.response[0]' <<<"$answer")
curl -sS --fail -o "$out" "$url"
# shellcheck disable=SC2086  # PLAYER may carry arguments
${PLAYER:-gst-play-1.0} "$out"
