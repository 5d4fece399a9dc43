//! The command line: flags shared by every mode, and the modes themselves.

use std::path::PathBuf;

use crate::config::{Options, Problem, Settings};

pub const USAGE: &str = "\
mistral-lsp: a local AI coding assistant as a language server

USAGE:
    mistral-lsp [serve] [OPTIONS]       Serve LSP on stdin/stdout (the default)
    mistral-lsp fetch-model [SPEC]      Download a model into the cache (default: the model setting)
                                        and print its path
    mistral-lsp complete FILE --line L --column C
                                        Print the suggestion at line L, column C (1-based),
                                        with the same pipeline and defaults as the server
    mistral-lsp explain FILE --line N [--end-line M]
                                        Explain lines N to M (1-based), or with no --end-line the
                                        function, class or impl around line N; the markdown
                                        streams to stdout as it is written
    mistral-lsp review [FILES...] [--diff REV] [--format F] [--fail-on L]
                                        Review files (or, with --diff, only the lines changed
                                        since git revision REV, in the files given or all changed
                                        files) and print the findings as text, json, sarif,
                                        github or rdjson. Exit 0: no finding at or above
                                        --fail-on (error, warning or never; default error);
                                        1: such findings; 2: usage or model errors
    mistral-lsp settings-schema         Print the settings as VS Code configuration properties (JSON)

OPTIONS:
    --model SPEC          A .gguf path, or hf:OWNER/REPO/FILE.gguf   [env MISTRAL_LSP_MODEL]
    --threads N           CPU threads; 0 means one per physical core  [env MISTRAL_LSP_THREADS]
    --gpu-layers N        Layers to offload to a GPU                   [env MISTRAL_LSP_GPU_LAYERS]
    --context-size N      Context window in tokens                     [env MISTRAL_LSP_CONTEXT_SIZE]
    --remote URL          Use the inference server at URL (llama-server or OpenAI-compatible)
                          instead of a local model; API key from MISTRAL_LSP_API_KEY
                                                                       [env MISTRAL_LSP_REMOTE_URL]
    --fim-mode MODE       auto, native, instruct or prefix             [env MISTRAL_LSP_FIM_MODE]
    --log-level LEVEL     error, warn, info, debug or trace            [env MISTRAL_LSP_LOG]
    --log-file PATH       Write the log there instead of stderr
    --set KEY=VALUE       Any setting by its editor key, e.g. --set completion.maxTokens=64
    --stdio               Accepted for editors that pass it; stdio is the only transport
    -V, --version         Print the version
    -h, --help            Print this help

Logs go to stderr (or --log-file). stdout carries only LSP messages.
";

/// What the command line asks for.
#[derive(Debug, Default)]
pub struct Args {
    pub command: Command,
    pub options: Options,
    pub problems: Vec<Problem>,
    pub log_file: Option<PathBuf>,
}

#[derive(Debug, Default, PartialEq, Eq)]
pub enum Command {
    #[default]
    Serve,
    Help,
    Version,
    /// Download a model (the spec, or the configured model) and print its path.
    FetchModel(Option<String>),
    /// Print the settings table as editor configuration properties.
    SettingsSchema,
    /// Read a model file as loading does, without its weights, and exit 0 if llama.cpp accepts
    /// it (hidden: the server runs it in a child process, where an abort in llama.cpp is safe).
    ProbeModel(PathBuf),
    /// Complete a file at a 1-based line and column.
    Complete {
        file: PathBuf,
        line: u32,
        column: u32,
    },
    /// Explain a file's lines (1-based, inclusive), or the definition around a line.
    Explain {
        file: PathBuf,
        line: u32,
        end_line: Option<u32>,
    },
    /// Review files, or what changed since a git revision.
    Review(crate::review::command::ReviewArgs),
}

