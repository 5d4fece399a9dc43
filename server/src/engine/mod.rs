//! The model engine: the only module that runs a model or blocks on one.
//!
//! A dedicated worker thread owns the model and one persistent llama.cpp context. The rest of the
//! server submits [`Job`]s and awaits their [`Output`] without blocking; every job carries a
//! [`CancelToken`] that the worker checks between decode batches and between generated tokens.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use parking_lot::RwLock;
use tokio::sync::{oneshot, watch};

mod constrain;
mod generation;
mod llama;
mod lookup;
mod queue;
mod remote;
#[cfg(feature = "test-backend")]
mod test_backend;
mod worker;

use crate::config::{Sampling, Settings};
use crate::models::FetchOptions;
use crate::models::ModelInfo;
pub use crate::models::ModelSpec;
use crate::prompt::{ChatMessage, Counter, Prompt, Segment, Special};
pub use llama::{probe_in_child, probe_model, set_probe_program, Tokenizer};
pub use queue::Priority;
pub use remote::{RemoteConfig, API_KEY_VARIABLE};

/// Counts prompt tokens as the running model would: its own tokenizer, or a rule.
#[derive(Clone)]
pub enum TokenCounter {
    /// The loaded model's tokenizer.
    Model(Tokenizer),
    /// A fixed rule of `bytes_per_token` (the test backend's deterministic "tokenizer").
    Rule { bytes_per_token: usize },
    /// An estimate of `chars_per_token` (a remote server's model, calibrated on its tokenizer
    /// where the server has one): prompts built with it leave room to spare.
    Estimate { chars_per_token: f32 },
}

impl TokenCounter {
    /// Whether counts are the model's own (prompts then need no room to spare).
    pub fn exact(&self) -> bool {
        !matches!(self, TokenCounter::Estimate { .. })
    }
}

impl Counter for TokenCounter {
    fn count(&self, text: &str) -> usize {
        match self {
            TokenCounter::Model(tokenizer) => tokenizer.count(text),
            TokenCounter::Rule { bytes_per_token } => text.len().div_ceil((*bytes_per_token).max(1)),
            TokenCounter::Estimate { chars_per_token } => {
                (text.chars().count() as f32 / chars_per_token.max(1.0)).ceil() as usize
            }
        }
    }
}

/// Time limits of one job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    /// Most time spent decoding the prompt.
    pub prompt: Duration,
    /// Most time spent generating, counted from the first generated token.
    pub generation: Duration,
    /// Most time spent generating once the first line is complete: the first line is what a
    /// person reads first, the rest may come later (llama.vim's `t_max_predict_ms`).
    pub after_first_line: Duration,
}

impl Budget {
    /// Every limit multiplied by `factor` (a slow machine's longer limits).
    pub fn scaled(self, factor: f64) -> Budget {
        let scale = |limit: Duration| Duration::try_from_secs_f64(limit.as_secs_f64() * factor).unwrap_or(limit);
        Budget {
            prompt: scale(self.prompt),
            generation: scale(self.generation),
            after_first_line: scale(self.after_first_line),
        }
    }

    /// Defaults per priority: a person waits for interactive work; background work may take long.
    pub fn for_priority(priority: Priority) -> Budget {
        match priority {
            Priority::Interactive => Budget {
                prompt: Duration::from_secs(30),
                generation: Duration::from_secs(10),
                after_first_line: Duration::from_millis(1500),
            },
            Priority::Background | Priority::Idle => Budget {
                prompt: Duration::from_secs(300),
                generation: Duration::from_secs(120),
                after_first_line: Duration::from_secs(120),
            },
        }
    }
}

/// A rule that ends generation early: given the text so far, the byte offset to cut it at.
/// It is called whenever a line is completed.
#[derive(Clone)]
pub struct StopCheck(pub Arc<StopFn>);

/// The function behind a [`StopCheck`].
pub type StopFn = dyn Fn(&str) -> Option<usize> + Send + Sync;

