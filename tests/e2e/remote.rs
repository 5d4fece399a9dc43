//! Remote engines end to end: the real binary with `--remote` against a real llama-server (built
//! by `bench/build-llama-tools`) running the Qwen 0.5B, through both APIs, and the faults a user
//! meets: a server down at start or killed mid-session, a refused key, the wrong API, 5xx, a body
//! that is not JSON, a server that never answers (a small scripted HTTP server plays those).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::harness::{Server, TIMEOUT};
use crate::model::test_model;

const QWEN: &str = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf";
const ADD: &str = "def add(a, b):\n    return \n\nprint(add(1, 2))\n";
const URI: &str = "file:///tmp/remote/add.py";
/// An empty body: an invoked request gets alternatives that begin with other words.
const BODY: &str = "def add(a, b):\n    \n\nprint(add(1, 2))\n";
const BODY_URI: &str = "file:///tmp/remote/body.py";

/// The llama-server binary: `MISTRAL_LSP_LLAMA_SERVER`, or what `bench/build-llama-tools` built.
fn llama_server_binary() -> std::path::PathBuf {
    let path = std::env::var_os("MISTRAL_LSP_LLAMA_SERVER")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/llama-tools/llama-server"));
    assert!(path.is_file(), "{} is missing: run bench/build-llama-tools", path.display());
    path
}

/// A port nothing listens on (until a test starts something there).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A real llama-server with the Qwen 0.5B: two slots of 2048 tokens.
struct LlamaServer {
    child: Child,
    port: u16,
}

