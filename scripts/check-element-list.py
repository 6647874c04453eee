#!/usr/bin/env python3
"""Fails when a program of the project creates a GStreamer element that
scripts/gst-elements.txt does not list (so that install-deps.sh would not
install or check it).

    check-element-list.py SOURCE_ROOT

It reads the project's programs (C, shell, Python, the benchmark and CI
scripts) and takes as element names the words that stand where a launch
line or a program names an element: after "!", after gst-launch-1.0 or
gst-inspect-1.0, as the first word of a string, or in
gst_element_factory_make ("...") and Gst.ElementFactory.make ("..."). A word
counts when the GStreamer registry knows it as an element (so caps, options
and shell words drop out). The project's own elements are left out.
"""
import os
import re
import subprocess
import sys

OURS = {"grokimaginesrc"}
# containers that GStreamer's core always has, named in prose and code
CORE = {"bin", "pipeline"}
PATTERNS = [
    re.compile(r"!\s*([a-z][a-z0-9_]*)\b"),
    re.compile(r"gst-launch-1\.0(?:\s+-[a-z]+)*\s+[\"']?([a-z][a-z0-9_]*)\b"),
    re.compile(r"gst-inspect-1\.0\s+(?:--exists\s+)?([a-z][a-z0-9_]*)\b"),
    re.compile(r"(?:factory_make|ElementFactory\.make)\s*\(\s*\"([a-z][a-z0-9_]*)\""),
    re.compile(r"\"([a-z][a-z0-9_]*)\s"),
]
PROGRAM = re.compile(r"\.(c|h|sh|py)$")
SKIP_DIRS = {".git", "corpus", "__pycache__"}


def registry_elements():
    out = subprocess.run(["gst-inspect-1.0"], capture_output=True, text=True,
                         check=True).stdout
    names = set()
    for line in out.splitlines():
        m = re.match(r"^[^:]+:\s+([^:\s]+):", line)
        if m:
            names.add(m.group(1))
    return names


def program_files(root):
    for top, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS
                   and not d.startswith("build")]
        for f in files:
            path = os.path.join(top, f)
            rel = os.path.relpath(path, root)
            if PROGRAM.search(f) or rel in ("bench/run", ".ci/run"):
                yield rel, path


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else "."
    listed = {}
    with open(os.path.join(root, "scripts", "gst-elements.txt")) as f:
        for line in f:
            words = line.split()
            if words and not words[0].startswith("#"):
                listed[words[0]] = words[1] if len(words) > 1 else ""
    known = registry_elements()
    used = {}
    for rel, path in program_files(root):
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
        for pattern in PATTERNS:
            for m in pattern.finditer(text):
                name = m.group(1)
                if name in known and name not in OURS | CORE:
                    used.setdefault(name, set()).add(rel)
    if len(used) < 10:
        print(f"only {len(used)} elements found in {root}: is it the source "
              "tree, and does the registry have the elements?")
        return 1
    missing = sorted(set(used) - set(listed))
    for name in missing:
        print(f"{name}: used by {', '.join(sorted(used[name]))} but missing "
              "from scripts/gst-elements.txt (add it with its Debian package)")
    print(f"{len(used)} elements used, {len(listed)} listed, "
          f"{len(missing)} missing")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
