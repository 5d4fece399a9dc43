//! The llama.cpp backend: loading a GGUF model, one persistent context, KV-cache reuse across
//! jobs, cancellation and time budgets between steps. The only code that touches llama.cpp:
//! `load` (file checks, the probe, loading), `tokenizer` (vocabulary, chat templates, what the
//! model is), `session` (the context, its KV slots, running jobs step by step).
//!
//! The context holds up to two sequences ("slots"), each with the full context size: slot 0 for
//! interactive work and cache pre-warming, slot 1 for background work, allocated the first time
//! background work runs. A background job that yields to a completion therefore keeps its cache
//! and resumes where it was.

#![allow(clippy::disallowed_types, reason = "this is the llama.cpp backend")]

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use llama_cpp_2::llama_backend::LlamaBackend;

mod load;
mod session;
mod tokenizer;

pub use load::{probe_in_child, probe_model, set_probe_program};
pub use tokenizer::Tokenizer;

use load::load_model;
use session::Session;

use super::worker::{self, Shared};
use super::{EngineConfig, ModelSpec};
use crate::models;

static BACKEND: OnceLock<Result<LlamaBackend, String>> = OnceLock::new();

fn backend() -> Result<&'static LlamaBackend, String> {
    BACKEND
        .get_or_init(|| {
            llama_cpp_2::send_logs_to_tracing(llama_cpp_2::LogOptions::default());
            LlamaBackend::init().map_err(|err| format!("cannot initialise llama.cpp: {err}"))
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// Resolves, loads and serves `spec` on this (the worker) thread until the engine is dropped.
pub(crate) fn run(spec: &ModelSpec, config: &EngineConfig, shared: &Shared) {
    let path = match resolve(spec, config, shared) {
        Ok(path) => path,
        Err(message) => return shared.failed(message),
    };
    let backend = match backend() {
        Ok(backend) => backend,
        Err(message) => return shared.failed(message),
    };
    shared.loading(format!("loading {}", path.display()), None);
    let (model, notice) = match load_model(backend, &path, config) {
        Ok(loaded) => loaded,
        Err(message) => return shared.failed(message),
    };
    let model = Arc::new(model);
    let mut session = match Session::new(backend, &model, config) {
        Ok(session) => session,
        Err(message) => return shared.failed(message),
    };
    shared.loading("measuring the model's speed".into(), None);
    if let Err(err) = session.calibrate() {
        // Budgets then stay as the settings say.
        tracing::warn!("{err}");
    }
    *shared.counter.write() = Some(super::TokenCounter::Model(Tokenizer { model: model.clone() }));
    shared.ready(session.info.clone(), notice);
    worker::serve(&mut session, shared);
}

fn resolve(spec: &ModelSpec, config: &EngineConfig, shared: &Shared) -> Result<PathBuf, String> {
    let mut last_percent = None;
    let mut on_progress = |progress: models::Progress| {
        let percent = progress.total.filter(|&t| t > 0).map(|t| (progress.downloaded * 100 / t) as u32);
        if percent != last_percent {
            last_percent = percent;
            let mib = progress.downloaded / (1024 * 1024);
            shared.loading(format!("downloading {spec}: {mib} MiB"), percent);
        }
        !shared.queue.is_closed()
    };
    models::resolve(spec, &config.fetch, &mut on_progress).map_err(|err| err.to_string())
}
