//! Bad input never crashes the server or loses document state.

use serde_json::{json, Value};

use crate::harness::{checksum, Server};

fn ready_server() -> Server {
    let mut server = Server::start("test:checksum", json!({}), Value::Null);
    server.wait_ready();
    server.open("file:///b/a.txt", "plaintext", "x = 1\n");
    server
}

fn still_works(server: &mut Server) {
    let items = server.inline("file:///b/a.txt", 0, 5).unwrap();
    assert!(!items.is_empty(), "no suggestion\n{}", server.log());
    assert_eq!(items[0]["insertText"], checksum("x = 1\n", 5));
}

#[test]
fn malformed_json_is_answered_with_a_parse_error() {
    let mut server = ready_server();
    server.send_raw(b"Content-Length: 12\r\n\r\n{not json!!}");
    let error = server.response_with_id(Value::Null);
    assert_eq!(error["error"]["code"], -32700);
    server.send_raw(b"Content-Length: 5\r\n\r\n[1,2]");
    let error = server.response_with_id(Value::Null);
    assert_eq!(error["error"]["code"], -32600);
    let odd_id = r#"{"jsonrpc":"2.0","id":{"a":1},"method":"x"}"#;
    server.send_raw(format!("Content-Length: {}\r\n\r\n{odd_id}", odd_id.len()).as_bytes());
    assert_eq!(server.response_with_id(Value::Null)["error"]["code"], -32600);
    let no_version = r#"{"id":5,"method":"shutdown"}"#;
    server.send_raw(format!("Content-Length: {}\r\n\r\n{no_version}", no_version.len()).as_bytes());
    assert_eq!(server.response_with_id(json!(5))["error"]["code"], -32600);
    still_works(&mut server);
    server.shutdown();
}

#[test]
fn ids_that_are_not_64_bit_integers_do_not_end_the_server() {
    let mut server = ready_server();
    for id in ["1.5", "1e3", "9223372036854775808", "18446744073709551615"] {
        for body in [
            format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"shutdown"}}"#),
            format!(r#"{{"jsonrpc":"2.0","id":{id},"result":null}}"#),
        ] {
            server.send_raw(format!("Content-Length: {}\r\n\r\n{body}", body.len()).as_bytes());
            assert_eq!(server.response_with_id(Value::Null)["error"]["code"], -32600, "{body}");
        }
    }
    still_works(&mut server);
    server.shutdown();
}

#[test]
fn wrong_content_lengths_are_recovered_from() {
    let mut server = ready_server();
    let body =
        r#"{"jsonrpc":"2.0","method":"textDocument/didSave","params":{"textDocument":{"uri":"file:///b/a.txt"}}}"#;
    // Too short: the body is cut, the rest is skipped until the next header.
    server.send_raw(format!("Content-Length: {}\r\n\r\n{body}", body.len() - 10).as_bytes());
    assert_eq!(server.response_with_id(Value::Null)["error"]["code"], -32700);
    // Not a number.
    server.send_raw(b"Content-Length: twelve\r\n\r\n");
    assert_eq!(server.response_with_id(Value::Null)["error"]["code"], -32700);
    // Too long: it swallows the start of the next message, which is recovered.
    let id = 777;
    let next = json!({"jsonrpc": "2.0", "id": id, "method": "workspace/executeCommand", "params": {"command": "mistral-lsp.status"}}).to_string();
    let padding = format!("Content-Length: {}\r\n\r\n{next}", next.len());
    server.send_raw(format!("Content-Length: {}\r\n\r\n{body}{padding}", body.len() + 30).as_bytes());
    server.send_raw(b"\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n");
    assert_eq!(server.response_with_id(Value::Null)["error"]["code"], -32700);
    let status = server.response_with_id(json!(id));
    assert_eq!(status["result"]["state"], "ready");
    still_works(&mut server);
    server.shutdown();
}

#[test]
fn unknown_methods() {
    let mut server = ready_server();
    let err = server.request("textDocument/frobnicate", json!({})).unwrap_err();
    assert_eq!(err["code"], -32601);
    server.notify("$/unknownNotification", json!({}));
    server.notify("custom/whatever", json!({"a": 1}));
    still_works(&mut server);
    server.shutdown();
}

#[test]
fn invalid_params_are_an_error_not_a_crash() {
    let mut server = ready_server();
    let err = server.request("textDocument/inlineCompletion", json!({"textDocument": 5})).unwrap_err();
    assert_eq!(err["code"], -32602);
    server.notify("textDocument/didChange", json!({"bogus": true}));
    server.notify("textDocument/didOpen", json!([1, 2, 3]));
    still_works(&mut server);
    server.shutdown();
}

#[test]
fn positions_past_the_end() {
    let mut server = ready_server();
    // Past the end of a line: the end of that line (the LSP rule).
    let items = server.inline("file:///b/a.txt", 0, 999).unwrap();
    assert_eq!(items[0]["insertText"], checksum("x = 1\n", 5));
    assert_eq!(items[0]["range"]["start"], json!({"line": 0, "character": 5}));
    // Past the end of the file: invalid params.
    let err = server.inline("file:///b/a.txt", 99, 0).unwrap_err();
    assert_eq!(err["code"], -32602);
    // An edit past the end is clamped to the end of the text.
    server.change(
        "file:///b/a.txt",
        2,
        json!([{"range": {"start": {"line": 50, "character": 0}, "end": {"line": 60, "character": 3}}, "text": "y"}]),
    );
    let items = server.inline("file:///b/a.txt", 1, 1).unwrap();
    assert_eq!(items[0]["insertText"], checksum("x = 1\ny", 7));
    server.shutdown();
}

#[test]
fn edits_to_unopened_documents_are_ignored() {
    let mut server = ready_server();
    server.change("file:///b/never.py", 2, json!([{"text": "z"}]));
    server.notify("textDocument/didClose", json!({"textDocument": {"uri": "file:///b/never.py"}}));
    let err = server.inline("file:///b/never.py", 0, 0).unwrap_err();
    assert_eq!(err["code"], -32602);
    still_works(&mut server);
    server.shutdown();
}

#[test]
fn a_ten_megabyte_document() {
    let mut server = ready_server();
    let line = "def function_number(x):\n    return x * 2 + 1  # a comment\n";
    let text = line.repeat(10 * 1024 * 1024 / line.len() + 1);
    assert!(text.len() > 10 * 1024 * 1024);
    server.open("file:///b/big.py", "python", &text);
    let lines = text.lines().count() as u32;
    server.change("file:///b/big.py", 2, json!([{"range": {"start": {"line": lines, "character": 0}, "end": {"line": lines, "character": 0}}, "text": "end"}]));
    // The prompt holds a window of the file around the cursor, ending with the edit just made.
    let items = server.inline("file:///b/big.py", lines, 3).unwrap();
    assert_eq!(items.len(), 1);
    assert!(items[0]["range"]["start"] == json!({"line": lines, "character": 3}), "{items:?}");
    still_works(&mut server);
    server.shutdown();
}
