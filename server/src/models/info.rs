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
}
