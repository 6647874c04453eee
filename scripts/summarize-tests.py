#!/usr/bin/env python3
"""Prints 'N passed, N failed' from a meson testlog.json.

A gstcheck program counts each of its checks (its 'Checks: N, Failures: F,
Errors: E' line); any other test program counts once, by its result.
"""
import json
import re
import sys

CHECKS = re.compile(r"Checks: (\d+), Failures: (\d+), Errors: (\d+)")

passed = failed = skipped = 0
with open(sys.argv[1], encoding="utf-8") as log:
    for line in log:
        test = json.loads(line)
        result = test.get("result")
        m = CHECKS.search(test.get("stdout") or "")
        if m and result in ("OK", "FAIL"):
            checks, failures, errors = map(int, m.groups())
            passed += checks - failures - errors
            failed += failures + errors
        elif result == "SKIP":
            skipped += 1
        elif result in ("OK", "EXPECTEDFAIL"):
            passed += 1
        else:
            # crashed, timed out, or failed without a summary line
            failed += 1
            print(f"{test.get('name')}: {result}", file=sys.stderr)

line = f"{passed} passed, {failed} failed"
if skipped:
    line += f", {skipped} skipped"
print(line)
sys.exit(1 if failed or passed == 0 else 0)
