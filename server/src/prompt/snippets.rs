//! Cross-file snippets: definitions of the names used near the cursor, found with the tree-sitter
//! queries in `grammars/` in other open buffers and in the files the current file imports.

use std::collections::HashSet;

use ropey::Rope;
use streaming_iterator::StreamingIterator;
use tree_sitter::{Query, QueryCursor, Tree};

use crate::syntax::{queries, Language};

/// Lines of a definition shown at most: the signature and the start of the body.
pub const MAX_LINES: usize = 12;

/// A definition to show the model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snippet {
    pub path: String,
    pub name: String,
    pub text: String,
    /// Where the definition starts in its file (a byte offset).
    pub start: usize,
}

/// A parsed file to look for definitions in.
pub struct Source<'a> {
    pub path: &'a str,
    pub text: &'a Rope,
    pub tree: &'a Tree,
    pub language: Language,
}

const KEYWORDS: &[&str] = &[
    "and", "as", "assert", "async", "await", "break", "class", "const", "continue", "crate", "def", "del", "dyn",
    "elif", "else", "enum", "except", "false", "False", "finally", "fn", "for", "from", "global", "if", "impl",
    "import", "in", "is", "lambda", "let", "loop", "match", "mod", "move", "mut", "None", "nonlocal", "not", "or",
    "pass", "pub", "raise", "ref", "return", "self", "Self", "static", "struct", "super", "trait", "true", "True",
    "try", "type", "unsafe", "use", "where", "while", "with", "yield", "print", "len", "range", "str", "int",
];

/// Identifiers in `text`, the last ones first (nearest the cursor when `text` ends there).
pub fn used_names(text: &str) -> Vec<String> {
    let mut seen = HashSet::new();
    let mut names = Vec::new();
    let words: Vec<&str> = text.split(|c: char| !(c.is_alphanumeric() || c == '_')).collect();
    for word in words.into_iter().rev() {
        let starts_ok = word.chars().next().is_some_and(|c| c.is_alphabetic() || c == '_');
        if word.len() < 2 || !starts_ok || KEYWORDS.contains(&word) {
            continue;
        }
        if seen.insert(word) {
            names.push(word.to_owned());
        }
    }
    names
}

/// Definitions in `source` whose names are in `names`.
pub fn definitions(source: &Source, names: &HashSet<&str>) -> Vec<Snippet> {
    let Ok(query) = Query::new(&source.language.grammar(), queries::context(source.language)) else {
        return Vec::new();
    };
    let Some(name_index) = query.capture_index_for_name("name") else { return Vec::new() };
    let bytes = RopeBytes(source.text);
    let mut cursor = QueryCursor::new();
    let mut matches = cursor.matches(&query, source.tree.root_node(), &bytes);
    let mut found = Vec::new();
    while let Some(m) = matches.next() {
        let Some(name_node) = m.captures.iter().find(|c| c.index == name_index).map(|c| c.node) else { continue };
        let name = source.text.byte_slice(name_node.byte_range()).to_string();
        if !names.contains(name.as_str()) {
            continue;
        }
        let Some(definition) = m.captures.iter().find(|c| c.index != name_index).map(|c| c.node) else { continue };
        let text = source.text.byte_slice(definition.byte_range()).to_string();
        let lines: Vec<&str> = text.lines().collect();
        let mut shown = lines[..lines.len().min(MAX_LINES)].join("\n");
        if lines.len() > MAX_LINES {
            shown.push_str("\n    ...");
        }
        found.push(Snippet { path: source.path.to_owned(), name, text: shown, start: definition.start_byte() });
    }
    found
}

/// Module paths the file imports, as written (`a.b`, `.sibling`, `crate::x::y`, `mod name`).
pub fn imports(language: Language, text: &Rope, tree: &Tree) -> Vec<String> {
    let Ok(query) = Query::new(&language.grammar(), queries::imports(language)) else { return Vec::new() };
    let bytes = RopeBytes(text);
    let mut cursor = QueryCursor::new();
    let mut matches = cursor.matches(&query, tree.root_node(), &bytes);
    let mut found = Vec::new();
    while let Some(m) = matches.next() {
        for capture in m.captures {
            let written = text.byte_slice(capture.node.byte_range()).to_string();
            let kind = query.capture_names()[capture.index as usize];
            found.push(if kind == "module" { format!("mod {written}") } else { written });
        }
    }
    found
}

