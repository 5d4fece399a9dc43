//! The model engine: the only module that runs a model or blocks on one.
//!
//! A dedicated worker thread owns the backend. The rest of the server submits [`Job`]s and awaits
//! their [`Output`] without blocking; every job carries a [`CancelToken`] that the worker checks
//! between steps, so stale work stops instead of running to the end.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::{oneshot, watch};

mod queue;
pub mod spec;
#[cfg(feature = "test-backend")]
mod test_backend;
mod worker;

pub use queue::Priority;
pub use spec::ModelSpec;

/// What a job asks the model for.
#[derive(Clone, Debug)]
pub struct Job {
    pub priority: Priority,
    /// Text before the cursor (or the whole prompt for non-infill jobs).
    pub prefix: String,
    /// Text after the cursor.
    pub suffix: String,
    pub max_tokens: u32,
}

/// Why generation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    EndOfText,
    MaxTokens,
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
}

/// What a finished job produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Output {
    pub text: String,
    pub stop: StopReason,
    pub stats: Stats,
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
    /// The backend failed on this job.
    Failed(String),
}

impl std::fmt::Display for EngineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EngineError::NotReady => write!(f, "the model is still loading"),
            EngineError::Unavailable(why) => write!(f, "no model: {why}"),
            EngineError::Cancelled => write!(f, "cancelled"),
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
    Ready {
        model: String,
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
}

/// What a backend implements. It runs on the worker thread only.
pub(crate) trait Backend: Send {
    fn describe(&self) -> String;
    fn generate(&mut self, job: &Job, cancel: &CancelToken) -> Result<Output, EngineError>;
}

/// A cheap handle to the engine. Clones share the one worker.
#[derive(Clone)]
pub struct Engine {
    queue: Arc<queue::Queue>,
    state: watch::Receiver<State>,
    counters: Arc<Counters>,
}

/// Totals over the engine's life, for tests and the status command.
#[derive(Debug, Default)]
pub struct Counters {
    pub jobs: AtomicU64,
    pub evaluated_tokens: AtomicU64,
    pub generated_tokens: AtomicU64,
}

impl Engine {
    /// Starts the worker, which loads `spec` in the background.
    pub fn start(spec: ModelSpec, settings: &crate::config::Settings) -> Engine {
        let (state_tx, state) = watch::channel(State::Loading { message: format!("loading {spec}"), percent: None });
        let queue = Arc::new(queue::Queue::default());
        let counters = Arc::new(Counters::default());
        worker::spawn(spec, settings.clone(), queue.clone(), state_tx, counters.clone());
        Engine { queue, state, counters }
    }

    pub fn state(&self) -> State {
        self.state.borrow().clone()
    }

    /// A receiver that sees every state change, for progress reports.
    pub fn watch(&self) -> watch::Receiver<State> {
        self.state.clone()
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Runs a job on the worker. Never blocks the caller's thread.
    pub async fn generate(&self, job: Job, cancel: CancelToken) -> Result<Output, EngineError> {
        match self.state() {
            State::Loading { .. } => return Err(EngineError::NotReady),
            State::Failed { message } => return Err(EngineError::Unavailable(message)),
            State::Ready { .. } => {}
        }
        let (reply, answer) = oneshot::channel();
        // Dropping this future (a cancelled request) cancels the job too.
        let mut guard = CancelOnDrop(Some(cancel.clone()));
        self.queue.push(queue::Entry { job, cancel, reply });
        let result = answer.await.unwrap_or(Err(EngineError::Failed("the engine stopped".into())));
        guard.0 = None;
        result
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
