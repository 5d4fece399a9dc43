//! A strict end-to-end harness: spawns the real binary, frames real `Content-Length` messages,
//! answers the server's requests, puts a timeout on every wait, and ends with shutdown/exit.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// Every wait gives up after this long. A hang detector, not a speed check: on a machine busy
/// with other work, a model test's answer can take minutes (30 s was not enough under two busy
/// loops beside the test suite).
pub const TIMEOUT: Duration = Duration::from_secs(300);

pub struct Server {
    child: Child,
    stdin: Option<ChildStdin>,
    messages: Receiver<Result<Value, String>>,
    next_id: i64,
    /// Notifications and server requests seen but not yet asked for.
    pub notifications: VecDeque<Value>,
    /// Responses that arrived for requests nobody is waiting on yet.
    responses: Vec<Value>,
    /// What `workspace/configuration` answers.
    pub configuration: Value,
    /// Every request the server sent us, in order.
    pub server_requests: Vec<Value>,
    stderr: Arc<Mutex<String>>,
}

pub struct Builder {
    args: Vec<String>,
    env: Vec<(String, String)>,
}

impl Builder {
    pub fn arg(mut self, arg: &str) -> Self {
        self.args.push(arg.to_owned());
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    pub fn spawn(self) -> Server {
        let mut command = Command::new(env!("CARGO_BIN_EXE_mistral-lsp"));
        command.args(&self.args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        for var in ["MISTRAL_LSP_MODEL", "MISTRAL_LSP_LOG", "MISTRAL_LSP_THREADS", "MISTRAL_LSP_FIM_MODE"] {
            command.env_remove(var);
        }
        command.env("MISTRAL_LSP_LOG", "debug");
        // No test may reach the real hub: a refused port unless a test points it elsewhere.
        command.env("MISTRAL_LSP_HF_ENDPOINT", "http://127.0.0.1:9");
        for (key, value) in &self.env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("spawn mistral-lsp");
        let stdout = child.stdout.take().expect("stdout");
        let stderr_pipe = child.stderr.take().expect("stderr");
        let (tx, messages) = mpsc::channel();
        std::thread::spawn(move || read_frames(stdout, tx));
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr_pipe).lines().map_while(Result::ok) {
                let mut log = sink.lock().unwrap();
                if log.len() > 256 * 1024 {
                    let cut = log.len() - 128 * 1024;
                    let cut = (cut..log.len()).find(|&i| log.is_char_boundary(i)).unwrap_or(0);
                    log.drain(..cut);
                }
                log.push_str(&line);
                log.push('\n');
            }
        });
        Server {
            stdin: child.stdin.take(),
            child,
            messages,
            next_id: 1,
            notifications: VecDeque::new(),
            responses: Vec::new(),
            configuration: Value::Null,
            server_requests: Vec::new(),
            stderr,
        }
    }
}

fn read_frames(stdout: impl Read, tx: mpsc::Sender<Result<Value, String>>) {
    let mut reader = BufReader::new(stdout);
    loop {
        let mut length = None;
        loop {
            let mut line = String::new();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            let line = line.trim_end_matches(['\r', '\n']);
            if line.is_empty() {
                break;
            }
            match line.split_once(':') {
                Some((name, value)) if name.eq_ignore_ascii_case("content-length") => {
                    length = value.trim().parse::<usize>().ok()
                }
                Some(_) => {}
                None => {
                    let _ = tx.send(Err(format!("garbage on stdout: {line:?}")));
                    return;
                }
            }
        }
        let Some(length) = length else {
            let _ = tx.send(Err("frame without Content-Length on stdout".into()));
            return;
        };
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let _ = tx.send(serde_json::from_slice(&body).map_err(|err| format!("bad JSON on stdout: {err}")));
    }
}

impl Server {
    pub fn builder() -> Builder {
        Builder { args: Vec::new(), env: Vec::new() }
    }

    /// A server on the test backend, initialized with the given client capabilities.
    pub fn start(model: &str, capabilities: Value, options: Value) -> Server {
        let mut server = Server::builder().arg("--model").arg(model).spawn();
        server.initialize(capabilities, options);
        server
    }

