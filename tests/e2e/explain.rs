//! "Explain this code": the code action, the streamed `mistral-lsp.explain` command, its errors
//! and cancellation, and the command line, on the test backend.

use serde_json::{json, Value};

use crate::harness::Server;

const FILE: &str = "import os\n\n\ndef join(a, b):\n    return os.path.join(a, b)\n\n\n\nx = 1\n";

/// Clients that take code action literals with the LLM-generated tag.
fn capabilities() -> Value {
    json!({"textDocument": {"codeAction": {
        "codeActionLiteralSupport": {"codeActionKind": {"valueSet": [""]}},
        "tagSupport": {"valueSet": [1]},
    }}})
}

fn actions(server: &mut Server, uri: &str, start: (u32, u32), end: (u32, u32)) -> Result<Value, Value> {
    let range = json!({"start": {"line": start.0, "character": start.1}, "end": {"line": end.0, "character": end.1}});
    server.request(
        "textDocument/codeAction",
        json!({"textDocument": {"uri": uri}, "range": range, "context": {"diagnostics": []}}),
    )
}

fn explain(server: &mut Server, arguments: Value) -> i64 {
    server.send_request("workspace/executeCommand", json!({"command": "mistral-lsp.explain", "arguments": [arguments]}))
}

#[test]
fn the_code_action_explains_the_function_around_the_cursor_and_streams_it() {
    let mut server = Server::start("test:checksum?tokens=6", capabilities(), Value::Null);
    server.wait_ready();
    server.open("file:///w/e.py", "python", FILE);
    let found = actions(&mut server, "file:///w/e.py", (4, 8), (4, 8)).unwrap();
    let action = &found[0];
    assert_eq!(action["title"], "Explain this code");
    assert_eq!(action["tags"], json!([1]), "marked as LLM-generated for clients that know the tag");
    let command = &action["command"];
    assert_eq!(command["command"], "mistral-lsp.explain");
    let arguments = &command["arguments"][0];
    assert_eq!(arguments["range"], json!({"start": {"line": 3, "character": 0}, "end": {"line": 4, "character": 29}}));

    let id = explain(&mut server, arguments.clone());
    let result = server.response(id).unwrap();
    let markdown = result["markdown"].as_str().unwrap().to_owned();
    assert!(markdown.starts_with('"') && markdown.len() > 10, "the test backend's answer: {markdown}");
    // The notifications: the text grows, and the last one is done with the whole markdown.
    let mut texts = Vec::new();
    loop {
        let params = server.notification("mistral-lsp/explanation")["params"].clone();
        assert_eq!(
            (&params["uri"], &params["range"], &params["id"]),
            (&json!("file:///w/e.py"), &arguments["range"], &result["id"])
        );
        texts.push(params["text"].as_str().unwrap().to_owned());
        if params["done"] == json!(true) {
            break;
        }
    }
    assert_eq!(texts.last().unwrap(), &markdown);
    assert!(texts.windows(2).all(|w| w[1].starts_with(w[0].as_str())), "each one grows the last: {texts:?}");
    server.shutdown();
}

#[test]
fn nothing_to_explain_gets_no_action_and_a_clear_error() {
    let mut server = Server::start("test:checksum", json!({}), Value::Null);
    server.wait_ready();
    server.open("file:///w/e.py", "python", FILE);
    // Blank lines only: no action.
    assert_eq!(actions(&mut server, "file:///w/e.py", (5, 0), (7, 0)).unwrap(), Value::Null);
    let range = json!({"start": {"line": 5, "character": 0}, "end": {"line": 7, "character": 0}});
    let id = explain(&mut server, json!({"uri": "file:///w/e.py", "range": range}));
    let error = server.response(id).unwrap_err();
    assert!(error["message"].as_str().unwrap().contains("nothing to explain"), "{error}");
    // An unknown document, a bad argument: errors, and the server goes on.
    let id = explain(&mut server, json!({"uri": "file:///w/nope.py", "range": range}));
    assert!(server.response(id).unwrap_err()["message"].as_str().unwrap().contains("not open"));
    let id = explain(&mut server, json!("file:///w/e.py"));
    assert_eq!(server.response(id).unwrap_err()["code"], -32602);
    // A client without code action literals gets the bare command.
    let found = actions(&mut server, "file:///w/e.py", (4, 8), (4, 8)).unwrap();
    assert_eq!(found[0]["command"], "mistral-lsp.explain", "{found}");
    server.shutdown();
}

