//! End-to-end tests: the real `mistral-lsp` binary over stdio, on the deterministic test backend.

// Tests may unwrap and start reader threads for the child process.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

mod bad_input;
mod completion;
mod config;
mod document;
mod explain;
#[path = "../engine/gguf.rs"]
mod gguf;
mod harness;
mod hostile;
mod hub;
mod lifecycle;
mod model;
mod pipeline;
mod prewarm;
mod progress;
mod remote;
mod review;
mod sync;
