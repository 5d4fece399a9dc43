//! `mistral-lsp review`: files from disk, or what changed since a git revision, through the
//! server's review pipeline, printed for people or for CI, with an exit status to gate on.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::report::{self, FileFindings, Format};
use super::{diff_parts, file_parts, Severity};
use crate::config::Settings;
use crate::documents::{uri, Document};
use crate::engine::{CancelToken, Engine, State};
use crate::explain::Request;
use crate::postprocess::findings::Finding;
use crate::workspace::Workspace;

/// Files larger than this are left out of a review (generated code, data).
const MAX_FILE_BYTES: usize = 1 << 20;

/// The lowest severity that makes the command fail.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FailOn {
    #[default]
    Error,
    Warning,
    Never,
}

impl FailOn {
    fn fails(self, severity: Severity) -> bool {
        match self {
            FailOn::Error => severity >= Severity::Error,
            FailOn::Warning => severity >= Severity::Warning,
            FailOn::Never => false,
        }
    }
}

/// The review command's own arguments.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReviewArgs {
    pub files: Vec<PathBuf>,
    /// Review only what changed since this git revision.
    pub diff: Option<String>,
    pub format: Format,
    pub fail_on: FailOn,
}

impl ReviewArgs {
    /// Sets `--diff`, `--format` or `--fail-on`.
    pub fn set(&mut self, flag: &str, value: &str) -> Result<(), String> {
        match flag {
            "--diff" => self.diff = Some(value.to_owned()),
            "--format" => {
                self.format = Format::parse(value)
                    .ok_or_else(|| format!("--format is text, json, sarif, github or rdjson, not `{value}`"))?;
            }
            "--fail-on" => {
                self.fail_on = match value {
                    "error" => FailOn::Error,
                    "warning" => FailOn::Warning,
                    "never" => FailOn::Never,
                    _ => return Err(format!("--fail-on is error, warning or never, not `{value}`")),
                };
            }
            _ => return Err(format!("{flag} is not a review flag")),
        }
        Ok(())
    }
}

/// What the command found: the report to print and whether it fails the run.
pub struct Outcome {
    pub report: String,
    pub failed: bool,
}

/// Runs a review; errors are usage or model errors (exit status 2).
pub async fn run(settings: &Settings, args: &ReviewArgs) -> Result<Outcome, String> {
    let targets = targets(args)?;
    let cwd = std::env::current_dir().map_err(|err| format!("no working directory: {err}"))?;
    let workspace = Workspace::new(settings.clone());
    workspace.set_root(Some(cwd.clone()));
    let mut files = Vec::new();
    for (path, changed) in targets {
        let text = match std::fs::read_to_string(&path) {
            Ok(text) if text.len() <= MAX_FILE_BYTES => text,
            Ok(_) => {
                tracing::warn!("{} is larger than 1 MiB; left out", path.display());
                continue;
            }
            Err(err) if args.diff.is_some() => {
                tracing::warn!("{} left out: {err}", path.display());
                continue;
            }
            Err(err) => return Err(format!("cannot read {}: {err}", path.display())),
        };
        let absolute = cwd.join(&path);
        let uri = uri::from_path(&absolute);
        workspace.open(Document::new(&uri, crate::syntax::language_id(&absolute), 1, &text));
        files.push((path, uri, text, changed));
    }
    let engine = Engine::for_settings(settings)?;
    if let State::Failed { message } = engine.ready().await {
        return Err(message);
    }
    workspace.set_engine(Some(engine));
    let mut results: Vec<(String, String, Vec<Finding>)> = Vec::new();
    for (path, uri, text, changed) in files {
        let snapshot = workspace.documents.parsed(&uri, || false).await.ok_or("a file could not be opened")?;
        let others = workspace.documents.all().into_iter().filter(|other| other.uri != uri).collect();
        let request = Request { snapshot, start: 0, end: 0, others, root: Some(cwd.clone()) };
        let parts = match &changed {
            Some(changed) => diff_parts(&request, changed),
            None => file_parts(&request),
        };
        let shown = shown_path(&path);
        tracing::info!("reviewing {shown} ({} parts)", parts.len());
        let (findings, stats) =
            workspace.review(&request, &parts, CancelToken::new()).await.map_err(|err| err.to_string())?;
        tracing::info!("{shown}: {stats:?}");
        results.push((shown, text, findings));
    }
    let failed = results.iter().flat_map(|(_, _, f)| f).any(|f| args.fail_on.fails(f.severity));
    let files: Vec<FileFindings> =
        results.iter().map(|(path, text, findings)| FileFindings { path, text, findings }).collect();
    Ok(Outcome { report: report::render(args.format, &files), failed })
}

/// The files to review and, for a diff, their changed lines.
/// A file's changed lines (0-based, inclusive) when a diff is reviewed.
type Changed = Option<Vec<(usize, usize)>>;

fn targets(args: &ReviewArgs) -> Result<Vec<(PathBuf, Changed)>, String> {
    let Some(revision) = &args.diff else {
        if args.files.is_empty() {
            return Err("review needs files, or --diff REV for what changed since a git revision".into());
        }
        return Ok(args.files.iter().map(|f| (f.clone(), None)).collect());
    };
    let mut command = Command::new("git");
    command.args(["diff", "--unified=0", "--no-color", "--no-ext-diff", "--relative", revision, "--"]);
    command.args(&args.files);
    let output = command.output().map_err(|err| format!("cannot run git: {err}"))?;
    if !output.status.success() {
        return Err(format!("git diff {revision} failed: {}", String::from_utf8_lossy(&output.stderr).trim()));
    }
    let diff = String::from_utf8_lossy(&output.stdout);
    Ok(super::diff::changed_lines(&diff).into_iter().map(|(path, lines)| (PathBuf::from(path), Some(lines))).collect())
}

/// A path as reports show it: `/` separated, without a leading `./`.
fn shown_path(path: &Path) -> String {
    let text = path.to_string_lossy().replace('\\', "/");
    text.strip_prefix("./").map(str::to_owned).unwrap_or(text)
}
