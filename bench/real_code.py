"""Completions on real code: holes cut in real files installed on this machine (Python modules of
installed packages, Rust sources of crates in the cargo registry), mistral-lsp (automatic and
invoked requests) next to llama-server /infill given the same document and cursor. Progress goes
to stderr, the markdown table to stdout, per-case records to --out.

    python3 bench/real_code.py [--systems lsp,llama-server] [--languages python,rust]
        [--splits tune,holdout] [--shapes line,rest,block] [--per-cell 10] [--seed 1]

Files: every `.py` file of 150-3000 lines in the packages of PYTHON_PACKAGES (as installed, from
their own directories) and every `.rs` file of 150-3000 lines under the `src/` of RUST_CRATES (the
newest version of each in ~/.cargo/registry/src). None of them is CPython's standard library,
which the typing replay uses, nor HumanEval. A file belongs to the `holdout` split when the first
byte of the SHA-1 of its path within its package is odd, else to `tune`: rules may be studied on
`tune` cases only; `holdout` is only ever measured.

Shapes (a seeded random line of a random file; lines of fewer than 4 characters are skipped):
- `line`: the whole line removed; the cursor after its indentation, which stays; right = the
  suggestion's first line is the line's text;
- `rest`: the line cut after a word or a punctuation mark in its middle; the cursor at the cut;
  right = the suggestion's first line is the rest of the line;
- `block`: the body of a block (the lines after a line ending in `:` or `{`, indented deeper,
  2 to 8 of them) removed, leaving one empty line with the cursor at its start; right (first
  line) = the suggestion's first line is the body's first line, indentation included; whole =
  the suggestion is the whole body (trailing whitespace and blank lines aside).
Comparisons ignore trailing whitespace. Similarity is difflib's ratio of the first lines.

Each file is used once per run (a system never sees the file of an earlier case, so the
server's memory of documents it has seen cannot hold the missing text). Systems:
`lsp` is mistral-lsp asked with triggerKind 2 (Automatic) and `lsp-invoked` with triggerKind 1
(Invoked), each on a server of its own, after didOpen; `llama-server` gets llama.vim's /infill
request for a newly opened file (its default 256 lines before and 64 after the cursor, the
cursor's line split at the cursor, n_predict 128, greedy; see typing_replay.py), which is how
llama.vim's users meet the raw server."""

import argparse
import difflib
import glob
import hashlib
import importlib.util
import os
import random
import re
import sys
import time

import benchlib
from benchlib import fmt, log, markdown_table, percentile, share
from typing_replay import llama_vim_request

PYTHON_PACKAGES = ["click", "flask", "jinja2", "attr", "docutils", "idna", "jsonschema", "jedi", "werkzeug",
                   "botocore", "cryptography", "pygments", "requests", "urllib3", "yaml"]
# Crates that Cargo.lock pins, so `cargo fetch` brings the same files to every machine.
RUST_CRATES = ["ropey", "serde_json", "regex-syntax", "tokio", "hyper", "reqwest", "tree-sitter", "itertools",
               "rustls", "nom", "url", "tracing-subscriber", "serde", "bytes", "mio", "http"]
MIN_LINES, MAX_LINES = 150, 3000
REQUEST_TIMEOUT_S = 300
LANGUAGE_IDS = {"python": "python", "rust": "rust"}


def python_files():
    """(package, path within it, absolute path) of the Python pool."""
    files = []
    for name in PYTHON_PACKAGES:
        spec = importlib.util.find_spec(name)
        if not spec or not spec.submodule_search_locations:
            log(f"bench: Python package {name} is not installed; skipped")
            continue
        root = list(spec.submodule_search_locations)[0]
        for path in sorted(glob.glob(os.path.join(root, "**", "*.py"), recursive=True)):
            files.append((name, os.path.relpath(path, root), path))
    return files


