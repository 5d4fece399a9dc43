"""Typing replay: latency and usefulness of automatic completions while a user types real code.
Eight functions of the installed CPython's standard library are typed back into their own module
a word at a time; after each word the editor asks for a completion and waits. mistral-lsp gets
didChange + textDocument/inlineCompletion (triggerKind 2, Automatic); llama-server gets llama.vim's
/infill request. Progress goes to stderr, the markdown table to stdout, records to --out.

    python3 bench/typing_replay.py --systems lsp,llama-server [--functions N]

Document: the module's source with the whole function (from its `def` line) replaced by an empty
line; the cursor starts on that line. Chunks: the function's text is cut after every run of word
characters (regex `\\w+`) and after every newline, so a chunk is the punctuation, spaces or
indentation before a word plus the word ("    maxc", " = max", "(r"), or the rest of a line with
its newline ("):\\n"). One request per chunk, after the chunk is typed.

Typing pace (`--chars-per-second`, default 0 = none): before each chunk the replay waits as long
as typing it takes at that pace. A server may work in the background meanwhile (mistral-lsp's
`completion.precompute`); with 0 the next chunk follows the answer at once.

"Right": the suggestion's first line (as inserted at the cursor) equals the rest of the line the
user is about to type, both without trailing whitespace. Where the rest of the line is empty (the
cursor at a line end), right means the suggestion's first line is empty or blank and the
suggestion has something on a later line."""

import argparse
import ast
import importlib
import inspect
import os
import re
import statistics
import time

import benchlib
from benchlib import fmt, log, markdown_table, percentile, share

# Eight module-level functions of 10-40 lines, two per module, fixed by name so the set is stable
# (the text is whatever the running Python ships; the Python version is stored with results).
FUNCTIONS = [
    ("posixpath", "split"),
    ("posixpath", "abspath"),
    ("shlex", "split"),
    ("shlex", "quote"),
    ("glob", "_lexists"),
    ("glob", "_isdir"),
    ("tempfile", "_get_candidate_names"),
    ("tempfile", "_gettempdir"),
]
REQUEST_TIMEOUT_S = 120
N_PREDICT = 128
# llama.vim's defaults: lines of prefix and suffix, and its time budget after the first newline.
N_PREFIX_LINES = 256
N_SUFFIX_LINES = 64
T_MAX_PREDICT_MS = 1000
T_MAX_PREDICT_MS_FIRST = 250


def load_function(module_name, function_name):
    """(document with the function replaced by an empty line, cursor offset, function text)."""
    module = importlib.import_module(module_name)
    path = inspect.getsourcefile(module)
    with open(path, encoding="utf-8") as f:
        source = f.read()
    for node in ast.parse(source).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == function_name:
            break
    else:
        raise SystemExit(f"bench: {module_name}.{function_name} is not a module-level function in {path}")
    lines = source.splitlines(keepends=True)
    first = min([node.lineno] + [d.lineno for d in node.decorator_list]) - 1
    before, body, after = "".join(lines[:first]), "".join(lines[first:node.end_lineno]), "".join(lines[node.end_lineno:])
    text = body[:-1] if body.endswith("\n") else body
    return before + "\n" + after, len(before), text


def chunks(text):
    """The function text cut after every `\\w+` run and after every newline."""
    ends = {m.end() for m in re.finditer(r"\w+", text)}
    ends |= {i + 1 for i, c in enumerate(text) if c == "\n"}
    ends.add(len(text))
    out, previous = [], 0
    for end in sorted(ends):
        if end > previous:
            out.append(text[previous:end])
            previous = end
    return out


def is_right(suggestion, remaining):
    """Whether the suggestion's first line is the rest of the line still to be typed."""
    if suggestion is None:
        return False
    expected = remaining.split("\n", 1)[0].rstrip()
    got = suggestion.split("\n", 1)[0].rstrip()
    if expected == "":
        return got.strip() == "" and suggestion.strip() != ""
    return got == expected


def llama_vim_request(document, cursor, first):
    """llama.vim's /infill request at the cursor (its default n_prefix 256 and n_suffix 64)."""
    lines = document.split("\n")
    line_no = document.count("\n", 0, cursor)
    column = cursor - (document.rfind("\n", 0, cursor) + 1)
    line = lines[line_no]
    prefix_lines = lines[max(0, line_no - N_PREFIX_LINES):line_no]
    suffix_lines = lines[line_no + 1:line_no + 1 + N_SUFFIX_LINES]
    line_prefix = line[:column]
    return {
        "input_prefix": "\n".join(prefix_lines) + "\n",
        "input_suffix": line[column:] + "\n" + "\n".join(suffix_lines) + "\n",
        "input_extra": [],
        "prompt": line_prefix,
        "n_predict": N_PREDICT,
        "n_indent": len(line_prefix) - len(line_prefix.lstrip(" \t")),
        "cache_prompt": True,
        "stream": False,
        "t_max_predict_ms": T_MAX_PREDICT_MS_FIRST if first else T_MAX_PREDICT_MS,
        **benchlib.LLAMA_GREEDY,
    }


