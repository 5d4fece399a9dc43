//! `workspace/didChangeConfiguration`: re-read settings; restart the engine if the model changed.
//!
//! Settings sent with the notification are applied by `ordered` in wire order ([`apply`]), so a
//! request sent after the change sees it. The slow half ([`handle`]) pulls settings when the
//! notification carries none, reports problems, and restarts the engine.

use std::sync::atomic::Ordering;

use tower_lsp_server::gen_lsp_types::DidChangeConfigurationParams;

use super::server::Server;
use super::session::Session;
use super::{initialized, progress};
use crate::config::{Options, Settings};

/// Merges settings carried by the notification, in wire order.
pub fn apply(session: &Session, params: Option<&serde_json::Value>) {
    let settings = params.and_then(|p| p.get("settings")).unwrap_or(&serde_json::Value::Null);
    if carries_nothing(settings) {
        return;
    }
    let before = session.settings();
    let mut problems = Vec::new();
    let options = Options::from_json(settings, "didChangeConfiguration", &mut problems);
    session.editor_options.lock().merge(&options);
    session.pending_problems.lock().extend(problems);
    let after = session.resolve_settings();
    if engine_changed(&before, &after) {
        session.engine_restart_pending.store(true, Ordering::Release);
    }
}

pub async fn handle(server: &Server, params: DidChangeConfigurationParams) {
    let session = &server.session;
    if carries_nothing(&params.settings) {
        // The client only signals a change: pull the new values.
        let before = session.settings();
        initialized::pull_configuration(server).await;
        if engine_changed(&before, &session.settings()) {
            session.engine_restart_pending.store(true, Ordering::Release);
        }
    }
    initialized::report_problems(server).await;
    if session.engine_restart_pending.swap(false, Ordering::AcqRel) {
        tracing::info!("engine settings changed: restarting the engine");
        progress::start_engine(server).await;
    }
}

fn carries_nothing(settings: &serde_json::Value) -> bool {
    settings.is_null() || settings.as_object().is_some_and(|o| o.is_empty())
}

fn engine_changed(before: &Settings, after: &Settings) -> bool {
    fn engine(s: &Settings) -> (&str, u32, u32, u32, &crate::config::Download, &crate::config::Remote) {
        (&s.model, s.threads, s.gpu_layers, s.context_size, &s.download, &s.remote)
    }
    engine(before) != engine(after)
}
