//! A deterministic test backend for protocol tests. Compiled only with the `test-backend` feature,
//! which only test builds enable, so users can never reach it.
//!
//! Spec: `test:MODE[?load_ms=N&prompt_ms=N&token_ms=N&tokens=N&prompt_us=N&generation_us=N]`.
//! `prompt_us`/`generation_us` are the speed it reports as measured (microseconds a prompt
//! token and a generated token; unmeasured without them), which the adaptive budgets read.
//! Modes:
//! - `checksum`: answers `"LEN:HASH"` (a string literal, valid code in most places), where LEN
//!   is the cursor's byte offset in the prompt's window of the file and HASH the FNV-1a hash
//!   (hex) of that window's text. It reads native FIM prompts (prefix, suffix, and the cursor
//!   line after FIM_MIDDLE) and `Prompt::Infill`; other prompts hash their text with LEN 0.
//!   Tests compute the same from their own copy of the text, which proves the completion saw
//!   every edit sent before it. It reports FIM and repo tokens, so `auto` picks native FIM, and
//!   honours `Job::required_prefix` by starting its answer with it. An alternative that must
//!   avoid the string's first word (`Job::avoid`) is the hash as a hex number instead.
//!   Prompts are counted at four bytes a token (`TokenCounter::Rule`), through the same engine
//!   API as a real model's tokenizer. A job with a grammar (a review) gets instead one finding
//!   on the first numbered line of the prompt (`  12| code`) that holds the word `bug`: that
//!   line quoted, category `bug`, and as its fix the line with `bug` replaced by `fixed`; no
//!   such line, no findings.
//! - `fail`: fails to load, with a clear message.
//!
//! Each job first "evaluates its prompt" for `prompt_ms`, in 10 ms steps; then the answer is
//! emitted in `tokens` pieces, `token_ms` apart, checking for cancellation between steps as the
//! real engine does between batches and tokens. Like the real engine it keeps one "cache" (the
//! last prompt's text, rendered with its special tokens): a job whose prompt shares a start with
//! it reports those bytes as reused and only the rest as evaluated (counted in bytes), and takes
//! `prompt_ms` times the share it evaluates. A job with `max_tokens` 0 only evaluates its
//! prompt (pre-warming).

use std::time::Duration;

use super::worker::{Backend, Shared, Step};
use super::{CancelToken, EngineError, Job, ModelInfo, Output, Prompt, Segment, Special, Stats, StopReason};

pub(crate) struct TestBackend {
    prompt_ms: u64,
    token_ms: u64,
    tokens: usize,
    rates: Option<crate::models::Rates>,
    /// The text of the last prompt, as far as it was evaluated.
    cached: String,
}

/// The step of simulated prompt evaluation.
const PROMPT_STEP_MS: u64 = 10;

pub(crate) struct Running {
    /// The rendered prompt, cached once its evaluation finishes.
    rendered: String,
    only_prompt: bool,
    pieces: Vec<String>,
    prompt_steps: u64,
    next: usize,
    text: String,
    cancel: CancelToken,
    stats: Stats,
    on_text: Option<super::TextSink>,
}

