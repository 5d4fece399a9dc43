//! The completion pipeline: snapshot and cursor in, suggestions out. No LSP types here.
//!
//! decide what to complete → follow a suggestion the user is typing through → cut the window and
//! gather cross-file context → build the prompt for the model's mode → reuse a cached output or
//! run the engine with the stop rules → post-process and syntax-check.

pub mod budget;
pub mod cache;
pub mod context;
pub mod decide;
pub mod speculate;

use std::path::PathBuf;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::config::{Sampling, Settings};
use crate::documents::Snapshot;
use crate::engine::{CancelToken, Engine, EngineError, Job, Priority, State, StopCheck, StopReason, TokenCounter};
use crate::postprocess::first_word;
use crate::postprocess::{self, syntax};
use crate::prompt::ring::Chunk;
use crate::prompt::{self, template, Counter, Estimate, Mode, Parts};
use budget::Budgets;
use decide::{Decision, Scope, Trigger};

/// Text to show at the cursor, replacing bytes `start..end` of the snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Suggestion {
    pub text: String,
    pub start: usize,
    pub end: usize,
}

/// What the pipeline needs besides the document.
#[derive(Clone)]
pub struct Request {
    pub snapshot: Snapshot,
    pub cursor: usize,
    pub trigger: Trigger,
    /// Up to three distinct suggestions instead of one.
    pub alternatives: bool,
    /// Other open documents, for cross-file definitions.
    pub others: Vec<Snapshot>,
    /// Recently edited or viewed chunks.
    pub chunks: Vec<Chunk>,
    /// The workspace folder, for relative paths and the project name.
    pub root: Option<PathBuf>,
    /// After a suggestion from the model is shown, work out the next one in the background (see
    /// [`speculate`]).
    pub speculate: bool,
}

/// Lines shorter than this are not worth a model call when they have no suggestion of their own.
const LINE_MAX_TOKENS: u32 = 48;

/// How long an invoked request may keep generating after its first line.
const INVOKED_AFTER_FIRST_LINE: std::time::Duration = std::time::Duration::from_secs(4);

/// Candidates tried for an automatic request when the first is dropped or leaves broken syntax.
const REPAIR_ATTEMPTS: usize = 2;

/// An automatic request tries another candidate if it would still answer within this long of
/// its start, or if that costs at most half of what the user has waited so far. Another
/// candidate reads no prompt (the engine has it cached): it costs about the last attempt's
/// generation. A fast model repairs; a slow one (a 7B on a laptop CPU writes a line in about
/// 2 s) answers with what it has rather than take twice as long; a request that spent seconds
/// reading a new file's prompt still tries a second candidate that takes one more.
const REPAIR_WITHIN: std::time::Duration = std::time::Duration::from_secs(3);

/// Whether another candidate is worth its cost (see [`REPAIR_WITHIN`]).
fn worth_repairing(elapsed: std::time::Duration, generation: std::time::Duration) -> bool {
    elapsed + generation <= REPAIR_WITHIN || generation * 2 <= elapsed
}

/// The pipeline, with its caches.
#[derive(Default)]
pub struct Completer {
    cache: Arc<Mutex<cache::Cache>>,
    /// The background job working out the suggestion after an acceptance, if any.
    speculation: Mutex<Option<CancelToken>>,
}

impl Completer {
    /// Suggestions for the cursor: one for automatic requests, up to three distinct ones when
    /// invoked. Empty means nothing worth showing.
    pub async fn suggest(
        &self,
        engine: &Engine,
        settings: &Settings,
        request: &Request,
        cancel: CancelToken,
    ) -> Result<Vec<Suggestion>, EngineError> {
        let snapshot = &request.snapshot;
        let cursor = request.cursor;
        let decision = decide::decide(&snapshot.text, snapshot.tree.as_ref(), cursor, request.trigger);
        tracing::debug!("completion at {cursor}: {:?} ({})", decision.scope, decision.reason);
        if decision.scope == Scope::Nothing {
            return Ok(Vec::new());
        }
        if let Some(rest) = self.cache.lock().follow(&snapshot.uri, &snapshot.text, cursor) {
            tracing::debug!("typed through the suggestion: answering its rest without the model");
            return Ok(vec![Suggestion { text: rest, start: cursor, end: cursor }]);
        }
        // The model is needed: whatever the last speculation was for, it is not this (a finished
        // one left its output in the cache), and it would only take turns with this request.
        self.stop_speculating();
        let suggestions = run(&self.cache, engine, settings, request, &decision, Priority::Interactive, cancel).await?;
        if let Some(first) = suggestions.first() {
            self.cache.lock().shown(&snapshot.uri, &snapshot.text, cursor, &first.text);
            if request.speculate && settings.precompute {
                self.speculate(engine, settings, request, first);
            }
        }
        Ok(suggestions)
    }

