//! The worker thread: loads the backend, then runs jobs from the queue one at a time.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::sync::watch;

use super::queue::Queue;
use super::{Backend, Counters, ModelSpec, State};
use crate::config::Settings;

pub(crate) fn spawn(
    spec: ModelSpec,
    settings: Settings,
    queue: Arc<Queue>,
    state: watch::Sender<State>,
    counters: Arc<Counters>,
) {
    #[allow(clippy::disallowed_methods, reason = "the engine owns the model worker thread")]
    let result = std::thread::Builder::new().name("mistral-lsp-engine".into()).spawn(move || {
        let mut backend = match load(&spec, &settings, &state) {
            Ok(backend) => backend,
            Err(message) => {
                tracing::error!("{message}");
                state.send_replace(State::Failed { message });
                fail_forever(&queue);
            }
        };
        let model = backend.describe();
        tracing::info!("model ready: {model}");
        state.send_replace(State::Ready { model });
        loop {
            let entry = queue.pop();
            let result = backend.generate(&entry.job, &entry.cancel);
            if let Ok(output) = &result {
                counters.jobs.fetch_add(1, Ordering::Relaxed);
                counters.evaluated_tokens.fetch_add(output.stats.evaluated_tokens as u64, Ordering::Relaxed);
                counters.generated_tokens.fetch_add(output.stats.generated_tokens as u64, Ordering::Relaxed);
            }
            let _ = entry.reply.send(result);
        }
    });
    if let Err(err) = result {
        tracing::error!("cannot start the engine thread: {err}");
    }
}

/// After a failed load, answer every job with the failure (the handle checks state first, so
/// this only catches jobs that raced the failure).
fn fail_forever(queue: &Queue) -> ! {
    loop {
        let entry = queue.pop();
        let _ = entry.reply.send(Err(super::EngineError::Unavailable("the model failed to load".into())));
    }
}

fn load(spec: &ModelSpec, settings: &Settings, state: &watch::Sender<State>) -> Result<Box<dyn Backend>, String> {
    let _ = (settings, state);
    match spec {
        #[cfg(feature = "test-backend")]
        ModelSpec::Test(options) => super::test_backend::TestBackend::load(options, state).map(|b| Box::new(b) as _),
        ModelSpec::Path(path) => Err(format!("cannot load {}: this build has no llama.cpp engine yet", path.display())),
        ModelSpec::HuggingFace { .. } => Err(format!("cannot load {spec}: this build has no llama.cpp engine yet")),
    }
}