def rust_files():
    """(crate, path within it, absolute path) of the Rust pool: the newest version of each crate."""
    registry = os.path.join(os.environ.get("CARGO_HOME", os.path.expanduser("~/.cargo")), "registry", "src")
    files = []
    for name in RUST_CRATES:
        versions = glob.glob(os.path.join(registry, "*", f"{name}-[0-9]*"))
        versions = [v for v in versions if re.fullmatch(re.escape(name) + r"-\d+\.\d+\.\d+", os.path.basename(v))]
        if not versions:
            log(f"bench: crate {name} is not in the cargo registry; skipped")
            continue
        root = max(versions, key=lambda v: [int(x) for x in os.path.basename(v)[len(name) + 1:].split(".")])
        for path in sorted(glob.glob(os.path.join(root, "src", "**", "*.rs"), recursive=True)):
            files.append((os.path.basename(root), os.path.relpath(path, root), path))
    return files


def split_of(package, relpath):
    digest = hashlib.sha1(f"{package.split('-')[0]}/{relpath}".encode()).digest()
    return "holdout" if digest[0] % 2 else "tune"


def read_lines(path):
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError):
        return None
    lines = text.split("\n")
    return lines if MIN_LINES <= len(lines) <= MAX_LINES else None


def indentation(line):
    return line[:len(line) - len(line.lstrip())]


def cut_line(lines, rng):
    i = rng.randrange(5, len(lines) - 5)
    line = lines[i]
    if len(line.strip()) < 4:
        return None
    indent = indentation(line)
    document = "\n".join(lines[:i] + [indent] + lines[i + 1:])
    cursor = sum(len(x) + 1 for x in lines[:i]) + len(indent)
    return document, cursor, line[len(indent):].rstrip()


def cut_rest(lines, rng):
    i = rng.randrange(5, len(lines) - 5)
    line = lines[i].rstrip()
    indent = indentation(line)
    body = line[len(indent):]
    if len(body) < 12:
        return None
    # After a word or a punctuation mark, leaving at least 3 characters on either side.
    cuts = [len(indent) + m.end() for m in re.finditer(r"\w+|[^\w\s]", body)]
    cuts = [c for c in cuts if len(indent) + 3 <= c <= len(line) - 3]
    if not cuts:
        return None
    cut = rng.choice(cuts)
    document = "\n".join(lines[:i] + [line[:cut]] + lines[i + 1:])
    cursor = sum(len(x) + 1 for x in lines[:i]) + cut
    return document, cursor, line[cut:]


def cut_block(lines, rng, language):
    opener = ":" if language == "python" else "{"
    headers = [i for i in range(5, len(lines) - 12) if lines[i].rstrip().endswith(opener)
               and not lines[i].lstrip().startswith(("#", "//"))]
    if not headers:
        return None
    i = rng.choice(headers)
    depth = len(indentation(lines[i]))
    j = i + 1
    while j < len(lines) and (not lines[j].strip() or len(indentation(lines[j])) > depth):
        j += 1
    while j > i + 1 and not lines[j - 1].strip():
        j -= 1
    body = lines[i + 1:j]
    if not 2 <= len(body) <= 8:
        return None
    document = "\n".join(lines[:i + 1] + [""] + lines[j:])
    cursor = sum(len(x) + 1 for x in lines[:i + 1])
    return document, cursor, "\n".join(x.rstrip() for x in body)


def make_cases(languages, splits, shapes, per_cell, seed):
    """Cases per (language, split, shape), each from a file no other case uses."""
    rng = random.Random(seed)
    cases = []
    for language in languages:
        pool = python_files() if language == "python" else rust_files()
        for split in splits:
            files = [f for f in pool if split_of(f[0], f[1]) == split]
            rng.shuffle(files)
            wanted = {shape: per_cell for shape in shapes}
            for package, relpath, path in files:
                if not any(wanted.values()):
                    break
                lines = read_lines(path)
                if not lines:
                    continue
                for shape in sorted(wanted, key=lambda s: -wanted[s]):
                    if not wanted[shape]:
                        continue
                    cut = None
                    for _ in range(20):
                        cut = (cut_line(lines, rng) if shape == "line" else cut_rest(lines, rng) if shape == "rest"
                               else cut_block(lines, rng, language))
                        if cut:
                            break
                    if cut:
                        document, cursor, expected = cut
                        cases.append({"language": language, "split": split, "shape": shape,
                                      "file": f"{package}/{relpath}", "document": document, "cursor": cursor,
                                      "expected": expected})
                        wanted[shape] -= 1
                        break
            if any(wanted.values()):
                log(f"bench: {language} {split}: too few files for {wanted}")
    return cases


