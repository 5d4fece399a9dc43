//! Document synchronisation over the wire: random edits, ordering against requests.

use serde_json::{json, Value};

use crate::harness::{checksum, Server};

const MODEL: &str = "test:checksum";

/// Byte offset of a UTF-16 (line, character) in `text`, as the oracle computes it.
fn offset(text: &str, line: u32, character: u32) -> usize {
    let mut start = 0;
    for _ in 0..line {
        match text[start..].find('\n') {
            Some(at) => start += at + 1,
            None => return text.len(),
        }
    }
    let end = text[start..].find('\n').map_or(text.len(), |at| start + at);
    let mut units = 0;
    for (at, ch) in text[start..end].char_indices() {
        if units >= character as usize {
            return start + at;
        }
        units += ch.len_utf16();
    }
    end
}

fn position_of(text: &str, byte: usize) -> (u32, u32) {
    let before = &text[..byte];
    let line = before.matches('\n').count() as u32;
    let line_start = before.rfind('\n').map_or(0, |at| at + 1);
    (line, before[line_start..].encode_utf16().count() as u32)
}

#[test]
fn every_request_sees_every_edit_sent_before_it() {
    let mut server = Server::start(MODEL, json!({}), Value::Null);
    server.wait_ready();
    let uri = "file:///p/a.txt";
    let mut text = String::from("def f(x):\n    return x\n");
    server.open(uri, "plaintext", &text);
    let mut rng = fastrand::Rng::with_seed(42);
    let pieces = ["a", "é", "😀", "\n", "    ", "(", ")", "x = 1\n", ""];
    for version in 2..400 {
        let (start, end) = {
            let a = rng.usize(..=text.len());
            let b = rng.usize(..=text.len());
            let (a, b) = (a.min(b), a.max(b));
            let fix = |mut i: usize| {
                while !text.is_char_boundary(i) {
                    i -= 1;
                }
                i
            };
            (fix(a), fix(b))
        };
        let insert = pieces[rng.usize(..pieces.len())];
        let (l0, c0) = position_of(&text, start);
        let (l1, c1) = position_of(&text, end);
        assert_eq!(offset(&text, l0, c0), start);
        text.replace_range(start..end, insert);
        server.change(
            uri,
            version,
            json!([{"range": {"start": {"line": l0, "character": c0}, "end": {"line": l1, "character": c1}}, "text": insert}]),
        );
        // Ask without waiting for anything: the request must still see this very edit.
        if version % 20 == 0 {
            let cursor = text.len();
            let (line, character) = position_of(&text, cursor);
            let items = server.inline(uri, line, character).unwrap();
            assert!(!items.is_empty(), "no suggestion after edit {version} for {text:?}\n{}", server.log());
            assert_eq!(items[0]["insertText"], checksum(&text, cursor), "after edit {version}");
        }
    }
    server.shutdown();
}

#[test]
fn full_text_changes_and_close_reopen() {
    let mut server = Server::start(MODEL, json!({}), Value::Null);
    server.wait_ready();
    let uri = "file:///p/b.txt";
    server.open(uri, "plaintext", "fn main() {}\n");
    server.change(uri, 2, json!([{"text": "fn other() {}\n"}]));
    let items = server.inline(uri, 0, 13).unwrap();
    assert_eq!(items[0]["insertText"], checksum("fn other() {}\n", 13));
    server.notify("textDocument/didSave", json!({"textDocument": {"uri": uri}}));
    server.notify("textDocument/didClose", json!({"textDocument": {"uri": uri}}));
    let err = server.inline(uri, 0, 0).unwrap_err();
    assert_eq!(err["code"], -32602);
    assert!(err["message"].as_str().unwrap().contains("not open"));
    server.open(uri, "plaintext", "struct S;");
    let items = server.inline(uri, 0, 9).unwrap();
    assert_eq!(items[0]["insertText"], checksum("struct S;", 9));
    server.shutdown();
}
