//! `textDocument/inlineCompletion`: the suggestion as ghost text.

use serde_json::json;
use tower_lsp_server::gen_lsp_types::{InlineCompletionParams, InlineCompletionResponse, TextDocumentPositionParams};
use tower_lsp_server::jsonrpc::{Error, Result};

use super::convert;
use super::ordered::current_ticket;
use super::server::Server;
use crate::completion::{self, Suggestion};
use crate::documents::Snapshot;
use crate::engine::{CancelToken, EngineError};

pub async fn handle(server: &Server, params: InlineCompletionParams) -> Result<Option<InlineCompletionResponse>> {
    let Some((snapshot, suggestion)) = suggest(server, &params.text_document_position_params).await? else {
        return Ok(Some(empty()));
    };
    let encoding = server.session.encoding();
    let item = json!({
        "insertText": suggestion.text,
        "range": convert::range(&snapshot, suggestion.start, suggestion.end, encoding),
    });
    let response = serde_json::from_value(json!({ "items": [item] })).map_err(|_| Error::internal_error())?;
    Ok(Some(response))
}

fn empty() -> InlineCompletionResponse {
    InlineCompletionResponse::InlineCompletionItemList(Vec::new())
}

/// The shared front half of both completion methods: find the document and the cursor, honour
/// settings and supersession, and run the pipeline. `None` means "no suggestion".
pub(super) async fn suggest(
    server: &Server,
    at: &TextDocumentPositionParams,
) -> Result<Option<(Snapshot, Suggestion)>> {
    let session = &server.session;
    let ticket = current_ticket();
    let uri = at.text_document.uri.as_ref();
    let snapshot = session.store.snapshot(uri).ok_or_else(|| convert::unknown_document(uri))?;
    let offset = convert::offset(&snapshot, at.position, session.encoding())?;
    let settings = session.settings();
    if !settings.completes(&snapshot.language_id) {
        return Ok(None);
    }
    let Some(engine) = session.engine() else {
        return Ok(None);
    };
    let mut cancel = CancelToken::new();
    if let Some(ticket) = &ticket {
        if ticket.is_superseded() {
            tracing::debug!("completion {} superseded before it started", ticket.mine);
            return Ok(None);
        }
        cancel = cancel.superseded_by(ticket.latest.clone(), ticket.mine);
    }
    let result = completion::suggest(&engine, &snapshot, offset, &settings, cancel.clone()).await;
    if cancel.is_cancelled() {
        return Ok(None);
    }
    match result {
        Ok(Some(suggestion)) => Ok(Some((snapshot, suggestion))),
        Ok(None) | Err(EngineError::NotReady | EngineError::Cancelled | EngineError::Unavailable(_)) => Ok(None),
        Err(err @ EngineError::Unsupported(_)) => {
            tracing::warn!("{err}");
            Ok(None)
        }
        Err(err @ EngineError::Failed(_)) => {
            tracing::error!("{err}");
            Err(Error { message: err.to_string().into(), ..Error::internal_error() })
        }
    }
}
