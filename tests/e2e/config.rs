//! Configuration from every source, and how problems with it are reported.

use serde_json::{json, Value};

use crate::harness::{scratch, Server};
use crate::hub::Hub;

#[test]
fn the_model_comes_from_the_environment() {
    let mut server = Server::builder().env("MISTRAL_LSP_MODEL", "test:checksum").spawn();
    server.initialize(json!({}), Value::Null);
    server.wait_ready();
    let status = server.request("workspace/executeCommand", json!({"command": "mistral-lsp.status"})).unwrap();
    assert_eq!(status["model"], "test:checksum");
    server.shutdown();
}

#[test]
fn initialization_options_override_flags_and_bad_keys_are_reported_once() {
    let mut server = Server::builder().arg("--model").arg("test:fail").spawn();
    let options = json!({"model": "test:checksum", "bogusKey": 1, "threads": "many"});
    server.initialize(json!({}), options);
    server.wait_ready();
    let first = server.notification("window/showMessage");
    let second = server.notification("window/showMessage");
    let messages = [first["params"]["message"].as_str().unwrap(), second["params"]["message"].as_str().unwrap()];
    assert!(messages.iter().any(|m| m.contains("unknown setting `bogusKey`")), "{messages:?}");
    assert!(messages.iter().any(|m| m.contains("`threads` must be")), "{messages:?}");
    assert_eq!(first["params"]["type"], 2, "a warning");
    // The same problem again is not shown again.
    server.notify("workspace/didChangeConfiguration", json!({"settings": {"bogusKey": 2}}));
    let status = server.request("workspace/executeCommand", json!({"command": "mistral-lsp.status"})).unwrap();
    assert_eq!(status["state"], "ready");
    assert!(server.notifications.iter().all(|n| n["method"] != "window/showMessage"), "{:?}", server.notifications);
    server.shutdown();
}

#[test]
fn workspace_configuration_is_pulled_and_disables_a_language() {
    let mut server = Server::builder().arg("--model").arg("test:checksum").spawn();
    server.configuration = json!({"completion": {"disabledLanguages": ["python"]}});
    server.initialize(json!({"workspace": {"configuration": true}}), Value::Null);
    server.wait_ready();
    let asked =
        server.server_requests.iter().find(|r| r["method"] == "workspace/configuration").expect("configuration pulled");
    assert_eq!(asked["params"]["items"][0]["section"], "mistralLsp");
    server.open("file:///w/a.py", "python", "x = \n");
    server.open("file:///w/a.rs", "rust", "fn f() {\n    let x = \n}\n");
    assert!(server.inline("file:///w/a.py", 0, 4).unwrap().is_empty(), "python is disabled");
    assert_eq!(server.inline("file:///w/a.rs", 1, 12).unwrap().len(), 1);
    // A change notification with settings re-enables it.
    server.notify(
        "workspace/didChangeConfiguration",
        json!({"settings": {"mistralLsp": {"completion": {"disabledLanguages": []}}}}),
    );
    assert_eq!(server.inline("file:///w/a.py", 0, 4).unwrap().len(), 1);
    // An empty change notification makes the server pull again.
    server.configuration = json!({"completion": {"enabled": false}});
    server.notify("workspace/didChangeConfiguration", json!({"settings": null}));
    server.notification("workspace/configuration");
    // The pulled answer is applied asynchronously: poll for it, with a deadline.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !server.inline("file:///w/a.rs", 1, 12).unwrap().is_empty() {
        assert!(std::time::Instant::now() < deadline, "completions disabled by the pulled settings");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    server.shutdown();
}

#[test]
fn bad_command_line_values_do_not_stop_the_server() {
    let mut server = Server::builder()
        .arg("--model")
        .arg("test:checksum")
        .arg("--threads")
        .arg("lots")
        .env("MISTRAL_LSP_LOG", "loud")
        .spawn();
    server.initialize(json!({}), Value::Null);
    let first = server.notification("window/showMessage");
    let second = server.notification("window/showMessage");
    let messages = format!("{first} {second}");
    assert!(messages.contains("--threads") && messages.contains("MISTRAL_LSP_LOG"), "{messages}");
    server.wait_ready();
    server.shutdown();
}

#[test]
fn changing_the_model_restarts_the_engine() {
    let mut server = Server::start("test:checksum", json!({}), Value::Null);
    server.wait_ready();
    server.notify("workspace/didChangeConfiguration", json!({"settings": {"model": "test:fail"}}));
    let error = server.notification("window/showMessage");
    server.wait_status("error");
    assert_eq!(error["params"]["type"], 1);
    assert!(error["params"]["message"].as_str().unwrap().contains("asked to fail"));
    server.open("file:///w/a.py", "python", "x = \n");
    assert!(server.inline("file:///w/a.py", 0, 4).unwrap().is_empty(), "no model, no suggestion, no error");
    server.notify("workspace/didChangeConfiguration", json!({"settings": {"model": "test:checksum"}}));
    server.wait_ready();
    assert_eq!(server.inline("file:///w/a.py", 0, 4).unwrap().len(), 1);
    server.shutdown();
}

#[test]
fn a_model_of_the_wrong_type_or_empty_is_an_error_and_nothing_is_downloaded() {
    for (name, model) in [("number", json!(5)), ("empty", json!(""))] {
        // A hub that would serve any request, and a cache of the test's own, to see that neither is used.
        let dir = scratch(&format!("bad-model-setting-{name}"));
        let cache = dir.join("cache");
        std::fs::write(dir.join("model.gguf"), "GGUF").unwrap();
        let hub = Hub::serve(dir.join("model.gguf"), "model.gguf");
        let mut server = Server::builder()
            .env("MISTRAL_LSP_HF_ENDPOINT", &hub.endpoint())
            .env("MISTRAL_LSP_CACHE_DIR", cache.to_str().unwrap())
            .spawn();
        server.initialize(json!({}), json!({ "model": model }));
        server.wait_status("error");
        assert_eq!(hub.requests.load(std::sync::atomic::Ordering::Relaxed), 0, "{name}: the hub was asked");
        assert!(!cache.exists(), "{name}: the cache was touched");
        let status = server.request("workspace/executeCommand", json!({"command": "mistral-lsp.status"})).unwrap();
        assert_eq!(status["state"], "error", "{status}");
        assert!(status["message"].as_str().unwrap().contains("no model is set"), "{status}");
        server.shutdown();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