    /// Starts working out, at background priority (in the second KV slot), the suggestion the
    /// editor will ask for once `shown` is accepted and the user starts the next line. Its
    /// outputs land in the output cache, where that request finds them. Replaces the previous
    /// speculation.
    fn speculate(&self, engine: &Engine, settings: &Settings, request: &Request, shown: &Suggestion) {
        self.stop_speculating();
        let Some((document, cursor)) = speculate::accepted(&request.snapshot, shown) else { return };
        let snapshot = document.snapshot();
        let decision = decide::decide(&snapshot.text, snapshot.tree.as_ref(), cursor, Trigger::Automatic);
        if decision.scope == Scope::Nothing {
            return;
        }
        let cancel = CancelToken::new();
        *self.speculation.lock() = Some(cancel.clone());
        let request = Request { snapshot, cursor, trigger: Trigger::Automatic, alternatives: false, ..request.clone() };
        let (cache, engine, settings) = (self.cache.clone(), engine.clone(), settings.clone());
        tokio::spawn(async move {
            let result = run(&cache, &engine, &settings, &request, &decision, Priority::Background, cancel).await;
            tracing::debug!("speculation at {}: {result:?}", request.cursor);
        });
    }

    /// Reads the prompt that a completion at the request's cursor starts with, at idle priority
    /// and without generating, so that the completion itself reads only what changed by then
    /// (pre-warming the engine's cache while the user reads). `None`: nothing would be asked
    /// there.
    pub async fn prewarm(
        &self,
        engine: &Engine,
        settings: &Settings,
        request: &Request,
        cancel: CancelToken,
    ) -> Result<Option<crate::engine::Stats>, EngineError> {
        let snapshot = &request.snapshot;
        let decision = decide::decide(&snapshot.text, snapshot.tree.as_ref(), request.cursor, Trigger::Invoked);
        if decision.scope == Scope::Nothing {
            return Ok(None);
        }
        let mut job = plan(engine, settings, request, &decision, Priority::Idle).await?.job;
        job.max_tokens = 0;
        let output = engine.generate(job, cancel).await?;
        Ok(Some(output.stats))
    }

    /// Cancels the background work for a suggestion that is no longer on screen.
    pub fn stop_speculating(&self) {
        if let Some(cancel) = self.speculation.lock().take() {
            cancel.cancel();
        }
    }

    /// Forgets what was shown for a closed document.
    pub fn forget(&self, uri: &str) {
        self.cache.lock().forget(uri);
    }
}

/// The model's part of the pipeline: plan the job, run its attempts (through the output cache),
/// post-process each output, and rank the suggestions.
async fn run(
    cache: &Mutex<cache::Cache>,
    engine: &Engine,
    settings: &Settings,
    request: &Request,
    decision: &Decision,
    priority: Priority,
    cancel: CancelToken,
) -> Result<Vec<Suggestion>, EngineError> {
    let plan = plan(engine, settings, request, decision, priority).await?;
    let (snapshot, cursor) = (&request.snapshot, request.cursor);
    let mut ranking = Ranking::new(snapshot, cursor);
    let mut alternatives = Alternatives::default();
    let started = std::time::Instant::now();
    let mut last_generation = std::time::Duration::ZERO;
    let mut tried = 0;
    let mut stage = Some(&plan);
    'stages: while let Some(current) = stage {
        // A fallback after a suggestion begins with another word than it.
        let first = usize::from(tried > 0 && !ranking.is_empty());
        for attempt in first..current.attempts {
            if tried > 0 && !request.alternatives && !worth_repairing(started.elapsed(), last_generation) {
                tracing::debug!(
                    "no time for another candidate: {} ms so far, the last generated for {} ms",
                    started.elapsed().as_millis(),
                    last_generation.as_millis()
                );
                break 'stages;
            }
            tried += 1;
            let job = current.attempt(attempt, &alternatives, settings, decision);
            let Some((cache::Output { text: raw, unfinished }, generated, generation)) =
                output(cache, engine, &job, &current.healed, &cancel).await?
            else {
                // The prompt could not even be read in time (a slow machine, a busy server):
                // another attempt would wait as long again.
                tracing::debug!("the prompt budget ran out before a first token: no more attempts");
                break 'stages;
            };
            last_generation = generation;
            match generated.strip_prefix(raw.as_str()) {
                Some("") => tracing::debug!("raw output: {raw:?}"),
                Some(rest) => tracing::debug!("raw output: {raw:?} (cut before {rest:?})"),
                None => tracing::debug!("raw output: {raw:?} (generated {generated:?})"),
            }
            let Some(raw) = unheal(&raw, &current.healed) else {
                tracing::debug!("the model did not continue the typed text {:?}: {raw:?}", current.healed);
                continue;
            };
            if !alternatives.learn(raw, &generated, current) {
                break 'stages;
            }
            let Some(suggestion) = finish(snapshot, cursor, decision, &current.rules, current.mode, raw, unfinished)
            else {
                continue;
            };
            if ranking.add(tried - 1, suggestion) && !request.alternatives {
                break 'stages;
            }
        }
        stage = current.fallback.as_deref();
    }
    Ok(ranking.best(plan.wanted))
}

