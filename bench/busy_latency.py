"""Completion latency while an explanation or a review runs, against idle: do background jobs
keep out of the user's way? Progress goes to stderr, the markdown table to stdout.

    python3 bench/busy_latency.py [--model M] [--threads 2] [--requests 12]

One mistral-lsp (the 0.5B test model by default) with a real standard-library module open
(`posixpath.py`). The user types at spots spread over the file: Enter at the end of a line inside
a function, then the file's next line typed again a word at a time (0.2 s apart), an automatic
inline completion after Enter and after each word; the typing is undone before the next spot.
`--requests` requests are timed three times: idle; while `mistral-lsp.explain` runs on a function
of the file; while `mistral-lsp.review` runs on the whole file (each background command is
started before the first request and, when it ends early, started again so that every request
overlaps one; each phase has a server of its own). The table gives p50/p90 per phase and the ratio of the busy p50 to the idle p50
(the explain issue asks for at most 1.5).

Before the idle phase, on its server, each function of `--explain-functions` (three functions of
30-36 lines by default) is explained once on an idle server (`mistral-lsp.explain` at the
signature: the server picks the enclosing function): time to the first streamed text (the first
`mistral-lsp/explanation` notification with text; the prompt read first) and to the result."""

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
                  and not line.rstrip().endswith(("\\", ",", "(", "["))
                  and i + 1 < len(lines) and lines[i + 1].startswith("    ") and lines[i + 1].strip()
                  and not lines[i + 1].strip().startswith(("#", '"', "'"))]
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


def measure(client, text, rows, version, count):
    """Typing at each spot in turn: Enter at the end of the line, then the next line of the file
    typed again a word at a time, an automatic request after each; `count` requests in all.
    (latencies in seconds, next version)."""
    lines = text.split("\n")
    times = []

    def change(start, end, inserted):
        nonlocal version
        version += 1
        client.notify("textDocument/didChange", {"textDocument": {"uri": URI, "version": version},
                                                 "contentChanges": [{"range": {"start": start, "end": end},
                                                                     "text": inserted}]})

    for row in rows:
        line, typed = lines[row], lines[row + 1]
        indent = typed[:len(typed) - len(typed.lstrip())]
        end = {"line": row, "character": len(line)}
        change(end, end, "\n" + indent)
        column = len(indent)
        for word in [""] + typed.split():
            if word:
                piece = word + " "
                at = {"line": row + 1, "character": column}
                change(at, at, piece)
                column += len(piece)
                time.sleep(0.2)
            started = time.monotonic()
            client.inline_completion(URI, {"line": row + 1, "character": column}, 2)
            times.append(time.monotonic() - started)
            if len(times) >= count:
                break
        change(end, {"line": row + 1, "character": column}, "")
        if len(times) >= count:
            break
    return times, version


def explain_latency(client, text, names):
    """(function, lines, seconds to the first streamed text, seconds to the result, characters) for
    each function `def NAME(` of the file, explained one at a time."""
    lines = text.split("\n")
    rows = []
    for name in names:
        start = next(i for i, line in enumerate(lines) if line.startswith(f"def {name}("))
        end = next((i for i in range(start + 1, len(lines)) if lines[i] and not lines[i][0].isspace()), len(lines))
        length = len("\n".join(lines[start:end]).rstrip().split("\n"))
        first = []

        def streamed(params, first=first, start=start):
            # This function's explanation only: the last one's final notification can come after its result.
            if params.get("text") and not first and params.get("range", {}).get("start", {}).get("line") == start:
                first.append(time.monotonic())
        client.on_notification["mistral-lsp/explanation"] = streamed
        position = {"line": start, "character": 4}
        started = time.monotonic()
        result = client.request("workspace/executeCommand", {"command": "mistral-lsp.explain", "arguments": [
            {"uri": URI, "range": {"start": position, "end": position}}]}, timeout=900)
        total = time.monotonic() - started
        del client.on_notification["mistral-lsp/explanation"]
        markdown = (result or {}).get("markdown", "")
        rows.append((name, length, first[0] - started if first else None, total, len(markdown)))
        log(f"  [explain {name}, {length} lines] first text {fmt(rows[-1][2], 2)} s, result {fmt(total, 2)} s, "
            f"{len(markdown)} characters")
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=benchlib.default_model(), help="GGUF model (default: the 0.5B test model)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--context-size", type=int, default=8192)
    parser.add_argument("--requests", type=int, default=24,
                        help="completion requests per phase (default 24; 0: only the explanations alone)")
    parser.add_argument("--lsp-binary", default=os.path.join(benchlib.REPO, "target", "bench-lsp", "target", "release", "mistral-lsp"))
    parser.add_argument("--lsp-arg", action="append", default=[])
    parser.add_argument("--nice", type=int, default=5)
    parser.add_argument("--explain-functions", default="ismount,relpath,commonpath",
                        help="posixpath functions explained alone first, comma-separated ('' for none)")
    args = parser.parse_args()
    text = open(os.path.join(sysconfig.get_paths()["stdlib"], "posixpath.py"), encoding="utf-8").read()
    rows = spots(text, 8)
    binary, _ = benchlib.snapshot_binary(args.lsp_binary)
    function = text.split("\n").index("def join(a, *p):")
    phases = [("idle", None),
              ("explaining", ("mistral-lsp.explain", [{"uri": URI, "range": {
                  "start": {"line": function + 1, "character": 4}, "end": {"line": function + 1, "character": 4}}}])),
              ("reviewing", ("mistral-lsp.review", [{"uri": URI}]))]
    results, explained = {}, []
    try:
        # A server per phase: a background command still running cannot slow the next phase.
        for name, background in phases:
            client = benchlib.start_lsp(args, binary)
            try:
                client.did_open(URI, text)
                if name == "idle" and args.explain_functions:
                    explained = explain_latency(client, text, args.explain_functions.split(","))
                if not args.requests:
                    break
                # A first request reads the file's prompt: not part of the phase.
                _, version = measure(client, text, rows[-1:], 1, 1)
                job = Background(client, *background) if background else None
                if job:
                    time.sleep(2)
                times, _ = measure(client, text, rows, version, args.requests)
                if job:
                    job.stop()
                results[name] = times
                log(f"  [{name}] p50 {fmt(percentile(times, 50), 2)} s, p90 {fmt(percentile(times, 90), 2)} s"
                    + (f"; background runs finished meanwhile: {job.runs}" if job else ""))
            finally:
                client.close()
    finally:
        os.remove(binary)
    idle = percentile(results["idle"], 50) if results else None
    table = markdown_table(
        ["phase", "requests", "p50 s", "p90 s", "p50 / idle p50"],
        [[name, len(times), fmt(percentile(times, 50), 2), fmt(percentile(times, 90), 2),
          fmt(percentile(times, 50) / idle if idle else None, 2)] for name, times in results.items()])
    if results:
        print(f"Completion latency while background jobs run, {os.path.basename(args.model)}, {args.threads} threads, "
              f"posixpath.py, automatic requests on a new line\n")
        print(table)
    if explained:
        print(f"\nExplaining a function alone (idle server, {os.path.basename(args.model)}, {args.threads} threads)\n")
        print(markdown_table(["function", "lines", "first text s", "result s", "characters"],
                             [[name, length, fmt(first, 2), fmt(total, 2), size]
                              for name, length, first, total, size in explained]))


if __name__ == "__main__":
    main()
