//! Property tests: random edit sequences against a plain-string oracle and a fresh parse.

use std::sync::Arc;

use parking_lot::Mutex;

use super::*;

/// The oracle's own position conversion, written independently of `position.rs`.
fn oracle_offset(text: &str, pos: LineCol, encoding: Encoding) -> usize {
    let mut line_starts = vec![0];
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\r' if bytes.get(i + 1) == Some(&b'\n') => {
                line_starts.push(i + 2);
                i += 2;
                continue;
            }
            b'\r' | b'\n' => line_starts.push(i + 1),
            _ => {}
        }
        i += 1;
    }
    let Some(&start) = line_starts.get(pos.line as usize) else {
        return text.len();
    };
    let line = &text[start..];
    let line_end = line.find(['\r', '\n']).unwrap_or(line.len());
    let mut units = 0;
    for (offset, ch) in line[..line_end].char_indices() {
        let width = match encoding {
            Encoding::Utf8 => ch.len_utf8(),
            Encoding::Utf16 => ch.len_utf16(),
            Encoding::Utf32 => 1,
        };
        if units + width > pos.column as usize {
            return start + offset;
        }
        units += width;
    }
    start + line_end
}

const PIECES: &[&str] = &[
    "",
    "a",
    "é",
    "😀",
    "\n",
    "\r\n",
    " ",
    "    ",
    "fn f() {",
    "}",
    "(",
    ")",
    "def g(x):\n    return x\n",
    "let x = 1;",
    "\"s\"",
    "# c",
    "// c\n",
    "class A:\n",
    "é😀é",
    "\r\n\r\n",
    "if x:\n  ",
    "]",
    "[",
];

fn random_text(rng: &mut fastrand::Rng, pieces: usize) -> String {
    (0..pieces).map(|_| PIECES[rng.usize(..PIECES.len())]).collect()
}

fn random_pos(rng: &mut fastrand::Rng, text: &str) -> LineCol {
    let lines = text.split('\n').count() as u32;
    // Sometimes past the end of a line or of the file, as buggy clients send.
    LineCol { line: rng.u32(0..lines + 1), column: rng.u32(0..12) }
}

fn run_edits(language_id: &str, uri: &str, seed: u64, steps: usize) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let encodings = [Encoding::Utf8, Encoding::Utf16, Encoding::Utf32];
    let mut oracle = random_text(&mut rng, 8);
    let mut document = Document::new(uri, language_id, 0, &oracle);
    for step in 0..steps {
        let encoding = encodings[rng.usize(..encodings.len())];
        let change = if rng.u8(..50) == 0 {
            Change { range: None, text: random_text(&mut rng, 6) }
        } else {
            let mut a = random_pos(&mut rng, &oracle);
            let mut b = if rng.bool() { a } else { random_pos(&mut rng, &oracle) };
            if b < a {
                std::mem::swap(&mut a, &mut b);
            }
            let pieces = rng.usize(1..3);
            let text = if rng.u8(..4) == 0 { String::new() } else { random_text(&mut rng, pieces) };
            Change { range: Some((a, b)), text }
        };
        match change.range {
            None => oracle = change.text.clone(),
            Some((a, b)) => {
                let start = oracle_offset(&oracle, a, encoding);
                let end = oracle_offset(&oracle, b, encoding).max(start);
                oracle.replace_range(start..end, &change.text);
            }
        }
        document.apply(step as i32 + 1, std::slice::from_ref(&change), encoding);
        assert_eq!(document.text.to_string(), oracle, "seed {seed} step {step} {change:?} {encoding:?}");
        if let Some(language) = document.language {
            let fresh = syntax::parse(language, &document.text, None).map(|t| t.root_node().to_sexp());
            let incremental = document.tree.as_ref().map(|t| t.root_node().to_sexp());
            assert_eq!(incremental, fresh, "seed {seed} step {step}: incremental tree differs from a fresh parse");
        }
    }
}

#[test]
fn random_edits_keep_text_and_tree_exact() {
    // 10,000 edits in the default run: 25 seeds of 200 steps for each of two grammars.
    for seed in 0..25 {
        run_edits("python", "file:///t/a.py", seed, 200);
        run_edits("rust", "file:///t/a.rs", 1000 + seed, 200);
    }
}

#[test]
fn documents_without_a_grammar_are_kept_as_text() {
    run_edits("markdown", "file:///t/a.md", 7, 300);
    let document = Document::new("file:///t/a.md", "markdown", 1, "# hi");
    assert!(document.tree.is_none());
}

#[test]
fn several_changes_in_one_notification_apply_in_order() {
    let mut document = Document::new("file:///t/a.py", "python", 1, "ab\ncd\n");
    let at = |line, column| LineCol { line, column };
    let changes = [
        Change { range: Some((at(0, 0), at(0, 0))), text: "x\n".into() },
        Change { range: Some((at(2, 1), at(2, 2))), text: "Z".into() },
    ];
    assert_eq!(document.apply(2, &changes, Encoding::Utf16), 0);
    assert_eq!(document.text.to_string(), "x\nab\ncZ\n");
    assert_eq!(document.version, 2);
}

#[test]
fn store_reports_unknown_documents() {
    let store = Store::default();
    let err = store.change("file:///nope", 1, &[], Encoding::Utf16).unwrap_err();
    assert_eq!(err, StoreError::UnknownDocument("file:///nope".into()));
    assert!(store.close("file:///nope").is_err());
    store.open(Document::new("file:///a.rs", "rust", 1, "fn main() {}"));
    let snapshot = store.snapshot("file:///a.rs").unwrap();
    store.change("file:///a.rs", 2, &[Change { range: None, text: String::new() }], Encoding::Utf16).unwrap();
    assert_eq!(snapshot.text.to_string(), "fn main() {}", "a snapshot never changes");
}

