//! The module layering of ARCHITECTURE.md, checked on the sources the way a reader would grep.

use std::path::{Path, PathBuf};

/// Each rule: modules (folders under `src/`), and paths that no code line in them may name.
const RULES: &[(&[&str], &[&str])] = &[
    // Pure layers: nothing above them, and no model, protocol or backend.
    (
        &["syntax", "documents", "postprocess", "prompt"],
        &[
            "crate::engine",
            "crate::completion",
            "crate::lsp",
            "crate::config",
            "crate::cli",
            "llama_cpp_2",
            "tower_lsp_server",
        ],
    ),
    (
        &["config", "models"],
        &["crate::engine", "crate::completion", "crate::lsp", "crate::cli", "llama_cpp_2", "tower_lsp_server"],
    ),
    (&["completion"], &["crate::lsp", "crate::cli", "llama_cpp_2", "tower_lsp_server"]),
    (&["engine"], &["crate::completion", "crate::lsp", "crate::cli", "tower_lsp_server"]),
];

/// Only these folders may name these paths at all.
const OWNERS: &[(&str, &str)] = &[("llama_cpp_2", "engine"), ("reqwest", "engine"), ("tower_lsp_server", "lsp")];

fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
}

/// Lines of code naming `needle`, leaving out comments and string literals (a test may quote Rust
/// source).
fn naming(path: &Path, needle: &str) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap();
    text.lines()
        .filter(|line| {
            let code = line.split("//").next().unwrap_or("");
            code.find(needle).is_some_and(|at| !code[..at].contains('"'))
        })
        .map(|line| format!("{}: {}", path.display(), line.trim()))
        .collect()
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

#[test]
fn lower_layers_name_nothing_above_them() {
    let mut breaches = Vec::new();
    for (modules, forbidden) in RULES {
        for module in *modules {
            let mut files = Vec::new();
            rust_files(&src().join(module), &mut files);
            assert!(!files.is_empty(), "no sources in {module}");
            for file in &files {
                for needle in *forbidden {
                    breaches.extend(naming(file, needle));
                }
            }
        }
    }
    assert!(breaches.is_empty(), "layering broken:\n{}", breaches.join("\n"));
}

#[test]
fn llama_cpp_and_lsp_types_stay_in_their_modules() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut breaches = Vec::new();
    for (needle, owner) in OWNERS {
        for file in files.iter().filter(|f| !f.starts_with(src().join(owner))) {
            breaches.extend(naming(file, needle));
        }
    }
    assert!(breaches.is_empty(), "outside their module:\n{}", breaches.join("\n"));
}

#[test]
fn the_checker_sees_imports_but_not_quotes_or_comments() {
    let file = std::env::temp_dir().join(format!("mistral-lsp-layering-{}.rs", std::process::id()));
    std::fs::write(&file, "use crate::engine::Job;\nlet s = \"use crate::engine\";\n// crate::engine\n").unwrap();
    let found = naming(&file, "crate::engine");
    std::fs::remove_file(&file).unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
}