/// What a request asks of the model: the job of its first attempt, and how outputs become
/// suggestions.
struct Plan {
    job: Job,
    mode: Mode,
    /// The cursor line's trailing whitespace and partial word, left to the model (token healing).
    healed: String,
    rules: postprocess::Context,
    /// Jobs to try at most, and suggestions wanted.
    attempts: usize,
    wanted: usize,
    /// Alternatives begin with another word (else they are sampled: the user is mid-word).
    other_words: bool,
    /// The plan whose attempts follow when this one's give no suggestion (healed punctuation
    /// first, then the plan that leaves it in the prompt).
    fallback: Option<Box<Plan>>,
}

/// Builds the prompt (window and cross-file context, off the async threads) and the job.
async fn plan(
    engine: &Engine,
    settings: &Settings,
    request: &Request,
    decision: &Decision,
    priority: Priority,
) -> Result<Plan, EngineError> {
    let snapshot = &request.snapshot;
    let model = match engine.state() {
        State::Ready { model, .. } => model,
        State::Loading { .. } => return Err(EngineError::NotReady),
        State::Failed { message } => return Err(EngineError::Unavailable(message)),
    };
    let mode = template::choose(settings.fim_mode, &model);
    let counter = engine.counter();
    let root = request.root.as_deref();
    // Cutting the window and gathering context tokenize much text and read imported files from
    // disk: that blocking work runs off the async threads.
    let exact = counter.as_ref().is_some_and(TokenCounter::exact);
    let budgets = Budgets::for_model(settings, &model, exact);
    log_budgets(&budgets, &model);
    let (mut window, extras) = {
        let request = request.clone();
        tokio::task::spawn_blocking(move || {
            let counter: &dyn Counter = match &counter {
                Some(counter) => counter,
                None => &Estimate,
            };
            let snapshot = &request.snapshot;
            let cut = |budgets: Budgets| {
                let window = prompt::window::window(
                    &snapshot.text,
                    snapshot.tree.as_ref(),
                    request.cursor,
                    budgets.prefix,
                    budgets.suffix,
                    counter,
                );
                let extras = context::extras(
                    snapshot,
                    &window,
                    &request.others,
                    &request.chunks,
                    request.root.as_deref(),
                    budgets.extra,
                    counter,
                );
                (window, extras)
            };
            let (window, extras) = cut(budgets);
            // Context budget that other files do not fill shows more of this one.
            let used = context::cost(&extras, counter);
            let wider = budgets.with_unused_extra(used);
            let (window, extras) = if wider == budgets { (window, extras) } else { cut(wider) };
            tracing::debug!(
                "prompt window from line {} ({} prefix, {} suffix tokens allowed), {} extras ({used} tokens)",
                window.start_line,
                wider.prefix,
                wider.suffix,
                extras.len()
            );
            (window, extras)
        })
        .await
        .map_err(|err| EngineError::Failed(format!("building the prompt failed: {err}")))?
    };
    let path = crate::documents::uri::display_path(&snapshot.uri, root);
    let repo = root.and_then(|r| r.file_name()).map_or_else(|| "project".to_owned(), |n| n.to_string_lossy().into());
    let mut build = |punctuation: bool| {
        // Token healing: the prompt stops before the cursor line's trailing whitespace and
        // partial word (or punctuation), which the model then writes itself with its natural
        // tokens ("return" then " a", not "return " then "a"); the healed part is removed from
        // its output again.
        let (forced, healed) = heal_split(&decision.line_before, punctuation);
        window.line_before = forced.to_owned();
        let parts = Parts {
            window: &window,
            path: &path,
            language_id: &snapshot.language_id,
            repo: &repo,
            extras: &extras,
            repo_tokens: model.has_repo_tokens,
        };
        let prompt = template::build(mode, &parts);
        let rules = postprocess_context(snapshot, decision);
        let stop_rules = postprocess::Context { line_before: forced.to_owned(), ..rules.clone() };
        let single_line = decision.scope == Scope::Line;
        let max_tokens = if single_line { budgets.max_tokens.min(LINE_MAX_TOKENS) } else { budgets.max_tokens };
        let mut job = Job::new(priority, prompt, max_tokens);
        if request.trigger == Trigger::Invoked && priority == Priority::Interactive {
            // Asked for on purpose: a longer block is worth the wait.
            job.budget.after_first_line = INVOKED_AFTER_FIRST_LINE;
        }
        job.budget = job.budget.scaled(settings.time_limit_scale);
        job.sampling = settings.sampling;
        job.document = Some(snapshot.uri.clone());
        if mode == Mode::Instruct {
            job.stop = vec!["```".into()];
        }
        // What the user typed is required. An empty line at column 0 takes the indentation the
        // code around leaves no doubt about, as if typed (the engine writes it as the tokenizer
        // would); otherwise indentation the user has not typed is left to the model.
        job.required_prefix = if healed.is_empty() { decision.indentation.clone() } else { healed.to_owned() };
        job.stop_check = Some(StopCheck(Arc::new(move |text: &str| postprocess::stop_at(text, &stop_rules))));
        let other_words = healed.trim().is_empty();
        // An automatic request tries another word when the first answer is dropped (it only
        // repeated the code below, say) or leaves the code broken.
        let attempts = if request.alternatives {
            3
        } else if other_words {
            REPAIR_ATTEMPTS
        } else {
            1
        };
        let wanted = if request.alternatives { 3 } else { 1 };
        Plan { job, mode, healed: healed.to_owned(), rules, attempts, wanted, other_words, fallback: None }
    };
    let plain = build(false);
    if heal_split(&decision.line_before, true) == heal_split(&decision.line_before, false) {
        return Ok(plain);
    }
    // Healed punctuation helps where the line goes on (`Sender<T` then `>,`), but where the line
    // is complete the model takes the merged token that ends it (`()` then a line break, `):`
    // before a `:` already there) and the answer is empty: then the plan without it is tried.
    let mut healed = build(true);
    healed.attempts = 1;
    healed.fallback = Some(Box::new(plain));
    Ok(healed)
}

