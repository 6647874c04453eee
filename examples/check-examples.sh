#!/usr/bin/env bash
# The tests of the examples (meson test --suite examples): runs one example
# against the simulator and checks what it produced. Run under
# with-simulator.sh, which exports GROK_IMAGINE_BASE_URL, GROK_IMAGINE_API_KEY
# and GST_PLUGIN_PATH:
#
#   examples/with-simulator.sh -- examples/check-examples.sh EXAMPLE
#
# EXAMPLE: prompt-to-mp4, progress, progress-interrupt (needs a simulator
# started with --job-duration=10000), batch or play-uri.
#
# Environment (set by examples/meson.build): EXAMPLES_OUT, where each test
# leaves its files (default: a temporary directory); GROKIMAGINE_PROGRESS,
# the grokimagine-progress program; GROKIMAGINE_PYTHON, a Python 3 with
# PyGObject (empty: the batch test is skipped).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
example=${1:?usage: $0 EXAMPLE}

if [ -n "${EXAMPLES_OUT:-}" ]; then
  out=$EXAMPLES_OUT/$example
  rm -rf "$out"
  mkdir -p "$out"
else
  out=$(mktemp -d)
  trap 'rm -rf "$out"' EXIT
fi
cd "$out"

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

# interrupt PID LOG: Ctrl-C, then the program must be gone within 2.5 s
interrupt() {
  local i
  kill -INT "$1"
  for (( i = 0; i < 50; i++ )); do
    kill -0 "$1" 2>/dev/null || return 0
    sleep 0.05
  done
  kill -KILL "$1"
  cat "$2"
  fail "still running 2.5 s after SIGINT"
}

# --- what the checks use ----------------------------------------------------

# The MP4 demuxes, parses and decodes: prints how many frames
decoded_frames() {
  local n
  n=$(gst-launch-1.0 -v filesrc location="$1" ! qtdemux ! h264parse \
    ! decodebin ! fakesink silent=false 2>&1 | grep -c 'last-message = chain') \
    || fail "$1 does not decode"
  echo "$n"
}

check_video() {      # FILE: a video that decodes to frames
  local n
  [ -s "$1" ] || fail "no $1"
  n=$(decoded_frames "$1")
  [ "$n" -gt 0 ] || fail "$1 decoded to no frame"
  echo "ok: $1 decodes ($n frames)"
}

# The title tag of an MP4 (what mp4mux got from the application)
mp4_title() {
  gst-launch-1.0 -t filesrc location="$1" ! qtdemux ! fakesink 2>&1 \
    | sed -n 's/^ *title: //p' | head -n 1
}

check_title() {      # FILE PROMPT
  local title
  title=$(mp4_title "$1")
  [ "$title" = "$2" ] || fail "$1 has the title '$title', not '$2'"
  echo "ok: $1 has the prompt as title"
}

# "WIDTH HEIGHT" of a PNG, from its IHDR chunk
png_size() {
  [ "$(head -c 8 "$1" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ] \
    || fail "$1 is not a PNG"
  od -An -tu1 -j16 -N8 "$1" | awk '{
    print $1 * 16777216 + $2 * 65536 + $3 * 256 + $4,
          $5 * 16777216 + $6 * 65536 + $7 * 256 + $8 }'
}

# "WIDTH HEIGHT" of the decoded video
video_size() {
  gst-launch-1.0 -v filesrc location="$1" ! qtdemux ! h264parse ! decodebin \
    ! fakesink 2>&1 | grep -m1 'fakesink0.GstPad:sink: caps' \
    | sed 's/.*width=(int)\([0-9]*\), height=(int)\([0-9]*\).*/\1 \2/'
}

# GET /_sim/stats, one integer member
sim_stat() {
  curl -sf "$GROK_IMAGINE_BASE_URL/_sim/stats" \
    | sed -n "s/.*\"$1\" *: *\([0-9]*\).*/\1/p"
}

