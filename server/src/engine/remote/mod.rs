//! Remote engines: jobs sent over HTTP to llama-server or an OpenAI-compatible server (vLLM, TGI,
//! Ollama, llama-server's `/v1`), with the same `Job` → `Output` contract as the embedded engine.
//!
//! Connecting learns what the server is (its API, model, FIM tokens, slots) and retries with
//! backoff while it is down; the engine's state says so meanwhile. Jobs stream their answer
//! (server-sent events) through the shared stop rules; cancelling a job, or a stop rule ending it,
//! drops the response, which closes the connection so that the server stops generating.
//! Connection errors and 5xx answers are retried; a server lost for good puts the engine back
//! into "connecting" until it answers again.

mod steer;
mod wire;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use parking_lot::{Mutex, RwLock};
use serde_json::{json, Value};
use tokio::sync::{watch, Notify};

use super::constrain::avoided;
use super::generation::Generation;
use super::{CancelToken, EngineError, Job, Output, State, Stats, StopReason, TokenCounter};
use crate::config::RemoteApi;
use crate::models::ModelInfo;
use crate::prompt::Special;
use steer::{Choice, Steering};
use wire::{Api, Rendered, Specials};

/// The environment variable that holds a remote server's API key.
pub const API_KEY_VARIABLE: &str = "MISTRAL_LSP_API_KEY";

/// Where and how to reach a remote server.
#[derive(Clone)]
pub struct RemoteConfig {
    /// Base URL, without a trailing `/`.
    pub url: String,
    pub api: RemoteApi,
    /// The model name for OpenAI-compatible servers; empty means the first listed.
    pub model: String,
    /// Most time to connect, and to wait for the next piece of an answer.
    pub timeout: Duration,
    /// Sent as a bearer token; never logged.
    pub api_key: Option<String>,
}

impl std::fmt::Debug for RemoteConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteConfig")
            .field("url", &self.url)
            .field("api", &self.api)
            .field("model", &self.model)
            .field("timeout", &self.timeout)
            .field("api_key", &self.api_key.as_ref().map(|_| "<set>"))
            .finish()
    }
}

/// Characters a token in code, where the server cannot say.
const ESTIMATED_CHARS_PER_TOKEN: f32 = 4.0;

/// Code that calibrates the estimate of characters a token (Python and Rust, as completions see).
const CODE_SAMPLE: &str = r#"def split(p):
    """Split a pathname into a (head, tail) tuple."""
    p = os.fspath(p)
    sep = _get_sep(p)
    i = p.rfind(sep) + 1
    head, tail = p[:i], p[i:]
    if head and head != sep * len(head):
        head = head.rstrip(sep)
    return head, tail

impl<'a> Parser<'a> {
    pub fn next_token(&mut self) -> Option<Token<'a>> {
        let start = self.position;
        while let Some(c) = self.peek() {
            if !c.is_whitespace() { break; }
            self.position += c.len_utf8();
        }
        Some(Token { text: &self.source[start..self.position], line: self.line })
    }
}
"#;

/// Attempts of one request when the connection fails or the server answers 5xx.
const ATTEMPTS: u32 = 3;
/// The first wait before a retry; it doubles each time.
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
/// The longest wait between two connection attempts.
const MOST_BACKOFF: Duration = Duration::from_secs(10);
/// How often a waiting job looks at its cancel token.
const POLL: Duration = Duration::from_millis(10);

/// What connecting learned about the server.
#[derive(Debug)]
struct Server {
    api: Api,
    /// The model to name in requests (OpenAI-compatible servers).
    model: String,
    specials: Specials,
    /// llama-server's slots, for a slot per document.
    slots: u32,
    /// Characters a token on average in code, measured with the server's tokenizer where it
    /// has an endpoint for it.
    chars_per_token: f32,
    /// Which token ids are control tokens (the end of text and its kind), as learned so far.
    controls: Mutex<HashMap<i64, bool>>,
}

