//! Review: the `mistral-lsp.review` command publishing diagnostics that follow edits and carry
//! quick fixes, its cancellation and errors, the `mistral-lsp review` command line in every
//! format (SARIF checked against the official schema) on a real git history, and real models
//! whose grammar-bound answers always parse.

use serde_json::{json, Value};

use crate::harness::Server;

/// The test backend reports the first line that holds the word `bug` (see its docs).
const PY: &str = "import os\n\n\ndef total(xs):\n    s = 0\n    for x in xs:\n        s = bug(s, x)\n    return s\n";

fn quick_fix_client() -> Value {
    json!({"textDocument": {
        "codeAction": {"codeActionLiteralSupport": {"codeActionKind": {"valueSet": ["", "quickfix"]}}},
        "publishDiagnostics": {"versionSupport": true},
    }})
}

fn actions(server: &mut Server, uri: &str, line: u32, only: Option<&str>) -> Vec<Value> {
    let at = json!({"line": line, "character": 4});
    let mut context = json!({"diagnostics": []});
    if let Some(only) = only {
        context["only"] = json!([only]);
    }
    let found = server
        .request(
            "textDocument/codeAction",
            json!({"textDocument": {"uri": uri}, "range": {"start": at, "end": at}, "context": context}),
        )
        .unwrap();
    found.as_array().cloned().unwrap_or_default()
}

fn review(server: &mut Server, arguments: Value) -> i64 {
    server.send_request("workspace/executeCommand", json!({"command": "mistral-lsp.review", "arguments": [arguments]}))
}

/// The next diagnostics published for `uri`.
fn diagnostics(server: &mut Server, uri: &str) -> (Vec<Value>, Value) {
    loop {
        let params = server.notification("textDocument/publishDiagnostics")["params"].clone();
        if params["uri"] == uri {
            return (params["diagnostics"].as_array().unwrap().clone(), params["version"].clone());
        }
    }
}

#[test]
fn findings_become_diagnostics_with_quick_fixes_and_follow_edits() {
    let uri = "file:///r/a.py";
    let mut server = Server::start("test:checksum", quick_fix_client(), Value::Null);
    server.wait_ready();
    server.open(uri, "python", PY);
    let found = actions(&mut server, uri, 5, None);
    let action = found.iter().find(|a| a["title"] == "Review this function").unwrap_or_else(|| panic!("{found:?}"));
    let command = &action["command"];
    assert_eq!(command["command"], "mistral-lsp.review");
    assert_eq!(command["arguments"][0]["range"]["start"], json!({"line": 3, "character": 0}));

    let id = review(&mut server, command["arguments"][0].clone());
    assert_eq!(server.response(id).unwrap()["findings"], 1);
    let (published, version) = diagnostics(&mut server, uri);
    assert_eq!(version, 1);
    assert_eq!(published.len(), 1, "{published:?}");
    let diagnostic = &published[0];
    assert_eq!(
        diagnostic["range"],
        json!({"start": {"line": 6, "character": 8}, "end": {"line": 6, "character": 21}}),
        "on the code of the line, not its indentation"
    );
    assert_eq!(
        (&diagnostic["source"], &diagnostic["code"], &diagnostic["severity"]),
        (&json!("mistral-lsp"), &json!("bug"), &json!(2))
    );

    // The quick fix replaces the whole line, and only where the finding is.
    let fixes = actions(&mut server, uri, 6, Some("quickfix"));
    assert_eq!(fixes.len(), 1, "{fixes:?}");
    assert_eq!(fixes[0]["kind"], "quickfix");
    assert_eq!(fixes[0]["diagnostics"][0]["code"], "bug");
    let edit = &fixes[0]["edit"]["changes"][uri][0];
    assert_eq!(edit["range"], json!({"start": {"line": 6, "character": 0}, "end": {"line": 7, "character": 0}}));
    assert_eq!(edit["newText"], "        s = fixed(s, x)\n");
    assert!(actions(&mut server, uri, 4, Some("quickfix")).is_empty(), "no fix on other lines");

    // A line added above moves the finding down; an edit on its line removes it.
    let at = |line: u32, character: u32| json!({"line": line, "character": character});
    server.change(uri, 2, json!([{"range": {"start": at(0, 0), "end": at(0, 0)}, "text": "import sys\n"}]));
    let (published, version) = diagnostics(&mut server, uri);
    assert_eq!((published.len(), &published[0]["range"]["start"], version), (1, &at(7, 8), json!(2)));
    server.change(uri, 3, json!([{"range": {"start": at(7, 12), "end": at(7, 15)}, "text": "add"}]));
    let (published, _) = diagnostics(&mut server, uri);
    assert!(published.is_empty(), "{published:?}");
    server.shutdown();
}

