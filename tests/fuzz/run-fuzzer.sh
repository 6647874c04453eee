#!/bin/sh
# Fuzzes one libFuzzer target for a bounded time from a scratch copy of its
# seed corpus, so the corpus in the source tree stays as it is.
#
#   run-fuzzer.sh FUZZER SEED-DIR ARTIFACT-DIR [DICTIONARY]
#
# FUZZ_SECONDS (default 15) bounds the run; FUZZ_RSS_MB (default 2048) the
# memory. A crash, leak, timeout or sanitizer report makes it exit 1 (not
# libFuzzer's default 77, which meson would read as "skipped") and leaves the
# input that caused it in ARTIFACT-DIR.
set -eu

fuzzer=$1
seeds=$2
artifacts=$3
dict=${4:-}

work=$(mktemp -d "${TMPDIR:-/tmp}/grokimagine-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT
trap 'exit 143' TERM INT
cp -R "$seeds/." "$work/"
mkdir -p "$artifacts"

set -- -max_total_time="${FUZZ_SECONDS:-15}" -rss_limit_mb="${FUZZ_RSS_MB:-2048}" \
  -timeout=10 -error_exitcode=1 -timeout_exitcode=1 -print_final_stats=1 \
  -artifact_prefix="$artifacts/$(basename "$fuzzer")-"
[ -n "$dict" ] && set -- "$@" -dict="$dict"

echo "$(basename "$fuzzer"): $(ls "$seeds" | wc -l) seeds, ${FUZZ_SECONDS:-15} s"
"$fuzzer" "$@" "$work"
