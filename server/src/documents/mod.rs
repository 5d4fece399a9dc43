//! The open buffers: text as a rope, version, language, and an incrementally updated syntax tree.
//!
//! Invariant: a document's tree, when present, always describes its current text. Edits are applied
//! in the order the editor sent them (see `lsp::ordered`), and slow work reads a [`Snapshot`], never
//! the live document, so nothing slow ever holds the store's lock.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use ropey::Rope;
use tokio::sync::watch;
use tree_sitter::{InputEdit, Tree};

use crate::syntax::{self, Language};

mod parsing;
pub mod position;
pub mod uri;

pub use position::{Encoding, LineCol, LineOutOfRange};

/// One edit of a document: replace `range` (or the whole text when `None`) by `text`.
#[derive(Clone, Debug)]
pub struct Change {
    pub range: Option<(LineCol, LineCol)>,
    pub text: String,
}

/// An open buffer.
#[derive(Clone, Debug)]
pub struct Document {
    pub uri: String,
    pub language_id: String,
    pub version: i32,
    pub text: Rope,
    pub language: Option<Language>,
    /// The syntax tree. In a [`Snapshot`] it always describes `text`; in the store it may be the
    /// last parse edited to match the edits since (a base for the next incremental parse).
    pub tree: Option<Tree>,
    /// Whether `tree` describes `text` (or the text is not to be parsed at all).
    parsed: bool,
    /// Whether the text is the editor's: false once an edit could not be applied, until the
    /// editor sends the whole text again.
    pub in_sync: bool,
}

/// What applying one `didChange` did to a document.
#[derive(Debug, Default)]
pub struct Applied {
    /// Ranges that had to be clamped because they lay past the end of the text.
    pub clamped: usize,
    /// The edits made to the tree, for replaying them on a tree parsed before them.
    edits: Vec<InputEdit>,
    /// The whole text was replaced: no earlier tree is a base for parsing any more.
    replaced: bool,
}

impl Document {
    /// A document, parsed at once (for the command line and tests).
    pub fn new(uri: &str, language_id: &str, version: i32, text: &str) -> Document {
        let mut document = Document::unparsed(uri, language_id, version, text);
        document.reparse();
        document
    }

    /// A document whose parse is left for later ([`Store::parse_soon`]).
    pub fn unparsed(uri: &str, language_id: &str, version: i32, text: &str) -> Document {
        let text = Rope::from_str(text);
        let language = Language::detect(language_id, uri);
        let parsed = !needs_parse(language, &text);
        Document {
            uri: uri.to_owned(),
            language_id: language_id.to_owned(),
            version,
            text,
            language,
            tree: None,
            parsed,
            in_sync: true,
        }
    }

    /// Applies one change and edits the tree to match, without re-parsing.
    fn apply_change(&mut self, change: &Change, encoding: Encoding, applied: &mut Applied) {
        let Some((start, end)) = change.range else {
            self.text = Rope::from_str(&change.text);
            self.tree = None;
            self.text_changed();
            self.in_sync = true;
            applied.edits.clear();
            applied.replaced = true;
            return;
        };
        let start_result = position::byte_offset(&self.text, start, encoding);
        let end_result = position::byte_offset(&self.text, end, encoding);
        if start_result.is_err() || end_result.is_err() {
            applied.clamped += 1;
        }
        let len = self.text.len_bytes();
        let start = start_result.unwrap_or(len);
        let end = end_result.unwrap_or(len);
        // A reversed range is treated as the range between the two positions.
        applied.edits.push(self.replace(start.min(end), start.max(end), &change.text));
    }

    /// Replaces bytes `start..end` and edits the tree to match, without re-parsing yet.
    fn replace(&mut self, start: usize, end: usize, text: &str) -> InputEdit {
        let before = self.text.clone();
        let start_char = self.text.byte_to_char(start);
        let end_char = self.text.byte_to_char(end);
        self.text.remove(start_char..end_char);
        self.text.insert(start_char, text);
        let edit = syntax::edit_for(&before, &self.text, start, end, text.len());
        if let Some(tree) = &mut self.tree {
            tree.edit(&edit);
        }
        self.text_changed();
        edit
    }

    /// After the text changed: the tree needs a parse, or is dropped if the text is not parsed.
    fn text_changed(&mut self) {
        self.parsed = !needs_parse(self.language, &self.text);
        if self.parsed {
            self.tree = None;
        }
    }

    /// A copy with bytes `start..end` replaced by `text` (on char boundaries), re-parsed: the
    /// document as it would be after an edit the editor has not made yet.
    pub fn edited(&self, start: usize, end: usize, text: &str) -> Document {
        let mut copy = self.clone();
        if !copy.parsed {
            copy.tree = None;
        }
        copy.replace(start, end, text);
        copy.reparse();
        copy
    }