def first_line(text):
    return (text or "").split("\n", 1)[0].rstrip()


def same_block(suggestion, expected):
    def normal(text):
        return "\n".join(line.rstrip() for line in (text or "").split("\n")).strip("\n")
    return normal(suggestion) == normal(expected)


class LspSystem:
    """mistral-lsp, one server, asked with one trigger kind after didOpen; didClose after."""

    def __init__(self, args, binary, name, trigger_kind):
        self.name, self.trigger_kind = name, trigger_kind
        self.client = benchlib.start_lsp(args, binary)

    def ask(self, case, index):
        client = self.client
        language = case["language"]
        suffix = ".py" if language == "python" else ".rs"
        uri = f"file:///bench/real/{index}/{os.path.basename(case['file']).rsplit('.', 1)[0]}{suffix}"
        client.did_open(uri, case["document"], language_id=LANGUAGE_IDS[language])
        try:
            position = benchlib.offset_to_position(case["document"], case["cursor"], client.encoding)
            started = time.monotonic()
            error = None
            try:
                items = client.inline_completion(uri, position, self.trigger_kind, timeout=REQUEST_TIMEOUT_S)
            except (benchlib.LspError, TimeoutError) as err:
                items, error = [], str(err)
            latency = time.monotonic() - started
        finally:
            client.did_close(uri)
        text = benchlib.text_after_cursor(case["document"], case["cursor"], items[0], client.encoding) if items else ""
        return text or "", latency, error

    def close(self):
        self.client.close()


class LlamaServerSystem:
    name = "llama-server"

    def __init__(self, args, binary):
        self.server = benchlib.LlamaServer(args)

    def ask(self, case, index):
        body = llama_vim_request(case["document"], case["cursor"], first=False)
        started = time.monotonic()
        error = None
        try:
            reply = self.server.post("/infill", body, timeout=REQUEST_TIMEOUT_S)
        except (OSError, RuntimeError, ValueError) as err:
            reply, error = {}, str(err)
        return reply.get("content", ""), time.monotonic() - started, error

    def close(self):
        self.server.close()


def start_systems(systems, args, binary):
    running = []
    for system in systems:
        if system == "lsp":
            running.append(LspSystem(args, binary, "lsp", 2))
            running.append(LspSystem(args, binary, "lsp-invoked", 1))
        elif system == "llama-server":
            running.append(LlamaServerSystem(args, binary))
        else:
            sys.exit(f"bench: real_code runs lsp and llama-server, not {system}")
    return running


def score(case, text):
    expected = case["expected"]
    got = first_line(text)
    want = first_line(expected)
    return {
        "right_first_line": got == want,
        "similarity": round(difflib.SequenceMatcher(None, got, want).ratio(), 4),
        "whole_right": same_block(text, expected) if case["shape"] == "block" else None,
        "empty": not (text or "").strip(),
    }


