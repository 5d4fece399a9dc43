//! `shutdown`: stop taking work. The exit code is decided when `exit` arrives (see `lsp::serve`).

use tower_lsp_server::jsonrpc::Result;

use super::server::Server;

pub fn handle(server: &Server) -> Result<()> {
    tracing::info!("shutdown requested; {} documents open", server.session.workspace.documents.len());
    Ok(())
}
