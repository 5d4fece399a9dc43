//! `textDocument/didOpen`: store the buffer; it is parsed off the message loop. Applied in wire
//! order by `ordered`.

use serde::Deserialize;

use super::session::Session;
use crate::documents::Document;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Params {
    text_document: Item,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Item {
    uri: String,
    language_id: String,
    version: i32,
    text: String,
}

pub fn apply(session: &Session, params: Option<&serde_json::Value>) {
    if !session.is_initialized() {
        return tracing::warn!("didOpen before initialized: ignored");
    }
    let Some(Params { text_document: item }) = params.and_then(|p| Params::deserialize(p).ok()) else {
        return tracing::warn!("didOpen with malformed params: ignored");
    };
    tracing::debug!("open {} ({}, {} bytes)", item.uri, item.language_id, item.text.len());
    let document = Document::unparsed(&item.uri, &item.language_id, item.version, &item.text);
    session.workspace.open(document);
    // Until the client says where the cursor is (`mistral-lsp/cursor`), pre-warming reads the
    // file's start, which prompts for this file share.
    let _ = session.workspace.user_at(&item.uri, 0, true);
}
