"""HumanEvalFix as a review test: does a review flag the bug, stay quiet on the correct twin, and
fix it? Progress goes to stderr, the markdown tables to stdout, per-task records to --out.

    python3 bench/review_quality.py [--systems lsp,peer] [--languages python,rust] [--limit N [--seed S]]
    python3 bench/review_quality.py --grammar-speed [--limit N]     # tokens/s with and without the grammar
    python3 bench/review_quality.py --report RESULTS.json

Data: /work/shared/bench/humanevalpack/{python,rust}.jsonl.gz (164 tasks each). Per task:

1. the file is the task's `prompt` (the declaration with its docstring, as a reader has it) plus
   its `buggy_solution`; the clean twin is the same with the `canonical_solution`. The bug lines are
   the lines of the buggy file that differ from the clean twin (difflib; a deletion marks the line
   after it);
2. each system reviews both files:
   - `lsp`: `mistral-lsp review FILE --format json` (the whole file, the embedded engine, the same
     model and threads);
   - `peer` (PR-Agent's way): llama-server `/v1/chat/completions`, greedy, at most 768 tokens, with
     the file's lines numbered, "only issues you are confident about", and a JSON answer
     (`start_line`, `end_line`, `issue`, `existing_code`, `improved_code`), parsed leniently (the
     first JSON object in the answer, fenced or not); findings are kept as written, on the lines
     they name;
3. scores: **bug recall**, the share of buggy files with a finding whose lines cover a bug line;
   **false alarms**, findings per clean twin; **fix pass@1**, the share of tasks where the fix of the
   first finding that covers the bug (its replacement lines put in place of its lines) makes the
   task's tests pass (the same assembly and tests as bench/explain_quality.py); and the time per
   file.

`--grammar-speed` reviews the buggy files of N tasks with the embedded engine twice, with the
grammar and without it (`MISTRAL_LSP_REVIEW_GRAMMAR=0`, a measurement switch), and compares the
generation rates from the server's log (tokens generated / generation time)."""

import argparse
import datetime
import difflib
import json
import os
import re
import subprocess
import sys
import tempfile
import time

import benchlib
import explain_quality as eq
from benchlib import fmt, log, markdown_table, percentile, share

SYSTEMS = ("lsp", "peer")
REVIEW_TIMEOUT_S = 900
PEER_TOKENS = 768
PAPER_ANCHORS = ("Published HumanEvalFix pass@1 (Python / Rust): Mistral-7B-Instruct-v0.2 33.5 / 23.8; "
                 "OctoCoder-15B 30.4 / 16.5; GPT-4 47.0 / 43.3.")

PEER_PROMPT = """You are reviewing a pull request. Below is a {language} file with its line numbers.
Find the problems in it: bugs, security issues and serious performance issues. Only report issues
you are confident about; if there are none, return an empty list.

Answer with JSON only, in this format:
{{"issues": [{{"start_line": <int>, "end_line": <int>, "issue": "<what is wrong>",
  "existing_code": "<the lines as they are>", "improved_code": "<the corrected lines>"}}]}}

File `{path}`:
```
{numbered}```"""


def files(task, language):
    """(buggy file, clean twin, 0-based bug lines of the buggy file)."""
    buggy = task["prompt"] + task["buggy_solution"]
    clean = task["prompt"] + task["canonical_solution"]
    a, b = buggy.split("\n"), clean.split("\n")
    bug = set()
    for tag, i1, i2, _, _ in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if tag in ("replace", "delete"):
            bug.update(range(i1, i2))
        elif tag == "insert":
            bug.add(min(i1, len(a) - 1))
    return buggy, clean, sorted(bug)


def covers(finding, lines):
    return any(finding["start"] <= line <= finding["end"] for line in lines)


def apply_fix(text, finding):
    lines = text.split("\n")
    fix = finding["fix"].rstrip("\n").split("\n")
    return "\n".join(lines[:finding["start"]] + fix + lines[finding["end"] + 1:])