/// Parse work held back until the test runs it.
type Held = Arc<Mutex<Vec<Box<dyn FnOnce() + Send>>>>;

/// A store whose parses wait in a list until the test runs them.
fn held_store() -> (Store, Held) {
    let held: Held = Arc::default();
    let queue = held.clone();
    (Store::with_runner(Arc::new(move |work| queue.lock().push(work))), held)
}

fn run_held(held: &Mutex<Vec<Box<dyn FnOnce() + Send>>>) {
    loop {
        let Some(work) = held.lock().pop() else { return };
        work();
    }
}

fn fresh_sexp(snapshot: &Snapshot) -> Option<String> {
    syntax::parse(snapshot.language?, &snapshot.text, None).map(|tree| tree.root_node().to_sexp())
}

#[test]
fn edits_apply_at_once_and_parses_catch_up_off_the_loop() {
    for (language_id, uri, seed) in [("python", "file:///t/a.py", 1), ("rust", "file:///t/a.rs", 2)] {
        let mut rng = fastrand::Rng::with_seed(seed);
        let (store, held) = held_store();
        let mut oracle = random_text(&mut rng, 8);
        store.open(Document::unparsed(uri, language_id, 0, &oracle));
        let opened = store.snapshot(uri).unwrap();
        assert!(!opened.is_parsed() && opened.tree.is_none(), "opening does not parse on the message loop");
        for step in 0..300 {
            // The parse in flight finishes at random moments, between edits.
            if rng.u8(..3) == 0 {
                let work = held.lock().pop();
                if let Some(work) = work {
                    work();
                }
            }
            let change = if rng.u8(..40) == 0 {
                Change { range: None, text: random_text(&mut rng, 6) }
            } else {
                let at = random_pos(&mut rng, &oracle);
                let pieces = rng.usize(1..3);
                Change { range: Some((at, at)), text: random_text(&mut rng, pieces) }
            };
            let start = change.range.map(|(at, _)| oracle_offset(&oracle, at, Encoding::Utf16));
            match start {
                Some(start) => oracle.insert_str(start, &change.text),
                None => oracle = change.text.clone(),
            }
            store.change(uri, step + 1, std::slice::from_ref(&change), Encoding::Utf16).unwrap();
            let snapshot = store.snapshot(uri).unwrap();
            assert_eq!(snapshot.text.to_string(), oracle, "seed {seed} step {step}");
            if snapshot.is_parsed() {
                assert_eq!(snapshot.tree.as_ref().map(|t| t.root_node().to_sexp()), fresh_sexp(&snapshot));
            } else {
                assert!(snapshot.tree.is_none(), "a snapshot's tree always describes its text");
            }
        }
        run_held(&held);
        let snapshot = store.snapshot(uri).unwrap();
        assert!(snapshot.is_parsed(), "the parses caught up");
        assert_eq!(snapshot.tree.as_ref().map(|t| t.root_node().to_sexp()), fresh_sexp(&snapshot));
    }
}

#[tokio::test]
async fn a_request_waits_for_a_parse_at_least_as_new_as_itself() {
    let (store, held) = held_store();
    let uri = "file:///t/a.py";
    store.open(Document::unparsed(uri, "python", 1, "def f():\n    pass\n"));
    run_held(&held);
    let at = LineCol { line: 2, column: 0 };
    store.change(uri, 2, &[Change { range: Some((at, at)), text: "x = 1\n".into() }], Encoding::Utf16).unwrap();
    let waiting = tokio::spawn({
        let store = store.clone();
        async move { store.parsed(uri, || false).await }
    });
    tokio::task::yield_now().await;
    assert!(!waiting.is_finished(), "no tree yet: the request waits");
    // The parse of that text is taken, then more edits arrive before it finishes.
    let work = held.lock().pop().unwrap();
    let later = LineCol { line: 3, column: 0 };
    store.change(uri, 3, &[Change { range: Some((later, later)), text: "y = 2\n".into() }], Encoding::Utf16).unwrap();
    work();
    let snapshot = waiting.await.unwrap().unwrap();
    assert_eq!(snapshot.text.to_string(), "def f():\n    pass\nx = 1\n", "the text as the request found it");
    assert_eq!(snapshot.version, 2);
    assert_eq!(snapshot.tree.as_ref().map(|t| t.root_node().to_sexp()), fresh_sexp(&snapshot));
    // A request that arrives now waits for the newest text, unless it is no longer wanted.
    let newest = tokio::spawn({
        let store = store.clone();
        async move { store.parsed(uri, || false).await }
    });
    tokio::task::yield_now().await;
    assert!(!newest.is_finished());
    let unwanted = store.parsed(uri, || true).await.unwrap();
    assert!(unwanted.tree.is_none(), "an unwanted request does not wait");
    run_held(&held);
    let snapshot = newest.await.unwrap().unwrap();
    assert_eq!(snapshot.text.to_string(), "def f():\n    pass\nx = 1\ny = 2\n");
    assert_eq!(snapshot.tree.as_ref().map(|t| t.root_node().to_sexp()), fresh_sexp(&snapshot));
}

#[test]
fn buffers_over_the_parse_limit_are_text_only() {
    let big = "x = 1\n".repeat(syntax::MAX_PARSE_BYTES / 6 + 1);
    let (store, held) = held_store();
    store.open(Document::unparsed("file:///t/big.py", "python", 1, &big));
    assert!(held.lock().is_empty(), "no parse is even started");
    let snapshot = store.snapshot("file:///t/big.py").unwrap();
    assert!(snapshot.is_parsed() && snapshot.tree.is_none());
}
