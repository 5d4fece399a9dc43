//! The language server edge: the only module that knows LSP types.
//!
//! Data flow: `transport` guards the wire, `ordered` applies document edits in wire order and
//! issues completion tickets, tower-lsp dispatches to `server`, and each LSP method lives in its
//! own file that converts parameters (`convert`), calls the core, and maps the answer back.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};
use tower_lsp_server::{LspService, Server as Transport};

mod code_action;
mod completion;
mod convert;
mod did_change;
mod did_change_configuration;
mod did_close;
mod did_open;
mod did_save;
mod execute_command;
mod initialize;
mod initialized;
mod inline_completion;
mod ordered;
mod progress;
mod server;
mod session;
mod shutdown;
mod transport;

pub use session::Session;

/// Serves LSP over `input`/`output` until `exit`. Returns the process exit code: 0 after
/// `shutdown` then `exit`, 1 otherwise.
pub async fn serve<R, W>(input: R, output: W, session: Arc<Session>) -> i32
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (service, socket) = LspService::build(|client| server::Server::new(client, session.clone())).finish();
    let service = ordered::Ordered::new(service, session.clone());
    let (guard_to_server, server_input) = tokio::io::duplex(1 << 20);
    let (server_output, server_to_merge) = tokio::io::duplex(1 << 20);
    let (errors_tx, errors_rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(transport::guard_input(input, guard_to_server, errors_tx));
    let writer = tokio::spawn(transport::merge_output(server_to_merge, errors_rx, output));
    Transport::new(server_input, server_output, socket).serve(service).await;
    // The server's output side is closed now; let the writer drain what is left.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), writer).await;
    if session.shutdown_requested.load(Ordering::Acquire) {
        0
    } else {
        1
    }
}