# Runs a command in the background with a deadline: kills it after $1 s
# (status 124)
bounded() {
  local limit=$1 pid i
  shift
  "$@" &
  pid=$!
  for (( i = 0; i < limit * 10; i++ )); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    echo "timed out after $limit s: $*" >&2
    return 124
  fi
  wait "$pid"
}

# --- the examples ------------------------------------------------------------

# The prompt the simulator got for a /v1 task
sim_prompt() {
  curl -sf -H "Authorization: Bearer $GROK_IMAGINE_API_KEY" \
    "$GROK_IMAGINE_BASE_URL/v1/status?task_id=$1" \
    | python3 -c 'import json, sys
print(json.load(sys.stdin)["data"]["request"]["prompt"], end="")'
}

test_prompt_to_mp4() {
  # gst-launch syntax in a prompt: quotes (one leading), a backslash, "!"
  local prompt='"Deep" snow, a 6" fox \ running! x=1; {a}'
  local log mp4 sheet task w h tw th expect_w expect_h
  log=$out/run.log
  bounded 60 bash "$here/prompt-to-mp4.sh" "$prompt" "$out/result" \
    ratio=16:9 poll-interval=200 >"$log" 2>&1 || { cat "$log"; fail "it failed"; }
  cat "$log"
  mp4=$out/result/deep-snow-a-6-fox-running-x-1-a.mp4
  sheet=$out/result/deep-snow-a-6-fox-running-x-1-a-sheet.png
  check_video "$mp4"
  task=$(sed -n 's/^Task: *//p' "$log")
  [[ $task == task_* ]] || fail "no task id in its output"
  grep -q '^Credits: *40$' "$log" || fail "no credits in its output"
  [ "$(sim_prompt "$task")" = "$prompt" ] \
    || fail "the API got the prompt '$(sim_prompt "$task")'"
  echo "ok: the API got the prompt as it was written"

  # 6 tiles in 3 columns, each the video fitted in 320x320, 4 px apart
  read -r w h < <(video_size "$mp4")
  [ -n "$w" ] || fail "cannot read the size of $mp4"
  tw=$w th=$h
  if [ "$w" -gt 320 ] || [ "$h" -gt 320 ]; then
    if [ "$w" -ge "$h" ]; then
      tw=320 th=$(( (h * 320 + w / 2) / w ))
    else
      th=320 tw=$(( (w * 320 + h / 2) / h ))
    fi
  fi
  expect_w=$(( 3 * tw + 4 * 4 ))
  expect_h=$(( 2 * th + 3 * 4 ))
  [ -s "$sheet" ] || fail "no contact sheet"
  read -r w h < <(png_size "$sheet")
  [ "$w $h" = "$expect_w $expect_h" ] \
    || fail "the contact sheet is ${w}x$h, not ${expect_w}x$expect_h"
  gst-launch-1.0 -q filesrc location="$sheet" ! pngdec ! fakesink \
    || fail "the contact sheet does not decode"
  echo "ok: the contact sheet is a ${w}x$h PNG"

  # Errors end with a non-zero status and leave no file
  if GROK_IMAGINE_API_KEY=wrong-key bash "$here/prompt-to-mp4.sh" "a fox" \
      "$out/denied" poll-interval=200 >"$log" 2>&1; then
    cat "$log"
    fail "succeeded with a wrong key"
  fi
  grep -q 'Not authorized' "$log" || { cat "$log"; fail "no error message"; }
  [ ! -e "$out/denied/a-fox.mp4" ] || fail "left a file after an error"
  echo "ok: a wrong key fails with 'Not authorized'"
}