#[test]
fn a_cancelled_explanation_stops_and_completions_go_first_meanwhile() {
    // Twenty tokens 300 ms apart: the explanation takes six seconds at least.
    let mut server = Server::start("test:checksum?tokens=20&token_ms=300", capabilities(), Value::Null);
    server.wait_ready();
    server.open("file:///w/e.py", "python", FILE);
    let range = json!({"start": {"line": 3, "character": 0}, "end": {"line": 4, "character": 29}});
    let id = explain(&mut server, json!({"uri": "file:///w/e.py", "range": range}));
    // It streams: the first words are out.
    let first = server.notification("mistral-lsp/explanation");
    assert_eq!(first["params"]["done"], false);
    // A completion asked now is answered while the explanation is still being written.
    let inline = server.send_inline("file:///w/e.py", 8, 5);
    assert!(server.inline_items(inline).is_ok());
    assert!(server.responses_for(id).is_empty(), "the explanation is still running");
    server.cancel(id);
    assert_eq!(server.response(id).unwrap_err()["code"], -32800, "cancelled");
    let status = server.request("workspace/executeCommand", json!({"command": "mistral-lsp.status"})).unwrap();
    assert_eq!(status["state"], "ready", "the server goes on: {status}");
    server.shutdown();
}

/// `mistral-lsp explain FILE …` with extra arguments: (exit code, stdout, stderr).
fn explain_command(file: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_mistral-lsp"))
        .arg("explain")
        .arg(file)
        .args(args)
        .env_remove("MISTRAL_LSP_MODEL")
        .output()
        .unwrap();
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    (output.status.code().unwrap_or(-1), text(&output.stdout), text(&output.stderr))
}

#[test]
fn the_command_line_explains_the_function_around_a_line() {
    let dir = crate::harness::scratch("explain-cli");
    let file = dir.join("e.py");
    std::fs::write(&file, FILE).unwrap();
    let (code, out, err) = explain_command(&file, &["--line", "5", "--model", "test:checksum"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.trim().starts_with('"') && out.trim().len() > 10, "the test backend's answer on stdout: {out:?}");
    // Lines 6 to 8 are blank: a clear error, exit 1.
    let (code, out, err) = explain_command(&file, &["--line", "6", "--end-line", "8", "--model", "test:checksum"]);
    assert_eq!((code, out.as_str()), (1, ""), "{err}");
    assert!(err.contains("nothing to explain"), "{err}");
    let (code, _, err) = explain_command(&file, &["--line", "0", "--model", "test:checksum"]);
    assert!(code != 0 && err.contains("1-based"), "{err}");
}

#[test]
fn the_real_model_explains_a_function_in_prose() {
    let _turn = crate::harness::model_turn();
    let model = crate::model::test_model("qwen2.5-coder-0.5b-instruct-q4_k_m.gguf");
    let dir = crate::harness::scratch("explain-model");
    let file = dir.join("mean.py");
    let code = "def mean(values):\n    if not values:\n        raise ValueError(\"no values\")\n    return sum(values) / len(values)\n";
    std::fs::write(&file, code).unwrap();
    let args = ["--line", "2", "--model", model.to_str().unwrap(), "--threads", "2"];
    let (status, out, err) = explain_command(&file, &args);
    assert_eq!(status, 0, "{err}");
    let summary = out.trim().split("\n\n").next().unwrap_or_default().to_owned();
    assert!(summary.split_whitespace().count() >= 5, "a summary paragraph first: {out}");
    assert!(out.to_lowercase().contains("mean") || out.to_lowercase().contains("average"), "about the code: {out}");
}