impl LlamaServer {
    fn start(port: u16) -> LlamaServer {
        let child = Command::new(llama_server_binary())
            .args(["-m", test_model(QWEN).to_str().unwrap(), "--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["-c", "4096", "-np", "2", "-t", "2", "--no-webui"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start llama-server");
        let server = LlamaServer { child, port };
        let deadline = Instant::now() + TIMEOUT;
        while http("GET", port, "/health", "").map(|(status, _)| status) != Some(200) {
            assert!(Instant::now() < deadline, "llama-server did not come up");
            std::thread::sleep(Duration::from_millis(100));
        }
        server
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Whether any slot is working on a task.
    fn busy(&self) -> bool {
        let (_, body) = http("GET", self.port, "/slots", "").expect("/slots");
        let slots: Value = serde_json::from_str(&body).unwrap();
        slots.as_array().unwrap().iter().any(|slot| slot["is_processing"] == json!(true))
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for LlamaServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A plain HTTP/1.1 exchange (no keep-alive): status and body, or `None` without a connection.
fn http(method: &str, port: u16, path: &str, body: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(TIMEOUT)).ok()?;
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    let status = answer.split(' ').nth(1)?.parse().ok()?;
    let body = answer.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    Some((status, body))
}

/// The binary pointed at `url`, initialized; greedy and with generous time limits, since what
/// these tests check is behaviour, not this machine's speed.
fn lsp(url: &str, settings: &[&str], env: &[(&str, &str)]) -> Server {
    let mut builder = Server::builder().arg("--remote").arg(url);
    for setting in ["completion.maxTokens=24", "completion.timeLimitScale=50"].iter().chain(settings) {
        builder = builder.arg("--set").arg(setting);
    }
    for (key, value) in env {
        builder = builder.env(key, value);
    }
    let mut server = builder.spawn();
    server.initialize(json!({}), Value::Null);
    server
}

fn first_suggestion(server: &mut Server) -> String {
    let items = server.inline(URI, 1, 11).unwrap_or_else(|err| panic!("{err}\n{}", server.log()));
    items.first().and_then(|item| item["insertText"].as_str()).unwrap_or_default().to_owned()
}

/// Every suggestion of an invoked request in the empty body (alternatives included).
fn invoked_suggestions(server: &mut Server) -> Vec<String> {
    server.open(BODY_URI, "python", BODY);
    let position = json!({"line": 1, "character": 4});
    let params = json!({"textDocument": {"uri": BODY_URI}, "position": position, "context": {"triggerKind": 1}});
    let id = server.send_request("textDocument/inlineCompletion", params);
    let items = server.inline_items(id).unwrap_or_else(|err| panic!("{err}\n{}", server.log()));
    items.iter().map(|item| item["insertText"].as_str().unwrap_or_default().to_owned()).collect()
}

fn status(server: &mut Server) -> Value {
    server.request("workspace/executeCommand", json!({"command": "mistral-lsp.status"})).unwrap()
}

/// Waits for a status notification whose state and message match.
fn wait_status(server: &mut Server, state: &str, message: &str) -> String {
    loop {
        let status = server.notification("mistral-lsp/status");
        let text = status["params"]["message"].as_str().unwrap_or_default().to_owned();
        if status["params"]["state"] == json!(state) && text.contains(message) {
            return text;
        }
    }
}

#[test]
fn remote_completions_match_the_embedded_engine_through_both_apis() {
    let _turn = crate::harness::model_turn();
    // The embedded engine's greedy answer, for comparison.
    let mut local = Server::builder()
        .arg("--model")
        .arg(test_model(QWEN).to_str().unwrap())
        .arg("--threads")
        .arg("2")
        .arg("--set")
        .arg("completion.maxTokens=24")
        .arg("--set")
        .arg("completion.timeLimitScale=50")
        .spawn();
    local.initialize(json!({}), Value::Null);
    local.wait_ready();
    local.open(URI, "python", ADD);
    let expected = first_suggestion(&mut local);
    let alternatives = invoked_suggestions(&mut local);
    local.shutdown();
    assert!(!expected.trim().is_empty(), "the embedded engine suggests something here");
    assert!(alternatives.len() > 1, "an invoked request gets alternatives: {alternatives:?}");

    let llama = LlamaServer::start(free_port());
    for api in ["llama-server", "openai"] {
        let mut server = lsp(&llama.url(), &[&format!("remote.api={api}")], &[]);
        server.wait_ready();
        server.open(URI, "python", ADD);
        assert_eq!(first_suggestion(&mut server), expected, "through {api}\n{}", server.log());
        if api == "llama-server" {
            // Alternatives begin with another word than the answers before them: the first
            // tokens are chosen here by the embedded engine's rule, from the server's ranking.
            assert_eq!(invoked_suggestions(&mut server), alternatives, "{}", server.log());
            // The document keeps its slot: typing on the line (not what was suggested, so the
            // model runs again) reuses the server's cache.
            server.change(URI, 2, json!([{"range": {"start": {"line": 1, "character": 11}, "end": {"line": 1, "character": 11}}, "text": "b"}]));
            let items = server.inline(URI, 1, 12).unwrap();
            assert!(!items.is_empty(), "{}", server.log());
            let status = status(&mut server);
            assert!(status["reusedTokens"].as_u64() > Some(0), "{status}");
        }
        server.shutdown();
    }
}

#[test]
fn chat_prompts_run_remotely_through_both_apis() {
    let _turn = crate::harness::model_turn();
    let llama = LlamaServer::start(free_port());
    for api in ["llama-server", "openai"] {
        let mut server = lsp(&llama.url(), &[&format!("remote.api={api}"), "fim.mode=instruct"], &[]);
        server.wait_ready();
        server.open(URI, "python", ADD);
        let suggestion = first_suggestion(&mut server);
        assert!(
            !suggestion.trim().is_empty() && !suggestion.contains("```"),
            "through {api}: {suggestion:?}\n{}",
            server.log()
        );
        server.shutdown();
    }
}

#[test]
fn a_cancelled_request_leaves_the_real_server_idle() {
    let _turn = crate::harness::model_turn();
    let llama = LlamaServer::start(free_port());
    let mut server = lsp(&llama.url(), &["completion.maxTokens=2048", "context.prefixTokens=1500"], &[]);
    server.wait_ready();
    let body: String = (0..300).map(|i| format!("    total += values[{i}] * {i}  # weight {i}\n")).collect();
    let text = format!("def weigh(values):\n    total = 0\n{body}    return \n");
    server.open(URI, "python", &text);
    // Cancelled at once: whether the server was still evaluating the prompt (on a slow machine)
    // or already done (on a fast one), the request is answered and the server is left idle.
    // That the connection is closed on a cancel is proved by the scripted server's test below.
    let id = server.send_inline(URI, 302, 11);
    server.cancel(id);
    let answer = server.response(id);
    let cancelled = answer.as_ref().is_err_and(|err| err["code"] == json!(-32800));
    assert!(answer.is_ok() || cancelled, "{answer:?}");
    let deadline = Instant::now() + TIMEOUT;
    while llama.busy() {
        assert!(Instant::now() < deadline, "the slot stayed busy after the cancel\n{}", server.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    server.shutdown();
}

#[test]
fn a_server_down_at_start_or_killed_mid_session_is_waited_for_and_found_again() {
    let _turn = crate::harness::model_turn();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let mut server = lsp(&url, &[], &[]);
    let waiting = wait_status(&mut server, "loading", "waiting for the server");
    assert!(waiting.contains(&url), "{waiting}");
    server.open(URI, "python", ADD);
    // No model yet: an answer with nothing in it, at once, not a hang.
    assert_eq!(server.inline(URI, 1, 11), Ok(vec![]));

    let mut llama = LlamaServer::start(port);
    server.wait_ready();
    assert!(!first_suggestion(&mut server).is_empty(), "{}", server.log());

    llama.kill();
    // Text the output cache has not seen, so that the request needs the server.
    server.change(
        URI,
        2,
        json!([{"range": {"start": {"line": 1, "character": 11}, "end": {"line": 1, "character": 11}}, "text": "b"}]),
    );
    let answer = server.inline(URI, 1, 12);
    let error = answer.expect_err("a request to a dead server fails with a message");
    assert!(error["message"].as_str().unwrap_or_default().contains(&url), "{error}");
    wait_status(&mut server, "loading", "lost the server");
    let _llama = LlamaServer::start(port);
    server.wait_ready();
    let items = server.inline(URI, 1, 12).unwrap();
    assert!(!items.is_empty(), "{}", server.log());
    server.shutdown();
}

/// What the scripted server answers: status, content type and body, by method and path (`None`:
/// hold the connection open and never answer).
type Script = dyn Fn(&str, &str) -> Option<(u16, &'static str, String)> + Send + Sync;

/// A scripted HTTP server; counts requests by path and records their headers.
struct Fake {
    port: u16,
    hits: Arc<Mutex<Vec<(String, String)>>>,
}

impl Fake {
    fn serve(script: Box<Script>) -> Fake {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let hits = Arc::new(Mutex::new(Vec::new()));
        let (script, seen) = (Arc::new(script), hits.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().map_while(Result::ok) {
                let (script, seen) = (script.clone(), seen.clone());
                std::thread::spawn(move || answer(stream, &**script, &seen));
            }
        });
        Fake { port, hits }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn count(&self, path: &str) -> usize {
        self.hits.lock().unwrap().iter().filter(|(p, _)| p == path).count()
    }
}

fn answer(stream: TcpStream, script: &Script, seen: &Mutex<Vec<(String, String)>>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let (method, path) = (parts.next().unwrap_or_default().to_owned(), parts.next().unwrap_or_default().to_owned());
        let (mut headers, mut length) = (String::new(), 0);
        loop {
            let mut header = String::new();
            reader.read_line(&mut header).unwrap_or(0);
            if header.trim().is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
            headers.push_str(&header);
        }
        let mut body = vec![0; length];
        let _ = reader.read_exact(&mut body);
        seen.lock().unwrap().push((path.clone(), headers));
        let Some((status, content_type, body)) = script(&method, &path) else {
            std::thread::sleep(TIMEOUT);
            return;
        };
        if content_type == HOLD {
            // An answer that streams forever (SSE comments, which clients skip) until the client
            // closes the connection; then the close is recorded.
            let head = format!("HTTP/1.1 {status} X\r\nContent-Type: text/event-stream\r\n\r\n{body}");
            let mut writer = &stream;
            let mut result = writer.write_all(head.as_bytes());
            while result.is_ok() {
                std::thread::sleep(Duration::from_millis(20));
                result = writer.write_all(b": still working\n\n").and_then(|()| writer.flush());
            }
            seen.lock().unwrap().push((format!("closed {path}"), String::new()));
            return;
        }
        let response = format!(
            "HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        if (&stream).write_all(response.as_bytes()).is_err() {
            return;
        }
    }
}

/// The content type that makes the scripted server stream an endless answer.
const HOLD: &str = "hold";

/// `/props` of a llama-server whose model has no FIM tokens and no chat template.
fn props() -> Option<(u16, &'static str, String)> {
    let props = json!({"default_generation_settings": {"n_ctx": 4096}, "total_slots": 1, "model_path": "/m/plain.gguf", "chat_template": ""});
    Some((200, "application/json", props.to_string()))
}

#[test]
fn a_refused_key_is_a_clear_error_and_never_logged() {
    let fake = Fake::serve(Box::new(|_, _| Some((401, "application/json", r#"{"error":"no"}"#.into()))));
    let key = "sekret-key-4242";
    let mut server = lsp(&fake.url(), &[], &[("MISTRAL_LSP_API_KEY", key)]);
    let message = wait_status(&mut server, "error", "MISTRAL_LSP_API_KEY");
    assert!(message.contains("401"), "{message}");
    let hits = fake.hits.lock().unwrap().clone();
    assert!(hits.iter().all(|(_, headers)| headers.contains(&format!("Bearer {key}"))), "{hits:?}");
    assert!(!server.log().contains(key), "the key was logged");
    server.shutdown();
}

#[test]
fn the_wrong_api_is_a_clear_error() {
    let fake = Fake::serve(Box::new(|_, _| Some((404, "text/plain", "not found".into()))));
    let mut server = lsp(&fake.url(), &["remote.api=llama-server"], &[]);
    let message = wait_status(&mut server, "error", "remote.api");
    assert!(message.contains("404") && message.contains("/props"), "{message}");
    server.shutdown();
}

#[test]
fn server_errors_garbage_and_silence_are_errors_with_the_servers_words() {
    type Case = (&'static str, fn() -> Option<(u16, &'static str, String)>, &'static str);
    let cases: [Case; 3] = [
        ("500", || Some((500, "text/plain", "out of memory".into())), "out of memory"),
        ("garbage", || Some((200, "text/event-stream", "data: <html>oops</html>\n\n".into())), "not JSON"),
        ("silence", || None, "no answer within 2000 ms"),
    ];
    for (name, completion, expected) in cases {
        let fake = Fake::serve(Box::new(move |_, path| match path {
            "/props" => props(),
            "/completion" => completion(),
            _ => Some((404, "text/plain", String::new())),
        }));
        let mut server = lsp(&fake.url(), &["remote.timeoutMs=2000"], &[]);
        server.wait_ready();
        server.open(URI, "python", ADD);
        let error = server.inline(URI, 1, 11).expect_err(name);
        let message = error["message"].as_str().unwrap_or_default();
        assert!(message.contains(expected), "{name}: {message}\n{}", server.log());
        match name {
            "500" => assert_eq!(fake.count("/completion"), 3, "5xx answers are retried, then given up on"),
            // Asking a busy server again would queue behind the same work.
            "silence" => assert_eq!(fake.count("/completion"), 1, "a slow answer is not asked for again"),
            _ => {}
        }
        server.shutdown();
    }
}

#[test]
fn a_busy_server_ends_a_job_at_its_prompt_budget_without_errors_or_retries() {
    // The server takes the request and never answers (a queue of other users' work); the job's
    // prompt budget (3 s at a time-limit scale of 0.1) runs out long before the 60 s time-out.
    let fake = Fake::serve(Box::new(|_, path| match path {
        "/props" => props(),
        "/completion" => None,
        _ => Some((404, "text/plain", String::new())),
    }));
    let mut server = lsp(&fake.url(), &["remote.timeoutMs=60000", "completion.timeLimitScale=0.1"], &[]);
    server.wait_ready();
    server.open(URI, "python", ADD);
    let items = server.inline(URI, 1, 11).unwrap_or_else(|err| panic!("{err}\n{}", server.log()));
    assert!(items.is_empty(), "{items:?}");
    assert_eq!(fake.count("/completion"), 1, "the request was sent again\n{}", server.log());
    let status = server.request("workspace/executeCommand", json!({"command": "mistral-lsp.status"})).unwrap();
    assert_eq!(status["state"], "ready", "a busy server is not a lost one: {status}");
    server.shutdown();
}

#[test]
fn cancelling_a_request_closes_its_connection() {
    let first = "data: {\"content\":\"x\",\"stop\":false}\n\n".to_owned();
    let fake = Fake::serve(Box::new(move |_, path| match path {
        "/props" => props(),
        "/completion" => Some((200, HOLD, first.clone())),
        _ => Some((404, "text/plain", String::new())),
    }));
    let mut server = lsp(&fake.url(), &[], &[]);
    server.wait_ready();
    server.open(URI, "python", ADD);
    let id = server.send_inline(URI, 1, 11);
    let deadline = Instant::now() + TIMEOUT;
    while fake.count("/completion") == 0 {
        assert!(Instant::now() < deadline, "the request never reached the server\n{}", server.log());
        std::thread::sleep(Duration::from_millis(5));
    }
    server.cancel(id);
    let _ = server.response(id);
    // The server sees the connection closed: it would stop generating.
    while fake.count("closed /completion") == 0 {
        assert!(Instant::now() < deadline, "the connection stayed open after the cancel\n{}", server.log());
        std::thread::sleep(Duration::from_millis(10));
    }
    server.shutdown();
}
