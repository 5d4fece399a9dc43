//! "Document this function": the code action, its lazy `codeAction/resolve` into a workspace edit,
//! the `mistral-lsp.documentFunction` command for clients that cannot resolve edits, stale
//! versions, and the real model writing a comment that parses above the right item.

use serde_json::{json, Value};

use crate::harness::Server;

const PY: &str = "import functools\n\n\nclass Cache:\n    @functools.lru_cache(maxsize=None)\n    def get(self, key):\n        return key * 2\n\n    def documented(self):\n        \"\"\"Already.\"\"\"\n        return 1\n";

const RS: &str = "pub struct Stack {\n    items: Vec<i32>,\n}\n\nimpl Stack {\n    #[inline]\n    #[must_use]\n    pub fn peek(&self) -> Option<&i32> {\n        self.items.last()\n    }\n\n    /// Already documented.\n    pub fn len(&self) -> usize {\n        self.items.len()\n    }\n}\n";

/// A client that resolves code actions' edits, with versioned document changes.
fn resolving() -> Value {
    json!({
        "textDocument": {"codeAction": {
            "codeActionLiteralSupport": {"codeActionKind": {"valueSet": ["", "refactor.rewrite"]}},
            "resolveSupport": {"properties": ["edit"]},
            "tagSupport": {"valueSet": [1]},
        }},
        "workspace": {"workspaceEdit": {"documentChanges": true}},
    })
}

fn actions(server: &mut Server, uri: &str, line: u32, character: u32, only: Option<&str>) -> Value {
    let at = json!({"line": line, "character": character});
    let mut context = json!({"diagnostics": []});
    if let Some(only) = only {
        context["only"] = json!([only]);
    }
    server
        .request(
            "textDocument/codeAction",
            json!({"textDocument": {"uri": uri}, "range": {"start": at, "end": at}, "context": context}),
        )
        .unwrap()
}

fn document_action(found: &Value) -> Option<Value> {
    found.as_array()?.iter().find(|a| a["title"] == "Document this function").cloned()
}

/// The text with a single insertion at the start of a line applied.
fn apply(text: &str, edit: &Value) -> String {
    let start = &edit["range"]["start"];
    assert_eq!(start, &edit["range"]["end"], "an insertion: {edit}");
    assert_eq!(start["character"], 0, "at the start of a line: {edit}");
    let line = usize::try_from(start["line"].as_u64().unwrap()).unwrap();
    let mut lines: Vec<&str> = text.split_inclusive('\n').collect();
    let inserted = edit["newText"].as_str().unwrap();
    lines.insert(line, inserted);
    lines.concat()
}

