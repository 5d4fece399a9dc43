//! `workspace/executeCommand mistral-lsp.explain {uri, range}`: explains the code in the range
//! (see `crate::explain`), streaming it as `mistral-lsp/explanation` notifications, with
//! work-done progress while the prompt is read. The result is the whole markdown, for clients
//! that only read results. `$/cancelRequest` stops the job: tower-lsp drops this handler's
//! future, and the drop cancels the engine's job.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::json;
use tower_lsp_server::gen_lsp_types::{
    LspAny, LspNotificationMethod, MessageDirection, Notification, ProgressToken, Range, Uri,
};
use tower_lsp_server::jsonrpc::{Error, ErrorCode, Result};
use tower_lsp_server::{NotCancellable, OngoingProgress, Unbounded};

use super::convert;
use super::server::Server;
use crate::engine::CancelToken;
use crate::explain::ExplainError;

pub const COMMAND: &str = "mistral-lsp.explain";

/// Notifications carry the text at most this often (the last one always).
const STREAM_EVERY: Duration = Duration::from_millis(100);

/// `mistral-lsp/explanation`: the markdown so far.
pub enum ExplanationNotification {}

#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct ExplanationParams {
    /// Tells apart explanations that stream at the same time.
    pub id: String,
    pub uri: Uri,
    /// What is explained: the selection widened to whole lines, or the definition.
    pub range: Range,
    pub text: String,
    pub done: bool,
}

impl Notification for ExplanationNotification {
    type Params = ExplanationParams;
    const METHOD: LspNotificationMethod<'static> = LspNotificationMethod::new("mistral-lsp/explanation");
    const MESSAGE_DIRECTION: MessageDirection = MessageDirection::ServerToClient;
}

#[derive(Deserialize)]
struct Arguments {
    uri: Uri,
    range: Range,
}

/// Cancels the job when the request's future is dropped (cancelled, or the server stops).
pub(super) struct CancelOnDrop(pub(super) CancelToken);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

pub async fn handle(server: &Server, arguments: &[LspAny]) -> Result<Option<LspAny>> {
    let session = &server.session;
    let Some(Ok(Arguments { uri, range })) = arguments.first().map(|a| serde_json::from_value(a.clone())) else {
        return Err(Error::invalid_params(format!("{COMMAND} takes one argument: {{\"uri\": …, \"range\": …}}")));
    };
    if let Some(message) = session.model_error.lock().clone() {
        return Err(failed(&ExplainError::Unavailable(message)));
    }
    let encoding = session.encoding();
    let (start, end) = (convert::line_col(range.start), convert::line_col(range.end));
    let request = session
        .workspace
        .explain_request(uri.as_ref(), start, end, encoding)
        .await
        .map_err(|err| Error::invalid_params(err.to_string()))?;
    let target = crate::explain::target(&request).map_err(|err| Error::invalid_params(err.to_string()))?;
    let explained = convert::range(&request.snapshot, target.start, target.end, encoding);
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let id = format!("explain-{}", NEXT.fetch_add(1, Ordering::Relaxed));

    let cancel = CancelToken::new();
    let _guard = CancelOnDrop(cancel.clone());
    let (texts, mut received) = tokio::sync::watch::channel(String::new());
    let on_text = move |text: &str| {
        texts.send_replace(text.trim_start().to_owned());
    };
    let client = server.client.clone();
    let progress = begin_progress(server, &id, "mistral-lsp: explaining").await;
    let notify = {
        let (client, id, uri) = (client.clone(), id.clone(), uri.clone());
        move |text: String, done: bool| {
            let params = ExplanationParams { id: id.clone(), uri: uri.clone(), range: explained, text, done };
            let client = client.clone();
            async move { client.send_notification::<ExplanationNotification>(params).await }
        }
    };
    // Forwards the text as it grows, at most every STREAM_EVERY, until the job ends.
    let job = session.workspace.explain(&request, on_text, cancel.clone());
    tokio::pin!(job);
    let mut writing = false;
    let result = loop {
        tokio::select! {
            result = &mut job => break result,
            changed = received.changed() => {
                if changed.is_err() {
                    break (&mut job).await;
                }
                let text = received.borrow_and_update().clone();
                if !writing {
                    writing = true;
                    if let Some(progress) = &progress {
                        progress.report("writing").await;
                    }
                }
                notify(text, false).await;
                tokio::time::sleep(STREAM_EVERY).await;
            }
        }
    };
    if let Some(progress) = progress {
        progress.finish_with_message(if result.is_ok() { "done" } else { "stopped" }).await;
    }
    match result {
        Ok(explanation) => {
            notify(explanation.markdown.clone(), true).await;
            Ok(Some(json!({"id": id, "uri": uri, "range": explained, "markdown": explanation.markdown})))
        }
        Err(err) => {
            notify(String::new(), true).await;
            Err(failed(&err))
        }
    }
}

/// Work-done progress for job `id`, begun with "reading the code", where the client takes it.
pub(super) async fn begin_progress(
    server: &Server,
    id: &str,
    title: &str,
) -> Option<OngoingProgress<Unbounded, NotCancellable>> {
    if !server.session.client.read().work_done_progress {
        return None;
    }
    let client = &server.client;
    let token = ProgressToken::String(format!("mistral-lsp/{id}"));
    client.create_work_done_progress(token.clone()).await.ok()?;
    Some(client.progress(token, title.to_owned()).with_message("reading the code").begin().await)
}

/// The error answer for an explanation or documentation that could not be written.
pub(super) fn failed(err: &ExplainError) -> Error {
    match err {
        ExplainError::Empty | ExplainError::NoFunction => Error::invalid_params(err.to_string()),
        ExplainError::Cancelled => Error::request_cancelled(),
        // LSP's RequestFailed.
        _ => Error { code: ErrorCode::ServerError(-32803), message: err.to_string().into(), data: None },
    }
}
