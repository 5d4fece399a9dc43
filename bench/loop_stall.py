#!/usr/bin/env python3
"""Latency guard for the message loop: how long one edit holds the server's loop, on big files.

Opens a Python file made of real standard-library modules (about 2 MB, and a 900 KB one that is
under the parse limit), then types keystrokes at random places; after each edit a status request
is sent and its round trip timed: the loop handles messages in order, so the round trip includes
whatever the edit held it for. Several binaries run side by side (for example before and after a
change). The server's own figure (`longestStallMs`, where the binary reports it) is shown too.
No model is loaded: the loop is measured alone. Prints a markdown table on stdout.

    python3 bench/loop_stall.py --lsp-binary OLD --lsp-binary NEW [--keystrokes 200]
"""

import argparse
import random
import time

import benchlib


def utf16_position(text, offset):
    line_start = text.rfind("\n", 0, offset) + 1
    return {"line": text.count("\n", 0, offset),
            "character": sum(2 if ord(c) > 0xFFFF else 1 for c in text[line_start:offset])}


def measure(binary, text, keystrokes, seed):
    client = benchlib.LspClient([binary, "--model", "/nonexistent/model.gguf"], log_name="loop-stall")
    client.initialize()
    uri = "file:///stall/big.py"
    started = time.monotonic()
    client.did_open(uri, text)
    client.server_status(timeout=600)
    open_s = time.monotonic() - started
    rng = random.Random(seed)
    rtts = []
    for version in range(2, keystrokes + 2):
        offset = rng.randrange(len(text))
        position = utf16_position(text, offset)
        text = text[:offset] + "x" + text[offset:]
        sent = time.monotonic()
        client.notify("textDocument/didChange", {"textDocument": {"uri": uri, "version": version},
                                                  "contentChanges": [{"range": {"start": position, "end": position},
                                                                      "text": "x"}]})
        status = client.server_status(timeout=600)
        rtts.append(time.monotonic() - sent)
    copy = client.request("workspace/executeCommand", {"command": "mistral-lsp.document", "arguments": [uri]}) \
        if "longestStallMs" in status else {"text": text}
    client.request("shutdown", None)
    client.notify("exit", None)
    benchlib.stop_process(client.proc)
    return {"open_s": open_s, "rtts": rtts, "server_ms": status.get("longestStallMs"),
            "same": copy.get("text") == text}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lsp-binary", action="append", required=True)
    parser.add_argument("--keystrokes", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rows = []
    for size in (2_000_000, 900_000):
        text = benchlib.python_corpus(size)
        for binary in args.lsp_binary:
            benchlib.log(f"{binary}: {len(text.encode()):,} bytes")
            result = measure(binary, text, args.keystrokes, args.seed)
            rtts = result["rtts"]
            server = result["server_ms"]
            rows.append([f"{len(text.encode()) / 1e6:.1f} MB", binary, f"{result['open_s'] * 1000:.0f}",
                         f"{benchlib.percentile(rtts, 50) * 1000:.1f}", f"{benchlib.percentile(rtts, 90) * 1000:.1f}",
                         f"{max(rtts) * 1000:.1f}", "n/a" if server is None else f"{server:.2f}",
                         "yes" if result["same"] else "NO"])
    print(benchlib.markdown_table(
        ["file", "binary", "open + first answer ms", "edit round trip p50 ms", "p90 ms", "max ms",
         "server's longest stall ms", "server's copy equal"], rows))
    print(f"\n{args.keystrokes} keystrokes at random places, each followed by a status request; seed {args.seed}")


if __name__ == "__main__":
    main()
