"""HumanEval infilling pass@1 of mistral-lsp (textDocument/inlineCompletion over stdio) next to
llama-server /infill, on the same model, threads and documents. Progress goes to stderr, the
markdown table to stdout, per-task records to --out.

    python3 bench/humaneval.py --systems lsp,llama-server [--sets single,multi,random] [--limit N]

Each task becomes a document and a cursor as an editor holds them (see
/work/shared/bench/humaneval-infilling/README.md): single- and multi-line holes are an empty line
(`prompt + "\\n" + suffix`), random spans are cut out (`prompt + suffix`); the cursor is at
`len(prompt)`. The first suggestion is applied and the task's tests run with a 10 s timeout."""

import argparse
import gzip
import json
import os
import sys
import tempfile
import time

import benchlib
from benchlib import fmt, log, markdown_table, percentile, share

DATA = os.environ.get("HUMANEVAL_INFILLING_DIR", "/work/shared/bench/humaneval-infilling")
SETS = {
    # name: (file, subset size, hole is an empty line)
    "single": ("HumanEval-SingleLineInfilling.jsonl.gz", 150, True),
    "multi": ("HumanEval-MultiLineInfilling.jsonl.gz", 100, True),
    "random": ("HumanEval-RandomSpanInfillingLight.jsonl.gz", 164, False),
}
SET_TITLES = {"single": "single-line", "multi": "multi-line", "random": "random-span"}
TEST_TIMEOUT_S = 10
REQUEST_TIMEOUT_S = 300
N_PREDICT = 128


def load_tasks(name):
    """The fixed subset of a set: tasks[int(i * len(tasks) / n)] for i in 0..n."""
    file, n, _ = SETS[name]
    with gzip.open(os.path.join(DATA, file), "rt", encoding="utf-8") as f:
        tasks = [json.loads(line) for line in f if line.strip()]
    n = min(n, len(tasks))
    return [tasks[int(i * len(tasks) / n)] for i in range(n)]


def document_and_cursor(name, task):
    if SETS[name][2]:
        return task["prompt"] + "\n" + task["suffix"], len(task["prompt"])
    return task["prompt"] + task["suffix"], len(task["prompt"])


def passes(document, task, workdir):
    """Runs the document with the task's tests; True if Python exits 0 within the timeout."""
    program = document + "\n\n" + task["test"] + "\ncheck(" + task["entry_point"] + ")\n"
    path = os.path.join(workdir, "candidate.py")
    with open(path, "w", encoding="utf-8") as f:
        f.write(program)
    return benchlib.run_python(path, TEST_TIMEOUT_S, workdir)


def first_line_only(document, start, end, text):
    """The document with only the first line of the suggestion inserted."""
    return document[:start] + text.split("\n", 1)[0] + document[end:]


def problem_of(task):
    """The HumanEval problem of a task: "SingleLineInfilling/HumanEval/0/L7" -> "HumanEval/0"."""
    parts = task["task_id"].split("/")
    return "/".join(parts[1:3]) if len(parts) >= 3 else task["task_id"]


def task_uri(name, task):
    return "file:///bench/humaneval/%s/%s.py" % (name, task["task_id"].replace("/", "_"))


