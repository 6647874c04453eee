#!/usr/bin/env bash
# A prompt to an MP4 file and a contact sheet of its frames, with gst-launch.
#
#   examples/prompt-to-mp4.sh PROMPT OUT-DIR [PROPERTY=VALUE...]
#
#   export GROK_IMAGINE_API_KEY=...
#   examples/prompt-to-mp4.sh "a red fox running through snow" out ratio=16:9
#   examples/prompt-to-mp4.sh "a dragon" out api=grok5imagine poll-interval=5000
#
# Writes OUT-DIR/<name>.mp4 (the result, remuxed: grokimaginesrc ! qtdemux !
# h264parse ! mp4mux) and OUT-DIR/<name>-sheet.png (evenly spaced frames in
# a grid), <name> being made from the prompt. PROPERTY=VALUE arguments go to
# grokimaginesrc (gst-inspect-1.0 grokimaginesrc lists them).
#
# Environment: GROK_IMAGINE_API_KEY (the key) and GROK_IMAGINE_BASE_URL (an
# API base URL, e.g. the simulator's; both read by grokimaginesrc itself),
# SHEET_TILES (frames on the sheet, default
# 6), SHEET_COLUMNS (default 3), SHEET_TILE_SIZE (the longer side of a
# frame, default 320).
set -euo pipefail

usage() {
  echo "usage: $0 PROMPT OUT-DIR [PROPERTY=VALUE...]" >&2
  exit 2
}
[ $# -ge 2 ] || usage
prompt=$1
out=$2
shift 2
props=()
for p in "$@"; do
  [[ $p =~ ^[a-z][a-z0-9-]*= ]] || { echo "Not PROPERTY=VALUE: $p" >&2; usage; }
  props+=("$p")
done
[ -n "$prompt" ] || { echo "The prompt is empty" >&2; usage; }
tiles=${SHEET_TILES:-6}
columns=${SHEET_COLUMNS:-3}
tile_size=${SHEET_TILE_SIZE:-320}
gap=4
for n in "$tiles" "$columns" "$tile_size"; do
  [[ $n =~ ^[1-9][0-9]{0,3}$ ]] || { echo "Not a count: $n" >&2; exit 2; }
done

# gst-launch reads its arguments as a pipeline description: the prompt goes
# in double quotes with its quotes and backslashes escaped, twice when it
# starts with a quote (a quoted string value is unquoted once more)
quote() {
  local s=${2//\\/\\\\}
  s=${s//\"/\\\"}
  printf -v "$1" '"%s"' "$s"
}
prompt_value=
quote prompt_value "$prompt"
[[ $prompt != \"* ]] || quote prompt_value "$prompt_value"

# The file name: the prompt in lower case, runs of other characters as "-"
name=$(printf '%s' "$prompt" | tr '[:upper:]' '[:lower:]' \
  | tr -c 'a-z0-9' '-' | tr -s '-' | sed 's/^-//; s/-$//' | cut -c1-40)
name=${name%-}
[ -n "$name" ] || name=video
mkdir -p "$out"
mp4="$out/$name.mp4"
sheet="$out/$name-sheet.png"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# 1. The video. -m prints the bus messages on stdout: the progress lines and
# the grokimagine-task messages are shown as they come, and the log keeps
# the task id and the credits for the summary. Errors and warnings go to
# stderr as they are.
echo "Generating: $prompt"
set +e
gst-launch-1.0 -m grokimaginesrc prompt="$prompt_value" ${props[@]+"${props[@]}"} \
  ! qtdemux ! h264parse ! mp4mux ! filesink location="$mp4" \
  | tee "$work/launch.log" \
  | awk '
      /^Progress: / && $0 != last { print; last = $0; fflush () }
      /\(element\): grokimagine-task,/ {
        s = $0; sub(/.*, status=\(string\)/, "", s); sub(/[,;].*/, "", s)
        r = s
        if ($0 ~ /raw-status=/) {
          r = $0; sub(/.*raw-status=\(string\)/, "", r); sub(/[,;].*/, "", r)
        }
        print "Task status: " s (r == s ? "" : " (" r ")"); fflush ()
      }'
status=${PIPESTATUS[0]}      # that of gst-launch, not of the filters
set -e
if [ "$status" -ne 0 ]; then
  rm -f "$mp4"
  echo "Generating the video failed" >&2
  exit 1
fi

last_task=$(grep -a '(element): grokimagine-task,' "$work/launch.log" | tail -n 1)
task_id=$(printf '%s\n' "$last_task" | sed -n 's/.*task-id=(string)\([^,;]*\).*/\1/p')
credits=$(printf '%s\n' "$last_task" | sed -n 's/.*consumed-credits=(gint64)\([0-9]*\).*/\1/p')

# 2. The contact sheet. Frames at 4 per second, scaled to fit a square of
# SHEET_TILE_SIZE (with their time stamped on them when the pango plugin is
# there), as numbered PNGs...
overlay=()
if gst-inspect-1.0 timeoverlay >/dev/null 2>&1; then
  overlay=(timeoverlay "font-desc=Sans 10" halignment=left valignment=bottom !)
fi
gst-launch-1.0 -q filesrc location="$mp4" ! decodebin ! videoconvert \
  ! videorate drop-only=true ! video/x-raw,framerate=4/1 ! videoscale \
  ! "video/x-raw,width=[1,$tile_size],height=[1,$tile_size],pixel-aspect-ratio=1/1" \
  ! ${overlay[@]+"${overlay[@]}"} videoconvert ! pngenc \
  ! multifilesink location="$work/frame-%05d.png"
frames=("$work"/frame-*.png)
[ -e "${frames[0]}" ] || { echo "No frames decoded from $mp4" >&2; exit 1; }
count=${#frames[@]}

# ...of which TILES evenly spaced ones are laid out by compositor
png_size() {      # prints "WIDTH HEIGHT" from a PNG's header
  od -An -tu1 -j16 -N8 "$1" | awk '{
    print $1 * 16777216 + $2 * 65536 + $3 * 256 + $4,
          $5 * 16777216 + $6 * 65536 + $7 * 256 + $8 }'
}
read -r tw th < <(png_size "${frames[0]}")
[ "$tiles" -le "$count" ] || tiles=$count
[ "$columns" -le "$tiles" ] || columns=$tiles
rows=$(( (tiles + columns - 1) / columns ))
width=$(( columns * tw + (columns + 1) * gap ))
height=$(( rows * th + (rows + 1) * gap ))

args=(compositor name=grid background=black)
branches=()
for (( i = 0; i < tiles; i++ )); do
  pick=0
  [ "$tiles" -le 1 ] || pick=$(( i * (count - 1) / (tiles - 1) ))
  x=$(( gap + (i % columns) * (tw + gap) ))
  y=$(( gap + (i / columns) * (th + gap) ))
  args+=("sink_$i::xpos=$x" "sink_$i::ypos=$y")
  branches+=(filesrc location="${frames[$pick]}" ! pngdec ! videoconvert
    ! imagefreeze num-buffers=1 ! "grid.sink_$i")
done
gst-launch-1.0 -q "${args[@]}" ! "video/x-raw,width=$width,height=$height" \
  ! videoconvert ! pngenc snapshot=true ! filesink location="$sheet" \
  "${branches[@]}"

echo "Task:    ${task_id:-unknown}"
echo "Credits: ${credits:-unknown}"
echo "Video:   $mp4"
echo "Sheet:   $sheet (${width}x${height}, $tiles of $count sampled frames)"
