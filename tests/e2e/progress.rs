//! Background model loading: work-done progress, status notifications, empty answers meanwhile.

use serde_json::{json, Value};

use crate::harness::Server;

#[test]
fn loading_reports_work_done_progress_and_requests_meanwhile_get_nothing() {
    let mut server =
        Server::start("test:checksum?load_ms=1500", json!({"window": {"workDoneProgress": true}}), Value::Null);
    server.open("file:///l/a.py", "python", "x = \n");
    let started = std::time::Instant::now();
    assert!(server.inline("file:///l/a.py", 0, 4).unwrap().is_empty(), "no suggestion while loading");
    assert!(started.elapsed().as_millis() < 1000, "and no waiting for the model either");
    let create = server.notification("window/workDoneProgress/create");
    let token = create["params"]["token"].clone();
    let begin = server.notification("$/progress");
    assert_eq!(begin["params"]["token"], token);
    assert_eq!(begin["params"]["value"]["kind"], "begin");
    server.wait_ready();
    let mut kinds = Vec::new();
    loop {
        let progress = server.notification("$/progress");
        let kind = progress["params"]["value"]["kind"].as_str().unwrap().to_owned();
        kinds.push(kind.clone());
        if kind == "end" {
            break;
        }
    }
    assert!(kinds.iter().any(|k| k == "report"), "{kinds:?}");
    assert_eq!(server.inline("file:///l/a.py", 0, 4).unwrap().len(), 1);
    server.shutdown();
}

#[test]
fn no_progress_requests_for_clients_without_support() {
    let mut server = Server::start("test:checksum?load_ms=200", json!({}), Value::Null);
    server.wait_ready();
    server.request("workspace/executeCommand", json!({"command": "mistral-lsp.status"})).unwrap();
    assert!(server.server_requests.iter().all(|r| r["method"] != "window/workDoneProgress/create"));
    server.shutdown();
}

#[test]
fn a_model_that_fails_to_load_is_reported_and_the_server_stays_up() {
    let mut server = Server::start("test:fail", json!({}), Value::Null);
    let error = server.notification("window/showMessage");
    assert_eq!(error["params"]["type"], 1, "an error");
    server.open("file:///l/a.py", "python", "x = \n");
    assert!(server.inline("file:///l/a.py", 0, 4).unwrap().is_empty());
    let status = server.request("workspace/executeCommand", json!({"command": "mistral-lsp.status"})).unwrap();
    assert_eq!(status["state"], "error");
    assert_eq!(status["documents"], 1);
    server.shutdown();
}
