//! Start-up, capabilities, encoding negotiation, shutdown and exit codes.

use serde_json::{json, Value};

use crate::harness::Server;

const MODEL: &str = "test:checksum";

#[test]
fn initialize_advertises_every_capability_at_once() {
    let mut server = Server::builder().arg("--model").arg(MODEL).spawn();
    let result = server.initialize(json!({}), Value::Null);
    let caps = &result["capabilities"];
    assert_eq!(caps["positionEncoding"], "utf-16");
    assert_eq!(caps["textDocumentSync"]["change"], 2, "incremental sync");
    assert_eq!(caps["textDocumentSync"]["openClose"], true);
    assert!(caps["textDocumentSync"]["save"].is_object());
    assert!(caps["inlineCompletionProvider"].is_object());
    assert!(caps["completionProvider"].is_object());
    // Exactly the kinds served: explain (no particular kind) and document (a rewrite).
    assert_eq!(
        caps["codeActionProvider"],
        json!({"codeActionKinds": ["", "refactor.rewrite", "quickfix"], "resolveProvider": true})
    );
    assert_eq!(
        caps["executeCommandProvider"]["commands"],
        json!(["mistral-lsp.status", "mistral-lsp.explain", "mistral-lsp.documentFunction", "mistral-lsp.review"])
    );
    assert_eq!(result["serverInfo"]["name"], "mistral-lsp");
    server.shutdown();
}

#[test]
fn position_encoding_follows_the_clients_preference() {
    for (offered, expected) in [
        (json!(["utf-8", "utf-16"]), "utf-8"),
        (json!(["utf-32"]), "utf-32"),
        (json!(["utf-16", "utf-8"]), "utf-16"),
        (json!(["latin-1"]), "utf-16"),
    ] {
        let mut server = Server::builder().arg("--model").arg(MODEL).spawn();
        let result = server.initialize(json!({"general": {"positionEncodings": offered}}), Value::Null);
        assert_eq!(result["capabilities"]["positionEncoding"], expected, "offered {offered}");
        server.shutdown();
    }
}

#[test]
fn utf8_positions_are_honoured() {
    let mut server = Server::start(MODEL, json!({"general": {"positionEncodings": ["utf-8"]}}), Value::Null);
    server.wait_ready();
    let text = "é😀 + x\n";
    server.open("file:///u.txt", "plaintext", text);
    // Byte column 6 is after "é😀" in UTF-8.
    let items = server.inline("file:///u.txt", 0, 6).unwrap();
    assert_eq!(items[0]["insertText"], crate::harness::checksum(text, 6));
    assert_eq!(items[0]["range"]["start"], json!({"line": 0, "character": 6}));
    server.shutdown();
}

#[test]
fn exit_without_shutdown_is_code_1() {
    let mut server = Server::start(MODEL, json!({}), Value::Null);
    server.notify("exit", Value::Null);
    assert_eq!(server.wait_exit(), Some(1));
}

#[test]
fn closed_stdin_ends_the_server() {
    let mut server = Server::start(MODEL, json!({}), Value::Null);
    server.close_stdin();
    assert_eq!(server.wait_exit(), Some(1));
}

#[test]
fn version_and_help_print_to_stderr_only() {
    for flag in ["--version", "--help"] {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_mistral-lsp")).arg(flag).output().unwrap();
        assert!(output.status.success());
        assert!(output.stdout.is_empty(), "stdout is the LSP channel");
        assert!(String::from_utf8_lossy(&output.stderr).contains("mistral-lsp"));
    }
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_mistral-lsp")).arg("--bogus").output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(output.stdout.is_empty());
}

#[test]
fn requests_before_initialize_are_refused_and_the_server_carries_on() {
    let mut server = Server::builder().arg("--model").arg(MODEL).spawn();
    let err = server.request("textDocument/inlineCompletion", json!({})).unwrap_err();
    assert_eq!(err["code"], -32002, "server not initialized");
    server.initialize(json!({}), Value::Null);
    server.shutdown();
}
