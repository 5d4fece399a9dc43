//! The explain and document pipelines: what is explained or documented, its context and prompt,
//! and the background job that writes the explanation (told to a listener as it grows) or the
//! doc comment (checked to parse where it goes). No LSP types here: the server and the
//! command line share it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::completion::context::definitions_used;
use crate::config::Settings;
use crate::documents::uri::display_path;
use crate::documents::Snapshot;
use crate::engine::{CancelToken, Engine, EngineError, Job, Priority, State, StopCheck, TextSink};
use crate::postprocess::doc_comment::doc_comment;
use crate::postprocess::prose::cut_at_repeated_sentence;
use crate::postprocess::syntax::Errors;
use crate::prompt::explain::{self, DocSite, Target};
use crate::prompt::{Counter, Estimate, Extra, Prompt};

/// Tokens of context (imports, definitions) an explanation may read besides the code.
const CONTEXT_TOKENS: usize = 1536;

/// ... but no more than the loaded model reads in this long on this machine (a 7B on two cores
/// reads about 18 tokens a second).
const CONTEXT_TARGET: Duration = Duration::from_secs(20);

/// The least context worth sending.
const MIN_CONTEXT_TOKENS: usize = 128;

/// Tokens an explanation may take.
pub const ANSWER_TOKENS: u32 = 640;

/// What to explain.
#[derive(Clone)]
pub struct Request {
    pub snapshot: Snapshot,
    /// The selection, as byte offsets; equal for a cursor.
    pub start: usize,
    pub end: usize,
    /// Other open documents, for definitions.
    pub others: Vec<Snapshot>,
    /// The workspace folder, for relative paths.
    pub root: Option<PathBuf>,
}

/// Why there is no explanation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExplainError {
    /// Nothing but blank lines there.
    Empty,
    /// No function to document there, or it has documentation already.
    NoFunction,
    /// The model is still loading.
    Loading,
    /// No model: it failed to load, or none is configured.
    Unavailable(String),
    Cancelled,
    Failed(String),
}

impl std::fmt::Display for ExplainError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExplainError::Empty => f.write_str("nothing to explain here: the range holds no code"),
            ExplainError::NoFunction => f.write_str("no undocumented function here to document"),
            ExplainError::Loading => f.write_str("the model is still loading; try again in a moment"),
            ExplainError::Unavailable(message) => write!(f, "no model to explain with: {message}"),
            ExplainError::Cancelled => f.write_str("the explanation was cancelled"),
            ExplainError::Failed(message) => write!(f, "the explanation failed: {message}"),
        }
    }
}

impl std::error::Error for ExplainError {}

impl From<EngineError> for ExplainError {
    fn from(err: EngineError) -> ExplainError {
        match err {
            EngineError::NotReady => ExplainError::Loading,
            EngineError::Cancelled => ExplainError::Cancelled,
            EngineError::Unavailable(message) => ExplainError::Unavailable(message),
            other => ExplainError::Failed(other.to_string()),
        }
    }
}

/// A finished explanation.
#[derive(Clone, Debug)]
pub struct Explanation {
    pub target: Target,
    pub markdown: String,
}

/// What a request explains (to offer the action, and to say what is being explained).
pub fn target(request: &Request) -> Result<Target, ExplainError> {
    let snapshot = &request.snapshot;
    explain::target(snapshot.language, &snapshot.text, snapshot.tree.as_ref(), request.start, request.end)
        .ok_or(ExplainError::Empty)
}

/// Explains the request's code at background priority (completions go first), telling
/// `on_text` the markdown so far as it grows.
pub async fn explain(
    engine: &Engine,
    settings: &Settings,
    request: &Request,
    on_text: impl Fn(&str) + Send + Sync + 'static,
    cancel: CancelToken,
) -> Result<Explanation, ExplainError> {
    let target = target(request)?;
    let room = context_room(engine, settings)?;
    let prompt = {
        let target = target.clone();
        build_prompt(engine, request, &target.clone(), room, move |code, context, budget, counter| {
            explain::explain_prompt(&target, code, context, budget, counter)
        })
        .await?
    };
    let mut job = Job::new(Priority::Background, prompt, ANSWER_TOKENS);
    job.sampling = settings.sampling;
    job.on_text = Some(TextSink(Arc::new(move |text: &str| on_text(text))));
    stop_loops(&mut job);
    let output = engine.generate(job, cancel.clone()).await?;
    if cancel.is_cancelled() {
        return Err(ExplainError::Cancelled);
    }
    let markdown = output.text.trim().to_owned();
    if markdown.is_empty() {
        return Err(ExplainError::Failed("the model wrote nothing".into()));
    }
    Ok(Explanation { target, markdown })
}

/// Ends a prose job where it starts to repeat a sentence: a model that loops would write the same
/// sentences until the token cap, holding the background slot for nothing. The output (an
/// explanation's last notification) ends before the repeat.
fn stop_loops(job: &mut Job) {
    job.stop_check = Some(StopCheck(Arc::new(cut_at_repeated_sentence)));
    job.stop_check_every_token = true;
}

/// Tokens a function's documentation may take.
pub const DOC_TOKENS: u32 = 320;

/// A function's documentation, ready to insert.
#[derive(Clone, Debug)]
pub struct Documentation {
    pub site: DocSite,
    /// The comment, whole lines at the function's indentation, to insert at the start of
    /// `site.line`.
    pub comment: String,
    /// The document's version it was written for.
    pub version: i32,
}