impl TestBackend {
    pub fn load(options: &str, shared: &Shared) -> Result<TestBackend, String> {
        let (mode, query) = options.split_once('?').unwrap_or((options, ""));
        let mut backend = TestBackend { prompt_ms: 0, token_ms: 0, tokens: 4, rates: None, cached: String::new() };
        let mut rates = crate::models::Rates::default();
        let mut load_ms = 0;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let number: u64 = value.parse().map_err(|_| format!("test backend: bad number in `{pair}`"))?;
            match key {
                "load_ms" => load_ms = number,
                "prompt_ms" => backend.prompt_ms = number,
                "token_ms" => backend.token_ms = number,
                "tokens" => backend.tokens = number.max(1) as usize,
                "prompt_us" => rates.prompt_us_per_token = number.clamp(1, u32::MAX.into()) as u32,
                "generation_us" => rates.generation_us_per_token = number.clamp(1, u32::MAX.into()) as u32,
                _ => return Err(format!("test backend: unknown option `{key}`")),
            }
        }
        backend.rates = (rates != crate::models::Rates::default()).then_some(rates);
        for step in 1..=4u32 {
            std::thread::sleep(Duration::from_millis(load_ms / 4));
            shared.loading("loading test model".into(), Some(step * 25));
        }
        match mode {
            "checksum" => {
                // Prompts are counted through the engine as with a real model: by a fixed rule
                // here, four bytes a token, so that tests can predict the window.
                *shared.counter.write() = Some(super::TokenCounter::Rule { bytes_per_token: 4 });
                Ok(backend)
            }
            "fail" => Err("test backend: asked to fail".into()),
            _ => Err(format!("test backend: unknown mode `{mode}`")),
        }
    }

    pub fn info(&self) -> ModelInfo {
        ModelInfo {
            description: "test backend".into(),
            architecture: "test".into(),
            name: "test coder".into(),
            has_fim_tokens: true,
            has_repo_tokens: true,
            rates: self.rates,
            ..ModelInfo::default()
        }
    }
}

/// The file window and cursor of a native FIM prompt: prefix, cursor line, suffix.
fn window_of(segments: &[Segment], required_prefix: &str) -> (usize, String) {
    let mut parts: [String; 3] = Default::default();
    let mut part = None;
    let native = segments.contains(&Segment::Special(Special::FimPrefix));
    for segment in segments {
        match segment {
            Segment::Special(Special::FimPrefix) => part = Some(0),
            Segment::Special(Special::FimSuffix) => part = Some(2),
            Segment::Special(Special::FimMiddle) => part = Some(1),
            Segment::Special(_) => part = None,
            Segment::Text(text) => match part {
                Some(index) => parts[index].push_str(text),
                None if !native => parts[0].push_str(text),
                None => {}
            },
        }
    }
    // Text the output must start with (token healing) stands before the cursor in the document.
    parts[1].push_str(required_prefix);
    let cursor = parts[0].len() + parts[1].len();
    (cursor, parts.concat())
}

/// The prompt as one string, special tokens written as their names.
fn rendered(prompt: &Prompt) -> String {
    match prompt {
        Prompt::Infill { prefix, suffix } => format!("<pre>{prefix}<suf>{suffix}<mid>"),
        Prompt::Segments(segments) => segments
            .iter()
            .map(|segment| match segment {
                Segment::Text(text) => text.clone(),
                Segment::Special(special) => format!("<{special:?}>"),
            })
            .collect(),
        Prompt::Chat { messages, answer_prefix } => {
            let mut text: String = messages.iter().map(|m| format!("<{}>{}", m.role, m.content)).collect();
            text.push_str("<answer>");
            text.push_str(answer_prefix);
            text
        }
    }
}

/// FNV-1a, 64 bits.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3))
}

impl TestBackend {
    /// A job that answers `answer`, after evaluating its prompt against the cache.
    fn running(&mut self, job: &Job, answer: String, cancel: CancelToken) -> Running {
        let size = answer.len().div_ceil(self.tokens).max(1);
        let pieces = answer.as_bytes().chunks(size).map(|c| String::from_utf8_lossy(c).into_owned()).collect();
        let rendered = rendered(&job.prompt);
        let common = self.cached.bytes().zip(rendered.bytes()).take_while(|(a, b)| a == b).count();
        // The last byte is evaluated again, as the real engine decodes the last token again.
        let reused = common.min(rendered.len().saturating_sub(1));
        let evaluated = rendered.len() - reused;
        let share = evaluated as f64 / rendered.len().max(1) as f64;
        let prompt_steps = (self.prompt_ms as f64 * share / PROMPT_STEP_MS as f64).ceil() as u64;
        let stats = Stats {
            prompt_tokens: rendered.len(),
            reused_tokens: reused,
            evaluated_tokens: evaluated,
            // The simulated time, not the clock's: what the engine learns its speed from.
            prompt_ms: prompt_steps * PROMPT_STEP_MS,
            ..Stats::default()
        };
        self.cached.truncate(reused);
        let only_prompt = job.max_tokens == 0;
        let on_text = job.on_text.clone();
        Running { rendered, only_prompt, pieces, prompt_steps, next: 0, text: String::new(), cancel, stats, on_text }
    }
}

