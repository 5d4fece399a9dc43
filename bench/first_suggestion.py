#!/usr/bin/env python3
"""Time to the first suggestion after opening a file and pausing, then typing a line a word at a
time, with pre-warming on and off, side by side in one run; the server's resident memory.

    python3 bench/first_suggestion.py --model target/models/mistral-7b-shape-32l-q4_k_m.gguf \\
        [--lsp BINARY] [--pause 20] [--max-tokens 8] [--lines 300] [--threads 2]

The file is the first `--lines` lines of real Python (the standard library, as `benchlib`
takes it); the cursor sits on a new empty line at its end, which the client reports with
`mistral-lsp/cursor` as our editor clients do. After the pause, the line
`result = compute(values, scale=2)` is typed one word at a time; each word is an edit and an
automatic inline-completion request. With a synthetic model (bench/make-mistral-shape) the
suggestions are meaningless: only their latency counts, and `--max-tokens` stands in for the
length of real answers.
"""

import argparse
import os
import time

import benchlib

WORDS = ["result ", "= ", "compute(", "values, ", "scale", "=2)"]


def rss_mib(pid, field):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return None


def run(args, prewarm):
    command = [args.lsp, "--model", args.model, "--threads", str(args.threads),
               "--set", f"completion.maxTokens={args.max_tokens}",
               "--set", f"completion.prewarm={'true' if prewarm else 'false'}"]
    client = benchlib.LspClient(command, log_name=f"first-suggestion-{'prewarm' if prewarm else 'cold'}")
    try:
        client.initialize()
        client.wait_ready(timeout=600)
        text = benchlib.python_corpus(200_000)
        lines = text.split("\n")[:args.lines]
        document = "\n".join(lines) + "\n\n"
        uri = "file:///bench/first_suggestion.py"
        client.did_open(uri, document)
        line = document.count("\n")
        client.notify("mistral-lsp/cursor", {"textDocument": {"uri": uri}, "position": {"line": line, "character": 0}})
        time.sleep(args.pause)
        latencies, version, column = [], 1, 0
        for word in WORDS:
            version += 1
            position = {"line": line, "character": column}
            client.notify("textDocument/didChange", {
                "textDocument": {"uri": uri, "version": version},
                "contentChanges": [{"range": {"start": position, "end": position}, "text": word}]})
            column += len(word)
            started = time.monotonic()
            client.inline_completion(uri, {"line": line, "character": column}, 2, timeout=600)
            latencies.append(time.monotonic() - started)
        status = client.server_status()
        memory = rss_mib(client.proc.pid, "VmRSS"), rss_mib(client.proc.pid, "VmHWM")
        return latencies, status, memory
    finally:
        client.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--lsp", default=benchlib.default_lsp_binary())
    parser.add_argument("--pause", type=float, default=20.0)
    parser.add_argument("--max-tokens", type=int, default=8)
    parser.add_argument("--lines", type=int, default=300)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    rows = []
    for prewarm in (True, False):
        latencies, status, (rss, peak) = run(args, prewarm)
        rest = latencies[1:]
        speed = status.get("speed") or {}
        rows.append([
            "on" if prewarm else "off",
            benchlib.fmt(latencies[0], 2, " s"),
            benchlib.fmt(benchlib.percentile(rest, 50), 2, " s"),
            benchlib.fmt(benchlib.percentile(rest, 90), 2, " s"),
            f"{rss:.0f} / {peak:.0f} MiB",
            f"{speed.get('promptTokensPerSecond', 0):.1f} / {speed.get('generatedTokensPerSecond', 0):.1f}",
            str(status.get("prewarmed")),
        ])
        benchlib.log(f"prewarm {'on' if prewarm else 'off'}: {[round(x, 2) for x in latencies]} {status}")
    print(f"model {os.path.basename(args.model)}, {args.threads} threads, completion.maxTokens {args.max_tokens}, "
          f"{args.lines}-line file, {args.pause:.0f} s pause")
    print(benchlib.markdown_table(
        ["pre-warming", "first suggestion", "typing p50", "typing p90", "RSS now / peak",
         "measured prompt / generation t/s", "pre-warmed jobs"], rows))


if __name__ == "__main__":
    main()
