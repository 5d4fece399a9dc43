"""HumanEvalExplain (OctoPack, arXiv 2308.07124) pass@1: how well an explanation lets the same
model write the function again. Progress goes to stderr, the markdown tables to stdout, per-task
records to --out.

    python3 bench/explain_quality.py [--systems lsp,plain] [--languages python,rust] [--limit N]
    python3 bench/explain_quality.py --self-check 20      # the harness alone, no model
    python3 bench/explain_quality.py --report RESULTS.json

Data: /work/shared/bench/humanevalpack/{python,rust}.jsonl.gz (164 tasks each). Per task:

1. explain `declaration + canonical_solution` (imports, helper functions and the signature, then
   the body; the task's own docstring is not in `declaration`, helpers keep theirs as in the paper):
   - `lsp`: the code in a file of its own (a fresh temporary folder, `solution.py`/`solution.rs`),
     `mistral-lsp explain FILE --line N` with N the line of the function's signature (no
     --end-line: the server picks the enclosing function); of the markdown on stdout the summary
     paragraph is kept: the first paragraph of prose, after any heading line (`#`) and blank lines,
     up to the first blank line;
   - `plain` (how lsp-ai or Continue ask): llama-server `/v1/chat/completions` with the user message
     "Explain this code:\\n\\n```python\\n{code}\\n```", greedy, at most 512 tokens; the whole answer;
2. cut the explanation to the length in characters of the task's `docstring` and drop the lines of
   the solution longer than 20 characters that it quotes (both as the paper's harness does);
3. regenerate, the same for both systems: llama-server `/v1/chat/completions`, greedy, with
   "{explanation}\\n\\nWrite functional code in Python according to the description. Start your code
   with:\\n```python\\n{declaration}\\n```"; the code is the first fenced block that defines the
   function (else the first block, else the whole answer); a bare body gets the signature;
4. score: Python runs the paper's helper imports, the declaration's imports and helpers, the code
   (its top-level statements other than imports, definitions and assignments dropped: example calls,
   prints, `if __name__`) and the task's `test` (10 s); Rust compiles the code with the
   declaration's `use` lines (as a glob import, which the code's own imports override), its helper
   functions where the code lacks them, `fn main(){}` and the task's `#[cfg(test)]` module, in a
   scratch crate (target/explain-bench/scratch, with rand 0.7, regex 1 and md5 0.7) under
   `cargo test`. pass@1 (greedy) is the share of tasks whose tests pass.

Answers are streamed and stopped as soon as more text could not change what is scored: an
explanation once its kept text (the summary paragraph, or the plain answer) has ended or has
passed the docstring's length, a regeneration once a closed code block defines the function.
Greedy decoding makes that lossless (the same pass@1 in about half the time), but the explain and
regenerate times of stopped answers are not measured: `--whole-answers` times them.

One llama-server (`-m MODEL -t THREADS -c CONTEXT`) serves `plain` and every regeneration;
mistral-lsp loads its own copy of the model for each explanation. `--self-check N` scores the
canonical solution (expected: all pass) and the buggy one (expected: nearly none) of N tasks
through the same assembly, without a model. Rust/32's tests draw random polynomials (thread_rng)
and its canonical Newton iteration sometimes never ends: it fails by the 60 s timeout about one
run in three, so a Rust pass@1 moves by up to 1/164 between runs for that reason alone."""

import argparse
import ast
import datetime
import gzip
import importlib.util
import json
import os
import random
import re
import select as io_select
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time

import benchlib
from benchlib import fmt, log, markdown_table, percentile, share

DATA = os.environ.get("HUMANEVALPACK_DIR", "/work/shared/bench/humanevalpack")
MODEL_FILE = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
LANGUAGES = {"python": ("Python", "py"), "rust": ("Rust", "rs")}
SYSTEMS = ("lsp", "plain")
SCRATCH = os.path.join(benchlib.REPO, "target", "explain-bench", "scratch")
PYTHON_TEST_TIMEOUT_S = 10
RUST_TEST_TIMEOUT_S = 60
RUST_BUILD_TIMEOUT_S = 1200
EXPLAIN_TIMEOUT_S = 600
REQUEST_TIMEOUT_S = 600
# The paper's harness puts these before every Python program (bigcode-evaluation-harness,
# humanevalpack.py, IMPORT_HELPER); those not installed here are left out.
PYTHON_IMPORT_HELPER = ["import math", "import re", "import sys", "import copy", "import datetime",
                        "import itertools", "import collections", "import heapq", "import statistics",
                        "import functools", "import hashlib", "import numpy", "import numpy as np",
                        "import string", "from typing import *", "from collections import *"]
PAPER_ANCHORS = ("Published HumanEvalExplain pass@1 (Python / Rust): Mistral-7B-Instruct-v0.2 24.4 / 14.0; "
                 "OctoCoder-15B 35.1 / 14.8; GPT-4 64.6 / 42.7.")