impl std::fmt::Debug for StopCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StopCheck")
    }
}

/// Receives the text a job has generated so far, after every token (explanations stream to the
/// editor as they are written). Called on the engine's thread: it must return at once.
#[derive(Clone)]
pub struct TextSink(pub Arc<dyn Fn(&str) + Send + Sync>);

impl std::fmt::Debug for TextSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TextSink")
    }
}

/// What a job asks the model for.
#[derive(Clone, Debug)]
pub struct Job {
    pub priority: Priority,
    pub prompt: Prompt,
    pub max_tokens: u32,
    /// Generation stops before the first of these strings.
    pub stop: Vec<String>,
    /// Ends generation where this rule says, checked at every completed line.
    pub stop_check: Option<StopCheck>,
    /// Run `stop_check` after every token, not only at line ends (prose loops inside a
    /// paragraph).
    pub stop_check_every_token: bool,
    /// The output must start with this text (token healing): the first tokens are the most
    /// likely ones consistent with it, whatever their boundaries.
    pub required_prefix: String,
    /// Alternatives to earlier outputs: the output's first word (see
    /// [`crate::postprocess::first_word`]) must not be, start or be started by any of these, so
    /// that it begins differently.
    pub avoid: Vec<String>,
    /// An alternative to an output that was blank: no line break and no end of text before the
    /// output has content.
    pub needs_content: bool,
    pub budget: Budget,
    pub sampling: Sampling,
    /// The document the job is for, if any: a remote llama-server keeps each document's prompt
    /// cached in a slot of its own.
    pub document: Option<String>,
    /// Told the text so far as it grows, if anyone listens.
    pub on_text: Option<TextSink>,
    /// A GBNF grammar the output must follow (review findings as JSON), rooted at `root`. The
    /// embedded engine and llama-server enforce it; other servers do not, so parse leniently.
    pub grammar: Option<String>,
    /// Instead of generating, read this text after the prompt and report how likely the model
    /// finds it ([`Output::log_prob`]): a review weighs a fix against the code it replaces. Only
    /// the embedded engine can (servers do not give the log-probabilities of a prompt).
    pub score: Option<String>,
}

impl Job {
    /// A job with the defaults for its priority: greedy, no stop strings.
    pub fn new(priority: Priority, prompt: Prompt, max_tokens: u32) -> Job {
        Job {
            priority,
            prompt,
            max_tokens,
            stop: Vec::new(),
            stop_check: None,
            stop_check_every_token: false,
            required_prefix: String::new(),
            avoid: Vec::new(),
            needs_content: false,
            budget: Budget::for_priority(priority),
            sampling: Sampling::default(),
            document: None,
            on_text: None,
            grammar: None,
            score: None,
        }
    }
}

/// Why generation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    EndOfText,
    StopString,
    MaxTokens,
    /// The prompt did not finish decoding within its budget.
    PromptBudget,
    /// Generation ran out of its time budget.
    TimeBudget,
    Cancelled,
}

/// Counters of one job, for logs, tests and benchmarks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub prompt_tokens: usize,
    /// Prompt tokens whose state was already in the cache.
    pub reused_tokens: usize,
    /// Prompt tokens decoded for this job.
    pub evaluated_tokens: usize,
    pub generated_tokens: usize,
    /// Prompt tokens dropped to fit the context.
    pub trimmed_tokens: usize,
    /// Tokens guessed by prompt lookup and checked in a batch, and those the model confirmed.
    pub drafted_tokens: usize,
    pub accepted_tokens: usize,
    pub prompt_ms: u64,
    pub generation_ms: u64,
}

/// What a finished job produced.
#[derive(Clone, Debug, PartialEq)]
pub struct Output {
    pub text: String,
    /// Everything generated, before a stop rule or stop string cut it.
    pub generated: String,
    pub stop: StopReason,
    pub stats: Stats,
    /// For a job with [`Job::score`]: the natural log of the probability of that text after the
    /// prompt, summed over its tokens.
    pub log_prob: Option<f64>,
}