/// Why a request failed.
enum Fault {
    /// Worth trying again: no connection, 5xx.
    Transient(String),
    /// The server took longer than the time-out. While connecting it is tried again like a
    /// transient fault; a job's request is not: asking again would queue behind the same work on
    /// a busy server, and the job's own budget is spent by then.
    Slow(String),
    /// The server refused the API key.
    Auth(String),
    /// Anything else: the answer will not change by asking again.
    Fatal(String),
}

/// A connection to a remote server, shared by every engine handle.
pub(crate) struct Remote {
    config: RemoteConfig,
    http: reqwest::Client,
    state: watch::Sender<State>,
    exited: watch::Sender<bool>,
    server: RwLock<Option<Arc<Server>>>,
    stopped: AtomicBool,
    stop_notify: Notify,
    connecting: AtomicBool,
}

impl Remote {
    /// Starts connecting in the background.
    pub fn start(config: RemoteConfig, state: watch::Sender<State>, exited: watch::Sender<bool>) -> Arc<Remote> {
        let http = reqwest::Client::builder().connect_timeout(config.timeout).build();
        let (http, problem) = match http {
            Ok(http) => (http, None),
            Err(err) => (reqwest::Client::new(), Some(format!("cannot set up the HTTP client: {err}"))),
        };
        let remote = Arc::new(Remote {
            config,
            http,
            state,
            exited,
            server: RwLock::new(None),
            stopped: AtomicBool::new(false),
            stop_notify: Notify::new(),
            connecting: AtomicBool::new(false),
        });
        match (problem, tokio::runtime::Handle::try_current()) {
            (Some(problem), _) => remote.fail(problem),
            (None, Err(_)) => remote.fail("a remote engine needs the async runtime".into()),
            (None, Ok(_)) => remote.reconnect(None),
        }
        remote
    }

