//! "Document this function": `codeAction/resolve` writes the doc comment into the action's edit
//! (any client that resolves edits, Helix included); for clients that do not, the command
//! `mistral-lsp.documentFunction {uri, position, version}` writes it and applies it through
//! `workspace/applyEdit`. Either way the edit is versioned where the client allows, so an edit
//! written for an older text is refused rather than misplaced.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Deserialize;
use serde_json::json;
use tower_lsp_server::gen_lsp_types::{CodeAction, LspAny, Position, Uri, WorkspaceEdit};
use tower_lsp_server::jsonrpc::{Error, ErrorCode, Result};

use super::convert;
use super::explain::{begin_progress, failed, CancelOnDrop};
use super::server::Server;
use crate::engine::CancelToken;

pub const COMMAND: &str = "mistral-lsp.documentFunction";

/// Which function: where the action was offered, in the document's version then.
#[derive(Deserialize)]
struct At {
    uri: Uri,
    position: Position,
    version: Option<i32>,
}

/// `codeAction/resolve`: the action with its edit.
pub async fn resolve(server: &Server, mut action: CodeAction) -> Result<CodeAction> {
    let Some(Ok(at)) = action.data.take().map(serde_json::from_value::<At>) else {
        return Err(Error::invalid_params("this code action has no data to resolve it with"));
    };
    action.edit = Some(write(server, &at).await?);
    Ok(action)
}

/// `workspace/executeCommand mistral-lsp.documentFunction`: writes the comment and asks the
/// client to apply it.
pub async fn execute(server: &Server, arguments: &[LspAny]) -> Result<Option<LspAny>> {
    let Some(Ok(at)) = arguments.first().map(|a| serde_json::from_value::<At>(a.clone())) else {
        return Err(Error::invalid_params(format!("{COMMAND} takes one argument: {{\"uri\": …, \"position\": …}}")));
    };
    let edit = write(server, &at).await?;
    let applied = server.client.apply_edit(edit).await?;
    if !applied.applied {
        let reason = applied.failure_reason.unwrap_or_else(|| "no reason given".into());
        let message = format!("the editor did not apply the comment: {reason}");
        return Err(Error { code: ErrorCode::ServerError(-32803), message: message.into(), data: None });
    }
    Ok(Some(json!({"applied": true})))
}

/// Writes the documentation of the function at `at` as a workspace edit.
async fn write(server: &Server, at: &At) -> Result<WorkspaceEdit> {
    let session = &server.session;
    if let Some(message) = session.model_error.lock().clone() {
        return Err(failed(&crate::explain::ExplainError::Unavailable(message)));
    }
    let position = convert::line_col(at.position);
    let request = session
        .workspace
        .explain_request(at.uri.as_ref(), position, position, session.encoding())
        .await
        .map_err(|err| Error::invalid_params(err.to_string()))?;
    if at.version.is_some_and(|version| version != request.snapshot.version) {
        return Err(content_modified());
    }
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let id = format!("document-{}", NEXT.fetch_add(1, Ordering::Relaxed));
    let cancel = CancelToken::new();
    let _guard = CancelOnDrop(cancel.clone());
    let progress = begin_progress(server, &id, "mistral-lsp: documenting").await;
    let result = session.workspace.document(&request, cancel).await;
    if let Some(progress) = progress {
        progress.finish_with_message(if result.is_ok() { "done" } else { "stopped" }).await;
    }
    let documentation = result.map_err(|err| failed(&err))?;
    // The text moved on while the model wrote: the edit would land in the wrong place.
    let now = session.workspace.documents.snapshot(at.uri.as_ref()).map(|s| s.version);
    if now != Some(documentation.version) {
        return Err(content_modified());
    }
    let start = json!({"line": documentation.site.line, "character": 0});
    let edit = json!({"range": {"start": start, "end": start}, "newText": documentation.comment});
    let edit = if session.client.read().document_changes {
        let document = json!({"uri": at.uri, "version": documentation.version});
        json!({"documentChanges": [{"textDocument": document, "edits": [edit]}]})
    } else {
        json!({"changes": {AsRef::<str>::as_ref(&at.uri): [edit]}})
    };
    serde_json::from_value(edit).map_err(|err| {
        tracing::error!("building a workspace edit: {err}");
        Error::internal_error()
    })
}

/// LSP's ContentModified: the document changed since the action was offered.
fn content_modified() -> Error {
    Error {
        code: ErrorCode::ServerError(-32801),
        message: "the document changed since this action was offered; ask for it again".into(),
        data: None,
    }
}
