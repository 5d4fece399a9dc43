//! The worker thread: loads the backend, then runs jobs from the queue, letting a long
//! low-priority job yield to more urgent ones between steps.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use parking_lot::RwLock;

use tokio::sync::watch;

use super::queue::{Entry, Queue};
use super::{
    CancelToken, Counters, EngineConfig, EngineError, Job, ModelInfo, ModelSpec, Output, Priority, State, Stats,
    TokenCounter,
};

/// What the worker shares with the engine handles.
pub(crate) struct Shared {
    pub queue: Arc<Queue>,
    pub state: watch::Sender<State>,
    pub counters: Arc<Counters>,
    /// The loaded model's token counter (its tokenizer); taken out when the worker ends, so that
    /// the model is freed even while engine handles remain.
    pub counter: Arc<RwLock<Option<TokenCounter>>>,
}

impl Shared {
    pub fn loading(&self, message: String, percent: Option<u32>) {
        if self.queue.is_closed() {
            return; // a stopped engine: its news would arrive after its successor's
        }
        self.state.send_replace(State::Loading { message, percent });
    }

    pub fn ready(&self, model: ModelInfo, notice: Option<String>) {
        if self.queue.is_closed() {
            return tracing::debug!("a stopped engine finished loading; it is freed at once");
        }
        tracing::info!("model ready: {}", model.description);
        if let Some(notice) = &notice {
            tracing::error!("{notice}");
        }
        self.state.send_replace(State::Ready { model, notice });
    }

    /// Refines the model's measured speed with what a finished job shows (at least 32 prompt
    /// tokens read, or 8 tokens generated), silently: budgets read it, nobody is notified.
    pub fn observe(&self, stats: &Stats) {
        let per_token = |ms: u64, tokens: usize, least: usize| {
            (tokens >= least && ms > 0).then(|| (ms * 1000 / tokens as u64).min(u64::from(u32::MAX)) as u32)
        };
        let prompt = per_token(stats.prompt_ms, stats.evaluated_tokens, 32);
        let generation = per_token(stats.generation_ms, stats.generated_tokens, 8);
        if prompt.is_none() && generation.is_none() {
            return;
        }
        self.state.send_if_modified(|state| {
            if let State::Ready { model, .. } = state {
                if let Some(rates) = model.rates.as_mut() {
                    *rates = rates.refined(prompt, generation);
                }
            }
            false
        });
    }

    pub fn failed(&self, message: String) {
        if self.queue.is_closed() {
            return tracing::debug!("a stopped engine failed: {message}");
        }
        tracing::error!("{message}");
        self.state.send_replace(State::Failed { message });
    }
}

/// One step of a running job.
pub(crate) enum Step {
    /// More to do; a more urgent job may run before the next step.
    Continue,
    Done(Result<Output, EngineError>),
}

/// A model backend, driven one step at a time so the worker can interleave jobs.
pub(crate) trait Backend {
    type Running;
    /// Prepares a job (tokenizing, trimming to fit). An error answers the job at once.
    fn start(&mut self, job: Job, cancel: CancelToken) -> Result<Self::Running, EngineError>;
    /// Decodes one batch of the prompt or generates one token.
    fn step(&mut self, running: &mut Self::Running) -> Step;
}

pub(crate) fn spawn(spec: ModelSpec, config: EngineConfig, shared: Shared, exited: watch::Sender<bool>) {
    let workers = super::workers();
    workers.started.fetch_add(1, Ordering::Relaxed);
    let alive = workers.alive.fetch_add(1, Ordering::AcqRel) + 1;
    workers.peak_alive.fetch_max(alive, Ordering::AcqRel);
    // Declared first, dropped last: the model is freed before the engine counts as exited.
    let exit = Exited(exited);
    #[allow(clippy::disallowed_methods, reason = "the engine owns the model worker thread")]
    let result = std::thread::Builder::new().name("mistral-lsp-engine".into()).spawn(move || {
        let _exit = exit;
        match spec {
            #[cfg(feature = "test-backend")]
            ModelSpec::Test(options) => match super::test_backend::TestBackend::load(&options, &shared) {
                Ok(mut backend) => {
                    shared.ready(backend.info(), None);
                    serve(&mut backend, &shared);
                }
                Err(message) => shared.failed(message),
            },
            spec => super::llama::run(&spec, &config, &shared),
        }
        shared.counter.write().take();
    });
    if let Err(err) = result {
        tracing::error!("cannot start the engine thread: {err}");
    }
}

/// Marks the worker as ended when dropped (at the end of its thread, or if it never started).
struct Exited(watch::Sender<bool>);

impl Drop for Exited {
    fn drop(&mut self) {
        super::workers().alive.fetch_sub(1, Ordering::AcqRel);
        self.0.send_replace(true);
    }
}

/// Runs jobs until the queue is closed (the last engine handle was dropped).
pub(crate) fn serve<B: Backend>(backend: &mut B, shared: &Shared) {
    while let Some(entry) = shared.queue.pop() {
        run(backend, shared, entry);
    }
    tracing::debug!("engine worker stopped");
}

fn run<B: Backend>(backend: &mut B, shared: &Shared, entry: Entry) {
    let priority = entry.job.priority;
    tracing::debug!("engine job started ({priority:?})");
    let stop = entry.cancel.clone();
    let mut running = match backend.start(entry.job, entry.cancel) {
        Ok(running) => running,
        Err(err) => {
            let _ = entry.reply.send(Err(err));
            return;
        }
    };
    loop {
        if shared.queue.is_closed() {
            // The engine is being stopped: end this job at once.
            stop.cancel();
        }
        match backend.step(&mut running) {
            Step::Continue => {
                if priority < Priority::Interactive {
                    // Let urgent work through; this job resumes from where it was.
                    while let Some(urgent) = shared.queue.pop_higher(priority) {
                        run(backend, shared, urgent);
                    }
                }
            }
            Step::Done(result) => {
                if let Ok(output) = &result {
                    shared.counters.count(&output.stats);
                    shared.observe(&output.stats);
                }
                let _ = entry.reply.send(result);
                return;
            }
        }
    }
}