impl Plan {
    /// The job of attempt `attempt`: the first is greedy; later ones begin with another word
    /// than the answers so far (at the indentation guessed for alternatives), or, when the user
    /// is mid-word, are sampled.
    fn attempt(&self, attempt: usize, alternatives: &Alternatives, settings: &Settings, decision: &Decision) -> Job {
        let mut job = self.job.clone();
        if attempt > 0 && self.other_words {
            job.avoid = alternatives.avoid.clone();
            job.needs_content = alternatives.needs_content;
            if self.healed.is_empty() {
                job.required_prefix = decision.retry_indentation.clone();
            }
        } else if attempt > 0 {
            job.sampling = Sampling { temperature: 0.7, seed: attempt as u32, ..settings.sampling };
        }
        job
    }
}

/// A job's output, from the output cache or the engine: the text after the stop rules (and
/// whether a budget cut it), everything generated, and how long generating took; `None` when the
/// prompt budget ran out before a first token.
async fn output(
    cache: &Mutex<cache::Cache>,
    engine: &Engine,
    job: &Job,
    healed: &str,
    cancel: &CancelToken,
) -> Result<Option<(cache::Output, String, std::time::Duration)>, EngineError> {
    let variant = |required: &str| {
        format!("{}/{:?}/{required:?}/{:?}/{}", job.max_tokens, job.sampling, job.avoid, job.needs_content)
    };
    let key = cache::key(&job.prompt, &variant(&job.required_prefix));
    // An output made without typed indentation (a speculation, see `speculate`) serves any
    // indentation it begins with: the prompt is the same, since healing leaves trailing
    // whitespace out of it.
    let exact = cache.lock().output(key);
    let cached = exact.or_else(|| {
        let unindented = cache::key(&job.prompt, &variant(""));
        let raw = cache.lock().output(unindented)?;
        (healed.trim().is_empty() && speculate::indented_as(&raw.text, healed)).then_some(raw)
    });
    if let Some(raw) = cached {
        return Ok(Some((raw, String::new(), std::time::Duration::ZERO)));
    }
    let output = engine.generate(job.clone(), cancel.clone()).await?;
    if cancel.is_cancelled() {
        return Err(EngineError::Cancelled);
    }
    if output.stop == StopReason::PromptBudget {
        // Not the model's answer: nothing to keep for the next request with this prompt.
        return Ok(None);
    }
    let unfinished = matches!(output.stop, StopReason::TimeBudget | StopReason::MaxTokens);
    let kept = cache::Output { text: output.text, unfinished };
    cache.lock().store_output(key, kept.clone());
    let generation = std::time::Duration::from_millis(output.stats.generation_ms);
    Ok(Some((kept, output.generated, generation)))
}

