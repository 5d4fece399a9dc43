//! `workspace/executeCommand mistral-lsp.review {uri, range?}`: reviews the range (the
//! selection, or the function around an empty range) or, without one, the whole document, and
//! publishes the findings as diagnostics (source `mistral-lsp`, the category as code). Findings
//! follow edits (see `follow_changes`), also those made while the review runs (see `journal`),
//! and carry quick fixes (see `quick_fixes`). `$/cancelRequest` stops the job.

use std::sync::Arc;

use serde::Deserialize;
use serde_json::{json, Value};
use tower_lsp_server::gen_lsp_types::{Diagnostic, LspAny, Range, Uri};
use tower_lsp_server::jsonrpc::{Error, ErrorCode, Result};

use super::convert;
use super::explain::{begin_progress, failed, CancelOnDrop};
use super::journal::Reading;
use super::server::Server;
use super::session::Session;
use crate::documents::{Change, LineCol, Snapshot};
use crate::engine::CancelToken;
use crate::postprocess::findings::{dedup, follow_edit, Category, Finding, Severity};
use crate::review::{file_parts, part_at};

pub const COMMAND: &str = "mistral-lsp.review";

/// The source of our diagnostics.
pub const SOURCE: &str = "mistral-lsp";

#[derive(Deserialize)]
struct Arguments {
    uri: Uri,
    range: Option<Range>,
}