class LspReviewer:
    name = "lsp"

    def __init__(self, args, binary):
        self.args, self.binary = args, binary

    def review(self, path, text, language, env=None):
        started = time.monotonic()
        command = ["nice", "-n", str(self.args.nice), self.binary, "review", os.path.basename(path), "--format", "json",
                   "--fail-on", "never", "--model", self.args.model, "--threads", str(self.args.threads),
                   "--log-level", "info", *self.args.lsp_arg]
        proc = subprocess.run(command, cwd=os.path.dirname(path), capture_output=True, text=True,
                              timeout=REVIEW_TIMEOUT_S, env=env)
        seconds = time.monotonic() - started
        stats = re.findall(r"ReviewStats \{[^}]*\}", proc.stderr)
        try:
            report = json.loads(proc.stdout)
        except ValueError:
            return {"findings": [], "review_s": seconds, "error": proc.stderr[-500:], "stats": stats}
        findings = [{"start": f["startLine"] - 1, "end": f["endLine"] - 1, "message": f["message"],
                     "category": f["category"], "fix": f["fix"], "fix_gain": f.get("fixGain")}
                    for f in report["findings"]]
        return {"findings": findings, "review_s": seconds, "error": None, "stats": stats}

    def close(self):
        pass


class PeerReviewer:
    name = "peer"

    def __init__(self, args, server):
        self.args, self.server = args, server

    def review(self, path, text, language, env=None):
        numbered = "".join(f"{i + 1} {line}\n" for i, line in enumerate(text.split("\n")))
        content = PEER_PROMPT.format(language=eq.LANGUAGES[language][0], path=os.path.basename(path), numbered=numbered)
        try:
            answer, seconds, _ = eq.chat(self.server, content, PEER_TOKENS)
        except (OSError, RuntimeError, ValueError, KeyError) as err:
            return {"findings": [], "review_s": None, "error": str(err), "answer": ""}
        return {"findings": peer_findings(answer, text), "review_s": seconds, "error": None, "answer": answer}

    def close(self):
        pass


def peer_findings(answer, text):
    """The issues of a peer answer, on the lines they name (as a peer shows them)."""
    start = answer.find("{")
    if start < 0:
        return []
    try:
        value, _ = json.JSONDecoder().raw_decode(answer[start:])
    except ValueError:
        return []
    issues = value.get("issues", []) if isinstance(value, dict) else []
    count = len(text.split("\n"))
    found = []
    for issue in issues if isinstance(issues, list) else []:
        try:
            first, last = int(issue.get("start_line")), int(issue.get("end_line", issue.get("start_line")))
        except (TypeError, ValueError, AttributeError):
            continue
        if not 1 <= first <= count:
            continue
        last = min(max(first, last), count)
        fix = issue.get("improved_code") or None
        found.append({"start": first - 1, "end": last - 1, "message": str(issue.get("issue", "")), "category": "bug",
                      "fix": fix if isinstance(fix, str) else None})
    return found


def summarize(records):
    header = ["language", "system", "tasks", "bug recall", "false alarms / clean file", "fix pass@1",
              "findings / buggy file", "review s p50 (buggy)"]
    rows = []
    for language in ("python", "rust"):
        for system in SYSTEMS:
            rs = [r for r in records if r["language"] == language and r["system"] == system]
            if not rs:
                continue
            times = [r["buggy"]["review_s"] for r in rs if r["buggy"].get("review_s") is not None]
            rows.append([language, system, len(rs), fmt(share([r["recall"] for r in rs])),
                         fmt(sum(len(r["clean"]["findings"]) for r in rs) / len(rs), 2),
                         fmt(share([r["fixed"] for r in rs])),
                         fmt(sum(len(r["buggy"]["findings"]) for r in rs) / len(rs), 2),
                         fmt(percentile(times, 50), 1)])
    return markdown_table(header, rows) + "\n\n" + PAPER_ANCHORS + gain_table(records)


