//! Completion requests: results, supersession, cancellation, the completion-item fallback, and the
//! code action and command surfaces.

use serde_json::{json, Value};

use crate::harness::{checksum, Server};

#[test]
fn inline_completion_returns_the_backend_suggestion_at_the_cursor() {
    let mut server = Server::start("test:checksum", json!({}), Value::Null);
    server.wait_ready();
    let text = "def add(a, b):\n    \n";
    server.open("file:///c/a.py", "python", text);
    let items = server.inline("file:///c/a.py", 1, 4).unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["insertText"], checksum(text, 19));
    assert_eq!(items[0]["range"], json!({"start": {"line": 1, "character": 4}, "end": {"line": 1, "character": 4}}));
    server.shutdown();
}

#[test]
fn completion_offers_the_same_suggestion_as_an_item_with_a_text_edit() {
    let mut server = Server::start("test:checksum", json!({}), Value::Null);
    server.wait_ready();
    let text = "fn main() {\n    let x = \n}\n";
    server.open("file:///c/m.rs", "rust", text);
    let result = server
        .request(
            "textDocument/completion",
            json!({"textDocument": {"uri": "file:///c/m.rs"}, "position": {"line": 1, "character": 12}}),
        )
        .unwrap();
    let item = &result["items"][0];
    assert_eq!(item["textEdit"]["newText"], checksum(text, 24));
    assert_eq!(item["textEdit"]["range"]["start"], json!({"line": 1, "character": 12}));
    assert_eq!(item["label"], checksum(text, 24));
    server.shutdown();
}

#[test]
fn a_newer_request_supersedes_an_older_one_without_a_cancel() {
    // Slow generation: 20 pieces, 50 ms apart.
    let mut server = Server::start("test:checksum?token_ms=50&tokens=20", json!({}), Value::Null);
    server.wait_ready();
    let text = "x = 1\n";
    server.open("file:///c/s.txt", "plaintext", text);
    let first = server.send_inline("file:///c/s.txt", 1, 0);
    std::thread::sleep(std::time::Duration::from_millis(150));
    let second = server.send_inline("file:///c/s.txt", 1, 0);
    let started = std::time::Instant::now();
    assert_eq!(server.inline_items(first).unwrap(), Vec::<Value>::new(), "the superseded request answers empty");
    assert!(started.elapsed().as_millis() < 900, "the superseded request stopped early, not after its full run");
    let items = server.inline_items(second).unwrap();
    assert_eq!(items[0]["insertText"], checksum(text, 6));
    server.shutdown();
}

#[test]
fn a_burst_of_fifty_requests_answers_only_the_newest() {
    let mut server = Server::start("test:checksum?token_ms=20&tokens=5", json!({}), Value::Null);
    server.wait_ready();
    let text = "print(1)\n";
    server.open("file:///c/b.txt", "plaintext", text);
    let ids: Vec<i64> = (0..50).map(|_| server.send_inline("file:///c/b.txt", 0, 8)).collect();
    let answers: Vec<Vec<Value>> = ids.iter().map(|&id| server.inline_items(id).unwrap()).collect();
    let non_empty: Vec<usize> = answers.iter().enumerate().filter(|(_, a)| !a.is_empty()).map(|(i, _)| i).collect();
    assert_eq!(non_empty, vec![49], "only the newest request gets a suggestion");
    assert_eq!(answers[49][0]["insertText"], checksum(text, 8));
    server.shutdown();
}

#[test]
fn requests_for_different_documents_do_not_supersede_each_other() {
    let mut server = Server::start("test:checksum?token_ms=10&tokens=4", json!({}), Value::Null);
    server.wait_ready();
    server.open("file:///c/1.txt", "plaintext", "a\n");
    server.open("file:///c/2.txt", "plaintext", "b\n");
    let one = server.send_inline("file:///c/1.txt", 0, 1);
    let two = server.send_inline("file:///c/2.txt", 0, 1);
    assert_eq!(server.inline_items(one).unwrap()[0]["insertText"], checksum("a\n", 1));
    assert_eq!(server.inline_items(two).unwrap()[0]["insertText"], checksum("b\n", 1));
    server.shutdown();
}

#[test]
fn a_thousand_cancelled_requests_leave_the_server_well() {
    let mut server = Server::start("test:checksum?token_ms=5&tokens=4", json!({}), Value::Null);
    server.wait_ready();
    let text = "def f():\n    pass\n";
    server.open("file:///c/storm.txt", "plaintext", text);
    let ids: Vec<i64> = (0..1000)
        .map(|i| {
            let id = server.send_inline("file:///c/storm.txt", 1, 8);
            server.cancel(id);
            if i % 100 == 0 {
                server.change("file:///c/storm.txt", 2 + i / 100, json!([]));
            }
            id
        })
        .collect();
    // Each is answered: cancelled (-32800), or empty because a newer one superseded it; only the
    // last may carry a suggestion.
    let last = *ids.last().unwrap();
    for id in ids {
        match server.inline_items(id) {
            Err(error) => assert_eq!(error["code"], -32800, "{error}"),
            Ok(items) if id == last => {
                assert!(items.is_empty() || items[0]["insertText"] == checksum(text, 17))
            }
            Ok(items) => assert!(items.is_empty(), "request {id} was superseded: {items:?}"),
        }
    }
    let items = server.inline("file:///c/storm.txt", 1, 8).unwrap();
    assert_eq!(items[0]["insertText"], checksum(text, 17), "documents survived the storm");
    server.shutdown();
}

#[test]
fn commands_and_the_code_actions_a_plain_client_gets() {
    let mut server = Server::start("test:checksum", json!({}), Value::Null);
    server.wait_ready();
    server.open("file:///c/a.py", "python", "x = 1\n");
    // A client without code action literals gets bare commands: explain and review; with neither
    // resolve nor applyEdit support, no doc comment (it could not reach the editor).
    let range = json!({"start": {"line": 0, "character": 0}, "end": {"line": 0, "character": 1}});
    let actions = server
        .request(
            "textDocument/codeAction",
            json!({"textDocument": {"uri": "file:///c/a.py"}, "range": range, "context": {"diagnostics": []}}),
        )
        .unwrap();
    assert_eq!(actions.as_array().map(Vec::len), Some(2), "{actions}");
    assert_eq!(
        (&actions[0]["command"], &actions[1]["command"]),
        (&json!("mistral-lsp.explain"), &json!("mistral-lsp.review"))
    );
    let status = server.request("workspace/executeCommand", json!({"command": "mistral-lsp.status"})).unwrap();
    assert_eq!(status["state"], "ready");
    assert_eq!(status["documents"], 1);
    let err = server.request("workspace/executeCommand", json!({"command": "nope"})).unwrap_err();
    assert_eq!(err["code"], -32602);
    server.shutdown();
}
