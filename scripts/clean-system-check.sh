#!/usr/bin/env bash
# Runs inside a clean Debian 12 (through fresh-debian, from .ci/run): the
# README's demo command, then the plain test suite (meson test, without
# valgrind, sanitizers or fuzzing). Its last line is "N passed, N failed",
# the demo counting as one test. A missing install step fails here on any
# machine.
set -uo pipefail
cd "$(dirname "$0")/.."
t0=$SECONDS
logs=()

echo "=== clean system: bash examples/demo.sh"
if bash examples/demo.sh && [ -s demo-out/fox.mp4 ] && [ -s demo-out/fox.png ]; then
  logs+=(--pass "demo")
else
  logs+=(--fail "demo (bash examples/demo.sh)")
fi
echo "=== clean system: demo took $((SECONDS - t0)) s"

t1=$SECONDS
echo "=== clean system: the test suite"
# demo.sh installed the packages and built build/ (or failed doing so)
if bash scripts/install-deps.sh && { [ -f build/build.ninja ] || meson setup build; } && ninja -C build; then
  meson test -C build --print-errorlogs --num-processes 1
  logs+=(build/meson-logs/testlog.json)
else
  logs+=(--fail "build of the test suite")
fi
echo "=== clean system: tests took $((SECONDS - t1)) s"
# every package is installed here: a skipped test means one is missing
python3 scripts/summarize-tests.py --skips-fail "${logs[@]}"