    /// Stops: no more connection attempts; running jobs end at their next step.
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
        self.stop_notify.notify_waiters();
        self.exited.send_replace(true);
    }

    fn fail(&self, message: String) {
        tracing::error!("{message}");
        self.state.send_replace(State::Failed { message });
    }

    /// Connects (again) in the background, unless that is under way; `lost` says why the
    /// server was lost, for the status.
    fn reconnect(self: &Arc<Self>, lost: Option<String>) {
        if self.stopped.load(Ordering::Acquire) || self.connecting.swap(true, Ordering::AcqRel) {
            return;
        }
        if let Some(why) = &lost {
            tracing::warn!("lost the server at {}: {why}; reconnecting", self.config.url);
            self.state.send_replace(State::Loading {
                message: format!("lost the server at {}: {why}; reconnecting", self.config.url),
                percent: None,
            });
        }
        let remote = self.clone();
        tokio::spawn(async move {
            remote.connect().await;
            remote.connecting.store(false, Ordering::Release);
        });
    }

    async fn connect(&self) {
        let url = &self.config.url;
        let mut delay = FIRST_BACKOFF;
        loop {
            if self.stopped.load(Ordering::Acquire) {
                return;
            }
            match self.detect().await {
                Ok((server, info)) => {
                    tracing::info!("remote server at {url}: {:?}, model {:?}", server.api, info.name);
                    *self.server.write() = Some(Arc::new(server));
                    if !self.stopped.load(Ordering::Acquire) {
                        self.state.send_replace(State::Ready { model: info, notice: None });
                    }
                    return;
                }
                Err(Fault::Auth(message) | Fault::Fatal(message)) => return self.fail(message),
                Err(Fault::Transient(why) | Fault::Slow(why)) => {
                    let message = format!("waiting for the server at {url}: {why} (next try in {delay:.1?})");
                    tracing::info!("{message}");
                    self.state.send_replace(State::Loading { message, percent: None });
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = self.stop_notify.notified() => return,
                    }
                    delay = (delay * 2).min(MOST_BACKOFF);
                }
            }
        }
    }

    /// Asks the server what it is.
    async fn detect(&self) -> Result<(Server, ModelInfo), Fault> {
        match self.config.api {
            RemoteApi::LlamaServer => self.llama_server().await,
            RemoteApi::OpenAi => self.openai().await,
            RemoteApi::Auto => match self.llama_server().await {
                Err(Fault::Fatal(why)) => {
                    tracing::debug!("not llama-server ({why}); trying the OpenAI API");
                    self.openai().await
                }
                other => other,
            },
        }
    }

    async fn llama_server(&self) -> Result<(Server, ModelInfo), Fault> {
        let props = self.get("/props").await?;
        if props.get("default_generation_settings").is_none() {
            return Err(Fault::Fatal(format!("{}/props is not llama-server's", self.config.url)));
        }
        let path = props.get("model_path").and_then(Value::as_str).unwrap_or_default();
        let name = path.rsplit(['/', '\\']).next().filter(|n| !n.is_empty()).unwrap_or("llama-server").to_owned();
        let slots = props.get("total_slots").and_then(Value::as_u64).unwrap_or(1).max(1) as u32;
        let context = props["default_generation_settings"].get("n_ctx").and_then(Value::as_u64).unwrap_or(0);
        let chat = props.get("chat_template").and_then(Value::as_str).is_some_and(|t| !t.is_empty());
        let specials = self.llama_server_specials(&name).await?;
        let info = ModelInfo {
            description: format!("{name} on llama-server at {} ({slots} slots)", self.config.url),
            architecture: "remote".into(),
            has_fim_tokens: specials.has(Special::FimPrefix),
            has_repo_tokens: specials.has(Special::FimRepo) && specials.has(Special::FimSeparator),
            has_chat_template: chat,
            context_size: context as u32,
            threads: 0,
            rates: None,
            name,
        };
        let chars_per_token = match self.tokenize_plain(CODE_SAMPLE).await {
            Ok(tokens) if tokens > 0 => CODE_SAMPLE.chars().count() as f32 / tokens as f32,
            _ => ESTIMATED_CHARS_PER_TOKEN,
        };
        tracing::debug!("the server's tokenizer: {chars_per_token:.2} characters a token in code");
        let controls = Mutex::default();
        Ok((Server { api: Api::LlamaServer, model: String::new(), specials, slots, chars_per_token, controls }, info))
    }

    /// The FIM token ids, from the server's own rendering of an empty infill prompt; repo-level
    /// tokens where the family's spellings are single tokens of this vocabulary.
    async fn llama_server_specials(&self, name: &str) -> Result<Specials, Fault> {
        let probe = json!({"input_prefix": "", "input_suffix": "", "n_predict": 1, "cache_prompt": false});
        let rendered = match self.post("/infill", &probe).await {
            Ok(answer) => answer.get("prompt").and_then(Value::as_str).unwrap_or_default().to_owned(),
            Err(Fault::Fatal(why)) => {
                tracing::info!("the server's model has no FIM tokens: {why}");
                return Ok(Specials::None);
            }
            Err(other) => return Err(other),
        };
        let tokens = self.tokenize(&rendered).await?;
        let mut ids = Vec::new();
        if let [.., pre, suf, mid] = tokens.as_slice() {
            ids.extend([(Special::FimPrefix, pre.0), (Special::FimSuffix, suf.0), (Special::FimMiddle, mid.0)]);
        }
        if let Specials::Texts(spelled) = wire::spellings(name) {
            for (special, text) in spelled {
                if matches!(special, Special::FimRepo | Special::FimSeparator) {
                    if let [(id, piece)] = self.tokenize(text).await?.as_slice() {
                        if piece == text {
                            ids.push((special, *id));
                        }
                    }
                }
            }
        }
        Ok(if ids.is_empty() { Specials::None } else { Specials::Ids(ids) })
    }

    /// Learns which of the candidates are control tokens: those spelled like one (empty, or in
    /// angle or square brackets, as every family we know spells them) that plain text does not
    /// tokenize to. Each id is asked about once.
    async fn learn_controls(&self, server: &Server, candidates: &[steer::Candidate]) -> Result<(), Fault> {
        for candidate in candidates {
            if server.controls.lock().contains_key(&candidate.id) {
                continue;
            }
            // llama-server shows control tokens as nothing unless it runs with `--special`.
            let control = candidate.piece.is_empty()
                || steer::spelled_like_control(&candidate.piece) && {
                    let text = String::from_utf8_lossy(&candidate.piece);
                    let answer = self.post("/tokenize", &json!({"content": text, "parse_special": false})).await?;
                    let tokens = answer.get("tokens").and_then(Value::as_array).cloned().unwrap_or_default();
                    tokens.len() != 1 || tokens[0].as_i64() != Some(candidate.id)
                };
            server.controls.lock().insert(candidate.id, control);
        }
        Ok(())
    }

    /// How many tokens the server's tokenizer makes of plain text (special spellings as text).
    async fn tokenize_plain(&self, text: &str) -> Result<usize, Fault> {
        let answer = self.post("/tokenize", &json!({"content": text, "parse_special": false})).await?;
        Ok(answer.get("tokens").and_then(Value::as_array).map_or(0, Vec::len))
    }

    async fn tokenize(&self, text: &str) -> Result<Vec<(i64, String)>, Fault> {
        let answer = self.post("/tokenize", &json!({"content": text, "with_pieces": true})).await?;
        let tokens = answer.get("tokens").and_then(Value::as_array).cloned().unwrap_or_default();
        Ok(tokens.iter().filter_map(|t| Some((t.get("id")?.as_i64()?, t.get("piece")?.as_str()?.to_owned()))).collect())
    }

    async fn openai(&self) -> Result<(Server, ModelInfo), Fault> {
        let models = self.get("/v1/models").await?;
        let listed: Vec<String> = models
            .get("data")
            .and_then(Value::as_array)
            .map(|list| list.iter().filter_map(|m| m.get("id")?.as_str().map(str::to_owned)).collect())
            .unwrap_or_default();
        let model = if self.config.model.is_empty() {
            listed.first().cloned().ok_or_else(|| Fault::Fatal(format!("{} lists no models", self.config.url)))?
        } else {
            if !listed.contains(&self.config.model) {
                tracing::warn!("the server does not list model {:?} (it lists {listed:?})", self.config.model);
            }
            self.config.model.clone()
        };
        let specials = wire::spellings(&model);
        let info = ModelInfo {
            description: format!("{model} on the OpenAI-compatible server at {}", self.config.url),
            architecture: "remote".into(),
            name: model.clone(),
            has_fim_tokens: specials.has(Special::FimPrefix),
            has_repo_tokens: specials.has(Special::FimRepo) && specials.has(Special::FimSeparator),
            // The API has no way to say; chat endpoints are what these servers are for.
            has_chat_template: true,
            context_size: 0,
            threads: 0,
            rates: None,
        };
        let controls = Mutex::default();
        let chars_per_token = ESTIMATED_CHARS_PER_TOKEN;
        Ok((Server { api: Api::OpenAi, model, specials, slots: 0, chars_per_token, controls }, info))
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let request = self.http.request(method, format!("{}{path}", self.config.url));
        match &self.config.api_key {
            Some(key) => request.bearer_auth(key),
            None => request,
        }
    }

    async fn get(&self, path: &str) -> Result<Value, Fault> {
        self.json(self.request(reqwest::Method::GET, path), path).await
    }

    async fn post(&self, path: &str, body: &Value) -> Result<Value, Fault> {
        self.json(self.request(reqwest::Method::POST, path).json(body), path).await
    }

    /// One small request with a JSON answer, within the time-out.
    async fn json(&self, request: reqwest::RequestBuilder, path: &str) -> Result<Value, Fault> {
        let response = self.timed(request.send()).await?;
        let response = self.check(response, path).await?;
        self.read_json(response, path).await
    }

    /// The JSON body of a successful answer, within the time-out.
    async fn read_json(&self, response: reqwest::Response, path: &str) -> Result<Value, Fault> {
        let url = &self.config.url;
        let read = response.text();
        let body = match tokio::time::timeout(self.config.timeout, read).await {
            Ok(Ok(body)) => body,
            Ok(Err(err)) => return Err(Fault::Transient(describe(&err))),
            Err(_) => return Err(self.slow()),
        };
        serde_json::from_str(&body).map_err(|_| {
            Fault::Fatal(format!("{url}{path} answered something that is not JSON: {}", wire::snippet(&body)))
        })
    }

    /// Turns an unsuccessful status into a fault with the server's words.
    async fn check(&self, response: reqwest::Response, path: &str) -> Result<reqwest::Response, Fault> {
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let body = response.text().await.unwrap_or_default();
        let said = wire::snippet(&body);
        let url = &self.config.url;
        Err(match status.as_u16() {
            401 | 403 => Fault::Auth(format!(
                "the server at {url} refused the API key (HTTP {status}); set {API_KEY_VARIABLE} to a key it accepts"
            )),
            // llama-server answers 503 while it loads its model.
            code if code >= 500 => Fault::Transient(format!("HTTP {status} from {path}: {said}")),
            404 => Fault::Fatal(format!("{url} has no {path} (HTTP 404); is `remote.api` right?")),
            _ => Fault::Fatal(format!("{url}{path} answered HTTP {status}: {said}")),
        })
    }

    /// How prompts for the server's model are counted: an estimate, calibrated on its tokenizer
    /// where it has one.
    pub fn counter(&self) -> Option<TokenCounter> {
        let server = self.server.read().clone()?;
        Some(TokenCounter::Estimate { chars_per_token: server.chars_per_token })
    }

    /// Runs a job on the server.
    pub async fn generate(self: &Arc<Self>, job: Job, cancel: CancelToken) -> Result<Output, EngineError> {
        let server = self.server.read().clone().ok_or(EngineError::NotReady)?;
        if job.score.is_some() {
            return Err(EngineError::Unsupported("a remote server does not score text".into()));
        }
        let mut job = job;
        if server.api == Api::OpenAi && !job.avoid.is_empty() && job.sampling.temperature <= 0.0 {
            // No way to rule out a first word through this API: alternatives are sampled
            // instead, and one that begins with an avoided word is dropped below.
            job.sampling.temperature = 0.7;
            job.sampling.seed = job.sampling.seed.wrapping_add(job.avoid.len() as u32);
        }
        let mut rendered = wire::render(&job.prompt, &server.specials).map_err(EngineError::Unsupported)?;
        if let (Api::LlamaServer, Rendered::Chat { messages, prefill }) = (server.api, &rendered) {
            // llama-server renders its chat template for us; the prompt then goes to `/completion`
            // like any other, with its slot and cache.
            let mut list: Vec<Value> = messages.iter().map(|m| json!({"role": m.role, "content": m.content})).collect();
            if !prefill.is_empty() {
                list.push(json!({"role": "assistant", "content": prefill}));
            }
            let applied =
                self.post("/apply-template", &json!({ "messages": list })).await.map_err(|f| self.fault(f))?;
            let prompt = applied.get("prompt").and_then(Value::as_str).unwrap_or_default();
            rendered = Rendered::Prompt(json!([prompt]));
        }
        let slot = job.document.as_deref().filter(|_| server.api == Api::LlamaServer).map(|d| slot_of(d, server.slots));
        let started = Instant::now();
        // The job's prompt budget bounds the wait for its first piece, steps and queueing on a
        // busy server included, as it bounds prompt decoding on the embedded engine.
        let deadline = started.checked_add(job.budget.prompt);
        let mut generation = Generation::default();
        let mut stats = Stats::default();
        if let (Api::LlamaServer, Rendered::Prompt(prompt)) = (server.api, &mut rendered) {
            if let Value::String(text) = prompt {
                *prompt = json!([text]);
            }
            if let Value::Array(parts) = prompt {
                let steered =
                    self.steer(&server, &job, parts, slot, (&cancel, deadline), &mut generation, &mut stats).await?;
                if let Some(stop) = steered {
                    return Ok(output(&job, &generation, stop, stats));
                }
            }
        }
        let path = wire::endpoint(server.api, &rendered);
        let mut body = wire::body(server.api, &rendered, &job, &server.model, slot);
        if generation.tokens > 0 {
            let left = (job.max_tokens as usize).saturating_sub(generation.tokens);
            if left == 0 {
                return Ok(output(&job, &generation, StopReason::MaxTokens, stats));
            }
            body["n_predict"] = left.into();
        }
        // Once steering has produced the first piece, the generation budget (in `stream`) governs.
        let deadline = deadline.filter(|_| generation.tokens == 0);
        let response = match self.send(path, &body, &cancel, deadline).await? {
            Sent::Answer(response) => response,
            Sent::Stopped(stop) => return Ok(output(&job, &generation, stop, stats)),
        };
        self.stream(response, job, cancel, started, generation, stats).await
    }

    /// Chooses the job's first tokens here while its requirements decide them (see `steer`),
    /// one step of one token each, and appends them to the prompt; `Some` if the job ended
    /// meanwhile (cancelled, or a stop rule).
    #[allow(clippy::too_many_arguments)]
    async fn steer(
        self: &Arc<Self>,
        server: &Server,
        job: &Job,
        prompt: &mut Vec<Value>,
        slot: Option<u32>,
        (cancel, deadline): (&CancelToken, Option<Instant>),
        generation: &mut Generation,
        stats: &mut Stats,
    ) -> Result<Option<StopReason>, EngineError> {
        let mut steering = Steering::new(job);
        while steering.pending() && generation.tokens < steer::MOST_STEPS.min(job.max_tokens as usize) {
            let body = wire::step_body(prompt, slot, steer::CANDIDATES);
            let response = match self.send("/completion", &body, cancel, deadline).await? {
                Sent::Answer(response) => response,
                Sent::Stopped(stop) => return Ok(Some(stop)),
            };
            let read = self.read_json(response, "/completion");
            let Some(answer) = until_cancelled(read, cancel, &self.stopped).await else {
                return Ok(Some(StopReason::Cancelled));
            };
            let answer = answer.map_err(|fault| self.fault(fault))?;
            let step = wire::parse_step(&answer);
            stats.evaluated_tokens += step.prompt_tokens.unwrap_or(0).saturating_sub(step.cached_tokens.unwrap_or(0));
            let candidates = steer::candidates(&answer).map_err(|why| self.fault(Fault::Fatal(why)))?;
            self.learn_controls(server, &candidates).await.map_err(|fault| self.fault(fault))?;
            let controls = server.controls.lock().clone();
            let is_control = |id: i64| controls.get(&id).copied().unwrap_or(false);
            let piece = match steering.choose(&candidates, &is_control) {
                Choice::Free => break,
                Choice::Token(t) => {
                    let candidate = &candidates[t];
                    prompt.push(Value::from(candidate.id));
                    if is_control(candidate.id) {
                        return Ok(Some(StopReason::EndOfText));
                    }
                    candidate.piece.clone()
                }
                Choice::Text(text) => {
                    prompt.push(Value::String(String::from_utf8_lossy(&text).into_owned()));
                    text
                }
            };
            if let Some(stop) = generation.push(job, &piece, Instant::now()) {
                return Ok(Some(stop));
            }
        }
        Ok(None)
    }

    /// Sends a job's request, retrying connection errors and 5xx with backoff, until the job is
    /// cancelled or its `deadline` for a first piece passes.
    async fn send(
        self: &Arc<Self>,
        path: &str,
        body: &Value,
        cancel: &CancelToken,
        deadline: Option<Instant>,
    ) -> Result<Sent, EngineError> {
        let mut delay = FIRST_BACKOFF;
        let mut attempt = 1;
        loop {
            let request = self.request(reqwest::Method::POST, path).json(body).send();
            let result = match until_cancelled(by(deadline, self.timed(request)), cancel, &self.stopped).await {
                None => return Ok(Sent::Stopped(StopReason::Cancelled)),
                Some(None) => return Ok(Sent::Stopped(StopReason::PromptBudget)),
                Some(Some(Ok(response))) => self.check(response, path).await,
                Some(Some(Err(fault))) => Err(fault),
            };
            match result {
                Ok(response) => return Ok(Sent::Answer(response)),
                Err(Fault::Transient(why)) if attempt < ATTEMPTS => {
                    tracing::debug!("{path} failed ({why}); retrying in {delay:?}");
                    match until_cancelled(by(deadline, tokio::time::sleep(delay)), cancel, &self.stopped).await {
                        None => return Ok(Sent::Stopped(StopReason::Cancelled)),
                        Some(None) => return Ok(Sent::Stopped(StopReason::PromptBudget)),
                        Some(Some(())) => {}
                    }
                    delay *= 2;
                    attempt += 1;
                }
                Err(fault) => return Err(self.fault(fault)),
            }
        }
    }

    /// The fault of an answer that took longer than the time-out.
    fn slow(&self) -> Fault {
        Fault::Slow(format!("no answer within {} ms", self.config.timeout.as_millis()))
    }

    /// A request's answer within the time-out.
    async fn timed(
        &self,
        request: impl std::future::Future<Output = reqwest::Result<reqwest::Response>>,
    ) -> Result<reqwest::Response, Fault> {
        match tokio::time::timeout(self.config.timeout, request).await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(err)) => Err(Fault::Transient(describe(&err))),
            Err(_) => Err(self.slow()),
        }
    }

    /// The error a job gets for a fault, and what the fault does to the engine's state: a server
    /// that is gone is reconnected to, a refused key fails the engine.
    fn fault(self: &Arc<Self>, fault: Fault) -> EngineError {
        match fault {
            Fault::Transient(why) => {
                self.reconnect(Some(why.clone()));
                EngineError::Failed(format!("the server at {}: {why}", self.config.url))
            }
            // A busy server is not a lost one: the status stays as it is.
            Fault::Slow(why) => EngineError::Failed(format!("the server at {}: {why}", self.config.url)),
            Fault::Auth(message) => {
                self.fail(message.clone());
                EngineError::Unavailable(message)
            }
            Fault::Fatal(message) => EngineError::Failed(message),
        }
    }

    /// Reads the answer's events through the stop rules until one ends it.
    async fn stream(
        self: &Arc<Self>,
        response: reqwest::Response,
        job: Job,
        cancel: CancelToken,
        started: Instant,
        mut generation: Generation,
        mut stats: Stats,
    ) -> Result<Output, EngineError> {
        let mut body = response.bytes_stream();
        let mut events = wire::Events::default();
        let steered = stats.evaluated_tokens;
        let mut first_piece: Option<Instant> = (generation.tokens > 0).then(Instant::now);
        let mut last_arrival = Instant::now();
        let stop = 'read: loop {
            if cancel.is_cancelled() || self.stopped.load(Ordering::Acquire) {
                break StopReason::Cancelled;
            }
            let now = Instant::now();
            match first_piece {
                None if now.duration_since(started) > job.budget.prompt => break StopReason::PromptBudget,
                Some(first) => {
                    if let Some(stop) = generation.over_time(&job, first, now) {
                        break stop;
                    }
                }
                None => {}
            }
            if now.duration_since(last_arrival) > self.config.timeout {
                return Err(self.fault(self.slow()));
            }
            let chunk = tokio::select! {
                chunk = body.next() => chunk,
                _ = tokio::time::sleep(POLL) => continue,
            };
            last_arrival = Instant::now();
            let data = match chunk {
                Some(Ok(bytes)) => events.push(&bytes),
                Some(Err(err)) => {
                    return Err(self.fault(Fault::Transient(format!("the answer broke off: {}", describe(&err)))))
                }
                None => {
                    let rest = events.finish();
                    if rest.is_empty() {
                        // The server closed the stream without saying it was done.
                        if first_piece.is_none() {
                            return Err(self.fault(Fault::Transient("the server closed the connection".into())));
                        }
                        break StopReason::EndOfText;
                    }
                    rest
                }
            };
            for event in data {
                let piece = wire::parse_event(&event).map_err(|why| self.fault(Fault::Fatal(why)))?;
                stats.prompt_tokens = piece.prompt_tokens.unwrap_or(stats.prompt_tokens);
                stats.reused_tokens = piece.cached_tokens.unwrap_or(stats.reused_tokens);
                if !piece.text.is_empty() {
                    let now = Instant::now();
                    first_piece.get_or_insert(now);
                    if let Some(stop) = generation.push(&job, piece.text.as_bytes(), now) {
                        break 'read stop;
                    }
                }
                if piece.done {
                    break 'read if generation.tokens >= job.max_tokens as usize {
                        StopReason::MaxTokens
                    } else {
                        StopReason::EndOfText
                    };
                }
            }
        };
        // Dropping the body here closes the connection: the server stops generating.
        drop(body);
        let first = first_piece.unwrap_or_else(Instant::now);
        stats.prompt_ms = first.duration_since(started).as_millis() as u64;
        stats.generation_ms = first.elapsed().as_millis() as u64;
        stats.evaluated_tokens = steered + stats.prompt_tokens.saturating_sub(stats.reused_tokens);
        stats.generated_tokens = generation.tokens;
        let mut output = output(&job, &generation, stop, stats);
        let content = output.text.strip_prefix(job.required_prefix.as_str()).unwrap_or(&output.text);
        if let Some(word) = crate::postprocess::first_word(content).filter(|_| !job.avoid.is_empty()) {
            if avoided(word.as_bytes(), &job.avoid) {
                tracing::debug!("a remote alternative began with an avoided word {word:?}: dropped");
                output.text.clear();
            }
        }
        tracing::debug!("remote job {stop:?}: {stats:?}");
        Ok(output)
    }
}

