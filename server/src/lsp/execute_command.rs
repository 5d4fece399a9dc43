//! `workspace/executeCommand`: `mistral-lsp.status` reports the engine's state and the settings.

use serde_json::json;
use tower_lsp_server::gen_lsp_types::{ExecuteCommandParams, LspAny};
use tower_lsp_server::jsonrpc::{Error, Result};

use super::server::Server;
use crate::engine::State;

pub const STATUS: &str = "mistral-lsp.status";

pub fn handle(server: &Server, params: ExecuteCommandParams) -> Result<Option<LspAny>> {
    match params.command.as_str() {
        STATUS => Ok(Some(status(server))),
        other => Err(Error::invalid_params(format!("unknown command `{other}`"))),
    }
}

fn status(server: &Server) -> LspAny {
    let session = &server.session;
    let settings = session.settings();
    let engine = session.engine();
    let (state, message, percent) = match engine.as_ref().map(|e| e.state()) {
        None => match session.model_error.lock().clone() {
            Some(message) => ("error", message, None),
            None => ("starting", "the engine has not started".to_owned(), None),
        },
        Some(State::Loading { message, percent }) => ("loading", message, percent),
        Some(State::Ready { model, .. }) => ("ready", model.description, None),
        Some(State::Failed { message }) => ("error", message, None),
    };
    let counters = engine.as_ref().map(|e| e.counters());
    let count = |f: fn(&crate::engine::Counters) -> u64| counters.map(f).unwrap_or(0);
    json!({
        "version": env!("CARGO_PKG_VERSION"),
        "state": state,
        "message": message,
        "percent": percent,
        "model": settings.model,
        "documents": session.store.len(),
        "jobs": count(|c| c.jobs.load(std::sync::atomic::Ordering::Relaxed)),
        "evaluatedTokens": count(|c| c.evaluated_tokens.load(std::sync::atomic::Ordering::Relaxed)),
        "reusedTokens": count(|c| c.reused_tokens.load(std::sync::atomic::Ordering::Relaxed)),
        "generatedTokens": count(|c| c.generated_tokens.load(std::sync::atomic::Ordering::Relaxed)),
    })
}
