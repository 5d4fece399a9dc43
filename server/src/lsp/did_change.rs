//! `textDocument/didChange`: apply incremental edits. Applied in wire order by `ordered`.
//!
//! Each change of a notification is read on its own: the valid ones are applied, one that cannot
//! be (a position that is not a 32-bit unsigned integer, a missing text) is rejected, and the
//! document is then marked out of sync, so that nothing is built on a text the editor does not
//! have, until it sends the whole text again.

use serde::Deserialize;
use serde_json::Value;
use tower_lsp_server::gen_lsp_types::{MessageType, Range};

use super::convert;
use super::session::Session;
use crate::documents::Change;

#[derive(Deserialize)]
struct ContentChange {
    range: Option<Range>,
    text: String,
}

pub fn apply(session: &Session, params: Option<&Value>) {
    if !session.is_initialized() {
        return tracing::warn!("didChange before initialized: ignored");
    }
    let document = params.and_then(|p| p.get("textDocument"));
    let (Some(uri), Some(raw_changes)) = (
        document.and_then(|d| d.get("uri")).and_then(Value::as_str),
        params.and_then(|p| p.get("contentChanges")).and_then(Value::as_array),
    ) else {
        return tracing::warn!("didChange without a document URI or contentChanges: ignored");
    };
    let Some(current) = session.workspace.documents.snapshot(uri) else {
        return tracing::warn!("didChange ignored: document is not open: {uri}");
    };
    let version = document.and_then(|d| d.get("version")).and_then(Value::as_i64).and_then(|v| i32::try_from(v).ok());
    let version = version.unwrap_or_else(|| {
        tracing::warn!("didChange {uri} without a valid version: applied, version kept at {}", current.version);
        current.version
    });
    let mut changes = Vec::with_capacity(raw_changes.len());
    let mut last_rejected = None;
    let mut last_full = None;
    for (index, raw) in raw_changes.iter().enumerate() {
        match ContentChange::deserialize(raw) {
            Ok(change) => {
                if change.range.is_none() {
                    last_full = Some(index);
                }
                changes.push(Change {
                    range: change.range.map(|r| (convert::line_col(r.start), convert::line_col(r.end))),
                    text: change.text,
                });
            }
            Err(err) => {
                tracing::error!("didChange {uri}: change {index} cannot be applied ({err}): {raw}");
                last_rejected = Some(index);
            }
        }
    }
    let edited_line = changes.first().and_then(|c| c.range).map(|(start, _)| start.line as usize);
    // Where the last edit ends, in the new text: where the user is.
    let last_edit = changes.last().and_then(|c| Some((c.range?.0, c.text.len())));
    match session.workspace.documents.change(uri, version, &changes, session.encoding()) {
        Ok(0) => {}
        Ok(clamped) => tracing::warn!("didChange {uri}: {clamped} ranges past the end of the document were clamped"),
        Err(err) => return tracing::warn!("didChange ignored: {err}"),
    }
    super::review::follow_changes(session, uri, version, &changes);
    // A rejected change after the last whole text leaves a text that the editor does not have.
    if last_rejected.is_some_and(|rejected| last_full.is_none_or(|full| rejected > full)) {
        session.workspace.documents.mark_out_of_sync(uri);
        session.show_once(
            MessageType::Error,
            format!(
                "mistral-lsp: an edit of {uri} could not be applied; no suggestions for it until the editor \
                 sends its whole text again (reopen the file)"
            ),
        );
    }
    let Some(snapshot) = session.workspace.documents.snapshot(uri) else { return };
    if let Some(line) = edited_line {
        session.workspace.remember(uri, &snapshot.text, line);
    }
    if let Some((start, inserted)) = last_edit {
        let start = crate::documents::position::byte_offset_clamped(&snapshot.text, start, session.encoding());
        let _ = session.workspace.user_at(uri, start + inserted, false);
    }
}
