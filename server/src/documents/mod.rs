//! The open buffers: text as a rope, version, language, and an incrementally updated syntax tree.
//!
//! Invariant: a document's tree, when present, always describes its current text. Edits are applied
//! in the order the editor sent them (see `lsp::ordered`), and slow work reads a [`Snapshot`], never
//! the live document, so nothing slow ever holds the store's lock.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use ropey::Rope;
use tree_sitter::Tree;

use crate::syntax::{self, Language};

pub mod position;

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
    pub tree: Option<Tree>,
}

impl Document {
    pub fn new(uri: &str, language_id: &str, version: i32, text: &str) -> Document {
        let text = Rope::from_str(text);
        let language = Language::detect(language_id, uri);
        let tree = language.and_then(|language| syntax::parse(language, &text, None));
        Document { uri: uri.to_owned(), language_id: language_id.to_owned(), version, text, language, tree }
    }

    /// Applies one change and updates the tree incrementally, without re-parsing yet.
    ///
    /// Returns `true` when the range had to be clamped because it lay past the end of the text.
    fn apply_change(&mut self, change: &Change, encoding: Encoding) -> bool {
        let Some((start, end)) = change.range else {
            self.text = Rope::from_str(&change.text);
            self.tree = None;
            return false;
        };
        let start_result = position::byte_offset(&self.text, start, encoding);
        let end_result = position::byte_offset(&self.text, end, encoding);
        let clamped = start_result.is_err() || end_result.is_err();
        let len = self.text.len_bytes();
        let start = start_result.unwrap_or(len);
        let end = end_result.unwrap_or(len);
        // A reversed range is treated as the range between the two positions.
        self.replace(start.min(end), start.max(end), &change.text);
        clamped
    }

    /// Replaces bytes `start..end` and edits the tree to match, without re-parsing yet.
    fn replace(&mut self, start: usize, end: usize, text: &str) {
        let before = self.text.clone();
        let start_char = self.text.byte_to_char(start);
        let end_char = self.text.byte_to_char(end);
        self.text.remove(start_char..end_char);
        self.text.insert(start_char, text);
        if let Some(tree) = &mut self.tree {
            tree.edit(&syntax::edit_for(&before, &self.text, start, end, text.len()));
        }
    }

    /// A copy with bytes `start..end` replaced by `text` (on char boundaries), re-parsed: the
    /// document as it would be after an edit the editor has not made yet.
    pub fn edited(&self, start: usize, end: usize, text: &str) -> Document {
        let mut copy = self.clone();
        copy.replace(start, end, text);
        copy.reparse();
        copy
    }

    /// Applies the changes of one `didChange` in order, then re-parses once.
    ///
    /// Returns how many ranges had to be clamped.
    pub fn apply(&mut self, version: i32, changes: &[Change], encoding: Encoding) -> usize {
        let clamped = changes.iter().filter(|change| self.apply_change(change, encoding)).count();
        self.version = version;
        self.reparse();
        clamped
    }

    fn reparse(&mut self) {
        self.tree = match self.language {
            Some(language) => syntax::parse(language, &self.text, self.tree.as_ref()),
            None => None,
        };
    }

    /// A cheap, immutable copy for slow work.
    pub fn snapshot(&self) -> Snapshot {
        Arc::new(self.clone())
    }
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

/// All open documents, shared between the message loop and the handlers.
#[derive(Clone, Default)]
pub struct Store {
    inner: Arc<Mutex<HashMap<String, Document>>>,
}

impl Store {
    pub fn open(&self, document: Document) {
        self.inner.lock().insert(document.uri.clone(), document);
    }

    /// Applies changes to an open document; returns how many ranges were clamped.
    pub fn change(&self, uri: &str, version: i32, changes: &[Change], encoding: Encoding) -> Result<usize, StoreError> {
        let mut documents = self.inner.lock();
        let document = documents.get_mut(uri).ok_or_else(|| StoreError::UnknownDocument(uri.to_owned()))?;
        Ok(document.apply(version, changes, encoding))
    }

    pub fn close(&self, uri: &str) -> Result<(), StoreError> {
        match self.inner.lock().remove(uri) {
            Some(_) => Ok(()),
            None => Err(StoreError::UnknownDocument(uri.to_owned())),
        }
    }

    pub fn snapshot(&self, uri: &str) -> Option<Snapshot> {
        self.inner.lock().get(uri).map(Document::snapshot)
    }

    /// Snapshots of every open document, for cross-file context.
    pub fn all(&self) -> Vec<Snapshot> {
        self.inner.lock().values().map(Document::snapshot).collect()
    }

    pub fn len(&self) -> usize {
        self.inner.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests;
