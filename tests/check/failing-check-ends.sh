#!/usr/bin/env bash
# A test program whose check fails while a pipeline runs ends at once and
# reports that failure (meson's timeout for this test catches a hang).
set -uo pipefail
out=$("$@" 2>&1)
rc=$?
# on stderr: the summary of the suite counts the check lines of stdout,
# and this failure is the expected one
echo "$out" >&2
[ "$rc" -eq 1 ] || { echo "exit status $rc, expected 1 (one failed check)"; exit 1; }
grep -q "Checks: 1, Failures: 1, Errors: 0" <<<"$out" || { echo "expected exactly one failed check"; exit 1; }
grep -q "deliberate failure while the job runs" <<<"$out" || { echo "not the deliberate failure"; exit 1; }
echo "the failed check was reported and the program ended"
