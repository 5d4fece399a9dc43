//! `textDocument/codeAction`: no actions yet. "Explain this code" and review fixes will come here.

use tower_lsp_server::gen_lsp_types::{CodeActionParams, CodeActionResponse};
use tower_lsp_server::jsonrpc::Result;

use super::convert;
use super::server::Server;

pub fn handle(server: &Server, params: CodeActionParams) -> Result<Option<Vec<CodeActionResponse>>> {
    let uri = params.text_document.uri;
    if server.session.store.snapshot(uri.as_ref()).is_none() {
        return Err(convert::unknown_document(uri.as_ref()));
    }
    Ok(Some(Vec::new()))
}