    /// Applies the changes of one `didChange` in order, without re-parsing (cheap: this runs on
    /// the message loop); the tree is left as a base for the next incremental parse.
    pub fn apply_edits(&mut self, version: i32, changes: &[Change], encoding: Encoding) -> Applied {
        let mut applied = Applied::default();
        for change in changes {
            self.apply_change(change, encoding, &mut applied);
        }
        self.version = version;
        applied
    }

    /// Applies the changes of one `didChange` in order, then re-parses at once.
    ///
    /// Returns how many ranges had to be clamped.
    pub fn apply(&mut self, version: i32, changes: &[Change], encoding: Encoding) -> usize {
        let applied = self.apply_edits(version, changes, encoding);
        self.reparse();
        applied.clamped
    }

    fn reparse(&mut self) {
        self.tree = match self.language {
            Some(language) => syntax::parse(language, &self.text, self.tree.as_ref()),
            None => None,
        };
        self.parsed = true;
    }

    /// Whether the tree describes the text (always true for text that is not parsed).
    pub fn is_parsed(&self) -> bool {
        self.parsed
    }

    /// A cheap, immutable copy for slow work. Its tree, if any, describes its text: a document
    /// still waiting for its parse gives a snapshot without a tree ([`Store::parsed`] waits).
    pub fn snapshot(&self) -> Snapshot {
        let mut copy = self.clone();
        if !copy.parsed {
            copy.tree = None;
        }
        Arc::new(copy)
    }
}

/// Whether a text in this language is parsed at all (buffers over the size limit are text only).
fn needs_parse(language: Option<Language>, text: &Rope) -> bool {
    language.is_some() && text.len_bytes() <= syntax::MAX_PARSE_BYTES
}

/// A frozen view of a document. Ropes and trees share structure, so this is cheap to take.
pub type Snapshot = Arc<Document>;

/// Why an edit could not be applied.
#[derive(Debug, PartialEq, Eq)]
pub enum StoreError {
    UnknownDocument(String),
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::UnknownDocument(uri) => write!(f, "document is not open: {uri}"),
        }
    }
}

impl std::error::Error for StoreError {}

/// A parse to run off the message loop: a document's text at one generation, and the tree to
/// reuse.
pub struct ParseJob {
    uri: String,
    generation: u64,
    version: i32,
    language: Language,
    text: Rope,
    old: Option<Tree>,
}

impl ParseJob {
    fn run(&self) -> Option<Tree> {
        syntax::parse(self.language, &self.text, self.old.as_ref())
    }
}

/// A document in the store, with what its background parse needs.
struct Slot {
    document: Document,
    /// Counts the `didChange`s applied.
    generation: u64,
    /// Tree edits made after the running parse's text was taken, to replay on its result.
    edits: Vec<(u64, InputEdit)>,
    /// The generation of the last whole-text replacement: older parses are of no use.
    replaced_at: u64,
    /// The last parse with the text it describes, and that text's generation: a request that
    /// arrived before that generation takes it rather than chase newer edits.
    last_parsed: Option<(u64, Snapshot)>,
    parsing: bool,
}

impl Slot {
    fn job(&mut self) -> Option<ParseJob> {
        if self.document.parsed || self.parsing {
            return None;
        }
        let language = self.document.language?;
        self.parsing = true;
        self.edits.clear();
        Some(ParseJob {
            uri: self.document.uri.clone(),
            generation: self.generation,
            version: self.document.version,
            language,
            text: self.document.text.clone(),
            old: self.document.tree.clone(),
        })
    }
}

/// All open documents, shared between the message loop and the handlers.
///
/// Edits are applied at once (text and tree edits, cheap); parsing runs on one thread of its own
/// ([`parsing`]), one parse per document at a time, and a parse finished after more edits arrived is
/// brought up to date with those edits and parsed again incrementally.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Mutex<HashMap<String, Slot>>>,
    /// Bumped whenever a parse finishes, for [`Store::parsed`] to wait on.
    parses: Arc<watch::Sender<u64>>,
    /// Runs parse work; `None`: the parse thread, or inline outside a runtime.
    runner: Option<Runner>,
}

/// Runs a piece of parse work somewhere (tests hold it back to run it when they choose).
pub type Runner = Arc<dyn Fn(Box<dyn FnOnce() + Send>) + Send + Sync>;

impl Default for Store {
    fn default() -> Store {
        Store { inner: Arc::default(), parses: Arc::new(watch::channel(0).0), runner: None }
    }
}

impl Store {
    /// A store whose parses are run by `runner`.
    pub fn with_runner(runner: Runner) -> Store {
        Store { runner: Some(runner), ..Store::default() }
    }

    /// Stores a document; starts its parse if it needs one.
    pub fn open(&self, document: Document) {
        let uri = document.uri.clone();
        let slot =
            Slot { document, generation: 0, edits: Vec::new(), replaced_at: 0, last_parsed: None, parsing: false };
        self.inner.lock().insert(uri.clone(), slot);
        self.parse_soon(&uri);
    }