/// Files (relative to the importing file's folder) that an import may refer to, most likely first.
pub fn import_candidates(language: Language, import: &str) -> Vec<String> {
    match language {
        Language::Python => {
            let dots = import.chars().take_while(|c| *c == '.').count();
            let module = import[dots..].replace('.', "/");
            let up = if dots > 1 { "../".repeat(dots - 1) } else { String::new() };
            if module.is_empty() {
                return Vec::new();
            }
            vec![format!("{up}{module}.py"), format!("{up}{module}/__init__.py")]
        }
        Language::Rust => {
            if let Some(name) = import.strip_prefix("mod ") {
                return vec![format!("{name}.rs"), format!("{name}/mod.rs")];
            }
            // `crate::a::b::Item` or `super::a::Item`: the module file is the path without its
            // last segment (or with it, when it names a module).
            let segments: Vec<&str> = import.split("::").map(|s| s.trim_matches(|c| c == '{' || c == '}')).collect();
            let (base, rest): (&str, &[&str]) = match segments.first() {
                Some(&"crate") => ("{crate}/", &segments[1..]),
                Some(&"super") => ("../", &segments[1..]),
                Some(&"self") => ("", &segments[1..]),
                _ => return Vec::new(),
            };
            let mut candidates = Vec::new();
            for take in (1..=rest.len()).rev() {
                let module = rest[..take].join("/");
                candidates.push(format!("{base}{module}.rs"));
                candidates.push(format!("{base}{module}/mod.rs"));
            }
            candidates
        }
    }
}

/// Lets tree-sitter queries read a rope without copying it.
struct RopeBytes<'a>(&'a Rope);

impl<'a> tree_sitter::TextProvider<&'a [u8]> for &'a RopeBytes<'a> {
    type I = ChunkIter<'a>;

    fn text(&mut self, node: tree_sitter::Node) -> Self::I {
        ChunkIter(self.0.byte_slice(node.byte_range()).chunks())
    }
}

struct ChunkIter<'a>(ropey::iter::Chunks<'a>);

impl<'a> Iterator for ChunkIter<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<Self::Item> {
        self.0.next().map(str::as_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::syntax;

    fn defs(language: Language, code: &str, names: &[&str]) -> Vec<String> {
        let text = Rope::from_str(code);
        let tree = syntax::parse(language, &text, None).unwrap();
        let source = Source { path: "x", text: &text, tree: &tree, language };
        let names: HashSet<&str> = names.iter().copied().collect();
        definitions(&source, &names).into_iter().map(|s| s.text).collect()
    }

    #[test]
    fn names_nearest_the_cursor_come_first() {
        assert_eq!(
            used_names("total = scale(values)\nresult = normalize(total"),
            ["total", "normalize", "result", "values", "scale"]
        );
        assert!(used_names("for x in range(10): pass").is_empty());
    }

    #[test]
    fn python_definitions() {
        let code = "import os\n\ndef scale(values, k=2):\n    return [v * k for v in values]\n\nclass Point:\n    x: int\n\nLIMIT = 10\n";
        assert_eq!(
            defs(Language::Python, code, &["scale"]),
            ["def scale(values, k=2):\n    return [v * k for v in values]"]
        );
        assert_eq!(defs(Language::Python, code, &["Point", "LIMIT"]), ["class Point:\n    x: int", "LIMIT = 10"]);
        assert!(defs(Language::Python, code, &["missing"]).is_empty());
    }

    #[test]
    fn rust_definitions_and_long_bodies_are_shortened() {
        let body: String = (0..20).map(|i| format!("    let v{i} = {i};\n")).collect();
        let code = format!(
            "struct Config {{ depth: u32 }}\n\nfn build(depth: u32) -> Config {{\n{body}    Config {{ depth }}\n}}\n"
        );
        let found = defs(Language::Rust, &code, &["build", "Config"]);
        assert_eq!(found[0], "struct Config { depth: u32 }");
        assert!(
            found[1].starts_with("fn build(depth: u32) -> Config {") && found[1].ends_with("    ..."),
            "{}",
            found[1]
        );
        assert_eq!(found[1].lines().count(), MAX_LINES + 1);
    }

    #[test]
    fn imports_and_where_to_find_them() {
        let text = Rope::from_str("import os.path\nfrom .util import scale\nfrom pkg.mod import x as y\n");
        let tree = syntax::parse(Language::Python, &text, None).unwrap();
        assert_eq!(imports(Language::Python, &text, &tree), ["os.path", ".util", "pkg.mod"]);
        assert_eq!(import_candidates(Language::Python, ".util"), ["util.py", "util/__init__.py"]);
        assert_eq!(import_candidates(Language::Python, "..a.b"), ["../a/b.py", "../a/b/__init__.py"]);
        let text = Rope::from_str("mod engine;\nuse crate::config::Settings;\nuse std::io;\n");
        let tree = syntax::parse(Language::Rust, &text, None).unwrap();
        assert_eq!(imports(Language::Rust, &text, &tree), ["mod engine", "crate::config::Settings", "std::io"]);
        assert_eq!(import_candidates(Language::Rust, "mod engine"), ["engine.rs", "engine/mod.rs"]);
        assert_eq!(
            import_candidates(Language::Rust, "crate::config::Settings"),
            [
                "{crate}/config/Settings.rs",
                "{crate}/config/Settings/mod.rs",
                "{crate}/config.rs",
                "{crate}/config/mod.rs"
            ]
        );
        assert!(import_candidates(Language::Rust, "std::io").is_empty());
    }
}
