//! What a loaded model is: facts from its GGUF metadata and vocabulary that prompts and status use.

/// What the loaded model is, from its GGUF metadata and vocabulary.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ModelInfo {
    /// A one-line description for status displays.
    pub description: String,
    /// `general.architecture`, such as `llama` or `qwen2`.
    pub architecture: String,
    /// `general.name`, if present.
    pub name: String,
    /// The vocabulary has FIM prefix, suffix and middle tokens.
    pub has_fim_tokens: bool,
    /// The vocabulary has repo-level tokens (`<|repo_name|>`, `<|file_sep|>`).
    pub has_repo_tokens: bool,
    /// The GGUF carries a chat template.
    pub has_chat_template: bool,
    pub context_size: u32,
    pub threads: u32,
    /// How fast the model runs here, measured when it was loaded; `None` where unknown (a
    /// remote server).
    pub rates: Option<Rates>,
}

/// Measured speed of a loaded model on this machine: time per prompt token (in a batch) and per
/// generated token.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rates {
    pub prompt_us_per_token: u32,
    pub generation_us_per_token: u32,
}

impl Rates {
    /// Prompt tokens per second.
    pub fn prompt_per_second(&self) -> f64 {
        1e6 / f64::from(self.prompt_us_per_token.max(1))
    }

    /// Generated tokens per second.
    pub fn generation_per_second(&self) -> f64 {
        1e6 / f64::from(self.generation_us_per_token.max(1))
    }
}
