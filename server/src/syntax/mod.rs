//! Tree-sitter parsing of buffers: which languages have a grammar, full and incremental parses.
//!
//! This module knows nothing about LSP. It works on ropes and byte offsets.

use std::cell::RefCell;

use ropey::Rope;
use tree_sitter::{InputEdit, Parser, Point, Tree};

pub mod lexicon;
pub mod queries;

/// Buffers larger than this are kept as text only: parsing them would stall the editor for a
/// noticeable time on every keystroke, and no prompt ever needs that much syntax.
pub const MAX_PARSE_BYTES: usize = 1024 * 1024;

/// A language with a tree-sitter grammar compiled in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Language {
    Rust,
    Python,
}

impl Language {
    /// Maps an LSP language id (or, failing that, the document path's extension) to a grammar.
    pub fn detect(language_id: &str, path: &str) -> Option<Language> {
        Language::from_id(language_id).or_else(|| Language::from_id(language_id_of_extension(extension(path)?)?))
    }

    fn from_id(language_id: &str) -> Option<Language> {
        match language_id {
            "rust" => Some(Language::Rust),
            "python" => Some(Language::Python),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Language::Rust => "rust",
            Language::Python => "python",
        }
    }

    pub fn grammar(self) -> tree_sitter::Language {
        match self {
            Language::Rust => tree_sitter_rust::LANGUAGE.into(),
            Language::Python => tree_sitter_python::LANGUAGE.into(),
        }
    }
}

/// LSP language ids by file extension: the one table for files that come from disk, not from an
/// editor that names their language.
const EXTENSIONS: &[(&str, &str)] = &[
    ("rs", "rust"),
    ("py", "python"),
    ("pyi", "python"),
    ("js", "javascript"),
    ("ts", "typescript"),
    ("go", "go"),
    ("c", "c"),
    ("h", "c"),
    ("cpp", "cpp"),
    ("java", "java"),
];

fn extension(path: &str) -> Option<&str> {
    let name = path.rsplit(['/', '\\']).next()?;
    name.rsplit_once('.').map(|(_, extension)| extension)
}

fn language_id_of_extension(extension: &str) -> Option<&'static str> {
    EXTENSIONS.iter().find(|(e, _)| *e == extension).map(|(_, id)| *id)
}

/// The LSP language id of a file on disk, from its extension: `plaintext` when unknown.
pub fn language_id(path: &std::path::Path) -> &'static str {
    path.to_str().and_then(extension).and_then(language_id_of_extension).unwrap_or("plaintext")
}

thread_local! {
    static PARSERS: RefCell<Vec<(Language, Parser)>> = const { RefCell::new(Vec::new()) };
}

/// Parses `rope`, reusing `old` (already edited with [`edit_for`]) when given.
///
/// Returns `None` when the text is too large to parse; see [`MAX_PARSE_BYTES`].
pub fn parse(language: Language, rope: &Rope, old: Option<&Tree>) -> Option<Tree> {
    if rope.len_bytes() > MAX_PARSE_BYTES {
        return None;
    }
    PARSERS.with_borrow_mut(|parsers| {
        let index = match parsers.iter().position(|(l, _)| *l == language) {
            Some(index) => index,
            None => {
                let mut parser = Parser::new();
                parser.set_language(&language.grammar()).ok()?;
                parsers.push((language, parser));
                parsers.len() - 1
            }
        };
        let parser = &mut parsers[index].1;
        let len = rope.len_bytes();
        let mut read = |byte: usize, _: Point| -> &[u8] {
            if byte >= len {
                return &[];
            }
            let (chunk, chunk_start, _, _) = rope.chunk_at_byte(byte);
            &chunk.as_bytes()[byte - chunk_start..]
        };
        let tree = parser.parse_with_options(&mut read, old, None);
        // A parser keeps references into the last trees it saw until its next parse; parsers
        // live on in pool threads, so without this each would hold an old tree alive.
        parser.reset();
        tree
    })
}

/// Width of a line's leading whitespace, a tab counting as 4.
pub fn indent_width(line: &str) -> usize {
    line.chars().take_while(|c| *c == ' ' || *c == '\t').map(|c| if c == '\t' { 4 } else { 1 }).sum()
}

/// Describes replacing `old_range` of `before` with text of `new_len` bytes, for [`Tree::edit`].
///
/// `after` is the rope once the replacement is made.
pub fn edit_for(before: &Rope, after: &Rope, start: usize, old_end: usize, new_len: usize) -> InputEdit {
    InputEdit {
        start_byte: start,
        old_end_byte: old_end,
        new_end_byte: start + new_len,
        start_position: point(before, start),
        old_end_position: point(before, old_end),
        new_end_position: point(after, start + new_len),
    }
}

/// The tree-sitter point (row, byte column) of a byte offset.
pub fn point(rope: &Rope, byte: usize) -> Point {
    let row = rope.byte_to_line(byte);
    Point { row, column: byte - rope.line_to_byte(row) }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn languages_come_from_the_id_or_else_the_extension() {
        let cases = [
            ("rust", "file:///a/b.txt", Some(Language::Rust)),
            ("python", "untitled:1", Some(Language::Python)),
            ("plaintext", "file:///a/b.rs", Some(Language::Rust)),
            ("", "file:///a/stubs.pyi", Some(Language::Python)),
            ("", "file:///a.rs/README", None),
            ("javascript", "file:///a/b.js", None),
        ];
        for (id, path, language) in cases {
            assert_eq!(Language::detect(id, path), language, "{id} {path}");
        }
        assert_eq!(language_id(Path::new("/w/x.py")), "python");
        assert_eq!(language_id(Path::new("/w/x.rs")), "rust");
        assert_eq!(language_id(Path::new("/w.py/Makefile")), "plaintext");
    }

    #[test]
    fn indentation_counts_tabs_as_four() {
        for (line, width) in [("", 0), ("x", 0), ("    x", 4), ("\tx", 4), ("\t  x", 6), ("   ", 3)] {
            assert_eq!(indent_width(line), width, "{line:?}");
        }
    }
}