SCRATCH_CARGO_TOML = """[package]
name = "humaneval-explain-scratch"
version = "0.1.0"
edition = "2021"

[dependencies]
# The HumanEvalPack Rust tests call rand 0.7's two-argument gen_range.
rand = "0.7"
regex = "1"
md5 = "0.7"

# Not a member of the repository's workspace.
[workspace]
"""


def default_model():
    return os.path.join(os.path.dirname(benchlib.default_model()), MODEL_FILE)


def default_lsp_binary():
    return os.path.join(benchlib.REPO, "target", "bench-lsp", "target", "release", "mistral-lsp")


# ---------------------------------------------------------------------------------------------
# Tasks


def load_tasks(language):
    with gzip.open(os.path.join(DATA, f"{language}.jsonl.gz"), "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def select(tasks, limit, seed, exclude=()):
    """The first `limit` tasks, or with a seed a seeded sample of that many in dataset order; the
    tasks of the earlier samples in `exclude` ((limit, seed) pairs) are left out first."""
    excluded = {task["task_id"] for limit_seed in exclude for task in select(tasks, *limit_seed)}
    tasks = [task for task in tasks if task["task_id"] not in excluded]
    if not limit or limit >= len(tasks):
        return tasks
    if seed is None:
        return tasks[:limit]
    picked = sorted(random.Random(seed).sample(range(len(tasks)), limit))
    return [tasks[i] for i in picked]


def function_name(task, language):
    """The function the tests call. For Rust, 9 tasks' `entry_point` differs from the declared
    name (`correct_bracketing` is `correct_bracketing_parenthesis`): the last `fn` of the
    declaration is the one."""
    if language == "python":
        return task["entry_point"]
    return re.findall(r"\bfn\s+(\w+)", task["declaration"])[-1]


def signature_offset(declaration, language, name):
    pattern = (r"^[ \t]*def\s+" if language == "python" else r"^[ \t]*(?:pub\s+)?fn\s+") + re.escape(name) + r"\b"
    matches = list(re.finditer(pattern, declaration, re.M))
    return matches[-1].start()


def explained_code(task, language):
    """The code both systems explain, and the 1-based line of the function's signature."""
    declaration = task["declaration"].lstrip("\n")
    code = declaration + task["canonical_solution"]
    offset = signature_offset(declaration, language, function_name(task, language))
    return code, declaration[:offset].count("\n") + 1


def parts(task, language):
    """(preamble, signature) of the declaration: what comes before the function's `def`/`fn`
    line, and that line to the end (Python/115's declaration also holds `import math` of the body)."""
    declaration = task["declaration"].lstrip("\n")
    offset = signature_offset(declaration, language, function_name(task, language))
    return declaration[:offset], declaration[offset:]


# ---------------------------------------------------------------------------------------------
# Explanations


def summary_state(markdown):
    """(paragraph, ended): the first paragraph of prose (leading headings, blank lines and code
    fences skipped, up to the first blank line or fence), and whether that end has been seen."""
    paragraph, fence = [], False
    for line in markdown.replace("\r\n", "\n").split("\n"):
        stripped = line.strip()
        if fence:
            fence = not stripped.startswith("```")
            continue
        if not paragraph:
            if not stripped or stripped.startswith("#"):
                continue
            if stripped.startswith("```"):
                fence = True
                continue
        elif not stripped or stripped.startswith("```"):
            return "\n".join(paragraph).strip(), True
        paragraph.append(line.rstrip())
    return "\n".join(paragraph).strip(), False


def summary_paragraph(markdown):
    return summary_state(markdown)[0]


def summary_settled(markdown, limit):
    """Whether more text could no longer change the first `limit` characters of the summary
    paragraph of a streamed `markdown` (the paragraph has ended, or a line of prose that has begun
    already takes it past `limit`); only whole lines are judged, so that a partial `#` or fence line
    is not taken for prose."""
    whole, partial = markdown.rpartition("\n")[0::2]
    paragraph, ended = summary_state(whole)
    if ended:
        return True
    if partial and (not partial.strip() or partial.lstrip().startswith(("#", "`"))):
        return False
    return len(summary_paragraph(markdown)) > limit


def text_settled(text, limit):
    """Whether more text could no longer change `text.strip()[:limit]`."""
    return len(text.strip()) > limit


def closed_blocks(answer):
    return [m.group(1) for m in re.finditer(r"```[^\n`]*\n(.*?)```", answer, re.S)]


def cut(explanation, task):
    """The paper's postprocessing: strip, cut to the docstring's length, and drop lines of the
    canonical solution longer than 20 characters that the text quotes."""
    text = explanation.strip()[:len(task["docstring"])].rstrip()
    for line in task["canonical_solution"].split("\n"):
        line = line.strip()
        if len(line) > 20 and line in text:
            text = text.replace(line, "")
    return text


def log_time(line):
    """The UTC time of a mistral-lsp log line (`2026-12-06T14:03:14.226695Z  INFO ...`)."""
    try:
        stamp = line.split()[0].rstrip("Z")
        return datetime.datetime.fromisoformat(stamp[:26]).replace(tzinfo=datetime.timezone.utc).timestamp()
    except (IndexError, ValueError):
        return None


class LspExplainer:
    """`mistral-lsp explain FILE --line N`, one process per explanation, stderr to a log."""

    name = "lsp"

    def __init__(self, args, binary):
        self.args, self.binary = args, binary
        self.log_path, self._log = benchlib.open_log("explain-lsp")
        self.workdir = tempfile.mkdtemp(prefix="bench-explain-")

    def explain(self, task, language, code, line, enough=lambda markdown: False):
        folder = os.path.join(self.workdir, re.sub(r"\W", "_", task["task_id"]))
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, "solution." + LANGUAGES[language][1])
        with open(path, "w", encoding="utf-8") as f:
            f.write(code)
        command = ["nice", "-n", str(self.args.nice), self.binary, "explain", path, "--line", str(line),
                   "--model", self.args.model, "--threads", str(self.args.threads),
                   "--context-size", str(self.args.context_size), *self.args.lsp_arg]
        self._log.write(f"\n===== {task['task_id']} {' '.join(command)}\n".encode())
        self._log.flush()
        started_wall, started = time.time(), time.monotonic()
        stderr_path = os.path.join(folder, "stderr.log")
        with open(stderr_path, "wb") as err:
            proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err,
                                    start_new_session=True)
            out, error, stopped = read_until(proc, enough, EXPLAIN_TIMEOUT_S)
        wall = time.monotonic() - started
        ended_wall = started_wall + wall
        stderr = benchlib.read_text(stderr_path)
        self._log.write(stderr.encode())
        self._log.flush()
        # The time after the model was ready (its load and speed measurement excluded).
        ready = None
        for log_line in stderr.splitlines():
            if "model ready" in log_line:
                ready = log_time(log_line)
        explain_s = ended_wall - ready if ready and started_wall - 1 <= ready <= ended_wall and not stopped else None
        markdown = out.decode("utf-8", errors="replace")
        if error:
            tail = [x for x in stderr.splitlines() if x.strip()][-3:]
            error += ": " + " | ".join(tail)[-500:]
        return {"answer": markdown, "explanation": summary_paragraph(markdown), "explain_s": explain_s,
                "explain_wall_s": round(wall, 3), "explain_error": error, "explain_stopped": stopped}

    def close(self):
        self._log.close()
        shutil.rmtree(self.workdir, ignore_errors=True)


