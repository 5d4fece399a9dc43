//! What a hostile or unlucky client sends: nothing brings the server down, stalls it, leaks, or
//! leaves its copy of a document silently different from the editor's.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::harness::{checksum, Server};

fn status(server: &mut Server) -> Value {
    server.request("workspace/executeCommand", json!({"command": "mistral-lsp.status"})).unwrap()
}

fn document(server: &mut Server, uri: &str) -> Value {
    server.request("workspace/executeCommand", json!({"command": "mistral-lsp.document", "arguments": [uri]})).unwrap()
}

/// A server whose completions take minutes (their prompts do).
fn slow_server() -> Server {
    let mut server = Server::start("test:checksum?prompt_ms=300000", json!({}), Value::Null);
    server.wait_ready();
    server
}

#[test]
fn long_completions_do_not_hold_back_quick_requests_or_edits() {
    let mut server = slow_server();
    let uris: Vec<String> = (0..6).map(|i| format!("file:///h/slow{i}.txt")).collect();
    let mut pending = Vec::new();
    for uri in &uris {
        server.open(uri, "plaintext", "x = 1\n");
        pending.push(server.send_inline(uri, 0, 5));
    }
    // More than tower-lsp's queue of 100 messages: edits that must all be read and applied.
    server.open("file:///h/edited.txt", "plaintext", "");
    let mut text = String::new();
    for version in 2..200 {
        let line = text.matches('\n').count() as u32;
        server.change("file:///h/edited.txt", version, json!([{"range": {"start": {"line": line, "character": 0}, "end": {"line": line, "character": 0}}, "text": "ab\n"}]));
        text.push_str("ab\n");
    }
    let status = server.request("workspace/executeCommand", json!({"command": "mistral-lsp.status"}));
    assert!(status.is_ok(), "{status:?}");
    let copy = document(&mut server, "file:///h/edited.txt");
    assert_eq!(copy["text"], text);
    assert_eq!(copy["version"], 199);
    // None of the long completions has answered: the quick requests did not wait for them.
    assert!(pending.iter().all(|id| server.responses_for(*id).is_empty()), "a completion finished first");
    for id in &pending {
        server.cancel(*id);
    }
    for id in pending {
        assert_eq!(server.response(id).unwrap_err()["code"], -32800);
    }
    server.shutdown();
}

#[test]
fn closing_the_input_mid_completion_ends_the_server_at_once() {
    // Without cancellation on end of input this completion would run for 300 s.
    let mut server = slow_server();
    server.open("file:///h/a.txt", "plaintext", "x = 1\n");
    server.send_inline("file:///h/a.txt", 0, 5);
    server.wait_log("engine job started");
    server.close_stdin();
    assert_eq!(server.wait_exit(), Some(1), "no shutdown was asked: exit code 1");
}

