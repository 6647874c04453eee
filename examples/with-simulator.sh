#!/usr/bin/env bash
# Runs a command against the local API simulator, with the plugin of a build
# directory: starts grokimagine-sim on loopback, exports
#   GROK_IMAGINE_BASE_URL  the simulator's API origin
#   GROK_IMAGINE_API_KEY   its key
#   GST_PLUGIN_PATH        the build's plugin directory first
# runs the command and stops the simulator. Exits with the command's status.
#
#   examples/with-simulator.sh [SIMULATOR-OPTION...] -- COMMAND [ARG...]
#   examples/with-simulator.sh --job-duration=3000 -- examples/prompt-to-mp4.sh "a fox" out
#
# The simulator and the plugin come from $BUILD_DIR (default: build/ at the
# top of the source tree), or from $GROKIMAGINE_SIM and
# $GROKIMAGINE_PLUGIN_DIR. `grokimagine-sim --help` lists its options.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${BUILD_DIR:-$here/../build}
sim=${GROKIMAGINE_SIM:-$build/tests/simulator/grokimagine-sim}
plugin_dir=${GROKIMAGINE_PLUGIN_DIR:-$build/plugin}

usage() {
  echo "usage: $0 [SIMULATOR-OPTION...] -- COMMAND [ARG...]" >&2
  exit 2
}

sim_args=()
key='sim-key'
while [ $# -gt 0 ] && [ "$1" != -- ]; do
  case $1 in --key=*) key=${1#--key=} ;; esac
  sim_args+=("$1")
  shift
done
[ $# -ge 2 ] || usage
shift

if [ ! -x "$sim" ]; then
  echo "No simulator at $sim: build the project (meson setup build &&" \
    "ninja -C build) or set BUILD_DIR or GROKIMAGINE_SIM" >&2
  exit 2
fi

simout=$(mktemp)
trap 'rm -f "$simout"' EXIT
# The simulator exits when its standard input closes: fd 3 is the only
# writer, so it goes with this script however the script ends. The command
# does not inherit fd 3 (3>&- below).
exec 3> >(exec "$sim" --exit-on-stdin-eof ${sim_args[@]+"${sim_args[@]}"} \
  >"$simout")
sim_pid=$!

api=
for _ in $(seq 1 300); do        # at most 30 s
  if grep -q '^ready' "$simout"; then
    api=$(awk '$1 == "api" { print $2 }' "$simout")
    break
  fi
  kill -0 "$sim_pid" 2>/dev/null || break
  sleep 0.1
done
if [ -z "$api" ]; then
  echo "The simulator did not start:" >&2
  cat "$simout" >&2
  exit 1
fi

export GROK_IMAGINE_BASE_URL=$api
export GROK_IMAGINE_API_KEY=$key
export GST_PLUGIN_PATH="$plugin_dir${GST_PLUGIN_PATH:+:$GST_PLUGIN_PATH}"
echo "Simulator: $api (plugin from $plugin_dir)" >&2

status=0
"$@" 3>&- || status=$?

exec 3>&-
for _ in $(seq 1 50); do         # at most 5 s, then it is killed
  kill -0 "$sim_pid" 2>/dev/null || break
  sleep 0.1
done
kill "$sim_pid" 2>/dev/null || true
exit "$status"
