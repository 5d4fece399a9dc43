//! A deterministic test backend for protocol tests. Compiled only with the `test-backend` feature,
//! which only test builds enable, so users can never reach it.
//!
//! Spec: `test:MODE[?load_ms=N&token_ms=N&tokens=N]`. Modes:
//! - `checksum`: answers `/*LEN:HASH*/`, where LEN is the prefix's length in bytes and HASH the
//!   FNV-1a hash (hex) of prefix + suffix. Tests compute the same from their own copy of the text,
//!   which proves the completion saw every edit sent before it.
//! - `fail`: fails to load, with a clear message.
//!
//! The answer is emitted in `tokens` pieces, `token_ms` apart, checking for cancellation between
//! pieces as the real engine does between tokens.

use std::time::Duration;

use tokio::sync::watch;

use super::{Backend, CancelToken, EngineError, Job, Output, State, Stats, StopReason};

pub(crate) struct TestBackend {
    token_ms: u64,
    tokens: usize,
}

impl TestBackend {
    pub fn load(options: &str, state: &watch::Sender<State>) -> Result<TestBackend, String> {
        let (mode, query) = options.split_once('?').unwrap_or((options, ""));
        let mut backend = TestBackend { token_ms: 0, tokens: 4 };
        let mut load_ms = 0;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let number: u64 = value.parse().map_err(|_| format!("test backend: bad number in `{pair}`"))?;
            match key {
                "load_ms" => load_ms = number,
                "token_ms" => backend.token_ms = number,
                "tokens" => backend.tokens = number.max(1) as usize,
                _ => return Err(format!("test backend: unknown option `{key}`")),
            }
        }
        for step in 1..=4u32 {
            std::thread::sleep(Duration::from_millis(load_ms / 4));
            state.send_replace(State::Loading { message: "loading test model".into(), percent: Some(step * 25) });
        }
        match mode {
            "checksum" => Ok(backend),
            "fail" => Err("test backend: asked to fail".into()),
            _ => Err(format!("test backend: unknown mode `{mode}`")),
        }
    }
}

/// FNV-1a, 64 bits.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3))
}

impl Backend for TestBackend {
    fn describe(&self) -> String {
        "test backend".into()
    }

    fn generate(&mut self, job: &Job, cancel: &CancelToken) -> Result<Output, EngineError> {
        let whole = format!("{}{}", job.prefix, job.suffix);
        let answer = format!("/*{}:{:016x}*/", job.prefix.len(), fnv1a(whole.as_bytes()));
        let piece = answer.len().div_ceil(self.tokens);
        let mut text = String::new();
        let mut stats = Stats { prompt_tokens: whole.len(), evaluated_tokens: whole.len(), ..Stats::default() };
        for chunk in answer.as_bytes().chunks(piece) {
            if cancel.is_cancelled() {
                return Ok(Output { text, stop: StopReason::Cancelled, stats });
            }
            std::thread::sleep(Duration::from_millis(self.token_ms));
            text.push_str(std::str::from_utf8(chunk).unwrap_or_default());
            stats.generated_tokens += 1;
        }
        Ok(Output { text, stop: StopReason::EndOfText, stats })
    }
}
