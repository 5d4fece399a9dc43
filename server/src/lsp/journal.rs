//! Edits of documents made while reviews of them run, so that a review that ends after edits
//! moves its findings through them (as stored findings move) instead of being discarded.

use super::session::Session;
use crate::documents::Change;
use crate::postprocess::findings::{follow_edit, follow_edit_lines, Finding};

/// The edits of a document made while reviews of it run, in order, with the version each one
/// made; kept while at least one review of it runs.
#[derive(Default)]
pub struct Journal {
    readers: usize,
    edits: Vec<(i32, Change)>,
}

/// A running review's hold on its document's [`Journal`]; the last one to go drops it.
pub(super) struct Reading<'a> {
    session: &'a Session,
    uri: String,
}

impl<'a> Reading<'a> {
    pub(super) fn open(session: &'a Session, uri: &str) -> Reading<'a> {
        session.review_journals.lock().entry(uri.to_owned()).or_default().readers += 1;
        Reading { session, uri: uri.to_owned() }
    }

    /// Moves `found` and the `reviewed` line ranges of a review of version `seen` through the
    /// edits since, up to version `now`: false when that cannot be done (the text was replaced
    /// whole, the document closed, or an edit is missing).
    pub(super) fn bring_up_to(
        &self,
        seen: i32,
        now: Option<i32>,
        found: &mut Vec<Finding>,
        reviewed: &mut Vec<(usize, usize)>,
    ) -> bool {
        let journals = self.session.review_journals.lock();
        let Some(journal) = journals.get(&self.uri) else { return false };
        let since: Vec<&(i32, Change)> = journal.edits.iter().filter(|(version, _)| *version > seen).collect();
        if now != Some(since.last().map_or(seen, |(version, _)| *version)) {
            return false;
        }
        for (_, change) in since {
            let Some((start, end)) = change.range else { return false };
            let (start, end) = ((start.line as usize, start.column as usize), (end.line as usize, end.column as usize));
            follow_edit(found, start, end, &change.text);
            // A reviewed part that was edited keeps its earlier findings (moved with the edits).
            reviewed.retain_mut(|lines| match follow_edit_lines(*lines, start, end, &change.text) {
                Some(moved) => {
                    *lines = moved;
                    true
                }
                None => false,
            });
        }
        true
    }
}

impl Drop for Reading<'_> {
    fn drop(&mut self) {
        let mut journals = self.session.review_journals.lock();
        if let Some(journal) = journals.get_mut(&self.uri) {
            journal.readers -= 1;
            if journal.readers == 0 {
                journals.remove(&self.uri);
            }
        }
    }
}

/// Logs `changes`, which made `version`, for the reviews of `uri` that run.
pub(super) fn record(session: &Session, uri: &str, version: i32, changes: &[Change]) {
    if let Some(journal) = session.review_journals.lock().get_mut(uri) {
        journal.edits.extend(changes.iter().map(|change| (version, change.clone())));
    }
}