    pub fn initialize(&mut self, capabilities: Value, options: Value) -> Value {
        let result = self
            .request("initialize", json!({"processId": null, "rootUri": null, "capabilities": capabilities, "initializationOptions": options}))
            .expect("initialize");
        self.notify("initialized", json!({}));
        result
    }

    pub fn log(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin.write_all(bytes).expect("write to server");
        stdin.flush().expect("flush");
    }

    fn send(&mut self, message: &Value) {
        let body = message.to_string();
        self.send_raw(format!("Content-Length: {}\r\n\r\n{body}", body.len()).as_bytes());
    }

    pub fn notify(&mut self, method: &str, params: Value) {
        self.send(&json!({"jsonrpc": "2.0", "method": method, "params": params}));
    }

    /// Sends a request without waiting; returns its id.
    pub fn send_request(&mut self, method: &str, params: Value) -> i64 {
        let id = self.next_id;
        self.next_id += 1;
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        id
    }

    pub fn cancel(&mut self, id: i64) {
        self.notify("$/cancelRequest", json!({"id": id}));
    }

    /// Sends a request and waits for its answer: `Ok(result)` or `Err(error object)`.
    pub fn request(&mut self, method: &str, params: Value) -> Result<Value, Value> {
        let id = self.send_request(method, params);
        self.response(id)
    }

    /// Waits for the answer to request `id`.
    pub fn response(&mut self, id: i64) -> Result<Value, Value> {
        let response = self.wait_for(&format!("the answer to request {id}"), |server| {
            let at = server.responses.iter().position(|r| r["id"] == json!(id))?;
            Some(server.responses.remove(at))
        });
        match response.get("error") {
            Some(error) => Err(error.clone()),
            None => Ok(response["result"].clone()),
        }
    }

    /// Responses to request `id` that have arrived so far, without waiting.
    pub fn responses_for(&mut self, id: i64) -> Vec<Value> {
        while let Ok(Ok(message)) = self.messages.try_recv() {
            self.dispatch(message);
        }
        self.responses.iter().filter(|r| r["id"] == json!(id)).cloned().collect()
    }

