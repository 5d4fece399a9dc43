//! `textDocument/inlineCompletion`: the suggestion as ghost text.

use serde_json::json;
use tower_lsp_server::gen_lsp_types::{
    InlineCompletionParams, InlineCompletionResponse, InlineCompletionTriggerKind, TextDocumentPositionParams,
};
use tower_lsp_server::jsonrpc::{Error, Result};

use super::convert;
use super::ordered::current_ticket;
use super::server::Server;
use super::session::Ticket;
use crate::completion::decide::Trigger;
use crate::completion::Suggestion;
use crate::documents::Snapshot;
use crate::engine::CancelToken;
use crate::workspace::{At, CompleteError};

pub async fn handle(server: &Server, params: InlineCompletionParams) -> Result<Option<InlineCompletionResponse>> {
    let trigger = match params.context.trigger_kind {
        InlineCompletionTriggerKind::Invoked => Trigger::Invoked,
        _ => Trigger::Automatic,
    };
    let (snapshot, suggestions) = suggest(server, &params.text_document_position_params, trigger, true).await?;
    let encoding = server.session.encoding();
    let items: Vec<_> = suggestions
        .iter()
        .map(|s| json!({"insertText": s.text, "range": convert::range(&snapshot, s.start, s.end, encoding)}))
        .collect();
    serde_json::from_value(json!({ "items": items })).map(Some).map_err(|_| Error::internal_error())
}

/// The shared front half of both completion methods: supersession by newer requests, then the
/// workspace's pipeline. An empty list means "no suggestion".
pub(super) async fn suggest(
    server: &Server,
    at: &TextDocumentPositionParams,
    trigger: Trigger,
    alternatives: bool,
) -> Result<(Snapshot, Vec<Suggestion>)> {
    let session = &server.session;
    let ticket = current_ticket();
    let uri = at.text_document.uri.as_ref();
    // Waiting for the parse, and the model's work, stop once a newer request for the document
    // arrives, whether or not the client cancels this one.
    let unwanted = || ticket.as_ref().is_some_and(Ticket::is_superseded);
    let mut cancel = CancelToken::new();
    if let Some(ticket) = &ticket {
        cancel = cancel.superseded_by(ticket.latest.clone(), ticket.mine);
    }
    let at = At { uri, position: convert::line_col(at.position), encoding: session.encoding() };
    match session.workspace.complete(at, trigger, alternatives, true, cancel, unwanted).await {
        Ok(completion) => Ok((completion.snapshot, completion.suggestions)),
        Err(CompleteError::UnknownDocument(_)) => Err(convert::unknown_document(uri)),
        Err(CompleteError::BadPosition(why)) => Err(Error::invalid_params(why)),
        Err(err @ CompleteError::Failed(_)) => {
            tracing::error!("{err}");
            Err(Error { message: err.to_string().into(), ..Error::internal_error() })
        }
    }
}
