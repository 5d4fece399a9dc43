//! Starting the engine and reporting its state: work-done progress while the model loads, a
//! `mistral-lsp/status` notification on every change, and an error message if loading fails.

use std::sync::atomic::Ordering;

use serde::Serialize;
use tower_lsp_server::gen_lsp_types::{
    LspNotificationMethod, MessageDirection, MessageType, Notification, ProgressToken,
};
use tower_lsp_server::Client;

use super::server::Server;
use crate::engine::{Engine, State};

/// `mistral-lsp/status`: the engine's state, for editors' status bars.
pub enum StatusNotification {}

#[derive(Serialize, serde::Deserialize)]
pub struct StatusParams {
    /// `loading`, `ready` or `error`.
    pub state: String,
    pub message: String,
    pub percent: Option<u32>,
}

impl Notification for StatusNotification {
    type Params = StatusParams;
    const METHOD: LspNotificationMethod<'static> = LspNotificationMethod::new("mistral-lsp/status");
    const MESSAGE_DIRECTION: MessageDirection = MessageDirection::ServerToClient;
}

/// Starts (or restarts) the engine with the current settings and reports on it in the background.
///
/// One engine at a time: the old one is stopped and its model freed before the new one loads.
/// Restarts asked for while one is under way are coalesced into one, with the newest settings.
pub async fn start_engine(server: &Server) {
    let session = &server.session;
    session.engine_wanted.store(true, Ordering::Release);
    let _turn = session.engine_turn.lock().await;
    if !session.engine_wanted.swap(false, Ordering::AcqRel) {
        return tracing::debug!("engine restart coalesced with the one before it");
    }
    // A speculation holds the old engine (and its model) until it ends: `set_engine` stops it.
    let old = session.workspace.set_engine(None);
    if let Some(old) = old {
        old.stop();
        old.stopped().await;
    }
    let settings = session.settings();
    let engine = match Engine::for_settings(&settings) {
        Ok(engine) => engine,
        Err(message) => return refuse_model(server, message).await,
    };
    *session.model_error.lock() = None;
    session.workspace.set_engine(Some(engine.clone()));
    let support = *session.client.read();
    tokio::spawn(report(server.client.clone(), engine, support.work_done_progress, session.clone()));
}

/// Stops the engine that ran before, since the settings no longer name its model, and reports why
/// as a model that fails to load is reported: a status notification and an error message; the
/// status command says the same until the setting changes.
async fn refuse_model(server: &Server, message: String) {
    tracing::error!("{message}");
    server.session.workspace.set_engine(None);
    *server.session.model_error.lock() = Some(message.clone());
    send_status(&server.client, "error", message.clone(), None).await;
    server.client.show_message(MessageType::Error, format!("mistral-lsp: {message}")).await;
}

/// Sends `mistral-lsp/status`.
async fn send_status(client: &Client, state: &str, message: String, percent: Option<u32>) {
    client.send_notification::<StatusNotification>(StatusParams { state: state.into(), message, percent }).await;
}

async fn report(client: Client, engine: Engine, work_done_progress: bool, session: std::sync::Arc<super::Session>) {
    let mut states = engine.watch();
    let token = ProgressToken::String(format!("mistral-lsp/model/{}", std::process::id()));
    let mut progress = None;
    if work_done_progress && client.create_work_done_progress(token.clone()).await.is_ok() {
        progress = Some(client.progress(token, "mistral-lsp: loading the model").with_percentage(0).begin().await);
    }
    loop {
        let state = states.borrow_and_update().clone();
        let (name, message, percent) = match &state {
            State::Loading { message, percent } => ("loading", message.clone(), *percent),
            State::Ready { model, .. } => ("ready", model.description.clone(), Some(100)),
            State::Failed { message } => ("error", message.clone(), None),
        };
        send_status(&client, name, message.clone(), percent).await;
        // Later changes (a remote server lost and found again) are reported as they come; the
        // progress bar is for the first load only.
        match state {
            State::Loading { .. } => {
                if let Some(progress) = &progress {
                    progress.report_with_message(message, percent.unwrap_or(0)).await;
                }
            }
            State::Ready { notice, .. } => {
                // The user may have been reading all along: pre-warm where they were.
                super::prewarm::schedule(&session);
                if let Some(progress) = progress.take() {
                    progress.finish_with_message(format!("ready: {message}")).await;
                }
                if let Some(notice) = notice {
                    client.show_message(MessageType::Error, format!("mistral-lsp: {notice}")).await;
                }
            }
            State::Failed { .. } => {
                if let Some(progress) = progress.take() {
                    progress.finish_with_message("failed").await;
                }
                client.show_message(MessageType::Error, format!("mistral-lsp: {message}")).await;
            }
        }
        if states.changed().await.is_err() {
            return;
        }
    }
}