def read_until(proc, enough, timeout):
    """(stdout, error, stopped): the process's output until it exits, or until `enough(text so
    far)` says more could not change what is kept (the process is then killed: stopped)."""
    out, deadline = b"", time.monotonic() + timeout
    fd = proc.stdout.fileno()
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            benchlib.stop_process(proc)
            return out, f"timed out after {timeout} s", False
        ready, _, _ = io_select.select([fd], [], [], min(left, 5))
        if not ready:
            continue
        piece = os.read(fd, 65536)
        if not piece:
            proc.wait()
            return out, None if proc.returncode == 0 else f"exit status {proc.returncode}", False
        out += piece
        if enough(out.decode("utf-8", errors="ignore")):
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return out, None, True


def chat(server, content, max_tokens, enough=None):
    """One greedy user turn through llama-server's OpenAI-style chat endpoint; with `enough`,
    streamed and ended once `enough(text so far)` (finish reason "stopped")."""
    # No reuse of an earlier request's cached prompt: the evaluation of the same prompt then
    # depends on which requests came before (how much of it was cached, in which slot), and a
    # greedy answer can change with that history.
    body = {"messages": [{"role": "user", "content": content}], "max_tokens": max_tokens, "cache_prompt": False,
            **benchlib.LLAMA_GREEDY}
    started = time.monotonic()
    if enough:
        text, finish = server.chat_stream(body, enough, timeout=REQUEST_TIMEOUT_S)
        return text, time.monotonic() - started, finish
    reply = server.post("/v1/chat/completions", body, timeout=REQUEST_TIMEOUT_S)
    text = reply["choices"][0]["message"].get("content") or ""
    return text, time.monotonic() - started, reply["choices"][0].get("finish_reason")