pub async fn handle(server: &Server, arguments: &[LspAny]) -> Result<Option<LspAny>> {
    let session = &server.session;
    let Some(Ok(Arguments { uri, range })) = arguments.first().map(|a| serde_json::from_value(a.clone())) else {
        return Err(Error::invalid_params(format!("{COMMAND} takes one argument: {{\"uri\": …, \"range\"?: …}}")));
    };
    if let Some(message) = session.model_error.lock().clone() {
        return Err(failed(&crate::explain::ExplainError::Unavailable(message)));
    }
    let encoding = session.encoding();
    // Before the snapshot: every edit after it is logged.
    let journal = Reading::open(session, uri.as_ref());
    let (start, end) = match range {
        Some(range) => (convert::line_col(range.start), convert::line_col(range.end)),
        None => (LineCol { line: 0, column: 0 }, LineCol { line: 0, column: 0 }),
    };
    let request = session
        .workspace
        .explain_request(uri.as_ref(), start, end, encoding)
        .await
        .map_err(|err| Error::invalid_params(err.to_string()))?;
    let parts = match range {
        Some(_) => vec![part_at(&request).map_err(|err| Error::invalid_params(err.to_string()))?],
        None => file_parts(&request),
    };
    let cancel = CancelToken::new();
    let _guard = CancelOnDrop(cancel.clone());
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let id = format!("review-{}", NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    let progress = begin_progress(server, &id, "mistral-lsp: reviewing").await;
    let result = run(session, &request, &parts, &journal, cancel).await;
    if let Some(progress) = progress {
        progress.finish_with_message(if result.is_ok() { "done" } else { "stopped" }).await;
    }
    let count = result?;
    Ok(Some(json!({ "uri": uri, "findings": count })))
}

/// How long after a save its review starts, if no other save came meanwhile.
const SAVE_QUIET: std::time::Duration = std::time::Duration::from_secs(1);

/// `review.onSave`: reviews the saved document once saves pause; a newer save of it cancels the
/// older review, waiting or running.
pub fn on_save(session: &Arc<Session>, uri: &str) {
    if !session.settings().review_on_save {
        return;
    }
    let cancel = CancelToken::new();
    if let Some(older) = session.save_reviews.lock().insert(uri.to_owned(), cancel.clone()) {
        older.cancel();
    }
    let (session, uri) = (session.clone(), uri.to_owned());
    tokio::spawn(async move {
        tokio::time::sleep(SAVE_QUIET).await;
        if cancel.is_cancelled() {
            return;
        }
        let zero = LineCol { line: 0, column: 0 };
        let journal = Reading::open(&session, &uri);
        let result = match session.workspace.explain_request(&uri, zero, zero, session.encoding()).await {
            Ok(request) => run(&session, &request, &file_parts(&request), &journal, cancel.clone()).await,
            Err(err) => Err(Error::invalid_params(err.to_string())),
        };
        match result {
            Ok(count) => tracing::info!("review on save of {uri}: {count} findings"),
            Err(err) => tracing::info!("review on save of {uri} stopped: {}", err.message),
        }
        let mut waiting = session.save_reviews.lock();
        if waiting.get(&uri).is_some_and(|current| current.same_as(&cancel)) {
            waiting.remove(&uri);
        }
    });
}

/// Reviews `parts` of the request's document and publishes the findings (replacing the earlier
/// findings on the reviewed lines); the number of findings. Edits made meanwhile (`journal`,
/// opened before the request's snapshot) move the findings as they move stored ones: a finding
/// on an edited line goes.
async fn run(
    session: &Session,
    request: &crate::explain::Request,
    parts: &[crate::review::Part],
    journal: &Reading<'_>,
    cancel: CancelToken,
) -> Result<usize> {
    let uri = request.snapshot.uri.as_str();
    let (mut found, stats) = session.workspace.review(request, parts, cancel).await.map_err(|err| failed(&err))?;
    tracing::info!("review of {uri}: {stats:?}");
    let mut reviewed: Vec<(usize, usize)> = parts.iter().map(|p| p.target.lines).collect();
    let count = {
        let mut all = session.findings.lock();
        // Under the findings' lock, which edits take too: no edit comes between the check and
        // the findings stored.
        let now = session.workspace.documents.snapshot(uri).map(|now| now.version);
        if !journal.bring_up_to(request.snapshot.version, now, &mut found, &mut reviewed) {
            // Anchored in a text that is gone (replaced whole, or closed): LSP's ContentModified.
            return Err(Error {
                code: ErrorCode::ServerError(-32801),
                message: "the document changed during the review; review it again".into(),
                data: None,
            });
        }
        let count = found.len();
        let kept = all.entry(uri.to_owned()).or_default();
        // The reviewed lines' earlier findings make way for the new ones.
        kept.retain(|f| !reviewed.iter().any(|&(first, last)| f.lines.0 <= last && f.lines.1 >= first));
        kept.extend(found);
        *kept = dedup(std::mem::take(kept));
        count
    };
    publish(session, uri).await;
    Ok(count)
}

/// Publishes the document's findings as diagnostics.
pub async fn publish(session: &Session, uri: &str) {
    let Some(client) = session.lsp_client.get() else { return };
    let parsed = Uri::from(uri);
    let (diagnostics, version) = current(session, uri);
    client.publish_diagnostics(parsed, diagnostics, version).await;
}

/// The document's findings as diagnostics, and its version.
fn current(session: &Session, uri: &str) -> (Vec<Diagnostic>, Option<i32>) {
    let snapshot = session.workspace.documents.snapshot(uri);
    let findings = session.findings.lock().get(uri).cloned().unwrap_or_default();
    let diagnostics = match &snapshot {
        Some(snapshot) => findings.iter().map(|f| diagnostic(session, snapshot, f)).collect(),
        None => Vec::new(),
    };
    (diagnostics, snapshot.map(|s| s.version))
}

fn diagnostic(session: &Session, snapshot: &Snapshot, finding: &Finding) -> Diagnostic {
    // LSP's Warning (2) for defects, Information (3) otherwise.
    let severity = match (finding.category, finding.severity) {
        (Category::Bug | Category::Security, _) | (_, Severity::Error) => 2,
        _ => 3,
    };
    let value = json!({
        "range": finding_range(session, snapshot, finding),
        "severity": severity,
        "code": finding.category.as_str(),
        "source": SOURCE,
        "message": finding.message,
    });
    serde_json::from_value(value).expect("a diagnostic")
}

/// The finding's lines, from the first one's code (after its indentation) to the last one's end.
fn finding_range(session: &Session, snapshot: &Snapshot, finding: &Finding) -> Range {
    let text = &snapshot.text;
    let last_line = text.len_lines().saturating_sub(1);
    let (first, last) = (finding.lines.0.min(last_line), finding.lines.1.min(last_line));
    let indent: usize = text.line(first).chars().take_while(|c| *c == ' ' || *c == '\t').map(char::len_utf8).sum();
    let start = text.line_to_byte(first) + indent;
    let line_end = text.line_to_byte(last) + text.line(last).len_bytes();
    let line_text = text.line(last).to_string();
    let end = line_end - (line_text.len() - line_text.trim_end_matches(['\n', '\r']).len());
    convert::range(snapshot, start.min(end), end, session.encoding())
}

/// Quick fixes (code action literals) for the findings with a fix on the lines of `range`,
/// each with its diagnostic.
pub fn quick_fixes(session: &Session, uri: &Uri, range: Range) -> Vec<Value> {
    let Some(snapshot) = session.workspace.documents.snapshot(uri.as_ref()) else { return Vec::new() };
    let findings = session.findings.lock().get(uri.as_ref()).cloned().unwrap_or_default();
    let (from, to) = (range.start.line as usize, range.end.line as usize);
    let lines = snapshot.text.len_lines();
    findings
        .iter()
        .filter(|f| f.lines.0 <= to && f.lines.1 >= from && f.lines.1 < lines)
        .filter_map(|f| {
            let mut fix = f.fix.clone()?;
            let end = if f.lines.1 + 1 < lines {
                json!({"line": f.lines.1 + 1, "character": 0})
            } else {
                // The last line: up to its end, and the fix without its last line break.
                fix.truncate(fix.trim_end_matches('\n').len());
                let end = snapshot.text.len_bytes();
                serde_json::to_value(convert::range(&snapshot, end, end, session.encoding()).end).ok()?
            };
            let edit = json!({"range": {"start": {"line": f.lines.0, "character": 0}, "end": end}, "newText": fix});
            Some(json!({
                "title": format!("Fix: {}", first_sentence(&f.message)),
                "kind": super::code_action::QUICKFIX_KIND,
                "diagnostics": [diagnostic(session, &snapshot, f)],
                "edit": {"changes": {uri.as_ref(): [edit]}},
                "isPreferred": true,
            }))
        })
        .collect()
}

fn first_sentence(message: &str) -> String {
    let end = message.find(". ").map(|i| i + 1).unwrap_or(message.len());
    let sentence = &message[..end];
    if sentence.chars().count() > 80 {
        format!("{}…", sentence.chars().take(79).collect::<String>())
    } else {
        sentence.to_owned()
    }
}

/// Moves the document's findings with edits (applied in order) that made `version`; republishes
/// if any moved or went. A change of the whole text drops them all. Running reviews of the
/// document get the edits in its journal.
pub fn follow_changes(session: &Session, uri: &str, version: i32, changes: &[Change]) {
    let changed = {
        let mut all = session.findings.lock();
        super::journal::record(session, uri, version, changes);
        let Some(findings) = all.get_mut(uri) else { return };
        let before = findings.clone();
        for change in changes {
            match change.range {
                Some((start, end)) => follow_edit(
                    findings,
                    (start.line as usize, start.column as usize),
                    (end.line as usize, end.column as usize),
                    &change.text,
                ),
                None => findings.clear(),
            }
        }
        *findings != before
    };
    if changed {
        republish(session, uri);
    }
}

/// Forgets a closed document's findings and clears its diagnostics.
pub fn forget(session: &Session, uri: &str) {
    if session.findings.lock().remove(uri).is_some() {
        republish(session, uri);
    }
}

fn republish(session: &Session, uri: &str) {
    let Some(client) = session.lsp_client.get().cloned() else { return };
    let parsed = Uri::from(uri);
    let (diagnostics, version) = current(session, uri);
    tokio::spawn(async move { client.publish_diagnostics(parsed, diagnostics, version).await });
}