/// Whether python3 parses `source`.
fn python_parses(source: &str) -> bool {
    use std::io::Write;
    let mut child = std::process::Command::new("python3")
        .args(["-c", "import ast, sys; ast.parse(sys.stdin.read())"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(source.as_bytes()).unwrap();
    child.wait().unwrap().success()
}

/// Resolves the document action at `line`/`character` and returns the edited text.
fn documented(server: &mut Server, uri: &str, text: &str, line: u32, character: u32) -> String {
    let action = document_action(&actions(server, uri, line, character, None)).expect("a document action");
    assert_eq!(action["kind"], "refactor.rewrite");
    assert_eq!(action["tags"], json!([1]));
    assert!(action.get("edit").is_none() && action.get("command").is_none(), "written lazily: {action}");
    let resolved = server.request("codeAction/resolve", action).unwrap();
    let change = &resolved["edit"]["documentChanges"][0];
    assert_eq!(change["textDocument"], json!({"uri": uri, "version": 1}), "versioned: {resolved}");
    apply(text, &change["edits"][0])
}

#[test]
fn the_action_is_offered_on_undocumented_functions_only_and_resolves_into_an_edit() {
    let mut server = Server::start("test:checksum?tokens=8", resolving(), Value::Null);
    server.wait_ready();
    server.open("file:///d/c.py", "python", PY);
    // On the decorator and in the body alike: the docstring goes first in the body.
    for (line, character) in [(4, 6), (6, 12)] {
        let after = documented(&mut server, "file:///d/c.py", PY, line, character);
        let body: Vec<&str> = after.lines().skip(6).take(2).collect();
        assert!(body[0].starts_with("        \"\"\""), "the docstring opens the body: {after}");
        assert!(after.contains("    @functools.lru_cache(maxsize=None)\n    def get(self, key):\n        \"\"\""));
        assert!(python_parses(&after), "{after}");
    }
    // A documented function, a class body outside any function: nothing to document.
    assert_eq!(document_action(&actions(&mut server, "file:///d/c.py", 10, 9, None)), None);
    assert_eq!(document_action(&actions(&mut server, "file:///d/c.py", 3, 2, None)), None);
    // Asking only for rewrites leaves explain out; asking only for the empty kind leaves this out.
    let only = actions(&mut server, "file:///d/c.py", 6, 12, Some("refactor"));
    assert_eq!(only.as_array().map(Vec::len), Some(1), "{only}");
    assert_eq!(document_action(&actions(&mut server, "file:///d/c.py", 6, 12, Some(""))), None);

    server.open("file:///d/s.rs", "rust", RS);
    let after = documented(&mut server, "file:///d/s.rs", RS, 8, 10);
    let lines: Vec<&str> = after.lines().collect();
    let comment: Vec<&&str> = lines.iter().skip(5).take_while(|l| l.starts_with("    ///")).collect();
    assert!(!comment.is_empty(), "/// lines above the attributes: {after}");
    assert_eq!(lines[5 + comment.len()], "    #[inline]", "{after}");
    assert_eq!(document_action(&actions(&mut server, "file:///d/s.rs", 13, 10, None)), None, "documented already");
    server.shutdown();
}

#[test]
fn a_stale_action_is_refused_and_plain_clients_get_the_command() {
    let mut server = Server::start("test:checksum?tokens=8", resolving(), Value::Null);
    server.wait_ready();
    server.open("file:///d/c.py", "python", PY);
    let action = document_action(&actions(&mut server, "file:///d/c.py", 6, 12, None)).unwrap();
    server.change("file:///d/c.py", 2, json!([{"text": format!("{PY}\n")}]));
    let err = server.request("codeAction/resolve", action).unwrap_err();
    assert_eq!(err["code"], -32801, "the document changed: {err}");
    server.shutdown();

    // No resolve support, but applyEdit: the command writes the comment and applies it.
    let mut server = Server::start("test:checksum?tokens=8", json!({"workspace": {"applyEdit": true}}), Value::Null);
    server.wait_ready();
    server.open("file:///d/c.py", "python", PY);
    let found = actions(&mut server, "file:///d/c.py", 6, 12, None);
    let command = found.as_array().unwrap().iter().find(|a| a["command"] == "mistral-lsp.documentFunction");
    let command = command.unwrap_or_else(|| panic!("a bare command: {found}")).clone();
    let result = server
        .request("workspace/executeCommand", json!({"command": command["command"], "arguments": command["arguments"]}))
        .unwrap();
    assert_eq!(result["applied"], true);
    let applied = server.server_requests.iter().find(|r| r["method"] == "workspace/applyEdit").unwrap();
    let edit = &applied["params"]["edit"]["changes"]["file:///d/c.py"][0];
    assert!(python_parses(&apply(PY, edit)));
    server.shutdown();
}

#[test]
fn the_real_model_documents_a_decorated_method_and_a_rust_method_with_attributes() {
    let _turn = crate::harness::model_turn();
    let model = crate::model::test_model("qwen2.5-coder-0.5b-instruct-q4_k_m.gguf");
    let mut server = Server::builder()
        .arg("--model")
        .arg(model.to_str().unwrap())
        .arg("--threads")
        .arg("2")
        .arg("--context-size")
        .arg("4096")
        .spawn();
    server.initialize(resolving(), Value::Null);
    server.wait_ready();
    server.open("file:///d/c.py", "python", PY);
    let after = documented(&mut server, "file:///d/c.py", PY, 6, 12);
    assert!(python_parses(&after), "{after}");
    let docstring = after.lines().nth(6).unwrap();
    assert!(docstring.starts_with("        \"\"\"") && docstring.len() > 12, "{after}");

    server.open("file:///d/s.rs", "rust", RS);
    let after = documented(&mut server, "file:///d/s.rs", RS, 8, 10);
    let lines: Vec<&str> = after.lines().collect();
    let comment: Vec<&str> = lines.iter().skip(5).take_while(|l| l.starts_with("    ///")).copied().collect();
    assert!(comment.iter().any(|l| l.split_whitespace().count() >= 3), "some prose: {after}");
    assert_eq!(
        lines[5 + comment.len()..5 + comment.len() + 3],
        ["    #[inline]", "    #[must_use]", "    pub fn peek(&self) -> Option<&i32> {"]
    );
    server.shutdown();
}
