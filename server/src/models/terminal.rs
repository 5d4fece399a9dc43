//! A download progress display for the command line, drawn on stderr.
//!
//! On a terminal it is one line redrawn in place; otherwise (a log file, CI) it is a line at every
//! tenth of the download, so that logs stay short.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::download::{human_bytes, resolve, FetchError, FetchOptions, Progress};
use super::ModelSpec;

/// How often the terminal line is redrawn.
const REDRAW_EVERY: Duration = Duration::from_millis(100);

/// Without a known size, a line every this many bytes when stderr is not a terminal.
const LINE_EVERY_BYTES: u64 = 100 * 1024 * 1024;

/// The width of the bar, in characters.
const BAR_WIDTH: usize = 30;

/// For the command line: [`resolve`] with a progress bar drawn on stderr (only if stderr is a
/// terminal; else a line every 10 %). Nothing is drawn when the model is already cached.
pub fn resolve_with_terminal_progress(spec: &ModelSpec, options: &FetchOptions) -> Result<PathBuf, FetchError> {
    let mut display = Display::new(spec.to_string(), std::io::stderr().is_terminal());
    let result = resolve(spec, options, &mut |progress| {
        display.update(progress);
        true
    });
    display.finish();
    result
}

struct Display {
    name: String,
    terminal: bool,
    started: Option<Instant>,
    /// The bytes already there when this process started (a resumed part), for the rate.
    first_bytes: u64,
    last_draw: Option<Instant>,
    /// The last line's tenth (with a total) or `LINE_EVERY_BYTES` step (without).
    last_step: Option<u64>,
    latest: Option<Progress>,
}

impl Display {
    fn new(name: String, terminal: bool) -> Display {
        Display { name, terminal, started: None, first_bytes: 0, last_draw: None, last_step: None, latest: None }
    }

    fn update(&mut self, progress: Progress) {
        let now = Instant::now();
        if self.started.is_none() {
            self.started = Some(now);
            self.first_bytes = progress.downloaded;
            let size = progress.total.map(|total| format!(" ({})", human_bytes(total))).unwrap_or_default();
            write_stderr(&format!("Downloading {}{size}\n", self.name));
        }
        self.latest = Some(progress);
        if self.terminal {
            if self.last_draw.is_none_or(|last| now.duration_since(last) >= REDRAW_EVERY) {
                self.last_draw = Some(now);
                write_stderr(&format!("\r{}", self.line(progress)));
            }
            return;
        }
        let step = match progress.total {
            Some(total) if total > 0 => progress.downloaded.saturating_mul(10) / total,
            _ => progress.downloaded / LINE_EVERY_BYTES,
        };
        if self.last_step.is_none_or(|last| step > last) {
            self.last_step = Some(step);
            write_stderr(&format!("{}\n", self.line(progress)));
        }
    }

    /// Draws the final state and ends the terminal line.
    fn finish(&mut self) {
        if let (true, Some(progress)) = (self.terminal, self.latest) {
            write_stderr(&format!("\r{}\n", self.line(progress)));
        }
    }

    fn line(&self, progress: Progress) -> String {
        let elapsed = self.started.map_or(0.0, |started| started.elapsed().as_secs_f64());
        let rate = if elapsed > 0.5 {
            let bytes = progress.downloaded.saturating_sub(self.first_bytes) as f64 / elapsed;
            format!("  {}/s", human_bytes(bytes as u64))
        } else {
            String::new()
        };
        match progress.total {
            Some(total) if total > 0 => {
                let fraction = (progress.downloaded as f64 / total as f64).clamp(0.0, 1.0);
                let filled = (fraction * BAR_WIDTH as f64).round() as usize;
                let bar = format!("{}{}", "#".repeat(filled), "-".repeat(BAR_WIDTH - filled));
                format!(
                    "{:>3}% [{bar}] {} / {}{rate}   ",
                    (fraction * 100.0).floor(),
                    human_bytes(progress.downloaded),
                    human_bytes(total)
                )
            }
            _ => format!("{}{rate}   ", human_bytes(progress.downloaded)),
        }
    }
}

/// Writes to stderr, ignoring failures (a closed stderr must not fail a download).
#[allow(clippy::print_stderr)] // The progress display is for a human at the command line; stdout is the LSP channel.
fn write_stderr(text: &str) {
    let mut stderr = std::io::stderr().lock();
    let _ = stderr.write_all(text.as_bytes());
    let _ = stderr.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines() {
        let mut display = Display::new("hf:o/r/f.gguf".into(), false);
        display.started = Some(Instant::now());
        let line = display.line(Progress { downloaded: 3 * 1024 * 1024, total: Some(6 * 1024 * 1024) });
        assert!(line.starts_with(" 50% [###############---------------] 3.0 MiB / 6.0 MiB"), "{line}");
        assert!(display.line(Progress { downloaded: 10, total: None }).starts_with("10 B"));
    }
}