class LspSystem:
    """mistral-lsp: didOpen, textDocument/inlineCompletion (Invoked), didClose.

    The server remembers code from documents it has seen (its ring of recent chunks, as
    llama.vim's) and offers it to the model as context. Tasks of one set can share a HumanEval
    problem with a different hole, so an earlier document may hold the very line now missing. A
    server therefore never sees two tasks of the same problem: it is restarted first."""

    name = "lsp"

    def __init__(self, args, binary, remote=None):
        self.args, self.binary, self.remote = args, binary, remote
        self.client = benchlib.start_lsp(args, binary, remote)
        self.problems_seen = set()

    def ask(self, set_name, task, document, cursor):
        problem = problem_of(task)
        if problem in self.problems_seen:
            self.client.close()
            self.client = benchlib.start_lsp(self.args, self.binary, self.remote)
            self.problems_seen.clear()
        self.problems_seen.add(problem)
        client = self.client
        uri = task_uri(set_name, task)
        client.did_open(uri, document)
        try:
            before = client.server_status()
            position = benchlib.offset_to_position(document, cursor, client.encoding)
            started = time.monotonic()
            error = None
            try:
                items = client.inline_completion(uri, position, trigger_kind=1, timeout=REQUEST_TIMEOUT_S)
            except (benchlib.LspError, TimeoutError) as err:
                items, error = [], str(err)
            latency = time.monotonic() - started
            after = client.server_status()
        finally:
            client.did_close(uri)
        answer = Answer("", cursor, cursor, latency, error)
        answer.evaluated_tokens = benchlib.counter_delta(before, after, "evaluatedTokens")
        answer.generated_tokens = benchlib.counter_delta(before, after, "generatedTokens")
        if items:
            _, answer.start, answer.end = benchlib.apply_item(document, cursor, items[0], client.encoding)
            answer.text = benchlib.item_text(items[0])
        return answer

    def close(self):
        self.client.close()


class LspRemoteSystem(benchlib.OnOwnServer, LspSystem):
    """mistral-lsp's pipeline on a llama-server of its own (`--remote`), same requests as `lsp`."""

    name = "lsp-remote"


class LlamaServerSystem:
    """llama-server /infill with the document's prefix and suffix, greedy, n_predict 128."""

    name = "llama-server"

    def __init__(self, args, binary):
        self.server = benchlib.LlamaServer(args)

    def ask(self, set_name, task, document, cursor):
        body = {
            "input_prefix": document[:cursor],
            "input_suffix": document[cursor:],
            "n_predict": N_PREDICT,
            "cache_prompt": True,
            "stream": False,
            **benchlib.LLAMA_GREEDY,
        }
        started = time.monotonic()
        error = None
        try:
            reply = self.server.post("/infill", body, timeout=REQUEST_TIMEOUT_S)
        except (OSError, RuntimeError, ValueError) as err:
            reply, error = {}, str(err)
        answer = Answer(reply.get("content", ""), cursor, cursor, time.monotonic() - started, error)
        timings = reply.get("timings") or {}
        answer.evaluated_tokens = timings.get("prompt_n")
        answer.generated_tokens = timings.get("predicted_n")
        return answer

    def close(self):
        self.server.close()


class Answer:
    """A suggestion replacing document[start:end], with how long it took."""

    def __init__(self, text, start, end, latency, error):
        self.text, self.start, self.end, self.latency, self.error = text, start, end, latency, error
        self.evaluated_tokens = self.generated_tokens = None


SYSTEMS = {"lsp": LspSystem, "lsp-remote": LspRemoteSystem, "llama-server": LlamaServerSystem}


def run_set(systems, name, tasks, args, lsp_binary, records, workdir, checkpoint):
    """Starts every system, then asks each in turn for each task, so that all of them meet the
    same background load on a shared machine."""
    log(f"bench: {SET_TITLES[name]}: {len(tasks)} tasks, systems {', '.join(systems)}")
    running = []
    try:
        for system in systems:
            running.append(SYSTEMS[system](args, lsp_binary))
        for i, task in enumerate(tasks):
            document, cursor = document_and_cursor(name, task)
            for system in running:
                answer = system.ask(name, task, document, cursor)
                text = answer.text
                empty = not text.strip()
                passed = passes(document[:answer.start] + text + document[answer.end:], task, workdir)
                passed_first = passed if "\n" not in text else passes(
                    first_line_only(document, answer.start, answer.end, text), task, workdir)
                records.append({
                    "system": system.name, "set": name, "task_id": task["task_id"], "passed": passed,
                    "passed_first_line": passed_first, "empty": empty, "latency_s": round(answer.latency, 4),
                    "evaluated_tokens": answer.evaluated_tokens, "generated_tokens": answer.generated_tokens,
                    "load1": round(os.getloadavg()[0], 2), "suggestion": text,
                    "replaced": [answer.start - cursor, answer.end - cursor],
                    "expected": task["canonical_solution"], "error": answer.error,
                })
                mark = "pass" if passed else ("empty" if empty else "fail")
                log(f"  [{system.name} {name} {i + 1}/{len(tasks)}] {task['task_id']}: {mark} {answer.latency:.2f}s"
                    + (f" error: {answer.error}" if answer.error else ""))
            if (i + 1) % 10 == 0:
                checkpoint()
    finally:
        for system in running:
            system.close()


