#!/usr/bin/env bash
# The demo: installs what is missing, builds, starts the local API simulator
# and generates a video from a prompt with grokimaginesrc. Leaves a playable
# MP4 and a PNG of one of its frames in demo-out/ (or $1).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
out=$(realpath -m "${1:-$top/demo-out}")
build=${BUILD_DIR:-$top/build}
prompt=${PROMPT:-a red fox running through snow}

bash "$top/scripts/install-deps.sh"
[ -f "$build/build.ninja" ] || meson setup "$build" "$top"
ninja -C "$build"

mkdir -p "$out"
simlog=$(mktemp)
# The simulator exits when its stdin closes, so it never outlives this script
exec 3> >(exec "$build/tests/simulator/grokimagine-sim" --exit-on-stdin-eof \
  --job-duration 3000 >"$simlog" 2>&1)
for _ in $(seq 1 300); do grep -q '^ready' "$simlog" && break; sleep 0.1; done
api=$(awk '$1 == "api" { print $2 }' "$simlog")
[ -n "$api" ] || { cat "$simlog"; echo "the simulator did not start" >&2; exit 1; }
echo "Simulator: $api"

export GST_PLUGIN_PATH="$build/plugin${GST_PLUGIN_PATH:+:$GST_PLUGIN_PATH}"
set -x
gst-launch-1.0 -m grokimaginesrc base-url="$api" api-key=sim-key \
  prompt="$prompt" ratio=16:9 poll-interval=500 \
  ! qtdemux ! h264parse ! mp4mux ! filesink location="$out/fox.mp4" \
  | grep --line-buffered -E 'grokimagine-task|ERROR|EOS' || true
gst-launch-1.0 -q filesrc location="$out/fox.mp4" ! qtdemux ! h264parse \
  ! avdec_h264 ! videoconvert ! pngenc snapshot=true \
  ! filesink location="$out/fox.png"
set +x
exec 3>&-
rm -f "$simlog"
[ -s "$out/fox.mp4" ] && [ -s "$out/fox.png" ]
echo "Wrote $out/fox.mp4 and $out/fox.png"