/// Why a job produced nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EngineError {
    /// The model is still loading.
    NotReady,
    /// The model could not be loaded.
    Unavailable(String),
    /// The job was cancelled before it produced anything.
    Cancelled,
    /// The job cannot run on this model (for example FIM tokens it does not have).
    Unsupported(String),
    /// The backend failed on this job.
    Failed(String),
}

impl std::fmt::Display for EngineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EngineError::NotReady => write!(f, "the model is still loading"),
            EngineError::Unavailable(why) => write!(f, "no model: {why}"),
            EngineError::Cancelled => write!(f, "cancelled"),
            EngineError::Unsupported(why) => write!(f, "not supported by this model: {why}"),
            EngineError::Failed(why) => write!(f, "generation failed: {why}"),
        }
    }
}

impl std::error::Error for EngineError {}

/// The engine's state, as the editor's status shows it.
#[derive(Clone, Debug, PartialEq)]
pub enum State {
    /// Loading or downloading; `percent` when known.
    Loading {
        message: String,
        percent: Option<u32>,
    },
    /// Ready. `notice` is a problem the user should know about that did not stop loading.
    Ready {
        model: ModelInfo,
        notice: Option<String>,
    },
    Failed {
        message: String,
    },
}

/// Set when a job should stop: its request was cancelled or a newer one superseded it.
#[derive(Clone, Debug, Default)]
pub struct CancelToken {
    flag: Arc<AtomicBool>,
    generation: Option<(Arc<AtomicU64>, u64)>,
}

impl CancelToken {
    pub fn new() -> CancelToken {
        CancelToken::default()
    }

    /// Also counts as cancelled once `latest` moves past `mine`.
    pub fn superseded_by(mut self, latest: Arc<AtomicU64>, mine: u64) -> CancelToken {
        self.generation = Some((latest, mine));
        self
    }

    pub fn cancel(&self) {
        self.flag.store(true, Ordering::Release);
    }

    pub fn is_cancelled(&self) -> bool {
        self.flag.load(Ordering::Acquire)
            || self.generation.as_ref().is_some_and(|(latest, mine)| latest.load(Ordering::Acquire) != *mine)
    }

    /// Whether `other` is a clone of this token (cancelling one cancels the other).
    pub fn same_as(&self, other: &CancelToken) -> bool {
        Arc::ptr_eq(&self.flag, &other.flag)
    }
}

/// How many engine workers this process has started, and how many held a model at once at
/// most: the settings storm test reads these through the status command.
#[derive(Debug, Default)]
pub struct Workers {
    pub started: AtomicU64,
    pub alive: AtomicU64,
    pub peak_alive: AtomicU64,
}

/// The process-wide worker counts.
pub fn workers() -> &'static Workers {
    static WORKERS: OnceLock<Workers> = OnceLock::new();
    WORKERS.get_or_init(Workers::default)
}

/// Totals over the engine's life, for tests and the status command.
#[derive(Debug, Default)]
pub struct Counters {
    pub jobs: AtomicU64,
    pub evaluated_tokens: AtomicU64,
    pub reused_tokens: AtomicU64,
    pub generated_tokens: AtomicU64,
    pub drafted_tokens: AtomicU64,
    pub accepted_tokens: AtomicU64,
}

impl Counters {
    /// Adds a finished job.
    pub(crate) fn count(&self, stats: &Stats) {
        self.jobs.fetch_add(1, Ordering::Relaxed);
        self.evaluated_tokens.fetch_add(stats.evaluated_tokens as u64, Ordering::Relaxed);
        self.reused_tokens.fetch_add(stats.reused_tokens as u64, Ordering::Relaxed);
        self.generated_tokens.fetch_add(stats.generated_tokens as u64, Ordering::Relaxed);
        self.drafted_tokens.fetch_add(stats.drafted_tokens as u64, Ordering::Relaxed);
        self.accepted_tokens.fetch_add(stats.accepted_tokens as u64, Ordering::Relaxed);
    }
}

