//! `textDocument/didSave`: the text is already current through `didChange`; a save is a pause,
//! so pre-warming reads the next completion's prompt, and with `review.onSave` the document is
//! reviewed.

use tower_lsp_server::gen_lsp_types::DidSaveTextDocumentParams;

use super::server::Server;

pub fn handle(server: &Server, params: DidSaveTextDocumentParams) {
    let uri = params.text_document.uri;
    match server.session.workspace.documents.snapshot(uri.as_ref()) {
        Some(snapshot) => {
            tracing::debug!("saved {uri} at version {}", snapshot.version);
            super::prewarm::schedule(&server.session);
            super::review::on_save(&server.session, uri.as_ref());
        }
        None => tracing::warn!("didSave for a document that is not open: {uri}"),
    }
}