test_progress() {
  local prog=${GROKIMAGINE_PROGRESS:?} prompt='a lighthouse at dusk, "stormy"'
  local log=$out/run.log status

  # Not a terminal: plain lines
  bounded 60 "$prog" --prompt "$prompt" --output "$out/lighthouse.mp4" \
    --ratio 16:9 --poll-interval 200 >"$log" 2>&1 \
    || { cat "$log"; fail "it failed"; }
  cat "$log"
  check_video "$out/lighthouse.mp4"
  check_title "$out/lighthouse.mp4" "$prompt"
  grep -q '^Task task_[0-9a-z_]* submitted$' "$log" || fail "no submitted line"
  grep -q '^Task task_[0-9a-z_]*: processing$' "$log" || fail "no status line"
  grep -q '^Downloading: 100%$' "$log" || fail "no download line"
  grep -q '^Task: *task_' "$log" || fail "no task id at the end"
  grep -q '^Credits: *40$' "$log" || fail "no credits at the end"
  if grep -q $'\r' "$log"; then fail "a progress bar in plain output"; fi

  # The other API and a model
  bounded 60 "$prog" --prompt "$prompt" --output "$out/grok5.mp4" \
    --api grok5imagine --model text-to-video --poll-interval 200 >"$log" 2>&1 \
    || { cat "$log"; fail "it failed with --api grok5imagine"; }
  check_video "$out/grok5.mp4"
  check_title "$out/grok5.mp4" "$prompt"
  grep -q '^Credits: *[0-9][0-9]*$' "$log" || fail "no credits (grok5imagine)"

  # Reattaching to the task: no second payment
  local task submits
  task=$(sed -n 's/^Task: *//p' "$log")
  submits=$(sim_stat accepted_submits)
  bounded 60 "$prog" --task-id "$task" --api grok5imagine \
    --output "$out/again.mp4" --poll-interval 200 >"$log" 2>&1 \
    || { cat "$log"; fail "it failed with --task-id"; }
  check_video "$out/again.mp4"
  [ "$(sim_stat accepted_submits)" = "$submits" ] \
    || fail "--task-id submitted a new job"
  echo "ok: --task-id fetched $task without a new job"

  # Bad options, and an error from the API
  status=0
  "$prog" --prompt x --api nonsense >"$log" 2>&1 || status=$?
  if [ "$status" != 2 ] || ! grep -q 'grok5imagine' "$log"; then
    cat "$log"
    fail "a bad --api gave status $status"
  fi
  status=0
  GROK_IMAGINE_API_KEY=wrong-key bounded 60 "$prog" --prompt "a fox" \
    --output "$out/denied.mp4" --poll-interval 200 >"$log" 2>&1 || status=$?
  if [ "$status" != 1 ] || ! grep -q '^Error from .*Not authorized' "$log" \
      || ! grep -q 'HTTP status: 401' "$log"; then
    cat "$log"
    fail "a wrong key gave status $status"
  fi
  [ ! -e "$out/denied.mp4" ] || fail "left a file after an error"
  echo "ok: errors give their status and message"

  # A slow download (2 Mbit/s): percentages on the way, in plain lines...
  curl -sf -d '{"download_rate_kbps": 2000}' \
    "$GROK_IMAGINE_BASE_URL/_sim/faults" >/dev/null || fail "POST /_sim/faults"
  bounded 60 "$prog" --prompt "a slow download" --output "$out/slow.mp4" \
    --poll-interval 200 >"$log" 2>&1 || { cat "$log"; fail "it failed"; }
  cat "$log"
  check_video "$out/slow.mp4"
  [ "$(grep -c '^Downloading: [1-9][0-9]\?%$' "$log")" -ge 3 ] \
    || fail "fewer than 3 percentages below 100"
  sort -c -n <(sed -n 's/^Downloading: //p' "$log" | tr -d %) \
    || fail "percentages not in order"
  echo "ok: the download's percentages in plain lines"
  # ...and as a bar on a terminal (script(1) gives it one)
  if command -v script >/dev/null; then
    bounded 60 script -qefc "$(printf '%q ' "$prog" --prompt "a terminal" \
      --output "$out/tty.mp4" --poll-interval 200)" "$out/tty.log" \
      >/dev/null 2>&1 </dev/null || { cat "$out/tty.log"; fail "it failed on a tty"; }
    check_video "$out/tty.mp4"
    grep -q 'generating: processing' "$out/tty.log" || fail "no spinner"
    grep -Eq '\[#+\.+\] +[1-9][0-9]?% downloading' "$out/tty.log" \
      || fail "no progress bar"
    echo "ok: a spinner and a progress bar on a terminal"
  fi
}