/// What alternatives must avoid: the first words of the answers so far, and a blank answer.
#[derive(Default)]
struct Alternatives {
    avoid: Vec<String>,
    needs_content: bool,
}

impl Alternatives {
    /// Learns from an answer (after unhealing); false when no further attempt can differ.
    fn learn(&mut self, raw: &str, generated: &str, plan: &Plan) -> bool {
        // A stop rule may have cut the whole answer (it began by repeating the next line): the
        // alternative avoids the word the model began with all the same.
        let word = first_word(raw).or_else(|| unheal(generated, &plan.healed).and_then(first_word));
        match word {
            Some(word) => self.avoid.push(word.to_owned()),
            // A blank answer: the alternative must have content.
            None if plan.other_words && !self.needs_content => self.needs_content = true,
            None if plan.other_words => return false,
            None => {}
        }
        true
    }
}

/// Suggestions ranked by the syntax errors they leave. When the cursor sits in broken syntax (a
/// body whose header line is missing, a call without its arguments), each candidate is cut to the
/// lines that leave fewest errors, and the greedy output (the first) competes with alternatives
/// that begin with another word.
struct Ranking<'s> {
    snapshot: &'s Snapshot,
    errors: Option<(crate::syntax::Language, &'s tree_sitter::Tree, syntax::Errors)>,
    ranked: Vec<(usize, Suggestion)>,
}

