//! Models on disk: parsing model specs, the download cache, and fetching `hf:` models.
//!
//! Nothing here touches llama.cpp; `engine` loads the file this module resolves. `resolve` turns a
//! spec into a local path: a path spec as it is, an `hf:` spec through the verified cache
//! (`cache.rs`), downloading it from the hub first if needed (`download.rs`).

mod cache;
mod download;
mod info;
pub mod spec;
mod terminal;
#[cfg(test)]
mod tests;

pub use download::{resolve, FetchError, FetchOptions, Progress};
pub use info::{ModelInfo, Rates};
pub use spec::ModelSpec;
pub use terminal::resolve_with_terminal_progress;
