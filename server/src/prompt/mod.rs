//! Prompt building: what the model sees for a completion. Pure: text in, prompt out.
//!
//! - `window`: the current file around the cursor, within a token budget, cut at stable places;
//! - `snippets`: definitions of nearby names from other files, found with tree-sitter queries;
//! - `ring`: recently edited or viewed chunks of code;
//! - `template`: native FIM, instruct or prefix prompts, ordered for KV-cache reuse.

pub mod ring;
pub mod snippets;
pub mod template;
pub mod window;

pub use template::{Extra, Mode, Parts};
pub use window::{Counter, Estimate, Window};