def gain_table(records):
    """What `lsp` would score if findings whose fix gain (`fixGain`: how much more likely the model
    finds the code with the fix than without, natural log) is below a threshold were dropped, and
    findings without a fix kept or dropped: read from runs with every finding kept
    (`MISTRAL_LSP_REVIEW_MIN_GAIN=-inf`). The fix pass@1 column counts a task only if the finding
    whose fix was tested survives."""
    weighed = [r for r in records if r["system"] == "lsp"
               and any(f.get("fix_gain") is not None for side in ("buggy", "clean") for f in r[side]["findings"])]
    if not weighed:
        return ""
    header = ["language", "tasks", "min gain", "findings without a fix", "bug recall", "false alarms / clean file",
              "fix pass@1"]
    rows = []
    for language in ("python", "rust"):
        rs = [r for r in records if r["system"] == "lsp" and r["language"] == language]
        if not rs:
            continue
        for without_fix in ("kept", "dropped"):
            for threshold in (None, -4.0, -2.0, -1.0, 0.0, 1.0, 2.0, 4.0):
                def survives(f):
                    gain = f.get("fix_gain")
                    if gain is None:
                        return without_fix == "kept" or (f.get("fix") and threshold is None)
                    return threshold is None or gain >= threshold

                recall = [any(survives(f) and covers(f, r["bug_lines"]) for f in r["buggy"]["findings"]) for r in rs]
                alarms = sum(sum(1 for f in r["clean"]["findings"] if survives(f)) for r in rs) / len(rs)
                fixed = []
                for r in rs:
                    hit = [f for f in r["buggy"]["findings"] if covers(f, r["bug_lines"])]
                    tested = next((f for f in hit if f.get("fix")), None)
                    fixed.append(bool(r["fixed"] and tested and survives(tested)))
                rows.append([language, len(rs), "none" if threshold is None else fmt(threshold, 1), without_fix,
                             fmt(share(recall)), fmt(alarms, 2), fmt(share(fixed))])
    return "\n\nIf findings were dropped by their fix gain (`lsp` only):\n\n" + markdown_table(header, rows)