    /// Waits until the server's log contains `needle`.
    pub fn wait_log(&mut self, needle: &str) {
        let deadline = Instant::now() + TIMEOUT;
        while !self.log().contains(needle) {
            assert!(Instant::now() < deadline, "`{needle}` never appeared in the log\n{}", self.log());
            while let Ok(Ok(message)) = self.messages.try_recv() {
                self.dispatch(message);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits for a notification (or server request) with this method and returns it.
    pub fn notification(&mut self, method: &str) -> Value {
        self.wait_for(&format!("a `{method}` notification"), |server| {
            let at = server.notifications.iter().position(|n| n["method"] == method)?;
            server.notifications.remove(at)
        })
    }

    /// Waits for a response that arrives with an explicit id (such as null for parse errors).
    pub fn response_with_id(&mut self, id: Value) -> Value {
        self.wait_for(&format!("a response with id {id}"), |server| {
            let at = server.responses.iter().position(|r| r["id"] == id)?;
            Some(server.responses.remove(at))
        })
    }

    fn wait_for<T>(&mut self, what: &str, mut found: impl FnMut(&mut Server) -> Option<T>) -> T {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(value) = found(self) {
                return value;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.messages.recv_timeout(left) {
                Ok(Ok(message)) => self.dispatch(message),
                Ok(Err(garbage)) => panic!("{garbage}\n--- server log ---\n{}", self.log()),
                Err(RecvTimeoutError::Timeout) => {
                    panic!("timed out waiting for {what}\n--- server log ---\n{}", self.log())
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("server closed stdout while waiting for {what}\n--- server log ---\n{}", self.log())
                }
            }
        }
    }

    fn dispatch(&mut self, message: Value) {
        let is_request = message.get("method").is_some() && message.get("id").is_some();
        if is_request {
            let result = match message["method"].as_str() {
                Some("workspace/configuration") => {
                    let items = message["params"]["items"].as_array().map_or(0, Vec::len);
                    Value::Array(vec![self.configuration.clone(); items])
                }
                // The edit is read from `server_requests`; a real editor would apply it.
                Some("workspace/applyEdit") => json!({"applied": true}),
                _ => Value::Null,
            };
            self.send(&json!({"jsonrpc": "2.0", "id": message["id"], "result": result}));
            self.server_requests.push(message.clone());
            self.notifications.push_back(message);
        } else if message.get("method").is_some() {
            self.notifications.push_back(message);
        } else {
            self.responses.push(message);
        }
    }

    pub fn open(&mut self, uri: &str, language_id: &str, text: &str) {
        self.notify(
            "textDocument/didOpen",
            json!({"textDocument": {"uri": uri, "languageId": language_id, "version": 1, "text": text}}),
        );
    }

    pub fn change(&mut self, uri: &str, version: i32, changes: Value) {
        self.notify(
            "textDocument/didChange",
            json!({"textDocument": {"uri": uri, "version": version}, "contentChanges": changes}),
        );
    }

    /// Asks for inline completions and returns the items.
    pub fn inline(&mut self, uri: &str, line: u32, character: u32) -> Result<Vec<Value>, Value> {
        let id = self.send_inline(uri, line, character);
        self.inline_items(id)
    }

    pub fn send_inline(&mut self, uri: &str, line: u32, character: u32) -> i64 {
        self.send_request(
            "textDocument/inlineCompletion",
            json!({"textDocument": {"uri": uri}, "position": {"line": line, "character": character}, "context": {"triggerKind": 2}}),
        )
    }

    pub fn inline_items(&mut self, id: i64) -> Result<Vec<Value>, Value> {
        let result = self.response(id)?;
        let items = if result.is_array() { result } else { result["items"].clone() };
        Ok(items.as_array().cloned().unwrap_or_default())
    }

    /// Waits until the engine reports ready.
    pub fn wait_ready(&mut self) {
        self.wait_status("ready");
    }

    /// Waits for a `mistral-lsp/status` notification with this state (ready, loading, error).
    pub fn wait_status(&mut self, state: &str) {
        loop {
            let status = self.notification("mistral-lsp/status");
            match status["params"]["state"].as_str() {
                Some(s) if s == state => return,
                Some("error") => panic!("engine failed: {status}\n{}", self.log()),
                _ => {}
            }
        }
    }

    /// Ends the session properly and checks the exit code is 0 and nothing was left unread.
    pub fn shutdown(mut self) {
        assert_eq!(self.request("shutdown", Value::Null), Ok(Value::Null));
        self.notify("exit", Value::Null);
        let status = self.wait_exit();
        assert_eq!(status, Some(0), "exit code after shutdown+exit\n{}", self.log());
        let unread: Vec<_> = self.responses.iter().collect();
        assert!(unread.is_empty(), "responses nobody read: {unread:?}");
    }

    /// Waits for the process to end and returns its exit code.
    pub fn wait_exit(&mut self) -> Option<i32> {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status.code();
            }
            assert!(Instant::now() < deadline, "server did not exit\n{}", self.log());
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Tests that run a real model take turns: two models decoding at once on a 2-core machine
/// slow each other down many times over (their threads spin), and their time budgets then expire.
pub fn model_turn() -> std::sync::MutexGuard<'static, ()> {
    static TURN: Mutex<()> = Mutex::new(());
    TURN.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// An empty directory of this test run's own, named `name`; removed again when dropped.
pub fn scratch(name: &str) -> Scratch {
    let dir = std::env::temp_dir().join(format!("mistral-lsp-e2e-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    Scratch(dir)
}

/// A test's scratch directory (see [`scratch`]).
pub struct Scratch(std::path::PathBuf);

impl std::ops::Deref for Scratch {
    type Target = std::path::Path;
    fn deref(&self) -> &std::path::Path {
        &self.0
    }
}

impl AsRef<std::path::Path> for Scratch {
    fn as_ref(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// FNV-1a, as the test backend computes it.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3))
}

/// What the checksum backend answers for this text and cursor.
pub fn checksum(text: &str, cursor: usize) -> String {
    format!("\"{}:{:016x}\"", cursor, fnv1a(text.as_bytes()))
}