fn output(job: &Job, generation: &Generation, stop: StopReason, stats: Stats) -> Output {
    let (text, generated) = generation.finish(job, stop);
    Output { text, generated, stop, stats, log_prob: None }
}

/// How a job's request went.
enum Sent {
    Answer(reqwest::Response),
    /// Cancelled, or the job's budget for a first piece ran out first.
    Stopped(StopReason),
}

/// Runs `work` until it finishes (`Some`) or `deadline` passes (`None`).
async fn by<T>(deadline: Option<Instant>, work: impl std::future::Future<Output = T>) -> Option<T> {
    match deadline {
        Some(deadline) => tokio::time::timeout_at(deadline.into(), work).await.ok(),
        None => Some(work.await),
    }
}

/// Runs `work` until it finishes or the job is cancelled (`None`); dropping `work` on
/// cancellation closes its connection.
async fn until_cancelled<T>(
    work: impl std::future::Future<Output = T>,
    cancel: &CancelToken,
    stopped: &AtomicBool,
) -> Option<T> {
    tokio::pin!(work);
    loop {
        tokio::select! {
            done = &mut work => return Some(done),
            _ = tokio::time::sleep(POLL) => {
                if cancel.is_cancelled() || stopped.load(Ordering::Acquire) {
                    return None;
                }
            }
        }
    }
}

