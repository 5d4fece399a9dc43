//! mistral-lsp: a local AI coding assistant as a language server.
//!
//! See ARCHITECTURE.md for the code map. In short: `lsp` is the only module that knows LSP,
//! `engine` the only one that runs a model; `documents`, `syntax`, `prompt` and `postprocess`
//! are pure and tested as tables.

pub mod cli;
pub mod completion;
pub mod config;
pub mod documents;
pub mod engine;
pub mod explain;
pub mod lsp;
pub mod models;
pub mod postprocess;
pub mod prompt;
pub mod review;
pub mod syntax;
pub mod workspace;

#[cfg(test)]
mod layering;
