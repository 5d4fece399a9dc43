//! Prompt building: what the model sees for a completion. Pure: text in, prompt out.
//!
//! - `window`: the current file around the cursor, within a token budget, cut at stable places;
//! - `snippets`: definitions of nearby names from other files, found with tree-sitter queries;
//! - `ring`: recently edited or viewed chunks of code;
//! - `template`: native FIM, instruct or prefix prompts, ordered for KV-cache reuse;
//! - `explain`: what "explain this code" explains, and its chat prompt.

pub mod explain;
pub mod review;
pub mod ring;
pub mod snippets;
pub mod template;
pub mod window;

pub use template::{Extra, FimMode, Mode, Parts};
pub use window::{Counter, Estimate, Window};

/// A chat message for instruct prompts.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ChatMessage {
    /// `system`, `user` or `assistant`.
    pub role: String,
    pub content: String,
}

/// A token of the model's own vocabulary, named by purpose.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Special {
    Bos,
    FimPrefix,
    FimSuffix,
    FimMiddle,
    FimRepo,
    FimSeparator,
}

/// One piece of a prompt assembled by the prompt builder.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Segment {
    /// Plain text; special-token spellings inside it stay text.
    Text(String),
    /// A special token of the vocabulary. The job fails if the model has none.
    Special(Special),
}

/// What the model sees.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Prompt {
    /// Native fill-in-the-middle with the vocabulary's FIM tokens, prefix first:
    /// `[BOS] FIM_PRE prefix FIM_SUF suffix FIM_MID`. Trimmed to fit: prefix from its start, suffix
    /// from its end, 3:1.
    Infill { prefix: String, suffix: String },
    /// Segments in order. Trimmed to fit by dropping tokens from the start.
    Segments(Vec<Segment>),
    /// Chat messages rendered with the model's chat template; the answer follows, starting with
    /// `answer_prefix` (which the model continues).
    Chat { messages: Vec<ChatMessage>, answer_prefix: String },
}