impl<'s> Ranking<'s> {
    fn new(snapshot: &'s Snapshot, cursor: usize) -> Ranking<'s> {
        let errors = match (snapshot.language, &snapshot.tree) {
            (Some(language), Some(tree)) => {
                Some((language, tree, syntax::Errors::of(language, &snapshot.text, tree, cursor)))
            }
            _ => None,
        };
        Ranking { snapshot, errors, ranked: Vec::new() }
    }

    /// Adds a candidate; true when it is good enough to stop trying others (nothing broken
    /// needed repairing, or it repaired some).
    fn add(&mut self, attempt: usize, suggestion: Suggestion) -> bool {
        let (left, suggestion) = match &self.errors {
            Some((language, tree, found)) if found.repairable() => {
                let (left, suggestion) = least_broken(*language, self.snapshot, tree, suggestion);
                tracing::debug!("candidate {attempt} leaves {left} of {} syntax errors", found.before);
                (left, suggestion)
            }
            _ => (0, suggestion),
        };
        if !self.ranked.iter().any(|(_, s)| s.text == suggestion.text) {
            self.ranked.push((left, suggestion));
        }
        match &self.errors {
            Some((_, _, found)) if found.repairable() => left < found.before,
            _ => true,
        }
    }

    fn is_empty(&self) -> bool {
        self.ranked.is_empty()
    }

    /// Fewest errors first; the model's order among equals.
    fn best(mut self, wanted: usize) -> Vec<Suggestion> {
        self.ranked.sort_by_key(|(left, _)| *left);
        self.ranked.into_iter().take(wanted).map(|(_, s)| s).collect()
    }
}

/// Logs the budgets when one differs by more than a tenth from the last ones logged (a new
/// model, new settings, speed measured anew as jobs run).
fn log_budgets(budgets: &Budgets, model: &crate::models::ModelInfo) {
    static LAST: Mutex<Option<Budgets>> = Mutex::new(None);
    let mut last = LAST.lock();
    let near = |a: usize, b: usize| a.abs_diff(b) * 10 <= a.max(b);
    if last.is_some_and(|l| {
        near(l.prefix, budgets.prefix)
            && near(l.suffix, budgets.suffix)
            && near(l.extra, budgets.extra)
            && near(l.max_tokens as usize, budgets.max_tokens as usize)
    }) {
        return;
    }
    *last = Some(*budgets);
    drop(last);
    let speed = model.rates.map_or_else(
        || "speed not measured".to_owned(),
        |rates| {
            format!(
                "{:.1} prompt tokens/s, {:.1} generated tokens/s",
                rates.prompt_per_second(),
                rates.generation_per_second()
            )
        },
    );
    tracing::info!(
        "completion budgets for {} ({speed}): prefix {}, suffix {}, context {} tokens; answers up to {} tokens",
        model.name,
        budgets.prefix,
        budgets.suffix,
        budgets.extra,
        budgets.max_tokens
    );
}

/// The suggestion, or the first lines of it, that leaves the fewest syntax errors (see
/// [`syntax::Errors`]), with that count: a model that writes the missing block header and then
/// runs on into the body that follows it is cut after the header.
fn least_broken(
    language: crate::syntax::Language,
    snapshot: &Snapshot,
    tree: &tree_sitter::Tree,
    suggestion: Suggestion,
) -> (usize, Suggestion) {
    let left = |text: &str| {
        syntax::Errors::left_by(language, &snapshot.text, tree, suggestion.start, suggestion.end, text)
            .unwrap_or(usize::MAX)
    };
    let mut best = (left(&suggestion.text), suggestion.text.clone());
    let lines: Vec<&str> = suggestion.text.split('\n').collect();
    for count in (1..lines.len()).rev() {
        if best.0 == 0 {
            break;
        }
        let shorter = lines[..count].join("\n");
        if shorter.trim().is_empty() {
            continue;
        }
        let errors = left(&shorter);
        if errors < best.0 {
            best = (errors, shorter);
        }
    }
    let (errors, text) = best;
    // A suggestion cut short no longer reaches the closers it would have replaced.
    let end = if text.len() < suggestion.text.len() { suggestion.start } else { suggestion.end };
    (errors, Suggestion { text, end, ..suggestion })
}

/// Trailing punctuation left to the model, at most: tokenizers merge short runs of it with what
/// follows (`>,`, `":`, `()`, `.get`), and a prompt cut inside such a run makes the model avoid
/// the merged token with odd text (a fullwidth comma after `Sender<T>`).
const HEALED_PUNCTUATION: usize = 3;

/// Splits the cursor line's text into what the prompt shows and the text that the model is left
/// to write: trailing whitespace and a partial word, or else (with `punctuation`) a short run of
/// punctuation.
pub fn heal_split(line_before: &str, punctuation: bool) -> (&str, &str) {
    let without_word = line_before.trim_end_matches(|c: char| c.is_alphanumeric() || c == '_');
    let without_space = without_word.trim_end_matches([' ', '\t']);
    let neither = without_word.len() == line_before.len() && without_space.len() == line_before.len();
    let cut = if neither && punctuation {
        // Neither: the last few punctuation marks are, with the blanks before them (` =`, ` ->`,
        // ` "` are single tokens; a prompt that ends in a blank is as odd as one that ends inside
        // a token).
        let without_marks = line_before.trim_end_matches(|c: char| c.is_ascii_punctuation());
        let marks = without_marks.len().max(line_before.len().saturating_sub(HEALED_PUNCTUATION));
        if marks < line_before.len() {
            line_before[..marks].trim_end_matches([' ', '\t']).len()
        } else {
            marks
        }
    } else if without_word.len() == line_before.len() {
        // No partial word: only trailing whitespace is healed.
        without_space.len()
    } else if without_word.len() == without_space.len() {
        without_word.len()
    } else {
        without_space.len()
    };
    line_before.split_at(cut)
}

/// Removes the healed text from the start of the model's output; `None` if the output does not
/// continue it (a whitespace difference is tolerated).
pub fn unheal<'a>(raw: &'a str, healed: &str) -> Option<&'a str> {
    let common = raw.bytes().zip(healed.bytes()).take_while(|(a, b)| a == b).count();
    if common == healed.len() {
        return Some(&raw[common..]);
    }
    let rest = &healed[common..];
    let raw_rest = &raw[common..];
    if rest.chars().all(|c| c == ' ' || c == '\t') && !raw_rest.starts_with([' ', '\t']) {
        return Some(raw_rest);
    }
    None
}

