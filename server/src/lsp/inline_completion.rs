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
use crate::completion::{Request, Suggestion};
use crate::documents::Snapshot;
use crate::engine::{CancelToken, EngineError};
use crate::prompt::ring;

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

/// The shared front half of both completion methods: find the document and the cursor, honour
/// settings and supersession, and run the pipeline. An empty list means "no suggestion".
pub(super) async fn suggest(
    server: &Server,
    at: &TextDocumentPositionParams,
    trigger: Trigger,
    alternatives: bool,
) -> Result<(Snapshot, Vec<Suggestion>)> {
    let session = &server.session;
    let ticket = current_ticket();
    let uri = at.text_document.uri.as_ref();
    // The text with its tree, at least as new as this request: waits for its parse, unless a
    // newer request or the end of input makes this one pointless.
    let unwanted = || ticket.as_ref().is_some_and(Ticket::is_superseded);
    let snapshot = session.store.parsed(uri, unwanted).await.ok_or_else(|| convert::unknown_document(uri))?;
    let cursor = convert::offset(&snapshot, at.position, session.encoding())?;
    let settings = session.settings();
    let nothing = |snapshot| Ok((snapshot, Vec::new()));
    if !snapshot.in_sync {
        tracing::warn!("no completion for {uri}: its text differs from the editor's since an edit failed");
        return nothing(snapshot);
    }
    if !settings.completes(&snapshot.language_id) {
        return nothing(snapshot);
    }
    let Some(engine) = session.engine() else { return nothing(snapshot) };
    let mut cancel = CancelToken::new();
    if let Some(ticket) = &ticket {
        if ticket.is_superseded() {
            tracing::debug!("completion {} superseded before it started", ticket.mine);
            return nothing(snapshot);
        }
        cancel = cancel.superseded_by(ticket.latest.clone(), ticket.mine);
    }
    let line = snapshot.text.byte_to_line(cursor);
    let around = ring::chunk_around_rope(&snapshot.text, line);
    let request = Request {
        cursor,
        trigger,
        alternatives: alternatives && trigger == Trigger::Invoked,
        others: session.store.all().into_iter().filter(|other| other.uri != snapshot.uri).collect(),
        chunks: session.ring.lock().relevant(&around),
        root: session.root.read().clone(),
        snapshot: snapshot.clone(),
        speculate: true,
    };
    let result = session.completer.suggest(&engine, &settings, &request, cancel.clone()).await;
    if cancel.is_cancelled() {
        return nothing(snapshot);
    }
    match result {
        Ok(suggestions) => Ok((snapshot, suggestions)),
        Err(EngineError::NotReady | EngineError::Cancelled | EngineError::Unavailable(_)) => nothing(snapshot),
        Err(err @ EngineError::Unsupported(_)) => {
            tracing::warn!("{err}");
            nothing(snapshot)
        }
        Err(err @ EngineError::Failed(_)) => {
            tracing::error!("{err}");
            Err(Error { message: err.to_string().into(), ..Error::internal_error() })
        }
    }
}
