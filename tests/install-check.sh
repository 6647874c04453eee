#!/usr/bin/env bash
# meson install puts the plugin where GStreamer looks for plugins by itself:
# install into a scratch DESTDIR, then let gst-inspect-1.0 find the element
# there through GStreamer's system path alone (no GST_PLUGIN_PATH).
set -euo pipefail
build=$1
dest=$(mktemp -d)
trap 'rm -rf "$dest"' EXIT

meson install -C "$build" --no-rebuild --destdir "$dest" >/dev/null
pluginsdir=$(pkg-config --variable=pluginsdir gstreamer-1.0)
so="$dest$pluginsdir/libgstgrokimagine.so"
[ -f "$so" ] || { echo "not installed in GStreamer's plugin directory: $so"; exit 1; }

out=$(env -u GST_PLUGIN_PATH -u GST_PLUGIN_PATH_1_0 \
  GST_PLUGIN_SYSTEM_PATH_1_0="$dest$pluginsdir" \
  GST_REGISTRY_1_0="$dest/registry.bin" \
  gst-inspect-1.0 grokimaginesrc)
grep -q "Grok Imagine video source" <<<"$out" || { echo "gst-inspect-1.0 did not find grokimaginesrc"; exit 1; }
grep -q "Default: 2000" <<<"$out"
tool=$(find "$dest" -name grokimagine-journal -type f -perm -u+x | head -n 1)
[ -n "$tool" ] || { echo "grokimagine-journal was not installed"; exit 1; }
"$tool" --help | grep -q "forget DIR TASK-ID"
echo "installed to $pluginsdir and found by gst-inspect-1.0"
