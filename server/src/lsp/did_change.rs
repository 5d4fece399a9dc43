//! `textDocument/didChange`: apply incremental edits. Applied in wire order by `ordered`.

use serde::Deserialize;
use tower_lsp_server::gen_lsp_types::Range;

use super::convert;
use super::session::Session;
use crate::documents::Change;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Params {
    text_document: Versioned,
    content_changes: Vec<ContentChange>,
}

#[derive(Deserialize)]
struct Versioned {
    uri: String,
    version: i32,
}

#[derive(Deserialize)]
struct ContentChange {
    range: Option<Range>,
    text: String,
}

pub fn apply(session: &Session, params: Option<&serde_json::Value>) {
    if !session.is_initialized() {
        return tracing::warn!("didChange before initialized: ignored");
    }
    let Some(params) = params.and_then(|p| Params::deserialize(p).ok()) else {
        return tracing::warn!("didChange with malformed params: ignored");
    };
    let changes: Vec<Change> = params
        .content_changes
        .into_iter()
        .map(|change| Change {
            range: change.range.map(|r| (convert::line_col(r.start), convert::line_col(r.end))),
            text: change.text,
        })
        .collect();
    let uri = &params.text_document.uri;
    let edited_line = changes.first().and_then(|c| c.range).map(|(start, _)| start.line as usize);
    match session.store.change(uri, params.text_document.version, &changes, session.encoding()) {
        Ok(0) => {
            if let (Some(line), Some(snapshot)) = (edited_line, session.store.snapshot(uri)) {
                session.remember(uri, &snapshot.text, line);
            }
        }
        Ok(clamped) => tracing::warn!("didChange {uri}: {clamped} ranges past the end of the document were clamped"),
        Err(err) => tracing::warn!("didChange ignored: {err}"),
    }
}
