//! A tower `Service` wrapped around tower-lsp's, which sees every message in wire order.
//!
//! tower-lsp runs handlers concurrently, so a later message can overtake an earlier one. This
//! layer's `call` runs synchronously, in the order messages arrive, before any handler. It
//! applies document edits right there, so every request sees every edit sent before it, and it
//! hands completion requests a [`Ticket`] so that a newer request supersedes an older one.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use tower_lsp_server::jsonrpc::{Request, Response};
use tower_lsp_server::ExitedError;

use super::session::{Session, Ticket};
use super::thread_time;
use super::{cursor, did_change, did_change_configuration, did_close, did_open, prewarm};

/// A message that holds the loop this long is logged: edits should take well under a millisecond.
const SLOW: Duration = Duration::from_millis(50);

tokio::task_local! {
    static TICKET: Ticket;
}

/// The ticket of the completion request being handled, if any.
pub fn current_ticket() -> Option<Ticket> {
    TICKET.try_with(Clone::clone).ok()
}

type BoxFuture = Pin<Box<dyn Future<Output = Result<Option<Response>, ExitedError>> + Send>>;

pub struct Ordered<S> {
    inner: S,
    session: Arc<Session>,
    /// Where answers of detached requests go: merged into stdout by the transport.
    answers: mpsc::UnboundedSender<Vec<u8>>,
}

impl<S> Ordered<S> {
    pub fn new(inner: S, session: Arc<Session>, answers: mpsc::UnboundedSender<Vec<u8>>) -> Self {
        Ordered { inner, session, answers }
    }
}

impl<S> tower::Service<Request> for Ordered<S>
where
    S: tower::Service<Request, Response = Option<Response>, Error = ExitedError>,
    S::Future: Send + 'static,
{
    type Response = Option<Response>;
    type Error = ExitedError;
    type Future = BoxFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let started = Instant::now();
        let cpu_started = thread_time::now();
        let method = request.method().to_owned();
        let future = self.dispatch(request);
        let elapsed = started.elapsed();
        let cpu = thread_time::now().saturating_sub(cpu_started);
        let micros = |time: Duration| u64::try_from(time.as_micros()).unwrap_or(u64::MAX);
        self.session.longest_stall_us.fetch_max(micros(elapsed), Ordering::Relaxed);
        self.session.longest_stall_cpu_us.fetch_max(micros(cpu), Ordering::Relaxed);
        if elapsed >= SLOW {
            let ms = |time: Duration| time.as_secs_f64() * 1000.0;
            tracing::warn!("{method} held the message loop for {:.1} ms ({:.1} ms on a core)", ms(elapsed), ms(cpu));
        }
        future
    }
}

impl<S> Ordered<S>
where
    S: tower::Service<Request, Response = Option<Response>, Error = ExitedError>,
    S::Future: Send + 'static,
{
    /// The synchronous part of handling one message, in wire order.
    fn dispatch(&mut self, request: Request) -> BoxFuture {
        let session = &self.session;
        let is_notification = request.id().is_none();
        let sync: Option<fn(&Session, Option<&serde_json::Value>)> = match request.method() {
            "textDocument/didOpen" if is_notification => Some(did_open::apply),
            "textDocument/didChange" if is_notification => Some(did_change::apply),
            "textDocument/didClose" if is_notification => Some(did_close::apply),
            _ => None,
        };
        if let Some(apply) = sync {
            apply(session, request.params());
            prewarm::schedule(session);
            return Box::pin(std::future::ready(Ok(None)));
        }
        if request.method() == cursor::METHOD && is_notification {
            if cursor::apply(session, request.params()) {
                prewarm::schedule(session);
            }
            return Box::pin(std::future::ready(Ok(None)));
        }
        match request.method() {
            // Applied here and then handed on: the handler does the slow part.
            "workspace/didChangeConfiguration" => did_change_configuration::apply(session, request.params()),
            // Documents are accepted from the moment `initialize` arrives: well-behaved clients
            // wait for its answer anyway, and `initialized` may race them through tower-lsp.
            "initialize" => session.initialized.store(true, Ordering::Release),
            // tower-lsp refuses `shutdown` before `initialize`; the exit code must say so.
            "shutdown" if session.is_initialized() => session.shutdown_requested.store(true, Ordering::Release),
            "textDocument/inlineCompletion" | "textDocument/completion" => {
                // Tickets only for open documents: others are answered at once, and leave nothing.
                if let Some(uri) =
                    document_uri(request.params()).filter(|uri| session.workspace.documents.contains(uri))
                {
                    let ticket = session.tickets.issue(&uri);
                    let future = TICKET.scope(ticket, self.inner.call(request));
                    return self.detach(future);
                }
            }
            // An explanation or a doc comment takes seconds or minutes: it must not hold a slot
            // either.
            "codeAction/resolve" => {
                let future = self.inner.call(request);
                return self.detach(future);
            }
            "workspace/executeCommand"
                if matches!(
                    request.params().and_then(|p| p.get("command")).and_then(|c| c.as_str()),
                    Some(super::explain::COMMAND | super::document::COMMAND)
                ) =>
            {
                let future = self.inner.call(request);
                return self.detach(future);
            }
            _ => {}
        }
        Box::pin(self.inner.call(request))
    }
}

impl<S> Ordered<S> {
    /// Runs a long request's future as its own task and answers it through the side channel,
    /// so that it does not hold one of tower-lsp's few concurrent slots (when they are all taken,
    /// tower-lsp stops reading input, edits included). `$/cancelRequest` still reaches it: tower-lsp
    /// registered the request as pending when `call` made the future.
    fn detach<F>(&self, future: F) -> BoxFuture
    where
        F: Future<Output = Result<Option<Response>, ExitedError>> + Send + 'static,
    {
        let answers = self.answers.clone();
        tokio::spawn(async move {
            if let Ok(Some(response)) = future.await {
                match serde_json::to_vec(&response) {
                    Ok(body) => {
                        let _ = answers.send(body);
                    }
                    Err(err) => tracing::error!("cannot serialize a response: {err}"),
                }
            }
        });
        Box::pin(std::future::ready(Ok(None)))
    }
}

fn document_uri(params: Option<&serde_json::Value>) -> Option<String> {
    params?.get("textDocument")?.get("uri")?.as_str().map(str::to_owned)
}