impl Backend for TestBackend {
    type Running = Running;

    fn start(&mut self, job: Job, cancel: CancelToken) -> Result<Running, EngineError> {
        if job.score.is_some() {
            // Like a remote server: protocol tests see reviews whose fixes are not weighed.
            return Err(EngineError::Unsupported("the test backend does not score text".into()));
        }
        let (cursor, whole) = match &job.prompt {
            Prompt::Infill { prefix, suffix } => (prefix.len(), format!("{prefix}{suffix}")),
            Prompt::Segments(segments) => window_of(segments, &job.required_prefix),
            Prompt::Chat { messages, answer_prefix } => {
                (0, messages.iter().map(|m| m.content.as_str()).chain([answer_prefix.as_str()]).collect::<String>())
            }
        };
        let hash = fnv1a(whole.as_bytes());
        if job.grammar.is_some() {
            return Ok(self.running(&job, review_answer(&whole), cancel));
        }
        // Alternatives (`Job::avoid`): a string literal first, then a number, then nothing.
        let answer = [format!("\"{cursor}:{hash:016x}\""), format!("0x{hash:x}")]
            .into_iter()
            .find(|answer| {
                let word = crate::postprocess::first_word(answer);
                !word.is_some_and(|word| super::constrain::avoided(word.as_bytes(), &job.avoid))
            })
            .map_or_else(String::new, |answer| format!("{}{answer}", job.required_prefix));
        Ok(self.running(&job, answer, cancel))
    }

    fn step(&mut self, running: &mut Running) -> Step {
        if running.cancel.is_cancelled() {
            return Step::Done(Ok(Output {
                text: running.text.clone(),
                generated: running.text.clone(),
                stop: StopReason::Cancelled,
                stats: running.stats,
                log_prob: None,
            }));
        }
        if running.prompt_steps > 0 {
            std::thread::sleep(Duration::from_millis(PROMPT_STEP_MS));
            running.prompt_steps -= 1;
            return Step::Continue;
        }
        if self.cached.len() < running.rendered.len() {
            self.cached = std::mem::take(&mut running.rendered);
        }
        let Some(piece) = running.pieces.get(running.next).filter(|_| !running.only_prompt) else {
            return Step::Done(Ok(Output {
                text: running.text.clone(),
                generated: running.text.clone(),
                stop: if running.only_prompt { StopReason::MaxTokens } else { StopReason::EndOfText },
                stats: running.stats,
                log_prob: None,
            }));
        };
        std::thread::sleep(Duration::from_millis(self.token_ms));
        running.text.push_str(piece);
        if let Some(sink) = &running.on_text {
            (sink.0)(&running.text);
        }
        running.next += 1;
        running.stats.generated_tokens += 1;
        running.stats.generation_ms += self.token_ms;
        Step::Continue
    }
}

/// The test backend's review: one finding on the first numbered line that holds `bug`.
fn review_answer(prompt: &str) -> String {
    let numbered = prompt.lines().find_map(|line| {
        let (number, code) = line.split_once("| ")?;
        let number: usize = number.trim().parse().ok()?;
        code.split(|c: char| !c.is_alphanumeric() && c != '_').any(|w| w == "bug").then_some((number, code))
    });
    let findings = match numbered {
        Some((line, code)) => serde_json::json!([{
            "line": line,
            "end_line": line,
            "code": code,
            "category": "bug",
            "severity": "error",
            "message": "This line has a bug.",
            "fix": code.replace("bug", "fixed"),
        }]),
        None => serde_json::json!([]),
    };
    serde_json::json!({ "findings": findings }).to_string()
}