/// The post-processing context for a decision.
fn postprocess_context(snapshot: &Snapshot, decision: &Decision) -> postprocess::Context {
    let line = snapshot.text.byte_to_line(decision.line_start.min(snapshot.text.len_bytes()));
    let below = (line + 1..snapshot.text.len_lines().min(line + 40))
        .map(|l| snapshot.text.line(l).to_string().trim_end_matches(['\n', '\r']).to_owned())
        .collect();
    let above = (line.saturating_sub(40)..line)
        .map(|l| snapshot.text.line(l).to_string().trim_end_matches(['\n', '\r']).to_owned())
        .collect();
    let tabs = (0..snapshot.text.len_lines().min(200)).any(|l| snapshot.text.line(l).chars().next() == Some('\t'));
    postprocess::Context {
        line_before: decision.line_before.clone(),
        line_after: decision.line_after.clone(),
        below,
        above,
        single_line: decision.scope == Scope::Line,
        block_indent: decision.block_indent,
        tabs,
        lexicon: crate::syntax::lexicon::lexicon(&snapshot.language_id),
    }
}

/// Post-processes one raw output into a suggestion, or nothing.
fn finish(
    snapshot: &Snapshot,
    cursor: usize,
    decision: &Decision,
    rules: &postprocess::Context,
    mode: Mode,
    raw: &str,
    unfinished: bool,
) -> Option<Suggestion> {
    let raw =
        if mode == Mode::Instruct && raw.contains("```") { postprocess::strip_chatter(raw) } else { raw.to_owned() };
    let mut text = postprocess::clean(&raw, rules);
    // The suggestion may supply the closing brackets the editor put after the cursor itself:
    // then it replaces them.
    let tail = decision.line_after.trim();
    let end = if postprocess::closers_only(tail) && text.trim_end().ends_with(tail) {
        cursor + decision.line_after.trim_end().len()
    } else {
        cursor
    };
    if let (Some(language), Some(tree)) = (snapshot.language, &snapshot.tree) {
        text = postprocess::syntax::keep_valid(language, &snapshot.text, tree, cursor, end, &text, unfinished);
    }
    if text.trim().is_empty() {
        return None;
    }
    Some(Suggestion { text, start: cursor, end })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn healing_splits_off_trailing_space_and_partial_words_or_punctuation() {
        let cases = [
            ("    return ", ("    return", " ")),
            ("    ", ("", "    ")),
            ("    ret", ("", "    ret")),
            ("x = foo(a, b", ("x = foo(a,", " b")),
            ("", ("", "")),
            // Punctuation that the next token may merge with.
            ("x = foo(", ("x = foo", "(")),
            ("fn watch(tx: Sender<T>", ("fn watch(tx: Sender<T", ">")),
            ("    d = {\"path\"", ("    d = {\"path", "\"")),
            ("    self.", ("    self", ".")),
            ("    if x == y {", ("    if x == y", " {")),
            // With the blanks before them.
            ("        ret =", ("        ret", " =")),
            ("    def __bool__(self) ->", ("    def __bool__(self)", " ->")),
            ("    }", ("", "    }")),
            // A run: its last three marks.
            ("    f(x)]);", ("    f(x)", "]);")),
            ("    x = [1, 2] + [", ("    x = [1, 2] +", " [")),
            ("    a =  b == c)))", ("    a =  b == c", ")))")),
            // A partial word after punctuation: the word alone, as before.
            ("s = 'é", ("s = '", "é")),
            // Not ASCII punctuation: left in the prompt.
            ("x = «", ("x = «", "")),
        ];
        for (line, expected) in cases {
            assert_eq!(heal_split(line, true), expected, "{line:?}");
            if !expected.1.contains(|c: char| c.is_ascii_punctuation()) || line.ends_with(char::is_alphanumeric) {
                assert_eq!(heal_split(line, false), expected, "{line:?} without punctuation");
            }
        }
        // Without punctuation, the marks stay in the prompt.
        assert_eq!(heal_split("x = foo(", false), ("x = foo(", ""));
        assert_eq!(heal_split("    }", false), ("    }", ""));
    }

    #[test]
    fn another_candidate_when_it_answers_soon_or_costs_little_beside_the_wait() {
        let s = |ms: u64| std::time::Duration::from_millis(ms);
        // (elapsed, last generation) -> worth another candidate
        let cases = [
            // A 0.5B, prompt cached: 0.6 s so far, 0.5 s more.
            ((600, 500), true),
            // A 7B with a pre-warmed prompt: 2.2 s so far, 2 s more.
            ((2200, 2000), false),
            // A new file's prompt read for 3.3 s, then 1.1 s of answer: one more second.
            ((3300, 1100), true),
            // A 7B that read a new prompt for 10 s: 2 s more beside 12.
            ((12000, 2000), true),
            // Slow generation, whatever the wait.
            ((3200, 3200), false),
        ];
        for ((elapsed, generation), worth) in cases {
            assert_eq!(worth_repairing(s(elapsed), s(generation)), worth, "{elapsed} ms, {generation} ms");
        }
    }

    #[test]
    fn unhealing_removes_what_was_typed() {
        assert_eq!(unheal(" a + b", " "), Some("a + b"));
        assert_eq!(unheal("    return x", "    ret"), Some("urn x"));
        assert_eq!(unheal("  x = 1", "    "), Some("x = 1"), "less indentation than typed");
        assert_eq!(unheal("    value = 1", "    ret"), None, "not what was typed");
        assert_eq!(unheal("abc", ""), Some("abc"));
    }
}

