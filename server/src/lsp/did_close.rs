//! `textDocument/didClose`: forget the buffer. Applied in wire order by `ordered`.

use super::session::Session;

pub fn apply(session: &Session, params: Option<&serde_json::Value>) {
    let Some(uri) = params.and_then(|p| p.get("textDocument")?.get("uri")?.as_str()) else {
        return tracing::warn!("didClose with malformed params: ignored");
    };
    session.tickets.forget(uri);
    super::review::forget(session, uri);
    if let Err(err) = session.workspace.close(uri) {
        tracing::warn!("didClose ignored: {err}");
    }
}