#[test]
fn edits_made_while_a_review_runs_move_its_findings_instead_of_discarding_them() {
    let uri = "file:///r/a.py";
    let at = |line: u32, character: u32| json!({"line": line, "character": character});
    // Slow enough that the edits below land while the review reads its prompt; should one land
    // before the review takes its copy of the text, the outcome checked is the same.
    let mut server = Server::start("test:checksum?prompt_ms=1500", quick_fix_client(), Value::Null);
    server.wait_ready();
    server.open(uri, "python", PY);
    let id = review(&mut server, json!({"uri": uri}));
    server.change(uri, 2, json!([{"range": {"start": at(0, 0), "end": at(0, 0)}, "text": "import sys\n"}]));
    server.change(uri, 3, json!([{"range": {"start": at(1, 0), "end": at(1, 0)}, "text": "import re\n"}]));
    assert_eq!(server.response(id).unwrap()["findings"], 1, "not ContentModified");
    let (published, version) = diagnostics(&mut server, uri);
    assert_eq!((published.len(), &published[0]["range"]["start"], version), (1, &at(8, 8), json!(3)));

    // An edit on the finding's line while the review runs: the finding goes with it.
    let id = review(&mut server, json!({"uri": uri}));
    server.change(uri, 4, json!([{"range": {"start": at(8, 12), "end": at(8, 15)}, "text": "add"}]));
    server.response(id).unwrap();
    loop {
        let (published, version) = diagnostics(&mut server, uri);
        if version == 4 {
            assert!(published.is_empty(), "{published:?}");
            break;
        }
    }
    server.shutdown();
}

#[test]
fn a_whole_document_is_reviewed_and_a_review_can_be_cancelled() {
    let uri = "file:///r/a.py";
    let mut server = Server::start("test:checksum?prompt_ms=200", quick_fix_client(), Value::Null);
    server.wait_ready();
    server.open(uri, "python", PY);
    let id = review(&mut server, json!({"uri": uri}));
    assert_eq!(server.response(id).unwrap()["findings"], 1);
    let (published, _) = diagnostics(&mut server, uri);
    assert_eq!(published[0]["range"]["start"]["line"], 6);

    // Closing the document clears its diagnostics.
    server.notify("textDocument/didClose", json!({"textDocument": {"uri": uri}}));
    assert!(diagnostics(&mut server, uri).0.is_empty());

    // A slow review, cancelled: the request ends cancelled and the server goes on.
    let mut server = Server::start("test:checksum?prompt_ms=60000", quick_fix_client(), Value::Null);
    server.wait_ready();
    server.open(uri, "python", PY);
    let id = review(&mut server, json!({"uri": uri}));
    server.cancel(id);
    assert_eq!(server.response(id).unwrap_err()["code"], -32800);
    // Errors: an unknown document, no arguments.
    let id = review(&mut server, json!({"uri": "file:///r/nope.py"}));
    assert!(server.response(id).unwrap_err()["message"].as_str().unwrap().contains("not open"));
    let bare = server.request("workspace/executeCommand", json!({"command": "mistral-lsp.review"}));
    assert_eq!(bare.unwrap_err()["code"], -32602);
    let status = server.request("workspace/executeCommand", json!({"command": "mistral-lsp.status"})).unwrap();
    assert_eq!(status["state"], "ready", "{status}");
    server.shutdown();
}

