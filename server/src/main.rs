//! The `mistral-lsp` binary: parse the command line, set up logging, serve LSP on stdio.

// Help, version and argument errors go to stderr before logging exists; stdout stays LSP-only.
#![allow(clippy::print_stderr)]

use std::process::ExitCode;

use mistral_lsp::cli::{self, Command};
use mistral_lsp::lsp;

fn main() -> ExitCode {
    // An assertion that fails inside ggml first runs gdb from PATH to print a backtrace (slow,
    // and a program the user did not ask for); the abort that follows is reported without it.
    // Set before any thread exists, unless the user asked for backtraces their own way.
    if std::env::var_os("GGML_NO_BACKTRACE").is_none() {
        std::env::set_var("GGML_NO_BACKTRACE", "1");
    }
    let args = match cli::parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(message) => {
            eprintln!("mistral-lsp: {message}");
            return ExitCode::from(2);
        }
    };
    match args.command {
        Command::Help => {
            eprint!("{}", cli::USAGE);
            return ExitCode::SUCCESS;
        }
        Command::Version => {
            eprintln!("mistral-lsp {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Command::SettingsSchema => return print_schema(),
        Command::ProbeModel(path) => return probe_model(path),
        Command::FetchModel(_)
        | Command::Complete { .. }
        | Command::Explain { .. }
        | Command::Review(_)
        | Command::Serve => {}
    }
    // Model files are read in a child process first: an abort in llama.cpp ends that child only.
    match std::env::current_exe() {
        Ok(program) => mistral_lsp::engine::set_probe_program(program),
        Err(err) => eprintln!("mistral-lsp: model files will be loaded unchecked: {err}"),
    }
    let mut problems = Vec::new();
    let options = cli::base_options(&args, &mut problems);
    if let Err(message) = init_logging(&cli::log_level(&options), args.log_file.as_deref()) {
        eprintln!("mistral-lsp: {message}");
        return ExitCode::from(2);
    }
    for problem in &problems {
        tracing::warn!("{problem}");
    }
    if let Command::FetchModel(spec) = &args.command {
        let settings = mistral_lsp::config::Settings::resolve(&options);
        return fetch_model(spec.clone().unwrap_or_else(|| settings.model.clone()), &settings);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            tracing::error!("cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    if let Command::Complete { file, line, column } = &args.command {
        let settings = mistral_lsp::config::Settings::resolve(&options);
        let code = match runtime.block_on(mistral_lsp::cli::complete(&settings, file, *line, *column)) {
            Ok(text) => i32::from(answer(&text)),
            Err(message) => {
                eprintln!("mistral-lsp: {message}");
                1
            }
        };
        end_process(code);
    }
    if let Command::Explain { file, line, end_line } = &args.command {
        let settings = mistral_lsp::config::Settings::resolve(&options);
        let explained = mistral_lsp::cli::explain(&settings, file, *line, *end_line, std::io::stdout());
        let code = match runtime.block_on(explained) {
            Ok(_) => 0,
            Err(message) => {
                eprintln!("mistral-lsp: {message}");
                1
            }
        };
        end_process(code);
    }
    if let Command::Review(review) = &args.command {
        let settings = mistral_lsp::config::Settings::resolve(&options);
        let code = match runtime.block_on(mistral_lsp::review::command::run(&settings, review)) {
            Ok(outcome) => {
                use std::io::Write;
                let mut out = std::io::stdout().lock();
                match out.write_all(outcome.report.as_bytes()).and_then(|()| out.flush()) {
                    Ok(()) => i32::from(outcome.failed),
                    Err(_) => 2,
                }
            }
            Err(message) => {
                eprintln!("mistral-lsp: {message}");
                2
            }
        };
        end_process(code);
    }
    let session = lsp::Session::new(options, problems);
    let code = runtime.block_on(lsp::serve(tokio::io::stdin(), tokio::io::stdout(), session));
    tracing::info!("exiting with code {code}");
    end_process(code)
}

/// Ends the process once a model may have been loaded, without running the C and C++ exit
/// handlers: the engine thread may still be inside a llama.cpp call (a pre-warm job that started
/// just before `exit`, a model being freed), and `exit()` tears down ggml's global backend state
/// under it, which aborts the process (`pre-allocated tensor ... in a buffer (CPU_REPACK) that
/// cannot run the operation`) and turns a clean exit into a crash. Our own output is flushed first;
/// nothing else needs those handlers (logs are written unbuffered).
#[allow(unsafe_code)]
fn end_process(code: i32) -> ! {
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    // SAFETY: `_exit` takes no pointers and never returns; skipping exit handlers is the point.
    unsafe { libc::_exit(code) }
}

/// The `probe-model` command, run by the engine in a child process: exits 0 if llama.cpp reads
/// the model file; its errors (and llama.cpp's) go to stderr for the parent to report.
fn probe_model(path: std::path::PathBuf) -> ExitCode {
    if init_logging("error", None).is_err() {
        return ExitCode::FAILURE;
    }
    match mistral_lsp::engine::probe_model(&path) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("{message}");
            ExitCode::FAILURE
        }
    }
}

/// Prints the settings table for editor clients to generate their settings from.
fn print_schema() -> ExitCode {
    let schema = mistral_lsp::config::editor_schema();
    ExitCode::from(answer(&serde_json::to_string_pretty(&schema).unwrap_or_default()))
}

/// Writes a command's answer on stdout (never in server mode, where stdout is the LSP channel).
fn answer(text: &str) -> u8 {
    use std::io::Write;
    match writeln!(std::io::stdout(), "{text}").and_then(|()| std::io::stdout().flush()) {
        Ok(()) => 0,
        Err(_) => 1,
    }
}

/// Downloads (or finds in the cache) a model, drawing progress on stderr; prints its path on stdout.
fn fetch_model(spec: String, settings: &mistral_lsp::config::Settings) -> ExitCode {
    let spec = match mistral_lsp::models::ModelSpec::parse(&spec) {
        Ok(spec) => spec,
        Err(message) => {
            eprintln!("mistral-lsp: {message}");
            return ExitCode::from(2);
        }
    };
    match mistral_lsp::models::resolve_with_terminal_progress(&spec, &mistral_lsp::engine::fetch_options(settings)) {
        Ok(path) => ExitCode::from(answer(&path.display().to_string())),
        Err(err) => {
            eprintln!("mistral-lsp: {err}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(level: &str, file: Option<&std::path::Path>) -> Result<(), String> {
    let filter =
        tracing_subscriber::EnvFilter::try_new(format!("mistral_lsp={level},warn")).map_err(|e| e.to_string())?;
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_ansi(false).with_target(false);
    match file {
        Some(path) => {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|err| format!("cannot open log file {}: {err}", path.display()))?;
            builder.with_writer(std::sync::Mutex::new(file)).init();
        }
        None => builder.with_writer(std::io::stderr).init(),
    }
    Ok(())
}
