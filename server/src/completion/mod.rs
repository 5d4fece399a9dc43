//! The completion pipeline: snapshot and cursor in, suggestion out. No LSP types here.

pub mod decide;

use crate::config::Settings;
use crate::documents::Snapshot;
use crate::engine::{CancelToken, Engine, EngineError, Job, Priority, Prompt};
use crate::{postprocess, prompt};

/// Text to show at the cursor, replacing bytes `start..end` of the snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Suggestion {
    pub text: String,
    pub start: usize,
    pub end: usize,
}

/// Runs the model for the cursor at byte `offset`. `Ok(None)` means nothing worth showing.
pub async fn suggest(
    engine: &Engine,
    snapshot: &Snapshot,
    offset: usize,
    settings: &Settings,
    cancel: CancelToken,
) -> Result<Option<Suggestion>, EngineError> {
    let infill = prompt::infill(&snapshot.text, offset);
    let line_suffix = infill.suffix.split(['\n', '\r']).next().unwrap_or_default().to_owned();
    let prompt = Prompt::Infill { prefix: infill.prefix, suffix: infill.suffix };
    let mut job = Job::new(Priority::Interactive, prompt, settings.max_tokens);
    job.sampling = settings.sampling;
    let output = engine.generate(job, cancel).await?;
    let text = postprocess::trim_line_suffix(&output.text, &line_suffix);
    if text.trim().is_empty() {
        return Ok(None);
    }
    Ok(Some(Suggestion { text, start: offset, end: offset }))
}