class Step:
    """One request while typing: the suggestion as sent and as it reads from the cursor."""

    def __init__(self, raw, shown, latency, error):
        self.raw, self.shown, self.latency, self.error = raw, shown, latency, error
        self.evaluated_tokens = self.generated_tokens = None
        self.drafted_tokens = self.accepted_tokens = None


class LspTyper:
    """Types into mistral-lsp: incremental didChange, then an automatic inline completion."""

    name = "lsp"

    def __init__(self, args, binary, remote=None):
        self.client = benchlib.start_lsp(args, binary, remote)

    def open(self, uri, document, cursor):
        self.uri, self.document, self.cursor, self.version = uri, document, cursor, 1
        self.client.did_open(uri, document, version=self.version)

    def type_and_ask(self, chunk):
        client = self.client
        before = client.server_status()
        position = benchlib.offset_to_position(self.document, self.cursor, client.encoding)
        self.version += 1
        client.notify("textDocument/didChange", {
            "textDocument": {"uri": self.uri, "version": self.version},
            "contentChanges": [{"range": {"start": position, "end": position}, "text": chunk}],
        })
        self.document = self.document[:self.cursor] + chunk + self.document[self.cursor:]
        self.cursor += len(chunk)
        position = benchlib.offset_to_position(self.document, self.cursor, client.encoding)
        started = time.monotonic()
        error = None
        try:
            items = client.inline_completion(self.uri, position, trigger_kind=2, timeout=REQUEST_TIMEOUT_S)
        except (benchlib.LspError, TimeoutError) as err:
            items, error = [], str(err)
        latency = time.monotonic() - started
        after = client.server_status()
        raw = benchlib.item_text(items[0]) if items else ""
        shown = benchlib.text_after_cursor(self.document, self.cursor, items[0], client.encoding) if items else ""
        step = Step(raw, shown, latency, error)
        step.evaluated_tokens = benchlib.counter_delta(before, after, "evaluatedTokens")
        step.generated_tokens = benchlib.counter_delta(before, after, "generatedTokens")
        step.drafted_tokens = benchlib.counter_delta(before, after, "draftedTokens")
        step.accepted_tokens = benchlib.counter_delta(before, after, "acceptedTokens")
        return step

    def close_document(self):
        self.client.did_close(self.uri)

    def close(self):
        self.client.close()


class LspRemoteTyper(benchlib.OnOwnServer, LspTyper):
    """Types into mistral-lsp running on a llama-server of its own (`--remote`)."""

    name = "lsp-remote"


class LlamaServerTyper:
    """Types for llama-server: the document stays here; each step sends llama.vim's request."""

    name = "llama-server"

    def __init__(self, args, binary):
        self.server = benchlib.LlamaServer(args)
        self.first = True

    def open(self, uri, document, cursor):
        self.document, self.cursor = document, cursor

    def type_and_ask(self, chunk):
        self.document = self.document[:self.cursor] + chunk + self.document[self.cursor:]
        self.cursor += len(chunk)
        body = llama_vim_request(self.document, self.cursor, self.first)
        self.first = False
        started = time.monotonic()
        error = None
        try:
            answer = self.server.post("/infill", body, timeout=REQUEST_TIMEOUT_S)
        except (OSError, RuntimeError, ValueError) as err:
            answer, error = {}, str(err)
        text = answer.get("content", "")
        step = Step(text, text, time.monotonic() - started, error)
        timings = answer.get("timings") or {}
        step.evaluated_tokens = timings.get("prompt_n")
        step.generated_tokens = timings.get("predicted_n")
        return step

    def close_document(self):
        pass

    def close(self):
        self.server.close()


TYPERS = {"lsp": LspTyper, "lsp-remote": LspRemoteTyper, "llama-server": LlamaServerTyper}


def replay(systems, functions, args, lsp_binary, records, checkpoint, limit=None):
    """Starts every system, then types each chunk into all of them in turn, so that all of them
    meet the same background load on a shared machine."""
    typers = []
    try:
        for system in systems:
            typers.append(TYPERS[system](args, lsp_binary))
        for module_name, function_name in functions:
            document, cursor, text = load_function(module_name, function_name)
            pieces = chunks(text)
            name = f"{module_name}.{function_name}"
            uri = f"file:///bench/typing/{module_name.replace('.', '/')}.py"
            log(f"bench: typing {name}: {len(pieces)} chunks")
            for typer in typers:
                typer.open(uri, document, cursor)
            typed = 0
            for index, chunk in enumerate(pieces[:limit] if limit else pieces):
                if args.chars_per_second:
                    time.sleep(len(chunk) / args.chars_per_second)
                typed += len(chunk)
                remaining = text[typed:]
                for typer in typers:
                    step = typer.type_and_ask(chunk)
                    right = is_right(step.shown, remaining)
                    records.append({
                        "system": typer.name, "function": name, "step": index, "chunk": chunk,
                        "expected_line": remaining.split("\n", 1)[0], "suggestion": step.raw,
                        "has_suggestion": bool(step.raw.strip()), "right": right,
                        "latency_s": round(step.latency, 4), "evaluated_tokens": step.evaluated_tokens,
                        "generated_tokens": step.generated_tokens, "drafted_tokens": step.drafted_tokens,
                        "accepted_tokens": step.accepted_tokens, "load1": round(os.getloadavg()[0], 2),
                        "error": step.error,
                    })
                    verdict = "right" if right else ("shown" if step.raw.strip() else "empty")
                    log(f"  [{typer.name} {name} {index + 1}/{len(pieces)}] {step.latency:.2f}s {verdict} "
                        f"evaluated={step.evaluated_tokens}" + (f" error: {step.error}" if step.error else ""))
            for typer in typers:
                typer.close_document()
            checkpoint()
    finally:
        for typer in typers:
            typer.close()


