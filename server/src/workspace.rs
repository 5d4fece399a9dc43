//! The core that every front end shares: open documents, recent chunks, settings, the engine and
//! the completion pipeline. The LSP handlers and the command line both call it; no LSP types here.

use std::collections::HashMap;
use std::path::PathBuf;

use parking_lot::{Mutex, RwLock};
use ropey::Rope;

use crate::completion::decide::Trigger;
use crate::completion::{Completer, Request, Suggestion};
use crate::config::Settings;
use crate::documents::{position, uri, Document, Encoding, LineCol, Snapshot, Store};
use crate::engine::{CancelToken, Engine, EngineError};
use crate::prompt::ring::{self, Ring};

/// Everything the server knows about the user's work.
pub struct Workspace {
    pub documents: Store,
    settings: RwLock<Settings>,
    engine: RwLock<Option<Engine>>,
    completer: Completer,
    /// Recently edited or viewed chunks of code, for cross-file context.
    ring: Mutex<Ring>,
    /// Where each document's last ring chunk was taken, so that typing does not add one per key.
    ring_lines: Mutex<HashMap<String, usize>>,
    /// The workspace folder.
    root: RwLock<Option<PathBuf>>,
    /// Where the user was last seen, and the pre-warming in progress.
    warmth: Mutex<Warmth>,
}

/// Pre-warming's state: where the next completion is expected, and which call may run.
#[derive(Default)]
struct Warmth {
    /// A document and a byte offset in it: the last edit's end, cursor or completion.
    spot: Option<(String, usize)>,
    /// Bumped by every newer event; a pre-warming call runs only if it holds the latest.
    generation: u64,
    /// The running pre-warming job's token.
    cancel: Option<CancelToken>,
    /// Pre-warming jobs finished, for tests and the status command.
    finished: u64,
}

/// Where a completion is asked for: a document, and a position in the client's encoding.
pub struct At<'a> {
    pub uri: &'a str,
    pub position: LineCol,
    pub encoding: Encoding,
}

/// Suggestions, and the snapshot whose byte offsets they use.
pub struct Completion {
    pub snapshot: Snapshot,
    pub suggestions: Vec<Suggestion>,
}

/// Why a completion could not be answered at all (no suggestion is not an error).
#[derive(Debug)]
pub enum CompleteError {
    /// The document is not open.
    UnknownDocument(String),
    /// The position is not in the document.
    BadPosition(String),
    /// The model failed.
    Failed(String),
}