class PlainExplainer:
    """The peers' request: the code in a user message, the whole answer."""

    name = "plain"

    def __init__(self, args, server):
        self.args, self.server = args, server

    def explain(self, task, language, code, line, enough=None):
        fence = language
        content = f"Explain this code:\n\n```{fence}\n{code.rstrip()}\n```"
        finish = None
        try:
            text, seconds, finish = chat(self.server, content, self.args.explain_tokens, enough)
            error = None
        except (OSError, RuntimeError, ValueError, KeyError) as err:
            text, seconds, error = "", None, str(err)
        stopped = finish == "stopped"
        return {"answer": text, "explanation": text.strip(), "explain_s": None if stopped else seconds,
                "explain_wall_s": round(seconds, 3) if seconds is not None else None, "explain_error": error,
                "explain_stopped": stopped}

    def close(self):
        pass


# ---------------------------------------------------------------------------------------------
# Regeneration and code extraction


def regenerate_prompt(description, task, language):
    title = LANGUAGES[language][0]
    declaration = task["declaration"].strip("\n")
    return (f"{description}\n\nWrite functional code in {title} according to the description. "
            f"Start your code with:\n```{language}\n{declaration}\n```")


def defines(code, language, name):
    if language == "python":
        return re.search(r"^[ \t]*(?:async\s+)?def\s+" + re.escape(name) + r"\s*\(", code, re.M) is not None
    return re.search(r"\bfn\s+" + re.escape(name) + r"\s*[<(]", code) is not None


def extract_code(answer, language, name):
    """The first fenced block that defines the function, else the first block, else the text
    after an unclosed fence, else the whole answer."""
    blocks = closed_blocks(answer)
    for block in blocks:
        if defines(block, language, name):
            return block
    if blocks:
        return blocks[0]
    unclosed = re.search(r"```[^\n`]*\n(.*)$", answer, re.S)
    return unclosed.group(1) if unclosed else answer


