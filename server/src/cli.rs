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
            "--line" | "--column" => {
                let raw = value(&flag)?;
                let number: u32 = raw.parse().map_err(|_| format!("{flag} needs a number, got `{raw}`"))?;
                match &mut parsed.command {
                    Command::Complete { line, column, .. } => {
                        *if flag == "--line" { line } else { column } = number;
                    }
                    _ => return Err(format!("{flag} goes with the complete command")),
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

/// The `complete` command: the server's pipeline on a file from disk, at a 1-based line and
/// column (counted in characters).
pub async fn complete(settings: &Settings, file: &std::path::Path, line: u32, column: u32) -> Result<String, String> {
    use crate::completion::decide::Trigger;
    use crate::documents::{uri, Document, Encoding, LineCol};
    use crate::engine::{CancelToken, Engine, State};
    use crate::workspace::{At, Workspace};

    if line == 0 || column == 0 {
        return Err("--line and --column are 1-based and both needed".into());
    }
    let text = std::fs::read_to_string(file).map_err(|err| format!("cannot read {}: {err}", file.display()))?;
    let absolute = std::fs::canonicalize(file).unwrap_or_else(|_| file.to_owned());
    let uri = uri::from_path(&absolute);
    let workspace = Workspace::new(settings.clone());
    workspace.set_root(absolute.parent().map(std::path::Path::to_path_buf));
    workspace.open(Document::new(&uri, crate::syntax::language_id(&absolute), 1, &text));
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
}