def summarize(records):
    names = []
    for r in records:
        if r["system"] not in names:
            names.append(r["system"])
    rows = []
    cells = sorted({(r["language"], r["split"], r["shape"]) for r in records},
                   key=lambda c: (c[0], c[1] != "holdout", ["line", "rest", "block"].index(c[2])))
    for language, split, shape in cells:
        for name in names:
            rs = [r for r in records if (r["language"], r["split"], r["shape"], r["system"]) == (language, split, shape, name)]
            if not rs:
                continue
            latencies = [r["latency_s"] for r in rs]
            rows.append([language, split, shape, name, len(rs), fmt(share(r["right_first_line"] for r in rs)),
                         fmt(benchlib.mean(r["similarity"] for r in rs), 2),
                         fmt(share(r["whole_right"] for r in rs)) if shape == "block" else "",
                         fmt(share(r["empty"] for r in rs)), fmt(percentile(latencies, 50), 2),
                         fmt(percentile(latencies, 90), 2), sum(1 for r in rs if r["error"])])
    header = ["language", "split", "shape", "system", "n", "first line right", "similarity", "whole block right",
              "empty", "p50 s", "p90 s", "errors"]
    return markdown_table(header, rows)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    benchlib.add_common_arguments(parser)
    parser.add_argument("--languages", default="python,rust")
    parser.add_argument("--splits", default="tune,holdout")
    parser.add_argument("--shapes", default="line,rest,block")
    parser.add_argument("--per-cell", type=int, default=10, help="cases per language, split and shape (default 10)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--list", action="store_true", help="print the cases (numbered) and exit")
    parser.add_argument("--cases", help="only these case numbers of --list, comma-separated (to study a few)")
    args = parser.parse_args()
    if args.report:
        records, metas = benchlib.load_reports(args.report)
        for meta in metas:
            print(f"- {benchlib.describe_source(meta)}; {meta['date']}; {meta.get('elapsed_s')} s")
        print()
        print(summarize(records))
        return
    split = lambda text: [x.strip() for x in text.split(",") if x.strip()]
    cases = make_cases(split(args.languages), split(args.splits), split(args.shapes), args.per_cell, args.seed)
    if args.list:
        for number, case in enumerate(cases, 1):
            print(f"{number} {case['language']} {case['split']} {case['shape']} {case['file']}: {case['expected'][:70]!r}")
        return
    if args.cases:
        cases = [cases[int(n) - 1] for n in args.cases.split(",")]
    systems = benchlib.parse_systems(args.systems)
    benchlib.check_inputs(args, systems)
    lsp_binary, lsp_info = benchlib.snapshot_binary(args.lsp_binary) if "lsp" in systems else (None, None)
    out = args.out or benchlib.default_results_path("real-code")
    meta = benchlib.run_metadata(args, lsp_info)
    meta.update({"benchmark": "real-code", "seed": args.seed, "per_cell": args.per_cell,
                 "python_packages": PYTHON_PACKAGES, "rust_crates": RUST_CRATES})
    records = []
    started = time.monotonic()

    def checkpoint():
        meta["elapsed_s"] = round(time.monotonic() - started)
        benchlib.write_results(out, {"meta": meta, "records": records})

    log(f"bench: {len(cases)} cases")
    running = []
    try:
        running = start_systems(systems, args, lsp_binary)
        for index, case in enumerate(cases):
            for system in running:
                text, latency, error = system.ask(case, index)
                record = {"system": system.name, "language": case["language"], "split": case["split"],
                          "shape": case["shape"], "file": case["file"], "expected": case["expected"],
                          "suggestion": text, "latency_s": round(latency, 4), "error": error,
                          "load1": round(os.getloadavg()[0], 2), **score(case, text)}
                records.append(record)
                mark = "right" if record["right_first_line"] else ("empty" if record["empty"] else "wrong")
                log(f"  [{system.name} {index + 1}/{len(cases)} {case['language']} {case['split']} {case['shape']}] "
                    f"{mark} {latency:.2f}s {case['file']}" + (f" error: {error}" if error else ""))
            if (index + 1) % 10 == 0:
                checkpoint()
    finally:
        for system in running:
            system.close()
        if lsp_binary:
            os.remove(lsp_binary)
    meta["elapsed_s"] = round(time.monotonic() - started)
    table = summarize(records)
    benchlib.write_results(out, {"meta": meta, "records": records, "table": table})
    print(f"Real code, {meta['model']}, {args.threads} threads, -c {args.context_size}; "
          f"{benchlib.describe_source(meta)}; {meta['date']}; {meta['elapsed_s']} s; seed {args.seed}\n")
    print(table)
    log(f"bench: records in {os.path.relpath(out, benchlib.REPO)}")


if __name__ == "__main__":
    main()
