//! The tree-sitter query files from `grammars/`, compiled into the binary.
//!
//! One file per concern per language, so that a query can be read and tested on its own.

use super::Language;

/// Query source for definitions and the scopes that contain them.
pub fn context(language: Language) -> &'static str {
    match language {
        Language::Rust => include_str!("../../../grammars/rust/context.scm"),
        Language::Python => include_str!("../../../grammars/python/context.scm"),
    }
}

/// Query source for imports of other modules.
pub fn imports(language: Language) -> &'static str {
    match language {
        Language::Rust => include_str!("../../../grammars/rust/imports.scm"),
        Language::Python => include_str!("../../../grammars/python/imports.scm"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_query_compiles() {
        for language in [Language::Rust, Language::Python] {
            for source in [context(language), imports(language)] {
                if let Err(err) = tree_sitter::Query::new(&language.grammar(), source) {
                    panic!("{} query does not compile: {err}", language.name());
                }
            }
        }
    }
}
