//! `initialized`: pull the workspace configuration, report option problems, start the engine.

use std::time::Duration;

use tower_lsp_server::gen_lsp_types::{ConfigurationItem, MessageType};

use super::server::Server;
use crate::config::Options;

/// The section editors keep our settings under.
pub const SECTION: &str = "mistralLsp";

pub async fn handle(server: &Server) {
    pull_configuration(server).await;
    report_problems(server).await;
    super::progress::start_engine(server).await;
}

/// Asks the client for our section of its settings, if it supports that.
pub async fn pull_configuration(server: &Server) {
    let session = &server.session;
    if !session.client.read().configuration {
        return;
    }
    let item = ConfigurationItem { scope_uri: None, section: Some(SECTION.into()) };
    let answer = tokio::time::timeout(Duration::from_secs(5), server.client.configuration(vec![item])).await;
    let value = match answer {
        Ok(Ok(mut values)) if !values.is_empty() => values.swap_remove(0),
        Ok(Ok(_)) => return,
        Ok(Err(err)) => return tracing::warn!("workspace/configuration failed: {err}"),
        Err(_) => return tracing::warn!("workspace/configuration got no answer within 5 s"),
    };
    let mut problems = Vec::new();
    let options = Options::from_json(&value, "workspace/configuration", &mut problems);
    session.editor_options.lock().merge(&options);
    session.pending_problems.lock().extend(problems);
    session.resolve_settings();
}

/// Shows each configuration problem once, as a warning, and logs it.
pub async fn report_problems(server: &Server) {
    let problems: Vec<_> = server.session.pending_problems.lock().drain(..).collect();
    for problem in problems {
        let message = format!("mistral-lsp: {problem}");
        tracing::warn!("{message}");
        // The same problem from another source (a re-sent setting) is not shown twice.
        if server.session.first_report(&problem.message) {
            server.client.show_message(MessageType::Warning, message).await;
        }
    }
}