# Ctrl-C during a long job: prompt exit, non-zero, the task id named
test_progress_interrupt() {
  local prog=${GROKIMAGINE_PROGRESS:?} log=$out/run.log pid i status=0
  local t0 ms
  "$prog" --prompt "a slow sunrise" --output "$out/slow.mp4" \
    --poll-interval 200 >"$log" 2>&1 &
  pid=$!
  for (( i = 0; i < 100; i++ )); do       # at most 10 s
    grep -q '^Task task_[0-9a-z_]*: processing$' "$log" && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  grep -q ': processing$' "$log" \
    || { kill -KILL "$pid" 2>/dev/null; cat "$log"; fail "the job did not start"; }
  t0=$(date +%s%N)
  interrupt "$pid" "$log"
  wait "$pid" || status=$?
  ms=$(( ($(date +%s%N) - t0) / 1000000 ))
  cat "$log"
  [ "$status" = 130 ] || fail "exit status $status after SIGINT, not 130"
  grep -q '^Interrupted: stopped following task task_.*--task-id task_' "$log" \
    || fail "no message naming the task"
  [ ! -e "$out/slow.mp4" ] || fail "left the unfinished file"
  echo "ok: SIGINT stopped it in $ms ms with status 130"
}

test_batch() {
  local py=${GROKIMAGINE_PYTHON:-}
  if [ -z "$py" ] || ! "$py" -c 'import gi; gi.require_version("Gst", "1.0")' \
      2>/dev/null; then
    echo "SKIP: no Python 3 with PyGObject and Gst 1.0 (python3-gi," \
      "gir1.2-gstreamer-1.0)"
    exit 77
  fi
  local log=$out/run.log status=0
  cat >"$out/prompts.txt" <<'EOF'
# one prompt per line; comments and blank lines are skipped
a red fox running through snow

A "quoted" lighthouse, at dusk!
   # an indented comment
café crème, ünïcode
a dragon over a neon city
EOF
  bounded 90 "$py" "$here/batch.py" "$out/prompts.txt" --jobs 2 \
    --out-dir "$out/videos" --poll-interval 200 --report "$out/report.json" \
    >"$log" 2>&1 || { cat "$log"; fail "it failed"; }
  cat "$log"
  # The report lists every prompt, in order, with a task id and a file
  python3 - "$out/report.json" <<'EOF' || fail "the report is wrong"
import json, os, sys
report = json.load(open(sys.argv[1], encoding="utf-8"))
want = ["a red fox running through snow", 'A "quoted" lighthouse, at dusk!',
        "café crème, ünïcode", "a dragon over a neon city"]
assert [e["prompt"] for e in report] == want, report
for e in report:
    assert e["task_id"] and e["task_id"].startswith("task_"), e
    assert e["credits"] == 40, e
    assert e["error"] is None, e
    assert os.path.getsize(e["file"]) > 0, e
assert len({e["file"] for e in report}) == len(report), "files collide"
print("ok: the report lists the %d prompts" % len(report))
EOF
  while IFS=$'\t' read -r file prompt; do
    check_video "$file"
    check_title "$file" "$prompt"
  done < <(python3 -c 'import json, sys
for e in json.load(open(sys.argv[1], encoding="utf-8")):
    print(e["file"] + "\t" + e["prompt"])' "$out/report.json")

  # One prompt refused before it is sent (over 5000 characters for
  # grok5imagine):
  # the others are saved, the report says why, the status is 1
  { echo "a short prompt"; printf 'x%.0s' $(seq 1 5001); echo; } \
    >"$out/mixed.txt"
  bounded 90 "$py" "$here/batch.py" "$out/mixed.txt" --api grok5imagine \
    --out-dir "$out/mixed" --poll-interval 200 >"$log" 2>&1 || status=$?
  [ "$status" = 1 ] || { cat "$log"; fail "status $status with a failed job"; }
  python3 - "$out/mixed/report.json" <<'EOF' || fail "the mixed report is wrong"
import json, os, sys
ok, bad = json.load(open(sys.argv[1], encoding="utf-8"))
assert ok["error"] is None and ok["task_id"] and os.path.getsize(ok["file"]), ok
assert bad["file"] is None and "5000" in bad["error"], bad
print("ok: a refused prompt is reported, the other one saved")
EOF

  # Ctrl-C during ten-second jobs: every pipeline stops at once, the
  # report is written, the status is 130
  local pid i
  curl -sf -d '{"job_duration_ms": 10000}' \
    "$GROK_IMAGINE_BASE_URL/_sim/faults" >/dev/null || fail "POST /_sim/faults"
  "$py" "$here/batch.py" "$out/prompts.txt" --jobs 2 --out-dir "$out/stopped" \
    --poll-interval 200 >"$log" 2>&1 &
  pid=$!
  for (( i = 0; i < 100; i++ )); do       # at most 10 s
    [ "$(grep -c ': submitted$' "$log")" -lt 2 ] || break
    sleep 0.1
  done
  interrupt "$pid" "$log"
  status=0
  wait "$pid" || status=$?
  cat "$log"
  [ "$status" = 130 ] || fail "exit status $status after SIGINT, not 130"
  python3 - "$out/stopped/report.json" <<'EOF' || fail "the report is wrong"
import json, sys
report = json.load(open(sys.argv[1], encoding="utf-8"))
assert len(report) == 4 and not any(e["file"] for e in report), report
assert all(e["task_id"] and "interrupted" in e["error"] for e in report[:2])
assert all("not started" in e["error"] for e in report[2:]), report
print("ok: SIGINT stopped the batch and the report names the two tasks")
EOF
}

test_play_uri() {
  local log=$out/run.log task submits status
  bounded 60 bash "$here/play-uri.sh" --headless 'a quiet lake & "birds"' \
    ratio=16:9 poll-interval=200 >"$log" 2>&1 || { cat "$log"; fail "it failed"; }
  cat "$log"
  grep -q '^URI: grokimagine://?prompt=a%20quiet%20lake%20%26%20%22birds%22&ratio=16%3A9&poll-interval=200$' "$log" \
    || fail "not the expected URI"
  grep -q 'Got EOS' "$log" || fail "did not play to the end"
  grep -qi 'key' <(grep '^URI:' "$log") && fail "a key in the URI"
  # where the key goes is never part of a URI
  status=0
  bash "$here/play-uri.sh" --headless x base-url=http://127.0.0.1:9 \
    >"$out/base-url.log" 2>&1 || status=$?
  [ "$status" = 2 ] && grep -q GROK_IMAGINE_BASE_URL "$out/base-url.log" \
    || { cat "$out/base-url.log"; fail "base-url= was not refused"; }
  task=$(sed -n 's/.*Submitted task \(task_[0-9a-z_]*\).*/\1/p' "$log" | head -n 1)
  [ -n "$task" ] || fail "no task id"

  # grokimagine://task/<id> plays the same result without a new job
  submits=$(sim_stat accepted_submits)
  bounded 60 bash "$here/play-uri.sh" --headless --task "$task" \
    poll-interval=200 >"$log" 2>&1 || { cat "$log"; fail "--task failed"; }
  cat "$log"
  grep -q "^URI: grokimagine://task/$task?" "$log" || fail "not a task URI"
  grep -q 'Got EOS' "$log" || fail "--task did not play to the end"
  [ "$(sim_stat accepted_submits)" = "$submits" ] \
    || fail "--task submitted a new job"
  echo "ok: grokimagine://task/$task played without a new job"
}

case $example in
  prompt-to-mp4) test_prompt_to_mp4 ;;
  progress) test_progress ;;
  progress-interrupt) test_progress_interrupt ;;
  batch) test_batch ;;
  play-uri) test_play_uri ;;
  *) echo "unknown example: $example" >&2; exit 2 ;;
esac
echo "PASS: $example"