/// A cheap handle to the engine. Clones share the one worker; when the last clone is dropped the
/// worker finishes its current job and exits, freeing the model.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    queue: Arc<queue::Queue>,
    /// Set for a remote engine: jobs go to the server instead of the worker.
    remote: Option<Arc<remote::Remote>>,
    state: watch::Receiver<State>,
    /// Becomes true when the worker thread has ended and freed the model.
    exited: watch::Receiver<bool>,
    counters: Arc<Counters>,
    /// The model's token counter, once it is loaded.
    counter: Arc<RwLock<Option<TokenCounter>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.queue.close();
        if let Some(remote) = &self.remote {
            remote.stop();
        }
    }
}

/// The engine's own configuration: what loading and running a model needs, and nothing else.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// CPU threads; 0 means the physical cores.
    pub threads: u32,
    /// Tokens of KV cache per slot.
    pub context_size: u32,
    /// Layers to offload to a GPU (ignored, with a notice, without a GPU backend).
    pub gpu_layers: u32,
    /// Where `hf:` models are cached and how they are downloaded.
    pub fetch: FetchOptions,
    /// A remote server to send jobs to instead of loading a model.
    pub remote: Option<RemoteConfig>,
}

impl EngineConfig {
    /// The engine's part of the settings.
    pub fn from_settings(settings: &Settings) -> EngineConfig {
        EngineConfig {
            threads: settings.threads,
            context_size: settings.context_size,
            gpu_layers: settings.gpu_layers,
            fetch: fetch_options(settings),
            remote: (!settings.remote.url.is_empty()).then(|| RemoteConfig {
                url: settings.remote.url.clone(),
                api: settings.remote.api,
                model: settings.remote.model.clone(),
                timeout: Duration::from_millis(settings.remote.timeout_ms.into()),
                api_key: std::env::var(API_KEY_VARIABLE).ok().filter(|key| !key.is_empty()),
            }),
        }
    }
}

/// How `hf:` models are fetched, as the `download.*` settings say.
pub fn fetch_options(settings: &Settings) -> FetchOptions {
    let download = &settings.download;
    FetchOptions::new(&download.cache_dir, &download.endpoint, Duration::from_secs(download.timeout_secs.into()))
}

impl Engine {
    /// The engine the settings ask for: a connection to the remote server if one is set, else
    /// the model, loaded here.
    pub fn for_settings(settings: &Settings) -> Result<Engine, String> {
        let config = EngineConfig::from_settings(settings);
        match config.remote.clone() {
            Some(remote) => Ok(Engine::connect(remote)),
            None => {
                let spec =
                    ModelSpec::parse(&settings.model).map_err(|message| format!("bad model setting: {message}"))?;
                Ok(Engine::start(spec, config))
            }
        }
    }

    /// Connects to a remote server in the background; jobs go there.
    pub fn connect(remote: RemoteConfig) -> Engine {
        let message = format!("connecting to {}", remote.url);
        let (state_tx, state) = watch::channel(State::Loading { message, percent: None });
        let (exited_tx, exited) = watch::channel(false);
        let queue = Arc::new(queue::Queue::default());
        queue.close();
        let remote = Some(remote::Remote::start(remote, state_tx, exited_tx));
        let (counters, counter) = (Arc::new(Counters::default()), Arc::new(RwLock::new(None)));
        Engine { inner: Arc::new(Inner { queue, remote, state, exited, counters, counter }) }
    }

