#!/usr/bin/env python3
"""Generates a video for every prompt of a file, several at a time.

    examples/batch.py PROMPTS-FILE [--jobs N] [--out-dir DIR] [--report FILE]
                      [--api API] [--model MODEL] [--ratio W:H]
                      [--poll-interval MS] [--timeout S] [--base-url URL]

PROMPTS-FILE holds one prompt per line; blank lines and lines starting with
'#' are skipped. Each prompt runs in its own pipeline

    grokimaginesrc ! qtdemux ! h264parse ! mp4mux ! filesink

(or grokimaginesrc ! filesink for --model text-to-image, which makes PNGs),
at most --jobs of them at once, all driven by one GLib main loop. Videos are
written to --out-dir as NNN-<slug of the prompt>.mp4, with the prompt as
their title: the tag message of grokimaginesrc is merged into mp4mux (qtdemux
does not pass the tags of its upstream on).

The report (JSON, default OUT-DIR/report.json) lists every prompt in the
file's order: {"prompt", "task_id", "credits", "file", "error"}, with "file"
null and "error" set for a failed one. Exit status: 0 when every video was
saved, 1 when any failed, 2 on bad arguments, 130 on Ctrl-C (the report is
still written; interrupted jobs name their task id, which the element's
task-id property fetches again without paying twice).

The key comes from GROK_IMAGINE_API_KEY; --base-url defaults to
GROK_IMAGINE_BASE_URL, else the API's own. Needs PyGObject and the
GStreamer introspection data (Debian: python3-gi gir1.2-gstreamer-1.0).

SPDX-License-Identifier: LGPL-2.1-or-later
"""

import argparse
import json
import os
import re
import signal
import sys
import unicodedata

import gi

gi.require_version("Gst", "1.0")
from gi.repository import GLib, Gst  # noqa: E402

APIS = ("grokimagineapi", "grok5imagine")
MODELS = ("text-to-video", "text-to-image")


def slug(text, limit=40):
    """'A Red Fox, running!' -> 'a-red-fox-running'"""
    text = unicodedata.normalize("NFKD", text)
    text = text.encode("ascii", "ignore").decode("ascii").lower()
    text = re.sub(r"[^a-z0-9]+", "-", text).strip("-")
    return text[:limit].rstrip("-") or "video"


def short(text, limit=60):
    """A prompt for a progress line"""
    return text if len(text) <= limit else text[:limit - 3] + "..."


def read_prompts(path):
    with open(path, encoding="utf-8") as f:
        lines = (line.strip() for line in f)
        return [line for line in lines if line and not line.startswith("#")]


class Job:
    """One prompt: its pipeline while it runs, then its entry of the report"""

    def __init__(self, batch, index, prompt):
        self.batch = batch
        self.index = index
        self.prompt = prompt
        ext = "png" if batch.args.model == "text-to-image" else "mp4"
        self.path = os.path.join(batch.args.out_dir,
                                 f"{index:03d}-{slug(prompt)}.{ext}")
        self.task_id = None
        self.credits = None
        self.error = None
        self.saved = False
        self.pipeline = None
        self.src = None
        self.mux = None
        self.bus = None

    def start(self):
        args = self.batch.args
        if args.model == "text-to-image":
            desc = "grokimaginesrc name=src ! filesink name=sink"
        else:
            desc = ("grokimaginesrc name=src ! qtdemux ! h264parse "
                    "! mp4mux name=mux ! filesink name=sink")
        self.pipeline = Gst.parse_launch(desc)
        self.src = self.pipeline.get_by_name("src")
        self.mux = self.pipeline.get_by_name("mux")
        self.pipeline.get_by_name("sink").set_property("location", self.path)

        # Set on the element, not written into the description: any prompt
        # is fine as it is, quotes and all
        self.src.set_property("prompt", self.prompt)
        Gst.util_set_object_arg(self.src, "api", args.api)
        if args.model:
            Gst.util_set_object_arg(self.src, "model", args.model)
        if args.base_url:
            self.src.set_property("base-url", args.base_url)
        if args.ratio:
            self.src.set_property("ratio", args.ratio)
        if args.poll_interval:
            self.src.set_property("poll-interval", args.poll_interval)
        if args.timeout:
            self.src.set_property("timeout", args.timeout)

        self.bus = self.pipeline.get_bus()
        # The tags are merged in the thread that posts them, before the
        # element streams anything: the muxer has them in time
        self.bus.enable_sync_message_emission()
        self.bus.connect("sync-message::tag", self.on_sync_tag)
        self.bus.add_signal_watch()
        self.bus.connect("message", self.on_message)

        print(f"[{self.index}] {short(self.prompt)}", flush=True)
        if self.pipeline.set_state(Gst.State.PLAYING) == \
                Gst.StateChangeReturn.FAILURE:
            # the element posted an error saying what to fix
            msg = self.bus.pop_filtered(Gst.MessageType.ERROR)
            self.finish(msg.parse_error()[0].message if msg
                        else "the pipeline did not start")

    def on_sync_tag(self, bus, msg):
        if self.mux is not None and msg.src == self.src:
            self.mux.merge_tags(msg.parse_tag(), Gst.TagMergeMode.REPLACE)

    def on_message(self, bus, msg):
        if self.pipeline is None:
            return
        t = msg.type
        if t == Gst.MessageType.ELEMENT and msg.src == self.src:
            s = msg.get_structure()
            if s.get_name() != "grokimagine-task":
                return
            self.task_id = s.get_string("task-id") or self.task_id
            ok, credits = s.get_int64("consumed-credits")
            if ok:
                self.credits = credits
            status = s.get_string("status")
            raw = s.get_string("raw-status")
            print(f"[{self.index}] task {self.task_id}: {status}"
                  + (f" ({raw})" if raw and raw != status else ""),
                  flush=True)
        elif t == Gst.MessageType.WARNING:
            print(f"[{self.index}] warning: {msg.parse_warning()[0].message}",
                  file=sys.stderr, flush=True)
        elif t == Gst.MessageType.ERROR:
            err, _ = msg.parse_error()
            details = msg.parse_error_details()
            if details and details.has_field("task-id"):
                self.task_id = self.task_id or details.get_string("task-id")
            self.finish(err.message)
        elif t == Gst.MessageType.EOS:
            self.saved = True
            self.finish(None)

    def stop(self, error):
        """Ctrl-C: cancels whatever request or wait the element is in"""
        if self.pipeline is not None:
            self.finish(error)

    def finish(self, error):
        self.error = error
        self.pipeline.set_state(Gst.State.NULL)
        self.bus.remove_signal_watch()
        self.pipeline = self.src = self.mux = self.bus = None
        if self.saved:
            print(f"[{self.index}] saved {self.path}", flush=True)
        else:
            print(f"[{self.index}] failed: {error}", file=sys.stderr,
                  flush=True)
            try:
                os.unlink(self.path)    # an unfinished file is of no use
            except FileNotFoundError:
                pass
        self.batch.job_done(self)

    def report(self):
        return {
            "prompt": self.prompt,
            "task_id": self.task_id,
            "credits": self.credits,
            "file": self.path if self.saved else None,
            "error": self.error,
        }


