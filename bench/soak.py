#!/usr/bin/env python3
"""Soak bench: a long storm of random edits and completion requests (most cancelled at once)
against the real binary over stdio. At every tenth of the run it reads the server's resident
memory (after a short pause) and its peak, the longest time its message loop spent on one
message in wall time and in CPU time (`longestStallMs` and `longestStallCpuMs` of
`mistral-lsp.status`; wall time also counts waiting for a core), and compares the server's copy
of every document with the client's (`mistral-lsp.document`). Prints a markdown table on stdout.

    python3 bench/soak.py --lsp-binary "$(bench/build-lsp-snapshot)" [--edits 1000000 --requests 100000]
"""

import argparse
import json
import os
import random
import threading
import time

import benchlib

# Each document's size in characters: edits insert more than they delete below it, and delete
# more above it.
SIZE = 40 * 1024
PIECES = ["a", "b", "x", " ", "  ", "(", ")", ":", "\n", "\n    ", "é", "😀", "return ", "self.", "def f(x):\n",
          "\"\"\"doc\"\"\"\n", "# c\n", "[", "]", "0"]


# Seconds the client pauses before reading memory: the server returns free pages once a second
# goes by without parses, so the reading is the memory it holds, not a parse's scratch space.
SETTLE = 1.5


def memory_mib(pid, field="VmRSS"):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def row(progress, edits, requests, client, status, bad, elapsed):
    time.sleep(SETTLE)
    pid = client.proc.pid
    return [progress, f"{edits:,}", f"{requests:,}", f"{memory_mib(pid):.1f}", f"{memory_mib(pid, 'VmHWM'):.1f}",
            f"{status.get('longestStallMs', float('nan')):.2f}", f"{status.get('longestStallCpuMs', float('nan')):.2f}",
            str(bad), f"{elapsed:.0f}"]


def utf16_position(text, offset):
    line_start = text.rfind("\n", 0, offset) + 1
    line = text.count("\n", 0, offset)
    column = sum(2 if ord(c) > 0xFFFF else 1 for c in text[line_start:offset])
    return {"line": line, "character": column}


class Soak:
    def __init__(self, client, documents, seed):
        self.client = client
        self.rng = random.Random(seed)
        self.texts = {}
        self.versions = {}
        self.answered = 0
        self.sent = 0
        self._lock = threading.Lock()
        for i in range(documents):
            uri = f"file:///soak/doc{i}.py"
            # Real Python near the size that edits keep it at, so that memory measures leaks, not
            # documents growing.
            self.texts[uri] = benchlib.python_corpus(SIZE, start=i * SIZE)
            self.versions[uri] = 1
            client.did_open(uri, self.texts[uri])

    def edit(self):
        uri = self.rng.choice(list(self.texts))
        text = self.texts[uri]
        start = self.rng.randrange(len(text) + 1)
        end = start
        if self.rng.random() < 0.3 or len(text) > SIZE:
            end = min(len(text), start + self.rng.randrange(1, 64 if len(text) > SIZE else 8))
        new = "" if end > start and self.rng.random() < 0.5 else self.rng.choice(PIECES)
        rng = {"start": utf16_position(text, start), "end": utf16_position(text, end)}
        self.texts[uri] = text[:start] + new + text[end:]
        self.versions[uri] += 1
        self.client.notify("textDocument/didChange", {
            "textDocument": {"uri": uri, "version": self.versions[uri]},
            "contentChanges": [{"range": rng, "text": new}]})
        return uri

    def complete(self, uri):
        """A completion at the end of the document's text, cancelled at once three times in four."""
        text = self.texts[uri]
        self.sent += 1
        request_id = f"soak-{self.sent}"
        self.client._send({"jsonrpc": "2.0", "id": request_id, "method": "textDocument/inlineCompletion", "params": {
            "textDocument": {"uri": uri}, "position": utf16_position(text, len(text)),
            "context": {"triggerKind": 2}}})
        if self.rng.random() < 0.75:
            self.client.notify("$/cancelRequest", {"id": request_id})

    def mismatches(self):
        bad = 0
        for uri, text in self.texts.items():
            copy = self.client.request("workspace/executeCommand",
                                       {"command": "mistral-lsp.document", "arguments": [uri]}, timeout=120)
            if copy.get("text") != text or copy.get("version") != self.versions[uri] or not copy.get("inSync"):
                bad += 1
        return bad


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lsp-binary", default=benchlib.default_lsp_binary())
    parser.add_argument("--model", default=benchlib.default_model(),
                        help="GGUF model (default: the 0.5B test model); `none` measures the server without one")
    parser.add_argument("--edits", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--documents", type=int, default=4)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2, help="the model's threads")
    parser.add_argument("--warmup", type=int, default=300_000,
                        help="edits (and requests at the same rate) sent before the measured run: random edits turn the documents' real Python "
                             "into random text, whose line and bracket counts (and so its syntax trees) settle "
                             "after about 300,000 edits on 4 documents")
    args = parser.parse_args()

    model = args.model if args.model != "none" else "/nonexistent/model.gguf"
    client = benchlib.LspClient([args.lsp_binary, "--model", model, "--threads", str(args.threads)], log_name="soak")
    client.initialize()
    if args.model != "none":
        client.wait_ready()
    soak = Soak(client, args.documents, args.seed)
    every = max(1, args.edits // args.requests)
    # Requests too: a loaded model's KV cache pages become resident as prompts first reach them.
    for i in range(args.warmup):
        uri = soak.edit()
        if i % every == 0:
            soak.complete(uri)
    status = client.server_status(timeout=120)
    rows = [row("0% (after warm-up)", 0, 0, client, status, soak.mismatches(), 0)]
    started = time.monotonic()
    warmup_requests = soak.sent
    for tenth in range(1, 11):
        for i in range(args.edits * (tenth - 1) // 10, args.edits * tenth // 10):
            uri = soak.edit()
            if i % every == 0:
                soak.complete(uri)
        status = client.server_status(timeout=120)
        bad = soak.mismatches()
        rows.append(row(f"{tenth * 10}%", args.edits * tenth // 10, soak.sent - warmup_requests, client, status, bad,
                        time.monotonic() - started))
        benchlib.log(" | ".join(rows[-1]))
    first, last = float(rows[1][3]), float(rows[-1][3])
    client.request("shutdown", None)
    client.notify("exit", None)
    benchlib.stop_process(client.proc)
    print(benchlib.markdown_table(
        ["progress", "edits", "requests", "RSS MiB", "peak RSS MiB", "longest loop stall ms", "of it on a core ms",
         "mismatched documents", "elapsed s"],
        rows))
    print(f"\nRSS from 10% to 100%: {first:.1f} → {last:.1f} MiB ({(last / first - 1) * 100:+.1f}%); "
          f"binary {args.lsp_binary}; {args.documents} documents; {args.warmup:,} warm-up edits; seed {args.seed}")


if __name__ == "__main__":
    main()