    /// Starts the worker, which resolves and loads `spec` in the background.
    pub fn start(spec: ModelSpec, config: EngineConfig) -> Engine {
        let queue = Arc::new(queue::Queue::default());
        let counters = Arc::new(Counters::default());
        let counter = Arc::new(RwLock::new(None));
        let (exited_tx, exited) = watch::channel(false);
        let (state_tx, state) = watch::channel(State::Loading { message: format!("loading {spec}"), percent: None });
        let shared = worker::Shared {
            queue: queue.clone(),
            state: state_tx,
            counters: counters.clone(),
            counter: counter.clone(),
        };
        worker::spawn(spec, config, shared, exited_tx);
        Engine { inner: Arc::new(Inner { queue, remote: None, state, exited, counters, counter }) }
    }

    /// Stops the engine now, whoever else holds a handle: queued jobs are answered as
    /// cancelled, the running job stops at its next step, and the worker frees the model (a
    /// model still loading is freed as soon as its load returns).
    pub fn stop(&self) {
        self.inner.queue.close();
        if let Some(remote) = &self.inner.remote {
            remote.stop();
        }
    }

    /// Waits until the worker thread has ended and the model's memory is freed.
    pub async fn stopped(&self) {
        let mut exited = self.inner.exited.clone();
        let _ = exited.wait_for(|&exited| exited).await;
    }

    pub fn state(&self) -> State {
        self.inner.state.borrow().clone()
    }

    /// Whether jobs go to a remote server.
    pub fn is_remote(&self) -> bool {
        self.inner.remote.is_some()
    }

    /// A receiver that sees every state change, for progress reports.
    pub fn watch(&self) -> watch::Receiver<State> {
        self.inner.state.clone()
    }

    pub fn counters(&self) -> &Counters {
        &self.inner.counters
    }

    /// The model's tokenizer, once a llama.cpp model is loaded.
    pub fn tokenizer(&self) -> Option<Tokenizer> {
        match self.counter()? {
            TokenCounter::Model(tokenizer) => Some(tokenizer),
            _ => None,
        }
    }

    /// How prompts for the model are counted, once it is ready: every backend has a counter,
    /// so the prompt builder's budgets work the same way whatever runs the model.
    pub fn counter(&self) -> Option<TokenCounter> {
        match &self.inner.remote {
            Some(remote) => remote.counter(),
            None => self.inner.counter.read().clone(),
        }
    }

    /// Runs a job on the worker. Never blocks the caller's thread.
    pub async fn generate(&self, job: Job, cancel: CancelToken) -> Result<Output, EngineError> {
        match self.state() {
            State::Loading { .. } => return Err(EngineError::NotReady),
            State::Failed { message } => return Err(EngineError::Unavailable(message)),
            State::Ready { .. } => {}
        }
        if let Some(remote) = &self.inner.remote {
            // Dropping this future drops the request, which closes its connection.
            let output = remote.generate(job, cancel).await?;
            self.inner.counters.count(&output.stats);
            return Ok(output);
        }
        let (reply, answer) = oneshot::channel();
        // Dropping this future (a cancelled request) cancels the job too.
        let mut guard = CancelOnDrop(Some(cancel.clone()));
        self.inner.queue.push(queue::Entry { job, cancel, reply });
        let result = answer.await.unwrap_or(Err(EngineError::Failed("the engine stopped".into())));
        guard.0 = None;
        result
    }

    /// Waits until the engine is ready or failed; returns the final state.
    pub async fn ready(&self) -> State {
        let mut states = self.watch();
        loop {
            let state = states.borrow_and_update().clone();
            if !matches!(state, State::Loading { .. }) {
                return state;
            }
            if states.changed().await.is_err() {
                return self.state();
            }
        }
    }
}

struct CancelOnDrop(Option<CancelToken>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(token) = &self.0 {
            token.cancel();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_scale_every_limit() {
        let budget = Budget::for_priority(Priority::Interactive).scaled(2.0);
        let expected = (Duration::from_secs(60), Duration::from_secs(20), Duration::from_secs(3));
        assert_eq!((budget.prompt, budget.generation, budget.after_first_line), expected);
    }
}
