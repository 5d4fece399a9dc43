//! The review pipeline for every front end (the LSP command, `mistral-lsp review`): what is
//! reviewed (a function or selection, a whole file in parts, or the changed lines of a diff with
//! their enclosing definitions), one grammar-bound background job per part, and the findings
//! anchored to the lines they quote, with fixes that parse. No LSP types here.

use std::time::Duration;

pub mod command;
pub mod diff;
pub mod report;

use crate::config::Settings;
use crate::engine::{CancelToken, Engine, EngineError, Job, Output, Priority, StopReason};
use crate::explain::{build_prompt, context_room, ExplainError, Request};
use crate::postprocess::findings::{self, Finding};
use crate::postprocess::syntax::Errors;
use crate::prompt::explain::{self, Target};
use crate::prompt::review::{self as review_prompt, GRAMMAR};
use crate::prompt::{Prompt, Segment};

pub use crate::postprocess::findings::{Category, Severity};

/// Tokens an answer may take: enough for the grammar's longest answer (three findings with
/// their longest quotes, messages and fixes) at about three characters a token, so that an answer ends
/// by the grammar and parses. Answers that matter are a few hundred tokens.
pub const ANSWER_TOKENS: u32 = 1280;

/// Lines a part of a whole-file review holds at most (a longer definition is one part).
const PART_LINES: usize = 120;

/// Where the engine can weigh fixes (the embedded one), a finding with a fix is kept only if the
/// model finds the code with the fix at least this much more likely than as written (natural
/// log): its own reading of the code must back the claim ("buggy code is unnatural"). Findings
/// without a fix cannot be weighed and are kept: dropping them too took the 1.5B's recall on a
/// HumanEvalFix sample to zero (bench/README.md, session 34). `MISTRAL_LSP_REVIEW_MIN_GAIN`
/// overrides it for measurements (`-inf` weighs every fix and keeps every finding).
const MIN_FIX_GAIN: f64 = 0.0;

/// One prompt's worth of code to review.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Part {
    pub target: Target,
    /// Lines that changed (0-based, inclusive), for a diff: findings elsewhere are dropped.
    pub focus: Option<(usize, usize)>,
}

/// The part for a request: the selection, else the function, class or impl around the cursor.
pub fn part_at(request: &Request) -> Result<Part, ExplainError> {
    Ok(Part { target: crate::explain::target(request)?, focus: None })
}

/// The parts of a whole file: its top-level definitions in runs of at most [`PART_LINES`]
/// lines (blank lines between them left out), or plain runs of lines without a grammar.
pub fn file_parts(request: &Request) -> Vec<Part> {
    let snapshot = &request.snapshot;
    let text = &snapshot.text;
    let lines = text.len_lines();
    // Top-level nodes as line spans; the whole file in runs of lines without a tree.
    let spans: Vec<(usize, usize)> = match &snapshot.tree {
        Some(tree) => {
            let root = tree.root_node();
            let mut walker = root.walk();
            let spans: Vec<(usize, usize)> =
                root.named_children(&mut walker).map(|n| (n.start_position().row, n.end_position().row)).collect();
            spans
        }
        None => (0..lines).step_by(PART_LINES).map(|s| (s, (s + PART_LINES - 1).min(lines - 1))).collect(),
    };
    let mut parts = Vec::new();
    let mut current: Option<(usize, usize)> = None;
    for (start, end) in spans {
        current = match current {
            Some((first, last)) if end + 1 - first <= PART_LINES => Some((first, last.max(end))),
            Some(run) => {
                parts.extend(lines_part(request, run));
                Some((start, end))
            }
            None => Some((start, end)),
        };
    }
    parts.extend(current.and_then(|run| lines_part(request, run)));
    parts
}

/// A part for lines `first..=last`, if they hold code.
fn lines_part(request: &Request, (first, last): (usize, usize)) -> Option<Part> {
    let text = &request.snapshot.text;
    let last = last.min(text.len_lines().saturating_sub(1));
    let start = text.line_to_byte(first);
    let end = text.line_to_byte((last + 1).min(text.len_lines()));
    if text.byte_slice(start..end).chars().all(char::is_whitespace) {
        return None;
    }
    Some(Part { target: Target { start, end, kind: "code", lines: (first, last) }, focus: None })
}