#[cfg(test)]
mod finish_tests {
    use super::*;
    use crate::documents::Document;

    /// `$0` marks the cursor; returns the suggestion for a raw model output.
    fn check(language_id: &str, marked: &str, raw: &str) -> Option<(String, usize)> {
        let cursor = marked.find("$0").unwrap();
        let snapshot =
            Document::new(&format!("file:///t.{language_id}"), language_id, 1, &marked.replacen("$0", "", 1))
                .snapshot();
        let decision = decide::decide(&snapshot.text, snapshot.tree.as_ref(), cursor, Trigger::Invoked);
        let rules = postprocess_context(&snapshot, &decision);
        finish(&snapshot, cursor, &decision, &rules, Mode::Native { spm: false }, raw, false)
            .map(|s| (s.text, s.end - s.start))
    }

    #[test]
    fn a_suggestion_replaces_the_closers_it_supplies_itself() {
        // The editor auto-inserted `)`; the model's line closes it and goes on.
        assert_eq!(check("python", "x = len($0)\n", "name).strip()"), Some(("name).strip()".into(), 1)));
        // The model's text stops inside the brackets: it goes before the `)`.
        assert_eq!(check("python", "x = len($0)\n", "name"), Some(("name".into(), 0)));
        assert_eq!(check("python", "x = len($0)\n", "name)"), Some(("name)".into(), 1)));
    }

    /// `$0` marks the cursor: the errors near it, and what `least_broken` makes of a suggestion.
    fn ranked(marked: &str, suggestion: &str) -> (syntax::Errors, usize, String) {
        let cursor = marked.find("$0").unwrap();
        let snapshot = Document::new("file:///t.py", "python", 1, &marked.replacen("$0", "", 1)).snapshot();
        let (language, tree) = (snapshot.language.unwrap(), snapshot.tree.clone().unwrap());
        let errors = syntax::Errors::of(language, &snapshot.text, &tree, cursor);
        let shown = Suggestion { text: suggestion.into(), start: cursor, end: cursor };
        let (left, best) = least_broken(language, &snapshot, &tree, shown);
        (errors, left, best.text)
    }

    #[test]
    fn a_candidate_is_cut_to_the_lines_that_repair_the_hole() {
        // HumanEval/36: the hole is the header of the body below it.
        let hole = "def f(s):\n    ans = 0\n$0\n        ans += 1\n    return ans\n";
        let (errors, left, text) = ranked(hole, "    for c in s:\n    x = 1");
        assert!(errors.repairable() && errors.before == 1, "{errors:?}");
        assert_eq!((left, text.as_str()), (0, "    for c in s:"));
        // A candidate that repairs nothing stays as it is, with its count.
        assert_eq!(ranked(hole, "    return ans"), (errors, 1, "    return ans".into()));
        // Nothing broken near the cursor: no ranking needed.
        let (errors, ..) = ranked("def f(s):\n    ans = 0\n    $0\n    return ans\n", "ans += 1");
        assert!(!errors.repairable(), "{errors:?}");
    }

    #[test]
    fn suggestions_that_break_the_syntax_or_only_repeat_are_dropped() {
        assert_eq!(check("python", "def f(a):\n    $0\n    return a\n", "    return a"), None);
        assert_eq!(check("python", "x = [1, 2]\n$0\n", ") + ]"), None);
        assert_eq!(
            check("rust", "fn f() {\n    let v = $0\n}\n", "vec![1, 2];\n}\n\nfn g() {}"),
            Some(("vec![1, 2];".into(), 0))
        );
    }
}
