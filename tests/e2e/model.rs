//! The server with real models: `hf:` downloads with progress, offline starts from the cache,
//! load errors reported in the editor, and a real completion.

use serde_json::{json, Value};

use crate::harness::{scratch, Server};
use crate::hub::Hub;

pub fn test_model(file: &str) -> std::path::PathBuf {
    let dir = std::env::var_os("MISTRAL_LSP_TEST_MODELS").map(std::path::PathBuf::from).unwrap_or_else(|| {
        let cache = std::env::var_os("XDG_CACHE_HOME")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| std::path::PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache"));
        cache.join("mistral-lsp/test-models")
    });
    let path = dir.join(file);
    assert!(path.is_file(), "{} is missing: run scripts/fetch-test-models", path.display());
    path
}

#[test]
fn an_hf_model_downloads_with_progress_then_starts_offline_from_the_cache() {
    let _turn = crate::harness::model_turn();
    let hub = Hub::serve(test_model("smollm2-135m-instruct-q4_1.gguf"), "smol.gguf");
    let cache = scratch("hf-cache");
    // The first start takes the hub and the cache from environment variables, the second from
    // the editor's settings: both feed the same `download.*` settings.
    let start = |endpoint: &str, from_env: bool| {
        let cache = cache.to_str().unwrap();
        let builder = Server::builder().arg("--model").arg("hf:test-owner/smol-repo/smol.gguf");
        let (builder, settings) = match from_env {
            true => (builder.env("MISTRAL_LSP_HF_ENDPOINT", endpoint).env("MISTRAL_LSP_CACHE_DIR", cache), Value::Null),
            false => (builder, json!({"download": {"endpoint": endpoint, "cacheDir": cache}})),
        };
        let mut server = builder.spawn();
        server.initialize(json!({"window": {"workDoneProgress": true}}), settings);
        server
    };
    let mut server = start(&hub.endpoint(), true);
    server.notification("window/workDoneProgress/create");
    let mut percents = Vec::new();
    loop {
        let progress = server.notification("$/progress");
        let value = &progress["params"]["value"];
        if let Some(percent) = value["percentage"].as_u64() {
            percents.push(percent);
        }
        if value["kind"] == "end" {
            break;
        }
    }
    assert!(percents.len() >= 3 && percents.contains(&100), "download progress was reported: {percents:?}");
    server.wait_ready();
    let status = server.request("workspace/executeCommand", json!({"command": "mistral-lsp.status"})).unwrap();
    assert_eq!(status["state"], "ready");
    assert!(status["message"].as_str().unwrap().contains("llama"), "{status}");
    server.shutdown();
    assert!(hub.requests.load(std::sync::atomic::Ordering::Relaxed) >= 2);

    // Offline: the hub is gone and the endpoint refuses connections; the cached file is used.
    drop(hub);
    let mut server = start("http://127.0.0.1:9", false);
    server.wait_ready();
    server.shutdown();
}

#[test]
fn a_bad_model_file_is_reported_and_the_server_keeps_working() {
    let _turn = crate::harness::model_turn();
    let dir = scratch("bad-model");
    let bad = dir.join("bad.gguf");
    std::fs::write(&bad, "<html>not a model</html>").unwrap();
    let mut server = Server::start(bad.to_str().unwrap(), json!({}), Value::Null);
    let error = server.notification("window/showMessage");
    assert_eq!(error["params"]["type"], 1, "an error");
    assert!(error["params"]["message"].as_str().unwrap().contains("not a GGUF"), "{error}");
    server.open("file:///m/a.py", "python", "x = 1\n");
    assert!(server.inline("file:///m/a.py", 0, 5).unwrap().is_empty());
    server.shutdown();
}

#[test]
fn a_real_model_completes_a_python_function() {
    let _turn = crate::harness::model_turn();
    let model = test_model("qwen2.5-coder-0.5b-instruct-q4_k_m.gguf");
    let mut server = Server::builder()
        .arg("--model")
        .arg(model.to_str().unwrap())
        .arg("--threads")
        .arg("2")
        .arg("--context-size")
        .arg("2048")
        .arg("--set")
        .arg("completion.maxTokens=12")
        // The answer is checked, not this machine's speed.
        .arg("--set")
        .arg("completion.timeLimitScale=50")
        .spawn();
    server.initialize(json!({}), Value::Null);
    server.wait_ready();
    let text = "def add(a, b):\n    \"\"\"Return the sum of a and b.\"\"\"\n    return \n";
    server.open("file:///m/add.py", "python", text);
    let items = server.inline("file:///m/add.py", 2, 11).unwrap();
    let suggestion = items[0]["insertText"].as_str().unwrap();
    let compact: String = suggestion.split_whitespace().collect();
    assert!(compact.starts_with("a+b"), "{suggestion:?}");
    let status = server.request("workspace/executeCommand", json!({"command": "mistral-lsp.status"})).unwrap();
    assert!(status["evaluatedTokens"].as_u64().unwrap() > 10, "{status}");
    server.shutdown();
}

