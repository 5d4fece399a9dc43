//! The completion pipeline end to end with real models: holes in Python and Rust files get
//! syntactically valid suggestions that do not repeat the suffix, typing through a suggestion
//! needs no model call, invoked requests offer alternatives, and the instruct path of chat models
//! without FIM tokens (SmolLM2, like Mistral 7B Instruct) comes back clean.

use serde_json::{json, Value};

use crate::harness::Server;
use crate::model::test_model;

const QWEN: &str = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf";
const SMOLLM: &str = "smollm2-135m-instruct-q4_1.gguf";

fn start(model: &str) -> Server {
    start_with(model, &[])
}

fn start_with(model: &str, settings: &[&str]) -> Server {
    let path = test_model(model);
    let mut builder = Server::builder();
    for setting in settings {
        builder = builder.arg("--set").arg(setting);
    }
    let mut server = builder
        .arg("--model")
        .arg(path.to_str().unwrap())
        .arg("--threads")
        .arg("2")
        .arg("--context-size")
        .arg("2048")
        .arg("--set")
        .arg("completion.maxTokens=48")
        // What these tests check is the pipeline's output, not this machine's speed: a busy
        // machine must not cut a block after its first line.
        .arg("--set")
        .arg("completion.timeLimitScale=50")
        // Nor may a speed measured on a busy moment shrink the budgets to nothing (a CI run with
        // a build beside it measured 0.8 generated tokens/s, and a hole came back empty).
        .arg("--set")
        .arg("completion.adaptiveBudgets=false")
        .spawn();
    server.initialize(json!({}), Value::Null);
    server.wait_ready();
    server
}

/// Applies an item to the text (its range, in UTF-16 on ASCII text here).
fn apply(text: &str, item: &Value) -> String {
    let offset = |pos: &Value| {
        let (line, character) = (pos["line"].as_u64().unwrap() as usize, pos["character"].as_u64().unwrap() as usize);
        text.split_inclusive('\n').take(line).map(str::len).sum::<usize>() + character
    };
    let (start, end) = (offset(&item["range"]["start"]), offset(&item["range"]["end"]));
    format!("{}{}{}", &text[..start], item["insertText"].as_str().unwrap(), &text[end..])
}

fn has_syntax_errors(language: mistral_lsp::syntax::Language, text: &str) -> bool {
    let rope = ropey::Rope::from_str(text);
    mistral_lsp::syntax::parse(language, &rope, None).unwrap().root_node().has_error()
}

fn status(server: &mut Server) -> Value {
    server.request("workspace/executeCommand", json!({"command": "mistral-lsp.status"})).unwrap()
}

#[test]
fn python_and_rust_holes_get_valid_code_that_does_not_repeat_the_suffix() {
    let _turn = crate::harness::model_turn();
    let mut server = start(QWEN);
    let python = "def mean(values):\n    \"\"\"Return the arithmetic mean of a list of numbers.\"\"\"\n    total = sum(values)\n    \n    return result\n\n\nprint(mean([1, 2, 3]))\n";
    server.open("file:///p/mean.py", "python", python);
    let items = server.inline("file:///p/mean.py", 3, 4).unwrap();
    let suggestion = items[0]["insertText"].as_str().unwrap();
    assert!(!suggestion.trim().is_empty());
    assert!(!suggestion.contains("return result"), "the suffix is not repeated: {suggestion:?}");
    let completed = apply(python, &items[0]);
    assert!(!has_syntax_errors(mistral_lsp::syntax::Language::Python, &completed), "{completed}");

    let rust = "/// Returns the largest value, or None for an empty slice.\nfn largest(values: &[i32]) -> Option<i32> {\n    let mut best = None;\n    for &v in values {\n        \n    }\n    best\n}\n";
    server.open("file:///p/largest.rs", "rust", rust);
    let items = server.inline("file:///p/largest.rs", 4, 8).unwrap();
    let suggestion = items[0]["insertText"].as_str().unwrap();
    assert!(!suggestion.trim().is_empty());
    assert!(!suggestion.contains("    best\n}"), "the suffix is not repeated: {suggestion:?}");
    let completed = apply(rust, &items[0]);
    assert!(!has_syntax_errors(mistral_lsp::syntax::Language::Rust, &completed), "{completed}");
    server.shutdown();
}