class Batch:
    def __init__(self, args, prompts):
        self.args = args
        self.jobs = [Job(self, i + 1, p) for i, p in enumerate(prompts)]
        self.waiting = list(self.jobs)
        self.running = []
        self.loop = GLib.MainLoop()
        self.interrupted = False

    def run(self):
        GLib.unix_signal_add(GLib.PRIORITY_HIGH, signal.SIGINT,
                             self.on_sigint)
        GLib.idle_add(self.fill)
        self.loop.run()

    def fill(self):
        while self.waiting and len(self.running) < self.args.jobs:
            job = self.waiting.pop(0)
            self.running.append(job)
            job.start()
        if not self.running:
            self.loop.quit()
        return GLib.SOURCE_REMOVE

    def job_done(self, job):
        self.running.remove(job)
        # started from the main loop, not from inside this job's handler
        if not self.interrupted:
            GLib.idle_add(self.fill)
        elif not self.running:
            self.loop.quit()

    def on_sigint(self):
        print("Interrupted: stopping every job", file=sys.stderr, flush=True)
        self.interrupted = True
        for job in self.waiting:
            job.error = "not started: interrupted"
        self.waiting = []
        for job in list(self.running):
            job.stop("interrupted" + (f": task {job.task_id} may still "
                                      "complete; fetch it with task-id="
                                      f"{job.task_id}" if job.task_id
                                      else " before the job was submitted"))
        if not self.running:
            self.loop.quit()
        return GLib.SOURCE_REMOVE


def main():
    parser = argparse.ArgumentParser(
        description="Generate a video for every prompt of a file with "
        "grokimaginesrc, several at a time, and write a JSON report.")
    parser.add_argument("prompts", help="file with one prompt per line "
                        "('#' starts a comment line)")
    parser.add_argument("--jobs", "-j", type=int, default=2,
                        help="pipelines at once (default 2)")
    parser.add_argument("--out-dir", "-o", default=".",
                        help="where the videos go (default .)")
    parser.add_argument("--report", help="the JSON report "
                        "(default OUT-DIR/report.json)")
    parser.add_argument("--base-url",
                        default=os.environ.get("GROK_IMAGINE_BASE_URL") or None,
                        help="API base URL (default $GROK_IMAGINE_BASE_URL, "
                        "else the API's own)")
    parser.add_argument("--api", choices=APIS, default=APIS[0])
    parser.add_argument("--model", choices=MODELS,
                        help="with --api grok5imagine: text-to-video "
                        "(default) or text-to-image (PNG pictures)")
    parser.add_argument("--ratio", help="aspect ratio W:H (grokimagineapi)")
    parser.add_argument("--poll-interval", type=int, metavar="MS",
                        help="milliseconds between status polls")
    parser.add_argument("--timeout", type=int, metavar="S",
                        help="seconds a job may take (default 900)")
    args = parser.parse_args()
    if args.jobs < 1:
        parser.error("--jobs must be at least 1")
    if args.model and args.api != "grok5imagine":
        parser.error("--model belongs to the grok5imagine API: add "
                     "--api grok5imagine")

    try:
        prompts = read_prompts(args.prompts)
    except (OSError, UnicodeDecodeError) as e:
        parser.error(f"cannot read {args.prompts}: {e}")
    if not prompts:
        parser.error(f"no prompts in {args.prompts}")
    report_path = args.report or os.path.join(args.out_dir, "report.json")
    os.makedirs(args.out_dir, exist_ok=True)

    Gst.init(None)
    if Gst.ElementFactory.find("grokimaginesrc") is None:
        print("No grokimaginesrc element: install the plugin or set "
              "GST_PLUGIN_PATH to the directory of libgstgrokimagine.so",
              file=sys.stderr)
        return 1

    batch = Batch(args, prompts)
    batch.run()

    report = [job.report() for job in batch.jobs]
    with open(report_path, "w", encoding="utf-8") as f:
        json.dump(report, f, indent=2, ensure_ascii=False)
        f.write("\n")
    failed = sum(1 for job in batch.jobs if not job.saved)
    credits = sum(job.credits or 0 for job in batch.jobs)
    print(f"{len(batch.jobs) - failed} saved, {failed} failed, "
          f"{credits} credits; report: {report_path}")
    if batch.interrupted:
        return 130
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