impl std::fmt::Display for CompleteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CompleteError::UnknownDocument(uri) => write!(f, "document is not open: {uri}"),
            CompleteError::BadPosition(why) | CompleteError::Failed(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for CompleteError {}

impl Workspace {
    pub fn new(settings: Settings) -> Workspace {
        Workspace {
            documents: Store::default(),
            settings: RwLock::new(settings),
            engine: RwLock::new(None),
            completer: Completer::default(),
            ring: Mutex::new(Ring::default()),
            ring_lines: Mutex::new(HashMap::new()),
            root: RwLock::new(None),
            warmth: Mutex::new(Warmth::default()),
        }
    }

    pub fn settings(&self) -> Settings {
        self.settings.read().clone()
    }

    pub fn set_settings(&self, settings: Settings) {
        *self.settings.write() = settings;
    }

    pub fn engine(&self) -> Option<Engine> {
        self.engine.read().clone()
    }

    /// Installs (or, with `None`, removes) the engine; returns the one it replaces. Speculation
    /// for the old engine stops first.
    pub fn set_engine(&self, engine: Option<Engine>) -> Option<Engine> {
        self.completer.stop_speculating();
        std::mem::replace(&mut *self.engine.write(), engine)
    }

    pub fn root(&self) -> Option<PathBuf> {
        self.root.read().clone()
    }

    pub fn set_root(&self, root: Option<PathBuf>) {
        *self.root.write() = root;
    }

    /// Opens a document and remembers its start as a recent chunk.
    pub fn open(&self, document: Document) {
        self.remember(&document.uri, &document.text, 0);
        self.documents.open(document);
    }

    /// Closes a document and forgets what was kept for it.
    pub fn close(&self, uri: &str) -> Result<(), crate::documents::StoreError> {
        self.completer.forget(uri);
        {
            let mut warmth = self.warmth.lock();
            if warmth.spot.as_ref().is_some_and(|(spot, _)| spot == uri) {
                warmth.spot = None;
            }
        }
        self.ring_lines.lock().remove(uri);
        self.documents.close(uri)
    }

    /// Adds the code around `line` of a document to the recent chunks, unless the last chunk taken
    /// from that document was near that line already.
    pub fn remember(&self, uri: &str, text: &Rope, line: usize) {
        {
            let mut lines = self.ring_lines.lock();
            if lines.get(uri).is_some_and(|&last| last.abs_diff(line) < ring::CHUNK_LINES / 2) {
                return;
            }
            lines.insert(uri.to_owned(), line);
        }
        let path = uri::display_path(uri, self.root.read().as_deref());
        self.ring.lock().add(ring::Chunk::new(&path, &ring::chunk_around_rope(text, line)));
    }

    /// How many documents have a recent chunk remembered.
    pub fn remembered_documents(&self) -> usize {
        self.ring_lines.lock().len()
    }

    /// Stops any background work on suggestions (the client is gone, or the engine changes).
    pub fn stop_speculating(&self) {
        self.completer.stop_speculating();
    }

    /// Notes where in a document the user is (the end of an edit, the cursor); `only_if_elsewhere`
    /// keeps a spot already known in that document (a document opened again). Returns whether
    /// the spot moved.
    pub fn user_at(&self, uri: &str, cursor: usize, only_if_elsewhere: bool) -> bool {
        let mut warmth = self.warmth.lock();
        let same_document = warmth.spot.as_ref().is_some_and(|(spot, _)| spot == uri);
        let same_spot = warmth.spot.as_ref().is_some_and(|spot| spot.1 == cursor);
        if same_document && (only_if_elsewhere || same_spot) {
            return false;
        }
        warmth.spot = Some((uri.to_owned(), cursor));
        true
    }

    /// Where the user was last seen: a document and a byte offset in it.
    pub fn user_spot(&self) -> Option<(String, usize)> {
        self.warmth.lock().spot.clone()
    }

    /// Stops pre-warming, running or about to run; returns the generation that a pre-warming
    /// call scheduled now must hold (see [`Workspace::prewarm`]).
    pub fn interrupt_prewarm(&self) -> u64 {
        let mut warmth = self.warmth.lock();
        warmth.generation += 1;
        if let Some(cancel) = warmth.cancel.take() {
            cancel.cancel();
        }
        warmth.generation
    }

    /// Pre-warming jobs finished so far.
    pub fn prewarmed(&self) -> u64 {
        self.warmth.lock().finished
    }

    /// Reads, at idle priority, the prompt of a completion where the user was last seen, unless
    /// anything happened since `generation` was handed out (an edit, a cursor move, a request)
    /// or `completion.prewarm` is off. Local models only.
    pub async fn prewarm(&self, generation: u64) {
        let stale = || self.warmth.lock().generation != generation;
        let spot = self.warmth.lock().spot.clone();
        let Some((uri, cursor)) = spot.filter(|_| !stale()) else { return };
        let settings = self.settings();
        let Some(engine) = self.engine().filter(|engine| settings.prewarm && !engine.is_remote()) else { return };
        if !matches!(engine.state(), crate::engine::State::Ready { .. }) {
            return;
        }
        let Some(snapshot) = self.documents.parsed(&uri, stale).await else { return };
        if stale() || !snapshot.in_sync || !settings.completes(&snapshot.language_id) {
            return;
        }
        let cursor = snapshot.text.char_to_byte(snapshot.text.byte_to_char(cursor.min(snapshot.text.len_bytes())));
        let request = self.request(snapshot, cursor, Trigger::Invoked, false, false);
        let cancel = CancelToken::new();
        {
            let mut warmth = self.warmth.lock();
            if warmth.generation != generation {
                return;
            }
            warmth.cancel = Some(cancel.clone());
        }
        match self.completer.prewarm(&engine, &settings, &request, cancel).await {
            Ok(Some(stats)) => {
                self.warmth.lock().finished += 1;
                tracing::debug!(
                    "pre-warmed {uri} at {cursor}: {} prompt tokens, {} evaluated in {} ms",
                    stats.prompt_tokens,
                    stats.evaluated_tokens,
                    stats.prompt_ms
                );
            }
            Ok(None) => tracing::debug!("nothing to pre-warm at {cursor} of {uri}"),
            Err(err) => tracing::debug!("pre-warming {uri} stopped: {err}"),
        }
    }

    /// A completion request at `cursor` of `snapshot`, with the context the workspace holds.
    fn request(
        &self,
        snapshot: Snapshot,
        cursor: usize,
        trigger: Trigger,
        alternatives: bool,
        speculate: bool,
    ) -> Request {
        let around = ring::chunk_around_rope(&snapshot.text, snapshot.text.byte_to_line(cursor));
        Request {
            cursor,
            trigger,
            alternatives: alternatives && trigger == Trigger::Invoked,
            others: self.documents.all().into_iter().filter(|other| other.uri != snapshot.uri).collect(),
            chunks: self.ring.lock().relevant(&around),
            root: self.root(),
            snapshot,
            speculate,
        }
    }

    /// Suggestions at a position: waits for the document's parse (unless `unwanted` says the
    /// answer no longer matters), honours the settings, and runs the pipeline. `cancel` stops
    /// the model's work. `speculate`: after a shown suggestion, work out the next one in the
    /// background (interactive front ends).
    pub async fn complete(
        &self,
        at: At<'_>,
        trigger: Trigger,
        alternatives: bool,
        speculate: bool,
        cancel: CancelToken,
        unwanted: impl Fn() -> bool,
    ) -> Result<Completion, CompleteError> {
        let snapshot = self
            .documents
            .parsed(at.uri, &unwanted)
            .await
            .ok_or_else(|| CompleteError::UnknownDocument(at.uri.to_owned()))?;
        let cursor = position::byte_offset(&snapshot.text, at.position, at.encoding)
            .map_err(|err| CompleteError::BadPosition(err.to_string()))?;
        let nothing = |snapshot| Ok(Completion { snapshot, suggestions: Vec::new() });
        if !snapshot.in_sync {
            tracing::warn!("no completion for {}: its text differs from the editor's since an edit failed", at.uri);
            return nothing(snapshot);
        }
        let settings = self.settings();
        if !settings.completes(&snapshot.language_id) {
            return nothing(snapshot);
        }
        let Some(engine) = self.engine() else { return nothing(snapshot) };
        if unwanted() {
            tracing::debug!("completion for {} no longer wanted before it started", at.uri);
            return nothing(snapshot);
        }
        // The completion reads its own prompt: no pre-warming meanwhile, and later at this spot.
        self.interrupt_prewarm();
        let _ = self.user_at(at.uri, cursor, false);
        let request = self.request(snapshot.clone(), cursor, trigger, alternatives, speculate);
        let result = self.completer.suggest(&engine, &settings, &request, cancel.clone()).await;
        if cancel.is_cancelled() {
            return nothing(snapshot);
        }
        match result {
            Ok(suggestions) => Ok(Completion { snapshot, suggestions }),
            Err(EngineError::NotReady | EngineError::Cancelled | EngineError::Unavailable(_)) => nothing(snapshot),
            Err(err @ EngineError::Unsupported(_)) => {
                tracing::warn!("{err}");
                nothing(snapshot)
            }
            Err(err @ EngineError::Failed(_)) => Err(CompleteError::Failed(err.to_string())),
        }
    }

    /// What to explain for a range of an open document (positions in `encoding`): the request
    /// the explain pipeline takes.
    /// Waits for the parse of the text as it is now (what is explained is found in the tree).
    pub async fn explain_request(
        &self,
        uri: &str,
        start: LineCol,
        end: LineCol,
        encoding: Encoding,
    ) -> Result<crate::explain::Request, CompleteError> {
        let snapshot =
            self.documents.parsed(uri, || false).await.ok_or_else(|| CompleteError::UnknownDocument(uri.to_owned()))?;
        let offset = |at| {
            position::byte_offset(&snapshot.text, at, encoding)
                .map_err(|err| CompleteError::BadPosition(err.to_string()))
        };
        let (start, end) = (offset(start)?, offset(end)?);
        Ok(crate::explain::Request {
            others: self.documents.all().into_iter().filter(|other| other.uri != snapshot.uri).collect(),
            root: self.root(),
            snapshot,
            start,
            end,
        })
    }

    /// Explains a request with the loaded model (see [`crate::explain::explain`]).
    pub async fn explain(
        &self,
        request: &crate::explain::Request,
        on_text: impl Fn(&str) + Send + Sync + 'static,
        cancel: CancelToken,
    ) -> Result<crate::explain::Explanation, crate::explain::ExplainError> {
        let Some(engine) = self.engine() else {
            return Err(crate::explain::ExplainError::Loading);
        };
        crate::explain::explain(&engine, &self.settings(), request, on_text, cancel).await
    }

    /// Writes the documentation of the function at a request's start (see
    /// [`crate::explain::document`]).
    pub async fn document(
        &self,
        request: &crate::explain::Request,
        cancel: CancelToken,
    ) -> Result<crate::explain::Documentation, crate::explain::ExplainError> {
        let Some(engine) = self.engine() else {
            return Err(crate::explain::ExplainError::Loading);
        };
        crate::explain::document(&engine, &self.settings(), request, cancel).await
    }

    /// Reviews parts of a request's document (see [`crate::review::review`]).
    pub async fn review(
        &self,
        request: &crate::explain::Request,
        parts: &[crate::review::Part],
        cancel: CancelToken,
    ) -> Result<(Vec<crate::postprocess::findings::Finding>, crate::review::ReviewStats), crate::explain::ExplainError>
    {
        let Some(engine) = self.engine() else {
            return Err(crate::explain::ExplainError::Loading);
        };
        crate::review::review(&engine, &self.settings(), request, parts, cancel).await
    }
}
