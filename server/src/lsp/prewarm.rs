//! Pre-warming while the user reads: after a document is opened, the cursor moves
//! (`mistral-lsp/cursor`), typing pauses, a file is saved or the model becomes ready, the prompt
//! of the next completion is read at idle priority (`Workspace::prewarm`). Every newer event and
//! every completion request supersedes the one before.

use std::sync::Arc;
use std::time::Duration;

use super::session::Session;

/// How long the user must leave things be before pre-warming starts: typing goes on meanwhile,
/// and its own completion requests read their prompts themselves.
pub const PAUSE: Duration = Duration::from_millis(500);

/// Pre-warms where the user was last seen once [`PAUSE`] has passed with nothing newer.
pub fn schedule(session: &Arc<Session>) {
    let generation = session.workspace.interrupt_prewarm();
    let session = session.clone();
    tokio::spawn(async move {
        tokio::time::sleep(PAUSE).await;
        session.workspace.prewarm(generation).await;
    });
}