    /// Applies changes to an open document and starts its parse; returns how many ranges were
    /// clamped.
    pub fn change(&self, uri: &str, version: i32, changes: &[Change], encoding: Encoding) -> Result<usize, StoreError> {
        let clamped = {
            let mut documents = self.inner.lock();
            let slot = documents.get_mut(uri).ok_or_else(|| StoreError::UnknownDocument(uri.to_owned()))?;
            let applied = slot.document.apply_edits(version, changes, encoding);
            slot.generation += 1;
            if applied.replaced {
                slot.replaced_at = slot.generation;
                slot.edits.clear();
            }
            if slot.parsing {
                let generation = slot.generation;
                slot.edits.extend(applied.edits.into_iter().map(|edit| (generation, edit)));
            }
            applied.clamped
        };
        self.parse_soon(uri);
        Ok(clamped)
    }

    /// Marks a document as differing from the editor's copy (an edit could not be applied).
    pub fn mark_out_of_sync(&self, uri: &str) {
        if let Some(slot) = self.inner.lock().get_mut(uri) {
            slot.document.in_sync = false;
        }
    }

    pub fn close(&self, uri: &str) -> Result<(), StoreError> {
        match self.inner.lock().remove(uri) {
            Some(_) => Ok(()),
            None => Err(StoreError::UnknownDocument(uri.to_owned())),
        }
    }

    /// The document as it is now; without a tree while its parse is pending.
    pub fn snapshot(&self, uri: &str) -> Option<Snapshot> {
        self.inner.lock().get(uri).map(|slot| slot.document.snapshot())
    }

    /// The document with a tree that describes its text, as new as when this was called or
    /// newer: waits for the parse of that text, never for edits made after the call. Gives up
    /// waiting when `unwanted` says so, with a snapshot that has no tree. `None` when the
    /// document is not open (or was closed meanwhile).
    pub async fn parsed(&self, uri: &str, unwanted: impl Fn() -> bool) -> Option<Snapshot> {
        let mut parses = self.parses.subscribe();
        let wanted = self.inner.lock().get(uri)?.generation;
        loop {
            {
                let documents = self.inner.lock();
                let slot = documents.get(uri)?;
                if slot.document.parsed {
                    return Some(slot.document.snapshot());
                }
                if let Some((generation, snapshot)) = &slot.last_parsed {
                    if *generation >= wanted {
                        return Some(snapshot.clone());
                    }
                }
                if unwanted() {
                    return Some(slot.document.snapshot());
                }
            }
            self.parse_soon(uri);
            if parses.changed().await.is_err() {
                return self.snapshot(uri);
            }
        }
    }

    /// Whether the document is open.
    pub fn contains(&self, uri: &str) -> bool {
        self.inner.lock().contains_key(uri)
    }

    /// Snapshots of every open document, for cross-file context (never waits for a parse).
    pub fn all(&self) -> Vec<Snapshot> {
        self.inner.lock().values().map(|slot| slot.document.snapshot()).collect()
    }

    pub fn len(&self) -> usize {
        self.inner.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Starts parsing a document that needs it on the parse thread (inline when there is no
    /// runtime, as on the command line and in unit tests), unless a parse of it is running already.
    pub fn parse_soon(&self, uri: &str) {
        let Some(job) = self.inner.lock().get_mut(uri).and_then(Slot::job) else { return };
        let store = self.clone();
        let work = move || {
            let tree = job.run();
            let uri = job.uri.clone();
            store.install(job, tree);
            // Edits that came meanwhile: parse again, incrementally, as a new piece of work.
            store.parse_soon(&uri);
        };
        match (&self.runner, tokio::runtime::Handle::try_current()) {
            (Some(runner), _) => runner(Box::new(work)),
            (None, Ok(_)) => parsing::run_later(Box::new(work)),
            (None, Err(_)) => work(),
        }
    }

    /// Installs a finished parse, replaying the edits made since its text was taken.
    fn install(&self, job: ParseJob, tree: Option<Tree>) {
        {
            let mut documents = self.inner.lock();
            let Some(slot) = documents.get_mut(&job.uri) else { return };
            slot.parsing = false;
            if job.generation >= slot.replaced_at {
                let parsed = Document {
                    text: job.text,
                    version: job.version,
                    tree: tree.clone(),
                    parsed: true,
                    ..slot.document.clone()
                };
                slot.last_parsed = Some((job.generation, Arc::new(parsed)));
                let mut tree = tree;
                if let Some(tree) = &mut tree {
                    for (_, edit) in slot.edits.iter().filter(|(generation, _)| *generation > job.generation) {
                        tree.edit(edit);
                    }
                }
                slot.document.tree = tree;
                slot.document.parsed = slot.generation == job.generation;
            }
            slot.edits.clear();
        }
        self.parses.send_modify(|count| *count += 1);
    }
}

#[cfg(test)]
mod tests;