def grammar_speed(args, binary, languages):
    reviewer = LspReviewer(args, binary)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-review-speed-") as folder:
        for language in languages:
            totals = {"on": [0, 0.0], "off": [0, 0.0]}
            for task in eq.select(eq.load_tasks(language), args.limit or 5, args.seed):
                buggy, _, _ = files(task, language)
                path = os.path.join(folder, "solution." + eq.LANGUAGES[language][1])
                with open(path, "w", encoding="utf-8") as f:
                    f.write(buggy)
                for mode in ("on", "off"):
                    env = dict(os.environ, MISTRAL_LSP_REVIEW_GRAMMAR="1" if mode == "on" else "0")
                    result = reviewer.review(path, buggy, language, env=env)
                    for stats in result["stats"]:
                        tokens = int(re.search(r"generated_tokens: (\d+)", stats).group(1))
                        seconds = re.search(r"generation: ([\d.]+)(m?s)", stats)
                        value = float(seconds.group(1)) / (1000 if seconds.group(2) == "ms" else 1)
                        totals[mode][0] += tokens
                        totals[mode][1] += value
                    log(f"  [{language} {task['task_id']} grammar {mode}] {result['stats']}")
            rate = {mode: (t / s if s else None) for mode, (t, s) in totals.items()}
            cost = 1 - rate["on"] / rate["off"] if rate["on"] and rate["off"] else None
            rows.append([language, totals["on"][0], fmt(rate["on"], 1), totals["off"][0], fmt(rate["off"], 1),
                         fmt(cost * 100 if cost is not None else None, 1, " %")])
    return markdown_table(["language", "tokens (grammar)", "tokens/s (grammar)", "tokens (free)", "tokens/s (free)",
                           "cost of the grammar"], rows)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--systems", default="lsp,peer", help="comma-separated: lsp, peer (default both)")
    parser.add_argument("--languages", default="python,rust", help="comma-separated: python, rust (default both)")
    parser.add_argument("--limit", type=int, help="only N tasks per language: the first N, or a seeded sample with --seed")
    parser.add_argument("--seed", type=int, help="with --limit: a seeded random sample instead of the first N")
    parser.add_argument("--model", default=eq.default_model(), help="GGUF model (default: Qwen2.5-Coder 1.5B Instruct Q4_K_M)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for both (default 2)")
    parser.add_argument("--context-size", type=int, default=8192, help="llama-server's context size (default 8192)")
    parser.add_argument("--lsp-binary", default=eq.default_lsp_binary(), help="mistral-lsp binary")
    parser.add_argument("--lsp-arg", action="append", default=[], help="extra argument for `mistral-lsp review`, repeatable")
    parser.add_argument("--llama-server", default=benchlib.default_llama_server(), help="llama-server binary")
    parser.add_argument("--llama-server-arg", action="append", default=[], help="extra argument for llama-server, repeatable")
    parser.add_argument("--nice", type=int, default=5, help="niceness of the model processes (default 5)")
    parser.add_argument("--grammar-speed", action="store_true", help="measure the grammar's cost and exit")
    parser.add_argument("--report", nargs="+", metavar="RESULTS.json", help="print the tables of earlier runs' result files")
    parser.add_argument("--out", help="per-task records as JSON (default target/bench-results/review-quality-DATE.json)")
    args = parser.parse_args()
    split = lambda text: [x.strip() for x in text.split(",") if x.strip()]
    languages, systems = split(args.languages), split(args.systems)
    if any(l not in eq.LANGUAGES for l in languages) or any(s not in SYSTEMS for s in systems):
        sys.exit("bench: languages are python, rust; systems are lsp, peer")
    if args.report:
        records, metas = benchlib.load_reports(args.report)
        for meta in metas:
            print(f"- {meta.get('model')}; {benchlib.describe_source(meta)}; {meta['date']}; {meta.get('elapsed_s')} s; {meta.get('tasks')}")
        print()
        print(summarize(records))
        return
    if not os.path.exists(args.model):
        sys.exit(f"bench: no model at {args.model}; run scripts/fetch-test-models qwen-1.5b or pass --model")
    binary, lsp_info = benchlib.snapshot_binary(args.lsp_binary)
    selection = (f"the first {args.limit}" if args.seed is None else f"a sample of {args.limit} (seed {args.seed})") \
        if args.limit else "all 164"
    started = time.monotonic()
    try:
        if args.grammar_speed:
            table = grammar_speed(args, binary, languages)
            print(f"Review generation speed with and without the grammar, {os.path.basename(args.model)}, {args.threads} "
                  f"threads; {selection} buggy files per language; {round(time.monotonic() - started)} s\n")
            print(table)
            return
        if "rust" in languages:
            eq.ensure_scratch()
        out = args.out or benchlib.default_results_path("review-quality")
        meta = benchlib.run_metadata(args, lsp_info)
        meta.update({"benchmark": "humaneval-fix-review", "tasks": selection + " tasks per language"})
        records = []
        server = benchlib.LlamaServer(args) if "peer" in systems else None
        reviewers = [LspReviewer(args, binary) if s == "lsp" else PeerReviewer(args, server) for s in systems]
        try:
            with tempfile.TemporaryDirectory(prefix="bench-review-") as folder:
                for language in languages:
                    tasks = eq.select(eq.load_tasks(language), args.limit, args.seed)
                    path = os.path.join(folder, "solution." + eq.LANGUAGES[language][1])
                    for index, task in enumerate(tasks):
                        buggy, clean, bug = files(task, language)
                        for reviewer in reviewers:
                            record = {"language": language, "task_id": task["task_id"], "system": reviewer.name,
                                      "bug_lines": bug}
                            for name, text in (("buggy", buggy), ("clean", clean)):
                                with open(path, "w", encoding="utf-8") as f:
                                    f.write(text)
                                record[name] = reviewer.review(path, text, language)
                            hit = [f for f in record["buggy"]["findings"] if covers(f, bug)]
                            record["recall"] = bool(hit)
                            fixing = next((f for f in hit if f.get("fix")), None)
                            record["fixed"] = False
                            if fixing:
                                _, passed, error = eq.score(task, language, apply_fix(buggy, fixing), folder)
                                record["fixed"], record["fix_error"] = passed, error
                            records.append(record)
                            log(f"  [{reviewer.name} {language} {index + 1}/{len(tasks)} {task['task_id']}] "
                                f"recall {record['recall']}, fixed {record['fixed']}, "
                                f"{len(record['buggy']['findings'])} findings / {len(record['clean']['findings'])} on the clean twin, "
                                f"{fmt(record['buggy']['review_s'], 1)} s")
                        meta["elapsed_s"] = round(time.monotonic() - started)
                        benchlib.write_results(out, {"meta": meta, "records": records})
        finally:
            if server:
                server.close()
        meta["elapsed_s"] = round(time.monotonic() - started)
        table = summarize(records)
        benchlib.write_results(out, {"meta": meta, "records": records, "table": table})
        print(f"HumanEvalFix as review, {os.path.basename(args.model)}, {args.threads} threads; "
              f"{benchlib.describe_source(meta)}; {meta['date']}; {meta['elapsed_s']} s; {selection} tasks per language\n")
        print(table)
        log(f"bench: records in {os.path.relpath(out, benchlib.REPO)}")
    finally:
        os.remove(binary)


if __name__ == "__main__":
    main()