/// Parses arguments (without the program name). Errors are for arguments that make no sense at all.
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Args, String> {
    let mut parsed = Args::default();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") && flag != "--set" => {
                (flag.to_owned(), Some(value.to_owned()))
            }
            _ => (arg.clone(), None),
        };
        let mut value =
            |name: &str| inline.clone().or_else(|| args.next()).ok_or_else(|| format!("{name} needs a value"));
        let key = match flag.as_str() {
            "serve" | "--stdio" => continue,
            "complete" => {
                let file = value("complete")?;
                parsed.command = Command::Complete { file: PathBuf::from(file), line: 0, column: 0 };
                continue;
            }
            "explain" => {
                let file = value("explain")?;
                parsed.command = Command::Explain { file: PathBuf::from(file), line: 0, end_line: None };
                continue;
            }
            "review" => {
                parsed.command = Command::Review(Default::default());
                continue;
            }
            "--diff" | "--format" | "--fail-on" => {
                let raw = value(&flag)?;
                let Command::Review(review) = &mut parsed.command else {
                    return Err(format!("{flag} goes with the review command"));
                };
                review.set(&flag, &raw)?;
                continue;
            }
            file if !file.starts_with('-') && matches!(parsed.command, Command::Review(_)) => {
                if let Command::Review(review) = &mut parsed.command {
                    review.files.push(PathBuf::from(file));
                }
                continue;
            }
            "--line" | "--column" | "--end-line" => {
                let raw = value(&flag)?;
                let number: u32 = raw.parse().map_err(|_| format!("{flag} needs a number, got `{raw}`"))?;
                match (&mut parsed.command, flag.as_str()) {
                    (Command::Complete { line, .. } | Command::Explain { line, .. }, "--line") => *line = number,
                    (Command::Complete { column, .. }, "--column") => *column = number,
                    (Command::Explain { end_line, .. }, "--end-line") => *end_line = Some(number),
                    _ => return Err(format!("{flag} goes with the complete or explain command")),
                }
                continue;
            }
            "probe-model" => {
                parsed.command = Command::ProbeModel(PathBuf::from(value("probe-model")?));
                continue;
            }
            "settings-schema" => {
                parsed.command = Command::SettingsSchema;
                continue;
            }
            "fetch-model" => {
                let spec = args.next().filter(|a| !a.starts_with('-'));
                parsed.command = Command::FetchModel(spec);
                continue;
            }
            "-h" | "--help" => {
                parsed.command = Command::Help;
                continue;
            }
            "-V" | "--version" => {
                parsed.command = Command::Version;
                continue;
            }
            "--log-file" => {
                parsed.log_file = Some(PathBuf::from(value("--log-file")?));
                continue;
            }
            "--set" => {
                let pair = value("--set")?;
                let (key, raw) = pair.split_once('=').ok_or_else(|| format!("--set needs KEY=VALUE, got `{pair}`"))?;
                parsed.options.set_text("--set", key, raw, &mut parsed.problems);
                continue;
            }
            "--model" => "model",
            "--threads" => "threads",
            "--gpu-layers" => "gpuLayers",
            "--context-size" => "contextSize",
            "--fim-mode" => "fim.mode",
            "--remote" => "remote.url",
            "--log-level" => "log.level",
            other => return Err(format!("unknown argument `{other}`; see --help")),
        };
        let raw = value(&flag)?;
        parsed.options.set_text(&flag, key, &raw, &mut parsed.problems);
    }
    Ok(parsed)
}

/// Options from the environment, then the command line on top.
pub fn base_options(args: &Args, problems: &mut Vec<Problem>) -> Options {
    let mut options = Options::from_env(|name| std::env::var(name).ok(), problems);
    options.merge(&args.options);
    problems.extend(args.problems.iter().cloned());
    options
}

/// The log level to start with, before the editor has said anything.
pub fn log_level(options: &Options) -> String {
    Settings::resolve(options).log_level
}

/// A workspace rooted at the file's folder with the file open in it, and the file's URI.
fn open_file(settings: &Settings, file: &std::path::Path) -> Result<(crate::workspace::Workspace, String), String> {
    use crate::documents::{uri, Document};
    let text = std::fs::read_to_string(file).map_err(|err| format!("cannot read {}: {err}", file.display()))?;
    let absolute = std::fs::canonicalize(file).unwrap_or_else(|_| file.to_owned());
    let uri = uri::from_path(&absolute);
    let workspace = crate::workspace::Workspace::new(settings.clone());
    workspace.set_root(absolute.parent().map(std::path::Path::to_path_buf));
    workspace.open(Document::new(&uri, crate::syntax::language_id(&absolute), 1, &text));
    Ok((workspace, uri))
}

/// The `complete` command: the server's pipeline on a file from disk, at a 1-based line and
/// column (counted in characters).
pub async fn complete(settings: &Settings, file: &std::path::Path, line: u32, column: u32) -> Result<String, String> {
    use crate::completion::decide::Trigger;
    use crate::documents::{Encoding, LineCol};
    use crate::engine::{CancelToken, Engine, State};
    use crate::workspace::At;

    if line == 0 || column == 0 {
        return Err("--line and --column are 1-based and both needed".into());
    }
    let (workspace, uri) = open_file(settings, file)?;
    let engine = Engine::for_settings(settings)?;
    if let State::Failed { message } = engine.ready().await {
        return Err(message);
    }
    workspace.set_engine(Some(engine));
    let at = At { uri: &uri, position: LineCol { line: line - 1, column: column - 1 }, encoding: Encoding::Utf32 };
    let completion = workspace
        .complete(at, Trigger::Invoked, false, false, CancelToken::new(), || false)
        .await
        .map_err(|err| err.to_string())?;
    Ok(completion.suggestions.into_iter().next().map(|s| s.text).unwrap_or_default())
}