def python_keep_definitions(code):
    """The code's imports, definitions and assignments; its other top-level statements (example
    calls, prints, asserts, `if __name__ == ...`) dropped. Unparsable code is kept as it is."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return code
    lines = code.split("\n")
    kept = []
    kinds = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Assign,
             ast.AnnAssign)
    for node in tree.body:
        if isinstance(node, kinds):
            first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
            kept.append("\n".join(lines[first - 1:node.end_lineno]))
    return "\n\n".join(kept) + "\n"


def python_function(task, code):
    """The code, with the signature put before a bare body."""
    name = function_name(task, "python")
    if not defines(code, "python", name):
        _, signature = parts(task, "python")
        code = signature.rstrip("\n") + "\n" + textwrap.indent(textwrap.dedent(code).strip("\n"), "    ") + "\n"
    return python_keep_definitions(code)


_PYTHON_HELPERS = None


def python_import_helper():
    global _PYTHON_HELPERS
    if _PYTHON_HELPERS is None:
        _PYTHON_HELPERS = [line for line in PYTHON_IMPORT_HELPER
                           if importlib.util.find_spec(line.split()[1].split(".")[0]) is not None]
    return "\n".join(_PYTHON_HELPERS)


def python_program(task, code):
    preamble, _ = parts(task, "python")
    function = python_function(task, code)
    test = task["test"]
    call = f"check({task['entry_point']})"
    if not re.search(r"^" + re.escape(call), test, re.M):
        test += "\n\n" + call + "\n"
    return function, f"{python_import_helper()}\n{preamble}\n{function}\n\n{test}\n"


def run_python(program, workdir):
    path = os.path.join(workdir, "candidate.py")
    with open(path, "w", encoding="utf-8") as f:
        f.write(program)
    proc = subprocess.Popen([sys.executable, path], cwd=workdir, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)
    try:
        _, err = proc.communicate(timeout=PYTHON_TEST_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return False, f"timed out after {PYTHON_TEST_TIMEOUT_S} s"
    if proc.returncode == 0:
        return True, None
    lines = [x for x in err.decode("utf-8", errors="replace").splitlines() if x.strip()]
    return False, " | ".join(lines[-3:])[-600:] or f"exit status {proc.returncode}"


# Rust: items found by brace matching that skips strings, characters and comments.

def rust_skip(code, i):
    """If a literal or comment starts at i, the index after it; else None."""
    if code.startswith("//", i):
        end = code.find("\n", i)
        return len(code) if end < 0 else end
    if code.startswith("/*", i):
        end = code.find("*/", i + 2)
        return len(code) if end < 0 else end + 2
    raw = re.match(r'b?r(#*)"', code[i:i + 10])
    if raw and (i == 0 or not (code[i - 1].isalnum() or code[i - 1] == "_")):
        closing = '"' + raw.group(1)
        end = code.find(closing, i + raw.end())
        return len(code) if end < 0 else end + len(closing)
    if code[i] == '"':
        j = i + 1
        while j < len(code) and code[j] != '"':
            j += 2 if code[j] == "\\" else 1
        return j + 1
    if code[i] == "'":
        char = re.match(r"'(?:\\(?:x[0-9a-fA-F]{2}|u\{[0-9a-fA-F]+\}|.)|[^\\'])'", code[i:i + 12])
        if char:
            return i + char.end()
    return None


def rust_block_end(code, open_index):
    """The index after the `}` that closes the `{` at open_index (len(code) if it never closes)."""
    depth, i = 0, open_index
    while i < len(code):
        skipped = rust_skip(code, i)
        if skipped is not None:
            i = skipped
            continue
        if code[i] == "{":
            depth += 1
        elif code[i] == "}":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return len(code)


def rust_remove_items(code, pattern, keep=lambda block: False):
    """The code without the items whose heads match `pattern` (up to their `{`) and their blocks."""
    while True:
        for match in re.finditer(pattern, code):
            brace = code.find("{", match.end() - 1)
            if brace < 0:
                continue
            end = rust_block_end(code, brace)
            if keep(code[match.start():end]):
                continue
            code = code[:match.start()] + code[end:]
            break
        else:
            return code


def rust_functions(code):
    return set(re.findall(r"\bfn\s+(\w+)", code))


def rust_program(task, code):
    name = function_name(task, "rust")
    preamble, signature = parts(task, "rust")
    if not defines(code, "rust", name):
        code = signature.rstrip("\n") + "\n" + code.strip("\n") + "\n}\n"
    # The code's own `fn main` and test modules would clash with ours.
    code = rust_remove_items(code, r"(?m)^[ \t]*(?:pub\s+)?fn\s+main\s*\(\s*\)[^{]*\{")
    code = rust_remove_items(code, r"(?m)^[ \t]*(?:#\[cfg\(test\)\]\s*)?(?:pub\s+)?mod\s+\w+\s*\{",
                             keep=lambda block: "#[test]" not in block)
    code = re.sub(r"(?m)^[ \t]*#!\[[^\]]*\][ \t]*\n", "", code)
    uses = [line.strip() for line in preamble.split("\n") if line.strip().startswith("use ")]
    helpers = "\n".join(line for line in preamble.split("\n") if not line.strip().startswith("use ")).strip("\n")
    if helpers and rust_functions(helpers) & rust_functions(code):
        helpers = ""
    # The declaration's imports as a glob import: the code's own `use` lines override it.
    prelude = "mod humaneval_prelude {\n" + "".join(f"    pub {u}\n" for u in uses) + "}\nuse humaneval_prelude::*;\n"
    function = code.strip("\n") + "\n"
    program = f"#![allow(warnings)]\n{prelude}\n{helpers}\n\n{function}\nfn main(){{}}\n{task['test']}\n"
    return function, program


def ensure_scratch():
    """The scratch crate with the tests' dependencies, built once (offline if the crates are
    already here, else through crates.io)."""
    os.makedirs(os.path.join(SCRATCH, "src"), exist_ok=True)
    toml = os.path.join(SCRATCH, "Cargo.toml")
    if benchlib.read_text(toml) != SCRATCH_CARGO_TOML:
        with open(toml, "w", encoding="utf-8") as f:
            f.write(SCRATCH_CARGO_TOML)
    with open(os.path.join(SCRATCH, "src", "main.rs"), "w", encoding="utf-8") as f:
        f.write("#![allow(warnings)]\nuse rand::Rng;\nuse regex::Regex;\nfn main() {}\n")
    for offline in (True, False):
        command = ["nice", "-n", "5", "cargo", "test", "--no-run", "--quiet", *(["--offline"] if offline else [])]
        log(f"bench: building the scratch crate: {' '.join(command[3:])} in {os.path.relpath(SCRATCH, benchlib.REPO)}")
        result = subprocess.run(command, cwd=SCRATCH, capture_output=True, text=True, timeout=RUST_BUILD_TIMEOUT_S)
        if result.returncode == 0:
            return
        log(f"bench: scratch build failed: {result.stderr.strip()[-800:]}")
    sys.exit("bench: could not build the Rust scratch crate")


def rust_error(output):
    """The first compiler error, or the first failed assertion."""
    lines = output.splitlines()
    for i, line in enumerate(lines):
        if "panicked at" in line:
            return ("test: " + " ".join(x.strip() for x in lines[i:i + 3]))[:600]
    for i, line in enumerate(lines):
        if line.startswith("error") and not line.startswith("error: test failed"):
            detail = " ".join(x.strip() for x in lines[i + 1:i + 4] if x.strip())
            return ("compile: " + line + " " + detail)[:600]
    return " | ".join(x for x in lines if x.strip())[-600:]


def run_rust(program):
    with open(os.path.join(SCRATCH, "src", "main.rs"), "w", encoding="utf-8") as f:
        f.write(program)
    command = ["nice", "-n", "5", "cargo", "test", "--offline", "--quiet"]
    proc = subprocess.Popen(command, cwd=SCRATCH, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=RUST_TEST_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return False, f"timed out after {RUST_TEST_TIMEOUT_S} s"
    if proc.returncode == 0:
        return True, None
    return False, rust_error(out.decode("utf-8", errors="replace"))


def score(task, language, code, workdir):
    """(function as assembled, passed, error)."""
    if language == "python":
        function, program = python_program(task, code)
        passed, error = run_python(program, workdir)
    else:
        function, program = rust_program(task, code)
        passed, error = run_rust(program)
    return function, passed, error


# ---------------------------------------------------------------------------------------------
# Tables


def summarize(records):
    tables = []
    for language in [l for l in LANGUAGES if any(r["language"] == l for r in records)]:
        rows = []
        for system in [s for s in SYSTEMS if any(r["system"] == s for r in records)]:
            rs = [r for r in records if r["language"] == language and r["system"] == system]
            if not rs:
                continue
            rows.append([system, len(rs), fmt(share(r["passed"] for r in rs)),
                         fmt(benchlib.mean(r["explanation_chars"] for r in rs if not r.get("explain_stopped")), 0),
                         fmt(benchlib.mean(r["docstring_chars"] for r in rs), 0),
                         fmt(percentile([r["explain_s"] for r in rs], 50), 1),
                         fmt(percentile([r["regenerate_s"] for r in rs], 50), 1),
                         sum(1 for r in rs if not r["explanation"]),
                         sum(1 for r in rs if r["explain_error"] or r.get("regenerate_error"))])
        header = ["system", "n", "pass@1", "explanation chars (mean, before cut)", "docstring chars (mean)",
                  "explain p50 s", "regenerate p50 s", "empty explanations", "request errors"]
        tables.append(f"**{LANGUAGES[language][0]}**\n\n" + markdown_table(header, rows))
    notes = ("explain s: `lsp` from the model's `model ready` log line to the process's exit (its load "
             "and speed probe excluded; `explain_wall_s` in the records has them), `plain` the request. Answers "
             "stopped once more text could not change the score (the default; `--whole-answers` to time them) count "
             "in pass@1 but not in the chars and times columns.\n"
             + PAPER_ANCHORS)
    return "\n\n".join(tables) + "\n\n" + notes


def summarize_self_check(records):
    rows = []
    for language in [l for l in LANGUAGES if any(r["language"] == l for r in records)]:
        rs = [r for r in records if r["language"] == language]
        canonical = [r for r in rs if r["solution"] == "canonical"]
        buggy = [r for r in rs if r["solution"] == "buggy"]
        failed = [r["task_id"] for r in canonical if not r["passed"]]
        rows.append([language, len(canonical), f"{sum(r['passed'] for r in canonical)}/{len(canonical)}",
                     f"{sum(r['passed'] for r in buggy)}/{len(buggy)}", ", ".join(failed) or "none"])
    return markdown_table(["language", "tasks", "canonical passes", "buggy passes", "canonical failures"], rows)


# ---------------------------------------------------------------------------------------------


def self_check(args, languages):
    records = []
    with tempfile.TemporaryDirectory(prefix="bench-explain-check-") as workdir:
        for language in languages:
            if language == "rust":
                ensure_scratch()
            tasks = select(load_tasks(language), args.self_check, args.seed)
            for task in tasks:
                for solution in ("canonical", "buggy"):
                    code = task["declaration"] + task[f"{solution}_solution"]
                    started = time.monotonic()
                    _, passed, error = score(task, language, code, workdir)
                    records.append({"language": language, "task_id": task["task_id"], "solution": solution,
                                    "passed": passed, "error": error, "seconds": round(time.monotonic() - started, 2)})
                    if solution == "canonical" or passed:
                        log(f"  [{language} {task['task_id']} {solution}] {'pass' if passed else 'FAIL'}"
                            + (f": {error}" if error and solution == "canonical" else ""))
    return records


def wait_for(path, what):
    for _ in range(10):
        if os.path.exists(path):
            return
        log(f"bench: no {what} at {path}; waiting a minute")
        time.sleep(60)
    sys.exit(f"bench: no {what} at {path}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--systems", default="lsp,plain", help="comma-separated: lsp, plain (default both)")
    parser.add_argument("--languages", default="python,rust", help="comma-separated: python, rust (default both)")
    parser.add_argument("--limit", type=int, help="only N tasks per language: the first N, or a seeded sample with --seed")
    parser.add_argument("--seed", type=int, help="with --limit or --self-check: a seeded random sample instead of the first N")
    parser.add_argument("--exclude-sample", action="append", default=[], metavar="LIMIT:SEED",
                        help="leave out the tasks of an earlier run's `--limit LIMIT --seed SEED` sample, repeatable")
    parser.add_argument("--model", default=default_model(), help="GGUF model (default: Qwen2.5-Coder 1.5B Instruct Q4_K_M)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for both (default 2)")
    parser.add_argument("--context-size", type=int, default=8192, help="context size for both (default 8192)")
    parser.add_argument("--explain-tokens", type=int, default=512, help="max_tokens of the plain explanation (default 512)")
    parser.add_argument("--regenerate-tokens", type=int, default=1024, help="max_tokens of the regeneration (default 1024)")
    parser.add_argument("--lsp-binary", default=default_lsp_binary(),
                        help="mistral-lsp binary (default target/bench-lsp/target/release/mistral-lsp)")
    parser.add_argument("--lsp-arg", action="append", default=[],
                        help="extra argument for `mistral-lsp explain`, repeatable (e.g. --lsp-arg=--set --lsp-arg=KEY=VALUE)")
    parser.add_argument("--llama-server", default=benchlib.default_llama_server(),
                        help="llama-server binary (default target/llama-tools/llama-server)")
    parser.add_argument("--llama-server-arg", action="append", default=[], help="extra argument for llama-server, repeatable")
    parser.add_argument("--whole-answers", action="store_true",
                        help="generate every answer to its end; by default a stream is stopped once more text could "
                             "not change what is scored (the explanation's cut, the first code block that defines the "
                             "function), which gives the same pass@1 in about half the time but no explain/regenerate times")
    parser.add_argument("--tasks", help="only these task ids (comma-separated, e.g. Python/3,Rust/12), within the selection")
    parser.add_argument("--nice", type=int, default=5, help="niceness of the model processes (default 5)")
    parser.add_argument("--self-check", type=int, metavar="N",
                        help="score the canonical and buggy solutions of N tasks per language, no model, and exit")
    parser.add_argument("--report", nargs="+", metavar="RESULTS.json", help="print the tables of earlier runs' result files")
    parser.add_argument("--resume", metavar="RESULTS.json",
                        help="go on with an earlier run of the same selection: its records are kept and its tasks skipped")
    parser.add_argument("--out", help="per-task records as JSON (default target/bench-results/explain-quality-DATE.json)")
    args = parser.parse_args()
    split = lambda text: [x.strip() for x in text.split(",") if x.strip()]
    languages, systems = split(args.languages), split(args.systems)
    try:
        exclude = [tuple(int(x) for x in pair.split(":")) for pair in args.exclude_sample]
        if any(len(pair) != 2 for pair in exclude):
            raise ValueError
    except ValueError:
        sys.exit("bench: --exclude-sample takes LIMIT:SEED, e.g. 12:5")
    for language in languages:
        if language not in LANGUAGES:
            sys.exit(f"bench: unknown language {language!r}; use python, rust")
    for system in systems:
        if system not in SYSTEMS:
            sys.exit(f"bench: unknown system {system!r}; use lsp, plain")

    if args.report:
        records, metas = benchlib.load_reports(args.report)
        for meta in metas:
            print(f"- {meta.get('model') or 'no model'}; {benchlib.describe_source(meta)}; {meta['date']}; {meta.get('elapsed_s')} s; "
                  f"{meta.get('tasks', '')}")
        print()
        if all("solution" in r for r in records):
            print(summarize_self_check(records))
        else:
            print(summarize(records))
        return

    selection = (f"the first {args.limit or args.self_check}" if args.seed is None
                 else f"a sample of {args.limit or args.self_check} (seed {args.seed})") if (args.limit or args.self_check) else "all 164"
    if exclude:
        selection += " (leaving out the samples " + ", ".join(f"{limit}:{seed}" for limit, seed in exclude) + ")"
    if args.self_check:
        started = time.monotonic()
        records = self_check(args, languages)
        out = args.out or benchlib.default_results_path("explain-self-check")
        meta = {"date": datetime.datetime.now().isoformat(timespec="seconds"), "commit": benchlib.git("rev-parse", "--short", "HEAD"),
                "server_tree_dirty": False, "lsp_binary": None, "model": None, "benchmark": "explain-self-check",
                "tasks": selection + " tasks per language", "elapsed_s": round(time.monotonic() - started)}
        table = summarize_self_check(records)
        benchlib.write_results(out, {"meta": meta, "records": records, "table": table})
        print(f"HumanEvalExplain harness self-check (no model), {selection} tasks per language; {meta['elapsed_s']} s\n")
        print(table)
        log(f"bench: records in {os.path.relpath(out, benchlib.REPO)}")
        return

    if not os.path.exists(args.model):
        sys.exit(f"bench: no model at {args.model}; run scripts/fetch-test-models qwen-1.5b or pass --model")
    if not os.path.exists(args.llama_server):
        sys.exit(f"bench: no llama-server at {args.llama_server}; run bench/build-llama-tools first")
    if "rust" in languages:
        ensure_scratch()
    lsp_binary, lsp_info = None, None
    if "lsp" in systems:
        wait_for(args.lsp_binary, "mistral-lsp binary")
        lsp_binary, lsp_info = benchlib.snapshot_binary(args.lsp_binary)
    out = args.out or benchlib.default_results_path("explain-quality")
    meta = benchlib.run_metadata(args, lsp_info)
    meta.update({"benchmark": "humaneval-explain", "tasks": selection + " tasks per language", "limit": args.limit,
                 "seed": args.seed, "exclude_samples": exclude, "whole_answers": args.whole_answers, "explain_tokens": args.explain_tokens, "regenerate_tokens": args.regenerate_tokens})
    records = benchlib.load_reports([args.resume])[0] if args.resume else []
    done = {(r["language"], r["task_id"], r["system"]) for r in records}
    started = time.monotonic()

    def checkpoint():
        meta["elapsed_s"] = round(time.monotonic() - started)
        benchlib.write_results(out, {"meta": meta, "records": records})

    server = None
    explainers = []
    try:
        server = benchlib.LlamaServer(args)
        for system in systems:
            explainers.append(LspExplainer(args, lsp_binary) if system == "lsp" else PlainExplainer(args, server))
        with tempfile.TemporaryDirectory(prefix="bench-explain-score-") as workdir:
            # Languages take turns task by task, so that a run stopped early has both.
            chosen = {language: select(load_tasks(language), args.limit, args.seed, exclude) for language in languages}
            if args.tasks:
                wanted = set(split(args.tasks))
                chosen = {language: [t for t in tasks if t["task_id"] in wanted] for language, tasks in chosen.items()}
            turns = sorted(((index, order, language, task) for order, language in enumerate(languages)
                            for index, task in enumerate(chosen[language])), key=lambda turn: turn[:2])
            for index, _, language, task in turns:
                tasks = chosen[language]
                code, line = explained_code(task, language)
                name = function_name(task, language)
                for explainer in explainers:
                    if (language, task["task_id"], explainer.name) in done:
                        continue
                    record = {"language": language, "task_id": task["task_id"], "system": explainer.name,
                              "function": name, "line": line, "code": code,
                              "docstring_chars": len(task["docstring"])}
                    limit = len(task["docstring"])
                    if args.whole_answers:
                        settled = None
                    elif explainer.name == "lsp":
                        settled = lambda markdown, limit=limit: summary_settled(markdown, limit)
                    else:
                        settled = lambda text, limit=limit: text_settled(text, limit)
                    record.update(explainer.explain(task, language, code, line, *([settled] if settled else [])))
                    record["explanation_chars"] = len(record["explanation"])
                    record["description"] = cut(record["explanation"], task)
                    prompt = regenerate_prompt(record["description"], task, language)
                    try:
                        answer, seconds, finish = chat(
                            server, prompt, args.regenerate_tokens,
                            None if args.whole_answers else
                            lambda text, name=name: any(defines(b, language, name) for b in closed_blocks(text)))
                        regen_error = None
                    except (OSError, RuntimeError, ValueError, KeyError) as err:
                        answer, seconds, finish, regen_error = "", None, None, str(err)
                    generated = extract_code(answer, language, name)
                    function, passed, error = score(task, language, generated, workdir)
                    record.update({"regenerate_prompt": prompt, "regenerate_answer": answer,
                                   "regenerate_finish": finish,
                                   "regenerate_s": None if finish == "stopped" else seconds, "regenerate_wall_s": seconds,
                                   "regenerate_error": regen_error, "regenerated_code": function,
                                   "passed": passed, "error": error, "load1": round(os.getloadavg()[0], 2)})
                    records.append(record)
                    explain_s = record["explain_s"]
                    log(f"  [{explainer.name} {index + 1}/{len(tasks)} {task['task_id']}] "
                        f"{'PASS' if passed else 'fail'}; explanation {record['explanation_chars']} chars "
                        f"(cut {len(record['description'])}) in {fmt(explain_s, 1)} s, regenerated in "
                        f"{fmt(seconds, 1)} s" + (f"; {error}" if error else "")
                        + (f"; explain error: {record['explain_error']}" if record["explain_error"] else ""))
                checkpoint()
    finally:
        for explainer in explainers:
            explainer.close()
        if server:
            server.close()
        if lsp_binary:
            os.remove(lsp_binary)
    meta["elapsed_s"] = round(time.monotonic() - started)
    table = summarize(records)
    benchlib.write_results(out, {"meta": meta, "records": records, "table": table})
    print(f"HumanEvalExplain, {meta['model']}, {args.threads} threads, -c {args.context_size}; "
          f"{benchlib.describe_source(meta)}; {meta['date']}; {meta['elapsed_s']} s; {selection} tasks per language\n")
    print(table)
    log(f"bench: records in {os.path.relpath(out, benchlib.REPO)}")


if __name__ == "__main__":
    main()
