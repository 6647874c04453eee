#!/usr/bin/env bash
# Plays a generated video through the grokimagine:// URI scheme: any
# application that takes a URI (playbin, gst-play-1.0, ...) gets a prompt's
# video through grokimaginesrc, with no pipeline of its own.
#
#   examples/play-uri.sh [--headless] PROMPT [PROPERTY=VALUE...]
#   examples/play-uri.sh [--headless] --task TASK-ID [PROPERTY=VALUE...]
#
#   export GROK_IMAGINE_API_KEY=...
#   examples/play-uri.sh "a quiet lake at dawn" ratio=16:9
#   GROK_IMAGINE_BASE_URL=https://grok5imagine.com \
#     examples/play-uri.sh "a dragon" api=grok5imagine model=text-to-video
#   examples/play-uri.sh --task task_123456789     # no new job, no credits
#
# PROPERTY=VALUE pairs become query parameters of the URI, e.g.
#   grokimagine://?prompt=a%20quiet%20lake%20at%20dawn&ratio=16%3A9
# A URI describes the request only (prompt, mode, ratio, images, api, model,
# input-task-id, result-index, poll-interval, timeout). The key comes from
# GROK_IMAGINE_API_KEY and the API's address from GROK_IMAGINE_BASE_URL,
# which grokimaginesrc reads itself: neither is ever part of a URI.
#
# It plays with gst-play-1.0 when installed, else with gst-launch-1.0
# playbin. --headless decodes everything into fakesinks instead, with no
# window and no sound (for CI, or a machine without a display).
set -euo pipefail

usage() {
  echo "usage: $0 [--headless] PROMPT | --task TASK-ID [PROPERTY=VALUE...]" >&2
  exit 2
}

# Percent-encodes every byte but the unreserved characters of RFC 3986
uri_encode() {
  local LC_ALL=C s=$1 c i out=
  for (( i = 0; i < ${#s}; i++ )); do
    c=${s:i:1}
    case $c in
      [A-Za-z0-9._~-]) out+=$c ;;
      *) out+=$(printf '%%%02X' "'$c") ;;
    esac
  done
  printf '%s' "$out"
}

headless=false
task=
prompt=
while [ $# -gt 0 ]; do
  case $1 in
    --headless) headless=true; shift ;;
    --task) [ $# -ge 2 ] || usage; task=$2; shift 2 ;;
    -h|--help) usage ;;
    *) break ;;
  esac
done
if [ -z "$task" ]; then
  if [ $# -eq 0 ] || [ -z "$1" ]; then usage; fi
  prompt=$1
  shift
fi

query=()
[ -n "$prompt" ] && query+=("prompt=$(uri_encode "$prompt")")
for p in "$@"; do
  [[ $p =~ ^[a-z][a-z0-9-]*= ]] || { echo "Not PROPERTY=VALUE: $p" >&2; usage; }
  case $p in
    api-key=*) echo "The key is never put in a URI: export" \
      "GROK_IMAGINE_API_KEY instead" >&2; exit 2 ;;
    base-url=*) echo "A URI never says where the key goes: export" \
      "GROK_IMAGINE_BASE_URL instead" >&2; exit 2 ;;
  esac
  query+=("${p%%=*}=$(uri_encode "${p#*=}")")
done

if [ -n "$task" ]; then
  uri="grokimagine://task/$(uri_encode "$task")"
else
  uri="grokimagine://"
fi
if [ ${#query[@]} -gt 0 ]; then
  uri+="?$(IFS='&'; printf '%s' "${query[*]}")"
fi
echo "URI: $uri"

if $headless; then
  exec gst-launch-1.0 playbin uri="$uri" video-sink=fakesink \
    audio-sink=fakesink
elif command -v gst-play-1.0 >/dev/null; then
  exec gst-play-1.0 "$uri"
else
  exec gst-launch-1.0 playbin uri="$uri"
fi