/// The `explain` command: the server's explain pipeline on a file from disk, for 1-based lines
/// `line..=end_line` or the definition around `line`, the markdown written to `out` as it grows.
pub async fn explain(
    settings: &Settings,
    file: &std::path::Path,
    line: u32,
    end_line: Option<u32>,
    out: impl std::io::Write + Send + 'static,
) -> Result<String, String> {
    use crate::engine::{CancelToken, Engine, State};

    if line == 0 || end_line == Some(0) {
        return Err("--line (and --end-line) are 1-based; --line is needed".into());
    }
    let (workspace, uri) = open_file(settings, file)?;
    let snapshot = workspace.documents.parsed(&uri, || false).await.ok_or("the file could not be opened")?;
    let lines = snapshot.text.len_lines();
    let first = (line as usize - 1).min(lines.saturating_sub(1));
    let (start, end) = match end_line {
        Some(last) if (last as usize) < first + 1 => return Err("--end-line comes before --line".into()),
        Some(last) => {
            let after = last as usize;
            let end = if after < lines { snapshot.text.line_to_byte(after) } else { snapshot.text.len_bytes() };
            (snapshot.text.line_to_byte(first), end)
        }
        None => {
            // At the line's first character: inside the code on it, not before its indentation.
            let start = snapshot.text.line_to_byte(first);
            let indent = snapshot.text.line(first).chars().take_while(|c| *c == ' ' || *c == '\t').count();
            (start + indent, start + indent)
        }
    };
    let request = crate::explain::Request { snapshot, start, end, others: Vec::new(), root: workspace.root() };
    crate::explain::target(&request).map_err(|err| err.to_string())?;
    let engine = Engine::for_settings(settings)?;
    if let State::Failed { message } = engine.ready().await {
        return Err(message);
    }
    workspace.set_engine(Some(engine));
    let out = std::sync::Arc::new(parking_lot::Mutex::new((out, 0usize)));
    let sink = out.clone();
    let on_text = move |text: &str| {
        let text = text.trim_start();
        let mut guard = sink.lock();
        let (out, written) = &mut *guard;
        if let Some(new) = text.get(*written..) {
            // A closed pipe only stops the output; the job ends by itself.
            let _ = out.write_all(new.as_bytes()).and_then(|()| out.flush());
            *written = text.len();
        }
    };
    let explanation = workspace.explain(&request, on_text, CancelToken::new()).await.map_err(|err| err.to_string())?;
    let mut guard = out.lock();
    let (out, _) = &mut *guard;
    let _ = out.write_all(b"\n").and_then(|()| out.flush());
    Ok(explanation.markdown)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Result<Args, String> {
        parse(list.iter().map(|s| s.to_string()))
    }

    #[test]
    fn flags_become_options() {
        let parsed =
            args(&["--stdio", "--model", "/m.gguf", "--gpu-layers=3", "--set", "completion.maxTokens=9"]).unwrap();
        let settings = Settings::resolve(&parsed.options);
        assert_eq!((settings.model.as_str(), settings.gpu_layers, settings.max_tokens), ("/m.gguf", 3, 9));
        assert!(parsed.problems.is_empty());
        assert_eq!(parsed.command, Command::Serve);
    }

    #[test]
    fn bad_values_are_problems_and_bad_flags_are_errors() {
        let parsed = args(&["--threads", "lots"]).unwrap();
        assert_eq!(parsed.problems.len(), 1);
        assert!(args(&["--frobnicate"]).is_err());
        assert!(args(&["--model"]).is_err());
        assert_eq!(args(&["-V"]).unwrap().command, Command::Version);
        assert_eq!(args(&["probe-model", "/m.gguf"]).unwrap().command, Command::ProbeModel("/m.gguf".into()));
    }

    #[test]
    fn review_takes_files_a_revision_a_format_and_a_threshold() {
        use crate::review::command::{FailOn, ReviewArgs};
        use crate::review::report::Format;
        let parsed =
            args(&["review", "a.py", "src/b.rs", "--diff", "HEAD~1", "--format=sarif", "--fail-on", "warning"]);
        let expected = ReviewArgs {
            files: vec!["a.py".into(), "src/b.rs".into()],
            diff: Some("HEAD~1".into()),
            format: Format::Sarif,
            fail_on: FailOn::Warning,
        };
        assert_eq!(parsed.unwrap().command, Command::Review(expected));
        assert!(args(&["review", "--format", "xml"]).is_err());
        assert!(args(&["review", "--fail-on", "sometimes"]).is_err());
        assert!(args(&["--diff", "HEAD"]).is_err(), "--diff without review");
        assert!(args(&["a.py"]).is_err(), "files only for review");
    }

    #[test]
    fn explain_takes_a_line_and_maybe_an_end_line() {
        let parsed = args(&["explain", "a.py", "--line", "3", "--end-line=7"]).unwrap();
        assert_eq!(parsed.command, Command::Explain { file: "a.py".into(), line: 3, end_line: Some(7) });
        let parsed = args(&["explain", "a.py", "--line", "3"]).unwrap();
        assert_eq!(parsed.command, Command::Explain { file: "a.py".into(), line: 3, end_line: None });
        assert!(args(&["explain", "a.py", "--column", "3"]).is_err(), "no columns for explain");
        assert!(args(&["--end-line", "3"]).is_err());
    }
}