/// The undocumented function at the request's start and where its documentation goes.
pub fn doc_site(request: &Request) -> Option<DocSite> {
    let snapshot = &request.snapshot;
    explain::doc_site(snapshot.language, &snapshot.text, snapshot.tree.as_ref(), request.start)
}

/// Writes the documentation of the function at the request's start, at background priority; the
/// comment is checked to parse where it goes.
pub async fn document(
    engine: &Engine,
    settings: &Settings,
    request: &Request,
    cancel: CancelToken,
) -> Result<Documentation, ExplainError> {
    let site = doc_site(request).ok_or(ExplainError::NoFunction)?;
    let room = context_room(engine, settings)?;
    let prompt = {
        let site = site.clone();
        build_prompt(engine, request, &site.function.clone(), room, move |code, context, budget, counter| {
            explain::document_prompt(&site, code, context, budget, counter)
        })
        .await?
    };
    let mut job = Job::new(Priority::Background, prompt, DOC_TOKENS);
    job.sampling = settings.sampling;
    stop_loops(&mut job);
    let output = engine.generate(job, cancel.clone()).await?;
    if cancel.is_cancelled() {
        return Err(ExplainError::Cancelled);
    }
    let comment = doc_comment(site.style, &site.indent, &output.text)
        .ok_or_else(|| ExplainError::Failed("the model wrote no documentation".into()))?;
    let snapshot = &request.snapshot;
    if let (Some(language), Some(tree)) = (snapshot.language, snapshot.tree.as_ref()) {
        let at = snapshot.text.line_to_byte(site.line);
        let before = Errors::of(language, &snapshot.text, tree, at).before;
        let after = Errors::left_by(language, &snapshot.text, tree, at, at, &comment);
        if after.is_some_and(|after| after > before) {
            tracing::warn!("documentation that would not parse: {comment:?}");
            return Err(ExplainError::Failed("the documentation the model wrote would not parse there".into()));
        }
    }
    Ok(Documentation { site, comment, version: snapshot.version })
}

/// Tokens of context a job may read besides its code: [`CONTEXT_TOKENS`], or what the loaded
/// model reads in [`CONTEXT_TARGET`] here. Fails when no model is ready.
pub(crate) fn context_room(engine: &Engine, settings: &Settings) -> Result<usize, ExplainError> {
    let model = match engine.state() {
        State::Ready { model, .. } => model,
        State::Loading { .. } => return Err(ExplainError::Loading),
        State::Failed { message } => return Err(ExplainError::Unavailable(message)),
    };
    Ok(match model.rates {
        Some(rates) if settings.adaptive_budgets => {
            let tokens = CONTEXT_TARGET.as_micros() / u128::from(rates.prompt_us_per_token.max(1));
            usize::try_from(tokens).unwrap_or(usize::MAX).clamp(MIN_CONTEXT_TOKENS, CONTEXT_TOKENS)
        }
        _ => CONTEXT_TOKENS,
    })
}

/// Builds a prompt about `target`'s code off the async threads (definitions come from other
/// files, some read from disk), with the model's tokenizer where it has one.
pub(crate) async fn build_prompt(
    engine: &Engine,
    request: &Request,
    target: &Target,
    room: usize,
    make: impl FnOnce(&str, &explain::Context, usize, &dyn Counter) -> Prompt + Send + 'static,
) -> Result<Prompt, ExplainError> {
    let counter = engine.counter();
    let (request, target) = (request.clone(), target.clone());
    tokio::task::spawn_blocking(move || {
        let counter: &dyn Counter = match &counter {
            Some(counter) => counter,
            None => &Estimate,
        };
        prompt(&request, &target, room, counter, make)
    })
    .await
    .map_err(|err| ExplainError::Failed(format!("building the prompt failed: {err}")))
}

/// The prompt: the code, then within `room` more tokens the file's imports and the definitions
/// of the names it uses (the file's own outside the code included).
fn prompt(
    request: &Request,
    target: &Target,
    room: usize,
    counter: &dyn Counter,
    make: impl FnOnce(&str, &explain::Context, usize, &dyn Counter) -> Prompt,
) -> Prompt {
    let snapshot = &request.snapshot;
    let root = request.root.as_deref();
    let code = snapshot.text.byte_slice(target.start..target.end).to_string();
    let imports = snapshot.tree.as_ref().map(|tree| import_lines(&snapshot.text, tree)).unwrap_or_default();
    let definitions: Vec<Extra> =
        definitions_used(snapshot, &code, &request.others, root, Some(target.start..target.end))
            .into_iter()
            .map(|s| Extra { path: s.path, text: s.text })
            .collect();
    let path = display_path(&snapshot.uri, root);
    let context = explain::Context {
        path: &path,
        language_id: &snapshot.language_id,
        imports: &imports,
        definitions: &definitions,
    };
    let budget = counter.count(&code) + room;
    make(&code, &context, budget, counter)
}

/// The file's top-level import statements, as written (at most [`MAX_IMPORTS`]).
fn import_lines(text: &ropey::Rope, tree: &tree_sitter::Tree) -> Vec<String> {
    let root = tree.root_node();
    let mut walker = root.walk();
    let imports = root.named_children(&mut walker).filter(|node| {
        matches!(
            node.kind(),
            "import_statement" | "import_from_statement" | "future_import_statement" | "use_declaration"
        )
    });
    imports.take(MAX_IMPORTS).map(|node| text.byte_slice(node.byte_range()).to_string()).collect()
}

/// Import statements shown at most.
const MAX_IMPORTS: usize = 40;
