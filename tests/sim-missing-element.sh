#!/usr/bin/env bash
# The simulator refuses to start, naming the element, when one it renders
# with is missing: it runs with GStreamer's plugin directory minus the plugin
# that has textoverlay, in a registry of its own.
set -euo pipefail
sim=$1
element=${2:-textoverlay}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

pluginsdir=$(pkg-config --variable=pluginsdir gstreamer-1.0)
so=$(gst-inspect-1.0 "$element" | awk '$1 == "Filename" { print $2 }')
[ -n "$so" ] || { echo "gst-inspect-1.0 does not know $element here"; exit 1; }
mkdir "$dir/plugins"
for f in "$pluginsdir"/*.so; do
  [ "$(basename "$f")" = "$(basename "$so")" ] || ln -s "$f" "$dir/plugins/"
done

set +e
out=$(env -u GST_PLUGIN_PATH -u GST_PLUGIN_PATH_1_0 -u GST_PLUGIN_LOADING_WHITELIST \
  GST_PLUGIN_SYSTEM_PATH_1_0="$dir/plugins" GST_REGISTRY_1_0="$dir/registry.bin" \
  timeout 60 "$sim" --exit-on-stdin-eof </dev/null 2>&1)
rc=$?
set -e
echo "$out"
[ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] || { echo "the simulator started (exit status $rc) without $element"; exit 1; }
grep -q "element '$element' is missing" <<<"$out" || { echo "the message does not name $element"; exit 1; }
if grep -q '^ready' <<<"$out"; then echo "it said ready"; exit 1; fi
echo "refused to start without $element, and said so"