#[test]
fn a_settings_storm_loads_one_engine_at_a_time_with_the_newest_settings() {
    let mut server = Server::start("test:checksum?load_ms=400", json!({}), Value::Null);
    server.wait_ready();
    for size in 1001..1021 {
        server.notify("workspace/didChangeConfiguration", json!({"settings": {"contextSize": size}}));
    }
    // Wait until the last restart has loaded.
    let deadline = Instant::now() + Duration::from_secs(30);
    let last = loop {
        let now = status(&mut server);
        if now["state"] == "ready" && now["engines"]["alive"] == 1 && now["contextSize"] == 1020 {
            // Ready with the newest settings, and no restart still waiting.
            std::thread::sleep(Duration::from_millis(600));
            let again = status(&mut server);
            if again["engines"]["started"] == now["engines"]["started"] {
                break again;
            }
        }
        assert!(Instant::now() < deadline, "no engine with the newest settings: {now}\n{}", server.log());
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(last["engines"]["peakAlive"], 1, "two engines held models at once: {last}");
    let started = last["engines"]["started"].as_u64().unwrap();
    assert!(started < 8, "20 changes were not coalesced: {started} engines started");
    server.open("file:///h/a.txt", "plaintext", "x = 1\n");
    assert_eq!(server.inline("file:///h/a.txt", 0, 5).unwrap()[0]["insertText"], checksum("x = 1\n", 5));
    server.shutdown();
}

#[test]
fn a_change_that_cannot_be_applied_marks_the_document_out_of_sync() {
    let mut server = Server::start("test:checksum", json!({}), Value::Null);
    server.wait_ready();
    let uri = "file:///h/a.txt";
    server.open(uri, "plaintext", "abc\n");
    let at = |line: Value, character: Value| json!({"start": {"line": line, "character": character}, "end": {"line": line, "character": character}});
    for bad in [json!(-1), json!(0.5), json!(4294967296u64)] {
        server.change(
            uri,
            2,
            json!([
                {"range": at(json!(0), json!(0)), "text": "1"},
                {"range": at(bad.clone(), json!(0)), "text": "?"},
                {"range": at(json!(0), json!(0)), "text": "2"},
            ]),
        );
    }
    let copy = document(&mut server, uri);
    assert_eq!(copy["text"], "212121abc\n", "the valid changes were applied in order");
    assert_eq!(copy["inSync"], false);
    let message = server.notification("window/showMessage");
    assert_eq!(message["params"]["type"], 1, "an error: {message}");
    assert!(message["params"]["message"].as_str().unwrap().contains("could not be applied"));
    assert!(server.inline(uri, 0, 3).unwrap().is_empty(), "no suggestion on a text the editor does not have");
    // The whole text again: back in sync.
    server.change(uri, 3, json!([{"text": "x = 1\n"}]));
    assert_eq!(document(&mut server, uri)["inSync"], true);
    assert_eq!(server.inline(uri, 0, 5).unwrap()[0]["insertText"], checksum("x = 1\n", 5));
    assert!(server.notifications.iter().all(|n| n["method"] != "window/showMessage"), "shown once");
    server.shutdown();
}

#[test]
fn a_change_without_a_version_or_with_a_lone_surrogate_is_applied() {
    let mut server = Server::start("test:checksum", json!({}), Value::Null);
    server.wait_ready();
    let uri = "file:///h/a.txt";
    server.open(uri, "plaintext", "abc\n");
    server.notify(
        "textDocument/didChange",
        json!({"textDocument": {"uri": uri}, "contentChanges": [{"range": {"start": {"line": 0, "character": 3}, "end": {"line": 0, "character": 3}}, "text": "d"}]}),
    );
    let body = format!(
        r#"{{"jsonrpc":"2.0","method":"textDocument/didChange","params":{{"textDocument":{{"uri":"{uri}","version":3}},"contentChanges":[{{"range":{{"start":{{"line":0,"character":0}},"end":{{"line":0,"character":0}}}},"text":"\udc00"}}]}}}}"#
    );
    server.send_raw(format!("Content-Length: {}\r\n\r\n{body}", body.len()).as_bytes());
    let copy = document(&mut server, uri);
    assert_eq!(copy["text"], "\u{fffd}abcd\n");
    assert_eq!(copy["version"], 3);
    assert_eq!(copy["inSync"], true);
    server.shutdown();
}

#[test]
fn requests_for_unknown_documents_and_closed_documents_leave_nothing_behind() {
    let mut server = Server::start("test:checksum", json!({}), Value::Null);
    server.wait_ready();
    let ids: Vec<i64> = (0..500).map(|i| server.send_inline(&format!("file:///h/none{i}.txt"), 0, 0)).collect();
    for id in ids {
        assert!(server.response(id).is_err());
    }
    for i in 0..200 {
        let uri = format!("file:///h/open{i}.txt");
        server.open(&uri, "plaintext", "x = 1\n");
        server.change(
            &uri,
            2,
            json!([{"range": {"start": {"line": 0, "character": 5}, "end": {"line": 0, "character": 5}}, "text": "0"}]),
        );
        let id = server.send_inline(&uri, 0, 6);
        server.response(id).unwrap();
        server.notify("textDocument/didClose", json!({"textDocument": {"uri": uri}}));
    }
    let now = status(&mut server);
    assert_eq!(
        (now["tickets"].clone(), now["ringDocuments"].clone(), now["documents"].clone()),
        (json!(0), json!(0), json!(0)),
        "{now}"
    );
    server.shutdown();
}

#[test]
fn shutdown_refused_before_initialize_does_not_exit_zero() {
    let mut server = Server::builder().arg("--model").arg("test:checksum").spawn();
    assert!(server.request("shutdown", Value::Null).is_err());
    server.notify("exit", Value::Null);
    assert_eq!(server.wait_exit(), Some(1));
}

/// The byte offset of an LSP position (UTF-16 columns) in `text`, clamped as the server clamps:
/// a line past the end means the end of the text, a column past the line's end its end.
fn oracle_offset(text: &str, line: u32, column: u32) -> usize {
    let mut start = 0;
    for _ in 0..line {
        match text[start..].find('\n') {
            Some(at) => start += at + 1,
            None => return text.len(),
        }
    }
    let line_text = &text[start..text[start..].find('\n').map_or(text.len(), |at| start + at)];
    let mut units = 0;
    for (offset, ch) in line_text.char_indices() {
        if units + ch.len_utf16() > column as usize {
            return start + offset;
        }
        units += ch.len_utf16();
    }
    start + line_text.len()
}

/// Fuzzing document sync over stdio: random edits, some past the end, some that cannot be
/// applied at all, against an oracle; the server's copy must match, and say when it cannot.
/// `MISTRAL_LSP_FUZZ_ITERATIONS` sets the number of edits (CI runs the default).
#[test]
fn random_edits_over_stdio_match_the_editors_text() {
    let edits: usize = std::env::var("MISTRAL_LSP_FUZZ_ITERATIONS").ok().and_then(|n| n.parse().ok()).unwrap_or(3000);
    let mut server = Server::start("test:checksum", json!({}), Value::Null);
    server.wait_ready();
    let uri = "file:///h/fuzz.py";
    let pieces = ["", "a", "é", "😀", "\n", " ", "def f(x):\n    return x\n", "(", ")", "\"s", "é😀\n"];
    let mut rng = fastrand::Rng::with_seed(0x5eed);
    let mut oracle = String::from("x = 1\n");
    let mut in_sync = true;
    server.open(uri, "python", &oracle);
    for version in 2..edits as i32 + 2 {
        let lines = oracle.matches('\n').count() as u32 + 1;
        let mut position = || (rng.u32(..lines + 1), rng.u32(..10));
        let ((l1, c1), (l2, c2)) = (position(), position());
        let (a, b) = if (l1, c1) <= (l2, c2) { ((l1, c1), (l2, c2)) } else { ((l2, c2), (l1, c1)) };
        let text: String = (0..rng.usize(..3)).map(|_| pieces[rng.usize(..pieces.len())]).collect();
        let range = json!({"start": {"line": a.0, "character": a.1}, "end": {"line": b.0, "character": b.1}});
        let mut changes = vec![json!({"range": range, "text": text})];
        let start = oracle_offset(&oracle, a.0, a.1);
        let end = oracle_offset(&oracle, b.0, b.1).max(start);
        oracle.replace_range(start..end, &text);
        match rng.u8(..60) {
            0 => {
                changes.push(json!({"range": {"start": {"line": -1, "character": 0}, "end": {"line": 0, "character": 0}}, "text": "?"}));
                in_sync = false;
            }
            1 => {
                oracle = (0..rng.usize(..6)).map(|_| pieces[rng.usize(..pieces.len())]).collect();
                changes = vec![json!({"text": oracle})];
                in_sync = true;
            }
            _ => {}
        }
        server.change(uri, version, Value::Array(changes));
        if version % 500 == 0 || version == edits as i32 + 1 {
            let copy = document(&mut server, uri);
            assert_eq!(copy["text"], oracle, "after version {version}");
            assert_eq!(copy["inSync"], in_sync, "after version {version}");
            assert_eq!(copy["version"], version);
        }
    }
    server.shutdown();
}