#[test]
fn completions_are_answered_while_a_review_runs() {
    let uri = "file:///r/a.py";
    let mut server = Server::start("test:checksum?tokens=20&token_ms=300", quick_fix_client(), Value::Null);
    server.wait_ready();
    server.open(uri, "python", PY);
    let id = review(&mut server, json!({"uri": uri}));
    server.wait_log("engine job started (Background)");
    // The review's background job writes for 6 s; the completion goes first.
    let inline = server.send_inline(uri, 7, 12);
    assert!(server.inline_items(inline).is_ok());
    assert!(server.responses_for(id).is_empty(), "the review is still running");
    server.cancel(id);
    assert_eq!(server.response(id).unwrap_err()["code"], -32800);
    server.shutdown();
}

#[test]
fn saving_reviews_the_document_once_saves_pause() {
    let uri = "file:///r/a.py";
    let mut server =
        Server::builder().arg("--model").arg("test:checksum").arg("--set").arg("review.onSave=true").spawn();
    server.initialize(quick_fix_client(), Value::Null);
    server.wait_ready();
    server.open(uri, "python", PY);
    // Two saves in a row: the first review is cancelled before it starts; one runs.
    server.notify("textDocument/didSave", json!({"textDocument": {"uri": uri}}));
    server.notify("textDocument/didSave", json!({"textDocument": {"uri": uri}}));
    let (published, _) = diagnostics(&mut server, uri);
    assert_eq!(published.len(), 1, "{published:?}");
    assert_eq!(published[0]["range"]["start"]["line"], 6);
    server.wait_log("review on save of file:///r/a.py: 1 findings");
    assert_eq!(server.log().matches("review of file:///r/a.py").count(), 1, "one review for two saves");
    server.shutdown();

    // Off by default: a save, then a review command whose diagnostics are the first published.
    let mut server = Server::start("test:checksum", quick_fix_client(), Value::Null);
    server.wait_ready();
    server.open(uri, "python", PY);
    server.notify("textDocument/didSave", json!({"textDocument": {"uri": uri}}));
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let id = review(&mut server, json!({"uri": uri}));
    assert_eq!(server.response(id).unwrap()["findings"], 1);
    assert_eq!(server.log().matches("review of file:///r/a.py").count(), 1, "only the command's review");
    server.shutdown();
}

/// `mistral-lsp review …` in `dir`: (exit code, stdout, stderr).
fn review_command(dir: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_mistral-lsp"))
        .arg("review")
        .args(args)
        .current_dir(dir)
        .env_remove("MISTRAL_LSP_MODEL")
        .output()
        .unwrap();
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    (output.status.code().unwrap_or(-1), text(&output.stdout), text(&output.stderr))
}

fn git(dir: &std::path::Path, args: &[&str]) {
    let status = std::process::Command::new("git")
        .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
        .args(args)
        .current_dir(dir)
        .status()
        .unwrap();
    assert!(status.success(), "git {args:?}");
}

const BEFORE: &str = "def first(xs):\n    y = bug(xs)\n    return y + 1\n\n\ndef second(xs):\n    return xs\n";
const AFTER: &str = "def first(xs):\n    y = bug(xs)\n    return y + 2\n\n\ndef second(xs):\n    return bug(xs)\n";