/// A document's llama-server slot: the same one every time, so that its prompt stays cached.
fn slot_of(document: &str, slots: u32) -> u32 {
    // FNV-1a: stable across runs and processes, unlike the standard library's hasher.
    let hash =
        document.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    (hash % u64::from(slots.max(1))) as u32
}

/// An HTTP error in a few words.
fn describe(err: &reqwest::Error) -> String {
    if err.is_connect() {
        let mut source = std::error::Error::source(err);
        while let Some(inner) = source {
            if inner.source().is_none() {
                return format!("cannot connect ({inner})");
            }
            source = inner.source();
        }
        "cannot connect".into()
    } else if err.is_timeout() {
        "timed out".into()
    } else {
        let mut text = err.to_string();
        let mut source = std::error::Error::source(err);
        while let Some(inner) = source {
            text.push_str(&format!(": {inner}"));
            source = inner.source();
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::slot_of;

    #[test]
    fn a_document_keeps_its_slot() {
        let slots: Vec<u32> = ["file:///a.py", "file:///b.py", "file:///c.rs"].iter().map(|d| slot_of(d, 4)).collect();
        assert_eq!(slots, ["file:///a.py", "file:///b.py", "file:///c.rs"].map(|d| slot_of(d, 4)));
        assert!(slots.iter().all(|&s| s < 4));
        assert_eq!(slot_of("file:///a.py", 1), 0);
    }
}