def percent(flags):
    value = share(flags)
    return fmt(None if value is None else 100 * value, 1, "%")


def summarize(records, systems):
    columns = {}
    for system in systems:
        rs = [r for r in records if r["system"] == system]
        latencies = [r["latency_s"] for r in rs]
        tokens = [r["evaluated_tokens"] for r in rs if r.get("evaluated_tokens") is not None]
        with_suggestion = [r for r in rs if r["has_suggestion"]]
        columns[system] = [
            len(rs),
            fmt(percentile(latencies, 50), 2),
            fmt(percentile(latencies, 90), 2),
            percent(r["has_suggestion"] for r in rs),
            percent(r["right"] for r in rs),
            percent(r["right"] for r in with_suggestion),
            fmt(benchlib.mean(tokens), 1),
            fmt(statistics.median(tokens) if tokens else None, 1),
            fmt(benchlib.mean(r.get("generated_tokens") for r in rs), 1),
            drafts(rs),
            sum(1 for r in rs if r["error"]),
        ]
    names = ["requests", "latency p50 (s)", "latency p90 (s)", "with a suggestion", "right (first line)",
             "right among suggestions", "tokens evaluated, mean", "tokens evaluated, median",
             "tokens generated, mean", "drafted tokens accepted", "errors"]
    rows = [[name] + [columns[s][i] for s in systems] for i, name in enumerate(names)]
    return markdown_table([""] + systems, rows)


def drafts(records):
    """Prompt-lookup drafts over the run: accepted of drafted, where the server counts them."""
    drafted = sum(r.get("drafted_tokens") or 0 for r in records)
    accepted = sum(r.get("accepted_tokens") or 0 for r in records)
    return f"{accepted} / {drafted}" if drafted else "-"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    benchlib.add_common_arguments(parser)
    parser.add_argument("--functions", type=int, help="only the first N of the 8 functions (quick runs)")
    parser.add_argument("--limit", type=int, help="only the first N chunks of each function (quick runs)")
    parser.add_argument("--chars-per-second", type=float, default=0.0,
                        help="typing pace: wait len(chunk)/N seconds before each chunk (default 0, no wait)")
    args = parser.parse_args()
    systems = benchlib.parse_systems(args.systems)
    if args.report:
        records, metas = benchlib.load_reports(args.report)
        for meta in metas:
            print(f"- {benchlib.describe_source(meta)}; {meta['date']}; {meta.get('elapsed_s')} s")
        print()
        print(summarize(records, [s for s in systems if any(r["system"] == s for r in records)]))
        return
    benchlib.check_inputs(args, systems)
    functions = FUNCTIONS[: args.functions] if args.functions else FUNCTIONS
    uses_lsp = {"lsp", "lsp-remote"} & set(systems)
    lsp_binary, lsp_info = benchlib.snapshot_binary(args.lsp_binary) if uses_lsp else (None, None)
    out = args.out or benchlib.default_results_path("typing-replay")
    meta = benchlib.run_metadata(args, lsp_info)
    meta.update({"benchmark": "typing-replay", "functions": [f"{m}.{f}" for m, f in functions],
                 "limit": args.limit, "chars_per_second": args.chars_per_second, "lsp_args": args.lsp_arg})
    records = []
    started = time.monotonic()

    def checkpoint():
        meta["elapsed_s"] = round(time.monotonic() - started)
        benchlib.write_results(out, {"meta": meta, "records": records})

    try:
        replay(systems, functions, args, lsp_binary, records, checkpoint, args.limit)
    finally:
        if lsp_binary:
            os.remove(lsp_binary)
    meta["elapsed_s"] = round(time.monotonic() - started)
    table = summarize(records, systems)
    benchlib.write_results(out, {"meta": meta, "records": records, "table": table})
    print(f"Typing replay, {len(functions)} functions, {meta['model']}, {args.threads} threads, "
          f"-c {args.context_size}; {benchlib.describe_source(meta)}; {meta['date']}; {meta['elapsed_s']} s; "
          f"typing pace {args.chars_per_second or 'none'} chars/s; mistral-lsp args {args.lsp_arg or 'none'}\n")
    print(table)
    log(f"bench: records in {os.path.relpath(out, benchlib.REPO)}")


if __name__ == "__main__":
    main()