/// Whether `document` is valid against the official SARIF 2.1.0 schema (`scripts/test` fetches
/// it with `scripts/fetch-sarif-schema`).
fn sarif_errors(document: &str) -> String {
    use std::io::Write;
    let schema = std::env::var("MISTRAL_LSP_SARIF_SCHEMA").map(std::path::PathBuf::from).unwrap_or_else(|_| {
        std::path::PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/mistral-lsp/sarif/sarif-2.1.0-rtm.5.json")
    });
    assert!(schema.is_file(), "{} is missing: run scripts/fetch-sarif-schema", schema.display());
    let check = "import json, sys, jsonschema\n\
schema = json.load(open(sys.argv[1]))\n\
errors = list(jsonschema.Draft4Validator(schema).iter_errors(json.load(sys.stdin)))\n\
print('\\n'.join(f'{list(e.path)}: {e.message}' for e in errors))\n";
    let mut child = std::process::Command::new("python3")
        .args(["-c", check])
        .arg(&schema)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(document.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "the validator ran (python3 with jsonschema)");
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

#[test]
fn the_command_line_reviews_files_and_diffs_in_every_format() {
    let dir = crate::harness::scratch("review-cli");
    std::fs::write(dir.join("a.py"), BEFORE).unwrap();
    std::fs::write(dir.join("clean.py"), "def ok():\n    return 1\n").unwrap();
    git(&dir, &["init", "-q"]);
    git(&dir, &["add", "."]);
    git(&dir, &["commit", "-q", "-m", "first"]);
    std::fs::write(dir.join("a.py"), AFTER).unwrap();
    let model = ["--model", "test:checksum"];

    // The whole file: the first line with a bug, line 2.
    let (code, out, err) = review_command(&dir, &[&["a.py"][..], &model].concat());
    assert_eq!(code, 1, "an error-level finding fails the run: {err}");
    assert_eq!(out, "a.py:2: error [bug] This line has a bug.\n    -     y = bug(xs)\n    +     y = fixed(xs)\n");

    // The diff: line 2 did not change, line 7 did.
    let diff = |format: &str, fail_on: &str| {
        review_command(&dir, &[&["--diff", "HEAD", "--format", format, "--fail-on", fail_on][..], &model].concat())
    };
    let (code, out, err) = diff("json", "never");
    assert_eq!(code, 0, "{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    let findings = report["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 1, "{report}");
    assert_eq!((&findings[0]["path"], &findings[0]["startLine"]), (&json!("a.py"), &json!(7)));
    assert_eq!(findings[0]["fix"], "    return fixed(xs)\n");

    let (code, out, _) = diff("github", "error");
    assert_eq!(code, 1);
    assert_eq!(out, "::error file=a.py,line=7,endLine=7,title=mistral-lsp (bug)::This line has a bug.\n");

    let (_, out, _) = diff("sarif", "never");
    assert_eq!(sarif_errors(&out), "", "valid SARIF 2.1.0:\n{out}");
    let sarif: Value = serde_json::from_str(&out).unwrap();
    let result = &sarif["runs"][0]["results"][0];
    assert_eq!(result["ruleId"], "mistral-lsp/bug");
    assert_eq!(result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"], "a.py");
    assert!(result["partialFingerprints"]["mistralLsp/v1"].as_str().is_some_and(|f| f.len() == 16));

    let (_, out, _) = diff("rdjson", "never");
    let rdjson: Value = serde_json::from_str(&out).unwrap();
    let diagnostic = &rdjson["diagnostics"][0];
    assert_eq!(diagnostic["location"]["range"]["start"], json!({"line": 7, "column": 5}));
    assert_eq!(diagnostic["suggestions"][0]["text"], "    return fixed(xs)\n");

    // Nothing found: exit 0 and no output; usage and model errors: exit 2.
    let (code, out, err) = review_command(&dir, &[&["clean.py", "--fail-on", "warning"][..], &model].concat());
    assert_eq!((code, out.as_str()), (0, ""), "{err}");
    let (code, _, err) = review_command(&dir, &model);
    assert!(code == 2 && err.contains("needs files"), "{code} {err}");
    let (code, _, err) = review_command(&dir, &["a.py", "--format", "xml"]);
    assert!(code == 2 && err.contains("--format"), "{code} {err}");
    let (code, _, err) = review_command(&dir, &["a.py", "--model", "/nonexistent/model.gguf"]);
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = review_command(&dir, &[&["--diff", "no-such-revision"][..], &model].concat());
    assert!(code == 2 && err.contains("git diff"), "{code} {err}");
}

const RS: &str = "pub fn average(values: &[f64]) -> f64 {\n    let mut total = 0.0;\n    for v in values {\n        total += v;\n    }\n    total / (values.len() - 1) as f64\n}\n";

const PY_BUGGY: &str = "def below_zero(operations):\n    balance = 0\n    for op in operations:\n        balance += op\n        if balance <= 0:\n            return True\n    return False\n";

/// A real model reviews a Python and a Rust file over LSP: every diagnostic is on lines that
/// exist, and the grammar-bound answers parsed.
#[test]
fn the_real_model_reviews_python_and_rust_with_answers_that_parse() {
    let _turn = crate::harness::model_turn();
    let model = crate::model::test_model("qwen2.5-coder-0.5b-instruct-q4_k_m.gguf");
    let mut server = Server::builder().arg("--model").arg(model.to_str().unwrap()).arg("--threads").arg("2").spawn();
    server.initialize(quick_fix_client(), Value::Null);
    server.wait_ready();
    for (uri, language, text) in [("file:///r/b.py", "python", PY_BUGGY), ("file:///r/m.rs", "rust", RS)] {
        server.open(uri, language, text);
        let id = review(&mut server, json!({"uri": uri}));
        let result = server.response(id).unwrap();
        let (published, _) = diagnostics(&mut server, uri);
        assert_eq!(result["findings"], json!(published.len()));
        let lines = text.lines().count() as u64;
        for diagnostic in &published {
            let range = &diagnostic["range"];
            assert!(range["end"]["line"].as_u64().unwrap() < lines, "{diagnostic}");
            assert!(!diagnostic["message"].as_str().unwrap().is_empty());
        }
    }
    assert!(!server.log().contains("unparsed: 1"), "every answer parsed:\n{}", server.log());
    assert_eq!(server.log().matches("unparsed: 0").count(), 2, "{}", server.log());
    server.shutdown();
}

/// The weakest model, through the command line: the grammar still gives JSON that parses, and
/// every fix shown was weighed.
#[test]
fn the_weakest_model_still_answers_in_json_that_parses() {
    let _turn = crate::harness::model_turn();
    let model = crate::model::test_model("smollm2-135m-instruct-q4_1.gguf");
    let dir = crate::harness::scratch("review-smol");
    std::fs::write(dir.join("b.py"), PY_BUGGY).unwrap();
    std::fs::write(dir.join("m.rs"), RS).unwrap();
    let args = ["b.py", "m.rs", "--format", "json", "--model", model.to_str().unwrap(), "--threads", "2"];
    let (code, out, err) = review_command(&dir, &[&args[..], &["--log-level", "info"]].concat());
    assert!(code == 0 || code == 1, "{code}: {err}");
    let report: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    for finding in report["findings"].as_array().unwrap() {
        let text = if finding["path"] == "b.py" { PY_BUGGY } else { RS };
        assert!(finding["endLine"].as_u64().unwrap() as usize <= text.lines().count(), "{finding}");
        // The embedded engine shows a fix only if it finds it at least as likely as the code.
        match finding["fix"].is_string() {
            true => assert!(finding["fixGain"].as_f64().unwrap() >= 0.0, "{finding}"),
            false => assert!(finding["fixGain"].is_null(), "{finding}"),
        }
    }
    // Every answer is JSON, or was cut by the token budget inside a string that looped.
    assert!(err.contains("unparsed: 0") && !err.contains("unparsed: 1"), "{err}");
}