/// The parts for changed lines (0-based, inclusive, in order): each with the definition around
/// it, changes in the same definition together.
pub fn diff_parts(request: &Request, changed: &[(usize, usize)]) -> Vec<Part> {
    let snapshot = &request.snapshot;
    let text = &snapshot.text;
    let mut parts: Vec<Part> = Vec::new();
    for &(first, last) in changed {
        let final_line = text.len_lines().saturating_sub(1);
        let (first, last) = (first.min(final_line), last.min(final_line));
        if first > last {
            continue;
        }
        let at = text.line_to_byte(first) + indentation(text.line(first));
        let around = explain::target(snapshot.language, text, snapshot.tree.as_ref(), at, at);
        let mut target = match around {
            Some(target) => target,
            _ => match lines_part(request, (first, last)) {
                Some(part) => part.target,
                None => continue,
            },
        };
        if target.lines.1 < last {
            target.end = text.line_to_byte((last + 1).min(text.len_lines()));
            target.lines.1 = last;
        }
        if target.lines.0 > first {
            target.start = text.line_to_byte(first);
            target.lines.0 = first;
        }
        match parts.last_mut() {
            Some(previous) if previous.target == target => {
                let focus = previous.focus.get_or_insert((first, last));
                *focus = (focus.0.min(first), focus.1.max(last));
            }
            _ => parts.push(Part { target, focus: Some((first, last)) }),
        }
    }
    parts
}

fn indentation(line: ropey::RopeSlice) -> usize {
    line.chars().take_while(|c| *c == ' ' || *c == '\t').map(char::len_utf8).sum()
}

/// Counters of a review, for logs and benchmarks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReviewStats {
    pub parts: usize,
    /// Findings the model wrote, and those kept (anchored, in focus, fixes that parse).
    pub written: usize,
    pub kept: usize,
    /// Answers that ended but were not one whole JSON value (a grammar-bound answer always is;
    /// a remote server may ignore the grammar).
    pub unparsed: usize,
    /// Answers cut short by the token or time budget (a model that loops inside a string): their
    /// complete findings are kept.
    pub truncated: usize,
    /// Findings whose fixes were weighed against the code as written, and those dropped for it.
    pub weighed: usize,
    pub outweighed: usize,
    pub generated_tokens: usize,
    pub generation: Duration,
}

/// Reviews `parts` of the request's document, one background job each (completions go first),
/// and returns the findings anchored to its lines.
pub async fn review(
    engine: &Engine,
    settings: &Settings,
    request: &Request,
    parts: &[Part],
    cancel: CancelToken,
) -> Result<(Vec<Finding>, ReviewStats), ExplainError> {
    let room = context_room(engine, settings)?;
    let mut found = Vec::new();
    let mut stats = ReviewStats { parts: parts.len(), ..ReviewStats::default() };
    let text = request.snapshot.text.to_string();
    let lines: Vec<&str> = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l)).collect();
    // The embedded engine can weigh fixes; a remote server (or the test backend) cannot.
    let min_gain = min_fix_gain();
    let weighs = engine.tokenizer().is_some();
    for part in parts {
        let prompt = {
            let part = part.clone();
            build_prompt(engine, request, &part.target.clone(), room, move |code, context, budget, counter| {
                review_prompt::review_prompt(&part.target, code, part.focus, context, budget, counter)
            })
            .await?
        };
        let mut job = Job::new(Priority::Background, prompt, ANSWER_TOKENS);
        job.grammar = grammar();
        job.document = Some(request.snapshot.uri.clone());
        let output = engine.generate(job, cancel.clone()).await?;
        if cancel.is_cancelled() {
            return Err(ExplainError::Cancelled);
        }
        stats.generated_tokens += output.stats.generated_tokens;
        stats.generation += Duration::from_millis(output.stats.generation_ms);
        if serde_json::from_str::<serde_json::Value>(output.text.trim()).is_err() {
            match output.stop {
                StopReason::MaxTokens | StopReason::TimeBudget => stats.truncated += 1,
                _ => stats.unparsed += 1,
            }
        }
        let written = findings::parse(&output.text);
        tracing::debug!(
            "review of lines {:?}: {} findings written: {:?}",
            part.target.lines,
            written.len(),
            output.text
        );
        stats.written += written.len();
        for mut finding in written.iter().filter_map(|raw| keep(request, &text, &lines, part, raw)) {
            if weighs {
                finding.fix_gain = weigh(engine, request, &lines, part, &finding, &cancel).await?;
                if let Some(gain) = finding.fix_gain {
                    stats.weighed += 1;
                    if f64::from(gain) < min_gain {
                        stats.outweighed += 1;
                        tracing::debug!(
                            "finding on lines {:?} dropped: its fix is less likely ({gain:.2})",
                            finding.lines
                        );
                        continue;
                    }
                }
            }
            found.push(finding);
        }
    }
    let found = findings::dedup(found);
    stats.kept = found.len();
    Ok((found, stats))
}

