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
mod cursor;
mod did_change;
mod did_change_configuration;
mod did_close;
mod did_open;
mod did_save;
mod document;
mod execute_command;
mod explain;
mod initialize;
mod initialized;
mod inline_completion;
mod journal;
mod ordered;
mod prewarm;
mod progress;
mod review;
mod server;
mod session;
mod shutdown;
mod thread_time;
mod transport;

pub use session::Session;

/// Requests tower-lsp runs at once. Long ones (completions) are detached and do not count.
const CONCURRENCY: usize = 16;

/// Serves LSP over `input`/`output` until `exit`. Returns the process exit code: 0 after
/// `shutdown` then `exit`, 1 otherwise.
pub async fn serve<R, W>(input: R, output: W, session: Arc<Session>) -> i32
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (service, socket) = LspService::build(|client| {
        let _ = session.lsp_client.set(client.clone());
        server::Server::new(client, session.clone())
    })
    .finish();
    // Answers that do not come through tower-lsp: the guard's errors, detached requests.
    let (answers_tx, answers_rx) = tokio::sync::mpsc::unbounded_channel();
    let service = ordered::Ordered::new(service, session.clone(), answers_tx.clone());
    let (guard_to_server, server_input) = tokio::io::duplex(1 << 20);
    let (server_output, server_to_merge) = tokio::io::duplex(1 << 20);
    let on_end = session.clone();
    tokio::spawn(async move {
        transport::guard_input(input, guard_to_server, answers_tx).await;
        // The client is gone or said `exit`: whatever still runs is for nobody.
        on_end.cancel_everything();
    });
    let writer = tokio::spawn(transport::merge_output(server_to_merge, answers_rx, output));
    Transport::new(server_input, server_output, socket).concurrency_level(CONCURRENCY).serve(service).await;
    // The server's output side is closed now; let the writer drain what is left.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), writer).await;
    if session.shutdown_requested.load(Ordering::Acquire) {
        0
    } else {
        1
    }
}