#[test]
fn a_model_file_llama_cpp_aborts_on_does_not_end_a_running_server() {
    let dir = scratch("aborting-models");
    let no_layers = dir.join("no-layers.gguf");
    std::fs::write(&no_layers, crate::gguf::llama_with_layers(0)).unwrap();
    let experts = dir.join("per-layer-experts.gguf");
    std::fs::write(&experts, crate::gguf::per_layer_experts()).unwrap();
    let mut server = Server::start("test:checksum", json!({}), Value::Null);
    server.wait_ready();
    let switch = |server: &mut Server, model: &str| {
        server.notify("workspace/didChangeConfiguration", json!({"settings": {"model": model}}));
        server.wait_status(if model.starts_with("test:") { "ready" } else { "error" });
        server.request("workspace/executeCommand", json!({"command": "mistral-lsp.status"})).unwrap()
    };
    // Caught by the metadata checks, in the server.
    let status = switch(&mut server, no_layers.to_str().unwrap());
    assert_eq!(status["state"], "error");
    assert!(status["message"].as_str().unwrap().contains("`llama.block_count` is 0"), "{status}");
    // Caught by the probe: llama.cpp aborts in the child process.
    let status = switch(&mut server, experts.to_str().unwrap());
    assert!(status["message"].as_str().unwrap().contains("llama.cpp aborted while reading"), "{status}");
    // A restart on the same file reuses the verdict.
    switch(&mut server, "test:checksum");
    let status = switch(&mut server, experts.to_str().unwrap());
    assert!(status["message"].as_str().unwrap().contains("llama.cpp aborted while reading"), "{status}");
    let probes = server.log().matches("in a child process in").count();
    assert_eq!(probes, 1, "{}", server.log());
    // Still serving, and it ends cleanly.
    server.open("file:///m/a.py", "python", "x = 1\n");
    assert!(server.inline("file:///m/a.py", 0, 5).unwrap().is_empty());
    server.shutdown();
}

#[test]
fn an_abort_in_llama_cpp_runs_no_debugger() {
    use std::os::unix::process::ExitStatusExt;
    let dir = scratch("no-debugger");
    let model = dir.join("no-layers.gguf");
    std::fs::write(&model, crate::gguf::llama_with_layers(0)).unwrap();
    // A gdb that leaves a mark: ggml runs the first one on PATH to print a backtrace.
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let marker = dir.join("gdb-ran");
    let gdb = bin.join("gdb");
    std::fs::write(&gdb, format!("#!/bin/sh\ntouch '{}'\n", marker.display())).unwrap();
    std::fs::set_permissions(&gdb, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_mistral-lsp"))
        .arg("probe-model")
        .arg(&model)
        .env("PATH", path)
        .env_remove("GGML_NO_BACKTRACE")
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert_eq!(status.signal(), Some(6), "llama.cpp aborts on this file: {status}");
    assert!(!marker.exists(), "gdb was run");
}

#[test]
fn drafts_looked_up_in_the_prompt_are_checked_by_the_model() {
    let _turn = crate::harness::model_turn();
    let model = test_model("qwen2.5-coder-0.5b-instruct-q4_k_m.gguf");
    let text = "def describe(colors):\n    for name, color in colors.items():\n        print(f\"{name}: {color.red} {color.green} {color.blue}\")\n\n\ndef describe_again(colors):\n    for name, color in colors.items():\n        print(f\"{name}: \n";
    let complete = |drafts: &str| {
        let mut server = Server::builder()
            .env("MISTRAL_LSP_DRAFT_TOKENS", drafts)
            .arg("--model")
            .arg(model.to_str().unwrap())
            .arg("--threads")
            .arg("2")
            .arg("--set")
            .arg("completion.maxTokens=16")
            .arg("--set")
            .arg("completion.timeLimitScale=50")
            .arg("--set")
            .arg("completion.prewarm=false")
            .spawn();
        server.initialize(json!({}), Value::Null);
        server.wait_ready();
        server.open("file:///m/colors.py", "python", text);
        // Invoked: its candidates do not depend on how fast this machine is today.
        let id = server.send_request(
            "textDocument/inlineCompletion",
            json!({"textDocument": {"uri": "file:///m/colors.py"}, "position": {"line": 7, "character": 24}, "context": {"triggerKind": 1}}),
        );
        let items = server.inline_items(id).unwrap();
        let status = server.request("workspace/executeCommand", json!({"command": "mistral-lsp.status"})).unwrap();
        server.shutdown();
        (items[0]["insertText"].as_str().unwrap().to_owned(), status)
    };
    let (plain, status) = complete("0");
    assert!(plain.starts_with("{color.red} {color.green}"), "{plain:?}");
    assert_eq!(status["draftedTokens"], 0, "{status}");
    let (drafted, status) = complete("4");
    assert_eq!(drafted, plain, "the model's own answer, whatever was drafted");
    let accepted = status["acceptedTokens"].as_u64().unwrap();
    assert!(accepted > 0 && accepted <= status["draftedTokens"].as_u64().unwrap(), "{status}");
}