/// The findings grammar, unless `MISTRAL_LSP_REVIEW_GRAMMAR=0` (a switch for measuring what the
/// grammar costs: `bench/review_quality.py --grammar-speed`).
fn grammar() -> Option<String> {
    let off = std::env::var("MISTRAL_LSP_REVIEW_GRAMMAR").is_ok_and(|v| v == "0");
    (!off).then(|| GRAMMAR.to_owned())
}

/// How much more likely the model finds the code with `finding`'s fix than as written (natural
/// log): the lines before it read once, then the lines from it to the end of the part (at most a
/// few) scored as written and with the fix. `None` without a fix, or where the engine cannot
/// score (a remote server).
async fn weigh(
    engine: &Engine,
    request: &Request,
    lines: &[&str],
    part: &Part,
    finding: &Finding,
    cancel: &CancelToken,
) -> Result<Option<f32>, ExplainError> {
    let Some(fix) = &finding.fix else { return Ok(None) };
    let Some(versions) = review_prompt::fix_versions(lines, part.target.lines, finding.lines, fix) else {
        return Ok(None);
    };
    let mut scores = [0.0; 2];
    for (score, text) in scores.iter_mut().zip([versions.original, versions.fixed]) {
        let prompt = Prompt::Segments(vec![Segment::Text(versions.before.clone())]);
        let mut job = Job::new(Priority::Background, prompt, 0);
        job.score = Some(text);
        job.document = Some(request.snapshot.uri.clone());
        match engine.generate(job, cancel.clone()).await {
            Ok(Output { log_prob: Some(log_prob), .. }) => *score = log_prob,
            Err(EngineError::Cancelled) => return Err(ExplainError::Cancelled),
            Ok(_) if cancel.is_cancelled() => return Err(ExplainError::Cancelled),
            Ok(output) => {
                tracing::debug!("a fix was not weighed: the job ended {:?}", output.stop);
                return Ok(None);
            }
            Err(err) => {
                tracing::debug!("a fix was not weighed: {err}");
                return Ok(None);
            }
        }
    }
    let gain = (scores[1] - scores[0]) as f32;
    tracing::debug!("fix for lines {:?} weighed: {gain:.2}", finding.lines);
    Ok(Some(gain))
}

/// [`MIN_FIX_GAIN`], or `MISTRAL_LSP_REVIEW_MIN_GAIN`.
fn min_fix_gain() -> f64 {
    std::env::var("MISTRAL_LSP_REVIEW_MIN_GAIN").ok().and_then(|v| v.parse().ok()).unwrap_or(MIN_FIX_GAIN)
}

/// A finding anchored within `part`, on its focus if it has one; a fix that would add syntax
/// errors is dropped (the finding stays).
fn keep(request: &Request, text: &str, lines: &[&str], part: &Part, raw: &findings::Raw) -> Option<Finding> {
    let snapshot = &request.snapshot;
    let mut finding = findings::anchor(raw, lines, part.target.lines)?;
    if let Some((first, last)) = part.focus {
        if finding.lines.1 < first || finding.lines.0 > last {
            return None;
        }
    }
    if let (Some(fix), Some(language), Some(tree)) = (&finding.fix, snapshot.language, snapshot.tree.as_ref()) {
        let rope = &snapshot.text;
        let start = rope.line_to_byte(finding.lines.0);
        let end = rope.line_to_byte((finding.lines.1 + 1).min(rope.len_lines()));
        let mut fix = fix.clone();
        if end == rope.len_bytes() && !text.ends_with('\n') {
            fix.pop();
        }
        let before = Errors::of(language, rope, tree, start).before;
        let after = Errors::left_by(language, rope, tree, start, end, &fix);
        if after.is_none_or(|after| after > before) {
            tracing::debug!("a fix that would not parse dropped: {fix:?}");
            finding.fix = None;
        }
    }
    Some(finding)
}
