//! `workspace/executeCommand`: `mistral-lsp.status` reports the engine's state and the settings;
//! `mistral-lsp.document` (not advertised: for tests and benchmarks) returns the server's copy of
//! a document, to compare with the editor's; `mistral-lsp.explain` streams an explanation (see
//! `explain`); `mistral-lsp.documentFunction` writes and applies a doc comment (see `document`);
//! `mistral-lsp.review` publishes review findings as diagnostics (see `review`).

use serde_json::json;
use tower_lsp_server::gen_lsp_types::{ExecuteCommandParams, LspAny};
use tower_lsp_server::jsonrpc::{Error, Result};

use std::sync::atomic::Ordering::Relaxed;

use super::server::Server;
use crate::engine::State;

pub const STATUS: &str = "mistral-lsp.status";
pub const DOCUMENT: &str = "mistral-lsp.document";

pub async fn handle(server: &Server, params: ExecuteCommandParams) -> Result<Option<LspAny>> {
    match params.command.as_str() {
        super::explain::COMMAND => {
            super::explain::handle(server, params.arguments.as_deref().unwrap_or_default()).await
        }
        super::review::COMMAND => super::review::handle(server, params.arguments.as_deref().unwrap_or_default()).await,
        super::document::COMMAND => {
            super::document::execute(server, params.arguments.as_deref().unwrap_or_default()).await
        }
        STATUS => Ok(Some(status(server))),
        DOCUMENT => document(server, params.arguments.as_deref().unwrap_or_default()),
        other => Err(Error::invalid_params(format!("unknown command `{other}`"))),
    }
}

fn document(server: &Server, arguments: &[LspAny]) -> Result<Option<LspAny>> {
    let Some(uri) = arguments.first().and_then(LspAny::as_str) else {
        return Err(Error::invalid_params("expected the document's URI as the first argument"));
    };
    let snapshot =
        server.session.workspace.documents.snapshot(uri).ok_or_else(|| super::convert::unknown_document(uri))?;
    Ok(Some(json!({
        "version": snapshot.version,
        "text": snapshot.text.to_string(),
        "inSync": snapshot.in_sync,
        "parsed": snapshot.is_parsed(),
    })))
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
        Some(State::Ready { model, .. }) => ("ready", model.description.clone(), None),
        Some(State::Failed { message }) => ("error", message, None),
    };
    let rates = match engine.as_ref().map(|e| e.state()) {
        Some(State::Ready { model, .. }) => model.rates,
        _ => None,
    };
    let counters = engine.as_ref().map(|e| e.counters());
    let workers = crate::engine::workers();
    let count = |f: fn(&crate::engine::Counters) -> u64| counters.map(f).unwrap_or(0);
    json!({
        "version": env!("CARGO_PKG_VERSION"),
        "state": state,
        "message": message,
        "percent": percent,
        "model": settings.model,
        // Set when jobs go to a remote server instead of the model above.
        "remote": (!settings.remote.url.is_empty()).then(|| settings.remote.url.clone()),
        "documents": session.workspace.documents.len(),
        "jobs": count(|c| c.jobs.load(std::sync::atomic::Ordering::Relaxed)),
        "evaluatedTokens": count(|c| c.evaluated_tokens.load(std::sync::atomic::Ordering::Relaxed)),
        "reusedTokens": count(|c| c.reused_tokens.load(std::sync::atomic::Ordering::Relaxed)),
        "generatedTokens": count(|c| c.generated_tokens.load(std::sync::atomic::Ordering::Relaxed)),
        // Tokens guessed from the context while generating, and those the model confirmed.
        "draftedTokens": count(|c| c.drafted_tokens.load(std::sync::atomic::Ordering::Relaxed)),
        "acceptedTokens": count(|c| c.accepted_tokens.load(std::sync::atomic::Ordering::Relaxed)),
        // Pre-warming jobs finished (`completion.prewarm`).
        "prewarmed": session.workspace.prewarmed(),
        // Where the user was last seen (an edit, `mistral-lsp/cursor`, a completion): where the
        // next pre-warming reads.
        "userAt": user_at(session),
        // The loaded model's speed here, measured when it loaded.
        "speed": rates.map(|r| json!({
            "promptTokensPerSecond": r.prompt_per_second(),
            "generatedTokensPerSecond": r.generation_per_second(),
        })),
        "threads": settings.threads,
        "contextSize": settings.context_size,
        "tickets": session.tickets.len(),
        "ringDocuments": session.workspace.remembered_documents(),
        "longestStallMs": session.longest_stall_us.load(Relaxed) as f64 / 1000.0,
        "longestStallCpuMs": session.longest_stall_cpu_us.load(Relaxed) as f64 / 1000.0,
        "engines": {
            "started": workers.started.load(Relaxed),
            "alive": workers.alive.load(Relaxed),
            "peakAlive": workers.peak_alive.load(Relaxed),
        },
    })
}

/// The spot pre-warming uses, as a URI and a position in the client's encoding.
fn user_at(session: &super::session::Session) -> Option<LspAny> {
    let (uri, offset) = session.workspace.user_spot()?;
    let snapshot = session.workspace.documents.snapshot(&uri)?;
    let at = crate::documents::position::line_col(&snapshot.text, offset, session.encoding());
    Some(json!({ "uri": uri, "position": super::convert::position(at) }))
}
