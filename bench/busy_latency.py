"""Completion latency while an explanation or a review runs, against idle: do background jobs
keep out of the user's way? Progress goes to stderr, the markdown table to stdout.

    python3 bench/busy_latency.py [--model M] [--threads 2] [--requests 12]

One mistral-lsp (the 0.5B test model by default) with a real standard-library module open
(`posixpath.py`). A request: the user presses Enter at the end of a line inside a function (a
didChange that adds a line break and the line's indentation), then an automatic inline
completion on the new line; the change is undone after the answer. `--requests` such spots,
spread over the file, are timed three times: idle; while `mistral-lsp.explain` runs on a function
of the file; while `mistral-lsp.review` runs on the whole file (each background command is
started before the first request and, when it ends early, started again so that every request
overlaps one; each phase has a server of its own). The table gives p50/p90 per phase and the ratio of the busy p50 to the idle p50
(the explain issue asks for at most 1.5)."""

import argparse
import os
import sysconfig
import threading
import time

import benchlib
from benchlib import fmt, log, markdown_table, percentile

URI = "file:///bench/posixpath.py"


def spots(text, count):
    """Lines (0-based) inside function bodies that end with code, spread over the file."""
    lines = text.split("\n")
    candidates = [i for i, line in enumerate(lines)
                  if line.startswith("        ") and line.strip() and not line.strip().startswith(("#", '"', "'"))
                  and not line.rstrip().endswith(("\\", ",", "(", "["))]
    step = max(1, len(candidates) // count)
    return candidates[::step][:count]


class Background:
    """A command that runs, restarted when it ends, until stopped."""

    def __init__(self, client, command, arguments):
        self.client, self.command, self.arguments = client, command, arguments
        self.runs, self.stopped = 0, False
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self):
        while not self.stopped:
            try:
                self.client.request("workspace/executeCommand", {"command": self.command, "arguments": self.arguments},
                                    timeout=900)
            except Exception as err:  # noqa: BLE001 - a failed run is logged and the next starts
                log(f"bench: {self.command} ended: {err}")
                time.sleep(1)
            self.runs += 1

    def stop(self):
        self.stopped = True


def measure(client, text, rows, version):
    """(latencies in seconds, next version)."""
    lines = text.split("\n")
    times = []
    for row in rows:
        line = lines[row]
        indent = line[:len(line) - len(line.lstrip())]
        end = {"line": row, "character": len(line)}
        version += 1
        client.notify("textDocument/didChange", {"textDocument": {"uri": URI, "version": version},
                                                 "contentChanges": [{"range": {"start": end, "end": end},
                                                                     "text": "\n" + indent}]})
        started = time.monotonic()
        client.inline_completion(URI, {"line": row + 1, "character": len(indent)}, 2)
        times.append(time.monotonic() - started)
        version += 1
        after = {"line": row + 1, "character": len(indent)}
        client.notify("textDocument/didChange", {"textDocument": {"uri": URI, "version": version},
                                                 "contentChanges": [{"range": {"start": end, "end": after}, "text": ""}]})
        time.sleep(0.3)
    return times, version


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=benchlib.default_model(), help="GGUF model (default: the 0.5B test model)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--context-size", type=int, default=8192)
    parser.add_argument("--requests", type=int, default=12, help="completion requests per phase (default 12)")
    parser.add_argument("--lsp-binary", default=benchlib.default_lsp_binary())
    parser.add_argument("--lsp-arg", action="append", default=[])
    parser.add_argument("--nice", type=int, default=5)
    args = parser.parse_args()
    text = open(os.path.join(sysconfig.get_paths()["stdlib"], "posixpath.py"), encoding="utf-8").read()
    rows = spots(text, args.requests)
    binary, _ = benchlib.snapshot_binary(args.lsp_binary)
    function = text.split("\n").index("def join(a, *p):")
    phases = [("idle", None),
              ("explaining", ("mistral-lsp.explain", [{"uri": URI, "range": {
                  "start": {"line": function + 1, "character": 4}, "end": {"line": function + 1, "character": 4}}}])),
              ("reviewing", ("mistral-lsp.review", [{"uri": URI}]))]
    results = {}
    try:
        # A server per phase: a background command still running cannot slow the next phase.
        for name, background in phases:
            client = benchlib.start_lsp(args, binary)
            try:
                client.did_open(URI, text)
                # A first request reads the file's prompt: not part of the phase.
                _, version = measure(client, text, rows[:1], 1)
                job = Background(client, *background) if background else None
                if job:
                    time.sleep(2)
                times, _ = measure(client, text, rows, version)
                if job:
                    job.stop()
                results[name] = times
                log(f"  [{name}] p50 {fmt(percentile(times, 50), 2)} s, p90 {fmt(percentile(times, 90), 2)} s"
                    + (f"; background runs finished meanwhile: {job.runs}" if job else ""))
            finally:
                client.close()
    finally:
        os.remove(binary)
    idle = percentile(results["idle"], 50)
    table = markdown_table(
        ["phase", "requests", "p50 s", "p90 s", "p50 / idle p50"],
        [[name, len(times), fmt(percentile(times, 50), 2), fmt(percentile(times, 90), 2),
          fmt(percentile(times, 50) / idle if idle else None, 2)] for name, times in results.items()])
    print(f"Completion latency while background jobs run, {os.path.basename(args.model)}, {args.threads} threads, "
          f"posixpath.py, automatic requests on a new line\n")
    print(table)


if __name__ == "__main__":
    main()
