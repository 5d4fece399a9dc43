"""Team load: several developers, each with their own mistral-lsp, type at the same time against
one shared llama-server; per-user latency next to one user alone on the same server, and the
prompt tokens the server evaluates per request. Not part of `cargo test`.

    python3 bench/team_load.py [--users 8] [--slots 4] [--limit 40] [--chars-per-second 10]

Each user types one of typing_replay.py's functions (user i the (i mod 8)-th) into their own
document, a word at a time, with automatic requests (as typing_replay.py does). First one user
types every user's function in turn, alone on the server; then all users type at once, each in a
thread with a mistral-lsp process of its own (`--remote`). llama-server runs with `-np SLOTS`
and `-c SLOTS x --context-size`, so that each slot holds --context-size tokens. Progress goes to
stderr, the markdown table to stdout, records to --out."""

import argparse
import threading
import time

import benchlib
import typing_replay
from benchlib import fmt, log, markdown_table, percentile


class User:
    """One developer: a mistral-lsp process on the shared server, typing one function."""

    def __init__(self, index, args, binary, url):
        self.index = index
        self.module, self.function = typing_replay.FUNCTIONS[index % len(typing_replay.FUNCTIONS)]
        self.typer = typing_replay.LspTyper(args, binary, remote=url)
        self.records = []

    def type(self, args, phase):
        document, cursor, text = typing_replay.load_function(self.module, self.function)
        pieces = typing_replay.chunks(text)[: args.limit]
        uri = f"file:///bench/team/user{self.index}/{self.module}.py"
        self.typer.open(uri, document, cursor)
        typed = 0
        for chunk in pieces:
            if args.chars_per_second:
                time.sleep(len(chunk) / args.chars_per_second)
            typed += len(chunk)
            step = self.typer.type_and_ask(chunk)
            self.records.append({
                "phase": phase, "user": self.index, "function": f"{self.module}.{self.function}",
                "latency_s": round(step.latency, 4), "evaluated_tokens": step.evaluated_tokens,
                "right": typing_replay.is_right(step.shown, text[typed:]), "error": step.error,
            })
        self.typer.close_document()

    def close(self):
        self.typer.close()


def summarize(records, users):
    rows = []
    for phase, title in [("alone", "one user alone"), ("team", f"{users} users at once")]:
        rs = [r for r in records if r["phase"] == phase]
        latencies = [r["latency_s"] for r in rs]
        tokens = [r["evaluated_tokens"] for r in rs if r.get("evaluated_tokens") is not None]
        per_user = [percentile([r["latency_s"] for r in rs if r["user"] == u], 50) for u in range(users)]
        per_user = [p for p in per_user if p is not None]
        rows.append([
            title, len(rs), fmt(percentile(latencies, 50), 2), fmt(percentile(latencies, 90), 2),
            fmt(max(per_user) if per_user else None, 2), fmt(benchlib.mean(tokens), 1),
            fmt(benchlib.share(r["right"] for r in rs), 3), sum(1 for r in rs if r["error"]),
        ])
    return markdown_table(["", "requests", "latency p50 (s)", "latency p90 (s)", "worst user's p50 (s)",
                           "prompt tokens evaluated per request (mean)", "right (first line)", "errors"], rows)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    benchlib.add_common_arguments(parser)
    parser.add_argument("--users", type=int, default=8, help="developers typing at once (default 8)")
    parser.add_argument("--slots", type=int, default=4, help="llama-server's parallel slots, -np (default 4)")
    parser.add_argument("--limit", type=int, default=40, help="chunks each user types (default 40)")
    parser.add_argument("--chars-per-second", type=float, default=10.0,
                        help="typing pace of every user (default 10; 0 types the next chunk at once)")
    args = parser.parse_args()
    args.llama_server_arg += ["-np", str(args.slots)]
    benchlib.check_inputs(args, ["lsp-remote"])
    binary, lsp_info = benchlib.snapshot_binary(args.lsp_binary)
    slot_context = args.context_size
    args.context_size = slot_context * args.slots
    out = args.out or benchlib.default_results_path("team-load")
    meta = benchlib.run_metadata(args, lsp_info)
    meta.update({"benchmark": "team-load", "users": args.users, "slots": args.slots, "limit": args.limit,
                 "chars_per_second": args.chars_per_second, "slot_context": slot_context})
    records = []
    started = time.monotonic()
    server = benchlib.LlamaServer(args)
    try:
        alone = User(0, args, binary, server.url())
        try:
            for index in range(args.users):
                alone.module, alone.function = typing_replay.FUNCTIONS[index % len(typing_replay.FUNCTIONS)]
                alone.index = index
                log(f"bench: alone, {alone.module}.{alone.function}")
                alone.type(args, "alone")
        finally:
            alone.close()
        records += alone.records
        users = [User(index, args, binary, server.url()) for index in range(args.users)]
        try:
            log(f"bench: {args.users} users at once")
            threads = [threading.Thread(target=user.type, args=(args, "team")) for user in users]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        finally:
            for user in users:
                user.close()
                records += user.records
    finally:
        server.close()
        meta["elapsed_s"] = round(time.monotonic() - started)
        benchlib.write_results(out, {"meta": meta, "records": records})
    print(summarize(records, args.users))
    log(f"bench: records in {out}")


if __name__ == "__main__":
    main()