#[test]
fn typing_through_a_suggestion_needs_no_model_call() {
    let _turn = crate::harness::model_turn();
    // No speculation: its background job would count too.
    let mut server = start_with(QWEN, &["completion.precompute=false"]);
    let text = "def add(a, b):\n    \"\"\"Return the sum of a and b.\"\"\"\n    return \n";
    server.open("file:///p/add.py", "python", text);
    let items = server.inline("file:///p/add.py", 2, 11).unwrap();
    let suggestion = items[0]["insertText"].as_str().unwrap().to_owned();
    // What the model writes is its business; typing through needs a few characters of it.
    assert!(suggestion.trim().len() >= 3, "{suggestion:?}");
    let jobs = status(&mut server)["jobs"].clone();
    // The user types the first two characters of the ghost text.
    let typed = &suggestion[..2];
    server.change(
        "file:///p/add.py",
        2,
        json!([{"range": {"start": {"line": 2, "character": 11}, "end": {"line": 2, "character": 11}}, "text": typed}]),
    );
    let items = server.inline("file:///p/add.py", 2, 13).unwrap();
    assert_eq!(items[0]["insertText"].as_str().unwrap(), &suggestion[2..]);
    assert_eq!(status(&mut server)["jobs"], jobs, "no engine job ran");
    server.shutdown();
}

/// Polls the status until `jobs` engine jobs have finished.
fn wait_for_jobs(server: &mut Server, jobs: u64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while status(server)["jobs"].as_u64().unwrap() < jobs {
        assert!(std::time::Instant::now() < deadline, "the engine never finished {jobs} jobs");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[test]
fn the_line_after_an_accepted_suggestion_is_ready_before_it_is_asked_for() {
    let _turn = crate::harness::model_turn();
    let mut server = start_with(QWEN, &["completion.precompute=true"]);
    let text = "def add(a, b):\n    \"\"\"Return the sum of a and b.\"\"\"\n    return \n";
    server.open("file:///p/calc.py", "python", text);
    let before = status(&mut server)["jobs"].as_u64().unwrap();
    let items = server.inline("file:///p/calc.py", 2, 11).unwrap();
    let suggestion = items[0]["insertText"].as_str().unwrap().to_owned();
    assert!(!suggestion.trim().is_empty(), "{suggestion:?}");
    // The suggestion's own job, then the speculation in the background.
    wait_for_jobs(&mut server, before + 2);
    let jobs = status(&mut server)["jobs"].clone();
    // The user accepts it and presses Enter.
    let accepted = format!("{suggestion}\n");
    server.change(
        "file:///p/calc.py",
        2,
        json!([{"range": {"start": {"line": 2, "character": 11}, "end": {"line": 2, "character": 11}}, "text": accepted}]),
    );
    let lines = suggestion.matches('\n').count() as u32;
    let items = server.inline("file:///p/calc.py", 3 + lines, 0).unwrap();
    assert_eq!(status(&mut server)["jobs"], jobs, "answered from the speculation, no new engine job");
    assert!(!items.is_empty(), "the speculation's suggestion is shown");
    server.shutdown();
}

#[test]
fn invoked_requests_offer_distinct_alternatives() {
    let _turn = crate::harness::model_turn();
    let mut server = start(QWEN);
    server.notify("workspace/didChangeConfiguration", json!({"settings": {"completion": {"maxTokens": 16}}}));
    server.open("file:///p/greet.py", "python", "def greet(name):\n    \n");
    let id = server.send_request(
        "textDocument/inlineCompletion",
        json!({"textDocument": {"uri": "file:///p/greet.py"}, "position": {"line": 1, "character": 4}, "context": {"triggerKind": 1}}),
    );
    let items = server.inline_items(id).unwrap();
    assert!((2..=3).contains(&items.len()), "{items:?}");
    // At the start of a body each alternative begins with its own word.
    let words: std::collections::HashSet<_> = items
        .iter()
        .map(|i| mistral_lsp::postprocess::first_word(i["insertText"].as_str().unwrap()).unwrap())
        .collect();
    assert_eq!(words.len(), items.len(), "alternatives begin differently: {items:?}");
    server.shutdown();
}

#[test]
fn a_chat_model_without_fim_tokens_gives_clean_code() {
    let _turn = crate::harness::model_turn();
    let mut server = start(SMOLLM);
    let text = "def add(a, b):\n    \"\"\"Return the sum of a and b.\"\"\"\n    return \n\n\nprint(add(1, 2))\n";
    server.open("file:///p/add.py", "python", text);
    let items = server.inline("file:///p/add.py", 2, 11).unwrap();
    let suggestion = items[0]["insertText"].as_str().unwrap();
    assert!(!suggestion.trim().is_empty());
    for chatter in ["```", "Here", "here is", "print(add(1, 2))", "def add"] {
        assert!(!suggestion.contains(chatter), "{chatter:?} in {suggestion:?}");
    }
    assert!(!has_syntax_errors(mistral_lsp::syntax::Language::Python, &apply(text, &items[0])));
    server.shutdown();
}