def summarize(records, systems, sets):
    rows = []
    for name in sets:
        for system in systems:
            rs = [r for r in records if r["system"] == system and r["set"] == name]
            if not rs:
                continue
            latencies = [r["latency_s"] for r in rs]
            rows.append([
                SET_TITLES[name], system, len(rs),
                fmt(share(r["passed"] for r in rs)),
                fmt(share(r["passed_first_line"] for r in rs)),
                fmt(share(r["empty"] for r in rs)),
                fmt(percentile(latencies, 50), 2),
                fmt(percentile(latencies, 90), 2),
                fmt(benchlib.mean(r.get("evaluated_tokens") for r in rs), 0),
                fmt(benchlib.mean(r.get("generated_tokens") for r in rs), 0),
                sum(1 for r in rs if r["error"]),
            ])
    header = ["set", "system", "n", "pass@1", "pass@1 first line", "empty", "p50 s", "p90 s",
              "tokens evaluated (mean)", "tokens generated (mean)", "errors"]
    return markdown_table(header, rows)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    benchlib.add_common_arguments(parser)
    parser.add_argument("--sets", default="single,multi,random", help="comma-separated: single, multi, random")
    parser.add_argument("--limit", type=int, help="only the first N tasks of each subset (quick runs)")
    parser.add_argument("--tasks", help="only these task ids (comma-separated, e.g. RandomSpanInfilling/HumanEval/3/1)")
    args = parser.parse_args()
    systems = benchlib.parse_systems(args.systems)
    sets = [s.strip() for s in args.sets.split(",") if s.strip()]
    for name in sets:
        if name not in SETS:
            sys.exit(f"bench: unknown set {name!r}; use single, multi, random")
    if args.report:
        records, metas = benchlib.load_reports(args.report)
        for meta in metas:
            print(f"- {benchlib.describe_source(meta)}; {meta['date']}; {meta.get('elapsed_s')} s")
        print()
        print(summarize(records, systems, [s for s in SETS if any(r["set"] == s for r in records)]))
        return
    benchlib.check_inputs(args, systems)
    uses_lsp = {"lsp", "lsp-remote"} & set(systems)
    lsp_binary, lsp_info = benchlib.snapshot_binary(args.lsp_binary) if uses_lsp else (None, None)
    out = args.out or benchlib.default_results_path("humaneval")
    meta = benchlib.run_metadata(args, lsp_info)
    meta.update({"benchmark": "humaneval-infilling", "n_predict_llama_server": N_PREDICT, "limit": args.limit, "tasks": args.tasks})
    records = []
    started = time.monotonic()

    def checkpoint():
        meta["elapsed_s"] = round(time.monotonic() - started)
        benchlib.write_results(out, {"meta": meta, "records": records})

    try:
        with tempfile.TemporaryDirectory(prefix="bench-humaneval-") as workdir:
            for name in sets:
                tasks = load_tasks(name)[: args.limit] if args.limit else load_tasks(name)
                if args.tasks:
                    wanted = {x.strip() for x in args.tasks.split(",")}
                    tasks = [task for task in tasks if task["task_id"] in wanted]
                run_set(systems, name, tasks, args, lsp_binary, records, workdir, checkpoint)
                checkpoint()
    finally:
        if lsp_binary:
            os.remove(lsp_binary)
    meta["elapsed_s"] = round(time.monotonic() - started)
    table = summarize(records, systems, sets)
    benchlib.write_results(out, {"meta": meta, "records": records, "table": table})
    print(f"HumanEval infilling, {meta['model']}, {args.threads} threads, -c {args.context_size}; "
          f"{benchlib.describe_source(meta)}; {meta['date']}; {meta['elapsed_s']} s\n")
    print(table)
    log(f"bench: records in {os.path.relpath(out, benchlib.REPO)}")


if __name__ == "__main__":
    main()
