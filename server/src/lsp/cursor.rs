//! `mistral-lsp/cursor`: where the editor's cursor is, sent by our clients when it moves and
//! rests, so that pre-warming reads the prompt the next completion there will start with.
//! Applied in wire order by `ordered`. Params: `{ textDocument: { uri }, position }`.

use serde::Deserialize;
use tower_lsp_server::gen_lsp_types::{Position, TextDocumentIdentifier};

use super::convert;
use super::session::Session;
use crate::documents::position;

/// The notification's method name.
pub const METHOD: &str = "mistral-lsp/cursor";

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Params {
    text_document: TextDocumentIdentifier,
    position: Position,
}

/// Notes the cursor; `false` when the notification says nothing usable or nothing new.
pub fn apply(session: &Session, params: Option<&serde_json::Value>) -> bool {
    let Some(Params { text_document, position: at }) = params.and_then(|p| Params::deserialize(p).ok()) else {
        tracing::warn!("{METHOD} with malformed params: ignored");
        return false;
    };
    let uri = text_document.uri.as_ref();
    let Some(snapshot) = session.workspace.documents.snapshot(uri) else {
        tracing::debug!("{METHOD} for a document that is not open: {uri}");
        return false;
    };
    let cursor = position::byte_offset_clamped(&snapshot.text, convert::line_col(at), session.encoding());
    // A cursor that rests where the user already was (after typing, after a completion) has
    // nothing new to read.
    session.workspace.user_at(uri, cursor, false)
}
