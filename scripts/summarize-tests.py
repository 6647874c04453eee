#!/usr/bin/env python3
"""Prints 'N passed, N failed' from one or more meson testlog.json files.
Skipped tests count neither way; they are listed on stderr.

    summarize-tests.py [--skips-fail] [--once] LOG [[--once] LOG ...]
                       [--fail STAGE ...] [--counts P F STAGE ...]

A gstcheck program counts each of its checks (its 'Checks: N, Failures: F,
Errors: E' line); any other test program counts once, by its result. A
program that failed although all its checks passed (a sanitizer or memcheck
report, a crash at exit) counts one failure more.

--once LOG   counts each program of LOG once, by its result (the valgrind run:
             one test per program, failed by any memcheck error)
--pass STAGE counts one passed test for a stage without a log (the
             benchmark's tiny mode)
--fail STAGE counts one failure for a stage that produced no log (its build
             failed); a LOG that does not exist counts the same way
--counts P F STAGE
             adds P passed and F failed tests of a stage that counted its
             own (the clean-system stage, which runs in a chroot)
--skips-fail counts each skipped test as a failure (the clean system, where
             a test skips only when an installed package is missing)
"""
import json
import re
import sys

CHECKS = re.compile(r"Checks: (\d+), Failures: (\d+), Errors: (\d+)")

passed = failed = skipped = 0
skips_fail = False


def fail(what):
    global failed
    failed += 1
    print(what, file=sys.stderr)


def summarize(path, once):
    global passed, failed, skipped
    try:
        log = open(path, encoding="utf-8")
    except OSError as e:
        fail(f"{path}: no test log ({e.strerror})")
        return
    with log:
        for line in log:
            test = json.loads(line)
            name = test.get("name")
            result = test.get("result")
            m = None if once else CHECKS.search(test.get("stdout") or "")
            if m and result in ("OK", "FAIL"):
                checks, failures, errors = map(int, m.groups())
                passed += checks - failures - errors
                if failures + errors:
                    fail(f"{name}: {failures + errors} of {checks} checks "
                         "failed")
                    failed += failures + errors - 1
                if result == "FAIL" and failures + errors == 0:
                    fail(f"{name}: FAIL after its checks passed "
                         f"(exit status {test.get('returncode')})")
            elif result == "SKIP" and skips_fail:
                fail(f"{name}: skipped, so a package it needs is missing")
            elif result == "SKIP":
                skipped += 1
                print(f"{name}: skipped", file=sys.stderr)
            elif result in ("OK", "EXPECTEDFAIL"):
                passed += 1
            else:
                # crashed, timed out, or failed without a summary line
                fail(f"{name}: {result} (exit status {test.get('returncode')})")


args = sys.argv[1:]
once = False
while args:
    arg = args.pop(0)
    if arg == "--once":
        once = True
    elif arg == "--skips-fail":
        skips_fail = True
    elif arg == "--fail":
        fail(f"{args.pop(0) if args else 'a stage'}: failed")
    elif arg == "--pass":
        args.pop(0)
        passed += 1
    elif arg == "--counts":
        p, f, stage = int(args.pop(0)), int(args.pop(0)), args.pop(0)
        passed += p
        failed += f
        if f:
            print(f"{stage}: {f} failed", file=sys.stderr)
    else:
        summarize(arg, once)
        once = False

if skipped:
    print(f"{skipped} skipped", file=sys.stderr)
sys.stderr.flush()
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed or passed == 0 else 0)
