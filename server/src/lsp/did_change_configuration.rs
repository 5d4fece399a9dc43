//! `workspace/didChangeConfiguration`: re-read settings; restart the engine if the model changed.

use tower_lsp_server::gen_lsp_types::DidChangeConfigurationParams;

use super::server::Server;
use super::{initialized, progress};
use crate::config::Options;

pub async fn handle(server: &Server, params: DidChangeConfigurationParams) {
    let session = &server.session;
    let before = session.settings();
    if params.settings.is_null() || params.settings.as_object().is_some_and(|o| o.is_empty()) {
        // The client only signals a change: pull the new values.
        initialized::pull_configuration(server).await;
    } else {
        let mut problems = Vec::new();
        let options = Options::from_json(&params.settings, "didChangeConfiguration", &mut problems);
        session.editor_options.lock().merge(&options);
        session.pending_problems.lock().extend(problems);
        session.resolve_settings();
    }
    initialized::report_problems(server).await;
    let after = session.settings();
    let engine_changed = (
        &before.model,
        before.threads,
        before.gpu_layers,
        before.context_size,
    ) != (
        &after.model,
        after.threads,
        after.gpu_layers,
        after.context_size,
    );
    if engine_changed && session.is_initialized() {
        tracing::info!("engine settings changed: restarting the engine");
        progress::start_engine(server).await;
    }
}
