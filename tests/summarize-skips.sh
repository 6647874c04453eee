#!/usr/bin/env bash
# The clean-system stage counts a skipped test as a failure: there every
# package is installed, so a test skips only when one is missing from
# scripts/install-deps.sh. Elsewhere a skip counts neither way.
#   summarize-skips.sh SUMMARIZE-TESTS.PY CLEAN-SYSTEM-CHECK.SH
set -euo pipefail
summarize=$1
grep -q 'summarize-tests.py --skips-fail' "$2" \
  || { echo "$2 does not count skips as failures"; exit 1; }
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cat >"$dir/testlog.json" <<'JSON'
{"name": "api", "result": "OK", "returncode": 0, "stdout": ""}
{"name": "examples/batch", "result": "SKIP", "returncode": 77, "stdout": "SKIP: no PyGObject"}
JSON
out=$(python3 "$summarize" "$dir/testlog.json" 2>/dev/null) \
  || { echo "a skip failed the ordinary summary: $out"; exit 1; }
[ "$out" = "1 passed, 0 failed" ] || { echo "ordinary summary: $out"; exit 1; }
if out=$(python3 "$summarize" --skips-fail "$dir/testlog.json" 2>"$dir/err"); then
  echo "--skips-fail passed a skipped test: $out"; exit 1
fi
[ "$out" = "1 passed, 1 failed" ] || { echo "--skips-fail summary: $out"; exit 1; }
grep -q 'examples/batch: skipped, so a package' "$dir/err" || { cat "$dir/err"; exit 1; }
echo "ok: a skip fails the clean-system summary only"
